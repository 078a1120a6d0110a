// Attention: masked_fill, scaled dot-product attention with a key-padding mask, and multi-head
// attention exactly as torch.nn.MultiheadAttention (sequence-first layout). Both attentions are
// compositions of tape ops — matmul, permute, masked_fill and a few private ops of this file (row
// softmax; for multi-head attention a packed in-projection, a fused attention core over all heads,
// the head mean of the weights and the out-projection) — so their gradients come from the tape.

import Foundation
import Tensor

/// torch.Tensor.masked_fill(mask, value): y = value where mask (broadcast to x's shape) is true
/// (≠ 0), else x. VJP: ∂x = g where the mask is false, 0 where it is true.
public func maskedFill(_ x: Var, mask: Tensor, value: Double) throws -> Var {
    let s = try Tensor.broadcastShape(x.shape, mask.shape, op: "masked_fill")
    guard s == x.shape else {
        throw ShapeError("masked_fill", "mask of shape \(mask.shape) does not broadcast to x of shape \(x.shape)")
    }
    let m = mask.shape == x.shape ? mask : try mask.broadcast(to: x.shape)
    var y = x.value.data
    for i in 0..<y.count where m.data[i] != 0 { y[i] = value }
    return x.tape.record(Tensor(unchecked: x.shape, y), parents: [x]) { g in
        var d = g.data
        for i in 0..<d.count where m.data[i] != 0 { d[i] = 0 }
        return [Tensor(unchecked: g.shape, d)]
    }
}

/// Softmax over the last axis of contiguous rows: y = exp(x − max)/Σ exp(x − max), the formula of
/// `softmax(_:axis:)` computed row by row without broadcasting temporaries (the attention hot
/// path). VJP: ∂x = y ⊙ (g − Σ_row g ⊙ y).
private func attentionSoftmax(_ x: Var) -> Var {
    let n = x.shape.last ?? 1
    let rows = n == 0 ? 0 : x.value.count / n
    var y = [Double](repeating: 0, count: x.value.count)
    x.value.data.withUnsafeBufferPointer { px in
        y.withUnsafeMutableBufferPointer { py in
            for r in 0..<rows {
                let o = r * n
                var m = -Double.infinity
                for j in 0..<n { m = Swift.max(m, px[o + j]) }
                var s = 0.0
                for j in 0..<n { let e = Foundation.exp(px[o + j] - m); py[o + j] = e; s += e }
                for j in 0..<n { py[o + j] /= s }
            }
        }
    }
    let yt = Tensor(unchecked: x.shape, y)
    return x.tape.record(yt, parents: [x]) { g in
        var d = [Double](repeating: 0, count: g.count)
        g.data.withUnsafeBufferPointer { pg in
            d.withUnsafeMutableBufferPointer { pd in
                for r in 0..<rows {
                    let o = r * n
                    var dot = 0.0
                    for j in 0..<n { dot += pg[o + j] * y[o + j] }
                    for j in 0..<n { pd[o + j] = y[o + j] * (pg[o + j] - dot) }
                }
            }
        }
        return [Tensor(unchecked: g.shape, d)]
    }
}

/// Checks a key-padding mask ([N, S], true = ignore) and that no row masks every key (PyTorch
/// would return NaN there).
private func checkKeyPaddingMask(_ op: String, _ mask: Tensor, batch: Int, keys: Int, what: String) throws {
    guard mask.shape == [batch, keys] else {
        throw ShapeError(op, "\(what) of shape \(mask.shape) must be [\(batch), \(keys)] ([batch, keys])")
    }
    for b in 0..<batch where keys > 0 {
        if (0..<keys).allSatisfy({ mask.data[b * keys + $0] != 0 }) {
            throw ShapeError(op, "\(what) row \(b) masks every key (the softmax would be 0/0)")
        }
    }
}

