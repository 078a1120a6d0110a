// dartsgt.gnn — the three candidate GNN operators of DARTS-GT (spec B.2): GINE (PyG GINEConv, ε = 0),
// CustomGatedGCN (GraphGPS's gated GCN layer) and GATv2 (PyG GATv2Conv defaults with edge features).

import Certification
import Foundation
import Ops
import Tensor

/// The candidate operators, in `head_gnn_types`' default order.
public enum GNNOperator: Int, Sendable, CaseIterable {
    case gine = 0, gatedGCN = 1, gatv2 = 2
    public var name: String { ["GINE", "CustomGatedGCN", "GATV2"][rawValue] }
}

/// GINE (eq. B.2a): x'_i = MLP(x_i + Σ_{j→i} ReLU(x_j + e_ji)), MLP = Lin–ReLU–Lin, ε = 0.
public func gine(_ x: Var, edges: EdgeList, edgeAttr: Var, w1: Var, b1: Var, w2: Var, b2: Var) throws -> Var {
    let msg = relu(try gather(x, axis: 0, index: edges.srcTensor) + edgeAttr)
    let h = try scatterAdd(msg, axis: 0, index: edges.dstTensor, dimSize: edges.nodes) + x
    return try linear(relu(try linear(h, weight: w1, bias: b1)), weight: w2, bias: b2)
}

/// The weights of one CustomGatedGCN layer (A, B, C, D, E are Linear(d, d) with bias; `bn` the node BatchNorm1d).
public struct GatedGCNWeights {
    public var a: (Var, Var), b: (Var, Var), c: (Var, Var), d: (Var, Var), e: (Var, Var)
    public var bnWeight: Var, bnBias: Var
    public var runningMean: Tensor, runningVar: Tensor
    public init(a: (Var, Var), b: (Var, Var), c: (Var, Var), d: (Var, Var), e: (Var, Var), bnWeight: Var, bnBias: Var,
                runningMean: Tensor, runningVar: Tensor) {
        self.a = a; self.b = b; self.c = c; self.d = d; self.e = e
        self.bnWeight = bnWeight; self.bnBias = bnBias; self.runningMean = runningMean; self.runningVar = runningVar
    }
}

/// CustomGatedGCN (eq. B.2b): ê_ij = D x_i + E x_j + C e_ij, σ_ij = sigmoid(ê_ij),
/// x'_i = A x_i + Σ_j σ_ij ⊙ B x_j / (Σ_j σ_ij + 1e-6); then BN → ReLU → dropout → residual x_i + x'_i.
/// Returns the node output and the BatchNorm's updated running statistics (train mode).
public func gatedGCN(_ x: Var, edges: EdgeList, edgeAttr: Var, weights w: GatedGCNWeights, dropoutMask: Tensor?, p: Double,
                     training: Bool) throws -> (x: Var, runningMean: Tensor?, runningVar: Tensor?) {
    let (src, dst) = (edges.srcTensor, edges.dstTensor)
    let ax = try linear(x, weight: w.a.0, bias: w.a.1), bx = try linear(x, weight: w.b.0, bias: w.b.1)
    let dx = try linear(x, weight: w.d.0, bias: w.d.1), ex = try linear(x, weight: w.e.0, bias: w.e.1)
    let ce = try linear(edgeAttr, weight: w.c.0, bias: w.c.1)
    let eHat = try gather(dx, axis: 0, index: dst) + gather(ex, axis: 0, index: src) + ce
    let sigma = sigmoid(eHat)
    let num = try scatterAdd(try sigma * gather(bx, axis: 0, index: src), axis: 0, index: dst, dimSize: edges.nodes)
    let den = try scatterAdd(sigma, axis: 0, index: dst, dimSize: edges.nodes)
    var h = try ax + (try num / (try den + scalar(x, 1e-6)))
    let bn = try batchNorm(h, runningMean: w.runningMean, runningVar: w.runningVar, weight: w.bnWeight, bias: w.bnBias, training: training)
    h = relu(bn.y)
    if training, let m = dropoutMask { h = try dropout(h, mask: m, p: p, training: true) }
    return (try x + h, training ? bn.runningMean : nil, training ? bn.runningVar : nil)
}

