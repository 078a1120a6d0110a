// Protocol entries of the graph group: core.scaled_dot_product_attention, core.multihead_attention.

import Certification
import Ops
import Tensor

/// A random key-padding mask [n, s] (true = masked) keeping at least one key per row.
func graphRandomKeyMask(_ rng: inout RNG, _ n: Int, _ s: Int, p: Double = 0.4) -> Tensor {
    var m = (0..<(n * s)).map { _ in rng.bernoulli(p) ? 1.0 : 0.0 }
    for b in 0..<n where (0..<s).allSatisfy({ m[b * s + $0] != 0 }) { m[b * s + rng.int(below: s)] = 0 }
    return Tensor(unchecked: [n, s], m)
}

/// Values of `t` [B, S, …] at masked keys (mask [B, S]) replaced by fresh normal draws.
private func perturbMasked(_ t: Tensor, _ mask: Tensor, _ rng: inout RNG) -> Tensor {
    let (b, s) = (mask.shape[0], mask.shape[1])
    let inner = t.count / (b * s)
    var d = t.data
    for i in 0..<(b * s) where mask.data[i] != 0 { for j in 0..<inner { d[i * inner + j] = rng.normal() * 5 } }
    return Tensor(unchecked: t.shape, d)
}

private func sdpaRandom(_ rng: inout RNG) -> (Tensor, Tensor, Tensor, Tensor) {
    let (b, l, s, d, dv) = (1 + rng.int(below: 3), 1 + rng.int(below: 5), 1 + rng.int(below: 6), 1 + rng.int(below: 5), 1 + rng.int(below: 4))
    return (rng.normalTensor([b, l, d]), rng.normalTensor([b, s, d]), rng.normalTensor([b, s, dv]), graphRandomKeyMask(&rng, b, s))
}

private func sdpaValue(_ q: Tensor, _ k: Tensor, _ v: Tensor, _ mask: Tensor?) throws -> Tensor {
    let tape = Tape()
    return try scaledDotProductAttention(tape.leaf(q), tape.leaf(k), tape.leaf(v), keyPaddingMask: mask).value
}

let sdpaMethod = Method("core.scaled_dot_product_attention", properties: [
    Property("query_permutation_equivariance") { rng in
        let (q, k, v, mask) = sdpaRandom(&rng)
        let m: Tensor? = rng.bernoulli(0.5) ? mask : nil
        let perm = rng.permutation(q.shape[1])
        let out = try sdpaValue(q, k, v, m)
        let outP = try sdpaValue(graphReorder(q, axis: 1, perm), k, v, m)
        try requireClose(outP, graphReorder(out, axis: 1, perm), Tolerance(rtol: 1e-13, atol: 1e-14), "out of permuted queries")
    },
    Property("key_permutation_invariance") { rng in
        let (q, k, v, mask) = sdpaRandom(&rng)
        let perm = rng.permutation(k.shape[1])
        let out = try sdpaValue(q, k, v, mask)
        let outP = try sdpaValue(q, graphReorder(k, axis: 1, perm), graphReorder(v, axis: 1, perm), graphReorder(mask, axis: 1, perm))
        try requireClose(outP, out, Tolerance(rtol: 1e-12, atol: 1e-14), "out of permuted keys/values/mask")
    },
    Property("masked_keys_ignored") { rng in
        let (q, k, v, mask) = sdpaRandom(&rng)
        let c = rng.normalTensor([q.shape[0], q.shape[1], v.shape[2]])
        func run(_ k: Tensor, _ v: Tensor) throws -> (Tensor, [Tensor]) {
            let tape = Tape()
            let (qv, kv, vv) = (tape.leaf(q), tape.leaf(k), tape.leaf(v))
            let out = try scaledDotProductAttention(qv, kv, vv, keyPaddingMask: mask)
            return (out.value, try tape.gradients(of: [(out, c)], wrt: [qv, kv, vv]))
        }
        let (out, g) = try run(k, v)
        let (k2, v2) = (perturbMasked(k, mask, &rng), perturbMasked(v, mask, &rng))
        let (out2, g2) = try run(k2, v2)
        try requireClose(out2, out, Tolerance(rtol: 1e-14, atol: 1e-15), "out after changing masked keys/values")
        try requireClose(g2[0], g[0], Tolerance(rtol: 1e-13, atol: 1e-15), "∂q after changing masked keys/values")
        for (name, i, t) in [("k", 1, k), ("v", 2, v)] {
            let inner = t.count / mask.count
            for j in 0..<mask.count where mask.data[j] != 0 {
                for r in 0..<inner {
                    try require(g[i].data[j * inner + r] == 0 && g2[i].data[j * inner + r] == 0,
                                "∂\(name) of masked key \(Tensor.unravel(j, shape: mask.shape)) is \(g[i].data[j * inner + r]), not 0")
                }
            }
            try requireClose(g2[i], g[i], Tolerance(rtol: 1e-13, atol: 1e-15), "∂\(name) of unmasked keys after changing masked ones")
        }
    },
]) { ctx in
    let mask = try ctx.bool("has_mask", default: false) ? ctx.tensor("mask") : nil
    return ["out": try scaledDotProductAttention(ctx.v("q"), ctx.v("k"), ctx.v("v"), keyPaddingMask: mask)]
}

