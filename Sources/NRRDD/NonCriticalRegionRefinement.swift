// NRR-DD's Non-Critical Region Refinement (§3): masked gradient steps on L_C = CE + α_bn·L_bn, the
// mask M = max(0, ε − C) freezing the critical (high-CAM) pixels; L_bn as in SRe2L's BN hooks.

import Foundation
import Ops
import Tensor

public enum RefinementOptimizer: Int, Sendable, CaseIterable {
    /// x ← x − η·M ⊙ ∇L_C.
    case gradientDescent = 0
    /// torch.optim.Adam's moments (β 0.9, 0.999, eps 1e−8); the mask multiplies the update.
    case adam = 1
}

public struct RefinementConfig: Sendable, Equatable {
    public var epsilon: Double
    public var eta: Double
    public var steps: Int
    public var alphaBN: Double
    public var firstBNMultiplier: Double = 10
    public var optimizer: RefinementOptimizer = .gradientDescent
    public var recomputeCAM = false
    /// Clamp written pixels to this range (nil: no clipping).
    public var clip: ClosedRange<Double>? = nil

    public init(epsilon: Double, eta: Double, steps: Int, alphaBN: Double, firstBNMultiplier: Double = 10,
                optimizer: RefinementOptimizer = .gradientDescent, recomputeCAM: Bool = false, clip: ClosedRange<Double>? = nil) {
        (self.epsilon, self.eta, self.steps, self.alphaBN) = (epsilon, eta, steps, alphaBN)
        (self.firstBNMultiplier, self.optimizer, self.recomputeCAM, self.clip) = (firstBNMultiplier, optimizer, recomputeCAM, clip)
    }

    /// ε ∈ [0, 1] (the protocol's contract), η, α_bn ≥ 0, steps ≥ 0. `allowNegativeEpsilon` admits ε < 0 (no change).
    public func validate(allowNegativeEpsilon: Bool = false) throws {
        try check(epsilon.isFinite && epsilon <= 1 && (allowNegativeEpsilon || epsilon >= 0), "epsilon", "in [0, 1]", epsilon)
        try check(eta.isFinite && eta >= 0, "eta", "finite and ≥ 0", eta)
        try check(steps >= 0, "steps", "≥ 0", steps)
        try check(alphaBN.isFinite && alphaBN >= 0, "alpha_bn", "finite and ≥ 0", alphaBN)
        try check(firstBNMultiplier.isFinite && firstBNMultiplier >= 0, "first_bn_multiplier", "finite and ≥ 0", firstBNMultiplier)
        if let c = clip { try check(c.lowerBound.isFinite && c.upperBound.isFinite, "clip_min/clip_max", "finite", c) }
    }
}

public enum NonCriticalRegionRefinement {
    /// ‖v‖₂ on the tape (the gradient v/‖v‖ is undefined at 0; torch gives 0 there, as here).
    static func norm2(_ v: Var) throws -> Var {
        let s = try sum(v * v)
        return unary(s, { $0.squareRoot() }, derivative: { _, y in y > 0 ? 0.5 / y : 0 })
    }

    /// L_bn = Σ_l r_l (‖μ_l − μ_l^run‖₂ + ‖σ²_l − σ²_l^run‖₂), statistics over (N, H, W), biased variance (SRe2L).
    public static func bnLoss(bnInputs: [Var], runningMean: [Tensor], runningVar: [Tensor], firstMultiplier: Double) throws -> Var {
        var total: Var?
        for (l, a) in bnInputs.enumerated() {
            let mu = try mean(a, axes: [0, 2, 3], keepDims: true)
            let centred = try a - mu
            let variance = try mean(centred * centred, axes: [0, 2, 3])
            let c = a.shape[1]
            let tape = a.tape
            let term = try norm2(variance - tape.constant(runningVar[l])) + norm2(reshape(mu, [c]) - tape.constant(runningMean[l]))
            let weighted = l == 0 ? term * firstMultiplier : term
            total = try total.map { try $0 + weighted } ?? weighted
        }
        return total!
    }

    public struct Objective {
        public var total: Var, ce: Var, bn: Var, features: Var
    }