/// Scaled dot-product attention, A = softmax_s((q/√D)·kᵀ + M), out = A·v, with M = −∞ where the
/// key-padding mask is true (TRUE = MASKED, nn.MultiheadAttention's convention; the opposite of
/// the boolean attn_mask of torch.nn.functional.scaled_dot_product_attention).
/// q [B, L, D], k [B, S, D], v [B, S, Dv], keyPaddingMask [B, S] → out [B, L, Dv].
public func scaledDotProductAttention(_ q: Var, _ k: Var, _ v: Var, keyPaddingMask: Tensor? = nil) throws -> Var {
    let op = "scaled_dot_product_attention"
    guard q.value.rank == 3, k.value.rank == 3, v.value.rank == 3 else {
        throw ShapeError(op, "q, k, v must be [B, L, D], [B, S, D], [B, S, Dv]; got \(q.shape), \(k.shape), \(v.shape)")
    }
    let (b, d, s) = (q.shape[0], q.shape[2], k.shape[1])
    guard k.shape[0] == b, v.shape[0] == b, k.shape[2] == d, v.shape[1] == s else {
        throw ShapeError(op, "q, k, v must be [B, L, D], [B, S, D], [B, S, Dv]; got \(q.shape), \(k.shape), \(v.shape)")
    }
    guard ([q.shape, k.shape, v.shape].allSatisfy { !$0.contains(0) }) else {
        throw ShapeError(op, "empty dimension in q, k, v of shapes \(q.shape), \(k.shape), \(v.shape)")
    }
    _ = try sameTape(op, q, k, v)
    if let m = keyPaddingMask { try checkKeyPaddingMask(op, m, batch: b, keys: s, what: "mask") }
    var scores = try matmul(q * (1.0 / Double(d).squareRoot()), permute(k, [0, 2, 1]))
    if let m = keyPaddingMask { scores = try maskedFill(scores, mask: m.reshaped([b, 1, s]), value: -.infinity) }
    return try matmul(attentionSoftmax(scores), v)
}

/// y = x·wᵀ + b for x [M, K], w [N, K], b [N] — a private fused projection (one dgemm per product).
private func attentionProjection(_ x: Var, _ w: Var, _ b: Var?) throws -> Var {
    let t = try sameTape("multihead_attention", x, w)
    if let b { _ = try sameTape("multihead_attention", x, b) }
    var y = try Tensor.matmul(x.value, w.value, transposeB: true)
    let n = w.shape[0]
    if let b {
        y.data.withUnsafeMutableBufferPointer { p in
            b.value.data.withUnsafeBufferPointer { pb in
                for r in 0..<(p.count / Swift.max(n, 1)) { for j in 0..<n { p[r * n + j] += pb[j] } }
            }
        }
    }
    return t.record(y, parents: b.map { [x, w, $0] } ?? [x, w]) { g, needs in
        let gx = needs[0] ? try Tensor.matmul(g, w.value) : nil
        let gw = needs[1] ? try Tensor.matmul(g, x.value, transposeA: true) : nil
        guard b != nil else { return [gx, gw] }
        guard needs[2] else { return [gx, gw, nil] }
        var gb = [Double](repeating: 0, count: n)
        g.data.withUnsafeBufferPointer { p in
            for r in 0..<(p.count / Swift.max(n, 1)) { for j in 0..<n { gb[j] += p[r * n + j] } }
        }
        return [gx, gw, Tensor(unchecked: [n], gb)]
    }
}

