// Convolutions (cross-correlations) as torch.nn.functional.conv1d / conv2d / conv_transpose1d.
//
// One 2-D engine serves all three: conv1d is conv2d with H = 1, and conv_transpose1d is the
// adjoint of conv1d in its input (its forward is conv's input-gradient, its input-gradient is
// conv's forward). General groups use im2col + one BLAS dgemm per (sample, group), the backward
// uses gemm + col2im; grouped convs with a single input channel per group (depthwise, with any
// channel multiplier) use direct loops instead of tiny gemms.

import Tensor

/// The geometry of one 2-D convolution: input [n, c, h, w], weight [o, c/groups, kh, kw],
/// output [n, o, ho, wo]; output (i, j) reads input (i·sh − ph + a·dh, j·sw − pw + b·dw).
struct ConvGeometry {
    var n, c, h, w: Int
    var o, kh, kw: Int
    var sh, sw, ph, pw, dh, dw: Int
    var groups: Int
    var ho, wo: Int

    var cg: Int { c / groups }
    var og: Int { o / groups }
    /// Rows of one group's column matrix: cg·kh·kw.
    var kdim: Int { cg * kh * kw }
    var hwIn: Int { h * w }
    var hwOut: Int { ho * wo }
    /// A 1×1 kernel with unit stride and no padding: the column matrix is the input itself.
    var pointwise: Bool { kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 && ho == h && wo == w }
    /// Direct loops instead of im2col + gemm: one input channel per group in a grouped conv (depthwise,
    /// with any channel multiplier), where each group's gemm would be tiny. A single group with one input
    /// channel (LAVA's conv1d 1 → 32 and conv_transpose1d 32 → 1) takes the gemm path: its gemm is
    /// [o × k]·[k × positions], and the direct loops' strided reads (stride 2) do not vectorise.
    var direct: Bool { cg == 1 && groups > 1 }

    /// Output columns j whose input column j·sw + off lies in [0, w): j in lo..<hi (hi ≥ lo).
    @inline(__always) func columnRange(_ off: Int) -> (Int, Int) {
        let lo = off >= 0 ? 0 : Swift.min(wo, (-off + sw - 1) / sw)
        let hiRaw = off > w - 1 ? 0 : (w - 1 - off) / sw + 1
        return (lo, Swift.max(lo, Swift.min(wo, hiRaw)))
    }

    /// Output rows i whose input row i·sh + off lies in [0, h): i in lo..<hi (hi ≥ lo).
    @inline(__always) func rowRange(_ off: Int) -> (Int, Int) {
        let lo = off >= 0 ? 0 : Swift.min(ho, (-off + sh - 1) / sh)
        let hiRaw = off > h - 1 ? 0 : (h - 1 - off) / sh + 1
        return (lo, Swift.max(lo, Swift.min(ho, hiRaw)))
    }

    // MARK: im2col / col2im for one group of one sample

    /// col[(c·kh + a)·kw + b, i·wo + j] = xpad[c, i·sh − ph + a·dh, j·sw − pw + b·dw] for the cg
    /// channels starting at `x`.
    func im2col(_ x: UnsafePointer<Double>, _ col: UnsafeMutablePointer<Double>) {
        let hw = hwOut
        for c in 0..<cg {
            let xc = x + c * hwIn
            for a in 0..<kh {
                let rowOff = a * dh - ph
                let (ilo, ihi) = rowRange(rowOff)
                for b in 0..<kw {
                    let row = col + ((c * kh + a) * kw + b) * hw
                    let colOff = b * dw - pw
                    let (jlo, jhi) = columnRange(colOff)
                    if ilo > 0 { row.update(repeating: 0, count: ilo * wo) }
                    for i in ilo..<ihi {
                        let r = row + i * wo
                        let xr = xc + (i * sh + rowOff) * w + colOff
                        for j in 0..<jlo { r[j] = 0 }
                        if sw == 1 {
                            (r + jlo).update(from: xr + jlo, count: jhi - jlo)
                        } else {
                            for j in jlo..<jhi { r[j] = xr[j * sw] }
                        }
                        for j in jhi..<wo { r[j] = 0 }
                    }
                    if ihi < ho { (row + ihi * wo).update(repeating: 0, count: (ho - ihi) * wo) }
                }
            }
        }
    }

