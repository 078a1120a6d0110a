// Attribution methods (NeurIPS 2021 §3; official code scripts/saliency_utils.py):
//   gradient of the true-label logit   LogitGrad:  ∇ₓ Σᵢ f_{yᵢ}(xᵢ)  (y = the TRUE label, `gather`)
//   gradient of the true-label softmax LogitGrad(apply_softmax=True): ∇ₓ Σᵢ softmax(f(xᵢ))_{yᵢ}
//   gradient of the loss               LossGrad:   ∇ₓ Σᵢ CE(f(xᵢ), yᵢ)   (reduction 'sum')
//   gradient × input                   *GradientTimesInput: x ⊙ ∇ₓ(…)
//   random                             RandomAttribution: g ~ N(0, I)
// SmoothGrad and Integrated Gradients are not in the official repository; the standard definitions
// are Certify's choice (spec A4):
//   SmoothGrad  (1/N) Σᵢ ∇ₓ T(x + εᵢ), εᵢ ~ N(0, σ²), σ = noiseLevel·(max x − min x) per example, N = 50, noiseLevel 0.15
//   IG          (x − x′) ⊙ (1/m) Σ_{i=1..m} ∇ₓ T(x′ + (i/m)(x − x′)), x′ = 0, m = 50 (right Riemann sum)

import Certification
import Foundation
import Ops
import Tensor

/// The scalar whose input gradient is taken, per example.
public enum AttributionTarget: String, Sendable, CaseIterable {
    /// The true-label logit f_y(x) (the paper's attribution).
    case logit
    /// The true-label softmax probability.
    case softmax
    /// Cross-entropy with the true label (summed over the batch, as the code).
    case loss
}

/// An attribution method of the pipeline.
public enum AttributionMethod: Sendable, Equatable {
    case gradient
    case gradientTimesInput
    case smoothGrad(samples: Int, noiseLevel: Double)
    case integratedGradients(steps: Int)
    case random

    public static let smoothGradDefault = AttributionMethod.smoothGrad(samples: 50, noiseLevel: 0.15)
    public static let integratedGradientsDefault = AttributionMethod.integratedGradients(steps: 50)

    public var name: String {
        switch self {
        case .gradient: "gradient"
        case .gradientTimesInput: "gradient_x_input"
        case .smoothGrad: "smoothgrad"
        case .integratedGradients: "integrated_gradients"
        case .random: "random"
        }
    }
}

public enum Attribution {
    /// ∇ₓ Σᵢ T(f(xᵢ), yᵢ) for one batch.
    public static func inputGradient(model: any Classifier, x: Tensor, y: [Int], target: AttributionTarget) throws -> Tensor {
        let n = x.shape.first ?? 0
        guard n == y.count else { throw ShapeError("attribution", "\(y.count) labels for \(n) inputs of shape \(x.shape)") }
        let tape = Tape()
        let xv = tape.leaf(x)
        let z = try model.logits(xv, model.leaves(on: tape))
        let c = z.shape[1]
        for (i, yi) in y.enumerated() where yi < 0 || yi >= c {
            throw ShapeError("attribution", "label y[\(i)] = \(yi) outside 0..<\(c)")
        }
        let oneHot = { () -> Tensor in
            var t = [Double](repeating: 0, count: n * c)
            for i in 0..<n { t[i * c + y[i]] = 1 }
            return Tensor(unchecked: [n, c], t)
        }
        switch target {
        case .logit:
            return try tape.gradients(of: [(z, oneHot())], wrt: [xv])[0]
        case .softmax:
            return try tape.gradients(of: [(softmax(z, axis: 1), oneHot())], wrt: [xv])[0]
        case .loss:
            let l = try crossEntropy(z, target: Tensor(y.map(Double.init)), reduction: .sum)
            return try tape.gradients(of: l, wrt: [xv])[0]
        }
    }

    /// Input gradients of a whole set, `batchSize` examples at a time.
    public static func inputGradients(model: any Classifier, x: Tensor, y: [Int], target: AttributionTarget,
                                      batchSize: Int = 500) throws -> Tensor {
        try batched(x: x, y: y, batchSize: batchSize) { xb, yb in try inputGradient(model: model, x: xb, y: yb, target: target) }
    }

    /// Applies `f` to consecutive batches along axis 0 and concatenates the results.
    static func batched(x: Tensor, y: [Int], batchSize: Int, _ f: (Tensor, [Int]) throws -> Tensor) throws -> Tensor {
        let n = x.shape.first ?? 0
        guard n == y.count else { throw ShapeError("attribution", "\(y.count) labels for \(n) inputs of shape \(x.shape)") }
        if n <= batchSize { return try f(x, y) }
        var out: [Double] = []
        out.reserveCapacity(x.count)
        var s = 0
        while s < n {
            let e = Swift.min(n, s + batchSize)
            out += try f(x.slice(axis: 0, s..<e), Array(y[s..<e])).data
            s = e
        }
        return Tensor(unchecked: x.shape, out)
    }

