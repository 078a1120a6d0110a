// Protocol entries of the norm group of the certified op library: normalisation layers (this
// file), activations and dropout (NormActivations.swift), losses (NormLosses.swift).

import Certification
import Ops
import Tensor

let normGroupMethods: [Method] = [
    instanceNormMethod, batchNormTrainMethod, batchNormEvalMethod, layerNormMethod,
] + normActivationMethods + normLossMethods

// MARK: - Helpers shared by the norm group's properties

/// The value of `f` applied to fresh tape leaves holding `inputs`.
func ngValue(_ inputs: [Tensor], _ f: ([Var]) throws -> Var) throws -> Tensor {
    let tape = Tape()
    return try f(inputs.map { tape.leaf($0) }).value
}

/// The gradients of ⟨f(inputs), cotangent⟩ (cotangent = ones when nil) w.r.t. every input.
func ngGrads(_ inputs: [Tensor], cotangent: Tensor? = nil, _ f: ([Var]) throws -> Var) throws -> [Tensor] {
    let tape = Tape()
    let leaves = inputs.map { tape.leaf($0) }
    let y = try f(leaves)
    return try tape.gradients(of: [(y, cotangent ?? Tensor(ones: y.shape))], wrt: leaves)
}

/// A random shape of the given rank with sizes in 1...maxDim.
func ngShape(_ rng: inout RNG, rank: Int, maxDim: Int) -> [Int] {
    (0..<rank).map { _ in 1 + rng.int(below: maxDim) }
}

/// Per-index sums/means over all axes except `keep` (a [shape[keep]] tensor).
func ngChannelMean(_ t: Tensor, axis keep: Int) throws -> Tensor {
    try t.mean(axes: (0..<t.rank).filter { $0 != keep })
}

// MARK: - core.instance_norm

let instanceNormMethod = Method("core.instance_norm", properties: [
    Property("affine_invariance") { rng in
        // With eps = 0 the normalisation of x[n, c] and a·x[n, c] + b (a > 0) agree.
        let (n, c, l) = (1 + rng.int(below: 3), 1 + rng.int(below: 3), 2 + rng.int(below: 6))
        let x = rng.normalTensor([n, c, l])
        let a = rng.uniformTensor([n, c, 1], 0.2, 5), b = rng.normalTensor([n, c, 1]) * 10
        let x2 = try x * a + b
        let y1 = try ngValue([x]) { try instanceNorm($0[0], weight: nil, bias: nil, eps: 0) }
        let y2 = try ngValue([x2]) { try instanceNorm($0[0], weight: nil, bias: nil, eps: 0) }
        try requireClose(y2, y1, Tolerance(rtol: 1e-9, atol: 1e-11), "instance_norm(a·x + b) vs instance_norm(x)")
    },
    Property("zero_mean") { rng in
        let shape = [1 + rng.int(below: 3), 1 + rng.int(below: 3)] + [2 + rng.int(below: 4)] + (rng.bernoulli(0.5) ? [1 + rng.int(below: 3)] : [])
        let offset = rng.normal() * 20
        let x = rng.normalTensor(shape) * 3 + offset
        let eps = rng.uniform(0, 0.1)
        let y = try ngValue([x]) { try instanceNorm($0[0], weight: nil, bias: nil, eps: eps) }
        let m = try y.mean(axes: Array(2..<shape.count))
        try requireClose(m, Tensor(zeros: m.shape), Tolerance(rtol: 0, atol: 1e-14 * (1 + Swift.abs(offset) / 3)), "mean of y[n, c, ·]")
    },
]) { ctx in
    let affine = try ctx.bool("affine")
    return ["y": try instanceNorm(ctx.v("x"), weight: affine ? ctx.v("weight") : nil, bias: affine ? ctx.v("bias") : nil,
                                  eps: ctx.double("eps"))]
}

// MARK: - core.batch_norm_train

/// x [N, C, *spatial] and its per-channel biased variance and unbiased variance.
private func channelVariances(_ x: Tensor) throws -> (mean: Tensor, biased: Tensor, unbiased: Tensor) {
    let mu = try ngChannelMean(x, axis: 1)
    let shape = [1, x.shape[1]] + [Int](repeating: 1, count: x.rank - 2)
    let d = try x - mu.reshaped(shape)
    let biased = try ngChannelMean(try d * d, axis: 1)
    let m = Double(x.count / x.shape[1])
    return (mu, biased, biased * (m / (m - 1)))
}

