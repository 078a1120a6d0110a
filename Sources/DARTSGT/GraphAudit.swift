// `certify graph-audit`: the DARTS-GT explainer (dartsgt.explain, spec B.4) run on a trained discrete model and a data set, both in
// HDF5. Every head (ℓ, m) is ablated by zeroing rows m·d_h…(m+1)·d_h of W_k and W_v and the same columns of W_o (sparse path), the
// model is re-run per graph in eval mode, and δ, S, the top-k heads, F, r and ρ are computed per graph, then summarised.
//
// Model file (HDF5; what a user exports from PyTorch, see docs/dartsgt/README.md):
//   /config/heads, /config/edge_stream (0/1), /config/pooling (0 mean, 1 add), /config/task (0 regression, 1 binary, 2 multiclass,
//   3 multilabel)                                            int64 scalars
//   /ops                [L] int64: the discretised operator per layer (0 GINE, 1 CustomGatedGCN, 2 GATV2)
//   /layers/<ℓ>/<name>  the layer's weights and BatchNorm buffers under dartsgt.layer's names (only the chosen operator's)
//   /head/<i>/weight, /head/<i>/bias   the graph head: Linear layers with ReLU between them, applied after pooling
// Data file: /x [N, d], /edge_index [2, E] (int64), /edge_attr [E, d], /batch [N] (graph id, int64), /y [B, T] (multiclass: [B, 1]).

import Certification
import Foundation
import HDF5
import Ops
import Tensor

/// One graph of a data set.
public struct AuditGraph {
    public var x: Tensor, edges: EdgeList, edgeAttr: Tensor, y: [Double]
}

private func readTensor(_ f: File, _ path: String, file: String) throws -> Tensor {
    guard f.contains(path) else { throw InputError(file: file, object: "/" + path, "missing dataset") }
    let ds = try f.dataset(path)
    return Tensor(unchecked: try ds.shape, try ds.readDoubles())
}

/// Reads the data file and splits it into graphs (nodes by /batch, edges by their source's graph, node ids made local).
public func loadAuditGraphs(path: String) throws -> [AuditGraph] {
    let f = try File.open(path)
    let x = try readTensor(f, "x", file: path), ei = try readTensor(f, "edge_index", file: path)
    let ea = try readTensor(f, "edge_attr", file: path), b = try readTensor(f, "batch", file: path), y = try readTensor(f, "y", file: path)
    guard x.rank == 2, x.shape[0] >= 1 else { throw InputError(file: path, object: "/x", "shape \(x.shape); expected [N, d] with N ≥ 1 (a graph with no nodes)") }
    let n = x.shape[0], d = x.shape[1]
    let edges: EdgeList
    do { edges = try EdgeList(ei, nodes: n, edgeFeatures: ea.shape, op: "graph-audit") } catch let e as ShapeError {
        throw InputError(file: path, object: "/edge_index or /edge_attr", e.message)
    }
    guard ea.shape[1] == d else { throw InputError(file: path, object: "/edge_attr", "shape \(ea.shape); expected [E, d] = [\(edges.count), \(d)]") }
    let groups: [[Int]]
    do { groups = try graphsOf(b, nodes: n, op: "graph-audit") } catch let e as ShapeError { throw InputError(file: path, object: "/batch", e.message) }
    guard y.rank == 2, y.shape[0] == groups.count else {
        throw InputError(file: path, object: "/y", "shape \(y.shape); expected [B, T] with B = \(groups.count) graphs")
    }
    let t = y.shape[1]
    var out: [AuditGraph] = []
    for (g, nodes) in groups.enumerated() {
        var local = [Int: Int]()
        for (i, v) in nodes.enumerated() { local[v] = i }
        var s: [Int] = [], dd: [Int] = [], rows: [Double] = []
        for e in 0..<edges.count {
            guard let ls = local[edges.src[e]] else { continue }
            guard let ld = local[edges.dst[e]] else {
                throw InputError(file: path, object: "/edge_index", "edge \(e) joins graph \(g) to another graph (node \(edges.dst[e]))")
            }
            s.append(ls); dd.append(ld); rows += ea.data[(e * d)..<((e + 1) * d)]
        }
        var xd: [Double] = []
        for v in nodes { xd += x.data[(v * d)..<((v + 1) * d)] }
        out.append(AuditGraph(x: Tensor(unchecked: [nodes.count, d], xd), edges: EdgeList(nodes: nodes.count, src: s, dst: dd),
                              edgeAttr: Tensor(unchecked: [s.count, d], rows), y: Array(y.data[(g * t)..<((g + 1) * t)])))
    }
    return out
}