/// The packed in-projection of multi-head attention as one op: for part p ∈ {q, k, v} with input
/// rows X_p [T_p·N, E], P_p = X_p·W_pᵀ + b_p where W_p = w[p·E..<(p+1)·E] and b_p likewise; the
/// result stacks P_q, P_k, P_v by rows, [(L + 2S)·N, E]. One op so that the gradient of the packed
/// weight is assembled in one buffer (∂W_p = G_pᵀ·X_p, ∂b_p = Σ_rows G_p, ∂X_p = G_p·W_p).
private func packedInProjection(_ xs: [Var], _ w: Var, _ b: Var?, e: Int) -> Var {
    let rows = xs.map { $0.shape[0] }
    let offsets = rows.indices.map { rows[..<$0].reduce(0, +) }
    let total = rows.reduce(0, +)
    // Every row block is written by its gemm (beta = 0), so the buffer starts uninitialised.
    var y = [Double](unsafeUninitializedCapacity: total * e) { _, count in count = total * e }
    w.value.data.withUnsafeBufferPointer { pw in
        y.withUnsafeMutableBufferPointer { py in
            for (p, x) in xs.enumerated() where rows[p] > 0 {
                x.value.data.withUnsafeBufferPointer { px in
                    BLAS.gemm(transA: false, transB: true, m: rows[p], n: e, k: e, a: px.baseAddress!, lda: e,
                              b: pw.baseAddress! + p * e * e, ldb: e, c: py.baseAddress! + offsets[p] * e, ldc: e)
                }
            }
            if let b {
                for p in 0..<xs.count {
                    for r in offsets[p]..<(offsets[p] + rows[p]) {
                        for j in 0..<e { py[r * e + j] += b.value.data[p * e + j] }
                    }
                }
            }
        }
    }
    let parents = xs + [w] + (b.map { [$0] } ?? [])
    return w.tape.record(Tensor(unchecked: [total, e], y), parents: parents) { g in
        var grads: [Tensor?] = []
        // ∂X_p and the three blocks of ∂W are each written whole by one gemm (beta = 0).
        var gw = [Double](unsafeUninitializedCapacity: 3 * e * e) { _, count in count = 3 * e * e }
        var gb = [Double](repeating: 0, count: 3 * e)
        g.data.withUnsafeBufferPointer { pg in
            w.value.data.withUnsafeBufferPointer { pw in
                gw.withUnsafeMutableBufferPointer { pgw in
                    for (p, x) in xs.enumerated() {
                        guard rows[p] > 0 else {
                            // No rows: ∂X_p is empty and this part's ∂W block is 0.
                            grads.append(Tensor(unchecked: x.shape, []))
                            (pgw.baseAddress! + p * e * e).initialize(repeating: 0, count: e * e)
                            continue
                        }
                        var gx = [Double](unsafeUninitializedCapacity: rows[p] * e) { _, count in count = rows[p] * e }
                        let gp = pg.baseAddress! + offsets[p] * e
                        gx.withUnsafeMutableBufferPointer { pgx in
                            BLAS.gemm(transA: false, transB: false, m: rows[p], n: e, k: e, a: gp, lda: e,
                                      b: pw.baseAddress! + p * e * e, ldb: e, c: pgx.baseAddress!, ldc: e)
                        }
                        x.value.data.withUnsafeBufferPointer { px in
                            BLAS.gemm(transA: true, transB: false, m: e, n: e, k: rows[p], a: gp, lda: e,
                                      b: px.baseAddress!, ldb: e, c: pgw.baseAddress! + p * e * e, ldc: e)
                        }
                        grads.append(Tensor(unchecked: x.shape, gx))
                        for r in 0..<rows[p] { for j in 0..<e { gb[p * e + j] += gp[r * e + j] } }
                    }
                }
            }
        }
        grads.append(Tensor(unchecked: w.shape, gw))
        if b != nil { grads.append(Tensor(unchecked: [3 * e], gb)) }
        return grads
    }
}

