// Protocol entries of the conv group of the certified op library: linear, convolutions, pooling and
// resizing. Properties live next to each entry; shared helpers are at the bottom of this file.

import Certification
import Ops
import Tensor

let convGroupMethods: [Method] = [
    linearMethod, conv1dMethod, conv2dMethod, convTranspose1dMethod,
    maxPool2dMethod, avgPool2dMethod, adaptiveAvgPool1dMethod, adaptiveAvgPool2dMethod,
    interpolateBilinearMethod, interpolateNearestMethod,
]

/// The bias Var when the case has one (has_bias true), else nil.
private func caseBias(_ ctx: Context) throws -> Var? {
    try ctx.bool("has_bias", default: ctx.data.has("bias")) ? ctx.v("bias") : nil
}

// MARK: - core.linear

let linearMethod = Method("core.linear", properties: [
    Property("affine_in_x") { rng in
        let lead = (0..<rng.int(below: 3)).map { _ in 1 + rng.int(below: 4) }
        let (fin, fout) = (1 + rng.int(below: 6), 1 + rng.int(below: 6))
        let x1 = rng.normalTensor(lead + [fin]), x2 = rng.normalTensor(lead + [fin])
        let w = rng.normalTensor([fout, fin]), b = rng.normalTensor([fout])
        let a = rng.uniform(-2, 2)
        let f = { (x: Tensor) in try cgEval { t in try linear(t.leaf(x), weight: t.leaf(w), bias: t.leaf(b)) } }
        try requireClose(try f(try x1 * a + x2 * (1 - a)), try f(x1) * a + f(x2) * (1 - a),
                         Tolerance(rtol: 1e-12, atol: 1e-12), "linear(αx₁ + (1−α)x₂)")
    },
    Property("bias_shift") { rng in
        let lead = (0..<rng.int(below: 3)).map { _ in 1 + rng.int(below: 4) }
        let (fin, fout) = (1 + rng.int(below: 6), 1 + rng.int(below: 6))
        let x = rng.normalTensor(lead + [fin]), w = rng.normalTensor([fout, fin]), b = rng.normalTensor([fout]) * 5
        let with = try cgEval { t in try linear(t.leaf(x), weight: t.leaf(w), bias: t.leaf(b)) }
        let without = try cgEval { t in try linear(t.leaf(x), weight: t.leaf(w), bias: nil) }
        try requireClose(with, try without + b, Tolerance(rtol: 1e-13, atol: 1e-13), "linear with bias vs without + b")
    },
]) { ctx in
    ["y": try linear(ctx.v("x"), weight: ctx.v("weight"), bias: caseBias(ctx))]
}

// MARK: - core.conv1d

/// A random conv1d configuration: x [n, cin, l], weight [cout, cin/groups, k].
private struct Conv1dConfig {
    var n, cin, cout, l, k, stride, padding, dilation, groups: Int

    static func random(_ rng: inout RNG, stride1: Bool = false, pad0: Bool = false, minL: Int = 0) -> Conv1dConfig {
        let groups = 1 + rng.int(below: 3)
        let cin = groups * (1 + rng.int(below: 2)), cout = groups * (1 + rng.int(below: 3))
        let k = 1 + rng.int(below: 4), dilation = 1 + rng.int(below: 3)
        let stride = stride1 ? 1 : 1 + rng.int(below: 3)
        let padding = pad0 ? 0 : rng.int(below: 3)
        let l = Swift.max(minL, dilation * (k - 1) + 1 + rng.int(below: 8))
        return Conv1dConfig(n: 1 + rng.int(below: 2), cin: cin, cout: cout, l: l, k: k, stride: stride,
                            padding: padding, dilation: dilation, groups: groups)
    }

    var xShape: [Int] { [n, cin, l] }
    var wShape: [Int] { [cout, cin / groups, k] }
    var lOut: Int { (l + 2 * padding - dilation * (k - 1) - 1) / stride + 1 }

    func conv(_ x: Tensor, _ w: Tensor, _ b: Tensor?) throws -> Tensor {
        try cgEval { t in
            try conv1d(t.leaf(x), weight: t.leaf(w), bias: b.map { t.leaf($0) }, stride: [stride], padding: [padding],
                       dilation: [dilation], groups: groups)
        }
    }
}