    /// SmoothGrad with given perturbations `noise` ([N, n, ...], already scaled by σ):
    /// (1/N) Σᵢ ∇ₓ T(x + noise[i]).
    public static func smoothGrad(model: any Classifier, x: Tensor, y: [Int], target: AttributionTarget, noise: Tensor) throws -> Tensor {
        guard noise.rank == x.rank + 1, Array(noise.shape.dropFirst()) == x.shape, noise.shape[0] > 0 else {
            throw ShapeError("SmoothGrad", "noise \(noise.shape) must be [N] + \(x.shape)")
        }
        let samples = noise.shape[0]
        var acc = Tensor(zeros: x.shape)
        for i in 0..<samples {
            let eps = try noise.slice(axis: 0, i..<(i + 1)).reshaped(x.shape)
            acc = try acc + inputGradient(model: model, x: x + eps, y: y, target: target)
        }
        return acc * (1.0 / Double(samples))
    }

    /// σ per example: noiseLevel·(max − min) of that example's values.
    public static func smoothGradSigma(_ x: Tensor, noiseLevel: Double) -> [Double] {
        let n = x.shape.first ?? 0, d = n > 0 ? x.count / n : 0
        return (0..<n).map { i in
            let row = x.data[(i * d)..<((i + 1) * d)]
            return noiseLevel * ((row.max() ?? 0) - (row.min() ?? 0))
        }
    }

    /// Draws SmoothGrad perturbations [samples, n, ...] with σ per example.
    public static func smoothGradNoise(_ x: Tensor, samples: Int, noiseLevel: Double, rng: inout RNG) -> Tensor {
        let sigma = smoothGradSigma(x, noiseLevel: noiseLevel)
        let n = x.shape.first ?? 0, d = n > 0 ? x.count / n : 0
        var out = [Double](repeating: 0, count: samples * x.count)
        for s in 0..<samples { for i in 0..<n { for j in 0..<d { out[(s * n + i) * d + j] = sigma[i] * rng.normal() } } }
        return Tensor(unchecked: [samples] + x.shape, out)
    }

    /// Integrated Gradients, right Riemann sum: (x − x′) ⊙ (1/m) Σ_{i=1..m} ∇ₓ T(x′ + (i/m)(x − x′)).
    public static func integratedGradients(model: any Classifier, x: Tensor, y: [Int], target: AttributionTarget,
                                           baseline: Tensor? = nil, steps: Int) throws -> Tensor {
        guard steps >= 1 else { throw ShapeError("IntegratedGradients", "steps must be ≥ 1, got \(steps)") }
        let base = baseline ?? Tensor(zeros: x.shape)
        guard base.shape == x.shape else { throw ShapeError("IntegratedGradients", "baseline \(base.shape) does not match x \(x.shape)") }
        let diff = try x - base
        var acc = Tensor(zeros: x.shape)
        for i in 1...steps {
            let alpha = Double(i) / Double(steps)
            acc = try acc + inputGradient(model: model, x: base + diff * alpha, y: y, target: target)
        }
        return try diff * (acc * (1.0 / Double(steps)))
    }

    /// Any method on a whole set (batched). Random draws (SmoothGrad noise, random attributions) come from `rng`.
    public static func attribute(model: any Classifier, x: Tensor, y: [Int], method: AttributionMethod,
                                 target: AttributionTarget = .logit, batchSize: Int = 500, rng: inout RNG) throws -> Tensor {
        switch method {
        case .gradient:
            return try inputGradients(model: model, x: x, y: y, target: target, batchSize: batchSize)
        case .gradientTimesInput:
            return try x * inputGradients(model: model, x: x, y: y, target: target, batchSize: batchSize)
        case .smoothGrad(let samples, let level):
            guard samples >= 1 else { throw ShapeError("SmoothGrad", "samples must be ≥ 1, got \(samples)") }
            var r = rng
            let out = try batched(x: x, y: y, batchSize: batchSize) { xb, yb in
                let noise = smoothGradNoise(xb, samples: samples, noiseLevel: level, rng: &r)
                return try smoothGrad(model: model, x: xb, y: yb, target: target, noise: noise)
            }
            rng = r
            return out
        case .integratedGradients(let steps):
            return try batched(x: x, y: y, batchSize: batchSize) { xb, yb in
                try integratedGradients(model: model, x: xb, y: yb, target: target, steps: steps)
            }
        case .random:
            return rng.normalTensor(x.shape)
        }
    }
}

