// Normalisation layers as torch.nn.functional: batch_norm (train and eval), instance_norm,
// layer_norm. Statistics use the biased (÷M) variance, two-pass (mean, then Σ(x − μ)²).
// The kernels run over contiguous memory with unsafe buffers and SIMD reductions: a batch-norm
// forward+backward on [8, 128, 64, 64] is benchmarked against PyTorch.

import Foundation
import Tensor

// MARK: - Contiguous-segment kernels

/// Σ p[0..<n], four SIMD lanes × two accumulators.
@inline(__always)
func normSegmentSum(_ p: UnsafePointer<Double>, _ n: Int) -> Double {
    var a0 = SIMD4<Double>(), a1 = SIMD4<Double>()
    var i = 0
    let raw = UnsafeRawPointer(p)
    while i + 8 <= n {
        a0 += raw.loadUnaligned(fromByteOffset: i &* 8, as: SIMD4<Double>.self)
        a1 += raw.loadUnaligned(fromByteOffset: (i &+ 4) &* 8, as: SIMD4<Double>.self)
        i &+= 8
    }
    var s = (a0 + a1).sum()
    while i < n { s += p[i]; i &+= 1 }
    return s
}

/// Σ (p[i] − m)² over 0..<n.
@inline(__always)
func normSegmentSqDev(_ p: UnsafePointer<Double>, _ n: Int, _ m: Double) -> Double {
    var a0 = SIMD4<Double>(), a1 = SIMD4<Double>()
    let mv = SIMD4<Double>(repeating: m)
    var i = 0
    let raw = UnsafeRawPointer(p)
    while i + 8 <= n {
        let d0 = raw.loadUnaligned(fromByteOffset: i &* 8, as: SIMD4<Double>.self) - mv
        let d1 = raw.loadUnaligned(fromByteOffset: (i &+ 4) &* 8, as: SIMD4<Double>.self) - mv
        a0 += d0 * d0
        a1 += d1 * d1
        i &+= 8
    }
    var s = (a0 + a1).sum()
    while i < n { let d = p[i] - m; s += d * d; i &+= 1 }
    return s
}

/// (Σ g[i], Σ g[i]·(x[i] − m)) over 0..<n.
@inline(__always)
func normSegmentGradSums(_ g: UnsafePointer<Double>, _ x: UnsafePointer<Double>, _ n: Int, _ m: Double) -> (Double, Double) {
    var s0 = SIMD4<Double>(), s1 = SIMD4<Double>(), d0 = SIMD4<Double>(), d1 = SIMD4<Double>()
    let mv = SIMD4<Double>(repeating: m)
    var i = 0
    let rg = UnsafeRawPointer(g), rx = UnsafeRawPointer(x)
    while i + 8 <= n {
        let g0 = rg.loadUnaligned(fromByteOffset: i &* 8, as: SIMD4<Double>.self)
        let g1 = rg.loadUnaligned(fromByteOffset: (i &+ 4) &* 8, as: SIMD4<Double>.self)
        let x0 = rx.loadUnaligned(fromByteOffset: i &* 8, as: SIMD4<Double>.self) - mv
        let x1 = rx.loadUnaligned(fromByteOffset: (i &+ 4) &* 8, as: SIMD4<Double>.self) - mv
        s0 += g0
        s1 += g1
        d0 += g0 * x0
        d1 += g1 * x1
        i &+= 8
    }
    var sg = (s0 + s1).sum(), sd = (d0 + d1).sum()
    while i < n { sg += g[i]; sd += g[i] * (x[i] - m); i &+= 1 }
    return (sg, sd)
}

/// A new array of `n` doubles filled by `body` (no zero-initialisation pass).
@inline(__always)
func normUninitialized(_ n: Int, _ body: (UnsafeMutablePointer<Double>) -> Void) -> [Double] {
    [Double](unsafeUninitializedCapacity: n) { buf, count in
        if n > 0 { body(buf.baseAddress!) }
        count = n
    }
}

/// Statistics groups over contiguous memory: group k is the S segments of length L starting at
/// s·segStride + k·L (s < S). Batch norm: K = C, S = N, segStride = C·L. Instance norm: K = N·C, S = 1.
/// The affine parameters of group k are weight[k % C], bias[k % C].
struct NormGroups {
    var K: Int, S: Int, L: Int, segStride: Int, C: Int
    var M: Int { S * L }
    @inline(__always) func base(_ k: Int, _ s: Int) -> Int { s &* segStride &+ k &* L }
}