let conv1dMethod = Method("core.conv1d", properties: [
    Property("linearity") { rng in
        let c = Conv1dConfig.random(&rng)
        let x1 = rng.normalTensor(c.xShape), x2 = rng.normalTensor(c.xShape)
        let w = rng.normalTensor(c.wShape), b = rng.normalTensor([c.cout])
        let (al, be) = (rng.normal(), rng.normal())
        let bb = try b.reshaped([c.cout, 1])
        let lhs = try c.conv(try x1 * al + x2 * be, w, b) - bb
        let rhs = try (try c.conv(x1, w, b) - bb) * al + (try c.conv(x2, w, b) - bb) * be
        try requireClose(lhs, rhs, Tolerance(rtol: 1e-11, atol: 1e-12), "conv1d(αx₁ + βx₂) − b")
    },
    Property("translation_equivariance") { rng in
        let c = Conv1dConfig.random(&rng, stride1: true, minL: 16)
        let s = 1 + rng.int(below: 4)
        let x = rng.normalTensor(c.xShape), w = rng.normalTensor(c.wShape), b = rng.normalTensor([c.cout])
        // x' = x shifted right by s, with unrelated values entering on the left.
        var xs = rng.normalTensor(c.xShape)
        for p in 0..<(c.n * c.cin) { for u in s..<c.l { xs.data[p * c.l + u] = x.data[p * c.l + u - s] } }
        let y = try c.conv(x, w, b), ys = try c.conv(xs, w, b)
        let lo = s + c.padding, hi = c.l + c.padding - c.dilation * (c.k - 1)  // receptive field of ys[t] inside [s, L)
        var checked = 0
        for p in 0..<(c.n * c.cout) {
            for t in lo..<Swift.max(lo, hi) {
                checked += 1
                let (a, e) = (ys.data[p * c.lOut + t], y.data[p * c.lOut + t - s])
                try require(abs(a - e) <= 1e-12 * (1 + abs(e)), "y'[\(t)] = \(a) but y[\(t - s)] = \(e) (shift \(s))")
            }
        }
        try require(checked > 0, "no interior position to compare")
    },
]) { ctx in
    ["y": try conv1d(ctx.v("x"), weight: ctx.v("weight"), bias: caseBias(ctx), stride: ctx.ints("stride"),
                     padding: ctx.ints("padding"), dilation: ctx.ints("dilation"), groups: ctx.int("groups"))]
}

// MARK: - core.conv2d

/// A random conv2d configuration: x [n, cin, h, w], weight [cout, cin/groups, kh, kw].
private struct Conv2dConfig {
    var n, cin, cout, groups: Int
    var h, w: Int
    var k, stride, padding, dilation: [Int]

    static func random(_ rng: inout RNG, stride1: Bool = false, groups fixed: Int? = nil, cin fixedCin: Int? = nil,
                       minHW: Int = 0, pad0: Bool = false) -> Conv2dConfig {
        let groups = fixed ?? 1 + rng.int(below: 3)
        let cin = fixedCin ?? groups * (1 + rng.int(below: 2))
        let cout = groups * (1 + rng.int(below: 3))
        let k = [1 + rng.int(below: 3), 1 + rng.int(below: 3)], d = [1 + rng.int(below: 2), 1 + rng.int(below: 2)]
        let s = stride1 ? [1, 1] : [1 + rng.int(below: 2), 1 + rng.int(below: 3)]
        let p = pad0 ? [0, 0] : [rng.int(below: 2), rng.int(below: 3)]
        let h = Swift.max(minHW, d[0] * (k[0] - 1) + 1 + rng.int(below: 5))
        let w = Swift.max(minHW, d[1] * (k[1] - 1) + 1 + rng.int(below: 5))
        return Conv2dConfig(n: 1 + rng.int(below: 2), cin: cin, cout: cout, groups: groups, h: h, w: w, k: k,
                            stride: s, padding: p, dilation: d)
    }

    var xShape: [Int] { [n, cin, h, w] }
    var wShape: [Int] { [cout, cin / groups] + k }
    var outHW: (Int, Int) {
        ((h + 2 * padding[0] - dilation[0] * (k[0] - 1) - 1) / stride[0] + 1,
         (w + 2 * padding[1] - dilation[1] * (k[1] - 1) - 1) / stride[1] + 1)
    }

    func conv(_ x: Tensor, _ wt: Tensor, _ b: Tensor?) throws -> Tensor {
        try cgEval { t in
            try conv2d(t.leaf(x), weight: t.leaf(wt), bias: b.map { t.leaf($0) }, stride: stride, padding: padding,
                       dilation: dilation, groups: groups)
        }
    }
}