let batchNormTrainMethod = Method("core.batch_norm_train", properties: [
    Property("batch_statistics") { rng in
        let shape = [2 + rng.int(below: 4), 1 + rng.int(below: 3)] + (rng.bernoulli(0.5) ? [1 + rng.int(below: 4)] : [])
        let x = rng.normalTensor(shape) * rng.uniform(0.1, 3) + rng.normal() * 5
        let eps = rng.uniform(0, 0.5)
        let y = try ngValue([x]) {
            try batchNorm($0[0], runningMean: nil, runningVar: nil, weight: nil, bias: nil, training: true, eps: eps).y
        }
        let (_, s2, _) = try channelVariances(x)
        let (ym, yv, _) = try channelVariances(y)
        try requireClose(ym, Tensor(zeros: ym.shape), Tolerance(rtol: 0, atol: 1e-13), "per-channel mean of y")
        try requireClose(yv, try s2 / (s2 + eps), Tolerance(rtol: 1e-11, atol: 1e-14), "per-channel variance of y vs σ²/(σ² + eps)")
    },
    Property("shift_invariance") { rng in
        let shape = [2 + rng.int(below: 4), 1 + rng.int(below: 3), 1 + rng.int(below: 4)]
        let c = shape[1]
        let x = rng.normalTensor(shape)
        let shift = rng.normalTensor([1, c, 1]) * 10
        let w = rng.normalTensor([c]), b = rng.normalTensor([c])
        let f: ([Var]) throws -> Var = {
            try batchNorm($0[0], runningMean: nil, runningVar: nil, weight: $0[1], bias: $0[2], training: true, eps: 1e-5).y
        }
        try requireClose(try ngValue([x + shift, w, b], f), try ngValue([x, w, b], f), Tolerance(rtol: 1e-9, atol: 1e-10),
                         "batch_norm(x + c) vs batch_norm(x)")
    },
    Property("momentum_one") { rng in
        let shape = [1 + rng.int(below: 4), 1 + rng.int(below: 3), 2 + rng.int(below: 4)]
        let c = shape[1]
        let x = rng.normalTensor(shape) * 2
        let rm = rng.normalTensor([c]), rv = rng.uniformTensor([c], 0.5, 2)
        let tape = Tape()
        let r = try batchNorm(tape.leaf(x), runningMean: rm, runningVar: rv, weight: nil, bias: nil, training: true,
                              momentum: 1, eps: 1e-5)
        let (mu, _, unbiased) = try channelVariances(x)
        try require(r.runningMean != nil && r.runningVar != nil, "running statistics were not returned")
        try requireClose(r.runningMean!, mu, Tolerance(rtol: 1e-12, atol: 1e-14), "running_mean after momentum 1")
        try requireClose(r.runningVar!, unbiased, Tolerance(rtol: 1e-12, atol: 1e-14), "running_var after momentum 1 (unbiased)")
    },
]) { ctx in
    let affine = try ctx.bool("affine")
    let r = try batchNorm(ctx.v("x"), runningMean: ctx.tensor("running_mean"), runningVar: ctx.tensor("running_var"),
                          weight: affine ? ctx.v("weight") : nil, bias: affine ? ctx.v("bias") : nil, training: true,
                          momentum: ctx.double("momentum"), eps: ctx.double("eps"))
    guard let rm = r.runningMean, let rv = r.runningVar else { throw ShapeError("batch_norm", "running statistics missing") }
    return ["y": r.y, "running_mean": ctx.constant(rm), "running_var": ctx.constant(rv)]
}

// MARK: - core.batch_norm_eval

/// Evaluation-mode batch norm of x with random running statistics and affine parameters.
private struct EvalBN {
    var rm: Tensor, rv: Tensor, w: Tensor, b: Tensor, eps: Double
    init(_ rng: inout RNG, c: Int) {
        rm = rng.normalTensor([c])
        rv = rng.uniformTensor([c], 0.5, 2)
        w = rng.normalTensor([c])
        b = rng.normalTensor([c])
        eps = 1e-5
    }
    func callAsFunction(_ x: Tensor) throws -> Tensor {
        try ngValue([x, w, b]) {
            try batchNorm($0[0], runningMean: rm, runningVar: rv, weight: $0[1], bias: $0[2], training: false, eps: eps).y
        }
    }
}