    /// The adjoint of `im2col`: adds every column entry into the input position it was read from.
    func col2imAdd(_ col: UnsafePointer<Double>, _ x: UnsafeMutablePointer<Double>) {
        let hw = hwOut
        for c in 0..<cg {
            let xc = x + c * hwIn
            for a in 0..<kh {
                let rowOff = a * dh - ph
                let (ilo, ihi) = rowRange(rowOff)
                for b in 0..<kw {
                    let row = col + ((c * kh + a) * kw + b) * hw
                    let colOff = b * dw - pw
                    let (jlo, jhi) = columnRange(colOff)
                    for i in ilo..<ihi {
                        let r = row + i * wo
                        let xr = xc + (i * sh + rowOff) * w + colOff
                        if sw == 1 {
                            for j in jlo..<jhi { xr[j] += r[j] }
                        } else {
                            for j in jlo..<jhi { xr[j * sw] += r[j] }
                        }
                    }
                }
            }
        }
    }

    // MARK: the three products

    /// One group's column matrix [kdim, hw], uninitialised: im2col writes every entry (zeros at the
    /// padding), and so does the input gradient's gemm (beta = 0). Empty for pointwise kernels.
    func colBuffer() -> [Double] {
        let count = pointwise ? 0 : kdim * hwOut
        return [Double](unsafeUninitializedCapacity: count) { _, c in c = count }
    }

    /// y = conv(x, weight) + bias, as [n, o, ho, wo] data.
    func forward(x: [Double], weight: [Double], bias: [Double]?) -> [Double] {
        let hw = hwOut
        // Every element is written once (bias or 0) before the products accumulate into it: no zero-fill first.
        var y = [Double](unsafeUninitializedCapacity: n * o * hw) { by, count in
            guard let py = by.baseAddress else { count = 0; return }
            for s in 0..<n { for oc in 0..<o { (py + (s * o + oc) * hw).initialize(repeating: bias?[oc] ?? 0, count: hw) } }
            count = n * o * hw
        }
        x.withUnsafeBufferPointer { bx in
            weight.withUnsafeBufferPointer { bw in
                y.withUnsafeMutableBufferPointer { by in
                    let px = cvBase(bx), pw = cvBase(bw), py = cvMut(by)
                    if direct {
                        directForward(px, pw, py)
                        return
                    }
                    var col = colBuffer()
                    col.withUnsafeMutableBufferPointer { bc in
                        let pc = cvMut(bc)
                        for s in 0..<n {
                            for g in 0..<groups {
                                let xg = px + (s * c + g * cg) * hwIn
                                let src: UnsafePointer<Double>
                                if pointwise { src = xg } else { im2col(xg, pc); src = UnsafePointer(pc) }
                                BLAS.gemm(transA: false, transB: false, m: og, n: hw, k: kdim,
                                          a: pw + g * og * kdim, lda: kdim, b: src, ldb: hw,
                                          c: py + (s * o + g * og) * hw, ldc: hw, beta: 1)
                            }
                        }
                    }
                }
            }
        }
        return y
    }

    /// ∂x = convᵀ(gy, weight), as [n, c, h, w] data.
    func inputGrad(gy: [Double], weight: [Double]) -> [Double] {
        var gx = [Double](repeating: 0, count: n * c * hwIn)
        let hw = hwOut
        gy.withUnsafeBufferPointer { bg in
            weight.withUnsafeBufferPointer { bw in
                gx.withUnsafeMutableBufferPointer { bx in
                    let pg = cvBase(bg), pw = cvBase(bw), px = cvMut(bx)
                    if direct {
                        directInputGrad(pg, pw, px)
                        return
                    }
                    var col = colBuffer()
                    col.withUnsafeMutableBufferPointer { bc in
                        let pc = cvMut(bc)
                        for s in 0..<n {
                            for g in 0..<groups {
                                let xg = px + (s * c + g * cg) * hwIn
                                let dst = pointwise ? xg : pc
                                BLAS.gemm(transA: true, transB: false, m: kdim, n: hw, k: og,
                                          a: pw + g * og * kdim, lda: kdim, b: pg + (s * o + g * og) * hw, ldb: hw,
                                          c: dst, ldc: hw)
                                if !pointwise { col2imAdd(pc, xg) }
                            }
                        }
                    }
                }
            }
        }
        return gx
    }