let conv2dMethod = Method("core.conv2d", properties: [
    Property("linearity") { rng in
        let c = Conv2dConfig.random(&rng)
        let x1 = rng.normalTensor(c.xShape), x2 = rng.normalTensor(c.xShape)
        let w = rng.normalTensor(c.wShape), b = rng.normalTensor([c.cout])
        let (al, be) = (rng.normal(), rng.normal())
        let bb = try b.reshaped([c.cout, 1, 1])
        let lhs = try c.conv(try x1 * al + x2 * be, w, b) - bb
        let rhs = try (try c.conv(x1, w, b) - bb) * al + (try c.conv(x2, w, b) - bb) * be
        try requireClose(lhs, rhs, Tolerance(rtol: 1e-11, atol: 1e-12), "conv2d(αx₁ + βx₂) − b")
    },
    Property("translation_equivariance") { rng in
        let c = Conv2dConfig.random(&rng, stride1: true, minHW: 8)
        let (sh, sw) = (rng.int(below: 3), rng.int(below: 3))
        let x = rng.normalTensor(c.xShape), w = rng.normalTensor(c.wShape), b = rng.normalTensor([c.cout])
        var xs = rng.normalTensor(c.xShape)  // x shifted by (sh, sw), unrelated values entering at the top/left
        for p in 0..<(c.n * c.cin) {
            for u in sh..<c.h { for v in sw..<c.w { xs.data[(p * c.h + u) * c.w + v] = x.data[(p * c.h + u - sh) * c.w + v - sw] } }
        }
        let y = try c.conv(x, w, b), ys = try c.conv(xs, w, b)
        let (ho, wo) = c.outHW
        let loH = sh + c.padding[0], hiH = c.h + c.padding[0] - c.dilation[0] * (c.k[0] - 1)
        let loW = sw + c.padding[1], hiW = c.w + c.padding[1] - c.dilation[1] * (c.k[1] - 1)
        var checked = 0
        for p in 0..<(c.n * c.cout) {
            for i in loH..<Swift.max(loH, hiH) {
                for j in loW..<Swift.max(loW, hiW) {
                    checked += 1
                    let a = ys.data[(p * ho + i) * wo + j], e = y.data[(p * ho + i - sh) * wo + j - sw]
                    try require(abs(a - e) <= 1e-12 * (1 + abs(e)), "y'[\(i), \(j)] = \(a) but y[\(i - sh), \(j - sw)] = \(e) (shift \(sh), \(sw))")
                }
            }
        }
        try require(checked > 0, "no interior position to compare")
    },
    Property("depthwise_separation") { rng in
        let cin = 1 + rng.int(below: 4)
        let c = Conv2dConfig.random(&rng, groups: cin, cin: cin, pad0: true)  // every output reads real inputs
        let m = c.cout / cin
        let x = rng.normalTensor(c.xShape), w = rng.normalTensor(c.wShape), b = rng.normalTensor([c.cout])
        let y = try c.conv(x, w, b)
        let changed = rng.int(below: cin)
        var x2 = x
        let plane = c.h * c.w
        for s in 0..<c.n { for k in 0..<plane { x2.data[(s * cin + changed) * plane + k] += 1 + rng.uniform() } }
        let y2 = try c.conv(x2, w, b)
        let (ho, wo) = c.outHW
        for s in 0..<c.n {
            for o in 0..<c.cout {
                let range = ((s * c.cout + o) * ho * wo)..<((s * c.cout + o + 1) * ho * wo)
                let same = y.data[range] == y2.data[range]
                if o / m == changed {
                    try require(!same || w.data[(o * c.k[0] * c.k[1])..<((o + 1) * c.k[0] * c.k[1])].allSatisfy { $0 == 0 },
                                "output channel \(o) ignores a change of its input channel \(changed)")
                } else {
                    try require(same, "output channel \(o) (input channel \(o / m)) changed when only input channel \(changed) did")
                }
            }
        }
    },
]) { ctx in
    ["y": try conv2d(ctx.v("x"), weight: ctx.v("weight"), bias: caseBias(ctx), stride: ctx.ints("stride"),
                     padding: ctx.ints("padding"), dilation: ctx.ints("dilation"), groups: ctx.int("groups"))]
}

// MARK: - core.conv_transpose1d

