// Graph / message-passing ops: gather, scatter-add and segment softmax (PyTorch / PyG semantics).
//
// Integer arguments (indices) arrive as `Tensor`s holding integral Float64 values, the way the
// golden files store int64 datasets; every index is validated before any memory is touched.

import Foundation
import Tensor

// MARK: - Index validation and the shared gather / scatter-add kernels

/// Validated integer indices and the geometry of a gather / scatter-add along one axis.
///
/// Two layouts, as torch.gather / torch.scatter_add with the message-passing convenience:
///   * row layout: `index` is rank 1 and the dense tensor has rank > 1 (axis must be 0); index[e]
///     selects a whole row, i.e. the index is broadcast over the trailing axes;
///   * general layout: `index` has the dense tensor's rank; the element at multi-index i of the
///     index tensor addresses the dense element at i with coordinate `axis` replaced by index[i].
struct AxisIndex {
    let values: [Int]
    let indexShape: [Int]
    /// Shape of the dense tensor (x of gather, out of scatter_add).
    let denseShape: [Int]
    let axis: Int
    let rowLayout: Bool

    /// Shape of the sparse side (y of gather, src of scatter_add).
    var sparseShape: [Int] { rowLayout ? [indexShape[0]] + Array(denseShape.dropFirst()) : indexShape }

    /// - Parameters:
    ///   - sparseShape: when given (scatter_add), the shape the sparse side must have.
    init(op: String, index: Tensor, axis rawAxis: Int, denseShape: [Int], sparseShape: [Int]? = nil) throws {
        let rank = denseShape.count
        guard rank >= 1 else { throw ShapeError(op, "the tensor must have rank ≥ 1, got shape \(denseShape)") }
        guard rawAxis >= -rank && rawAxis < rank else {
            throw ShapeError(op, "axis \(rawAxis) is invalid for shape \(denseShape)")
        }
        let axis = rawAxis < 0 ? rawAxis + rank : rawAxis
        try Budget.require(shape: denseShape, "\(op)'s dense tensor")
        let row = index.rank == 1 && rank > 1
        if row {
            guard axis == 0 else {
                throw ShapeError(op, "a rank-1 index \(index.shape) with a rank-\(rank) tensor \(denseShape) needs axis 0, got axis \(rawAxis)")
            }
        } else {
            guard index.rank == rank else {
                throw ShapeError(op, "index of shape \(index.shape) must have rank 1 or the rank of \(denseShape)")
            }
        }
        let n = denseShape[axis]
        var values = [Int](repeating: 0, count: index.count)
        for (i, v) in index.data.enumerated() {
            guard v.isFinite, v.rounded() == v else {
                throw ShapeError(op, "index holds the non-integer value \(v) at \(Tensor.unravel(i, shape: index.shape))")
            }
            guard v >= 0 && v < Double(n) else {
                throw ShapeError(op, "index value \(Int(v)) at \(Tensor.unravel(i, shape: index.shape)) is out of range 0..<\(n) (axis \(axis) of \(denseShape))")
            }
            values[i] = Int(v)
        }
        self.values = values
        self.indexShape = index.shape
        self.denseShape = denseShape
        self.axis = axis
        self.rowLayout = row
        if let s = sparseShape {
            guard s == self.sparseShape else {
                throw ShapeError(op, "src of shape \(s) does not match index of shape \(index.shape)" +
                                 (row ? " (rows: src must be [\(index.shape[0]), \(denseShape.dropFirst().map(String.init).joined(separator: ", "))])" : " (they must be equal)"))
            }
        } else if !row {
            for d in 0..<rank where d != axis && index.shape[d] > denseShape[d] {
                throw ShapeError(op, "index of shape \(index.shape) is larger than x of shape \(denseShape) at axis \(d)")
            }
        }
    }