let batchNormEvalMethod = Method("core.batch_norm_eval", properties: [
    Property("per_channel_affine") { rng in
        // Changing x by δ only in channel c changes y only in channel c, by δ·w[c]/√(rv[c] + eps).
        let shape = [1 + rng.int(below: 3), 1 + rng.int(below: 4)] + (rng.bernoulli(0.5) ? [1 + rng.int(below: 4)] : [])
        let ch = rng.int(below: shape[1])
        let bn = EvalBN(&rng, c: shape[1])
        let x = rng.normalTensor(shape)
        var delta = rng.normalTensor(shape)
        let inner = shape.dropFirst(2).reduce(1, *)
        for i in 0..<delta.count where (i / inner) % shape[1] != ch { delta.data[i] = 0 }
        let dy = try bn(try x + delta) - bn(x)
        let a = bn.w.data[ch] / (bn.rv.data[ch] + bn.eps).squareRoot()
        try requireClose(dy, delta * a, Tolerance(rtol: 1e-9, atol: 1e-12), "y(x + δ) − y(x) vs δ·w/√(rv + eps) (channel \(ch))")
        // affine: y(x) − y(0) is linear, y(αx) − y(0) = α(y(x) − y(0))
        let al = rng.normal()
        let y0 = try bn(Tensor(zeros: shape))
        try requireClose(try bn(x * al) - y0, try (bn(x) - y0) * al, Tolerance(rtol: 1e-9, atol: 1e-12), "y(αx) − y(0) vs α(y(x) − y(0))")
    },
    Property("batch_independence") { rng in
        let shape = [2 + rng.int(below: 4), 1 + rng.int(below: 3)] + (rng.bernoulli(0.5) ? [1 + rng.int(below: 4)] : [])
        let bn = EvalBN(&rng, c: shape[1])
        let x = rng.normalTensor(shape) * 3
        let y = try bn(x)
        for n in 0..<shape[0] {
            let alone = try bn(try x.slice(axis: 0, n..<(n + 1)))
            try requireClose(alone, try y.slice(axis: 0, n..<(n + 1)), Tolerance(rtol: 0, atol: 0), "sample \(n) alone vs in the batch")
        }
    },
]) { ctx in
    let affine = try ctx.bool("affine")
    return ["y": try batchNorm(ctx.v("x"), runningMean: ctx.tensor("running_mean"), runningVar: ctx.tensor("running_var"),
                               weight: affine ? ctx.v("weight") : nil, bias: affine ? ctx.v("bias") : nil, training: false,
                               eps: ctx.double("eps")).y]
}

// MARK: - core.layer_norm

/// x of shape lead + ns with random lead and normalised shape ns.
private func layerNormInput(_ rng: inout RNG) -> (x: Tensor, ns: [Int], rows: Int) {
    let lead = ngShape(&rng, rank: 1 + rng.int(below: 2), maxDim: 4)
    let ns = ngShape(&rng, rank: 1 + rng.int(below: 2), maxDim: 5).map { Swift.max($0, 2) }
    return (rng.normalTensor(lead + ns), ns, lead.reduce(1, *))
}

let layerNormMethod = Method("core.layer_norm", properties: [
    Property("shift_invariance") { rng in
        let (x, ns, rows) = layerNormInput(&rng)
        let m = ns.reduce(1, *)
        let shift = rng.normalTensor([rows]) * 10
        let xs = Tensor(unchecked: x.shape, (0..<x.count).map { x.data[$0] + shift.data[$0 / m] })
        let w = rng.normalTensor(ns), b = rng.normalTensor(ns)
        let f: ([Var]) throws -> Var = { try layerNorm($0[0], normalizedShape: ns, weight: $0[1], bias: $0[2], eps: 1e-5) }
        try requireClose(try ngValue([xs, w, b], f), try ngValue([x, w, b], f), Tolerance(rtol: 1e-9, atol: 1e-10),
                         "layer_norm(x + c) vs layer_norm(x)")
    },
    Property("scale_invariance") { rng in
        let (x, ns, rows) = layerNormInput(&rng)
        let m = ns.reduce(1, *)
        let a = rng.uniformTensor([rows], 0.1, 10)
        let xs = Tensor(unchecked: x.shape, (0..<x.count).map { x.data[$0] * a.data[$0 / m] })
        let w = rng.normalTensor(ns), b = rng.normalTensor(ns)
        let f: ([Var]) throws -> Var = { try layerNorm($0[0], normalizedShape: ns, weight: $0[1], bias: $0[2], eps: 0) }
        try requireClose(try ngValue([xs, w, b], f), try ngValue([x, w, b], f), Tolerance(rtol: 1e-10, atol: 1e-12),
                         "layer_norm(a·x) vs layer_norm(x), eps = 0")
    },
    Property("zero_mean") { rng in
        let (x0, ns, _) = layerNormInput(&rng)
        let (scale, offset) = (rng.uniform(0.1, 5), rng.normal() * 30)
        let x = x0 * scale + offset
        let eps = rng.uniform(0, 0.1)
        let y = try ngValue([x]) { try layerNorm($0[0], normalizedShape: ns, weight: nil, bias: nil, eps: eps) }
        let m = try y.mean(axes: Array((x.rank - ns.count)..<x.rank))
        // rounding in x − μ grows with the offset relative to the spread
        try requireClose(m, Tensor(zeros: m.shape), Tolerance(rtol: 0, atol: 1e-14 * (1 + Swift.abs(offset) / scale)),
                         "mean of each normalised slice")
    },
]) { ctx in
    let affine = try ctx.bool("elementwise_affine")
    return ["y": try layerNorm(ctx.v("x"), normalizedShape: ctx.ints("normalized_shape"), weight: affine ? ctx.v("weight") : nil,
                               bias: affine ? ctx.v("bias") : nil, eps: ctx.double("eps"))]
}
