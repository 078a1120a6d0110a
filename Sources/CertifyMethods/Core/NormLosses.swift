// Protocol entries of the norm group: losses.

import Certification
import Foundation
import Ops
import Tensor

let normLossMethods: [Method] = [
    crossEntropyMethod, bceWithLogitsMethod, mseLossMethod, l1LossMethod, smoothL1LossMethod, klDivMethod, diceLossMethod,
]

/// The scalar value of a loss.
private func lossValue(_ inputs: [Tensor], _ f: ([Var]) throws -> Var) throws -> Double {
    try ngValue(inputs, f).data[0]
}

// MARK: - core.cross_entropy

/// Random logits [N, C], targets, optional weights and reduction.
private struct CEInstance {
    var logits: Tensor, target: Tensor, weight: Tensor?, reduction: LossReduction
    init(_ rng: inout RNG) {
        let (n, c) = (1 + rng.int(below: 6), 1 + rng.int(below: 6))
        logits = rng.normalTensor([n, c]) * (rng.bernoulli(0.3) ? 30 : 2)
        target = Tensor((0..<n).map { _ in Double(rng.int(below: c)) })
        weight = rng.bernoulli(0.5) ? rng.uniformTensor([c], 0.2, 3) : nil
        reduction = rng.bernoulli(0.5) ? .mean : .sum
    }
    func loss(_ x: Var) throws -> Var { try crossEntropy(x, target: target, weight: weight, reduction: reduction) }
}

let crossEntropyMethod = Method("core.cross_entropy", properties: [
    Property("nonnegative") { rng in
        let ce = CEInstance(&rng)
        let l = try lossValue([ce.logits]) { try ce.loss($0[0]) }
        try require(l >= 0, "cross-entropy \(l) < 0")
    },
    Property("shift_invariance") { rng in
        let ce = CEInstance(&rng)
        let shift = rng.normalTensor([ce.logits.shape[0], 1]) * 20
        let a = try lossValue([ce.logits + shift]) { try ce.loss($0[0]) }
        let b = try lossValue([ce.logits]) { try ce.loss($0[0]) }
        try require(Swift.abs(a - b) <= 1e-11 * Swift.max(1, Swift.abs(b)), "loss(logits + c) = \(a) vs loss(logits) = \(b)")
    },
    Property("gradient_rows_sum_zero") { rng in
        let ce = CEInstance(&rng)
        let g = try ngGrads([ce.logits]) { try ce.loss($0[0]) }[0]
        let s = try g.sum(axes: [1])
        try requireClose(s, Tensor(zeros: s.shape), Tolerance(rtol: 0, atol: 1e-14), "row sums of the logits-gradient")
        try require(g.data.contains { $0 != 0 } || ce.logits.shape[1] == 1, "the gradient is identically zero")
    },
]) { ctx in
    let red = try ctx.int("reduction_sum")
    guard red == 0 || red == 1 else { throw ShapeError("cross_entropy", "reduction_sum must be 0 or 1, got \(red)") }
    return ["loss": try crossEntropy(ctx.v("logits"), target: ctx.tensor("target"),
                                     weight: ctx.bool("has_weight") ? ctx.tensor("weight") : nil, reduction: red == 1 ? .sum : .mean)]
}

// MARK: - core.bce_with_logits