    /// Calls `body(sparseOffset, denseOffset, length)` for every contiguous run that the op moves.
    func forEachRun(_ body: (Int, Int, Int) -> Void) {
        if rowLayout {
            let inner = denseShape.dropFirst().reduce(1, *)
            for (e, r) in values.enumerated() { body(e * inner, r * inner, inner) }
            return
        }
        let rank = denseShape.count
        let count = values.count
        if count == 0 { return }
        let ds = Tensor.strides(for: denseShape)
        var idx = [Int](repeating: 0, count: rank)
        var base = 0  // dense offset of idx without the axis coordinate
        for i in 0..<count {
            body(i, base + values[i] * ds[axis], 1)
            var d = rank - 1
            while d >= 0 {
                idx[d] += 1
                if d != axis { base += ds[d] }
                if idx[d] < indexShape[d] { break }
                if d != axis { base -= ds[d] * indexShape[d] }
                idx[d] = 0
                d -= 1
            }
        }
    }

    /// y = gather(x): y[sparse] = x[dense]. Every element of y is written exactly once (each sparse
    /// position belongs to one run), so the output starts uninitialised; rows are block copies.
    func gather(_ x: Tensor) -> Tensor {
        let count = sparseShape.reduce(1, *)
        let out = [Double](unsafeUninitializedCapacity: count) { po, written in
            x.data.withUnsafeBufferPointer { px in
                guard count > 0, let pxb = px.baseAddress, let pob = po.baseAddress else { return }
                if rowLayout {
                    let inner = denseShape.dropFirst().reduce(1, *)
                    values.withUnsafeBufferPointer { pv in
                        for e in 0..<pv.count { (pob + e &* inner).update(from: pxb + pv[e] &* inner, count: inner) }
                    }
                } else {
                    forEachRun { s, d, n in
                        for j in 0..<n { pob[s + j] = pxb[d + j] }
                    }
                }
            }
            written = count
        }
        return Tensor(unchecked: sparseShape, out)
    }

    /// out = zeros(dense).scatter_add(src): out[dense] += src[sparse], in src order.
    func scatterAdd(_ src: Tensor) -> Tensor {
        var out = [Double](repeating: 0, count: denseShape.reduce(1, *))
        src.data.withUnsafeBufferPointer { ps in
            out.withUnsafeMutableBufferPointer { po in
                guard let psb = ps.baseAddress, let pob = po.baseAddress else { return }
                if rowLayout {
                    let inner = denseShape.dropFirst().reduce(1, *)
                    values.withUnsafeBufferPointer { pv in
                        let i4 = inner & ~3
                        for e in 0..<pv.count {
                            let s = psb + e &* inner, d = pob + pv[e] &* inner
                            let rs = UnsafeRawPointer(s), rd = UnsafeMutableRawPointer(d)
                            var j = 0
                            while j < i4 {
                                let o = j &* 8
                                rd.storeBytes(of: rd.loadUnaligned(fromByteOffset: o, as: SIMD4<Double>.self)
                                                  + rs.loadUnaligned(fromByteOffset: o, as: SIMD4<Double>.self),
                                              toByteOffset: o, as: SIMD4<Double>.self)
                                j &+= 4
                            }
                            while j < inner { d[j] += s[j]; j &+= 1 }
                        }
                    }
                } else {
                    forEachRun { s, d, n in
                        for j in 0..<n { pob[d + j] += psb[s + j] }
                    }
                }
            }
        }
        return Tensor(unchecked: denseShape, out)
    }
}

// MARK: - gather / scatter_add

/// torch.gather(x, axis, index). With a rank-1 `index` and rank(x) > 1 (axis 0) it gathers whole
/// rows: y[e, …] = x[index[e], …] (torch.gather with the index expanded over the trailing axes).
/// Otherwise rank(index) = rank(x), index.shape[d] ≤ x.shape[d] for d ≠ axis, and
/// y[i] = x[i with coordinate `axis` replaced by index[i]].
/// VJP: ∂x = scatter_add of the cotangent with the same index (repeated rows accumulate).
public func gather(_ x: Var, axis: Int, index: Tensor) throws -> Var {
    let ix = try AxisIndex(op: "gather", index: index, axis: axis, denseShape: x.shape)
    let y = ix.gather(x.value)
    return x.tape.record(y, parents: [x]) { g in [ix.scatterAdd(g)] }
}