/// A trained discrete DARTS-GT model (sparse attention), read from the documented HDF5 layout.
public struct DiscreteModel {
    public var ops: [GNNOperator], heads: Int, edgeStream: Bool, addPooling: Bool, task: ExplainTask
    public var layers: [[String: Tensor]], head: [(Tensor, Tensor)], d: Int

    /// The datasets a layer with operator `op` needs, with their expected shapes.
    public static func required(op: GNNOperator, d: Int, heads: Int, edgeStream: Bool) -> [(String, [Int])] {
        var r: [(String, [Int])] = []
        func lin(_ n: String, _ o: Int = 0, _ i: Int = 0) { r += [(n + ".weight", [o == 0 ? d : o, i == 0 ? d : i]), (n + ".bias", [o == 0 ? d : o])] }
        func bn(_ n: String) { for s in ["weight", "bias", "running_mean", "running_var"] { r.append((n + "." + s, [d])) } }
        switch op {
        case .gine: lin("gine.nn.0"); lin("gine.nn.2")
        case .gatedGCN: for k in ["A", "B", "C", "D", "E"] { lin("gated." + k) }; bn("gated.bn")
        case .gatv2:
            lin("gatv2.lin_l"); lin("gatv2.lin_r")
            r += [("gatv2.lin_edge.weight", [d, d]), ("gatv2.att", [1, heads, d / Swift.max(heads, 1)]), ("gatv2.bias", [d])]
        }
        bn("bn_kv"); lin("self_attn.W_k"); lin("self_attn.W_v"); lin("self_attn.W_o"); bn("norm1_attn")
        if edgeStream { lin("edge_processor.0"); lin("edge_processor.3"); r.append(("edge_gate", [])) }
        lin("ff_linear1", 2 * d, d); lin("ff_linear2", d, 2 * d); bn("norm2")
        return r
    }

    public static func load(path: String, d: Int) throws -> DiscreteModel {
        let f = try File.open(path)
        func int(_ p: String) throws -> Int {
            let t = try readTensor(f, p, file: path)
            guard t.count == 1 else { throw InputError(file: path, object: "/" + p, "shape \(t.shape); expected a scalar") }
            return Int(t.data[0])
        }
        let heads = try int("config/heads")
        guard heads >= 1, d % heads == 0 else { throw InputError(file: path, object: "/config/heads", "\(heads) must be ≥ 1 and divide d = \(d)") }
        let edgeStream = try int("config/edge_stream") != 0, add = try int("config/pooling") == 1
        guard let task = ExplainTask(rawValue: try int("config/task")) else { throw InputError(file: path, object: "/config/task", "expected 0, 1, 2 or 3") }
        let opsT = try readTensor(f, "ops", file: path)
        guard opsT.rank == 1, opsT.count >= 1 else { throw InputError(file: path, object: "/ops", "shape \(opsT.shape); expected [L] with L ≥ 1") }
        var ops: [GNNOperator] = []
        for v in opsT.data {
            guard let o = GNNOperator(rawValue: Int(v)), Double(o.rawValue) == v else { throw InputError(file: path, object: "/ops", "value \(v); expected 0, 1 or 2") }
            ops.append(o)
        }
        var layers: [[String: Tensor]] = []
        for (l, op) in ops.enumerated() {
            var w: [String: Tensor] = [:]
            for (name, shape) in required(op: op, d: d, heads: heads, edgeStream: edgeStream) {
                let p = "layers/\(l)/\(name)"
                guard f.contains(p) else {
                    throw InputError(file: path, object: "/" + p, "missing (layer \(l) of \(ops.count), operator \(op.name)); expected shape \(shape)")
                }
                let t = try readTensor(f, p, file: path)
                guard t.shape == shape else { throw InputError(file: path, object: "/" + p, "shape \(t.shape); expected \(shape)") }
                w[name] = t
            }
            layers.append(w)
        }
        var head: [(Tensor, Tensor)] = []
        var inDim = d
        while f.contains("head/\(head.count)/weight") {
            let i = head.count
            let w = try readTensor(f, "head/\(i)/weight", file: path), b = try readTensor(f, "head/\(i)/bias", file: path)
            guard w.rank == 2, w.shape[1] == inDim, b.shape == [w.shape[0]] else {
                throw InputError(file: path, object: "/head/\(i)", "weight \(w.shape), bias \(b.shape); expected [out, \(inDim)] and [out]")
            }
            inDim = w.shape[0]
            head.append((w, b))
        }
        guard !head.isEmpty else { throw InputError(file: path, object: "/head/0/weight", "missing; expected [T, \(d)] (the graph head)") }
        return DiscreteModel(ops: ops, heads: heads, edgeStream: edgeStream, addPooling: add, task: task, layers: layers, head: head, d: d)
    }

