// Protocol entries of the graph group: core.sgd_step, core.adam_step, core.adamw_step,
// core.clip_grad_norm. Each runs the same optimizer code a training loop uses (Ops/Optimizers.swift).

import Certification
import Foundation
import Ops
import Tensor

// MARK: - core.sgd_step

let sgdStepMethod = Method("core.sgd_step", properties: [
    Property("plain_step") { rng in
        let shape = graphRandomShape(&rng, rank: 1 + rng.int(below: 2), maxDim: 5)
        let (p, g) = (rng.normalTensor(shape), rng.normalTensor(shape))
        let lr = rng.uniform(1e-3, 1)
        let r = try sgdStep(param: p, grad: g, momentumBuffer: nil, lr: lr, momentum: 0, dampening: rng.uniform(0, 1),
                            weightDecay: 0, nesterov: false)
        try requireClose(r.param, try p - g * lr, Tolerance(rtol: 0, atol: 0), "param − lr·grad")
        try require(r.momentumBuffer == nil, "a momentum buffer was kept with momentum 0")
    },
    Property("first_step_no_dampening") { rng in
        let shape = graphRandomShape(&rng, rank: 1 + rng.int(below: 2), maxDim: 5)
        let (p, g) = (rng.normalTensor(shape), rng.normalTensor(shape))
        let (wd, mu, damp) = (rng.bernoulli(0.5) ? rng.uniform(0, 0.5) : 0, rng.uniform(0.1, 0.99), rng.uniform(0, 0.9))
        let r = try sgdStep(param: p, grad: g, momentumBuffer: nil, lr: rng.uniform(1e-3, 1), momentum: mu, dampening: damp,
                            weightDecay: wd, nesterov: false)
        guard let buf = r.momentumBuffer else { throw PropertyFailure("no momentum buffer after a momentum step") }
        try requireClose(buf, try g + p * wd, Tolerance(rtol: 0, atol: 0), "first buffer vs grad + weight_decay·param")
    },
]) { ctx in
    let mu = try ctx.double("momentum")
    let buffer = try ctx.bool("has_buffer", default: false) ? ctx.tensor("momentum_buffer") : nil
    let r = try sgdStep(param: ctx.tensor("param"), grad: ctx.tensor("grad"), momentumBuffer: buffer, lr: ctx.double("lr"),
                        momentum: mu, dampening: ctx.double("dampening"), weightDecay: ctx.double("weight_decay"),
                        nesterov: ctx.bool("nesterov"))
    var out = ["param": ctx.constant(r.param)]
    if let b = r.momentumBuffer { out["momentum_buffer"] = ctx.constant(b) }
    return out
}

// MARK: - core.adam_step / core.adamw_step

private typealias AdamStepFn = @Sendable (Tensor, Tensor, Tensor, Tensor, Int, Double, Double, Double, Double, Double) throws
    -> (param: Tensor, expAvg: Tensor, expAvgSq: Tensor)

private let adamFn: AdamStepFn = {
    try adamStep(param: $0, grad: $1, expAvg: $2, expAvgSq: $3, step: $4, lr: $5, beta1: $6, beta2: $7, eps: $8, weightDecay: $9)
}
private let adamwFn: AdamStepFn = {
    try adamwStep(param: $0, grad: $1, expAvg: $2, expAvgSq: $3, step: $4, lr: $5, beta1: $6, beta2: $7, eps: $8, weightDecay: $9)
}

/// First step (zero moments, weight decay 0): a random instance and the parameter change.
private func adamFirstStep(_ rng: inout RNG, _ f: AdamStepFn) throws -> (g: Tensor, delta: Tensor, lr: Double, eps: Double) {
    let shape = graphRandomShape(&rng, rank: 1 + rng.int(below: 2), maxDim: 5)
    let p = rng.normalTensor(shape)
    var g = rng.normalTensor(shape).map { $0 * pow(10, Double(rng.int(below: 7) - 3)) }
    g.data[rng.int(below: g.count)] = 0
    let lr = rng.uniform(1e-4, 0.5), eps = [1e-8, 1e-12, 1e-6, 1e-3][rng.int(below: 4)]
    let (b1, b2) = (rng.uniform(0.5, 0.99), rng.uniform(0.9, 0.9999))
    let z = Tensor(zeros: shape)
    let r = try f(p, g, z, z, 1, lr, b1, b2, eps, 0)
    return (g, try r.param - p, lr, eps)
}

private func adamSignProperty(_ f: @escaping AdamStepFn) -> Property {
    Property("first_step_sign") { rng in
        let (g, delta, lr, eps) = try adamFirstStep(&rng, f)
        for i in 0..<g.count {
            let gi = g.data[i]
            let expected = gi == 0 ? 0 : -lr * gi / (Swift.abs(gi) + eps)
            try require(Swift.abs(delta.data[i] - expected) <= 1e-9 * lr,
                        "entry \(i): g = \(gi), change \(delta.data[i]), expected −lr·g/(|g|+eps) = \(expected)")
            try require(gi == 0 ? delta.data[i] == 0 : (delta.data[i] < 0) == (gi > 0),
                        "entry \(i): change \(delta.data[i]) has the wrong sign for g = \(gi)")
        }
    }
}