/// The weights of one GATv2Conv(d, C, heads: H, edge_dim: d).
public struct GATv2Weights {
    public var linL: (Var, Var), linR: (Var, Var), linEdge: Var, att: Var, bias: Var
    public init(linL: (Var, Var), linR: (Var, Var), linEdge: Var, att: Var, bias: Var) {
        self.linL = linL; self.linR = linR; self.linEdge = linEdge; self.att = att; self.bias = bias
    }
}

/// GATv2 (eq. B.2c): remove self-loops, add one per node with edge feature = mean of its in-edges' features (0 without);
/// α_ij = softmax_{j→i}(aᵀ LeakyReLU_{0.2}(W_r x_i + W_l x_j + W_e e_ij)) with PyG's + 1e-16; x'_i = ‖_h Σ_j α_ij W_l x_j + bias.
/// Returns the output and the attention coefficients [E', H] with the edge list they belong to.
public func gatv2(_ x: Var, edges: EdgeList, edgeAttr: Var, weights w: GATv2Weights, heads: Int) throws
    -> (x: Var, alpha: Var, edges: EdgeList) {
    let op = "dartsgt.gnn (GATv2)"
    let hc = w.linL.0.shape[0]
    guard heads >= 1, hc % heads == 0 else { throw ShapeError(op, "heads \(heads) must be ≥ 1 and divide lin_l's \(hc) outputs") }
    let c = hc / heads
    guard w.att.shape == [1, heads, c] else { throw ShapeError(op, "att has shape \(w.att.shape); expected [1, \(heads), \(c)]") }
    let n = edges.nodes
    let kept = (0..<edges.count).filter { edges.src[$0] != edges.dst[$0] }
    let keptIdx = Tensor(kept.map(Double.init))
    let eKept = try gather(edgeAttr, axis: 0, index: keptIdx)
    let keptDst = kept.map { edges.dst[$0] }
    var deg = [Double](repeating: 0, count: n)
    for t in keptDst { deg[t] += 1 }
    let inv = x.tape.constant(Tensor(unchecked: [n, 1], deg.map { 1 / Swift.max($0, 1) }))
    let loopAttr = try scatterAdd(eKept, axis: 0, index: Tensor(keptDst.map(Double.init)), dimSize: n) * inv
    let all = EdgeList(nodes: n, src: kept.map { edges.src[$0] } + Array(0..<n), dst: keptDst + Array(0..<n))
    let e = all.count
    let attr = try concatenate([eKept, loopAttr], axis: 0)
    let xl = try linear(x, weight: w.linL.0, bias: w.linL.1), xr = try linear(x, weight: w.linR.0, bias: w.linR.1)
    let xj = try gather(xl, axis: 0, index: all.srcTensor)
    let z = try leakyRelu(try gather(xr, axis: 0, index: all.dstTensor) + xj + linear(attr, weight: w.linEdge, bias: nil),
                          negativeSlope: 0.2)
    let score = try sum(try reshape(z, [e, heads, c]) * w.att, axes: [2])
    let alpha = try segmentSoftmax(score, index: all.dstTensor, numNodes: n)
    let msg = try reshape(xj, [e, heads, c]) * reshape(alpha, [e, heads, 1])
    let out = try reshape(try scatterAdd(msg, axis: 0, index: all.dstTensor, dimSize: n), [n, hc]) + w.bias
    return (out, alpha, all)
}

/// Where a layer's weights, buffers and settings come from: a golden case (`init(_: Context)`) or a model's parameters (search).
public struct WeightSource {
    public var v: (String) throws -> Var
    public var tensor: (String) throws -> Tensor
    public var int: (String) throws -> Int
    public var double: (String) throws -> Double
    /// Whether train mode reads explicit dropout keep-masks (golden cases) or runs without dropout (p = 0, the search goldens).
    public var masks: Bool
    /// Receives each BatchNorm's updated running statistics in train mode (name of the module, mean, var); nil ignores them.
    public var recordRunning: ((String, Tensor, Tensor) -> Void)? = nil

