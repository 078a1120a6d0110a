// dartsgt.search — first-order DARTS bi-level steps of DARTS-GT (spec B.3, train/dartsgraphGT.py::DartsTrainerGraphSparse
// ._train_one_epoch, unrolled = false) and the discretisation (argmax of softmax(α) per layer, ties to the lowest index).

import Certification
import Foundation
import Ops
import Tensor

/// One batch of graphs: node features, edges, edge features, graph id per node, one regression target per graph.
public struct GraphBatch {
    public var x: Tensor, edges: EdgeList, edgeAttr: Tensor, graphs: [[Int]], y: Tensor
}

/// Running statistics that training updates in place (shared by the steps of one model).
public final class BufferStore: @unchecked Sendable {
    public var t: [String: Tensor]
    public init(_ t: [String: Tensor]) { self.t = t }
}

/// The search model: L NAS layers (layer ℓ uses α row groups[ℓ], the `weight_fix` sharing), mean pooling per graph, Linear(d, 1);
/// loss L1 (mean). Weights are named layers.<ℓ>.<module name>, head.weight, head.bias. With `discrete`, the same model with one
/// operator per layer and no mixed op (the final model); with `store`, BatchNorm running statistics are read from and updated in it.
public struct SearchModel {
    public var layers: Int, groups: [Int], heads: Int, edgeStream: Bool
    public var buffers: [String: Tensor]
    public var discrete: [GNNOperator]? = nil
    public var store: BufferStore? = nil
    public var training = true

    /// The model's output [B] on `batch` (train mode: BatchNorm on batch statistics; no dropout).
    public func predict(_ w: [String: Var], alpha: Var?, batch b: GraphBatch, tape: Tape) throws -> Var {
        var h = tape.constant(b.x)
        let ea = tape.constant(b.edgeAttr)
        for l in 0..<layers {
            let prefix = "layers.\(l)."
            let store = self.store, buffers = self.buffers, training = self.training
            var src = WeightSource(
                v: { n in guard let v = w[prefix + n] else { throw ShapeError("dartsgt.search", "the model has no weight '\(prefix + n)'") }; return v },
                tensor: { n in
                    guard let t = store?.t[prefix + n] ?? buffers[prefix + n] else { throw ShapeError("dartsgt.search", "the model has no buffer '\(prefix + n)'") }
                    return t
                },
                int: { n in n == "heads" ? self.heads : n == "training" ? (training ? 1 : 0) : n == "edge_stream" ? (self.edgeStream ? 1 : 0) : 0 },
                double: { _ in 0 }, masks: false)
            if let store { src.recordRunning = { n, m, v in store.t[prefix + n + ".running_mean"] = m; store.t[prefix + n + ".running_var"] = v } }
            let a: Var? = discrete == nil ? try reshape(try slice(alpha!, axis: 0, groups[l]..<(groups[l] + 1)), [alpha!.shape[1]]) : nil
            h = try nasLayerForward(src, h: h, edges: b.edges, edgeAttr: ea, alpha: a, discrete: discrete?[l]).out
        }
        var pooled: [Var] = []
        for g in b.graphs {
            pooled.append(try mean(try gather(h, axis: 0, index: Tensor(g.map(Double.init))), axes: [0], keepDims: true))
        }
        guard let hw = w["head.weight"], let hb = w["head.bias"] else { throw ShapeError("dartsgt.search", "the model has no head.weight / head.bias") }
        return try reshape(try linear(try concatenate(pooled, axis: 0), weight: hw, bias: hb), [b.graphs.count])
    }

    /// The L1 loss of the model with `w` and `alpha` [G, O] on `batch`.
    public func loss(_ w: [String: Var], alpha: Var?, batch b: GraphBatch, tape: Tape) throws -> Var {
        try l1Loss(try predict(w, alpha: alpha, batch: b, tape: tape), target: b.y)
    }
}

/// Discretisation (B.3): per layer, argmax_o softmax(α_{groups[ℓ]})_o, the first maximum (numpy.argmax).
public func discretise(_ alpha: Tensor, groups: [Int]) throws -> [Int] {
    let o = alpha.shape[1]
    return try groups.map { g in
        let p = try alpha.slice(axis: 0, g..<(g + 1)).reshaped([o]).softmax(axis: 0).data
        var best = 0
        for i in 1..<o where p[i] > p[best] { best = i }
        return best
    }
}

/// The result of `search`: α after each step, the two losses per step, the final weights.
public struct SearchTrace {
    public var alphas: [Tensor], valLoss: [Double], trainLoss: [Double], weights: [String: Tensor]
}

/// First-order DARTS (B.3), per step: (a) α.grad = 0, L_val(w, α) on the validation batch, Adam_α (lr 4e-4, betas (0.5, 0.999),
/// weight decay 1e-3); (b) w.grad = 0, L_tr(w, α) on the training batch, clip_grad_norm_(model.parameters(), 5) — which includes α,
/// whose train-loss gradient counts in the norm —, Adam_w (lr 0.0025, betas (0.9, 0.999), weight decay 3e-4).
public func search(model: SearchModel, weights: [String: Tensor], alpha: Tensor, train: GraphBatch, val: GraphBatch, steps: Int,
                   arcLR: Double = 4e-4, arcWeightDecay: Double = 1e-3, lr: Double = 0.0025, weightDecay: Double = 3e-4,
                   gradClip: Double = 5) throws -> SearchTrace {
    try search(model: model, weights: weights, alpha: alpha, pairs: Array(repeating: (train, val), count: steps), arcLR: arcLR,
               arcWeightDecay: arcWeightDecay, lr: lr, weightDecay: weightDecay, gradClip: gradClip)
}

