// BlockMNIST (Shah, Jain & Netrapalli, NeurIPS 2021, §4): each image stacks a signal block (an
// MNIST-format image that determines the label) and a null block (one fixed, non-discriminative
// pattern) vertically; the signal sits on top or at the bottom by a fair coin per image.
// BlockMNIST-Top always puts the signal on top. The official repository never released the data or
// a generator (harshays/inputgradients issue #3), so every unknown below is a documented parameter:
//   - blocks are the source images' size (28×28 → 56×28), pixels in [0, 1];
//   - the null block is a square outline of value `nullValue` (default 1.0), `nullThickness` pixels
//     thick (default 1), on rows/cols `nullFirst`…`nullLast` (default 9…18) of a zero block;
//   - classes default to [0, 1] (binary, the team's recollection of the paper), relabelled 0..<C in
//     the order given;
//   - coin: signal on top ⇔ RNG(seed).uniform() < 0.5, one draw per kept image in source order.

import Certification
import Foundation
import HDF5
import Tensor

public struct BlockMNIST: Sendable, Equatable {
    public enum Placement: String, Sendable, CaseIterable {
        /// BlockMNIST: signal on top or bottom by a fair coin.
        case random
        /// BlockMNIST-Top: signal always on top.
        case top
    }

    public var placement: Placement = .random
    public var nullFirst = 9
    public var nullLast = 18
    public var nullValue = 1.0
    public var nullThickness = 1
    /// Source classes kept (relabelled 0..<count in this order); nil keeps every class unchanged.
    public var classes: [Int]? = [0, 1]
    public var seed: UInt64 = 0

    public init() {}

    /// The null block: zeros with a square outline of `nullValue` (rows/cols nullFirst…nullLast).
    public func nullBlock(rows: Int = 28, cols: Int = 28) throws -> Tensor {
        guard nullFirst >= 0, nullFirst <= nullLast, nullLast < Swift.min(rows, cols), nullThickness >= 1 else {
            throw ShapeError("BlockMNIST.nullBlock", "outline rows/cols \(nullFirst)…\(nullLast) (thickness \(nullThickness)) do not fit a \(rows)×\(cols) block")
        }
        var b = [Double](repeating: 0, count: rows * cols)
        for r in nullFirst...nullLast {
            for c in nullFirst...nullLast {
                let edge = Swift.min(r - nullFirst, nullLast - r, c - nullFirst, nullLast - c)
                if edge < nullThickness { b[r * cols + c] = nullValue }
            }
        }
        return Tensor(unchecked: [rows, cols], b)
    }

    /// Stacks each signal image [n, R, C] with the null block [R, C]: signal rows 0..<R when
    /// signalTop[i], else rows R..<2R. Result [n, 2R, C].
    public static func compose(signal: Tensor, signalTop: [Bool], null: Tensor) throws -> Tensor {
        guard signal.rank == 3 else { throw ShapeError("BlockMNIST.compose", "signal must be [n, rows, cols], found \(signal.shape)") }
        let (n, r, c) = (signal.shape[0], signal.shape[1], signal.shape[2])
        guard null.shape == [r, c] else { throw ShapeError("BlockMNIST.compose", "null block \(null.shape) does not match signal blocks [\(r), \(c)]") }
        guard signalTop.count == n else { throw ShapeError("BlockMNIST.compose", "\(signalTop.count) placements for \(n) images") }
        let block = r * c
        var out = [Double](repeating: 0, count: n * 2 * block)
        signal.data.withUnsafeBufferPointer { s in
            null.data.withUnsafeBufferPointer { z in
                out.withUnsafeMutableBufferPointer { o in
                    for i in 0..<n {
                        let base = i * 2 * block
                        let (sigOff, nullOff) = signalTop[i] ? (base, base + block) : (base + block, base)
                        for j in 0..<block {
                            o[sigOff + j] = s[i * block + j]
                            o[nullOff + j] = z[j]
                        }
                    }
                }
            }
        }
        return Tensor(unchecked: [n, 2 * r, c], out)
    }

    /// Per-pixel indicator of the null block for each image ([n, 2R, C]; 1 in the null block).
    public static func nullMask(signalTop: [Bool], rows: Int, cols: Int) -> Tensor {
        let block = rows * cols
        var out = [Double](repeating: 0, count: signalTop.count * 2 * block)
        for (i, top) in signalTop.enumerated() {
            let off = i * 2 * block + (top ? block : 0)
            for j in 0..<block { out[off + j] = 1 }
        }
        return Tensor(unchecked: [signalTop.count, 2 * rows, cols], out)
    }