/// torch.nn.MultiheadAttention(E, numHeads, batch_first=False) in eval mode with need_weights=True
/// and average_attn_weights=True (torch.nn.functional.multi_head_attention_forward):
///   [Wq; Wk; Wv] = inProjWeight [3E, E], [bq; bk; bv] = inProjBias [3E];
///   Q = query·Wqᵀ + bq, K = key·Wkᵀ + bk, V = value·Wvᵀ + bv, split into heads of size d = E/H;
///   A_h = softmax((Q_h/√d)·K_hᵀ + M), M = −∞ at keys where keyPaddingMask [N, S] is true;
///   attnOutput = concat_h(A_h·V_h)·outProjWeightᵀ + outProjBias  [L, N, E];
///   attnWeights = mean_h A_h  [N, L, S].
/// query [L, N, E], key and value [S, N, E].
public func multiheadAttention(query: Var, key: Var, value: Var, numHeads: Int,
                               inProjWeight: Var, inProjBias: Var?, outProjWeight: Var, outProjBias: Var?,
                               keyPaddingMask: Tensor? = nil) throws -> (attnOutput: Var, attnWeights: Var) {
    let op = "multihead_attention"
    guard query.value.rank == 3, key.value.rank == 3, value.value.rank == 3 else {
        throw ShapeError(op, "query, key, value must be [L, N, E], [S, N, E], [S, N, E]; got \(query.shape), \(key.shape), \(value.shape)")
    }
    let (l, n, e) = (query.shape[0], query.shape[1], query.shape[2])
    let s = key.shape[0]
    guard key.shape == [s, n, e], value.shape == [s, n, e] else {
        throw ShapeError(op, "key and value must be [S, N, E] = [S, \(n), \(e)] like query \(query.shape); got \(key.shape), \(value.shape)")
    }
    guard l > 0, n > 0, e > 0, s > 0 else {
        throw ShapeError(op, "empty dimension in query \(query.shape) or key/value \(key.shape)")
    }
    guard numHeads > 0, e % numHeads == 0 else {
        throw ShapeError(op, "num_heads \(numHeads) must be positive and divide the embedding size \(e)")
    }
    guard inProjWeight.shape == [3 * e, e] else {
        throw ShapeError(op, "in_proj_weight of shape \(inProjWeight.shape) must be [3E, E] = [\(3 * e), \(e)]")
    }
    if let bq = inProjBias, bq.shape != [3 * e] {
        throw ShapeError(op, "in_proj_bias of shape \(bq.shape) must be [3E] = [\(3 * e)]")
    }
    guard outProjWeight.shape == [e, e] else {
        throw ShapeError(op, "out_proj_weight of shape \(outProjWeight.shape) must be [E, E] = [\(e), \(e)]")
    }
    if let bo = outProjBias, bo.shape != [e] {
        throw ShapeError(op, "out_proj_bias of shape \(bo.shape) must be [E] = [\(e)]")
    }
    _ = try sameTape(op, query, key, value, inProjWeight, outProjWeight)
    for b in [inProjBias, outProjBias].compactMap({ $0 }) { _ = try sameTape(op, query, b) }
    if let m = keyPaddingMask { try checkKeyPaddingMask(op, m, batch: n, keys: s, what: "key_padding_mask") }
    let h = numHeads, hd = e / numHeads

    // In-projections of all three inputs in one op; the attention core reads its heads in place.
    let packed = packedInProjection([try reshape(query, [l * n, e]), try reshape(key, [s * n, e]), try reshape(value, [s * n, e])],
                                    inProjWeight, inProjBias, e: e)
    let geometry = PackedAttention(l: l, s: s, n: n, h: h, d: hd, mask: keyPaddingMask?.data)
    let (ctx, attn) = packedAttentionCore(packed, geometry)  // [L·N, E], probabilities [N·H, L, S]
    let out = try reshape(attentionProjection(ctx, outProjWeight, outProjBias), [l, n, e])
    let weights = packedAttentionWeights(packed, attn, geometry)
    return (out, weights)
}

/// The layout of multi-head attention on the packed projection P [(L + 2S)·N, E] of
/// `packedInProjection`: part q holds rows t·N + b for t < L, then k and v hold rows (L + t)·N + b and
/// (L + S + t)·N + b for t < S; head h of batch b is the column block h·d..<(h+1)·d of its rows, a
/// [T, d] matrix with leading dimension N·E that BLAS reads in place.
private struct PackedAttention {
    let l: Int, s: Int, n: Int, h: Int, d: Int
    /// The key-padding mask [N, S] (≠ 0 = masked key), if any.
    let mask: [Double]?
    var e: Int { h * d }
    /// Leading dimension of a head's rows in P (and in the context [L·N, E]).
    var ld: Int { n * e }
    /// 1/√d, the scale of the scores.
    var alpha: Double { 1.0 / Double(d).squareRoot() }
    func q(_ b: Int, _ hi: Int) -> Int { b * e + hi * d }
    func k(_ b: Int, _ hi: Int) -> Int { (l * n + b) * e + hi * d }
    func v(_ b: Int, _ hi: Int) -> Int { ((l + s) * n + b) * e + hi * d }
    /// Offset of the [L, S] probabilities of (b, h) in the [N·H, L, S] buffer.
    func a(_ b: Int, _ hi: Int) -> Int { (b * h + hi) * l * s }

