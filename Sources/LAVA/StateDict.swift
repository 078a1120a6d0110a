// PyTorch state dicts of the LAVA networks as HDF5 (one dataset per tensor, named as in the state dict), their expected
// shapes, and the weight source the network functions read from (a protocol case or a loaded state dict).

import Certification
import Foundation
import HDF5
import Ops
import Tensor

/// Channel widths and head sizes of a LAVA network. The official networks: widths [1, 32, 64, 128, 256], hidden 128,
/// K = 3 (ADA) or 6 (ADMR). Layer indices follow the official nn.Sequential modules.
public struct LAVAArchitecture: Sendable, Equatable {
    /// [1, c1, c2, c3, c4].
    public var channels: [Int]
    public var hidden: Int
    public var classes: Int

    public init(channels: [Int], hidden: Int = 128, classes: Int = 3) throws {
        guard channels.count == 5, channels[0] == 1, channels.allSatisfy({ $0 >= 1 }) else {
            throw ShapeError("lava", "channels must be [1, c1, c2, c3, c4] with positive widths, found \(channels)")
        }
        guard hidden >= 1, classes >= 1 else { throw ShapeError("lava", "hidden and classes must be ≥ 1, found \(hidden), \(classes)") }
        self.channels = channels
        self.hidden = hidden
        self.classes = classes
    }

    public static let officialChannels = [1, 32, 64, 128, 256]
    public static let ada = try! LAVAArchitecture(channels: officialChannels, hidden: 128, classes: 3)
    public static let admr = try! LAVAArchitecture(channels: officialChannels, hidden: 128, classes: 6)

    /// Encoder Conv1d indices and BatchNorm1d indices (autoencoder.py: Sequential 0–11).
    public static let encoderConv = [0, 3, 6, 9], encoderBN = [1, 4, 7, 10]
    /// Decoder ConvTranspose1d and BatchNorm1d indices; 9 is Dropout(0.3), 10 the last ConvTranspose1d, 11 Tanh.
    public static let decoderConv = [0, 3, 6], decoderBN = [1, 4, 7], decoderLast = 10

    /// Learnable encoder tensors (conv weight/bias, BN γ/β) with shapes, in state-dict order.
    public var encoderWeights: [(String, [Int])] {
        var out: [(String, [Int])] = []
        for i in 0..<4 {
            let (c, b) = (Self.encoderConv[i], Self.encoderBN[i])
            out += [("encoder.\(c).weight", [channels[i + 1], channels[i], 9]), ("encoder.\(c).bias", [channels[i + 1]]),
                    ("encoder.\(b).weight", [channels[i + 1]]), ("encoder.\(b).bias", [channels[i + 1]])]
        }
        return out.sorted { Self.order($0.0, $1.0) }
    }

    /// Encoder BN running statistics.
    public var encoderStatistics: [(String, [Int])] {
        (0..<4).flatMap { i in ["running_mean", "running_var"].map { ("encoder.\(Self.encoderBN[i]).\($0)", [channels[i + 1]]) } }
    }

    public var decoderWeights: [(String, [Int])] {
        var out: [(String, [Int])] = []
        for j in 0..<3 {
            let (c, b) = (Self.decoderConv[j], Self.decoderBN[j])
            let (cin, cout) = (channels[4 - j], channels[3 - j])
            out += [("decoder.\(c).weight", [cin, cout, 9]), ("decoder.\(c).bias", [cout]),
                    ("decoder.\(b).weight", [cout]), ("decoder.\(b).bias", [cout])]
        }
        out += [("decoder.10.weight", [channels[1], 1, 9]), ("decoder.10.bias", [1])]
        return out.sorted { Self.order($0.0, $1.0) }
    }

    public var decoderStatistics: [(String, [Int])] {
        (0..<3).flatMap { j in ["running_mean", "running_var"].map { ("decoder.\(Self.decoderBN[j]).\($0)", [channels[3 - j]]) } }
    }