/// Forward of the grouped normalisation with input statistics: y, per-group mean and Σ(x − μ)².
func normGroupsForward(_ x: [Double], _ gr: NormGroups, eps: Double, weight: [Double]?, bias: [Double]?)
    -> (y: [Double], mean: [Double], sqDev: [Double], invstd: [Double]) {
    var mean = [Double](repeating: 0, count: gr.K), sq = mean, inv = mean
    let M = Double(gr.M)
    let y = normUninitialized(x.count) { py in
        x.withUnsafeBufferPointer { xb in
            let px = xb.baseAddress!
            for k in 0..<gr.K {
                var s = 0.0
                for seg in 0..<gr.S { s += normSegmentSum(px + gr.base(k, seg), gr.L) }
                let m = s / M
                var q = 0.0
                for seg in 0..<gr.S { q += normSegmentSqDev(px + gr.base(k, seg), gr.L, m) }
                let istd = 1.0 / (q / M + eps).squareRoot()
                mean[k] = m
                sq[k] = q
                inv[k] = istd
                let a = istd * (weight?[k % gr.C] ?? 1.0)
                let b = bias?[k % gr.C] ?? 0.0
                for seg in 0..<gr.S {
                    let o = gr.base(k, seg)
                    let xs = px + o, ys = py + o
                    for i in 0..<gr.L { ys[i] = (xs[i] - m) * a + b }
                }
            }
        }
    }
    return (y, mean, sq, inv)
}

/// Backward of `normGroupsForward` (input statistics, so μ and σ² depend on x):
/// dx = w·istd·(g − Σg/M − (x − μ)·istd²·Σg(x − μ)/M), dweight = Σ g·(x − μ)·istd, dbias = Σ g.
func normGroupsBackward(_ g: [Double], _ x: [Double], _ gr: NormGroups, mean: [Double], invstd: [Double],
                        weight: [Double]?, needX: Bool) -> (dx: [Double]?, dw: [Double], db: [Double]) {
    var dw = [Double](repeating: 0, count: gr.C), db = dw
    let M = Double(gr.M)
    var sumG = [Double](repeating: 0, count: gr.K), sumGX = sumG
    g.withUnsafeBufferPointer { gb in
        x.withUnsafeBufferPointer { xb in
            for k in 0..<gr.K {
                var sg = 0.0, sd = 0.0
                for seg in 0..<gr.S {
                    let o = gr.base(k, seg)
                    let (a, b) = normSegmentGradSums(gb.baseAddress! + o, xb.baseAddress! + o, gr.L, mean[k])
                    sg += a
                    sd += b
                }
                sumG[k] = sg
                sumGX[k] = sd
                db[k % gr.C] += sg
                dw[k % gr.C] += sd * invstd[k]
            }
        }
    }
    guard needX else { return (nil, dw, db) }
    let dx = normUninitialized(x.count) { pd in
        g.withUnsafeBufferPointer { gb in
            x.withUnsafeBufferPointer { xb in
                for k in 0..<gr.K {
                    let istd = invstd[k], m = mean[k]
                    let a = istd * (weight?[k % gr.C] ?? 1.0)
                    let mg = sumG[k] / M
                    let c2 = istd * istd * sumGX[k] / M
                    for seg in 0..<gr.S {
                        let o = gr.base(k, seg)
                        let gs = gb.baseAddress! + o, xs = xb.baseAddress! + o, ds = pd + o
                        for i in 0..<gr.L { ds[i] = (gs[i] - mg - (xs[i] - m) * c2) * a }
                    }
                }
            }
        }
    }
    return (dx, dw, db)
}

/// The common tape of `vs`, throwing when they come from different tapes.
func normTape(_ op: String, _ vs: [Var]) throws -> Tape {
    let t = vs[0].tape
    for v in vs.dropFirst() where v.tape !== t { throw ShapeError(op, "operands come from different tapes") }
    return t
}

/// Checks an optional per-channel parameter's shape.
func normCheckChannelParam(_ op: String, _ name: String, _ t: Tensor?, _ c: Int, _ xShape: [Int]) throws {
    guard let t else { return }
    guard t.shape == [c] else {
        throw ShapeError(op, "\(name) has shape \(t.shape), expected [\(c)] (the channel axis of x \(xShape))")
    }
}