// MARK: - Protocol entry

/// The MLP of a golden case: params fc1.weight, fc1.bias, fc2.weight, fc2.bias and, for two hidden
/// layers, fc3.weight, fc3.bias (as the protocols declare them).
func caseMLP(_ ctx: Context) throws -> MLP {
    let layers = ctx.data.has("fc3.weight") ? 3 : 2
    return try MLP(weights: (1...layers).map { try ctx.tensor("fc\($0).weight") },
                   biases: (1...layers).map { try ctx.tensor("fc\($0).bias") })
}

func caseLabels(_ ctx: Context, _ name: String = "y") throws -> [Int] {
    try ctx.tensor(name).data.map { v in
        guard v.rounded() == v, v >= 0 else { throw ShapeError("labels", "label \(v) is not a class index") }
        return Int(v)
    }
}

/// A one-hidden-layer softplus MLP (smooth) for the IG completeness property.
final class SoftplusMLP: Classifier, @unchecked Sendable {
    let parameters: [Parameter]
    let classes: Int
    init(d: Int, h: Int, c: Int, rng: inout RNG) {
        parameters = [Parameter("w1", rng.normalTensor([h, d])), Parameter("b1", rng.normalTensor([h])),
                      Parameter("w2", rng.normalTensor([c, h]) * (1 / Double(h).squareRoot())), Parameter("b2", rng.normalTensor([c]))]
        classes = c
    }
    func logits(_ x: Var, _ p: [Var]) throws -> Var {
        try linear(softplus(linear(x, weight: p[0], bias: p[1])), weight: p[2], bias: p[3])
    }
}