    /// The coin flips for `n` images (all true for BlockMNIST-Top).
    public func placements(_ n: Int, rng: inout RNG) -> [Bool] {
        (0..<n).map { _ in placement == .top ? true : rng.uniform() < 0.5 }
    }

    /// A generated split: images [n, 2R, C], labels, placements and the source index of each image.
    public struct Split: Sendable {
        public var images: Tensor
        public var labels: [Int]
        public var signalTop: [Bool]
        public var sourceIndex: [Int]
    }

    /// Builds BlockMNIST from a source split. `stream` separates the coin streams of different splits
    /// (train 0, test 1) under one seed.
    public func generate(from source: ImageDataset, stream: UInt64) throws -> Split {
        var keep: [Int] = []
        var labels: [Int] = []
        for (i, y) in source.labels.enumerated() {
            if let cls = classes {
                if let j = cls.firstIndex(of: y) { keep.append(i); labels.append(j) }
            } else {
                keep.append(i); labels.append(y)
            }
        }
        let (r, c) = (source.images.shape[1], source.images.shape[2])
        let block = r * c
        var sig = [Double](repeating: 0, count: keep.count * block)
        source.images.data.withUnsafeBufferPointer { s in
            for (k, i) in keep.enumerated() {
                for j in 0..<block { sig[k * block + j] = s[i * block + j] }
            }
        }
        var rng = RNG(seed: seed &+ stream &* 0x9E37_79B9_7F4A_7C15)
        let top = placements(keep.count, rng: &rng)
        let images = try BlockMNIST.compose(signal: Tensor(unchecked: [keep.count, r, c], sig), signalTop: top,
                                            null: try nullBlock(rows: r, cols: c))
        return Split(images: images, labels: labels, signalTop: top, sourceIndex: keep)
    }
}

// MARK: - Protocol entry

/// Two synthetic source classes for property checks: class 0 bright on the left half, class 1 on the right.
func syntheticTwoClassSource(n: Int, rows: Int, cols: Int, rng: inout RNG) -> ImageDataset {
    var px = [Double](repeating: 0, count: n * rows * cols)
    var labels: [Int] = []
    for i in 0..<n {
        let y = rng.int(below: 2)
        labels.append(y)
        for r in 0..<rows {
            for c in 0..<cols where (c < cols / 2) == (y == 0) { px[(i * rows + r) * cols + c] = rng.uniform(0.5, 1) }
        }
    }
    return ImageDataset(images: Tensor(unchecked: [n, rows, cols], px), labels: labels)
}