    /// ∂weight = Σ_samples gy · im2col(x)ᵀ, as [o, cg, kh, kw] data.
    func weightGrad(x: [Double], gy: [Double]) -> [Double] {
        var gw = [Double](repeating: 0, count: o * kdim)
        let hw = hwOut
        x.withUnsafeBufferPointer { bx in
            gy.withUnsafeBufferPointer { bg in
                gw.withUnsafeMutableBufferPointer { bw in
                    let px = cvBase(bx), pg = cvBase(bg), pw = cvMut(bw)
                    if direct {
                        directWeightGrad(px, pg, pw)
                        return
                    }
                    var col = colBuffer()
                    col.withUnsafeMutableBufferPointer { bc in
                        let pc = cvMut(bc)
                        for s in 0..<n {
                            for g in 0..<groups {
                                let xg = px + (s * c + g * cg) * hwIn
                                let src: UnsafePointer<Double>
                                if pointwise { src = xg } else { im2col(xg, pc); src = UnsafePointer(pc) }
                                BLAS.gemm(transA: false, transB: true, m: og, n: kdim, k: hw,
                                          a: pg + (s * o + g * og) * hw, lda: hw, b: src, ldb: hw,
                                          c: pw + g * og * kdim, ldc: kdim, beta: 1)
                            }
                        }
                    }
                }
            }
        }
        return gw
    }

    /// ∂bias[oc] = Σ over samples and positions of gy[·, oc, ·, ·].
    func biasGrad(gy: [Double]) -> [Double] {
        var gb = [Double](repeating: 0, count: o)
        let hw = hwOut
        gy.withUnsafeBufferPointer { pg in
            for s in 0..<n {
                for oc in 0..<o { gb[oc] += sumContiguous(cvBase(pg) + (s * o + oc) * hw, hw) }
            }
        }
        return gb
    }

    // MARK: direct loops for one input channel per group (depthwise)

    /// Calls body(sample, outChannel, inChannel, a, b, (ilo, ihi), (jlo, jhi), rowOff, colOff) for each
    /// kernel tap with a non-empty valid region.
    @inline(__always)
    private func forEachTap(_ body: (Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int) -> Void) {
        for s in 0..<n {
            for oc in 0..<o {
                let ic = oc / og
                for a in 0..<kh {
                    let rowOff = a * dh - ph
                    let (ilo, ihi) = rowRange(rowOff)
                    if ilo >= ihi { continue }
                    for b in 0..<kw {
                        let colOff = b * dw - pw
                        let (jlo, jhi) = columnRange(colOff)
                        if jlo >= jhi { continue }
                        body(s, oc, ic, a, b, ilo, ihi, jlo, jhi, rowOff, colOff)
                    }
                }
            }
        }
    }

    private func directForward(_ x: UnsafePointer<Double>, _ wt: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>) {
        forEachTap { s, oc, ic, a, b, ilo, ihi, jlo, jhi, rowOff, colOff in
            let wv = wt[(oc * kh + a) * kw + b]
            let xc = x + (s * c + ic) * hwIn
            let yc = y + (s * o + oc) * hwOut
            for i in ilo..<ihi {
                let yr = yc + i * wo
                let xr = xc + (i * sh + rowOff) * w + colOff
                if sw == 1 {
                    for j in jlo..<jhi { yr[j] += wv * xr[j] }
                } else {
                    for j in jlo..<jhi { yr[j] += wv * xr[j * sw] }
                }
            }
        }
    }

    private func directInputGrad(_ gy: UnsafePointer<Double>, _ wt: UnsafePointer<Double>, _ gx: UnsafeMutablePointer<Double>) {
        forEachTap { s, oc, ic, a, b, ilo, ihi, jlo, jhi, rowOff, colOff in
            let wv = wt[(oc * kh + a) * kw + b]
            let xc = gx + (s * c + ic) * hwIn
            let yc = gy + (s * o + oc) * hwOut
            for i in ilo..<ihi {
                let yr = yc + i * wo
                let xr = xc + (i * sh + rowOff) * w + colOff
                if sw == 1 {
                    for j in jlo..<jhi { xr[j] += wv * yr[j] }
                } else {
                    for j in jlo..<jhi { xr[j * sw] += wv * yr[j] }
                }
            }
        }
    }

    private func directWeightGrad(_ x: UnsafePointer<Double>, _ gy: UnsafePointer<Double>, _ gw: UnsafeMutablePointer<Double>) {
        forEachTap { s, oc, ic, a, b, ilo, ihi, jlo, jhi, rowOff, colOff in
            let xc = x + (s * c + ic) * hwIn
            let yc = gy + (s * o + oc) * hwOut
            var acc = 0.0
            for i in ilo..<ihi {
                let yr = yc + i * wo
                let xr = xc + (i * sh + rowOff) * w + colOff
                if sw == 1 {
                    for j in jlo..<jhi { acc += yr[j] * xr[j] }
                } else {
                    for j in jlo..<jhi { acc += yr[j] * xr[j * sw] }
                }
            }
            gw[(oc * kh + a) * kw + b] += acc
        }
    }
}

