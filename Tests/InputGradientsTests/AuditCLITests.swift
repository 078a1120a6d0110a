// `certify blockmnist export` and `certify audit` end to end on tiny IDX files the tests write:
// exit codes, one-line errors naming file and object, no half-written outputs. These run once the
// subcommands are wired into the `certify` executable (they are skipped before).

import Certification
import Foundation
import HDF5
import Testing
import Tensor
@testable import InputGradients

let packageRootPath = packageRoot()

/// The `certify` of this test binary's own build (its sibling), else .build/release or .build/debug.
func certifyExecutable() -> String {
    let sibling = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("certify").path
    for p in [sibling, packageRootPath + "/.build/release/certify", packageRootPath + "/.build/debug/certify"]
    where FileManager.default.isExecutableFile(atPath: p) { return p }
    return packageRootPath + "/.build/release/certify"
}

struct CLIRun {
    var status: Int32
    var out: String
    var err: String
}

func runCertify(_ args: [String]) throws -> CLIRun {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: certifyExecutable())
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: packageRootPath)
    let o = Pipe(), e = Pipe()
    p.standardOutput = o
    p.standardError = e
    try p.run()
    let od = o.fileHandleForReading.readDataToEndOfFile(), ed = e.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return CLIRun(status: p.terminationStatus, out: String(decoding: od, as: UTF8.self), err: String(decoding: ed, as: UTF8.self))
}

/// Whether this build's `certify` has the paper's subcommands.
let auditWired: Bool = {
    guard FileManager.default.isExecutableFile(atPath: certifyExecutable()) else { return false }
    return ((try? runCertify(["audit", "--help"]))?.status ?? 1) == 0 && ((try? runCertify(["blockmnist", "export", "--help"]))?.status ?? 1) == 0
}()

/// A tiny MNIST-format source: 60 train / 30 test images of 8×6, two classes that differ in the left/right half.
func tinySource(_ name: String) throws -> String {
    let dir = tempDir("cli-\(name)")
    var rng = RNG(seed: 11)
    for (split, n) in [("train", 60), ("t10k", 30)] {
        let src = syntheticTwoClassSource(n: n, rows: 8, cols: 6, rng: &rng)
        try IDX.write(IDXArray(type: .uint8, shape: [n, 8, 6], values: src.images.data.map { ($0 * 255).rounded() }),
                      to: "\(dir)/\(split)-images-idx3-ubyte.gz", compressed: true)
        try IDX.write(IDXArray(type: .uint8, shape: [n], values: src.labels.map(Double.init)), to: "\(dir)/\(split)-labels-idx1-ubyte.gz", compressed: true)
    }
    return dir
}

let tinyBlockArgs = ["--null-first", "1", "--null-last", "4"]
let fastAuditArgs = ["--ks", "0.5,1", "--seeds", "1", "--learner-epochs", "1", "--learner-hidden", "8,8", "--model-epochs", "1", "--jobs", "1"]

@Suite(.enabled(if: auditWired)) struct AuditCLI {
    func export(_ dir: String, _ out: String) throws {
        let r = try runCertify(["blockmnist", "export", "--source", dir, "--out", out] + tinyBlockArgs)
        #expect(r.status == 0, "\(r.err)")
    }

    func writeAttributions(_ path: String, train: [Int], test: [Int], edit: (inout [Double]) -> Void = { _ in }) throws {
        let f = try File.create(path)
        var rng = RNG(seed: 5)
        for (split, shape) in [("train", train), ("test", test)] {
            var v = rng.normalTensor(shape).data
            if split == "test" { edit(&v) }
            try f.root.write("\(split)/attributions", .float64(v), shape: shape)
        }
        try f.flush()
    }

    @Test func exportThenAuditUserAttributions() throws {
        let dir = try tinySource("ok")
        let data = dir + "/bm.h5", attr = dir + "/attr.h5", json = dir + "/r.json", svg = dir + "/r.svg"
        try export(dir, data)
        let (train, _) = try BlockMNISTExport.read(data, split: "train")
        #expect(train.images.shape == [60, 16, 6])
        try writeAttributions(attr, train: [60, 16, 6], test: [30, 16, 6])
        let r = try runCertify(["audit", "--attributions", attr, "--data", data, "--json", json, "--svg", svg] + fastAuditArgs)
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("DiffROAR") && r.out.contains("null share"), "\(r.out)")
        #expect(r.err.contains("k = 0.50, keep top"), "progress on stderr: \(r.err)")
        let report = try JSONDecoder().decode(AuditReport.self, from: Data(contentsOf: URL(fileURLWithPath: json)))
        #expect(report.diffROAR.map(\.k) == [0.5, 1.0])
        #expect(report.diffROAR.last!.mean == 0, "k = 1 masks nothing: both arms train identically")
        #expect(try String(contentsOfFile: svg, encoding: .utf8).hasPrefix("<svg"))
    }

    @Test func badAttributionsAreExitTwoAndWriteNothing() throws {
        let dir = try tinySource("bad")
        let data = dir + "/bm.h5", json = dir + "/r.json"
        try export(dir, data)
        let wrongShape = dir + "/wrong.h5"
        try writeAttributions(wrongShape, train: [60, 16, 6], test: [30, 8, 6])
        var r = try runCertify(["audit", "--attributions", wrongShape, "--data", data, "--json", json] + fastAuditArgs)
        #expect(r.status == 2)
        #expect(r.err.contains("/test/attributions") && r.err.contains("does not match"), "\(r.err)")
        let withNaN = dir + "/nan.h5"
        try writeAttributions(withNaN, train: [60, 16, 6], test: [30, 16, 6]) { $0[17] = .nan }
        r = try runCertify(["audit", "--attributions", withNaN, "--data", data, "--json", json] + fastAuditArgs)
        #expect(r.status == 2)
        #expect(r.err.contains("nan") && r.err.contains("must be finite"), "\(r.err)")
        for ks in ["0,1", "1.5", "-0.2", "nan"] {
            r = try runCertify(["audit", "--attributions", withNaN, "--data", data, "--ks", ks])
            #expect(r.status == 2, "--ks \(ks): \(r.err)")
        }
        #expect(!FileManager.default.fileExists(atPath: json), "no report after a failure")
    }

    @Test func missingOrTruncatedIDXIsExitTwo() throws {
        let dir = try tinySource("idx")
        var r = try runCertify(["blockmnist", "export", "--source", dir + "/nowhere", "--out", dir + "/x.h5"])
        #expect(r.status == 2 && r.err.contains("missing file"), "\(r.err)")
        let img = dir + "/t10k-images-idx3-ubyte.gz"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: img))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: img))
        r = try runCertify(["blockmnist", "export", "--source", dir, "--out", dir + "/x.h5"] + tinyBlockArgs)
        #expect(r.status == 2 && r.err.contains("truncated"), "\(r.err)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/x.h5"), "nothing half-written")
    }

    @Test func builtInMethodOnTinyBlockMNIST() throws {
        let dir = try tinySource("builtin")
        let r = try runCertify(["audit", "--method", "gradient", "--model", "robust", "--source", dir, "--robust-eps", "0.05"] + tinyBlockArgs + fastAuditArgs)
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("attributed model: test accuracy"), "\(r.out)")
    }
}
