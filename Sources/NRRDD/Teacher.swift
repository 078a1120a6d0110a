// The teacher of Certify's NRR-DD reproduction: a small BN + GAP + FC network, so that the class
// activation map of Zhou et al. is exact: conv3×3(pad 1)–BN–ReLU–avgpool2–conv3×3(pad 1)–BN–ReLU–GAP–FC.

import Foundation
import Ops
import Tensor

/// B blocks conv3×3(pad 1)–BN–ReLU, an avgpool2 between blocks, then GAP–Linear (B = 2 or 3); BN in evaluation
/// mode unless training. The protocols' teacher has B = 2 (t_conv1_*, t_conv2_*) or B = 3 (t_conv3_* given).
public final class NRRTeacher: @unchecked Sendable {
    /// Trainable tensors in order for `blocks` blocks (the protocol names without the "t_" prefix).
    public static func trainableNames(blocks: Int) -> [String] {
        (1...blocks).flatMap { ["conv\($0)_weight", "conv\($0)_bias", "bn\($0)_weight", "bn\($0)_bias"] } + ["fc_weight", "fc_bias"]
    }
    /// Every tensor of a `blocks`-block teacher, as the protocols name them.
    public static func protocolNames(blocks: Int) -> [String] {
        (1...blocks).flatMap { ["t_conv\($0)_weight", "t_conv\($0)_bias", "t_bn\($0)_weight", "t_bn\($0)_bias", "t_bn\($0)_running_mean",
                                 "t_bn\($0)_running_var"] } + ["t_fc_weight", "t_fc_bias"]
    }
    public let blocks: Int
    public let parameters: [Parameter]
    public var runningMean: [Tensor]
    public var runningVar: [Tensor]
    public var fcWeight: Tensor { parameters[4 * blocks].value }
    public var classes: Int { fcWeight.shape[0] }
    public var channels: Int { parameters[0].value.shape[1] }

    /// Fresh weights: PyTorch's default init (U(±1/√fan_in) for conv and linear), BN γ = 1, β = 0,
    /// running mean 0 and variance 1. `widths` has one entry per block (2 or 3).
    public init(channels: Int, widths: [Int] = [16, 32], classes: Int, rng: inout RNG) throws {
        try check(channels >= 1 && (2...3).contains(widths.count) && widths.allSatisfy { $0 >= 1 } && classes >= 2, "teacher shape",
                  "channels ≥ 1, 2 or 3 widths ≥ 1 and classes ≥ 2", "\(channels), \(widths), \(classes)")
        func u(_ shape: [Int], _ fanIn: Int) -> Tensor {
            let b = 1 / Double(fanIn).squareRoot()
            return rng.uniformTensor(shape, -b, b)
        }
        var ps: [Parameter] = []
        var cin = channels
        for (i, c) in widths.enumerated() {
            ps += [Parameter("conv\(i + 1)_weight", u([c, cin, 3, 3], cin * 9)), Parameter("conv\(i + 1)_bias", u([c], cin * 9)),
                   Parameter("bn\(i + 1)_weight", Tensor(ones: [c])), Parameter("bn\(i + 1)_bias", Tensor(zeros: [c]))]
            cin = c
        }
        ps += [Parameter("fc_weight", u([classes, cin], cin)), Parameter("fc_bias", u([classes], cin))]
        blocks = widths.count
        parameters = ps
        runningMean = widths.map { Tensor(zeros: [$0]) }
        runningVar = widths.map { Tensor(ones: [$0]) }
    }