/// Σ p[0..<count] with eight independent partial sums (two SIMD4 lanes), so the loop vectorises instead of
/// waiting on one add chain; a fixed order, so the result is deterministic.
@inline(__always)
func sumContiguous(_ p: UnsafePointer<Double>, _ count: Int) -> Double {
    var a0 = SIMD4<Double>(), a1 = SIMD4<Double>()
    var k = 0
    let raw = UnsafeRawPointer(p)
    while k + 8 <= count {
        a0 += raw.loadUnaligned(fromByteOffset: k * 8, as: SIMD4<Double>.self)
        a1 += raw.loadUnaligned(fromByteOffset: (k + 4) * 8, as: SIMD4<Double>.self)
        k += 8
    }
    var acc = (a0 + a1).sum()
    while k < count { acc += p[k]; k += 1 }
    return acc
}

// MARK: - argument checking

/// Validates a convolution's arguments (nd = 1 or 2 spatial axes) and returns its 2-D geometry.
/// `transposed`: x is [N, C_in, L], weight [C_in, C_out/groups, K]; the geometry is that of the
/// forward conv whose input-gradient the transposed convolution is.
private func convGeometry(op: String, nd: Int, x: [Int], weight: [Int], bias: [Int]?, stride: [Int], padding: [Int],
                          dilation: [Int], groups: Int, outputPadding: [Int]? = nil) throws -> ConvGeometry {
    let transposed = outputPadding != nil
    guard x.count == nd + 2 else {
        throw ShapeError(op, "x must have rank \(nd + 2) ([N, C\(nd == 1 ? ", L" : ", H, W")]), got shape \(x)")
    }
    guard weight.count == nd + 2 else {
        throw ShapeError(op, "weight must have rank \(nd + 2), got shape \(weight) (x shape \(x))")
    }
    for (name, v) in [("stride", stride), ("padding", padding), ("dilation", dilation)] + (outputPadding.map { [("output_padding", $0)] } ?? []) {
        guard v.count == nd else { throw ShapeError(op, "\(name) must have \(nd) entr\(nd == 1 ? "y" : "ies"), got \(v)") }
    }
    guard stride.allSatisfy({ $0 > 0 }) else { throw ShapeError(op, "stride must be positive, got \(stride)") }
    guard dilation.allSatisfy({ $0 > 0 }) else { throw ShapeError(op, "dilation must be positive, got \(dilation)") }
    guard padding.allSatisfy({ $0 >= 0 }) else { throw ShapeError(op, "padding must be non-negative, got \(padding)") }
    guard groups > 0 else { throw ShapeError(op, "groups must be positive, got \(groups)") }
    let cin = x[1]
    guard cin % groups == 0 else { throw ShapeError(op, "groups \(groups) does not divide the \(cin) input channels of x (shape \(x))") }
    guard x.allSatisfy({ $0 >= 0 }), weight.allSatisfy({ $0 >= 0 }) else { throw ShapeError(op, "negative dimension in x \(x) or weight \(weight)") }
    let k = Array(weight[2...])
    guard k.allSatisfy({ $0 > 0 }) else { throw ShapeError(op, "kernel size must be positive, got weight shape \(weight)") }
    let spatial = Array(x[2...])
    let cout: Int
    if transposed {
        guard weight[0] == cin else {
            throw ShapeError(op, "weight shape \(weight) must be [C_in, C_out/groups, K] with C_in = \(cin) (x shape \(x))")
        }
        cout = weight[1] * groups
    } else {
        guard weight[0] % groups == 0 else {
            throw ShapeError(op, "groups \(groups) does not divide the \(weight[0]) output channels of weight (shape \(weight))")
        }
        guard weight[1] * groups == cin else {
            throw ShapeError(op, "weight shape \(weight) needs C_in/groups = \(weight[1]) but x (shape \(x)) has \(cin) channels in \(groups) group(s)")
        }
        cout = weight[0]
    }
    if let bias, bias != [cout] {
        throw ShapeError(op, "bias shape \(bias) must be [\(cout)] (weight shape \(weight), groups \(groups))")
    }
    var outSize = [Int]()
    for d in 0..<nd {
        let eff = try checkedAdd(try checkedMul(dilation[d], k[d] - 1, op), 1, op)
        if let op2 = outputPadding {
            guard op2[d] >= 0, op2[d] < stride[d] || op2[d] < dilation[d] else {
                throw ShapeError(op, "output_padding \(op2) must be non-negative and smaller than stride \(stride) or dilation \(dilation)")
            }
            let l = try checkedAdd(try checkedAdd(try checkedSub(try checkedMul(spatial[d] - 1, stride[d], op), try checkedMul(2, padding[d], op), op),
                                                  eff, op), op2[d], op)
            guard l > 0 else {
                throw ShapeError(op, "output size \(l) is not positive (x shape \(x), weight \(weight), stride \(stride), padding \(padding))")
            }
            outSize.append(l)
        } else {
            let padded = try checkedAdd(spatial[d], try checkedMul(2, padding[d], op), op)
            guard padded >= eff else {
                throw ShapeError(op, "kernel extent \(eff) (weight \(weight), dilation \(dilation)) exceeds the padded input size \(padded) (x shape \(x), padding \(padding))")
            }
            outSize.append((padded - eff) / stride[d] + 1)
        }
    }
    // The output and the im2col column buffer must fit the memory budget.
    try Budget.require(shape: [x[0], cout] + outSize, "\(op)'s output")
    let kernel = try checkedCount(k, op)
    let cols = Double(cin / groups) * Double(kernel) * outSize.reduce(1.0) { $0 * Double($1) }
    try Budget.require(elements: cols, "\(op)'s column buffer (C_in/groups × kernel × output positions)")
    // The 2-D geometry of the forward conv (for a transposed conv: the conv mapping y to x).
    func g2(_ v: [Int], _ one: Int) -> (Int, Int) { nd == 1 ? (one, v[0]) : (v[0], v[1]) }
    let (sh, sw) = g2(stride, 1), (ph, pw) = g2(padding, 0), (dh, dw) = g2(dilation, 1), (kh, kw) = g2(k, 1)
    if transposed {
        let (h, w) = g2(outSize, 1), (ho, wo) = g2(spatial, 1)
        return ConvGeometry(n: x[0], c: cout, h: h, w: w, o: cin, kh: kh, kw: kw, sh: sh, sw: sw, ph: ph, pw: pw,
                            dh: dh, dw: dw, groups: groups, ho: ho, wo: wo)
    }
    let (h, w) = g2(spatial, 1), (ho, wo) = g2(outSize, 1)
    return ConvGeometry(n: x[0], c: cin, h: h, w: w, o: cout, kh: kh, kw: kw, sh: sh, sw: sw, ph: ph, pw: pw,
                        dh: dh, dw: dw, groups: groups, ho: ho, wo: wo)
}

