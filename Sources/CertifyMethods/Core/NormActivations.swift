// Protocol entries of the norm group: activations, dropout and log-softmax.

import Certification
import Foundation
import Ops
import Tensor

let normActivationMethods: [Method] = [
    reluMethod, leakyReluMethod, sigmoidMethod, tanhMethod, geluMethod, softplusMethod, dropoutMethod, logSoftmaxMethod,
]

/// A random tensor of rank 1–3, some entries exactly 0.
private func activationInput(_ rng: inout RNG, scale: Double = 3) -> Tensor {
    var x = rng.normalTensor(ngShape(&rng, rank: 1 + rng.int(below: 3), maxDim: 6)) * scale
    for i in 0..<x.count where rng.bernoulli(0.2) { x.data[i] = 0 }
    return x
}

// MARK: - core.relu

let reluMethod = Method("core.relu", properties: [
    Property("idempotent") { rng in
        let x = activationInput(&rng)
        let once = try ngValue([x]) { relu($0[0]) }
        let twice = try ngValue([x]) { relu(relu($0[0])) }
        try requireClose(twice, once, Tolerance(rtol: 0, atol: 0), "relu(relu(x)) vs relu(x)")
        try require(once.data.allSatisfy { $0 >= 0 }, "relu produced a negative value: \(once)")
    },
    Property("positive_homogeneity") { rng in
        let x = activationInput(&rng)
        let a = rng.bernoulli(0.2) ? 0 : rng.uniform(0, 10)
        try requireClose(try ngValue([x * a]) { relu($0[0]) }, try ngValue([x]) { relu($0[0]) } * a,
                         Tolerance(rtol: 1e-15, atol: 0), "relu(αx) vs α·relu(x), α = \(a)")
    },
]) { ctx in
    ["y": relu(try ctx.v("x"))]
}

// MARK: - core.leaky_relu

let leakyReluMethod = Method("core.leaky_relu", properties: [
    Property("positive_homogeneity") { rng in
        let x = activationInput(&rng)
        let a = rng.bernoulli(0.2) ? 0 : rng.uniform(0, 10), s = rng.uniform(0, 2)
        try requireClose(try ngValue([x * a]) { try leakyRelu($0[0], negativeSlope: s) },
                         try ngValue([x]) { try leakyRelu($0[0], negativeSlope: s) } * a,
                         Tolerance(rtol: 1e-14, atol: 0), "leaky_relu(αx) vs α·leaky_relu(x), α = \(a), slope \(s)")
    },
    Property("relu_limit") { rng in
        let x = activationInput(&rng)
        let cot = rng.normalTensor(x.shape)
        try requireClose(try ngValue([x]) { try leakyRelu($0[0], negativeSlope: 0) }, try ngValue([x]) { relu($0[0]) },
                         Tolerance(rtol: 0, atol: 0), "leaky_relu(x, 0) vs relu(x)")
        try requireClose(try ngGrads([x], cotangent: cot) { try leakyRelu($0[0], negativeSlope: 0) }[0],
                         try ngGrads([x], cotangent: cot) { relu($0[0]) }[0], Tolerance(rtol: 0, atol: 0),
                         "gradient of leaky_relu(x, 0) vs relu(x)")
    },
]) { ctx in
    ["y": try leakyRelu(ctx.v("x"), negativeSlope: ctx.double("negative_slope"))]
}

// MARK: - core.sigmoid

let sigmoidMethod = Method("core.sigmoid", properties: [
    Property("symmetry") { rng in
        let x = activationInput(&rng, scale: 5)
        try requireClose(try ngValue([-x]) { sigmoid($0[0]) }, try ngValue([x]) { sigmoid($0[0]) }.map { 1 - $0 },
                         Tolerance(rtol: 1e-12, atol: 1e-15), "sigmoid(−x) vs 1 − sigmoid(x)")
    },
    Property("range") { rng in
        let xs = (0..<(2 + rng.int(below: 30))).map { _ in rng.uniform(-30, 30) }.sorted()
        let y = try ngValue([Tensor(xs)]) { sigmoid($0[0]) }
        try require(y.data.allSatisfy { $0 > 0 && $0 < 1 }, "sigmoid outside (0, 1) on \(xs): \(y.data)")
        for i in 1..<xs.count {
            try require(y.data[i] >= y.data[i - 1], "not monotone: sigmoid(\(xs[i])) < sigmoid(\(xs[i - 1]))")
            // strictly increasing where σ′ ≥ 4.5e-5 makes the step visible in Float64
            if xs[i] - xs[i - 1] > 1e-6, Swift.abs(xs[i]) <= 10, Swift.abs(xs[i - 1]) <= 10 {
                try require(y.data[i] > y.data[i - 1], "not increasing: sigmoid(\(xs[i])) ≤ sigmoid(\(xs[i - 1]))")
            }
        }
    },
]) { ctx in
    ["y": sigmoid(try ctx.v("x"))]
}

// MARK: - core.tanh