/// A random conv_transpose1d configuration: x [n, cin, l], weight [cin, cout/groups, k].
private struct ConvT1dConfig {
    var n, cin, cout, l, k, stride, padding, outputPadding, dilation, groups: Int

    static func random(_ rng: inout RNG) -> ConvT1dConfig {
        while true {
            let groups = 1 + rng.int(below: 2)
            let cin = groups * (1 + rng.int(below: 3)), cout = groups * (1 + rng.int(below: 2))
            let k = 1 + rng.int(below: 5), stride = 1 + rng.int(below: 3), dilation = 1 + rng.int(below: 2)
            let padding = rng.int(below: 3), op = rng.int(below: stride)
            let c = ConvT1dConfig(n: 1 + rng.int(below: 2), cin: cin, cout: cout, l: 1 + rng.int(below: 6), k: k,
                                  stride: stride, padding: padding, outputPadding: op, dilation: dilation, groups: groups)
            if c.lOut > 0 && c.lOut + 2 * padding >= dilation * (k - 1) + 1 { return c }
        }
    }

    var xShape: [Int] { [n, cin, l] }
    var wShape: [Int] { [cin, cout / groups, k] }
    var lOut: Int { (l - 1) * stride - 2 * padding + dilation * (k - 1) + outputPadding + 1 }

    func convT(_ x: Tensor, _ w: Tensor, _ b: Tensor?) throws -> Tensor {
        try cgEval { t in
            try convTranspose1d(t.leaf(x), weight: t.leaf(w), bias: b.map { t.leaf($0) }, stride: [stride],
                                padding: [padding], outputPadding: [outputPadding], groups: groups, dilation: [dilation])
        }
    }
}

let convTranspose1dMethod = Method("core.conv_transpose1d", properties: [
    Property("adjoint_of_conv1d") { rng in
        let c = ConvT1dConfig.random(&rng)
        let x = rng.normalTensor(c.xShape), w = rng.normalTensor(c.wShape), z = rng.normalTensor([c.n, c.cout, c.lOut])
        let y = try c.convT(x, w, nil)
        let cz = try cgEval { t in
            try conv1d(t.leaf(z), weight: t.leaf(w), bias: nil, stride: [c.stride], padding: [c.padding],
                       dilation: [c.dilation], groups: c.groups)
        }
        try require(cz.shape == x.shape, "conv1d(z) has shape \(cz.shape), x has \(x.shape)")
        let lhs = try y.dot(z), rhs = try x.dot(cz)
        try require(abs(lhs - rhs) <= 1e-11 * (1 + abs(lhs)), "⟨convT(x), z⟩ = \(lhs) but ⟨x, conv1d(z)⟩ = \(rhs)")
    },
    Property("linearity") { rng in
        let c = ConvT1dConfig.random(&rng)
        let x1 = rng.normalTensor(c.xShape), x2 = rng.normalTensor(c.xShape)
        let w = rng.normalTensor(c.wShape), b = rng.normalTensor([c.cout])
        let (al, be) = (rng.normal(), rng.normal())
        let bb = try b.reshaped([c.cout, 1])
        let lhs = try c.convT(try x1 * al + x2 * be, w, b) - bb
        let rhs = try (try c.convT(x1, w, b) - bb) * al + (try c.convT(x2, w, b) - bb) * be
        try requireClose(lhs, rhs, Tolerance(rtol: 1e-11, atol: 1e-12), "convT(αx₁ + βx₂) − b")
    },
]) { ctx in
    ["y": try convTranspose1d(ctx.v("x"), weight: ctx.v("weight"), bias: caseBias(ctx), stride: ctx.ints("stride"),
                              padding: ctx.ints("padding"), outputPadding: ctx.ints("output_padding"),
                              groups: ctx.int("groups", default: 1), dilation: ctx.data.has("dilation") ? ctx.ints("dilation") : [1])]
}

// MARK: - shared helpers

/// Runs a computation on a fresh tape and returns its value.
func cgEval(_ body: (Tape) throws -> Var) throws -> Tensor { try body(Tape()).value }

/// The gradient of ⟨f(x), g⟩ with respect to x.
func cgVJP(_ x: Tensor, _ g: Tensor, _ f: (Var) throws -> Var) throws -> Tensor {
    let t = Tape()
    let xv = t.leaf(x)
    let y = try f(xv)
    return try t.gradients(of: [(y, g)], wrt: [xv])[0]
}