    public init(v: @escaping (String) throws -> Var, tensor: @escaping (String) throws -> Tensor, int: @escaping (String) throws -> Int,
                double: @escaping (String) throws -> Double, masks: Bool) {
        self.v = v; self.tensor = tensor; self.int = int; self.double = double; self.masks = masks
    }

    public init(_ ctx: Context) {
        self.init(v: { try ctx.v($0) }, tensor: { try ctx.tensor($0) }, int: { try ctx.int($0, default: 0) },
                  double: { try ctx.double($0) }, masks: true)
    }

    func flag(_ n: String) throws -> Bool { try int(n) != 0 }
}

/// The operator `op` on a case's or a model's weights (names gine.*, gated.*, gatv2.*).
func gnnForward(_ w: WeightSource, op: GNNOperator, x: Var, edges: EdgeList, edgeAttr: Var) throws -> (out: Var, extra: [String: Var]) {
    func lin(_ n: String) throws -> (Var, Var) { (try w.v(n + ".weight"), try w.v(n + ".bias")) }
    switch op {
    case .gine:
        let (w1, b1) = try lin("gine.nn.0"), (w2, b2) = try lin("gine.nn.2")
        return (try gine(x, edges: edges, edgeAttr: edgeAttr, w1: w1, b1: b1, w2: w2, b2: b2), [:])
    case .gatedGCN:
        let training = try w.flag("training")
        let g = GatedGCNWeights(a: try lin("gated.A"), b: try lin("gated.B"), c: try lin("gated.C"), d: try lin("gated.D"),
                                e: try lin("gated.E"), bnWeight: try w.v("gated.bn.weight"), bnBias: try w.v("gated.bn.bias"),
                                runningMean: try w.tensor("gated.bn.running_mean"), runningVar: try w.tensor("gated.bn.running_var"))
        let mask = training && w.masks ? try w.tensor("gated.dropout_mask") : nil
        let p = training && w.masks ? try w.double("dropout") : 0
        let r = try gatedGCN(x, edges: edges, edgeAttr: edgeAttr, weights: g, dropoutMask: mask, p: p, training: training)
        if let m = r.runningMean, let v = r.runningVar { w.recordRunning?("gated.bn", m, v) }
        var extra: [String: Var] = [:]
        if let m = r.runningMean, let v = r.runningVar {
            extra["gated.bn.new_running_mean"] = x.tape.constant(m)
            extra["gated.bn.new_running_var"] = x.tape.constant(v)
        }
        return (r.x, extra)
    case .gatv2:
        let g = GATv2Weights(linL: try lin("gatv2.lin_l"), linR: try lin("gatv2.lin_r"), linEdge: try w.v("gatv2.lin_edge.weight"),
                             att: try w.v("gatv2.att"), bias: try w.v("gatv2.bias"))
        return (try gatv2(x, edges: edges, edgeAttr: edgeAttr, weights: g, heads: try w.int("heads")).x, [:])
    }
}

func gnnOperator(_ ctx: Context) throws -> GNNOperator {
    let raw = try ctx.int("op")
    guard let op = GNNOperator(rawValue: raw) else { throw ShapeError("dartsgt.gnn", "op must be 0 (GINE), 1 (CustomGatedGCN) or 2 (GATV2), got \(raw)") }
    return op
}

/// One random graph with isolated nodes, a multi-edge and a self-loop, for the properties.
struct RandomGraph {
    var x: Tensor, edges: EdgeList, attr: Tensor
    init(_ rng: inout RNG, n: Int, e: Int, d: Int) {
        x = rng.normalTensor([n, d])
        var s = (0..<e).map { _ in rng.int(below: n) }, t = (0..<e).map { _ in rng.int(below: n) }
        if e >= 2 { s[1] = s[0]; t[1] = t[0] }
        edges = EdgeList(nodes: n, src: s, dst: t)
        attr = rng.normalTensor([e, d])
    }
    /// Relabels node i as perm[i] and reorders the edges by `edgePerm`.
    func permuted(_ perm: [Int], edgePerm: [Int]) -> RandomGraph {
        var g = self
        var xd = [Double](repeating: 0, count: x.count)
        let d = x.shape[1]
        for i in 0..<x.shape[0] { for k in 0..<d { xd[perm[i] * d + k] = x.data[i * d + k] } }
        g.x = Tensor(unchecked: x.shape, xd)
        g.edges = EdgeList(nodes: edges.nodes, src: edgePerm.map { perm[edges.src[$0]] }, dst: edgePerm.map { perm[edges.dst[$0]] })
        var ad = [Double]()
        for e in edgePerm { ad += attr.data[(e * d)..<((e + 1) * d)] }
        g.attr = Tensor(unchecked: attr.shape, ad)
        return g
    }
}

