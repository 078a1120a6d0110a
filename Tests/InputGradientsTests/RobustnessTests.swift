// Issue 11 for the input-gradients readers: IDX headers that claim more than the file holds or whose
// sizes overflow, 0×0 images, and BlockMNIST exports with NaN or huge labels.

import Certification
import Foundation
import HDF5
import Testing
import Tensor
@testable import InputGradients

@Suite struct InputGradientsRobustness {
    func header(_ dims: [UInt32], type: UInt8 = 0x08) -> [UInt8] {
        var b: [UInt8] = [0, 0, type, UInt8(dims.count)]
        for d in dims { b += [UInt8(d >> 24), UInt8((d >> 16) & 0xff), UInt8((d >> 8) & 0xff), UInt8(d & 0xff)] }
        return b
    }

    @Test func idxOverflowingDimensions() throws {
        let p = tempDir("robust") + "/overflow-idx3-ubyte"
        try Data(header([0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF])).write(to: URL(fileURLWithPath: p))
        expectInputError("overflows") { _ = try IDX.read(p) }
    }

    @Test func idxHeaderClaimingMoreThanTheFile() throws {
        let dir = tempDir("robust")
        let raw = dir + "/claims-idx3-ubyte", gz = dir + "/claims-idx3-ubyte.gz"
        let bytes = header([8_000_000, 32, 32]) + [1, 2]
        try Data(bytes).write(to: URL(fileURLWithPath: raw))
        try IDX.writeBytes(header([100_000, 32, 32]) + [1, 2], to: gz, compressed: true)
        expectInputError("expected 8192000000 bytes, found 2") { _ = try IDX.read(raw) }
        expectInputError("truncated") { _ = try IDX.read(gz) }   // read in pieces: no 100 MB buffer first
        try IDX.writeBytes(bytes, to: gz, compressed: true)
        expectInputError("memory budget") { _ = try IDX.read(gz) }  // 8·10⁹ elements: over the budget before reading
    }

    @Test func zeroSizedImagesNameTheFile() throws {
        let dir = tempDir("robust-0x0")
        try IDX.write(IDXArray(type: .uint8, shape: [2, 0, 0], values: []), to: dir + "/train-images-idx3-ubyte", compressed: false)
        try IDX.write(IDXArray(type: .uint8, shape: [2], values: [0, 1]), to: dir + "/train-labels-idx1-ubyte", compressed: false)
        expectInputError("train-images-idx3-ubyte: IDX dimensions: images of 0×0") { _ = try MNISTFormat.load(directory: dir, split: .train) }
    }

    @Test(arguments: ["np.nan", "1e300", "-1", "2.5"])
    func exportLabelsAreChecked(_ bad: String) throws {
        let p = tempDir("robust") + "/export-\(bad).h5"
        let script = """
            import h5py, numpy as np
            with h5py.File('\(p)', 'w') as f:
                for s in ('train', 'test'):
                    f[s + '/images'] = np.zeros((2, 4, 3))
                    f[s + '/labels'] = np.array([0.0, \(bad)])
                    f[s + '/signal_top'] = np.array([1, 0], dtype=np.uint8)
            """
        let pr = Process()
        pr.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        pr.arguments = ["-c", script]
        try pr.run()
        pr.waitUntilExit()
        #expect(pr.terminationStatus == 0)
        expectInputError("\(p): /train/labels: element 1") { _ = try BlockMNISTExport.read(p, split: "train") }
    }

    @Test func hugeLearnerIsRefused() throws {
        var rng = RNG(seed: 0)
        #expect(throws: ShapeError.self) { _ = try MLP(sizes: [784, 100_000_000, 10], rng: &rng) }
        #expect(throws: ShapeError.self) { _ = try MLP(sizes: [1 << 40, 1 << 40, 10], rng: &rng) }
    }
}
