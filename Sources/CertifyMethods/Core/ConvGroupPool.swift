// Protocol entries of the conv group: pooling and resizing.

import Certification
import Ops
import Tensor

/// A random 2-D pooling window: kernel, stride, padding ≤ kernel/2, and an input [n, c, h, w] at least as
/// large as the kernel.
private struct PoolConfig {
    var shape: [Int]
    var kernel, stride, padding: [Int]

    static func random(_ rng: inout RNG, padded: Bool = true) -> PoolConfig {
        let k = [1 + rng.int(below: 3), 1 + rng.int(below: 4)]
        let s = [1 + rng.int(below: 3), 1 + rng.int(below: 3)]
        let p = padded ? k.map { rng.int(below: $0 / 2 + 1) } : [0, 0]
        let shape = [1 + rng.int(below: 2), 1 + rng.int(below: 3), k[0] + rng.int(below: 5), k[1] + rng.int(below: 5)]
        return PoolConfig(shape: shape, kernel: k, stride: s, padding: p)
    }

    func maxPool(_ x: Var) throws -> Var { try maxPool2d(x, kernelSize: kernel, stride: stride, padding: padding) }
    func avgPool(_ x: Var, includePad: Bool) throws -> Var {
        try avgPool2d(x, kernelSize: kernel, stride: stride, padding: padding, countIncludePad: includePad)
    }
}

private let tight = Tolerance(rtol: 1e-12, atol: 1e-13)

/// Checks that f is linear: f(αx₁ + βx₂) = αf(x₁) + βf(x₂).
private func requireLinear(_ rng: inout RNG, shape: [Int], _ what: String, _ f: (Var) throws -> Var) throws {
    let x1 = rng.normalTensor(shape), x2 = rng.normalTensor(shape)
    let (al, be) = (rng.normal(), rng.normal())
    let lhs = try cgEval { t in try f(t.leaf(try x1 * al + x2 * be)) }
    let rhs = try cgEval { t in try f(t.leaf(x1)) }.map { $0 * al } + cgEval { t in try f(t.leaf(x2)) }.map { $0 * be }
    try requireClose(lhs, rhs, tight, "\(what)(αx₁ + βx₂) vs α\(what)(x₁) + β\(what)(x₂)")
}

// MARK: - core.max_pool2d