let blockMNISTMethod = Method("input_gradients.blockmnist", properties: [
    Property("one_signal_block") { rng in
        var cfg = BlockMNIST()
        cfg.seed = rng.next()
        cfg.placement = rng.bernoulli(0.5) ? .random : .top
        let (r, c) = (20 + rng.int(below: 9), 20 + rng.int(below: 9))
        let src = syntheticTwoClassSource(n: 1 + rng.int(below: 20), rows: r, cols: c, rng: &rng)
        let s = try cfg.generate(from: src, stream: 0)
        let null = try cfg.nullBlock(rows: r, cols: c)
        for (i, top) in s.signalTop.enumerated() {
            let img = s.images.data[(i * 2 * r * c)..<((i + 1) * 2 * r * c)]
            let upper = Array(img.prefix(r * c)), lower = Array(img.suffix(r * c))
            let sig = Array(src.images.data[(s.sourceIndex[i] * r * c)..<((s.sourceIndex[i] + 1) * r * c)])
            try require((top ? upper : lower) == sig, "image \(i): the signal block is not the source image")
            try require((top ? lower : upper) == null.data, "image \(i): the other block is not the null block")
            try require(cfg.placement == .random || top, "BlockMNIST-Top put a signal at the bottom")
        }
    },
    Property("null_identical") { rng in
        var cfg = BlockMNIST()
        cfg.seed = rng.next()
        cfg.nullFirst = rng.int(below: 5)
        cfg.nullLast = cfg.nullFirst + rng.int(below: 10)
        cfg.nullThickness = 1 + rng.int(below: 3)
        let src = syntheticTwoClassSource(n: 2 + rng.int(below: 20), rows: 16, cols: 16, rng: &rng)
        let s = try cfg.generate(from: src, stream: 1)
        let mask = BlockMNIST.nullMask(signalTop: s.signalTop, rows: 16, cols: 16)
        var first: [UInt64]? = nil
        for i in 0..<s.labels.count {
            let vals = (0..<(32 * 16)).filter { mask.data[i * 512 + $0] == 1 }.map { s.images.data[i * 512 + $0].bitPattern }
            try require(vals.count == 256, "null mask of image \(i) covers \(vals.count) pixels")
            if let f = first { try require(vals == f, "null block of image \(i) differs from image 0") } else { first = vals }
        }
    },
    Property("fair_coin") { rng in
        var cfg = BlockMNIST()
        cfg.seed = rng.next()
        var coinRNG = RNG(seed: cfg.seed)
        let top = cfg.placements(4000, rng: &coinRNG)
        let p = Double(top.filter { $0 }.count) / 4000
        try require(Swift.abs(p - 0.5) < 4 * (0.25 / 4000).squareRoot(), "P(signal on top) = \(p) over 4000 coins")
        cfg.placement = .top
        try require(cfg.placements(100, rng: &coinRNG).allSatisfy { $0 }, "BlockMNIST-Top placed a signal at the bottom")
    },
    Property("null_block_uninformative") { rng in
        var cfg = BlockMNIST()
        cfg.seed = rng.next()
        let train = try cfg.generate(from: syntheticTwoClassSource(n: 400, rows: 28, cols: 28, rng: &rng), stream: 0)
        let test = try cfg.generate(from: syntheticTwoClassSource(n: 400, rows: 28, cols: 28, rng: &rng), stream: 1)
        func nullOnly(_ s: BlockMNIST.Split) -> Tensor {
            let mask = BlockMNIST.nullMask(signalTop: s.signalTop, rows: 28, cols: 28)
            var out: [Double] = []
            for i in 0..<s.labels.count { for j in 0..<(56 * 28) where mask.data[i * 56 * 28 + j] == 1 { out.append(s.images.data[i * 56 * 28 + j]) } }
            return Tensor(unchecked: [s.labels.count, 28 * 28], out)
        }
        let acc = try NearestClassMean.fitAndScore(trainX: nullOnly(train), trainY: train.labels, testX: nullOnly(test), testY: test.labels)
        let majority = Double(Swift.max(test.labels.filter { $0 == 0 }.count, test.labels.filter { $0 == 1 }.count)) / Double(test.labels.count)
        try require(acc <= majority + 1e-12, "a null-block-only classifier reaches \(acc) (> majority rate \(majority))")
        // and the full image is learnable (the check can fail)
        let full = try NearestClassMean.fitAndScore(trainX: train.images.reshaped([400, -1]), trainY: train.labels,
                                                    testX: test.images.reshaped([400, -1]), testY: test.labels)
        try require(full > 0.9, "nearest class mean on full BlockMNIST images reaches only \(full)")
    },
]) { ctx in
    let signal = try ctx.tensor("signal")
    guard signal.rank == 3 else { throw ShapeError("input_gradients.blockmnist", "signal must be [n, R, C], found \(signal.shape)") }
    var cfg = BlockMNIST()
    cfg.nullFirst = try ctx.int("null_first")
    cfg.nullLast = try ctx.int("null_last")
    cfg.nullValue = try ctx.double("null_value")
    cfg.nullThickness = try ctx.int("null_thickness")
    cfg.placement = try ctx.bool("top_only") ? .top : .random
    let coins = try ctx.tensor("signal_top").data.map { $0 != 0 }
    let top = cfg.placement == .top ? coins.map { _ in true } : coins
    let null = try cfg.nullBlock(rows: signal.shape[1], cols: signal.shape[2])
    let images = try BlockMNIST.compose(signal: signal, signalTop: top, null: null)
    return ["images": ctx.constant(images), "null_block": ctx.constant(null),
            "null_mask": ctx.constant(BlockMNIST.nullMask(signalTop: top, rows: signal.shape[1], cols: signal.shape[2]))]
}

// MARK: - HDF5 export

/// Writes BlockMNIST train and test splits to one HDF5 file, atomically (a temporary name renamed at
/// the end, so a failure never leaves a partial file). Layout:
///   /train/images [n, 2R, C] (uint8 pixel values, or float32 in [0, 1]), /train/labels int64,
///   /train/signal_top uint8 (1 = signal block on top), /train/source_index int64 (row of the source
///   IDX file); the same under /test; /null_block [R, C] float64; attributes with every setting.
public enum BlockMNISTExport {
    public enum PixelType: String, Sendable, CaseIterable { case uint8, float32 }