    /// ∂S = A ⊙ (∂A − Σ_row ∂A ⊙ A) for one head's [L, S] block, in place in `da` (softmax VJP; 0 at
    /// masked keys since A is 0 there).
    func softmaxBackward(_ a: UnsafePointer<Double>, _ da: UnsafeMutablePointer<Double>) {
        for r in 0..<l {
            let pa = a + r * s, pd = da + r * s
            var dot = 0.0
            for j in 0..<s { dot += pd[j] * pa[j] }
            for j in 0..<s { pd[j] = pa[j] * (pd[j] - dot) }
        }
    }

    /// ∂Q_h = α·∂S·K_h and ∂K_h = α·∂Sᵀ·Q_h, written (beta = 0) or added (beta = 1) into ∂P.
    func scoreBackward(_ p: UnsafePointer<Double>, _ ds: UnsafePointer<Double>, _ dp: UnsafeMutablePointer<Double>,
                       _ b: Int, _ hi: Int, beta: Double) {
        BLAS.gemm(transA: false, transB: false, m: l, n: d, k: s, alpha: alpha, a: ds, lda: s, b: p + k(b, hi), ldb: ld,
                  c: dp + q(b, hi), ldc: ld, beta: beta)
        BLAS.gemm(transA: true, transB: false, m: s, n: d, k: l, alpha: alpha, a: ds, lda: s, b: p + q(b, hi), ldb: ld,
                  c: dp + k(b, hi), ldc: ld, beta: beta)
    }
}

/// Scaled dot-product attention of every (batch, head) on the packed projection, as one op:
///   A_bh = softmax_s(α·Q_bh·K_bhᵀ + M_b), α = 1/√d, M_b = −∞ at masked keys;
///   ctx[t·N + b, h·d..<(h+1)·d] = (A_bh·V_bh)[t]  → ctx [L·N, E], torch's concatenation of heads.
/// The products read the heads and write the context in place through BLAS leading dimensions, so
/// there is no head split, merge or transpose copy; the softmax (with the mask) is fused. Returns the
/// context and the probabilities A [N·H, L, S]. VJP (∂C the context's cotangent): ∂A = ∂C_bh·V_bhᵀ,
/// ∂V_bh = A_bhᵀ·∂C_bh, ∂S = A ⊙ (∂A − Σ_row ∂A ⊙ A), ∂Q_bh = α·∂S·K_bh, ∂K_bh = α·∂Sᵀ·Q_bh; these
/// blocks tile ∂P exactly, so it is written without a zero fill.
private func packedAttentionCore(_ packed: Var, _ g: PackedAttention) -> (Var, [Double]) {
    let (l, s, n, h, d, ld) = (g.l, g.s, g.n, g.h, g.d, g.ld)
    let pv = packed.value
    var attn = [Double](unsafeUninitializedCapacity: n * h * l * s) { _, c in c = n * h * l * s }
    var ctx = [Double](unsafeUninitializedCapacity: l * n * g.e) { _, c in c = l * n * g.e }
    pv.data.withUnsafeBufferPointer { pp in
        attn.withUnsafeMutableBufferPointer { pa in
            ctx.withUnsafeMutableBufferPointer { pc in
                let p = pp.baseAddress!, a0 = pa.baseAddress!, c0 = pc.baseAddress!
                for b in 0..<n {
                    for hi in 0..<h {
                        let a = a0 + g.a(b, hi)
                        BLAS.gemm(transA: false, transB: true, m: l, n: s, k: d, alpha: g.alpha, a: p + g.q(b, hi), lda: ld,
                                  b: p + g.k(b, hi), ldb: ld, c: a, ldc: s)
                        // Row softmax; masked keys get probability 0 (exp(−∞) in torch's masked_fill + softmax).
                        for r in 0..<l {
                            let row = a + r * s
                            var m = -Double.infinity
                            if let mask = g.mask {
                                for j in 0..<s where mask[b * s + j] == 0 { m = Swift.max(m, row[j]) }
                                var sum = 0.0
                                for j in 0..<s {
                                    if mask[b * s + j] != 0 { row[j] = 0 } else { let x = Foundation.exp(row[j] - m); row[j] = x; sum += x }
                                }
                                for j in 0..<s { row[j] /= sum }
                            } else {
                                for j in 0..<s { m = Swift.max(m, row[j]) }
                                var sum = 0.0
                                for j in 0..<s { let x = Foundation.exp(row[j] - m); row[j] = x; sum += x }
                                for j in 0..<s { row[j] /= sum }
                            }
                        }
                        BLAS.gemm(transA: false, transB: false, m: l, n: d, k: s, a: a, lda: s, b: p + g.v(b, hi), ldb: ld,
                                  c: c0 + g.q(b, hi), ldc: ld)
                    }
                }
            }
        }
    }
    let probs = attn
    let out = packed.tape.record(Tensor(unchecked: [l * n, g.e], ctx), parents: [packed]) { gc in
        var dp = [Double](unsafeUninitializedCapacity: pv.count) { _, c in c = pv.count }
        var da = [Double](unsafeUninitializedCapacity: l * s) { _, c in c = l * s }  // one head's ∂A / ∂S, reused
        pv.data.withUnsafeBufferPointer { pp in
            probs.withUnsafeBufferPointer { pa in
                gc.data.withUnsafeBufferPointer { pg in
                    dp.withUnsafeMutableBufferPointer { pdp in
                        da.withUnsafeMutableBufferPointer { pda in
                            let p = pp.baseAddress!, dP = pdp.baseAddress!, dA = pda.baseAddress!, gC = pg.baseAddress!
                            for b in 0..<n {
                                for hi in 0..<h {
                                    let a = pa.baseAddress! + g.a(b, hi), gch = gC + g.q(b, hi)
                                    BLAS.gemm(transA: false, transB: true, m: l, n: s, k: d, a: gch, lda: ld,
                                              b: p + g.v(b, hi), ldb: ld, c: dA, ldc: s)
                                    BLAS.gemm(transA: true, transB: false, m: s, n: d, k: l, a: a, lda: s, b: gch, ldb: ld,
                                              c: dP + g.v(b, hi), ldc: ld)
                                    g.softmaxBackward(a, dA)
                                    g.scoreBackward(p, dA, dP, b, hi, beta: 0)
                                }
                            }
                        }
                    }
                }
            }
        }
        return [Tensor(unchecked: pv.shape, dp)]
    }
    return (out, attn)
}