private func convTape(_ op: String, _ x: Var, _ weight: Var, _ bias: Var?) throws -> Tape {
    let t = try sameTape(op, x, weight)
    if let bias { _ = try sameTape(op, x, bias) }
    return t
}

/// Shared forward + VJP of conv1d / conv2d.
private func convolution(op: String, nd: Int, _ x: Var, weight: Var, bias: Var?, stride: [Int], padding: [Int],
                         dilation: [Int], groups: Int) throws -> Var {
    let t = try convTape(op, x, weight, bias)
    let g = try convGeometry(op: op, nd: nd, x: x.shape, weight: weight.shape, bias: bias?.shape, stride: stride,
                             padding: padding, dilation: dilation, groups: groups)
    let xv = x.value, wv = weight.value, hasBias = bias != nil
    let y = g.forward(x: xv.data, weight: wv.data, bias: bias?.value.data)
    let yShape = nd == 1 ? [g.n, g.o, g.wo] : [g.n, g.o, g.ho, g.wo]
    let parents = [x, weight] + (bias.map { [$0] } ?? [])
    return t.record(Tensor(unchecked: yShape, y), parents: parents) { gy, needs in
        // Only the cotangents some requested gradient depends on (a network's input image needs no ∂x).
        var grads: [Tensor?] = [needs[0] ? Tensor(unchecked: xv.shape, g.inputGrad(gy: gy.data, weight: wv.data)) : nil,
                                needs[1] ? Tensor(unchecked: wv.shape, g.weightGrad(x: xv.data, gy: gy.data)) : nil]
        if hasBias { grads.append(needs[2] ? Tensor(unchecked: [g.o], g.biasGrad(gy: gy.data)) : nil) }
        return grads
    }
}