let maxPool2dMethod = Method("core.max_pool2d", properties: [
    Property("monotone") { rng in
        let c = PoolConfig.random(&rng)
        let x = rng.normalTensor(c.shape)
        let x2 = try x + rng.normalTensor(c.shape).map { abs($0) * Double(rng.int(below: 2)) }
        let y = try cgEval { t in try c.maxPool(t.leaf(x)) }, y2 = try cgEval { t in try c.maxPool(t.leaf(x2)) }
        for k in 0..<y.count { try require(y.data[k] <= y2.data[k], "x ≤ x' but y[\(k)] = \(y.data[k]) > y'[\(k)] = \(y2.data[k])") }
    },
    Property("positive_homogeneity") { rng in
        let c = PoolConfig.random(&rng)
        let x = rng.normalTensor(c.shape)
        let (al, sh) = (rng.uniform(0.1, 4), rng.normal(mean: 0, std: 5))
        let lhs = try cgEval { t in try c.maxPool(t.leaf(x.map { al * $0 + sh })) }
        let rhs = try cgEval { t in try c.maxPool(t.leaf(x)) }.map { al * $0 + sh }
        try requireClose(lhs, rhs, tight, "max_pool2d(αx + c) vs α·max_pool2d(x) + c")
    },
    Property("gradient_routing") { rng in
        let c = PoolConfig.random(&rng)
        let x = rng.normalTensor(c.shape)
        let y = try cgEval { t in try c.maxPool(t.leaf(x)) }
        let g = rng.normalTensor(y.shape)
        let gx = try cgVJP(x, g) { try c.maxPool($0) }
        // Independent routing: find each window's arg-max by brute force over the unpadded cells.
        var expected = Tensor(zeros: x.shape)
        let (n, ch, h, w) = (c.shape[0], c.shape[1], c.shape[2], c.shape[3])
        let (ho, wo) = (y.shape[2], y.shape[3])
        for s in 0..<n {
            for q in 0..<ch {
                for i in 0..<ho {
                    for j in 0..<wo {
                        var best = -Double.infinity, at = [Int]()
                        for a in 0..<c.kernel[0] {
                            for b in 0..<c.kernel[1] {
                                let (u, v) = (i * c.stride[0] - c.padding[0] + a, j * c.stride[1] - c.padding[1] + b)
                                guard u >= 0, u < h, v >= 0, v < w else { continue }
                                let val = try x.value(at: [s, q, u, v])
                                if val > best { best = val; at = [s, q, u, v] }
                            }
                        }
                        try require(try y.value(at: [s, q, i, j]) == best, "output [\(s), \(q), \(i), \(j)] is not its window's maximum")
                        let off = ((s * ch + q) * h + at[2]) * w + at[3]
                        expected.data[off] += try g.value(at: [s, q, i, j])
                    }
                }
            }
        }
        try requireClose(gx, expected, Tolerance(rtol: 1e-14, atol: 1e-15), "∂x routed to each window's arg-max")
    },
]) { ctx in
    let ceil = try ctx.bool("ceil_mode", default: false)
    return ["y": try maxPool2d(ctx.v("x"), kernelSize: ctx.ints("kernel_size"), stride: ctx.ints("stride"),
                               padding: ctx.ints("padding"), ceilMode: ceil)]
}

// MARK: - core.avg_pool2d

let avgPool2dMethod = Method("core.avg_pool2d", properties: [
    Property("linearity") { rng in
        let c = PoolConfig.random(&rng)
        let inc = rng.int(below: 2) == 1
        try requireLinear(&rng, shape: c.shape, "avg_pool2d") { try c.avgPool($0, includePad: inc) }
    },
    Property("constant_preserved") { rng in
        let cv = rng.normal(mean: 0, std: 10)
        let unpadded = PoolConfig.random(&rng, padded: false)
        for inc in [true, false] {
            let y = try cgEval { t in try unpadded.avgPool(t.leaf(Tensor(repeating: cv, shape: unpadded.shape)), includePad: inc) }
            try requireClose(y, Tensor(repeating: cv, shape: y.shape), tight, "avg_pool2d of constant \(cv), no padding")
        }
        let padded = PoolConfig.random(&rng)
        let y = try cgEval { t in try padded.avgPool(t.leaf(Tensor(repeating: cv, shape: padded.shape)), includePad: false) }
        try requireClose(y, Tensor(repeating: cv, shape: y.shape), tight,
                         "avg_pool2d of constant \(cv), padding \(padded.padding), count_include_pad false")
    },
]) { ctx in
    ["y": try avgPool2d(ctx.v("x"), kernelSize: ctx.ints("kernel_size"), stride: ctx.ints("stride"),
                        padding: ctx.ints("padding"), countIncludePad: ctx.bool("count_include_pad", default: true))]
}

// MARK: - core.adaptive_avg_pool1d