let tanhMethod = Method("core.tanh", properties: [
    Property("odd") { rng in
        let x = activationInput(&rng, scale: rng.bernoulli(0.5) ? 1e-6 : 5)
        try requireClose(try ngValue([-x]) { Ops.tanh($0[0]) }, -(try ngValue([x]) { Ops.tanh($0[0]) }),
                         Tolerance(rtol: 0, atol: 0), "tanh(−x) vs −tanh(x)")
    },
    Property("sigmoid_relation") { rng in
        let x = activationInput(&rng, scale: 4)
        let s = try ngValue([x * 2]) { sigmoid($0[0]) }.map { 2 * $0 - 1 }
        try requireClose(try ngValue([x]) { Ops.tanh($0[0]) }, s, Tolerance(rtol: 1e-12, atol: 1e-15), "tanh(x) vs 2·sigmoid(2x) − 1")
    },
]) { ctx in
    ["y": Ops.tanh(try ctx.v("x"))]
}

// MARK: - core.gelu

let geluMethod = Method("core.gelu", properties: [
    Property("asymptotes") { rng in
        for approx in [false, true] {
            let big = Tensor((0..<8).map { _ in rng.uniform(10, 1e3) })
            let yp = try ngValue([big]) { gelu($0[0], tanhApproximation: approx) }
            try requireClose(yp, big, Tolerance(rtol: 1e-15, atol: 0), "gelu(x) → x for large x (tanh form: \(approx))")
            let yn = try ngValue([-big]) { gelu($0[0], tanhApproximation: approx) }
            try requireClose(yn, Tensor(zeros: [8]), Tolerance(rtol: 0, atol: 1e-15), "gelu(x) → 0 for very negative x (tanh form: \(approx))")
            // the erf form follows x·Φ(x) ≈ −φ(x) for moderately negative x
            if !approx {
                let x = -rng.uniform(3, 6)
                let y = try ngValue([Tensor([x])]) { gelu($0[0]) }.data[0]
                let tail = x * 0.5 * Foundation.erfc(-x / 2.0.squareRoot())
                try require(Swift.abs(y - tail) <= 1e-12, "gelu(\(x)) = \(y), x·Φ(x) = \(tail)")
            }
        }
    },
    Property("odd_part") { rng in
        for approx in [false, true] {
            let x = activationInput(&rng, scale: 3)
            let d = try ngValue([x]) { gelu($0[0], tanhApproximation: approx) } - ngValue([-x]) { gelu($0[0], tanhApproximation: approx) }
            try requireClose(d, x, Tolerance(rtol: 1e-14, atol: 1e-15), "gelu(x) − gelu(−x) vs x (tanh form: \(approx))")
        }
    },
]) { ctx in
    let mode = try ctx.int("tanh_approx")
    guard mode == 0 || mode == 1 else { throw ShapeError("gelu", "tanh_approx must be 0 or 1, got \(mode)") }
    return ["y": gelu(try ctx.v("x"), tanhApproximation: mode == 1)]
}

// MARK: - core.softplus

let softplusMethod = Method("core.softplus", properties: [
    Property("smooth_relu") { rng in
        let beta = rng.uniform(0.2, 4), threshold = rng.uniform(5, 25)
        // below the threshold: beta·x ∈ [−30, threshold)
        let x = Tensor((0..<(1 + rng.int(below: 20))).map { _ in rng.uniform(-30, threshold) / beta })
        let y = try ngValue([x]) { try softplus($0[0], beta: beta, threshold: threshold) }
        for (xi, yi) in zip(x.data, y.data) {
            let r = Swift.max(xi, 0)
            try require(yi > r, "softplus(\(xi)) = \(yi) is not above relu = \(r) (beta \(beta))")
            try require(yi - r <= Foundation.log(2) / beta * (1 + 1e-15), "softplus(\(xi)) − relu = \(yi - r) exceeds log 2/beta")
        }
    },
    Property("derivative_sigmoid") { rng in
        let beta = rng.uniform(0.2, 4), threshold = rng.uniform(5, 25)
        let x = Tensor((0..<(1 + rng.int(below: 20))).map { _ in rng.uniform(-30, threshold) / beta })
        let g = try ngGrads([x]) { try softplus($0[0], beta: beta, threshold: threshold) }[0]
        let s = x.map { 1 / (1 + Foundation.exp(-beta * $0)) }
        try requireClose(g, s, Tolerance(rtol: 1e-13, atol: 1e-300), "d softplus/dx vs sigmoid(beta·x)")
        // and above the threshold the derivative is 1
        let above = Tensor([threshold / beta * 1.01 + 1])
        try requireClose(try ngGrads([above]) { try softplus($0[0], beta: beta, threshold: threshold) }[0], Tensor([1]),
                         Tolerance(rtol: 0, atol: 0), "derivative above the threshold")
    },
]) { ctx in
    ["y": try softplus(ctx.v("x"), beta: ctx.double("beta"), threshold: ctx.double("threshold"))]
}

// MARK: - core.dropout