    /// Head tensors (attention gate and classifier) with shapes.
    public var headWeights: [(String, [Int])] {
        let c = channels[4]
        return [("attention.0.weight", [c, c, 1]), ("attention.0.bias", [c]), ("classifier.2.weight", [hidden, c]),
                ("classifier.2.bias", [hidden]), ("classifier.4.weight", [classes, hidden]), ("classifier.4.bias", [classes])]
    }

    /// The tensors the official code trains in the heads: the last encoder BN's affine, the gate and the classifier.
    public static let headTrainable = ["encoder.10.weight", "encoder.10.bias", "attention.0.weight", "attention.0.bias",
                                       "classifier.2.weight", "classifier.2.bias", "classifier.4.weight", "classifier.4.bias"]

    static func order(_ a: String, _ b: String) -> Bool {
        let pa = a.split(separator: "."), pb = b.split(separator: ".")
        if pa[0] != pb[0] { return pa[0] < pb[0] }
        if let ia = Int(pa[1]), let ib = Int(pb[1]), ia != ib { return ia < ib }
        return a < b
    }
}

/// Where the network functions read their tensors: `v` gives a tape variable (a leaf when differentiated),
/// `t` a constant tensor (running statistics).
public struct Weights {
    public var v: (String) throws -> Var
    public var t: (String) throws -> Tensor
    public init(v: @escaping (String) throws -> Var, t: @escaping (String) throws -> Tensor) {
        self.v = v
        self.t = t
    }

    /// A protocol case's tensors. Each name maps to one tape variable however often it is read (the context makes a
    /// fresh constant per read for names that are not differentiated), so gradients taken inside a method reach it.
    public static func context(_ ctx: Context) -> Weights {
        final class Cache: @unchecked Sendable { var vars: [String: Var] = [:] }
        let cache = Cache()
        return Weights(v: { name in
            if let v = cache.vars[name] { return v }
            let v = try ctx.v(name)
            cache.vars[name] = v
            return v
        }, t: { try ctx.tensor($0) })
    }

    /// A state dict's tensors as constants on `tape`.
    public static func stateDict(_ sd: StateDict, tape: Tape) -> Weights {
        Weights(v: { tape.constant(try sd.tensor($0)) }, t: { try sd.tensor($0) })
    }
}

/// A PyTorch state dict read from HDF5: one dataset per tensor at the root, named as in the state dict.
public struct StateDict: Sendable {
    public var tensors: [String: Tensor]
    /// The file it came from (for error messages).
    public var source: String

    public init(tensors: [String: Tensor], source: String) {
        self.tensors = tensors
        self.source = source
    }

    /// Reads every numeric dataset at the root of an HDF5 file (float32/float64/integers as Float64).
    public static func load(_ path: String) throws -> StateDict {
        guard FileManager.default.fileExists(atPath: path) else {
            throw InputError(file: path, object: "file", "not found; expected an HDF5 state dict (see golden/generate/lava_convert.py)")
        }
        let f = try File.open(path)
        var out: [String: Tensor] = [:]
        for name in try f.root.children() where f.root.isDataset(name) {
            let ds = try f.dataset(name)
            let dt = try ds.dtype
            guard dt != .string else { continue }
            out[name] = try Tensor(shape: try ds.shape, data: try ds.readDoubles())
        }
        return StateDict(tensors: out, source: path)
    }

    /// A tensor by name, or an error naming it.
    public func tensor(_ name: String) throws -> Tensor {
        guard let t = tensors[name] else {
            throw InputError(file: source, object: "/\(name)", "missing tensor in the state dict")
        }
        return t
    }

    /// Requires every named tensor with its shape; the error names the tensor, the expected and the found shape.
    public func validate(_ expected: [(String, [Int])], what: String) throws {
        for (name, shape) in expected {
            guard let t = tensors[name] else {
                throw InputError(file: source, object: "/\(name)", "missing tensor; \(what) needs it with shape \(shape)")
            }
            guard t.shape == shape else {
                throw InputError(file: source, object: "/\(name)", "wrong shape \(t.shape); \(what) needs \(shape)")
            }
            if let i = t.data.firstIndex(where: { !$0.isFinite }) {
                throw InputError(file: source, object: "/\(name)", "element \(i) is \(t.data[i]); expected finite weights")
            }
        }
    }
}