let adaptiveAvgPool1dMethod = Method("core.adaptive_avg_pool1d", properties: [
    Property("linearity") { rng in
        let shape = [1 + rng.int(below: 2), 1 + rng.int(below: 3), 1 + rng.int(below: 12)]
        let out = 1 + rng.int(below: 12)
        try requireLinear(&rng, shape: shape, "adaptive_avg_pool1d") { try adaptiveAvgPool1d($0, outputSize: out) }
    },
    Property("constant_preserved") { rng in
        let shape = [1 + rng.int(below: 2), 1 + rng.int(below: 3), 1 + rng.int(below: 12)]
        let (out, cv) = (1 + rng.int(below: 12), rng.normal(mean: 0, std: 10))
        let y = try cgEval { t in try adaptiveAvgPool1d(t.leaf(Tensor(repeating: cv, shape: shape)), outputSize: out) }
        try requireClose(y, Tensor(repeating: cv, shape: [shape[0], shape[1], out]), tight, "adaptive_avg_pool1d of constant \(cv)")
    },
    Property("identity_size") { rng in
        let shape = [1 + rng.int(below: 2), 1 + rng.int(below: 3), 1 + rng.int(below: 12)]
        let x = rng.normalTensor(shape)
        let y = try cgEval { t in try adaptiveAvgPool1d(t.leaf(x), outputSize: shape[2]) }
        try requireClose(y, x, Tolerance(rtol: 0, atol: 0), "adaptive_avg_pool1d with output_size = L")
    },
]) { ctx in
    let size = try ctx.ints("output_size")
    guard size.count == 1 else { throw ShapeError("adaptive_avg_pool1d", "output_size must have one entry, got \(size)") }
    return ["y": try adaptiveAvgPool1d(ctx.v("x"), outputSize: size[0])]
}

// MARK: - core.adaptive_avg_pool2d

let adaptiveAvgPool2dMethod = Method("core.adaptive_avg_pool2d", properties: [
    Property("linearity") { rng in
        let shape = [1 + rng.int(below: 2), 1 + rng.int(below: 3), 1 + rng.int(below: 9), 1 + rng.int(below: 9)]
        let out = [1 + rng.int(below: 9), 1 + rng.int(below: 9)]
        try requireLinear(&rng, shape: shape, "adaptive_avg_pool2d") { try adaptiveAvgPool2d($0, outputSize: out) }
    },
    Property("separable") { rng in
        let (n, c, h, w) = (1 + rng.int(below: 2), 1 + rng.int(below: 3), 1 + rng.int(below: 9), 1 + rng.int(below: 9))
        let (ho, wo) = (1 + rng.int(below: 9), 1 + rng.int(below: 9))
        let x = rng.normalTensor([n, c, h, w])
        let y = try cgEval { t in try adaptiveAvgPool2d(t.leaf(x), outputSize: [ho, wo]) }
        // Along H (as the last axis), then along W.
        let alongH = try cgEval { t in
            try adaptiveAvgPool1d(t.leaf(try x.permuted([0, 1, 3, 2]).reshaped([n * c, w, h])), outputSize: ho)
        }
        let hw = try alongH.reshaped([n, c, w, ho]).permuted([0, 1, 3, 2]).reshaped([n * c, ho, w])
        let both = try cgEval { t in try adaptiveAvgPool1d(t.leaf(hw), outputSize: wo) }
        try requireClose(y, try both.reshaped([n, c, ho, wo]), tight, "adaptive_avg_pool2d vs 1-D pooling along H then W")
    },
    Property("global_mean") { rng in
        let shape = [1 + rng.int(below: 2), 1 + rng.int(below: 3), 1 + rng.int(below: 9), 1 + rng.int(below: 9)]
        let x = rng.normalTensor(shape)
        let y = try cgEval { t in try adaptiveAvgPool2d(t.leaf(x), outputSize: [1, 1]) }
        try requireClose(y, try x.mean(axes: [2, 3], keepDims: true), tight, "adaptive_avg_pool2d to (1, 1) vs spatial mean")
    },
]) { ctx in
    ["y": try adaptiveAvgPool2d(ctx.v("x"), outputSize: ctx.ints("output_size"))]
}

// MARK: - core.interpolate_bilinear