/// 2-D cross-correlation, torch.nn.functional.conv2d(x, weight, bias, stride, padding, dilation, groups):
/// y[n, o, i, j] = bias[o] + Σ_{c<C_in/groups, a, b} weight[o, c, a, b] · xpad[n, g·C_in/groups + c, i·s_h + a·d_h, j·s_w + b·d_w],
/// g = o ÷ (C_out/groups); x [N, C_in, H, W], weight [C_out, C_in/groups, kH, kW], zero padding on both sides;
/// H_out = ⌊(H + 2p_h − d_h(kH − 1) − 1)/s_h⌋ + 1, likewise W_out.
/// VJP: ∂x = col2im(Wᵀ·G), ∂W = G·im2col(x)ᵀ, ∂b = Σ G (direct loops when C_in/groups = 1).
public func conv2d(_ x: Var, weight: Var, bias: Var?, stride: [Int] = [1, 1], padding: [Int] = [0, 0],
                   dilation: [Int] = [1, 1], groups: Int = 1) throws -> Var {
    try convolution(op: "conv2d", nd: 2, x, weight: weight, bias: bias, stride: stride, padding: padding,
                    dilation: dilation, groups: groups)
}

/// 1-D cross-correlation, torch.nn.functional.conv1d: conv2d with H = 1. x [N, C_in, L],
/// weight [C_out, C_in/groups, K]; L_out = ⌊(L + 2p − d(K − 1) − 1)/s⌋ + 1.
public func conv1d(_ x: Var, weight: Var, bias: Var?, stride: [Int] = [1], padding: [Int] = [0],
                   dilation: [Int] = [1], groups: Int = 1) throws -> Var {
    try convolution(op: "conv1d", nd: 1, x, weight: weight, bias: bias, stride: stride, padding: padding,
                    dilation: dilation, groups: groups)
}

/// 1-D transposed convolution, torch.nn.functional.conv_transpose1d(x, weight, bias, stride, padding,
/// output_padding, groups, dilation): y[n, g·C_out/groups + o, t·s + k·d − p] += x[n, c, t] · weight[c, o, k]
/// (c in group g; positions outside [0, L_out) dropped), then + bias; weight is [C_in, C_out/groups, K];
/// L_out = (L − 1)·s − 2p + d(K − 1) + output_padding + 1. It is the adjoint in x of conv1d with the same
/// weight, stride, padding and dilation. VJP: ∂x = conv1d(G; W), ∂W = conv1d's weight-gradient with
/// input G and output-gradient x, ∂b = Σ G.
public func convTranspose1d(_ x: Var, weight: Var, bias: Var?, stride: [Int] = [1], padding: [Int] = [0],
                            outputPadding: [Int] = [0], groups: Int = 1, dilation: [Int] = [1]) throws -> Var {
    let op = "conv_transpose1d"
    let t = try convTape(op, x, weight, bias)
    let g = try convGeometry(op: op, nd: 1, x: x.shape, weight: weight.shape, bias: bias?.shape, stride: stride,
                             padding: padding, dilation: dilation, groups: groups, outputPadding: outputPadding)
    let xv = x.value, wv = weight.value
    var y = g.inputGrad(gy: xv.data, weight: wv.data)
    if let b = bias?.value.data {
        for s in 0..<g.n { for ch in 0..<g.c { for k in 0..<g.w { y[(s * g.c + ch) * g.w + k] += b[ch] } } }
    }
    let parents = [x, weight] + (bias.map { [$0] } ?? [])
    let hasBias = bias != nil
    return t.record(Tensor(unchecked: [g.n, g.c, g.w], y), parents: parents) { gy, needs in
        var grads: [Tensor?] = [needs[0] ? Tensor(unchecked: xv.shape, g.forward(x: gy.data, weight: wv.data, bias: nil)) : nil,
                                needs[1] ? Tensor(unchecked: wv.shape, g.weightGrad(x: gy.data, gy: xv.data)) : nil]
        if hasBias && needs[2] {
            var gb = [Double](repeating: 0, count: g.c)
            gy.data.withUnsafeBufferPointer { p in
                for s in 0..<g.n { for ch in 0..<g.c { gb[ch] += sumContiguous(cvBase(p) + (s * g.c + ch) * g.w, g.w) } }
            }
            grads.append(Tensor(unchecked: [g.c], gb))
        } else if hasBias {
            grads.append(nil)
        }
        return grads
    }
}