/// The same steps over a sequence of (train, val) batch pairs (an epoch is zip(D_tr, D_val), B.3).
public func search(model: SearchModel, weights: [String: Tensor], alpha: Tensor, pairs: [(GraphBatch, GraphBatch)],
                   arcLR: Double = 4e-4, arcWeightDecay: Double = 1e-3, lr: Double = 0.0025, weightDecay: Double = 3e-4,
                   gradClip: Double = 5) throws -> SearchTrace {
    let names = weights.keys.sorted()
    let wParams = names.map { Parameter($0, weights[$0]!) }
    let aParam = Parameter("alpha", alpha)
    let adamA = try Adam([aParam], lr: arcLR, beta1: 0.5, beta2: 0.999, eps: 1e-8, weightDecay: arcWeightDecay)
    let adamW = try Adam(wParams, lr: lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: weightDecay)
    var trace = SearchTrace(alphas: [], valLoss: [], trainLoss: [], weights: [:])
    func run(_ b: GraphBatch) throws -> (Double, [Tensor], Tensor) {
        let tape = Tape()
        var w: [String: Var] = [:]
        for p in wParams { w[p.name] = tape.leaf(p.value) }
        let a = tape.leaf(aParam.value)
        let loss = try model.loss(w, alpha: a, batch: b, tape: tape)
        let g = try tape.gradients(of: loss, wrt: names.map { w[$0]! } + [a])
        return (loss.value.data[0], Array(g.dropLast()), g.last!)
    }
    for (train, val) in pairs {
        let (lv, _, ga) = try run(val)
        try adamA.step(grads: [ga])
        let (lt, gw, gaT) = try run(train)
        let clipped = try clipGradNorm(gw + [gaT], maxNorm: gradClip).grads
        try adamW.step(grads: Array(clipped.dropLast()))
        trace.alphas.append(aParam.value)
        trace.valLoss.append(lv)
        trace.trainLoss.append(lt)
    }
    for p in wParams { trace.weights[p.name] = p.value }
    return trace
}

private func batchFrom(_ ctx: Context, _ s: String) throws -> GraphBatch {
    let x = try ctx.tensor("\(s).x"), ea = try ctx.tensor("\(s).edge_attr")
    let edges = try EdgeList(try ctx.tensor("\(s).edge_index"), nodes: x.shape[0], edgeFeatures: ea.shape, op: "dartsgt.search")
    let graphs = try graphsOf(try ctx.tensor("\(s).batch"), nodes: x.shape[0], op: "dartsgt.search")
    let y = try ctx.tensor("\(s).y")
    guard y.shape == [graphs.count] else { throw ShapeError("dartsgt.search", "\(s).y has shape \(y.shape); expected [\(graphs.count)] (one target per graph)") }
    return GraphBatch(x: x, edges: edges, edgeAttr: ea, graphs: graphs, y: y)
}

let searchMethod = Method("dartsgt.search", properties: [
    Property("discretisation_tie_rule") { rng in
        let o = 2 + rng.int(below: 4)
        var a = (0..<o).map { _ in rng.normal() }
        let top = a.max()!
        let i = rng.int(below: o), j = rng.int(below: o)
        a[i] = top + 1; a[j] = top + 1
        let sel = try discretise(Tensor(unchecked: [1, o], a), groups: [0])
        try require(sel == [Swift.min(i, j)], "tie between \(i) and \(j) gave \(sel)")
        let shifted = try discretise(Tensor(unchecked: [1, o], a.map { $0 + 7.5 }), groups: [0])
        try require(shifted == sel, "argmax of softmax changed under α + c")
    },
]) { ctx in
    let alpha = try ctx.tensor("alpha")
    let groups = try ctx.ints("groups")
    let o = alpha.rank == 2 ? alpha.shape[1] : 0
    guard alpha.rank == 2, o == 3, groups.allSatisfy({ $0 >= 0 && $0 < alpha.shape[0] }) else {
        throw ShapeError("dartsgt.search", "alpha has shape \(alpha.shape); expected [G, 3] with every groups entry in 0..<G (groups \(groups))")
    }
    var weights: [String: Tensor] = [:], buffers: [String: Tensor] = [:]
    for name in ctx.data.inputs.keys where name.hasPrefix("layers.") || name.hasPrefix("head.") {
        if name.contains("running_") { buffers[name] = try ctx.tensor(name) } else { weights[name] = try ctx.tensor(name) }
    }
    let model = SearchModel(layers: groups.count, groups: groups, heads: try ctx.int("heads"), edgeStream: try ctx.int("edge_stream", default: 0) != 0,
                            buffers: buffers)
    let steps = try ctx.int("steps")
    guard steps >= 0, steps <= 1000 else { throw ShapeError("dartsgt.search", "steps must be in 0...1000, got \(steps)") }
    guard weights["head.weight"] != nil, weights["head.bias"] != nil else {
        throw ShapeError("dartsgt.search", "head.weight [1, d] and head.bias [1] are required")
    }
    let trace = try search(model: model, weights: weights, alpha: alpha, train: try batchFrom(ctx, "train"), val: try batchFrom(ctx, "val"), steps: steps)
    var out: [String: Var] = [
        "selected_initial": ctx.constant(Tensor(try discretise(alpha, groups: groups).map(Double.init))),
        "selected": ctx.constant(Tensor(try discretise(trace.alphas.last ?? alpha, groups: groups).map(Double.init))),
    ]
    if steps > 0 {
        out["alphas"] = ctx.constant(try Tensor.concatenate(trace.alphas.map { try $0.reshaped([1] + $0.shape) }, axis: 0))
        out["val_loss"] = ctx.constant(Tensor(trace.valLoss))
        out["train_loss"] = ctx.constant(Tensor(trace.trainLoss))
        for (k, v) in trace.weights { out["new." + k] = ctx.constant(v) }
    }
    return out
}