    /// The model's output for one graph (eval mode) and each layer's attention weights [E, h]; `ablate` zeroes one head's
    /// W_k and W_v rows and W_o columns (pk_explainer.py::mask_attention_head, sparse branch).
    public func predict(_ g: AuditGraph, ablate: (layer: Int, head: Int)? = nil) throws -> (output: [Double], attention: [Tensor]) {
        let tape = Tape()
        var h = tape.constant(g.x)
        let ea = tape.constant(g.edgeAttr)
        var maps: [Tensor] = []
        let dh = d / heads
        for (l, op) in ops.enumerated() {
            var w = layers[l]
            if let a = ablate, a.layer == l {
                for n in ["self_attn.W_k.weight", "self_attn.W_v.weight"] {
                    var t = w[n]!
                    for r in (a.head * dh)..<((a.head + 1) * dh) { for c in 0..<d { t.data[r * d + c] = 0 } }
                    w[n] = t
                }
                var o = w["self_attn.W_o.weight"]!
                for r in 0..<d { for c in (a.head * dh)..<((a.head + 1) * dh) { o.data[r * d + c] = 0 } }
                w["self_attn.W_o.weight"] = o
            }
            let src = WeightSource(v: { n in tape.constant(w[n]!) }, tensor: { n in w[n]! },
                                   int: { n in n == "heads" ? self.heads : n == "edge_stream" ? (self.edgeStream ? 1 : 0) : 0 },
                                   double: { _ in 0 }, masks: false)
            let r = try nasLayerForward(src, h: h, edges: g.edges, edgeAttr: ea, alpha: nil, discrete: op)
            h = r.out
            maps.append(r.attn.value)
        }
        var z = addPooling ? try sum(h, axes: [0], keepDims: true) : try mean(h, axes: [0], keepDims: true)
        for (i, (w, b)) in head.enumerated() {
            z = try linear(z, weight: tape.constant(w), bias: tape.constant(b))
            if i < head.count - 1 { z = relu(z) }
        }
        return (z.value.data, maps)
    }
}

/// The explainer on every graph: per graph, the full model and one run per ablated head; maps are the sparse matrices of each head.
public func graphAudit(model: DiscreteModel, graphs: [AuditGraph], k: Int, stable: Bool = false,
                       progress: (Int) -> Void = { _ in }) throws -> [HeadReport] {
    guard k >= 1 else { throw ShapeError("graph-audit", "k_heads must be ≥ 1, got \(k)") }
    var reports: [HeadReport] = []
    for (gi, g) in graphs.enumerated() {
        let full = try model.predict(g)
        var preds = [full.output]
        for l in 0..<model.ops.count { for m in 0..<model.heads { preds.append(try model.predict(g, ablate: (l, m)).output) } }
        var maps: [[Double]] = []
        for a in full.attention {
            for m in 0..<model.heads {
                let w = (0..<g.edges.count).map { a.data[$0 * model.heads + m] }
                maps.append(sparseAttentionMatrix(w, edges: g.edges))
            }
        }
        reports.append(try explainGraph(predictions: preds, y: g.y, task: model.task, maps: maps, n: g.x.shape[0], k: k, stable: stable))
        progress(gi)
    }
    return reports
}

/// median, mean and population std.
public func summary(_ v: [Double]) -> (median: Double, mean: Double, std: Double) {
    guard !v.isEmpty else { return (0, 0, 0) }
    let s = v.sorted(), n = v.count
    let med = n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
    let m = v.reduce(0, +) / Double(n)
    return (med, m, (v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(n)).squareRoot())
}

private func num(_ x: Double) -> String { x.isFinite ? String(format: "%.17g", x) : "null" }