/// Records a grouped normalisation with input statistics on the tape.
func normGroupsRecord(_ x: Var, _ gr: NormGroups, eps: Double, weight: Var?, bias: Var?, op: String) throws
    -> (y: Var, mean: [Double], sqDev: [Double]) {
    var parents = [x]
    if let weight { parents.append(weight) }
    if let bias { parents.append(bias) }
    let tape = try normTape(op, parents)
    let w = weight?.value.data
    let f = normGroupsForward(x.value.data, gr, eps: eps, weight: w, bias: bias?.value.data)
    let mean = f.mean, inv = f.invstd, xShape = x.shape, xd = x.value.data
    let hasW = weight != nil, hasB = bias != nil
    let y = tape.record(Tensor(unchecked: xShape, f.y), parents: parents) { g in
        let r = normGroupsBackward(g.data, xd, gr, mean: mean, invstd: inv, weight: w, needX: true)
        var out: [Tensor?] = [Tensor(unchecked: xShape, r.dx!)]
        if hasW { out.append(Tensor(unchecked: [gr.C], r.dw)) }
        if hasB { out.append(Tensor(unchecked: [gr.C], r.db)) }
        return out
    }
    return (y, f.mean, f.sqDev)
}

// MARK: - Batch norm

/// The result of `batchNorm`: the output and, in training mode with running statistics given,
/// the updated running statistics (nil otherwise).
public struct BatchNormOutput {
    public var y: Var
    public var runningMean: Tensor?
    public var runningVar: Tensor?
}

/// torch.nn.functional.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps).
///
/// x is [N, C] or [N, C, *spatial]; statistics are per channel (axis 1) over the M = N·Π spatial values.
/// Training: y = (x − μ_c)/√(σ²_c + eps)·weight[c] + bias[c] with the biased σ²; the running statistics
/// (when given) are updated as r ← (1 − momentum)·r + momentum·s, with the UNBIASED variance σ²·M/(M − 1)
/// for running_var (PyTorch's convention). Evaluation: the running statistics replace μ and σ²
/// (both required). Only y is differentiable; the running statistics carry no gradient.
public func batchNorm(_ x: Var, runningMean: Tensor?, runningVar: Tensor?, weight: Var?, bias: Var?,
                      training: Bool, momentum: Double = 0.1, eps: Double = 1e-5) throws -> BatchNormOutput {
    let op = "batch_norm"
    guard x.value.rank >= 2 else { throw ShapeError(op, "x has shape \(x.shape); expected [N, C] or [N, C, *spatial]") }
    let n = x.shape[0], c = x.shape[1]
    let inner = x.shape.dropFirst(2).reduce(1, *)
    for (name, t) in [("running_mean", runningMean), ("running_var", runningVar), ("weight", weight?.value), ("bias", bias?.value)] {
        try normCheckChannelParam(op, name, t, c, x.shape)
    }
    guard eps >= 0, eps.isFinite else { throw ShapeError(op, "eps must be finite and ≥ 0, got \(eps)") }
    guard (runningMean == nil) == (runningVar == nil) else {
        throw ShapeError(op, "running_mean and running_var must be given together")
    }
    if !training {
        guard let rm = runningMean, let rv = runningVar else {
            throw ShapeError(op, "evaluation mode needs running_mean and running_var (x \(x.shape))")
        }
        return BatchNormOutput(y: try batchNormEval(x, rm, rv, weight: weight, bias: bias, eps: eps), runningMean: nil, runningVar: nil)
    }
    let m = n * inner
    guard m > 1 else {
        throw ShapeError(op, "training needs more than 1 value per channel, x has shape \(x.shape)")
    }
    guard momentum.isFinite else { throw ShapeError(op, "momentum must be finite, got \(momentum)") }
    let gr = NormGroups(K: c, S: n, L: inner, segStride: c * inner, C: c)
    let r = try normGroupsRecord(x, gr, eps: eps, weight: weight, bias: bias, op: op)
    var newMean: Tensor?, newVar: Tensor?
    if let rm = runningMean, let rv = runningVar {
        let md = Double(m)
        newMean = Tensor(unchecked: [c], (0..<c).map { momentum * (r.mean[$0]) + (1 - momentum) * rm.data[$0] })
        newVar = Tensor(unchecked: [c], (0..<c).map { momentum * (r.sqDev[$0] / (md - 1)) + (1 - momentum) * rv.data[$0] })
    }
    return BatchNormOutput(y: r.y, runningMean: newMean, runningVar: newVar)
}