/// attn_weights = mean_h A_bh → [N, L, S], an op on the packed projection that reuses the core's
/// probabilities. VJP (∂W its cotangent): ∂A_bh = ∂W_b/H, then the softmax and score VJPs of the core
/// into the q and k parts of ∂P (the v part gets 0).
private func packedAttentionWeights(_ packed: Var, _ attn: [Double], _ g: PackedAttention) -> Var {
    let (l, s, n, h) = (g.l, g.s, g.n, g.h)
    let r = l * s
    var y = [Double](repeating: 0, count: n * r)
    attn.withUnsafeBufferPointer { pa in
        for b in 0..<n {
            for k in 0..<h { let o = (b * h + k) * r; for j in 0..<r { y[b * r + j] += pa[o + j] } }
        }
    }
    let inv = 1.0 / Double(h)
    for j in 0..<y.count { y[j] *= inv }
    let pv = packed.value
    return packed.tape.record(Tensor(unchecked: [n, l, s], y), parents: [packed]) { gw in
        var dp = [Double](repeating: 0, count: pv.count)
        var da = [Double](repeating: 0, count: r)
        pv.data.withUnsafeBufferPointer { pp in
            attn.withUnsafeBufferPointer { pa in
                dp.withUnsafeMutableBufferPointer { pdp in
                    da.withUnsafeMutableBufferPointer { pda in
                        for b in 0..<n {
                            for hi in 0..<h {
                                for j in 0..<r { pda[j] = gw.data[b * r + j] * inv }
                                let a = pa.baseAddress! + g.a(b, hi)
                                g.softmaxBackward(a, pda.baseAddress!)
                                g.scoreBackward(pp.baseAddress!, pda.baseAddress!, pdp.baseAddress!, b, hi, beta: 0)
                            }
                        }
                    }
                }
            }
        }
        return [Tensor(unchecked: pv.shape, dp)]
    }
}