/// Rows of `t` moved: out[perm[i]] = t[i].
func scatterRows(_ t: Tensor, _ perm: [Int]) -> Tensor {
    let d = t.count / t.shape[0]
    var out = [Double](repeating: 0, count: t.count)
    for i in 0..<t.shape[0] { for k in 0..<d { out[perm[i] * d + k] = t.data[i * d + k] } }
    return Tensor(unchecked: t.shape, out)
}

private func randomGNN(_ rng: inout RNG, _ op: GNNOperator, _ g: RandomGraph, heads: Int) throws -> Tensor {
    let tape = Tape()
    let d = g.x.shape[1]
    func lin(_ o: Int, _ i: Int) -> (Var, Var) { (tape.leaf(rng.normalTensor([o, i]) * (1 / Double(i).squareRoot())), tape.leaf(rng.normalTensor([o]) * 0.1)) }
    let x = tape.leaf(g.x), ea = tape.leaf(g.attr)
    switch op {
    case .gine:
        let (w1, b1) = lin(d, d), (w2, b2) = lin(d, d)
        return try gine(x, edges: g.edges, edgeAttr: ea, w1: w1, b1: b1, w2: w2, b2: b2).value
    case .gatedGCN:
        let w = GatedGCNWeights(a: lin(d, d), b: lin(d, d), c: lin(d, d), d: lin(d, d), e: lin(d, d), bnWeight: tape.leaf(Tensor(ones: [d])),
                                bnBias: tape.leaf(Tensor(zeros: [d])), runningMean: rng.normalTensor([d]), runningVar: Tensor(ones: [d]))
        return try gatedGCN(x, edges: g.edges, edgeAttr: ea, weights: w, dropoutMask: nil, p: 0, training: false).x.value
    case .gatv2:
        let w = GATv2Weights(linL: lin(d, d), linR: lin(d, d), linEdge: lin(d, d).0, att: tape.leaf(rng.normalTensor([1, heads, d / heads])),
                             bias: tape.leaf(rng.normalTensor([d]) * 0.1))
        return try gatv2(x, edges: g.edges, edgeAttr: ea, weights: w, heads: heads).x.value
    }
}

