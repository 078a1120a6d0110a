// Categorical Style Assembly (CSA), IADG §3.2: class-matched base styles mixed with Dirichlet weights,
// applied with AdaIN.
//
// Official code: models/framework.py CSA.forward (L23–74) and CSABlock.forward (L76–100):
//   μ = mean_HW(x), v = var_HW(x) (unbiased), both detached;  x̂ = (x − μ)/√(v + 1e-5)
//   w_i ~ Dir(α·1_L) per sample;  (μ_new,i, σ_new,i) = w_iᵀ(proto_mean, proto_std) of the pos (label 0)
//   or neg (label 1) prototypes;  CSA(x)_i = x̂_i·σ_new,i + μ_new,i;  CSABlock(x) = x + CSA(x)   (residual)
// The Shader applies two blocks with independent draws.

import Foundation
import Ops
import Tensor

/// How a CSA block uses the assembled style.
public enum CSAForm: Int, Sendable, CaseIterable {
    /// The code: CSABlock(x) = x + CSA(x) (the new style is added to the old one).
    case officialCode = 0
    /// The paper: F_aug = σ_new·(F − μ)/σ + μ_new (the style is replaced).
    case paperReplacement = 1
}

/// The base styles of the two categories (L × C each); "pos" = real (label 0), "neg" = spoof.
public struct StylePrototypes: Sendable, Equatable {
    public var meanPos: Tensor, stdPos: Tensor, meanNeg: Tensor, stdNeg: Tensor
    public init(meanPos: Tensor, stdPos: Tensor, meanNeg: Tensor, stdNeg: Tensor) throws {
        let s = meanPos.shape
        guard s.count == 2, [stdPos, meanNeg, stdNeg].allSatisfy({ $0.shape == s }) else {
            throw ShapeError("csa", "prototypes must all be [L, C], found \(meanPos.shape), \(stdPos.shape), \(meanNeg.shape), \(stdNeg.shape)")
        }
        (self.meanPos, self.stdPos, self.meanNeg, self.stdNeg) = (meanPos, stdPos, meanNeg, stdNeg)
    }
    public var count: Int { meanPos.shape[0] }
    public var channels: Int { meanPos.shape[1] }
}

public enum CSA {
    /// Per sample and channel: the spatial mean and the unbiased variance (÷(HW−1)) of x [B, C, H, W].
    public static func statistics(_ x: Tensor) throws -> (mean: Tensor, variance: Tensor) {
        guard x.rank == 4 else { throw ShapeError("csa", "x must be [B, C, H, W], found \(x.shape)") }
        let (b, c, hw) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        guard hw > 1 else { throw ShapeError("csa", "the unbiased variance needs H·W > 1, found \(x.shape)") }
        var m = [Double](repeating: 0, count: b * c), v = m
        x.data.withUnsafeBufferPointer { p in
            for k in 0..<(b * c) {
                var s = 0.0
                for i in 0..<hw { s += p[k * hw + i] }
                let mu = s / Double(hw)
                var ss = 0.0
                for i in 0..<hw { let d = p[k * hw + i] - mu; ss += d * d }
                m[k] = mu
                v[k] = ss / Double(hw - 1)
            }
        }
        return (Tensor(unchecked: [b, c], m), Tensor(unchecked: [b, c], v))
    }

    /// μ_new,i = w_iᵀ·proto_mean and σ_new,i = w_iᵀ·proto_std of sample i's category (label 0 → pos).
    public static func assemble(weights: Tensor, labels: [Int], prototypes p: StylePrototypes) throws -> (mean: Tensor, std: Tensor) {
        let b = labels.count, l = p.count, c = p.channels
        guard weights.shape == [b, l] else { throw ShapeError("csa", "weights must be [B, L] = [\(b), \(l)], found \(weights.shape)") }
        var mean = [Double](repeating: 0, count: b * c), std = mean
        for i in 0..<b {
            guard labels[i] == 0 || labels[i] == 1 else { throw ShapeError("csa", "label \(labels[i]) of sample \(i) is not 0 (real) or 1 (fake)") }
            let w = try weights.slice(axis: 0, i..<(i + 1))
            let (pm, ps) = labels[i] == 0 ? (p.meanPos, p.stdPos) : (p.meanNeg, p.stdNeg)
            let nm = try Tensor.matmul(w, pm), ns = try Tensor.matmul(w, ps)
            for k in 0..<c {
                mean[i * c + k] = nm.data[k]
                std[i * c + k] = ns.data[k]
            }
        }
        return (Tensor(unchecked: [b, c], mean), Tensor(unchecked: [b, c], std))
    }

    /// CSA(x) = (x − μ)/√(v + eps)·σ_new + μ_new with μ, v detached (constants on the tape), so
    /// ∂CSA/∂x = σ_new/√(v + eps) elementwise.
    public static func adain(_ x: Var, newMean: Tensor, newStd: Tensor, eps: Double = 1e-5) throws -> Var {
        let (b, c) = (x.shape[0], x.shape[1])
        let st = try statistics(x.value)
        let t = x.tape
        let mu = t.constant(try st.mean.reshaped([b, c, 1, 1]))
        let sd = t.constant(try st.variance.map { ($0 + eps).squareRoot() }.reshaped([b, c, 1, 1]))
        let xn = try (x - mu) / sd
        return try xn * t.constant(try newStd.reshaped([b, c, 1, 1])) + t.constant(try newMean.reshaped([b, c, 1, 1]))
    }

    /// One CSABlock with given Dirichlet weights [B, L]. Returns the output and the assembled style.
    public static func block(_ x: Var, labels: [Int], weights: Tensor, prototypes: StylePrototypes, eps: Double = 1e-5,
                             form: CSAForm = .officialCode) throws -> (y: Var, mean: Tensor, std: Tensor) {
        guard x.value.rank == 4, x.shape[0] == labels.count, x.shape[1] == prototypes.channels else {
            throw ShapeError("csa", "x \(x.shape) must be [B, C, H, W] with B = \(labels.count) labels and C = \(prototypes.channels) prototype channels")
        }
        let s = try assemble(weights: weights, labels: labels, prototypes: prototypes)
        let out = try adain(x, newMean: s.mean, newStd: s.std, eps: eps)
        return (form == .officialCode ? try x + out : out, s.mean, s.std)
    }

    /// The Shader's CSA stack: one block per weights entry (two in the code), applied in sequence.
    public static func stack(_ x: Var, labels: [Int], weights: [Tensor], prototypes: StylePrototypes, eps: Double = 1e-5,
                             form: CSAForm = .officialCode) throws -> (y: Var, means: [Tensor], stds: [Tensor]) {
        var y = x
        var means: [Tensor] = [], stds: [Tensor] = []
        for w in weights {
            let r = try block(y, labels: labels, weights: w, prototypes: prototypes, eps: eps, form: form)
            y = r.y
            means.append(r.mean)
            stds.append(r.std)
        }
        return (y, means, stds)
    }

    /// One Dirichlet(α·1_L) draw per sample from the suite's RNG (the code draws torch.distributions on
    /// the GPU; the goldens take these weights as inputs). α = 1/L in every config.
    public static func drawWeights(_ rng: inout RNG, batch: Int, styles: Int, concentration: Double? = nil) -> Tensor {
        let a = concentration ?? 1.0 / Double(styles)
        var d: [Double] = []
        for _ in 0..<batch { d += rng.dirichlet([Double](repeating: a, count: styles)) }
        return Tensor(unchecked: [batch, styles], d)
    }
}