let attributionsMethod = Method("input_gradients.attributions", properties: [
    Property("one_hidden_closed_form") { rng in
        let (d, h, c, n) = (2 + rng.int(below: 8), 2 + rng.int(below: 12), 2 + rng.int(below: 3), 1 + rng.int(below: 4))
        let model = try MLP(sizes: [d, h, c], rng: &rng)
        let x = rng.normalTensor([n, d])
        let y = (0..<n).map { _ in rng.int(below: c) }
        let g = try Attribution.inputGradient(model: model, x: x, y: y, target: .logit)
        let (w1, b1, w2) = (model.parameters[0].value, model.parameters[1].value, model.parameters[2].value)
        let pre = try Tensor.matmul(x, w1, transposeB: true) + b1
        for i in 0..<n {
            for k in 0..<d {
                var s = 0.0
                for j in 0..<h where pre.data[i * h + j] > 0 { s += w1.data[j * d + k] * w2.data[y[i] * h + j] }
                try require(Swift.abs(g.data[i * d + k] - s) <= 1e-12 * (1 + Swift.abs(s)), "∇z[\(i), \(k)] = \(g.data[i * d + k]), closed form \(s)")
            }
            // central differences where every pre-activation is away from the kink
            let h0 = 1e-4
            guard (0..<h).allSatisfy({ Swift.abs(pre.data[i * h + $0]) > 10 * h0 * Double(d) }) else { continue }
            for k in 0..<d {
                var xp = try x.slice(axis: 0, i..<(i + 1)), xm = xp
                xp.data[k] += h0
                xm.data[k] -= h0
                let fd = (try model.logits(xp).data[y[i]] - model.logits(xm).data[y[i]]) / (2 * h0)
                try require(Swift.abs(fd - g.data[i * d + k]) <= 1e-7 * (1 + Swift.abs(fd)), "central difference \(fd) vs \(g.data[i * d + k])")
            }
        }
    },
    Property("binary_loss_ranking") { rng in
        let (d, n) = (3 + rng.int(below: 20), 1 + rng.int(below: 4))
        let model = try MLP(sizes: [d, 4 + rng.int(below: 10), 2], rng: &rng)
        let x = rng.normalTensor([n, d])
        let y = (0..<n).map { _ in rng.int(below: 2) }
        let gl = try Attribution.inputGradient(model: model, x: x, y: y, target: .loss)
        let g0 = try Attribution.inputGradient(model: model, x: x, y: [Int](repeating: 0, count: n), target: .logit)
        let g1 = try Attribution.inputGradient(model: model, x: x, y: [Int](repeating: 1, count: n), target: .logit)
        let diff = try g1 - g0
        let p = try model.logits(x).softmax(axis: 1)
        for i in 0..<n {
            let sign = y[i] == 0 ? 1.0 : -1.0
            for k in 0..<d {
                let expected = sign * p.data[i * 2 + 1 - y[i]] * diff.data[i * d + k]
                try require(Swift.abs(gl.data[i * d + k] - expected) <= 1e-12 * (1 + Swift.abs(expected)), "∇CE ≠ p_{1−y}(∇z_{1−y} − ∇z_y)")
            }
        }
        try require(try AttributionMasking.priorityOrders(gl) == AttributionMasking.priorityOrders(diff),
                    "the |∇CE| ranking differs from the |∇(z₁ − z₀)| ranking")
    },
    Property("ranking_rescaling_invariant") { rng in
        let (d, n) = (3 + rng.int(below: 20), 1 + rng.int(below: 4))
        let model = try MLP(sizes: [d, 8, 6, 3], rng: &rng)
        let x = rng.normalTensor([n, d])
        let y = (0..<n).map { _ in rng.int(below: 3) }
        let g = try Attribution.inputGradient(model: model, x: x, y: y, target: .logit)
        let c = Foundation.pow(2.0, Double(rng.int(below: 20) - 10))
        let scaled = try MLP(weights: [model.parameters[0].value, model.parameters[2].value, model.parameters[4].value * c],
                             biases: [model.parameters[1].value, model.parameters[3].value, model.parameters[5].value * c])
        let gs = try Attribution.inputGradient(model: scaled, x: x, y: y, target: .logit)
        try require(gs == g * c, "scaling the last layer by \(c) does not scale the gradient exactly")
        try require(try AttributionMasking.priorityOrders(gs) == AttributionMasking.priorityOrders(g), "priority order changed under rescaling")
    },
    Property("ig_completeness_converges") { rng in
        let (d, n) = (2 + rng.int(below: 6), 1 + rng.int(below: 3))
        let model = SoftplusMLP(d: d, h: 6, c: 2, rng: &rng)
        let x = rng.normalTensor([n, d])
        let y = (0..<n).map { _ in rng.int(below: 2) }
        let z = try model.logits(x), z0 = try model.logits(Tensor(zeros: [n, d]))
        func error(_ m: Int) throws -> Double {
            let ig = try Attribution.integratedGradients(model: model, x: x, y: y, target: .logit, steps: m)
            return (0..<n).map { i in
                Swift.abs(ig.data[(i * d)..<((i + 1) * d)].reduce(0, +) - (z.data[i * 2 + y[i]] - z0.data[i * 2 + y[i]]))
            }.max()!
        }
        // Against the coarsest of three grids: at one m the Riemann error's leading term can cancel against the
        // next (seed 14530519866675503567: 7.9e-5 at m = 8, 2.4e-5 at m = 512), but not at all three.
        let coarse = try [8, 16, 32].map(error).max()!, e512 = try error(512)
        try require(e512 <= 0.1 * coarse + 1e-9, "completeness error \(e512) at m = 512 vs at most \(coarse) at m = 8, 16, 32")
    },
    Property("gradient_x_input_is_ig_for_linear") { rng in
        let (d, n, c) = (2 + rng.int(below: 8), 1 + rng.int(below: 3), 2 + rng.int(below: 3))
        let model = try MLP(sizes: [d, c], rng: &rng)
        let x = rng.normalTensor([n, d])
        let y = (0..<n).map { _ in rng.int(below: c) }
        let gxi = try x * Attribution.inputGradient(model: model, x: x, y: y, target: .logit)
        let ig = try Attribution.integratedGradients(model: model, x: x, y: y, target: .logit, steps: 1 + rng.int(below: 9))
        try requireClose(ig, gxi, Tolerance(rtol: 1e-12, atol: 1e-14), "IG vs gradient×input on a linear model")
    },
]) { ctx in
    let model = try caseMLP(ctx)
    let x = try ctx.tensor("x"), y = try caseLabels(ctx)
    guard let target = AttributionTarget(rawValue: try ctx.data.string("target")) else {
        throw ShapeError("input_gradients.attributions", "unknown target '\(try ctx.data.string("target"))' (logit, softmax, loss)")
    }
    let a: Tensor
    switch try ctx.data.string("method") {
    case "gradient": a = try Attribution.inputGradient(model: model, x: x, y: y, target: target)
    case "gradient_x_input": a = try x * Attribution.inputGradient(model: model, x: x, y: y, target: target)
    case "smoothgrad": a = try Attribution.smoothGrad(model: model, x: x, y: y, target: target, noise: ctx.tensor("noise"))
    case "integrated_gradients":
        a = try Attribution.integratedGradients(model: model, x: x, y: y, target: target,
                                                baseline: ctx.data.has("baseline") ? ctx.tensor("baseline") : nil, steps: ctx.int("steps"))
    case "random": a = try ctx.tensor("random")
    case let m: throw ShapeError("input_gradients.attributions", "unknown method '\(m)'")
    }
    return ["attributions": ctx.constant(a)]
}