/// torch.zeros(shape).scatter_add(axis, index, src), shape = src.shape with `axis` replaced by
/// `dimSize`. With a rank-1 `index` and rank(src) > 1 (axis 0): out[index[e], …] += src[e, …];
/// otherwise index.shape must equal src.shape. Summation follows src order.
/// VJP: ∂src = gather of the cotangent with the same index.
public func scatterAdd(_ src: Var, axis: Int, index: Tensor, dimSize: Int) throws -> Var {
    guard dimSize >= 0 else { throw ShapeError("scatter_add", "dim_size must be ≥ 0, got \(dimSize)") }
    let rank = src.value.rank
    guard rank >= 1 else { throw ShapeError("scatter_add", "src must have rank ≥ 1, got shape \(src.shape)") }
    guard axis >= -rank && axis < rank else { throw ShapeError("scatter_add", "axis \(axis) is invalid for src of shape \(src.shape)") }
    var dense = src.shape
    dense[axis < 0 ? axis + rank : axis] = dimSize
    let ix = try AxisIndex(op: "scatter_add", index: index, axis: axis, denseShape: dense, sparseShape: src.shape)
    let y = ix.scatterAdd(src.value)
    return src.tape.record(y, parents: [src]) { g in [ix.gather(g)] }
}

// MARK: - segment softmax

/// Per-target-node softmax over edges, exactly torch_geometric.utils.softmax(src, index, num_nodes):
/// for edge e with target i = index[e] (per head h, the trailing axes of `scores`),
///   m_i = max_{index[e']=i} scores[e'] (on detached scores),
///   out[e] = exp(scores[e] − m_i) / (Σ_{index[e']=i} exp(scores[e'] − m_i) + 1e-16).
/// VJP (the max is a constant): ∂scores[e] = out[e]·(g[e] − Σ_{index[e']=i} g[e']·out[e']).
public func segmentSoftmax(_ scores: Var, index: Tensor, numNodes: Int) throws -> Var {
    let op = "segment_softmax"
    guard scores.value.rank >= 1 else { throw ShapeError(op, "scores must have rank ≥ 1 ([E] or [E, H]), got shape \(scores.shape)") }
    guard numNodes >= 0 else { throw ShapeError(op, "num_nodes must be ≥ 0, got \(numNodes)") }
    guard index.rank == 1, index.count == scores.shape[0] else {
        throw ShapeError(op, "index of shape \(index.shape) must be [E] with E = \(scores.shape[0]) (scores of shape \(scores.shape))")
    }
    let ix = try AxisIndex(op: op, index: index, axis: 0, denseShape: [numNodes] + scores.shape.dropFirst(),
                           sparseShape: scores.shape)
    let e = scores.shape[0]
    let h = scores.shape.dropFirst().reduce(1, *)
    let seg = ix.values
    var out = [Double](repeating: 0, count: e * h)
    scores.value.data.withUnsafeBufferPointer { ps in
        var m = [Double](repeating: -.infinity, count: numNodes * h)
        for k in 0..<e { let b = seg[k] * h; for j in 0..<h { m[b + j] = Swift.max(m[b + j], ps[k * h + j]) } }
        var s = [Double](repeating: 0, count: numNodes * h)
        for k in 0..<e {
            let b = seg[k] * h
            for j in 0..<h {
                let v = Foundation.exp(ps[k * h + j] - m[b + j])
                out[k * h + j] = v
                s[b + j] += v
            }
        }
        for i in 0..<s.count { s[i] += 1e-16 }
        for k in 0..<e { let b = seg[k] * h; for j in 0..<h { out[k * h + j] /= s[b + j] } }
    }
    let y = Tensor(unchecked: scores.shape, out)
    return scores.tape.record(y, parents: [scores]) { g in
        var dot = [Double](repeating: 0, count: numNodes * h)
        var gs = [Double](repeating: 0, count: e * h)
        g.data.withUnsafeBufferPointer { pg in
            for k in 0..<e { let b = seg[k] * h; for j in 0..<h { dot[b + j] += pg[k * h + j] * out[k * h + j] } }
            for k in 0..<e { let b = seg[k] * h; for j in 0..<h { gs[k * h + j] = out[k * h + j] * (pg[k * h + j] - dot[b + j]) } }
        }
        return [Tensor(unchecked: scores.shape, gs)]
    }
}