let bceWithLogitsMethod = Method("core.bce_with_logits", properties: [
    Property("gradient") { rng in
        let shape = ngShape(&rng, rank: 1 + rng.int(below: 3), maxDim: 5)
        let x = rng.normalTensor(shape) * (rng.bernoulli(0.3) ? 40 : 3)
        let t = rng.uniformTensor(shape).map { $0 < 0.25 ? 0 : ($0 > 0.75 ? 1 : $0) }
        let g = try ngGrads([x]) { try bceWithLogits($0[0], target: t) }[0]
        let expected = try (x.map { 1 / (1 + Foundation.exp(-$0)) } - t) * (1.0 / Double(x.count))
        try requireClose(g, expected, Tolerance(rtol: 1e-13, atol: 1e-17), "d loss/d logits vs (σ(x) − t)/numel")
    },
    Property("minimum") { rng in
        let shape = [1 + rng.int(below: 6)]
        let t = rng.uniformTensor(shape, 0.05, 0.95)
        let xs = t.map { Foundation.log($0 / (1 - $0)) }
        let l0 = try lossValue([xs]) { try bceWithLogits($0[0], target: t) }
        for _ in 0..<5 {
            let delta = rng.normalTensor(shape) * 0.3
            let l = try lossValue([try xs + delta]) { try bceWithLogits($0[0], target: t) }
            try require(l > l0, "loss at logit(t) + δ = \(l) is not above loss at logit(t) = \(l0)")
        }
        let g = try ngGrads([xs]) { try bceWithLogits($0[0], target: t) }[0]
        try requireClose(g, Tensor(zeros: shape), Tolerance(rtol: 0, atol: 1e-15), "gradient at logit(t)")
    },
]) { ctx in
    ["loss": try bceWithLogits(ctx.v("logits"), target: ctx.tensor("target"))]
}

// MARK: - core.mse_loss

let mseLossMethod = Method("core.mse_loss", properties: [
    Property("symmetric") { rng in
        let shape = ngShape(&rng, rank: 1 + rng.int(below: 3), maxDim: 5)
        let a = rng.normalTensor(shape), b = rng.normalTensor(shape)
        let ab = try lossValue([a]) { try mseLoss($0[0], target: b) }
        let ba = try lossValue([b]) { try mseLoss($0[0], target: a) }
        try require(ab == ba, "mse(a, b) = \(ab) vs mse(b, a) = \(ba)")
    },
    Property("zero_iff_equal") { rng in
        let shape = ngShape(&rng, rank: 1 + rng.int(below: 3), maxDim: 5)
        let a = rng.normalTensor(shape)
        try require(try lossValue([a]) { try mseLoss($0[0], target: a) } == 0, "mse(a, a) ≠ 0")
        var b = a
        b.data[rng.int(below: b.count)] += rng.normal() * 1e-3 + 1e-6
        let l = try lossValue([a]) { try mseLoss($0[0], target: b) }
        try require(l > 0, "mse(a, b) = \(l) for a ≠ b")
    },
]) { ctx in
    ["loss": try mseLoss(ctx.v("input"), target: ctx.tensor("target"))]
}

// MARK: - core.l1_loss

let l1LossMethod = Method("core.l1_loss", properties: [
    Property("symmetric") { rng in
        let shape = ngShape(&rng, rank: 1 + rng.int(below: 3), maxDim: 5)
        let a = rng.normalTensor(shape), b = rng.normalTensor(shape)
        let ab = try lossValue([a]) { try l1Loss($0[0], target: b) }
        let ba = try lossValue([b]) { try l1Loss($0[0], target: a) }
        try require(ab == ba, "l1(a, b) = \(ab) vs l1(b, a) = \(ba)")
    },
    Property("triangle") { rng in
        let shape = ngShape(&rng, rank: 1 + rng.int(below: 3), maxDim: 5)
        let a = rng.normalTensor(shape), b = rng.normalTensor(shape), c = rng.normalTensor(shape)
        let ac = try lossValue([a]) { try l1Loss($0[0], target: c) }
        let ab = try lossValue([a]) { try l1Loss($0[0], target: b) }
        let bc = try lossValue([b]) { try l1Loss($0[0], target: c) }
        try require(ac <= (ab + bc) * (1 + 1e-15), "l1(a, c) = \(ac) > l1(a, b) + l1(b, c) = \(ab + bc)")
    },
]) { ctx in
    ["loss": try l1Loss(ctx.v("input"), target: ctx.tensor("target"))]
}

// MARK: - core.smooth_l1_loss