private func adamBoundProperty(_ f: @escaping AdamStepFn) -> Property {
    Property("first_step_bounded") { rng in
        let (_, delta, lr, _) = try adamFirstStep(&rng, f)
        for (i, d) in delta.data.enumerated() {
            try require(Swift.abs(d) <= lr * (1 + 1e-12), "entry \(i): |change| = \(Swift.abs(d)) > lr = \(lr)")
        }
    }
}

private func adamBuild(_ f: @escaping AdamStepFn) -> @Sendable (Context) throws -> [String: Var] {
    { ctx in
        let r = try f(ctx.tensor("param"), ctx.tensor("grad"), ctx.tensor("exp_avg"), ctx.tensor("exp_avg_sq"), ctx.int("step"),
                      ctx.double("lr"), ctx.double("beta1"), ctx.double("beta2"), ctx.double("eps"), ctx.double("weight_decay"))
        return ["param": ctx.constant(r.param), "exp_avg": ctx.constant(r.expAvg), "exp_avg_sq": ctx.constant(r.expAvgSq)]
    }
}

let adamStepMethod = Method("core.adam_step", properties: [adamSignProperty(adamFn), adamBoundProperty(adamFn)],
                            build: adamBuild(adamFn))

let adamwStepMethod = Method("core.adamw_step", properties: [
    adamSignProperty(adamwFn),
    Property("decoupled_decay") { rng in
        let shape = graphRandomShape(&rng, rank: 1 + rng.int(below: 2), maxDim: 5)
        let p = rng.normalTensor(shape), z = Tensor(zeros: shape)
        let (lr, wd) = (rng.uniform(1e-4, 0.5), rng.uniform(0, 0.5))
        let r = try adamwStep(param: p, grad: z, expAvg: z, expAvgSq: z, step: 1 + rng.int(below: 10), lr: lr,
                              beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: wd)
        try requireClose(r.param, p * (1 - lr * wd), Tolerance(rtol: 0, atol: 0), "param·(1 − lr·weight_decay)")
    },
    adamBoundProperty(adamwFn),
], build: adamBuild(adamwFn))

// MARK: - core.clip_grad_norm

private func globalNorm(_ gs: [Tensor]) -> Double { gs.reduce(0) { $0 + $1.data.reduce(0) { $0 + $1 * $1 } }.squareRoot() }

let clipGradNormMethod = Method("core.clip_grad_norm", properties: [
    Property("norm_bound") { rng in
        let k = 1 + rng.int(below: 4)
        let scale = [0.01, 1, 10, 100][rng.int(below: 4)]
        let gs = (0..<k).map { _ in rng.normalTensor(graphRandomShape(&rng, rank: 1 + rng.int(below: 2))) * scale }
        let maxNorm = rng.uniform(0.1, 5)
        let r = try clipGradNorm(gs, maxNorm: maxNorm)
        try require(Swift.abs(r.totalNorm - globalNorm(gs)) <= 1e-13 * r.totalNorm, "total_norm \(r.totalNorm) vs \(globalNorm(gs))")
        let after = globalNorm(r.grads)
        try require(after <= maxNorm, "norm after clipping \(after) > max_norm \(maxNorm)")
        if r.totalNorm > maxNorm { try require(after < maxNorm, "clipped norm \(after) not strictly below max_norm \(maxNorm)") }
    },
    Property("direction_preserved") { rng in
        let k = 1 + rng.int(below: 4)
        let gs = (0..<k).map { _ in rng.normalTensor(graphRandomShape(&rng, rank: 1 + rng.int(below: 2))) * rng.uniform(0.1, 10) }
        let r = try clipGradNorm(gs, maxNorm: rng.uniform(0.1, 20))
        // the factor read off the largest entry of g0
        let j = gs[0].data.indices.max { Swift.abs(gs[0].data[$0]) < Swift.abs(gs[0].data[$1]) }!
        let c = r.grads[0].data[j] / gs[0].data[j]
        try require(c > 0 && c <= 1, "scale factor \(c) outside (0, 1]")
        for (g, out) in zip(gs, r.grads) { try requireClose(out, g * c, Tolerance(rtol: 1e-14, atol: 0), "clipped gradient vs c·g") }
    },
]) { ctx in
    let k = try ctx.int("num_grads")
    let present = ctx.data.inputs.count + ctx.data.params.count
    guard k >= 0, k <= present else {
        throw ShapeError("clip_grad_norm", "num_grads must be in 0…\(present) (one input g0, g1, … per gradient), found \(k)")
    }
    let names = (0..<k).map { "g\($0)" }
    let r = try clipGradNorm(names.map { try ctx.tensor($0) }, maxNorm: ctx.double("max_norm"), normType: ctx.double("norm_type", default: 2))
    var out: [String: Var] = ["total_norm": ctx.constant(Tensor(scalar: r.totalNorm))]
    for (nm, g) in zip(names, r.grads) { out[nm] = ctx.constant(g) }
    return out
}