// MARK: - core.multihead_attention

private struct MHAInstance {
    var query, key, value, inW, inB, outW, outB: Tensor
    var heads: Int
    var mask: Tensor?

    init(_ rng: inout RNG, masked: Bool) {
        heads = 1 + rng.int(below: 3)
        let e = heads * (1 + rng.int(below: 3))
        let (l, s, n) = (1 + rng.int(below: 5), 1 + rng.int(below: 5), 1 + rng.int(below: 3))
        let w = 1 / Double(e).squareRoot()
        query = rng.normalTensor([l, n, e]); key = rng.normalTensor([s, n, e]); value = rng.normalTensor([s, n, e])
        inW = rng.normalTensor([3 * e, e]) * w; inB = rng.normalTensor([3 * e]) * 0.1
        outW = rng.normalTensor([e, e]) * w; outB = rng.normalTensor([e]) * 0.1
        mask = masked ? graphRandomKeyMask(&rng, n, s) : nil
    }

    func run() throws -> (Tensor, Tensor) {
        let t = Tape()
        let r = try multiheadAttention(query: t.leaf(query), key: t.leaf(key), value: t.leaf(value), numHeads: heads,
                                       inProjWeight: t.leaf(inW), inProjBias: t.leaf(inB), outProjWeight: t.leaf(outW),
                                       outProjBias: t.leaf(outB), keyPaddingMask: mask)
        return (r.attnOutput.value, r.attnWeights.value)
    }
}

let multiheadAttentionMethod = Method("core.multihead_attention", properties: [
    Property("query_permutation_equivariance") { rng in
        var m = MHAInstance(&rng, masked: rng.bernoulli(0.5))
        let perm = rng.permutation(m.query.shape[0])
        let (out, w) = try m.run()
        m.query = graphReorder(m.query, axis: 0, perm)
        let (outP, wP) = try m.run()
        try requireClose(outP, graphReorder(out, axis: 0, perm), Tolerance(rtol: 1e-12, atol: 1e-14), "attn_output of permuted queries")
        try requireClose(wP, graphReorder(w, axis: 1, perm), Tolerance(rtol: 1e-12, atol: 1e-14), "attn_weights of permuted queries")
    },
    Property("key_permutation_invariance") { rng in
        var m = MHAInstance(&rng, masked: rng.bernoulli(0.5))
        let perm = rng.permutation(m.key.shape[0])
        let (out, w) = try m.run()
        m.key = graphReorder(m.key, axis: 0, perm)
        m.value = graphReorder(m.value, axis: 0, perm)
        m.mask = m.mask.map { graphReorder($0, axis: 1, perm) }
        let (outP, wP) = try m.run()
        try requireClose(outP, out, Tolerance(rtol: 1e-12, atol: 1e-14), "attn_output of permuted keys/values")
        try requireClose(wP, graphReorder(w, axis: 2, perm), Tolerance(rtol: 1e-12, atol: 1e-14), "attn_weights of permuted keys/values")
    },
    Property("weights_stochastic") { rng in
        let m = MHAInstance(&rng, masked: true)
        let (_, w) = try m.run()
        let (n, l, s) = (w.shape[0], w.shape[1], w.shape[2])
        let sums = try w.sum(axes: [2])
        try requireClose(sums, Tensor(ones: [n, l]), Tolerance(rtol: 0, atol: 1e-14), "Σ_s attn_weights")
        for b in 0..<n {
            for i in 0..<l {
                for j in 0..<s where m.mask!.data[b * s + j] != 0 {
                    try require(w.data[(b * l + i) * s + j] == 0, "attn_weights[\(b), \(i), \(j)] = \(w.data[(b * l + i) * s + j]) at a masked key")
                }
            }
        }
        try require(w.data.allSatisfy { $0 >= 0 }, "a negative attention weight")
    },
]) { ctx in
    let mask = try ctx.bool("has_key_padding_mask", default: false) ? ctx.tensor("key_padding_mask") : nil
    let r = try multiheadAttention(query: ctx.v("query"), key: ctx.v("key"), value: ctx.v("value"), numHeads: ctx.int("num_heads"),
                                   inProjWeight: ctx.v("in_proj_weight"), inProjBias: ctx.optionalV("in_proj_bias"),
                                   outProjWeight: ctx.v("out_proj_weight"), outProjBias: ctx.optionalV("out_proj_bias"),
                                   keyPaddingMask: mask)
    return ["attn_output": r.attnOutput, "attn_weights": r.attnWeights]
}