/// Value and derivative of the smooth-L1 loss of one difference d (target 0).
private func smoothL1Point(_ d: Double, beta: Double) throws -> (Double, Double) {
    let x = Tensor([d]), t = Tensor([0.0])
    let v = try lossValue([x]) { try smoothL1Loss($0[0], target: t, beta: beta) }
    let g = try ngGrads([x]) { try smoothL1Loss($0[0], target: t, beta: beta) }[0].data[0]
    return (v, g)
}

let smoothL1LossMethod = Method("core.smooth_l1_loss", properties: [
    Property("continuity") { rng in
        let beta = rng.uniform(1e-3, 5)
        for sign in [1.0, -1.0] {
            let (vb, gb) = try smoothL1Point(sign * beta, beta: beta)
            let (vi, gi) = try smoothL1Point(sign * beta * (1 - 1e-9), beta: beta)  // inside: quadratic branch
            let (vo, go) = try smoothL1Point(sign * beta * (1 + 1e-9), beta: beta)  // outside: linear branch
            for (v, at) in [(vb, "|d| = beta"), (vi, "just inside"), (vo, "just outside")] {
                try require(Swift.abs(v - beta / 2) <= 2e-9 * beta, "l = \(v) \(at) vs beta/2 = \(beta / 2)")
            }
            for (g, at) in [(gb, "|d| = beta"), (gi, "just inside"), (go, "just outside")] {
                try require(Swift.abs(g - sign) <= 2e-9, "dl/dd = \(g) \(at) vs sign(d) = \(sign)")
            }
        }
    },
    Property("limits") { rng in
        let shape = ngShape(&rng, rank: 1 + rng.int(below: 2), maxDim: 6)
        let a = rng.normalTensor(shape), b = rng.normalTensor(shape)
        let l1 = try lossValue([a]) { try l1Loss($0[0], target: b) }
        // beta = 0 is exactly l1_loss, value and gradient
        try require(try lossValue([a]) { try smoothL1Loss($0[0], target: b, beta: 0) } == l1, "smooth_l1(beta = 0) ≠ l1")
        try requireClose(try ngGrads([a]) { try smoothL1Loss($0[0], target: b, beta: 0) }[0],
                         try ngGrads([a]) { try l1Loss($0[0], target: b) }[0], Tolerance(rtol: 0, atol: 0), "gradient at beta = 0 vs l1")
        // beta → 0: l1 − beta/2 ≤ smooth_l1 ≤ l1
        let beta = rng.uniform(1e-9, 1e-6)
        let s = try lossValue([a]) { try smoothL1Loss($0[0], target: b, beta: beta) }
        try require(s <= l1 + 1e-15 && s >= l1 - beta / 2 - 1e-15, "smooth_l1(beta = \(beta)) = \(s) vs l1 = \(l1)")
        // |d| < beta: l = 0.5·d²/beta
        let d = try a - b
        let big = d.data.map { Swift.abs($0) }.max()! * rng.uniform(1.01, 3) + 1e-3
        let quad = d.data.map { 0.5 * $0 * $0 / big }.reduce(0, +) / Double(d.count)
        let sq = try lossValue([a]) { try smoothL1Loss($0[0], target: b, beta: big) }
        try require(Swift.abs(sq - quad) <= 1e-14 * Swift.max(quad, 1e-300), "smooth_l1 = \(sq) vs 0.5·d²/beta = \(quad) (beta \(big))")
    },
]) { ctx in
    ["loss": try smoothL1Loss(ctx.v("input"), target: ctx.tensor("target"), beta: ctx.double("beta"))]
}

// MARK: - core.kl_div