    public static func write(_ cfg: BlockMNIST, train: BlockMNIST.Split, test: BlockMNIST.Split, sourceDescription: String,
                             pixelType: PixelType, to path: String) throws {
        let r = train.images.shape[1] / 2, c = train.images.shape[2]
        let null = try cfg.nullBlock(rows: r, cols: c)
        if pixelType == .uint8 {
            for v in null.data where (v * 255).rounded() != v * 255 || v < 0 || v > 1 {
                throw InputError(file: path, object: "/null_block", "null value \(v) is not a multiple of 1/255 in [0, 1]; export with float32 pixels")
            }
        }
        try SafeOutput.write(path) { tmp in
            let f = try File.create(tmp)
            let a = f.attributes
            try a.write("dataset", .string(cfg.placement == .top ? "BlockMNIST-Top" : "BlockMNIST"))
            try a.write("generator", .string("certify blockmnist export (Certify InputGradients.BlockMNIST)"))
            try a.write("source", .string(sourceDescription))
            try a.write("seed", .int(Int64(bitPattern: cfg.seed)))
            try a.write("placement", .string(cfg.placement.rawValue))
            try a.write("classes", .ints((cfg.classes ?? Array(0..<10)).map(Int64.init)))
            try a.write("classes_relabelled", .int(cfg.classes == nil ? 0 : 1))
            try a.write("null_pattern", .string("square outline rows/cols \(cfg.nullFirst)..\(cfg.nullLast), thickness \(cfg.nullThickness), value \(cfg.nullValue)"))
            try a.write("pixel_scale", .double(pixelType == .uint8 ? 1.0 / 255.0 : 1.0))
            try a.write("layout", .string("images [n, 2R, C]: rows 0..<R are the top block; signal_top = 1 when the signal (source image) is the top block"))
            try f.root.write("null_block", .float64(null.data), shape: null.shape)
            for (name, s) in [("train", train), ("test", test)] {
                let pixels: ArrayData = pixelType == .uint8
                    ? .uint8(s.images.data.map { UInt8(($0 * 255).rounded()) })
                    : .float32(s.images.data.map { Float($0) })
                try f.root.write("\(name)/images", pixels, shape: s.images.shape, chunkRows: 256)
                try f.root.write("\(name)/labels", .int64(s.labels.map(Int64.init)), shape: [s.labels.count])
                try f.root.write("\(name)/signal_top", .uint8(s.signalTop.map { $0 ? 1 : 0 }), shape: [s.labels.count])
                try f.root.write("\(name)/source_index", .int64(s.sourceIndex.map(Int64.init)), shape: [s.labels.count])
            }
            try f.flush()
        }
    }

    /// Reads a split back (images scaled to [0, 1] as Float64).
    public static func read(_ path: String, split: String) throws -> (split: BlockMNIST.Split, pixelScale: Double) {
        let f = try File.open(path)
        guard f.root.isDataset("\(split)/images") else {
            throw InputError(file: path, object: "/\(split)/images", "missing dataset (not a BlockMNIST export?)")
        }
        let scale = f.attributes["pixel_scale"]?.doubleValue ?? 1
        let ids = try f.dataset("\(split)/images")
        let shape = try ids.shape
        guard shape.count == 3, shape[1] % 2 == 0 else {
            throw InputError(file: path, object: "/\(split)/images", "expected [n, 2R, C], found \(shape)")
        }
        do { try Budget.require(shape: shape, "the images") } catch let e as ShapeError {
            throw InputError(file: path, object: "/\(split)/images", e.description)
        }
        let images = Tensor(unchecked: shape, try ids.readDoubles().map { $0 * scale })
        /// Integer data, each value checked (NaN, infinities, fractions, out of range name the file, object and index).
        func integers(_ name: String, in range: ClosedRange<Int>, _ expected: String) throws -> [Int] {
            let object = "/\(split)/\(name)"
            let ds = try f.dataset("\(split)/\(name)")
            let n = try ds.count
            guard n == shape[0] else { throw InputError(file: path, object: object, "\(n) values for \(shape[0]) images; expected one per image") }
            return try ds.readDoubles().enumerated().map { i, v in
                if let p = integerProblem(v, in: range) { throw InputError(file: path, object: object, "element \(i): \(p) (\(expected))") }
                return Int(v)
            }
        }
        let labels = try integers("labels", in: 0...255, "a class index 0…255")
        let top = try f.dataset("\(split)/signal_top").readDoubles().map { $0 != 0 }
        let src = f.root.isDataset("\(split)/source_index") ? try integers("source_index", in: 0...Int(Int32.max), "an index ≥ 0") : Array(0..<labels.count)
        guard labels.count == shape[0], top.count == shape[0] else {
            throw InputError(file: path, object: "/\(split)", "\(labels.count) labels and \(top.count) placements for \(shape[0]) images")
        }
        return (BlockMNIST.Split(images: images, labels: labels, signalTop: top, sourceIndex: src), scale)
    }
}
