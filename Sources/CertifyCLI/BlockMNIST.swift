// `certify blockmnist export`: BlockMNIST / BlockMNIST-Top (Shah, Jain & Netrapalli, NeurIPS 2021 §4)
// built from MNIST-format IDX files (default: Debian's Fashion-MNIST), written to HDF5 with the
// per-image signal location, so that a model can be trained in any framework.

import ArgumentParser
import Certification
import Foundation
import InputGradients

struct BlockMNISTCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "blockmnist",
        abstract: "BlockMNIST data sets (signal block + null block, stacked vertically).",
        subcommands: [BlockMNISTExportCommand.self])
}

/// The BlockMNIST settings shared by `blockmnist export` and `audit`.
struct BlockMNISTOptions: ParsableArguments {
    @Option(help: "Directory of MNIST-format IDX files (train-/t10k-images-idx3-ubyte[.gz], …-labels-idx1-ubyte[.gz]).")
    var source: String = MNISTFormat.fashionMNISTDirectory

    @Option(help: "Seed of the placement coins.")
    var seed: UInt64 = 0

    @Flag(help: "BlockMNIST-Top: every signal block on top.")
    var top = false

    @Option(help: "Source classes to keep, comma-separated (relabelled 0..<count in this order), or 'all'.")
    var classes: String = "0,1"

    @Option(help: "First row/col of the null block's square outline.") var nullFirst = 9
    @Option(help: "Last row/col of the null block's square outline.") var nullLast = 18
    @Option(help: "Value of the outline, in [0, 1].") var nullValue = 1.0
    @Option(help: "Thickness of the outline in pixels.") var nullThickness = 1

    @Option(help: "Use only the first N source training images.") var trainLimit: Int?
    @Option(help: "Use only the first N source test images.") var testLimit: Int?

    func validate() throws {
        if classes != "all" {
            let parts = classes.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !parts.isEmpty, parts.allSatisfy({ $0 != nil && $0! >= 0 }), Set(parts).count == parts.count, parts.count >= 2 else {
                throw ValidationError("--classes must be 'all' or ≥ 2 distinct non-negative integers separated by commas, got '\(classes)'")
            }
        }
        guard nullValue.isFinite, nullValue >= 0, nullValue <= 1 else { throw ValidationError("--null-value must lie in [0, 1], got \(nullValue)") }
        for (n, v) in [("train-limit", trainLimit), ("test-limit", testLimit)] {
            if let v, v < 1 { throw ValidationError("--\(n) must be ≥ 1, got \(v)") }
        }
    }

    var config: BlockMNIST {
        var c = BlockMNIST()
        c.seed = seed
        c.placement = top ? .top : .random
        c.classes = classes == "all" ? nil : classes.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces))! }
        c.nullFirst = nullFirst
        c.nullLast = nullLast
        c.nullValue = nullValue
        c.nullThickness = nullThickness
        return c
    }

    /// Loads the source splits and generates both BlockMNIST splits (train stream 0, test stream 1).
    func generate() throws -> (BlockMNIST, BlockMNIST.Split, BlockMNIST.Split) {
        let cfg = config
        _ = try cfg.nullBlock()
        let train = try cfg.generate(from: MNISTFormat.load(directory: source, split: .train, limit: trainLimit), stream: 0)
        let test = try cfg.generate(from: MNISTFormat.load(directory: source, split: .test, limit: testLimit), stream: 1)
        for (n, s) in [("training", train), ("test", test)] where s.labels.isEmpty {
            throw InputError(file: source, object: "\(n) split", "no image of classes \(classes)")
        }
        return (cfg, train, test)
    }
}

struct BlockMNISTExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write BlockMNIST (train and test) to HDF5 with the per-image signal location.",
        discussion: """
            Layout: /train/images [n, 2R, C] (uint8 pixel values with attribute pixel_scale = 1/255, or float32 in [0, 1]), \
            /train/labels (int64), /train/signal_top (uint8, 1 = signal on top), /train/source_index (int64), the same \
            under /test, and /null_block. Every setting is stored as a file attribute. The file is written atomically.
            """)

    @OptionGroup var data: BlockMNISTOptions

    @Option(name: .shortAndLong, help: "Output HDF5 file.")
    var out: String

    @Option(help: "Pixel storage: uint8 (exact source values) or float32 ([0, 1]).")
    var dtype: String = "uint8"

    func validate() throws {
        guard BlockMNISTExport.PixelType(rawValue: dtype) != nil else { throw ValidationError("--dtype must be uint8 or float32, got '\(dtype)'") }
    }

    @OptionGroup var resources: ResourceOptions

    func run() throws {
        resources.apply()
        try SafeOutput.prepare(out)
        let (cfg, train, test) = try data.generate()
        try BlockMNISTExport.write(cfg, train: train, test: test, sourceDescription: data.source,
                                   pixelType: BlockMNISTExport.PixelType(rawValue: dtype)!, to: out)
        let onTop = train.signalTop.filter { $0 }.count
        print("wrote \(out): \(cfg.placement == .top ? "BlockMNIST-Top" : "BlockMNIST"), train \(train.images.shape), test \(test.images.shape), " +
              "\(train.labels.max()! + 1) classes, signal on top in \(onTop)/\(train.labels.count) training images")
    }
}