/// Rows of log-probabilities and of probabilities (some exact zeros), shape [N, K] or [N, R, K].
private func klInstance(_ rng: inout RNG) throws -> (input: Tensor, target: Tensor) {
    let shape = [1 + rng.int(below: 4)] + (rng.bernoulli(0.5) ? [1 + rng.int(below: 3)] : []) + [2 + rng.int(below: 5)]
    let k = shape.last!, rows = shape.reduce(1, *) / k
    let input = try ngValue([rng.normalTensor(shape) * 2]) { try logSoftmax($0[0], axis: -1) }
    var t: [Double] = []
    for _ in 0..<rows {
        var row = rng.dirichlet([Double](repeating: 1, count: k))
        for j in 1..<k where rng.bernoulli(0.3) { row[j] = 0 }
        let s = row.reduce(0, +)
        t += row.map { $0 / s }
    }
    return (input, Tensor(unchecked: shape, t))
}

let klDivMethod = Method("core.kl_div", properties: [
    Property("nonnegative") { rng in
        let (input, target) = try klInstance(&rng)
        let l = try lossValue([input]) { try klDiv($0[0], target: target) }
        try require(l >= -1e-15, "KL = \(l) < 0")
    },
    Property("zero_iff_equal") { rng in
        let (input, target) = try klInstance(&rng)
        let same = try lossValue([input]) { try klDiv($0[0], target: input.map { Foundation.exp($0) }) }
        try require(Swift.abs(same) <= 1e-14, "KL(p ‖ p) = \(same)")
        // the instance's target differs from exp(input) (it has zeros where exp(input) > 0)
        let l = try lossValue([input]) { try klDiv($0[0], target: target) }
        try require(l > 1e-12, "KL(p ‖ q) = \(l) for p ≠ q")
    },
    Property("gradient") { rng in
        let (input, target) = try klInstance(&rng)
        let cot = Tensor(scalar: rng.normal())
        let g = try ngGrads([input], cotangent: cot) { try klDiv($0[0], target: target) }[0]
        try requireClose(g, target * (-cot.data[0] / Double(input.shape[0])), Tolerance(rtol: 1e-15, atol: 0), "d loss/d input vs −target/N")
    },
]) { ctx in
    ["loss": try klDiv(ctx.v("input"), target: ctx.tensor("target"))]
}

// MARK: - core.dice_loss

let diceLossMethod = Method("core.dice_loss", properties: [
    Property("range") { rng in
        let shape = [1 + rng.int(below: 4)] + ngShape(&rng, rank: 1 + rng.int(below: 2), maxDim: 5)
        let x = rng.normalTensor(shape) * [0.1, 3, 15][rng.int(below: 3)]
        let t = rng.uniformTensor(shape).map { $0 < 0.4 ? 1 : 0 }
        let smooth = rng.bernoulli(0.2) ? 0 : rng.uniform(0, 2)
        let l = try lossValue([x]) { try diceLoss($0[0], target: t, smooth: smooth) }
        try require(l >= 0 && l <= 1, "dice loss \(l) outside [0, 1] (smooth \(smooth))")
    },
    Property("perfect_prediction") { rng in
        let shape = [1 + rng.int(below: 4)] + ngShape(&rng, rank: 1 + rng.int(below: 2), maxDim: 5)
        var t = rng.uniformTensor(shape).map { $0 < 0.4 ? 1 : 0 }
        t.data[0] = 1
        let smooth = rng.uniform(1e-3, 2)
        var last = Double.infinity
        for scale in [1.0, 3.0, 10.0, 40.0] {
            let x = t.map { ($0 == 1 ? 1 : -1) * scale }
            let l = try lossValue([x]) { try diceLoss($0[0], target: t, smooth: smooth) }
            try require(l < last, "loss \(l) at logit scale \(scale) did not decrease (was \(last))")
            last = l
        }
        // |p − t| ≤ e⁻⁴⁰ < 1e-17 per element; a target-free sample keeps 1 − D ≈ Σp/smooth
        let m = t.count / shape[0]
        try require(last <= 1e-15 + Double(m) * 1e-17 / smooth, "loss \(last) at logits ±40 matching the target (smooth \(smooth))")
    },
]) { ctx in
    ["loss": try diceLoss(ctx.v("logits"), target: ctx.tensor("target"), smooth: ctx.double("smooth"))]
}
