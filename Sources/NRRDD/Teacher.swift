// The teacher of Certify's NRR-DD reproduction: a small BN + GAP + FC network, so that the class
// activation map of Zhou et al. is exact: conv3×3(pad 1)–BN–ReLU–avgpool2–conv3×3(pad 1)–BN–ReLU–GAP–FC.

import Foundation
import Ops
import Tensor

/// conv3×3–BN–ReLU–avgpool2–conv3×3–BN–ReLU–GAP–Linear; BN in evaluation mode unless training.
public final class NRRTeacher: @unchecked Sendable {
    /// Trainable tensors in order (the protocol names without the "t_" prefix).
    public static let trainableNames = ["conv1_weight", "conv1_bias", "bn1_weight", "bn1_bias",
                                        "conv2_weight", "conv2_bias", "bn2_weight", "bn2_bias", "fc_weight", "fc_bias"]
    /// Every tensor, as the protocols name them.
    public static let protocolNames = ["t_conv1_weight", "t_conv1_bias", "t_bn1_weight", "t_bn1_bias", "t_bn1_running_mean",
                                       "t_bn1_running_var", "t_conv2_weight", "t_conv2_bias", "t_bn2_weight", "t_bn2_bias",
                                       "t_bn2_running_mean", "t_bn2_running_var", "t_fc_weight", "t_fc_bias"]
    public let parameters: [Parameter]
    public var runningMean: [Tensor]
    public var runningVar: [Tensor]
    public var classes: Int { parameters[8].value.shape[0] }
    public var channels: Int { parameters[0].value.shape[1] }

    /// Fresh weights: PyTorch's default init (U(±1/√fan_in) for conv and linear), BN γ = 1, β = 0,
    /// running mean 0 and variance 1.
    public init(channels: Int, widths: (Int, Int) = (16, 32), classes: Int, rng: inout RNG) throws {
        try check(channels >= 1 && widths.0 >= 1 && widths.1 >= 1 && classes >= 2, "teacher shape", "channels, widths ≥ 1 and classes ≥ 2",
                  "\(channels), \(widths), \(classes)")
        func u(_ shape: [Int], _ fanIn: Int) -> Tensor {
            let b = 1 / Double(fanIn).squareRoot()
            return rng.uniformTensor(shape, -b, b)
        }
        let (c1, c2) = widths
        parameters = [
            Parameter("conv1_weight", u([c1, channels, 3, 3], channels * 9)), Parameter("conv1_bias", u([c1], channels * 9)),
            Parameter("bn1_weight", Tensor(ones: [c1])), Parameter("bn1_bias", Tensor(zeros: [c1])),
            Parameter("conv2_weight", u([c2, c1, 3, 3], c1 * 9)), Parameter("conv2_bias", u([c2], c1 * 9)),
            Parameter("bn2_weight", Tensor(ones: [c2])), Parameter("bn2_bias", Tensor(zeros: [c2])),
            Parameter("fc_weight", u([classes, c2], c2)), Parameter("fc_bias", u([classes], c2)),
        ]
        runningMean = [Tensor(zeros: [c1]), Tensor(zeros: [c2])]
        runningVar = [Tensor(ones: [c1]), Tensor(ones: [c2])]
    }

    /// From the protocol's tensors (t_conv1_weight, …), checking their shapes.
    public init(protocolTensors t: [String: Tensor]) throws {
        for n in NRRTeacher.protocolNames where t[n] == nil { throw NRRDDError.parameter(n, "present", "missing") }
        let w1 = t["t_conv1_weight"]!, w2 = t["t_conv2_weight"]!, fc = t["t_fc_weight"]!
        try check(w1.rank == 4 && w1.shape[2] == 3 && w1.shape[3] == 3, "t_conv1_weight", "shape [c1, C, 3, 3]", w1.shape)
        let c1 = w1.shape[0]
        try check(w2.rank == 4 && w2.shape[1] == c1 && w2.shape[2] == 3 && w2.shape[3] == 3, "t_conv2_weight", "shape [c2, \(c1), 3, 3]", w2.shape)
        let c2 = w2.shape[0]
        try check(fc.rank == 2 && fc.shape[1] == c2, "t_fc_weight", "shape [classes, \(c2)]", fc.shape)
        let expect: [(String, Int)] = [("t_conv1_bias", c1), ("t_bn1_weight", c1), ("t_bn1_bias", c1), ("t_bn1_running_mean", c1),
                                       ("t_bn1_running_var", c1), ("t_conv2_bias", c2), ("t_bn2_weight", c2), ("t_bn2_bias", c2),
                                       ("t_bn2_running_mean", c2), ("t_bn2_running_var", c2), ("t_fc_bias", fc.shape[0])]
        for (n, c) in expect { try check(t[n]!.shape == [c], n, "shape [\(c)]", t[n]!.shape) }
        for n in ["t_bn1_running_var", "t_bn2_running_var"] {
            try check(t[n]!.data.allSatisfy { $0 > 0 }, n, "positive", t[n]!.data.min() ?? 0)
        }
        parameters = NRRTeacher.trainableNames.map { Parameter($0, t["t_" + $0]!) }
        runningMean = [t["t_bn1_running_mean"]!, t["t_bn2_running_mean"]!]
        runningVar = [t["t_bn1_running_var"]!, t["t_bn2_running_var"]!]
    }

    /// The tensors under their protocol names.
    public var protocolTensors: [String: Tensor] {
        var d: [String: Tensor] = [:]
        for p in parameters { d["t_" + p.name] = p.value }
        d["t_bn1_running_mean"] = runningMean[0]
        d["t_bn1_running_var"] = runningVar[0]
        d["t_bn2_running_mean"] = runningMean[1]
        d["t_bn2_running_var"] = runningVar[1]
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

    /// The forward pass with the trainable tensors given as vars on x's tape (order `trainableNames`).
    public func forward(_ x: Var, _ p: [Var], training: Bool = false) throws -> Output {
        guard x.value.rank == 4, x.shape[1] == channels else {
            throw NRRDDError.parameter("images", "shape [N, \(channels), H, W] for the teacher", x.shape)
        }
        let a1 = try conv2d(x, weight: p[0], bias: p[1], padding: [1, 1])
        let b1 = try batchNorm(a1, runningMean: runningMean[0], runningVar: runningVar[0], weight: p[2], bias: p[3], training: training)
        let h = try avgPool2d(relu(b1.y), kernelSize: [2, 2])
        let a2 = try conv2d(h, weight: p[4], bias: p[5], padding: [1, 1])
        let b2 = try batchNorm(a2, runningMean: runningMean[1], runningVar: runningVar[1], weight: p[6], bias: p[7], training: training)
        let f = relu(b2.y)
        let z = try linear(mean(f, axes: [2, 3]), weight: p[8], bias: p[9])
        var running: [(Tensor, Tensor)] = []
        if training, let m1 = b1.runningMean, let v1 = b1.runningVar, let m2 = b2.runningMean, let v2 = b2.runningVar {
            running = [(m1, v1), (m2, v2)]
        }
        return Output(logits: z, features: f, bnInputs: [a1, a2], running: running)
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