/// The audit as JSON: provenance, per-graph results (δ per layer and head) and the dataset summary.
public func auditJSON(_ r: [HeadReport], model: DiscreteModel, provenance: [String: String], k: Int) -> String {
    let h = model.heads
    let graphs = r.enumerated().map { (g, x) -> String in
        let delta = (0..<model.ops.count).map { l in "[" + (0..<h).map { num(x.delta[l * h + $0]) }.joined(separator: ", ") + "]" }
        let top = x.top.map { "[\($0 / h), \($0 % h)]" }.joined(separator: ", ")
        return "    {\"graph\": \(g), \"baseline_error\": \(num(x.errors[0])), \"delta\": [\(delta.joined(separator: ", "))], " +
            "\"specialization\": \(num(x.specialization)), \"focus\": \(num(x.focus)), \"top_heads\": [\(top)], " +
            "\"correlation\": \(num(x.correlation)), \"entropy_spearman\": \(num(x.entropySpearman))}"
    }
    let s = summary(r.map(\.specialization)), f = summary(r.map(\.focus))
    let sHigh = Double(r.filter { $0.specialization > 0.1 }.count) / Double(Swift.max(r.count, 1))
    let fHigh = Double(r.filter { $0.focus > 0.3 }.count) / Double(Swift.max(r.count, 1))
    let prov = provenance.sorted { $0.key < $1.key }.map { "    \"\($0.key)\": \"\($0.value.replacingOccurrences(of: "\"", with: "'"))\"" }
    return """
    {
      "provenance": {
    \(prov.joined(separator: ",\n"))
      },
      "k_heads": \(k),
      "layers": \(model.ops.count),
      "heads": \(h),
      "operators": [\(model.ops.map { "\"\($0.name)\"" }.joined(separator: ", "))],
      "summary": {
        "graphs": \(r.count),
        "specialization": {"median": \(num(s.median)), "mean": \(num(s.mean)), "std": \(num(s.std))},
        "focus": {"median": \(num(f.median)), "mean": \(num(f.mean)), "std": \(num(f.std))},
        "share_specialization_above_0.1": \(num(sHigh)),
        "share_focus_above_0.3": \(num(fHigh))
      },
      "graphs": [
    \(graphs.joined(separator: ",\n"))
      ]
    }

    """
}

/// An SVG of the δ distribution per layer and head: one column per head, one dot per graph, the mean as a bar, the zero line.
public func auditSVG(_ r: [HeadReport], layers: Int, heads: Int) -> String {
    let cols = layers * heads
    let all = r.flatMap(\.delta)
    let lo = Swift.min(all.min() ?? 0, 0), hi = Swift.max(all.max() ?? 0, 0)
    let span = hi - lo > 0 ? hi - lo : 1
    let (w, hgt, left, top, plotH) = (Double(80 + 40 * cols), 320.0, 60.0, 30.0, 240.0)
    func y(_ v: Double) -> Double { top + plotH * (hi - v) / span }
    var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(hgt))\" font-family=\"sans-serif\" font-size=\"10\">\n"
    s += "<text x=\"\(left)\" y=\"16\" font-size=\"12\">Head-deviation δ per layer and head (\(r.count) graphs; δ > 0: the head helps)</text>\n"
    s += "<line x1=\"\(left)\" y1=\"\(y(0))\" x2=\"\(w - 10)\" y2=\"\(y(0))\" stroke=\"#888\"/>\n"
    s += "<text x=\"4\" y=\"\(y(hi) + 4)\">\(String(format: "%.3g", hi))</text><text x=\"4\" y=\"\(y(lo) + 4)\">\(String(format: "%.3g", lo))</text>\n"
    for c in 0..<cols {
        let x = left + 20 + 40 * Double(c)
        let vals = r.map { $0.delta[c] }
        for v in vals { s += "<circle cx=\"\(x)\" cy=\"\(y(v))\" r=\"2\" fill=\"#1f77b4\" fill-opacity=\"0.5\"/>\n" }
        let m = vals.isEmpty ? 0 : vals.reduce(0, +) / Double(vals.count)
        s += "<line x1=\"\(x - 10)\" y1=\"\(y(m))\" x2=\"\(x + 10)\" y2=\"\(y(m))\" stroke=\"#d62728\" stroke-width=\"2\"/>\n"
        s += "<text x=\"\(x - 12)\" y=\"\(top + plotH + 16)\">L\(c / heads)H\(c % heads)</text>\n"
    }
    return s + "</svg>\n"
}
