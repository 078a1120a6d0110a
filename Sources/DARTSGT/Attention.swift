// dartsgt.attention — DARTS-GT's asymmetric attention (spec B.1 step 4): queries from the node features H, keys and values from the
// mixed GNN output KV. Sparse path (SparseGraphAttention: no query projection, edge softmax over in-edges) and dense path
// (nn.MultiheadAttention(query = H, key = value = KV) per graph), with the LRGB Q-MLP variant.

import Certification
import Foundation
import Ops
import Tensor

/// Sparse asymmetric attention (B.1 step 4): Q = H split into heads (no projection), K = KV W_kᵀ + b_k, V = KV W_vᵀ + b_v;
/// s_e = ⟨K_j, Q_i⟩/√d_h for e = (j → i); a = edge softmax over the in-edges of i (+ 1e-16); Out_i = W_o ‖_h Σ_e a_e V_j + b_o.
/// A node without in-edges gets b_o. `attnMask` is the attention-dropout keep-mask [E, H] (train mode).
/// Returns the output and the attention weights a [E, H] before dropout.
public func sparseAttention(h: Var, kv: Var, edges: EdgeList, heads: Int, wk: Var, bk: Var, wv: Var, bv: Var, wo: Var, bo: Var,
                            attnMask: Tensor? = nil, p: Double = 0) throws -> (out: Var, attn: Var) {
    let op = "dartsgt.attention"
    let (n, d) = (h.shape[0], h.shape[1])
    guard heads >= 1, d % heads == 0 else { throw ShapeError(op, "heads \(heads) must be ≥ 1 and divide d = \(d)") }
    guard kv.shape == h.shape else { throw ShapeError(op, "kv has shape \(kv.shape); expected \(h.shape) like h") }
    let dh = d / heads, e = edges.count
    let q = try reshape(h, [n, heads, dh])
    let k = try reshape(try linear(kv, weight: wk, bias: bk), [n, heads, dh])
    let v = try reshape(try linear(kv, weight: wv, bias: bv), [n, heads, dh])
    let (src, dst) = (edges.srcTensor, edges.dstTensor)
    let s = try sum(try gather(k, axis: 0, index: src) * gather(q, axis: 0, index: dst), axes: [2]) * (1 / Double(dh).squareRoot())
    let a = try segmentSoftmax(s, index: dst, numNodes: n)
    var aUsed = a
    if let m = attnMask { aUsed = try dropout(a, mask: m, p: p, training: true) }
    let msg = try gather(v, axis: 0, index: src) * reshape(aUsed, [e, heads, 1])
    let agg = try reshape(try scatterAdd(msg, axis: 0, index: dst, dimSize: n), [n, d])
    return (try linear(agg, weight: wo, bias: bo), a)
}

/// The node lists of each graph of a batch vector (graph ids 0..<B, every graph non-empty).
public func graphsOf(_ batch: Tensor, nodes n: Int, op: String) throws -> [[Int]] {
    guard batch.shape == [n] else { throw ShapeError(op, "batch has shape \(batch.shape); expected [N] = [\(n)]") }
    var groups: [[Int]] = []
    for (i, v) in batch.data.enumerated() {
        guard v.isFinite, v.rounded() == v, v >= 0, v < Double(n) else { throw ShapeError(op, "batch[\(i)] = \(v) is not a graph id in 0..<\(n)") }
        let g = Int(v)
        while groups.count <= g { groups.append([]) }
        groups[g].append(i)
    }
    guard groups.allSatisfy({ !$0.isEmpty }) else { throw ShapeError(op, "batch skips a graph id: every graph 0..<\(groups.count) needs ≥ 1 node") }
    return groups
}

