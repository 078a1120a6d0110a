// Attention: masked_fill, scaled dot-product attention with a key-padding mask, and multi-head
// attention exactly as torch.nn.MultiheadAttention (sequence-first layout). Both attentions are
// compositions of tape ops (matmul, softmax, reshape/permute, …), so their gradients come from the tape.

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
    guard d > 0 else { throw ShapeError(op, "the head dimension D must be > 0, got q of shape \(q.shape)") }
    _ = try sameTape(op, q, k, v)
    if let m = keyPaddingMask { try checkKeyPaddingMask(op, m, batch: b, keys: s, what: "mask") }
    var scores = try matmul(q * (1.0 / Double(d).squareRoot()), permute(k, [0, 2, 1]))
    if let m = keyPaddingMask { scores = try maskedFill(scores, mask: m.reshaped([b, 1, s]), value: -.infinity) }
    return try matmul(softmax(scores, axis: -1), v)
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
    return t.record(y, parents: b.map { [x, w, $0] } ?? [x, w]) { g in
        let gx = try Tensor.matmul(g, w.value)
        let gw = try Tensor.matmul(g, x.value, transposeA: true)
        guard b != nil else { return [gx, gw] }
        var gb = [Double](repeating: 0, count: n)
        g.data.withUnsafeBufferPointer { p in
            for r in 0..<(p.count / Swift.max(n, 1)) { for j in 0..<n { gb[j] += p[r * n + j] } }
        }
        return [gx, gw, Tensor(unchecked: [n], gb)]
    }
}

/// Rows `start..<start+length` of a matrix or vector (torch.narrow on axis 0). VJP: zero-padded g.
private func narrowRows(_ x: Var, _ start: Int, _ length: Int) throws -> Var {
    let y = try x.value.slice(axis: 0, start..<(start + length))
    let inner = x.shape.dropFirst().reduce(1, *)
    return x.tape.record(y, parents: [x]) { g in
        var d = [Double](repeating: 0, count: x.value.count)
        d.replaceSubrange((start * inner)..<((start + length) * inner), with: g.data)
        return [Tensor(unchecked: x.shape, d)]
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

    // In-projections on [L·N, E] rows.
    func project(_ x: Var, _ part: Int, _ rows: Int) throws -> Var {
        let w = try narrowRows(inProjWeight, part * e, e)
        let b = try inProjBias.map { try narrowRows($0, part * e, e) }
        return try attentionProjection(reshape(x, [rows * n, e]), w, b)
    }
    // [T·N, E] → [T, N·H, d] → [N·H, T, d] (torch: .view(T, N*H, d).transpose(0, 1)).
    func heads(_ x: Var, _ t: Int) throws -> Var { try permute(reshape(x, [t, n * h, hd]), [1, 0, 2]) }
    let q = try heads(project(query, 0, l), l) * (1.0 / Double(hd).squareRoot())
    let k = try heads(project(key, 1, s), s)
    let v = try heads(project(value, 2, s), s)

    var scores = try matmul(q, permute(k, [0, 2, 1]))  // [N·H, L, S]
    if let m = keyPaddingMask {
        scores = try reshape(maskedFill(reshape(scores, [n, h, l, s]), mask: m.reshaped([n, 1, 1, s]), value: -.infinity),
                             [n * h, l, s])
    }
    let attn = try softmax(scores, axis: -1)
    let ctx = try reshape(permute(matmul(attn, v), [1, 0, 2]), [l * n, e])  // [L·N, E]
    let out = try reshape(attentionProjection(ctx, outProjWeight, outProjBias), [l, n, e])
    let weights = try mean(reshape(attn, [n, h, l, s]), axes: [1])
    return (out, weights)
}