let gnnMethod = Method("dartsgt.gnn", properties: [
    Property("node_permutation_equivariance") { rng in
        let op = GNNOperator(rawValue: rng.int(below: 3))!
        let g = RandomGraph(&rng, n: 2 + rng.int(below: 6), e: 1 + rng.int(below: 10), d: 4)
        let perm = rng.permutation(g.x.shape[0]), eperm = rng.permutation(g.edges.count)
        var r1 = rng, r2 = rng
        let out = try randomGNN(&r1, op, g, heads: 2)
        let outP = try randomGNN(&r2, op, g.permuted(perm, edgePerm: eperm), heads: 2)
        try requireClose(outP, scatterRows(out, perm), Tolerance(rtol: 1e-12, atol: 1e-13), "\(op.name) output of the relabelled graph")
    },
    Property("gated_mean_invariance") { rng in
        // With B = 0 and b_B = v, the gated aggregate is v·Σσ/(Σσ + 1e-6) for a node with in-edges (B.6 item 7).
        let g = RandomGraph(&rng, n: 2 + rng.int(below: 5), e: 2 + rng.int(below: 8), d: 3)
        let tape = Tape()
        let v = rng.normalTensor([3])
        func z() -> Var { tape.leaf(Tensor(zeros: [3, 3])) }
        func zb() -> Var { tape.leaf(Tensor(zeros: [3])) }
        let c = tape.leaf(rng.normalTensor([3, 3]))
        let w = GatedGCNWeights(a: (z(), zb()), b: (z(), tape.leaf(v)), c: (c, zb()), d: (tape.leaf(rng.normalTensor([3, 3])), zb()),
                                e: (tape.leaf(rng.normalTensor([3, 3])), zb()), bnWeight: tape.leaf(Tensor(ones: [3])), bnBias: zb(),
                                runningMean: Tensor(zeros: [3]), runningVar: Tensor(ones: [3]))
        // Undo BN (identity statistics up to eps), ReLU and the residual: compare before them by using x = 0.
        let x = tape.leaf(Tensor(zeros: g.x.shape))
        let out = try gatedGCN(x, edges: g.edges, edgeAttr: tape.leaf(g.attr), weights: w, dropoutMask: nil, p: 0, training: false).x.value
        let scale = 1 / (1 + 1e-5).squareRoot()
        let n = g.x.shape[0]
        var sig = [Double](repeating: 0, count: n * 3)
        for e in 0..<g.edges.count {
            for k in 0..<3 {
                var z = 0.0
                for j in 0..<3 { z += c.value.data[k * 3 + j] * g.attr.data[e * 3 + j] }
                sig[g.edges.dst[e] * 3 + k] += 1 / (1 + Foundation.exp(-z))
            }
        }
        for i in 0..<n where g.edges.dst.contains(i) {
            for k in 0..<3 {
                let s = sig[i * 3 + k]
                let got = out.data[i * 3 + k], want = Swift.max(v.data[k] * s / (s + 1e-6) * scale, 0)
                try require(Swift.abs(got - want) <= 1e-12 * Swift.max(1, Swift.abs(want)), "node \(i) channel \(k): \(got) vs v·Σσ/(Σσ+1e-6) = \(want)")
                try require(Swift.abs(got - Swift.max(v.data[k] * scale, 0)) <= 1e-6 / s * Swift.abs(v.data[k]) + 1e-15, "node \(i): the gated mean is not ≈ v")
            }
        }
    },
    Property("gatv2_attention_sums_to_one") { rng in
        let g = RandomGraph(&rng, n: 2 + rng.int(below: 6), e: 1 + rng.int(below: 10), d: 4)
        let tape = Tape()
        func lin() -> (Var, Var) { (tape.leaf(rng.normalTensor([4, 4])), tape.leaf(rng.normalTensor([4]))) }
        let w = GATv2Weights(linL: lin(), linR: lin(), linEdge: lin().0, att: tape.leaf(rng.normalTensor([1, 2, 2])), bias: lin().1)
        let r = try gatv2(tape.leaf(g.x), edges: g.edges, edgeAttr: tape.leaf(g.attr), weights: w, heads: 2)
        var sums = [Double](repeating: 0, count: g.x.shape[0] * 2)
        for e in 0..<r.edges.count { for h in 0..<2 { sums[r.edges.dst[e] * 2 + h] += r.alpha.value.data[e * 2 + h] } }
        // Every node has its self-loop, so every row sums to one.
        try require(sums.allSatisfy { Swift.abs($0 - 1) < 1e-14 }, "Σ_j α_ij = \(sums)")
    },
]) { ctx in
    let x = try ctx.v("x"), ea = try ctx.v("edge_attr")
    let edges = try EdgeList(try ctx.tensor("edge_index"), nodes: x.shape[0], edgeFeatures: ea.shape, op: "dartsgt.gnn")
    guard x.value.rank == 2, ea.shape[1] == x.shape[1] else {
        throw ShapeError("dartsgt.gnn", "x has shape \(x.shape) and edge_attr \(ea.shape); expected [N, d] and [E, d]")
    }
    let r = try gnnForward(WeightSource(ctx), op: try gnnOperator(ctx), x: x, edges: edges, edgeAttr: ea)
    return r.extra.merging(["out": r.out]) { a, _ in a }
}