/// Dense asymmetric attention: per graph, nn.MultiheadAttention(query = H_g, key = value = KV_g) (with W_q, W_k, W_v and out_proj).
/// Identical to the official to_dense_batch + key_padding_mask path (a masked key gets weight exactly 0; padded query rows are
/// dropped). With `qMLP`, Q = Lin–ReLU–Lin(H) and KV ← KV + residualMult·H (NAS_layer_qproj.py). Returns the output and, per graph,
/// the head-averaged attention weights [1, n_g, n_g].
public func denseAttention(h: Var, kv: Var, graphs: [[Int]], heads: Int, inProjWeight: Var, inProjBias: Var, outProjWeight: Var,
                           outProjBias: Var, qMLP: ((Var, Var), (Var, Var))? = nil, residualMult: Double = 0.1) throws -> (out: Var, weights: [Var]) {
    let (n, d) = (h.shape[0], h.shape[1])
    guard kv.shape == h.shape else { throw ShapeError("dartsgt.attention", "kv has shape \(kv.shape); expected \(h.shape) like h") }
    var query = h, key = kv
    if let ((w1, b1), (w2, b2)) = qMLP {
        query = try linear(relu(try linear(h, weight: w1, bias: b1)), weight: w2, bias: b2)
        key = try kv + h * residualMult
    }
    var out: Var?
    var weights: [Var] = []
    for g in graphs {
        let idx = Tensor(g.map(Double.init))
        let qg = try reshape(try gather(query, axis: 0, index: idx), [g.count, 1, d])
        let kg = try reshape(try gather(key, axis: 0, index: idx), [g.count, 1, d])
        let r = try multiheadAttention(query: qg, key: kg, value: kg, numHeads: heads, inProjWeight: inProjWeight, inProjBias: inProjBias,
                                       outProjWeight: outProjWeight, outProjBias: outProjBias)
        let part = try scatterAdd(try reshape(r.attnOutput, [g.count, d]), axis: 0, index: idx, dimSize: n)
        out = try out.map { try $0 + part } ?? part
        weights.append(r.attnWeights)
    }
    return (out!, weights)
}

private struct SparseInstance {
    var h, kv, wk, bk, wv, bv, wo, bo: Tensor
    var edges: EdgeList
    var heads: Int
    init(_ rng: inout RNG) {
        heads = 1 + rng.int(below: 3)
        let d = heads * (1 + rng.int(below: 3)), n = 2 + rng.int(below: 6)
        let g = RandomGraph(&rng, n: n, e: 1 + rng.int(below: 12), d: d)
        h = g.x; edges = g.edges; kv = rng.normalTensor([n, d])
        let s = 1 / Double(d).squareRoot()
        wk = rng.normalTensor([d, d]) * s; wv = rng.normalTensor([d, d]) * s; wo = rng.normalTensor([d, d]) * s
        bk = rng.normalTensor([d]) * 0.1; bv = rng.normalTensor([d]) * 0.1; bo = rng.normalTensor([d]) * 0.1
    }
    func run() throws -> (Tensor, Tensor) {
        let t = Tape()
        let r = try sparseAttention(h: t.leaf(h), kv: t.leaf(kv), edges: edges, heads: heads, wk: t.leaf(wk), bk: t.leaf(bk), wv: t.leaf(wv),
                                    bv: t.leaf(bv), wo: t.leaf(wo), bo: t.leaf(bo))
        return (r.out.value, r.attn.value)
    }
}

