// dartsgt.layer — the full DARTS-GT search layer (spec B.1 steps 1–6, NAS_layer_edge.py::NASLayer.forward, sparse variant):
// experts → mixed op → asymmetric sparse attention → dropout + residual + BN₁ → gated edge stream → FFN → BN₂.

import Certification
import Foundation
import Ops
import Tensor

/// Dropout when training and a keep-mask is given; identity otherwise.
func maybeDropout(_ x: Var, _ mask: Tensor?, _ p: Double, _ training: Bool) throws -> Var {
    guard training, let mask else { return x }
    return try dropout(x, mask: mask, p: p, training: true)
}

/// One NAS layer (B.1): Y_o from the three candidate operators (GINE and GATv2 through dropout_kv, the GatedGCN with its own
/// dropout), the mixed op (eq. 3), sparse attention with Q = H (eq. 4), H₁ = BN₁(Drop(Out) + H) (+ σ(g)·Σ_{e→i} MLP_e(X_e) in the
/// `…Edge` models), H₂ = BN₂(H₁ + Drop(W₂ Drop(ReLU(W₁H₁ + c₁)) + c₂)) (eqs. 5–6). Reads the weights under their module names.
/// With `discrete`, the discretised layer of the final model (discrete_nas_layer_edge.py): KV = BN_kv(Drop(GNN_{op*}(H))), without
/// the joint standardisation and the expert dropout (spec B.3); `alpha` is then unused.
func nasLayerForward(_ w: WeightSource, h: Var, edges: EdgeList, edgeAttr: Var, alpha: Var?, discrete: GNNOperator? = nil) throws
    -> (out: Var, kv: Var, attn: Var) {
    let training = try w.flag("training")
    let useMasks = training && w.masks
    let p = useMasks ? try w.double("dropout") : 0
    func mask(_ n: String) throws -> Tensor? { useMasks ? try w.tensor(n) : nil }
    func bn(_ x: Var, _ n: String) throws -> Var {
        let r = try batchNorm(x, runningMean: try w.tensor(n + ".running_mean"), runningVar: try w.tensor(n + ".running_var"),
                              weight: try w.v(n + ".weight"), bias: try w.v(n + ".bias"), training: training)
        if let m = r.runningMean, let v = r.runningVar, training { w.recordRunning?(n, m, v) }
        return r.y
    }
    let kvOut: Var
    if let op = discrete {
        var y = try gnnForward(w, op: op, x: h, edges: edges, edgeAttr: edgeAttr).out
        if op != .gatedGCN { y = try maybeDropout(y, try mask(op == .gine ? "gine.dropout_kv_mask" : "gatv2.dropout_kv_mask"), p, training) }
        kvOut = try bn(y, "bn_kv")
    } else {
        var experts: [Var] = []
        for op in GNNOperator.allCases {
            var y = try gnnForward(w, op: op, x: h, edges: edges, edgeAttr: edgeAttr).out
            if op == .gine { y = try maybeDropout(y, try mask("gine.dropout_kv_mask"), p, training) }
            if op == .gatv2 { y = try maybeDropout(y, try mask("gatv2.dropout_kv_mask"), p, training) }
            experts.append(y)
        }
        var masks: [Tensor]?
        if useMasks {
            let m = try w.tensor("expert_mask")
            masks = try (0..<m.shape[0]).map { try m.slice(axis: 0, $0..<($0 + 1)).reshaped(Array(m.shape.dropFirst())) }
        }
        let mixed = try mixedOp(experts: experts, alpha: alpha!, bnWeight: try w.v("bn_kv.weight"), bnBias: try w.v("bn_kv.bias"),
                                runningMean: try w.tensor("bn_kv.running_mean"), runningVar: try w.tensor("bn_kv.running_var"),
                                training: training, expertMasks: masks, p: useMasks ? try w.double("expert_dropout") : 0)
        if let m = mixed.runningMean, let v = mixed.runningVar { w.recordRunning?("bn_kv", m, v) }
        kvOut = mixed.kv
    }
    let att = try sparseAttention(h: h, kv: kvOut, edges: edges, heads: try w.int("heads"),
                                  wk: try w.v("self_attn.W_k.weight"), bk: try w.v("self_attn.W_k.bias"),
                                  wv: try w.v("self_attn.W_v.weight"), bv: try w.v("self_attn.W_v.bias"),
                                  wo: try w.v("self_attn.W_o.weight"), bo: try w.v("self_attn.W_o.bias"),
                                  attnMask: try mask("attn_mask"), p: useMasks ? try w.double("attn_dropout") : 0)
    var h1 = try bn(try maybeDropout(att.out, try mask("dropout_attn_mask"), p, training) + h, "norm1_attn")
    if try w.flag("edge_stream") {
        var ef = relu(try linear(edgeAttr, weight: try w.v("edge_processor.0.weight"), bias: try w.v("edge_processor.0.bias")))
        ef = try maybeDropout(ef, try mask("edge_processor.mask_1"), p, training)
        ef = try linear(ef, weight: try w.v("edge_processor.3.weight"), bias: try w.v("edge_processor.3.bias"))
        ef = try maybeDropout(ef, try mask("edge_processor.mask_2"), p, training)
        let agg = try scatterAdd(ef, axis: 0, index: edges.dstTensor, dimSize: edges.nodes)
        h1 = try h1 + sigmoid(try w.v("edge_gate")) * agg
    }
    var ff = relu(try linear(h1, weight: try w.v("ff_linear1.weight"), bias: try w.v("ff_linear1.bias")))
    ff = try maybeDropout(ff, try mask("ff_mask_1"), p, training)
    ff = try maybeDropout(try linear(ff, weight: try w.v("ff_linear2.weight"), bias: try w.v("ff_linear2.bias")), try mask("ff_mask_2"), p, training)
    return (try bn(try h1 + ff, "norm2"), kvOut, att.attn)
}

let layerMethod = Method("dartsgt.layer") { ctx in
    let h = try ctx.v("h"), ea = try ctx.v("edge_attr")
    let edges = try EdgeList(try ctx.tensor("edge_index"), nodes: h.shape[0], edgeFeatures: ea.shape, op: "dartsgt.layer")
    let r = try nasLayerForward(WeightSource(ctx), h: h, edges: edges, edgeAttr: ea, alpha: try ctx.v("alpha"))
    return ["out": r.out, "kv": r.kv, "attn": r.attn]
}