/// Evaluation-mode batch norm: y = (x − rm[c])·a_c + bias[c], a_c = weight[c]/√(rv[c] + eps).
/// Gradients: dx = g·a_c, dweight = Σ g·(x − rm)/√(rv + eps), dbias = Σ g.
func batchNormEval(_ x: Var, _ rm: Tensor, _ rv: Tensor, weight: Var?, bias: Var?, eps: Double) throws -> Var {
    let op = "batch_norm"
    var parents = [x]
    if let weight { parents.append(weight) }
    if let bias { parents.append(bias) }
    let tape = try normTape(op, parents)
    let n = x.shape[0], c = x.shape[1], inner = x.shape.dropFirst(2).reduce(1, *)
    let inv = rv.data.map { 1.0 / ($0 + eps).squareRoot() }
    let a = (0..<c).map { inv[$0] * (weight?.value.data[$0] ?? 1.0) }
    let b = bias?.value.data ?? [Double](repeating: 0, count: c)
    let mu = rm.data, xd = x.value.data, xShape = x.shape
    let y = normUninitialized(xd.count) { py in
        xd.withUnsafeBufferPointer { xb in
            for s in 0..<n {
                for k in 0..<c {
                    let o = (s * c + k) * inner
                    let (ak, bk, mk) = (a[k], b[k], mu[k])
                    for i in 0..<inner { py[o + i] = (xb[o + i] - mk) * ak + bk }
                }
            }
        }
    }
    let hasW = weight != nil, hasB = bias != nil
    return tape.record(Tensor(unchecked: xShape, y), parents: parents) { g in
        var dw = [Double](repeating: 0, count: c), db = dw
        let dx = normUninitialized(xd.count) { pd in
            g.data.withUnsafeBufferPointer { gb in
                xd.withUnsafeBufferPointer { xb in
                    for s in 0..<n {
                        for k in 0..<c {
                            let o = (s * c + k) * inner
                            let (ak, mk) = (a[k], mu[k])
                            var sg = 0.0, sd = 0.0
                            for i in 0..<inner {
                                let gi = gb[o + i]
                                pd[o + i] = gi * ak
                                sg += gi
                                sd += gi * (xb[o + i] - mk)
                            }
                            db[k] += sg
                            dw[k] += sd * inv[k]
                        }
                    }
                }
            }
        }
        var out: [Tensor?] = [Tensor(unchecked: xShape, dx)]
        if hasW { out.append(Tensor(unchecked: [c], dw)) }
        if hasB { out.append(Tensor(unchecked: [c], db)) }
        return out
    }
}

// MARK: - Instance norm

/// torch.nn.functional.instance_norm(x, weight=weight, bias=bias, use_input_stats=True, eps=eps):
/// per sample n and channel c, y = (x[n, c, ·] − μ_nc)/√(σ²_nc + eps)·weight[c] + bias[c], the
/// statistics over the spatial positions (biased variance). No running statistics.
public func instanceNorm(_ x: Var, weight: Var?, bias: Var?, eps: Double = 1e-5) throws -> Var {
    let op = "instance_norm"
    guard x.value.rank >= 3 else {
        throw ShapeError(op, "x has shape \(x.shape); expected [N, C, *spatial] with at least one spatial axis")
    }
    let n = x.shape[0], c = x.shape[1], inner = x.shape.dropFirst(2).reduce(1, *)
    guard inner > 1 else {
        throw ShapeError(op, "expected more than 1 spatial element per channel, x has shape \(x.shape)")
    }
    try normCheckChannelParam(op, "weight", weight?.value, c, x.shape)
    try normCheckChannelParam(op, "bias", bias?.value, c, x.shape)
    guard eps >= 0, eps.isFinite else { throw ShapeError(op, "eps must be finite and ≥ 0, got \(eps)") }
    let gr = NormGroups(K: n * c, S: 1, L: inner, segStride: 0, C: c)
    return try normGroupsRecord(x, gr, eps: eps, weight: weight, bias: bias, op: op).y
}

// MARK: - Layer norm

