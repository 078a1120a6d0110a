// The DARTS-GT paper's certified methods: one file per method, named as in the paper.
// Chakraborty & Minary, "Differentiable Architecture Search for Graph Transformers" (DARTS-GT, arXiv 2510.14336, 2025);
// official code github.com/shrutiOx/DARTS_GT (DARTS_GT_NonLRGB/dartsgt/layer/NAS_layer_edge.py and explainer/).

import Certification
import Ops
import Tensor

/// Every DARTS-GT protocol entry, registered by CertifyMethods.registerAll().
public let dartsgtMethods: [Method] = [gnnMethod, mixedOpMethod, attentionMethod, layerMethod, searchMethod, explainMethod]

/// A validated edge list: edge e runs from source `src[e]` (edge_index[0]) to target `dst[e]` (edge_index[1]).
public struct EdgeList: Sendable {
    public let nodes: Int
    public let src: [Int]
    public let dst: [Int]
    public var count: Int { src.count }
    /// The indices as Float64 tensors, the form the graph ops take.
    public var srcTensor: Tensor { Tensor(src.map(Double.init)) }
    public var dstTensor: Tensor { Tensor(dst.map(Double.init)) }

    public init(nodes: Int, src: [Int], dst: [Int]) {
        self.nodes = nodes
        self.src = src
        self.dst = dst
    }

    /// Checks `edge_index` ([2, E], integral, every value in 0..<nodes) and, when given, the edge-feature count.
    public init(_ edgeIndex: Tensor, nodes: Int, edgeFeatures: [Int]? = nil, op: String) throws {
        guard nodes >= 1 else { throw ShapeError(op, "the graph has no nodes (x must be [N, d] with N ≥ 1)") }
        guard edgeIndex.rank == 2, edgeIndex.shape[0] == 2 else {
            throw ShapeError(op, "edge_index has shape \(edgeIndex.shape); expected [2, E]")
        }
        let e = edgeIndex.shape[1]
        var s = [Int](), d = [Int]()
        s.reserveCapacity(e)
        d.reserveCapacity(e)
        for (i, v) in edgeIndex.data.enumerated() {
            guard v.isFinite, v.rounded() == v, v >= 0, v < Double(nodes) else {
                throw ShapeError(op, "edge_index[\(i / e), \(i % e)] = \(v) is out of range 0..<\(nodes) (N = x.shape[0]); expected shape [2, E] with node ids in 0..<N")
            }
            if i < e { s.append(Int(v)) } else { d.append(Int(v)) }
        }
        if let f = edgeFeatures {
            guard f.count == 2, f[0] == e else {
                throw ShapeError(op, "edge_attr has shape \(f); expected [E, d] with E = \(e) (the edge count of edge_index)")
            }
        }
        self.init(nodes: nodes, src: s, dst: d)
    }
}

/// A constant scalar on `x`'s tape.
func scalar(_ x: Var, _ v: Double) -> Var { x.tape.constant(Tensor(scalar: v)) }

/// √x on the tape.
func sqrtVar(_ x: Var) -> Var { unary(x, { $0.squareRoot() }, derivative: { _, y in 0.5 / y }) }

/// A flag param (0/1) as a Bool.
func flag(_ ctx: Context, _ name: String, default d: Bool = false) throws -> Bool { try ctx.int(name, default: d ? 1 : 0) != 0 }