let dropoutMethod = Method("core.dropout", properties: [
    Property("unbiased") { rng in
        let p = rng.uniform(0.05, 0.8)
        let x = rng.normalTensor([1 + rng.int(below: 8)])
        // Exactly: y is elementwise and linear in the mask, so E[y] = (1 − p)·y(mask = 1) + p·y(mask = 0).
        let y1 = try ngValue([x]) { try dropout($0[0], mask: Tensor(ones: x.shape), p: p) }
        let y0 = try ngValue([x]) { try dropout($0[0], mask: Tensor(zeros: x.shape), p: p) }
        try requireClose(try y1 * (1 - p) + y0 * p, x, Tolerance(rtol: 1e-14, atol: 0), "(1 − p)·y(1) + p·y(0) vs x")
        // Monte Carlo with the seeded mask helper: the sample mean is within 6σ of x.
        let k = 2000
        var acc = Tensor(zeros: x.shape)
        for _ in 0..<k {
            let mask = try dropoutMask(shape: x.shape, p: p, rng: &rng)
            acc = try acc + ngValue([x]) { try dropout($0[0], mask: mask, p: p) }
        }
        let sigma = (p / ((1 - p) * Double(k))).squareRoot()
        for i in 0..<x.count {
            let mean = acc.data[i] / Double(k)
            try require(Swift.abs(mean - x.data[i]) <= 6 * sigma * Swift.abs(x.data[i]) + 1e-15,
                        "Monte Carlo mean \(mean) of y vs x = \(x.data[i]) (p = \(p), \(k) masks)")
        }
        // evaluation mode is the identity
        try requireClose(try ngValue([x]) { try dropout($0[0], mask: Tensor(zeros: x.shape), p: p, training: false) }, x,
                         Tolerance(rtol: 0, atol: 0), "eval-mode dropout vs x")
    },
    Property("linear") { rng in
        let p = rng.uniform(0, 0.9)
        let shape = ngShape(&rng, rank: 1 + rng.int(below: 3), maxDim: 5)
        let mask = try dropoutMask(shape: shape, p: p, rng: &rng)
        let x1 = rng.normalTensor(shape), x2 = rng.normalTensor(shape)
        let (a, b) = (rng.normal(), rng.normal())
        let f: ([Var]) throws -> Var = { try dropout($0[0], mask: mask, p: p) }
        try requireClose(try ngValue([try x1 * a + x2 * b], f), try ngValue([x1], f) * a + ngValue([x2], f) * b,
                         Tolerance(rtol: 1e-12, atol: 1e-14), "y(a·x₁ + b·x₂) vs a·y(x₁) + b·y(x₂)")
        let cot = rng.normalTensor(shape)
        try requireClose(try ngGrads([x1], cotangent: cot, f)[0], try cot * mask.map { $0 / (1 - p) },
                         Tolerance(rtol: 1e-15, atol: 0), "gradient vs g·mask/(1 − p)")
    },
]) { ctx in
    ["y": try dropout(ctx.v("x"), mask: ctx.tensor("mask"), p: ctx.double("p"), training: ctx.bool("train"))]
}

// MARK: - core.log_softmax

let logSoftmaxMethod = Method("core.log_softmax", properties: [
    Property("logsumexp_zero") { rng in
        let shape = ngShape(&rng, rank: 1 + rng.int(below: 3), maxDim: 6)
        let axis = rng.int(below: shape.count)
        let y = try ngValue([rng.normalTensor(shape) * (rng.bernoulli(0.3) ? 300 : 3)]) { try logSoftmax($0[0], axis: axis) }
        // log Σ exp y along the axis, max-shifted
        let m = try y.max(axes: [axis], keepDims: true)
        let lse = try (try (y - m).map { Foundation.exp($0) }.sum(axes: [axis], keepDims: true).map { Foundation.log($0) }) + m
        try requireClose(lse, Tensor(zeros: lse.shape), Tolerance(rtol: 0, atol: 1e-13), "logsumexp of log_softmax")
    },
    Property("shift_invariance") { rng in
        let shape = [1 + rng.int(below: 4), 1 + rng.int(below: 6)]
        let x = rng.normalTensor(shape)
        let c = rng.normalTensor([shape[0], 1]) * 50
        try requireClose(try ngValue([x + c]) { try logSoftmax($0[0], axis: 1) }, try ngValue([x]) { try logSoftmax($0[0], axis: 1) },
                         Tolerance(rtol: 1e-12, atol: 1e-12), "log_softmax(x + c) vs log_softmax(x)")
    },
    Property("nonpositive") { rng in
        let shape = ngShape(&rng, rank: 1 + rng.int(below: 3), maxDim: 6)
        let axis = rng.int(below: shape.count)
        let y = try ngValue([rng.normalTensor(shape) * 100]) { try logSoftmax($0[0], axis: axis) }
        try require(y.data.allSatisfy { $0 <= 0 }, "a positive log-probability: \(y)")
    },
]) { ctx in
    ["y": try logSoftmax(ctx.v("x"), axis: ctx.int("axis"))]
}