/// torch.nn.functional.layer_norm(x, normalized_shape, weight, bias, eps): over the trailing axes
/// given by `normalizedShape` (M elements), y = (x − μ)/√(σ² + eps)·weight + bias with the biased σ²;
/// weight and bias have shape `normalizedShape`.
/// VJP per row: dx = istd·(ĝ − Σĝ/M − x̂·Σĝx̂/M), ĝ = g·weight, x̂ = (x − μ)·istd;
/// dweight = Σ_rows g·x̂, dbias = Σ_rows g.
public func layerNorm(_ x: Var, normalizedShape: [Int], weight: Var?, bias: Var?, eps: Double = 1e-5) throws -> Var {
    let op = "layer_norm"
    let k = normalizedShape.count
    guard k >= 1, normalizedShape.allSatisfy({ $0 > 0 }) else {
        throw ShapeError(op, "normalized_shape \(normalizedShape) must be non-empty with positive sizes")
    }
    guard x.value.rank >= k, Array(x.shape.suffix(k)) == normalizedShape else {
        throw ShapeError(op, "normalized_shape \(normalizedShape) does not match the trailing axes of x \(x.shape)")
    }
    for (name, t) in [("weight", weight?.value), ("bias", bias?.value)] {
        if let t, t.shape != normalizedShape {
            throw ShapeError(op, "\(name) has shape \(t.shape), expected normalized_shape \(normalizedShape)")
        }
    }
    guard eps >= 0, eps.isFinite else { throw ShapeError(op, "eps must be finite and ≥ 0, got \(eps)") }
    var parents = [x]
    if let weight { parents.append(weight) }
    if let bias { parents.append(bias) }
    let tape = try normTape(op, parents)
    let m = normalizedShape.reduce(1, *)
    let rows = x.value.count / m
    let xd = x.value.data, xShape = x.shape
    let w = weight?.value.data, b = bias?.value.data
    // Per-row statistics, then y; all through raw pointers (no captured arrays mutated in the loops).
    var stats = [Double](repeating: 0, count: 2 * rows)  // mean at 2r, 1/σ at 2r + 1
    let y = normUninitialized(xd.count) { py in
        xd.withUnsafeBufferPointer { xb in
            stats.withUnsafeMutableBufferPointer { st in
                layerNormForwardRows(xb.baseAddress!, py, st.baseAddress!, rows, m, eps, w, b)
            }
        }
    }
    let hasW = weight != nil, hasB = bias != nil
    let statsC = stats
    return tape.record(Tensor(unchecked: xShape, y), parents: parents) { g in
        var dw = [Double](repeating: 0, count: m), db = dw
        let dx = normUninitialized(xd.count) { pd in
            g.data.withUnsafeBufferPointer { gb in
                xd.withUnsafeBufferPointer { xb in
                    statsC.withUnsafeBufferPointer { st in
                        dw.withUnsafeMutableBufferPointer { pdw in
                            db.withUnsafeMutableBufferPointer { pdb in
                                layerNormBackwardRows(gb.baseAddress!, xb.baseAddress!, st.baseAddress!, pd, pdw.baseAddress!,
                                                      pdb.baseAddress!, rows, m, w)
                            }
                        }
                    }
                }
            }
        }
        var out: [Tensor?] = [Tensor(unchecked: xShape, dx)]
        if hasW { out.append(Tensor(unchecked: normalizedShape, dw)) }
        if hasB { out.append(Tensor(unchecked: normalizedShape, db)) }
        return out
    }
}

/// Layer norm's forward over `rows` contiguous rows of length m: stats[2r] = μ, stats[2r + 1] = 1/√(σ² + eps),
/// y = (x − μ)·istd·w + b.
private func layerNormForwardRows(_ xb: UnsafePointer<Double>, _ py: UnsafeMutablePointer<Double>,
                                  _ st: UnsafeMutablePointer<Double>, _ rows: Int, _ m: Int, _ eps: Double,
                                  _ w: [Double]?, _ b: [Double]?) {
    let md = Double(m)
    func run(_ pw: UnsafePointer<Double>?, _ pb: UnsafePointer<Double>?) {
        for r in 0..<rows {
            let px = xb + r &* m, yr = py + r &* m
            let mu = normSegmentSum(px, m) / md
            let istd = 1.0 / (normSegmentSqDev(px, m, mu) / md + eps).squareRoot()
            st[2 &* r] = mu
            st[2 &* r &+ 1] = istd
            switch (pw, pb) {
            case let (pw?, pb?): for j in 0..<m { yr[j] = (px[j] - mu) * istd * pw[j] + pb[j] }
            case let (pw?, nil): for j in 0..<m { yr[j] = (px[j] - mu) * istd * pw[j] }
            case let (nil, pb?): for j in 0..<m { yr[j] = (px[j] - mu) * istd + pb[j] }
            case (nil, nil): for j in 0..<m { yr[j] = (px[j] - mu) * istd }
            }
        }
    }
    switch (w, b) {
    case let (w?, b?): w.withUnsafeBufferPointer { pw in b.withUnsafeBufferPointer { pb in run(pw.baseAddress, pb.baseAddress) } }
    case let (w?, nil): w.withUnsafeBufferPointer { pw in run(pw.baseAddress, nil) }
    case let (nil, b?): b.withUnsafeBufferPointer { pb in run(nil, pb.baseAddress) }
    case (nil, nil): run(nil, nil)
    }
}