    /// From the protocol's tensors (t_conv1_weight, …; a third block when t_conv3_weight is given), checking their shapes.
    public init(protocolTensors t: [String: Tensor]) throws {
        let b = t["t_conv3_weight"] == nil ? 2 : 3
        for n in NRRTeacher.protocolNames(blocks: b) where t[n] == nil { throw NRRDDError.parameter(n, "present", "missing") }
        var cin = -1
        var ps: [Parameter] = [], rm: [Tensor] = [], rv: [Tensor] = []
        for i in 1...b {
            let w = t["t_conv\(i)_weight"]!
            try check(w.rank == 4 && w.shape[2] == 3 && w.shape[3] == 3 && (cin < 0 || w.shape[1] == cin), "t_conv\(i)_weight",
                      "shape [c\(i), \(cin < 0 ? "C" : String(cin)), 3, 3]", w.shape)
            let c = w.shape[0]
            for n in ["t_conv\(i)_bias", "t_bn\(i)_weight", "t_bn\(i)_bias", "t_bn\(i)_running_mean", "t_bn\(i)_running_var"] {
                try check(t[n]!.shape == [c], n, "shape [\(c)]", t[n]!.shape)
            }
            try check(t["t_bn\(i)_running_var"]!.data.allSatisfy { $0 > 0 }, "t_bn\(i)_running_var", "positive", t["t_bn\(i)_running_var"]!.data.min() ?? 0)
            ps += ["conv\(i)_weight", "conv\(i)_bias", "bn\(i)_weight", "bn\(i)_bias"].map { Parameter($0, t["t_" + $0]!) }
            rm.append(t["t_bn\(i)_running_mean"]!)
            rv.append(t["t_bn\(i)_running_var"]!)
            cin = c
        }
        let fc = t["t_fc_weight"]!
        try check(fc.rank == 2 && fc.shape[1] == cin, "t_fc_weight", "shape [classes, \(cin)]", fc.shape)
        try check(t["t_fc_bias"]!.shape == [fc.shape[0]], "t_fc_bias", "shape [\(fc.shape[0])]", t["t_fc_bias"]!.shape)
        ps += [Parameter("fc_weight", fc), Parameter("fc_bias", t["t_fc_bias"]!)]
        blocks = b
        parameters = ps
        runningMean = rm
        runningVar = rv
    }

    /// The tensors under their protocol names.
    public var protocolTensors: [String: Tensor] {
        var d: [String: Tensor] = [:]
        for p in parameters { d["t_" + p.name] = p.value }
        for i in 0..<blocks {
            d["t_bn\(i + 1)_running_mean"] = runningMean[i]
            d["t_bn\(i + 1)_running_var"] = runningVar[i]
        }
        return d
    }

    public struct Output {
        public var logits: Var
        /// The last feature map F (after the last ReLU, before GAP), the CAM's input.
        public var features: Var
        /// The input of each BN layer (for L_bn).
        public var bnInputs: [Var]
        /// Training mode: the updated running statistics (mean, var) per BN layer.
        public var running: [(Tensor, Tensor)]
    }

    /// The forward pass with the trainable tensors given as vars on x's tape (order `trainableNames(blocks:)`).
    public func forward(_ x: Var, _ p: [Var], training: Bool = false) throws -> Output {
        guard x.value.rank == 4, x.shape[1] == channels else {
            throw NRRDDError.parameter("images", "shape [N, \(channels), H, W] for the teacher", x.shape)
        }
        var h = x
        var bnInputs: [Var] = [], running: [(Tensor, Tensor)] = []
        for i in 0..<blocks {
            if i > 0 { h = try avgPool2d(h, kernelSize: [2, 2]) }
            let a = try conv2d(h, weight: p[4 * i], bias: p[4 * i + 1], padding: [1, 1])
            let bn = try batchNorm(a, runningMean: runningMean[i], runningVar: runningVar[i], weight: p[4 * i + 2], bias: p[4 * i + 3], training: training)
            bnInputs.append(a)
            if training, let m = bn.runningMean, let v = bn.runningVar { running.append((m, v)) }
            h = relu(bn.y)
        }
        let z = try linear(mean(h, axes: [2, 3]), weight: p[4 * blocks], bias: p[4 * blocks + 1])
        return Output(logits: z, features: h, bnInputs: bnInputs, running: running)
    }

    /// Forward with constant weights on a fresh tape.
    public func forward(_ x: Tensor) throws -> (tape: Tape, output: Output) {
        let tape = Tape()
        return (tape, try forward(tape.constant(x), parameters.map { tape.constant($0.value) }))
    }

    /// Logits in batches, evaluation mode.
    public func logits(_ x: Tensor, batchSize: Int = 500) throws -> Tensor {
        var parts: [Tensor] = []
        var s = 0
        while s < x.shape[0] {
            let e = Swift.min(s + batchSize, x.shape[0])
            parts.append(try forward(x.slice(axis: 0, s..<e)).output.logits.value)
            s = e
        }
        return try Tensor.concatenate(parts, axis: 0)
    }

    /// Accuracy (argmax, first index on ties).
    public func accuracy(_ x: Tensor, _ y: [Int]) throws -> Double {
        let z = try logits(x)
        return Double(argmaxRows(z).enumerated().filter { y[$0.offset] == $0.element }.count) / Double(y.count)
    }
}

/// Row-wise argmax (first index on ties).
func argmaxRows(_ z: Tensor) -> [Int] {
    let k = z.shape[1]
    return (0..<z.shape[0]).map { i in
        var b = 0
        for j in 1..<k where z.data[i * k + j] > z.data[i * k + b] { b = j }
        return b
    }
}
