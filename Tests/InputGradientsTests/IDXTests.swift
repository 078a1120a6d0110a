// The IDX reader on small files the tests write themselves (gzip and raw), and its errors.

import Certification
import Foundation
import Testing
import Tensor
@testable import InputGradients

func tempDir(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("igrad-tests-\(getpid())-\(name)").path
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

/// Writes a tiny MNIST-format split: n images of rows×cols (pixel = (i·7 + j) % 256) and labels i % 3.
func writeTinyMNIST(dir: String, split: String = "train", n: Int, rows: Int = 4, cols: Int = 3, compressed: Bool) throws {
    let ext = compressed ? ".gz" : ""
    let pixels = (0..<(n * rows * cols)).map { Double(($0 * 7) % 256) }
    try IDX.write(IDXArray(type: .uint8, shape: [n, rows, cols], values: pixels),
                  to: "\(dir)/\(split == "train" ? "train" : "t10k")-images-idx3-ubyte\(ext)", compressed: compressed)
    try IDX.write(IDXArray(type: .uint8, shape: [n], values: (0..<n).map { Double($0 % 3) }),
                  to: "\(dir)/\(split == "train" ? "train" : "t10k")-labels-idx1-ubyte\(ext)", compressed: compressed)
}

func expectInputError(_ fragment: String, _ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        try body()
        Issue.record("expected an InputError containing '\(fragment)'", sourceLocation: sourceLocation)
    } catch let e as InputError {
        #expect(e.description.contains(fragment), "message: \(e.description)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected InputError, got \(error)", sourceLocation: sourceLocation)
    }
}

@Suite struct IDXReader {
    @Test(arguments: [true, false])
    func roundTripEveryType(compressed: Bool) throws {
        let dir = tempDir("types-\(compressed)")
        let cases: [(IDXType, [Double])] = [
            (.uint8, [0, 1, 255, 128, 7, 9]), (.int8, [-128, 127, 0, -1, 5, 6]), (.int16, [-32768, 32767, 0, 1, -2, 300]),
            (.int32, [-2_147_483_648, 2_147_483_647, 0, 1, -70000, 70000]), (.float32, [0.5, -1.25, 3, 1e-3.nextUp, 0, 2]),
            (.float64, [0.1, -1e300, 3, .pi, 0, 2]),
        ]
        for (t, raw) in cases {
            let values = t == .float32 ? raw.map { Double(Float($0)) } : raw
            let path = "\(dir)/a-\(t).idx\(compressed ? ".gz" : "")"
            try IDX.write(IDXArray(type: t, shape: [2, 3], values: values), to: path, compressed: compressed)
            let back = try IDX.read(path)
            #expect(back == IDXArray(type: t, shape: [2, 3], values: values), "type \(t)")
        }
    }

    @Test func gzipIsReallyCompressed() throws {
        let dir = tempDir("gz")
        try writeTinyMNIST(dir: dir, n: 50, compressed: true)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/train-images-idx3-ubyte.gz"))
        #expect(bytes.prefix(2) == Data([0x1f, 0x8b]), "gzip magic")
    }

    @Test(arguments: [true, false])
    func loadsMNISTFormatSplit(compressed: Bool) throws {
        let dir = tempDir("split-\(compressed)")
        try writeTinyMNIST(dir: dir, split: "test", n: 5, compressed: compressed)
        let d = try MNISTFormat.load(directory: dir, split: .test)
        #expect(d.images.shape == [5, 4, 3])
        #expect(d.labels == [0, 1, 2, 0, 1])
        #expect(d.images.data[1] == 7.0 / 255.0)
        let limited = try MNISTFormat.load(directory: dir, split: .test, limit: 2)
        #expect(limited.images.shape == [2, 4, 3] && limited.labels == [0, 1])
    }

    @Test func missingFileNamesIt() {
        let dir = tempDir("missing")
        expectInputError("missing file") { _ = try IDX.read("\(dir)/nope.gz") }
        expectInputError("train-images-idx3-ubyte") { _ = try MNISTFormat.load(directory: dir, split: .train) }
    }

    @Test(arguments: [true, false])
    func truncatedDataIsAnError(compressed: Bool) throws {
        let dir = tempDir("trunc-\(compressed)")
        // header promises 3×4×4 u8 values, only 20 follow
        var bytes: [UInt8] = [0, 0, 0x08, 3, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 4]
        bytes += [UInt8](repeating: 9, count: 20)
        let path = "\(dir)/t.idx"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        if compressed {
            // a valid gzip stream of the truncated content
            try IDX.writeBytes(bytes, to: path + ".gz", compressed: true)
            expectInputError("truncated: expected 48 bytes, found 20") { _ = try IDX.read(path + ".gz") }
        } else {
            expectInputError("truncated: expected 48 bytes, found 20") { _ = try IDX.read(path) }
        }
        // a header cut short
        try Data(bytes.prefix(6)).write(to: URL(fileURLWithPath: path))
        expectInputError("IDX dimensions: truncated") { _ = try IDX.read(path) }
    }

    @Test func truncatedGzipStreamIsAnError() throws {
        let dir = tempDir("gzcut")
        let full = "\(dir)/full.idx.gz"
        try IDX.write(IDXArray(type: .float64, shape: [200], values: (0..<200).map { Double($0) * 1.37 }), to: full, compressed: true)
        let data = try Data(contentsOf: URL(fileURLWithPath: full))
        let cut = "\(dir)/cut.idx.gz"
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: cut))
        expectInputError("truncated") { _ = try IDX.read(cut) }
    }

    @Test func badMagicAndTrailingBytesAndRank() throws {
        let dir = tempDir("magic")
        let p = "\(dir)/bad.idx"
        try Data([1, 2, 3, 4, 0, 0, 0, 1, 5]).write(to: URL(fileURLWithPath: p))
        expectInputError("bad magic") { _ = try IDX.read(p) }
        try Data([0, 0, 8, 1, 0, 0, 0, 2, 5, 6, 7]).write(to: URL(fileURLWithPath: p))
        expectInputError("trailing bytes") { _ = try IDX.read(p) }
        try Data([0, 0, 8, 1, 0, 0, 0, 2, 5, 6]).write(to: URL(fileURLWithPath: p))
        #expect(try IDX.read(p).values == [5, 6])
        expectInputError("expected 3 dimensions, found 1") { _ = try IDX.read(p, expectDims: 3) }
    }

    @Test func labelCountMismatch() throws {
        let dir = tempDir("mismatch")
        try IDX.write(IDXArray(type: .uint8, shape: [3, 2, 2], values: [Double](repeating: 1, count: 12)),
                      to: "\(dir)/train-images-idx3-ubyte", compressed: false)
        try IDX.write(IDXArray(type: .uint8, shape: [2], values: [0, 1]), to: "\(dir)/train-labels-idx1-ubyte", compressed: false)
        expectInputError("2 labels but") { _ = try MNISTFormat.load(directory: dir, split: .train) }
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: MNISTFormat.fashionMNISTDirectory + "/t10k-labels-idx1-ubyte.gz")))
    func debianFashionMNIST() throws {
        let d = try MNISTFormat.load(split: .test, limit: 100)
        #expect(d.images.shape == [100, 28, 28])
        #expect(d.labels.allSatisfy { (0..<10).contains($0) })
        #expect(d.images.data.allSatisfy { $0 >= 0 && $0 <= 1 })
    }
}