    /// L_C = CE(T(x), y) (mean) + α_bn·L_bn at x (on x's tape; teacher weights constant).
    public static func objective(_ x: Var, labels: [Int], teacher: NRRTeacher, alphaBN: Double, firstMultiplier: Double) throws -> Objective {
        let tape = x.tape
        let o = try teacher.forward(x, teacher.parameters.map { tape.constant($0.value) })
        let ce = try crossEntropy(o.logits, target: Tensor(labels.map(Double.init)))
        let bn = try bnLoss(bnInputs: o.bnInputs, runningMean: teacher.runningMean, runningVar: teacher.runningVar, firstMultiplier: firstMultiplier)
        return Objective(total: try ce + bn * alphaBN, ce: ce, bn: bn, features: o.features)
    }

    /// M = max(0, ε − C) as [N, 1, H, W] from the teacher's features.
    public static func mask(features: Tensor, labels: [Int], teacher: NRRTeacher, height: Int, width: Int, epsilon: Double) throws -> Tensor {
        let tape = Tape()
        let a = try ClassActivationMap.raw(features: tape.constant(features), fcWeight: tape.constant(teacher.fcWeight), labels: labels)
        let c = try ClassActivationMap.normalised(raw: a.value, height: height, width: width)
        return Tensor(unchecked: [labels.count, 1, height, width], c.data.map { Swift.max(0, epsilon - $0) })
    }

    /// Runs `steps` NRR steps from x. Returns the refined images, the initial mask and L_C before each step.
    public static func refine(_ x0: Tensor, labels: [Int], teacher: NRRTeacher, config: RefinementConfig,
                              allowNegativeEpsilon: Bool = false) throws -> (refined: Tensor, mask: Tensor, losses: [Double]) {
        try config.validate(allowNegativeEpsilon: allowNegativeEpsilon)
        guard x0.rank == 4 else { throw NRRDDError.parameter("x", "shape [N, C, H, W]", x0.shape) }
        try check(x0.data.allSatisfy(\.isFinite), "x", "finite pixels", "NaN or infinity")
        try check(labels.count == x0.shape[0], "labels", "one per image (\(x0.shape[0]))", labels.count)
        for y in labels { try check(y >= 0 && y < teacher.classes, "labels", "class indices in [0, \(teacher.classes))", y) }
        let (n, c, h, w) = (x0.shape[0], x0.shape[1], x0.shape[2], x0.shape[3])
        let plane = h * w
        var x = x0
        var m1 = [Double](repeating: 0, count: x.count), m2 = m1
        var losses: [Double] = []
        var initialMask: Tensor?
        var mask = Tensor(zeros: [n, 1, h, w])
        let (b1, b2, adamEps) = (0.9, 0.999, 1e-8)
        func evaluate(_ x: Tensor) throws -> (loss: Double, grad: Tensor, features: Tensor) {
            let tape = Tape()
            let xv = tape.leaf(x)
            let obj = try objective(xv, labels: labels, teacher: teacher, alphaBN: config.alphaBN, firstMultiplier: config.firstBNMultiplier)
            let g = try tape.gradients(of: obj.total, wrt: [xv])[0]
            return (obj.total.value.data[0], g, obj.features.value)
        }
        if config.steps == 0 {
            let (tape, o) = try teacher.forward(x0)
            _ = tape
            mask = try self.mask(features: o.features.value, labels: labels, teacher: teacher, height: h, width: w, epsilon: config.epsilon)
            return (x0, mask, [])
        }
        for step in 1...config.steps {
            let e = try evaluate(x)
            losses.append(e.loss)
            if initialMask == nil || config.recomputeCAM {
                mask = try self.mask(features: e.features, labels: labels, teacher: teacher, height: h, width: w, epsilon: config.epsilon)
                if initialMask == nil { initialMask = mask }
            }
            let g = e.grad.data
            let bc1 = 1 - Foundation.pow(b1, Double(step)), bc2 = 1 - Foundation.pow(b2, Double(step))
            for i in 0..<x.count {
                if config.optimizer == .adam {
                    m1[i] = b1 * m1[i] + (1 - b1) * g[i]
                    m2[i] = b2 * m2[i] + (1 - b2) * g[i] * g[i]
                }
                let mk = mask.data[(i / (c * plane)) * plane + i % plane]
                guard mk > 0 else { continue }
                let update: Double
                switch config.optimizer {
                case .gradientDescent: update = config.eta * g[i]
                case .adam:
                    let denom = m2[i].squareRoot() / bc2.squareRoot() + adamEps
                    update = (config.eta / bc1) * (m1[i] / denom)
                }
                var v = x.data[i] - mk * update
                if let r = config.clip { v = Swift.min(Swift.max(v, r.lowerBound), r.upperBound) }
                x.data[i] = v
            }
        }
        return (x, initialMask!, losses)
    }
}