let attentionMethod = Method("dartsgt.attention", properties: [
    Property("in_edge_weights_sum_to_one") { rng in
        let m = SparseInstance(&rng)
        let (out, a) = try m.run()
        var sums = [Double](repeating: 0, count: m.h.shape[0] * m.heads)
        for e in 0..<m.edges.count { for k in 0..<m.heads { sums[m.edges.dst[e] * m.heads + k] += a.data[e * m.heads + k] } }
        let d = m.h.shape[1]
        for i in 0..<m.h.shape[0] {
            if m.edges.dst.contains(i) {
                for k in 0..<m.heads { try require(Swift.abs(sums[i * m.heads + k] - 1) < 1e-14, "node \(i) head \(k): Σ a = \(sums[i * m.heads + k])") }
            } else {
                try require(Array(out.data[(i * d)..<((i + 1) * d)]) == m.bo.data, "node \(i) has no in-edge but its output is not b_o")
            }
        }
    },
    Property("edge_order_invariance") { rng in
        var m = SparseInstance(&rng)
        let (out, _) = try m.run()
        let perm = rng.permutation(m.edges.count)
        m.edges = EdgeList(nodes: m.edges.nodes, src: perm.map { m.edges.src[$0] }, dst: perm.map { m.edges.dst[$0] })
        let (outP, _) = try m.run()
        try requireClose(outP, out, Tolerance(rtol: 1e-12, atol: 1e-13), "output with permuted edges")
    },
    Property("node_permutation_equivariance") { rng in
        var m = SparseInstance(&rng)
        let (out, _) = try m.run()
        let perm = rng.permutation(m.h.shape[0])
        m.h = scatterRows(m.h, perm); m.kv = scatterRows(m.kv, perm)
        m.edges = EdgeList(nodes: m.edges.nodes, src: m.edges.src.map { perm[$0] }, dst: m.edges.dst.map { perm[$0] })
        let (outP, _) = try m.run()
        try requireClose(outP, scatterRows(out, perm), Tolerance(rtol: 1e-12, atol: 1e-13), "output of the relabelled graph")
    },
    Property("query_from_h_only") { rng in
        // The asymmetry (B.6 item 4): changing KV (what the GNN weights produce) changes the keys and values but the scores' query
        // side is H itself; changing H with KV fixed changes only the queries. Check: the output is unchanged when KV changes on
        // nodes that are no edge's source (their K, V are never read), while Q = H is used directly.
        var m = SparseInstance(&rng)
        let (out, _) = try m.run()
        let d = m.h.shape[1]
        var kv = m.kv.data
        for i in 0..<m.h.shape[0] where !m.edges.src.contains(i) { for k in 0..<d { kv[i * d + k] += rng.normal() } }
        m.kv = Tensor(unchecked: m.kv.shape, kv)
        let (out2, _) = try m.run()
        try requireClose(out2, out, Tolerance(rtol: 0, atol: 0), "output after changing KV on non-source nodes")
        // Scaling H by c on one target with one head of size 1 scales its scores by c: check the scores' query is raw H.
        let t = Tape()
        let hv = t.leaf(m.h)
        let q = try reshape(hv, [m.h.shape[0], m.heads, d / m.heads]).value
        try require(q.data == m.h.data, "the query is not H reshaped")
    },
    Property("dense_padding_invariance") { rng in
        // Per-graph MHA equals MHA on the padded batch: adding a second graph leaves the first graph's output unchanged.
        let heads = 1 + rng.int(below: 2), d = 2 * heads
        let n1 = 1 + rng.int(below: 4), n2 = 1 + rng.int(below: 5)
        let h = rng.normalTensor([n1 + n2, d]), kv = rng.normalTensor([n1 + n2, d])
        let inW = rng.normalTensor([3 * d, d]), inB = rng.normalTensor([3 * d]), oW = rng.normalTensor([d, d]), oB = rng.normalTensor([d])
        func run(_ h: Tensor, _ kv: Tensor, _ graphs: [[Int]]) throws -> Tensor {
            let t = Tape()
            return try denseAttention(h: t.leaf(h), kv: t.leaf(kv), graphs: graphs, heads: heads, inProjWeight: t.leaf(inW), inProjBias: t.leaf(inB),
                                      outProjWeight: t.leaf(oW), outProjBias: t.leaf(oB)).out.value
        }
        let both = try run(h, kv, [Array(0..<n1), Array(n1..<(n1 + n2))])
        let first = try run(try h.slice(axis: 0, 0..<n1), try kv.slice(axis: 0, 0..<n1), [Array(0..<n1)])
        try requireClose(try both.slice(axis: 0, 0..<n1), first, Tolerance(rtol: 1e-12, atol: 1e-13), "graph 1's output beside graph 2")
    },
]) { ctx in
    let h = try ctx.v("h"), kv = try ctx.v("kv")
    guard h.value.rank == 2, h.shape[0] >= 1 else { throw ShapeError("dartsgt.attention", "h has shape \(h.shape); expected [N, d] with N ≥ 1") }
    let heads = try ctx.int("heads")
    if try ctx.int("dense") != 0 {
        let graphs = try graphsOf(try ctx.tensor("batch"), nodes: h.shape[0], op: "dartsgt.attention")
        let q: ((Var, Var), (Var, Var))? = try flag(ctx, "q_mlp")
            ? ((try ctx.v("q_mlp.0.weight"), try ctx.v("q_mlp.0.bias")), (try ctx.v("q_mlp.2.weight"), try ctx.v("q_mlp.2.bias"))) : nil
        let r = try denseAttention(h: h, kv: kv, graphs: graphs, heads: heads, inProjWeight: try ctx.v("self_attn.in_proj_weight"),
                                   inProjBias: try ctx.v("self_attn.in_proj_bias"), outProjWeight: try ctx.v("self_attn.out_proj.weight"),
                                   outProjBias: try ctx.v("self_attn.out_proj.bias"), qMLP: q)
        return ["out": r.out]
    }
    let edges = try EdgeList(try ctx.tensor("edge_index"), nodes: h.shape[0], op: "dartsgt.attention")
    let training = try flag(ctx, "training")
    let mask = training ? try ctx.tensor("attn_mask") : nil
    let r = try sparseAttention(h: h, kv: kv, edges: edges, heads: heads, wk: try ctx.v("self_attn.W_k.weight"), bk: try ctx.v("self_attn.W_k.bias"),
                                wv: try ctx.v("self_attn.W_v.weight"), bv: try ctx.v("self_attn.W_v.bias"),
                                wo: try ctx.v("self_attn.W_o.weight"), bo: try ctx.v("self_attn.W_o.bias"),
                                attnMask: mask, p: training ? try ctx.double("attn_dropout") : 0)
    return ["out": r.out, "attn": r.attn]
}