let interpolateBilinearMethod = Method("core.interpolate_bilinear", properties: [
    Property("linearity") { rng in
        let shape = [1 + rng.int(below: 2), 1 + rng.int(below: 3), 1 + rng.int(below: 8), 1 + rng.int(below: 8)]
        let size = [1 + rng.int(below: 12), 1 + rng.int(below: 12)]
        try requireLinear(&rng, shape: shape, "interpolate_bilinear") { try interpolateBilinear($0, size: size) }
    },
    Property("constant_preserved") { rng in
        let shape = [1 + rng.int(below: 2), 1 + rng.int(below: 3), 1 + rng.int(below: 8), 1 + rng.int(below: 8)]
        let size = [1 + rng.int(below: 12), 1 + rng.int(below: 12)]
        let cv = rng.normal(mean: 0, std: 10)
        let y = try cgEval { t in try interpolateBilinear(t.leaf(Tensor(repeating: cv, shape: shape)), size: size) }
        try requireClose(y, Tensor(repeating: cv, shape: [shape[0], shape[1]] + size), tight, "bilinear resize of constant \(cv)")
    },
    Property("identity_size") { rng in
        let shape = [1 + rng.int(below: 2), 1 + rng.int(below: 3), 1 + rng.int(below: 8), 1 + rng.int(below: 8)]
        let x = rng.normalTensor(shape)
        let y = try cgEval { t in try interpolateBilinear(t.leaf(x), size: [shape[2], shape[3]]) }
        try requireClose(y, x, Tolerance(rtol: 0, atol: 0), "bilinear resize to the same size")
    },
]) { ctx in
    ["y": try interpolateBilinear(ctx.v("x"), size: ctx.ints("size"), alignCorners: ctx.bool("align_corners", default: false))]
}

// MARK: - core.interpolate_nearest

/// A random nearest-resize instance: [n, c, L] or [n, c, H, W] and an output size.
private func nearestInstance(_ rng: inout RNG) -> ([Int], [Int]) {
    let nd = 1 + rng.int(below: 2)
    let spatial = (0..<nd).map { _ in 1 + rng.int(below: 30) }
    let size = (0..<nd).map { _ in 1 + rng.int(below: 30) }
    return ([1 + rng.int(below: 2), 1 + rng.int(below: 3)] + spatial, size)
}

let interpolateNearestMethod = Method("core.interpolate_nearest", properties: [
    Property("selection") { rng in
        let (shape, size) = nearestInstance(&rng)
        let x = rng.normalTensor(shape)
        let y = try cgEval { t in try interpolateNearest(t.leaf(x), size: size) }
        let (inPlane, outPlane) = (shape[2...].reduce(1, *), size.reduce(1, *))
        for p in 0..<(shape[0] * shape[1]) {
            let plane = Set(x.data[(p * inPlane)..<((p + 1) * inPlane)])
            for k in 0..<outPlane {
                try require(plane.contains(y.data[p * outPlane + k]), "output \(k) of plane \(p) copies no input of that plane")
            }
        }
    },
    Property("gradient_is_scatter") { rng in
        let (shape, size) = nearestInstance(&rng)
        let x = rng.normalTensor(shape)  // continuous draws: distinct values identify their source
        let y = try cgEval { t in try interpolateNearest(t.leaf(x), size: size) }
        let g = rng.normalTensor(y.shape)
        let gx = try cgVJP(x, g) { try interpolateNearest($0, size: size) }
        let (inPlane, outPlane) = (shape[2...].reduce(1, *), size.reduce(1, *))
        var expected = Tensor(zeros: shape)
        for p in 0..<(shape[0] * shape[1]) {
            var where_: [Double: Int] = [:]
            for k in 0..<inPlane { where_[x.data[p * inPlane + k]] = p * inPlane + k }
            for k in 0..<outPlane {
                guard let src = where_[y.data[p * outPlane + k]] else { throw PropertyFailure("output \(k) of plane \(p) copies no input") }
                expected.data[src] += g.data[p * outPlane + k]
            }
        }
        try requireClose(gx, expected, Tolerance(rtol: 1e-14, atol: 1e-15), "∂x as the scatter-sum of copied cotangents")
    },
]) { ctx in
    ["y": try interpolateNearest(ctx.v("x"), size: ctx.ints("size"))]
}