/// Layer norm's VJP over the rows: per row, with x̂ = (x − μ)·istd and ĝ = g·w,
/// dx = (ĝ − Σĝ/m − x̂·Σĝx̂/m)·istd; dw += g·x̂, db += g (accumulated over rows into pdw, pdb).
/// The row sums Σĝ, Σĝx̂ use four-wide partial sums (vectorised), as the forward's statistics do.
private func layerNormBackwardRows(_ gb: UnsafePointer<Double>, _ xb: UnsafePointer<Double>, _ st: UnsafePointer<Double>,
                                   _ pd: UnsafeMutablePointer<Double>, _ pdw: UnsafeMutablePointer<Double>,
                                   _ pdb: UnsafeMutablePointer<Double>, _ rows: Int, _ m: Int, _ w: [Double]?) {
    let ones = w == nil ? [Double](repeating: 1, count: m) : []
    (w ?? ones).withUnsafeBufferPointer { wb in
        let pw = wb.baseAddress!
        let rg = UnsafeRawPointer(gb), rx = UnsafeRawPointer(xb), rw = UnsafeRawPointer(pw)
        let rdw = UnsafeMutableRawPointer(pdw), rdb = UnsafeMutableRawPointer(pdb), rd = UnsafeMutableRawPointer(pd)
        typealias V = SIMD4<Double>
        let md = Double(m), m4 = m & ~3
        for r in 0..<rows {
            let o = r &* m
            let mu = st[2 &* r], istd = st[2 &* r &+ 1]
            let vmu = V(repeating: mu), vistd = V(repeating: istd)
            var asg = V(), asgx = V()
            var j = 0
            while j < m4 {
                let bo = j &* 8, ro = (o &+ j) &* 8
                let gj = rg.loadUnaligned(fromByteOffset: ro, as: V.self)
                let xh = (rx.loadUnaligned(fromByteOffset: ro, as: V.self) - vmu) * vistd
                rdb.storeBytes(of: rdb.loadUnaligned(fromByteOffset: bo, as: V.self) + gj, toByteOffset: bo, as: V.self)
                rdw.storeBytes(of: rdw.loadUnaligned(fromByteOffset: bo, as: V.self) + gj * xh, toByteOffset: bo, as: V.self)
                let gw = gj * rw.loadUnaligned(fromByteOffset: bo, as: V.self)
                asg += gw
                asgx += gw * xh
                j &+= 4
            }
            var sg = asg.sum(), sgx = asgx.sum()
            while j < m {
                let gj = gb[o &+ j], xh = (xb[o &+ j] - mu) * istd
                pdb[j] += gj
                pdw[j] += gj * xh
                let gw = gj * pw[j]
                sg += gw
                sgx += gw * xh
                j &+= 1
            }
            let mg = sg / md, mx = sgx / md
            let vmg = V(repeating: mg), vmx = V(repeating: mx)
            j = 0
            while j < m4 {
                let bo = j &* 8, ro = (o &+ j) &* 8
                let gw = rg.loadUnaligned(fromByteOffset: ro, as: V.self) * rw.loadUnaligned(fromByteOffset: bo, as: V.self)
                let xh = (rx.loadUnaligned(fromByteOffset: ro, as: V.self) - vmu) * vistd
                rd.storeBytes(of: (gw - vmg - xh * vmx) * vistd, toByteOffset: ro, as: V.self)
                j &+= 4
            }
            while j < m {
                let xh = (xb[o &+ j] - mu) * istd
                pd[o &+ j] = (gb[o &+ j] * pw[j] - mg - xh * mx) * istd
                j &+= 1
            }
        }
    }
}
