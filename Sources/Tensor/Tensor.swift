// A Float64 n-dimensional array, row-major and contiguous, with NumPy broadcasting.
//
// Every shape-dependent operation throws a `ShapeError` naming the operation and both
// shapes rather than trapping.

import Foundation

/// A shape or argument mismatch. The message states the operation and the shapes involved.
public struct ShapeError: Error, CustomStringConvertible, Equatable, Sendable {
    public var op: String
    public var message: String
    public init(_ op: String, _ message: String) {
        self.op = op
        self.message = message
    }
    public var description: String { "\(op): \(message)" }
}

/// Float64 n-d array. `data` is row-major; `shape == []` is a scalar holding one element.
public struct Tensor: Equatable, Sendable, CustomStringConvertible {
    public private(set) var shape: [Int]
    public var data: [Double]

    /// Creates a tensor, checking that `data.count` equals the product of `shape`.
    public init(shape: [Int], data: [Double]) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw ShapeError("Tensor", "negative dimension in shape \(shape)") }
        let n = shape.reduce(1, *)
        guard n == data.count else {
            throw ShapeError("Tensor", "\(data.count) values do not fill shape \(shape) (needs \(n))")
        }
        self.shape = shape
        self.data = data
    }

    /// Unchecked initialiser for internal use where the count is known to match.
    public init(unchecked shape: [Int], _ data: [Double]) {
        precondition(shape.reduce(1, *) == data.count, "Tensor(unchecked:) count mismatch")
        self.shape = shape
        self.data = data
    }

    public init(zeros shape: [Int]) { self.init(unchecked: shape, [Double](repeating: 0, count: shape.reduce(1, *))) }
    public init(ones shape: [Int]) { self.init(unchecked: shape, [Double](repeating: 1, count: shape.reduce(1, *))) }
    public init(repeating value: Double, shape: [Int]) {
        self.init(unchecked: shape, [Double](repeating: value, count: shape.reduce(1, *)))
    }
    public init(scalar: Double) { self.init(unchecked: [], [scalar]) }
    /// A 1-D tensor.
    public init(_ values: [Double]) { self.init(unchecked: [values.count], values) }

    public var count: Int { data.count }
    public var rank: Int { shape.count }
    public var isScalar: Bool { shape.isEmpty }
    /// The single value of a one-element tensor.
    public var scalar: Double? { data.count == 1 ? data[0] : nil }

    /// Row-major strides.
    public var strides: [Int] { Tensor.strides(for: shape) }

    public static func strides(for shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            s[i] = acc
            acc *= shape[i]
        }
        return s
    }

    /// Element at a full multi-index (bounds checked; throws on a bad index).
    public func value(at index: [Int]) throws -> Double {
        guard index.count == rank else { throw ShapeError("index", "index \(index) has rank \(index.count), tensor has shape \(shape)") }
        var off = 0
        for (i, (ix, n)) in zip(index, shape).enumerated() {
            guard ix >= 0 && ix < n else { throw ShapeError("index", "index \(index) out of bounds for shape \(shape) at axis \(i)") }
            off = off * n + ix
        }
        return data[off]
    }

    /// Multi-index of a flat offset.
    public static func unravel(_ offset: Int, shape: [Int]) -> [Int] {
        var idx = [Int](repeating: 0, count: shape.count)
        var r = offset
        for i in stride(from: shape.count - 1, through: 0, by: -1) where shape[i] > 0 {
            idx[i] = r % shape[i]
            r /= shape[i]
        }
        return idx
    }

    public var description: String {
        let shown = data.prefix(8).map { String(format: "%.6g", $0) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(shown)\(data.count > 8 ? ", …" : "")])"
    }

    // MARK: - Shape manipulation

    /// Normalises a possibly negative axis, throwing for an axis out of range.
    public static func axis(_ axis: Int, rank: Int, op: String) throws -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < Swift.max(rank, 1) else { throw ShapeError(op, "axis \(axis) is invalid for rank \(rank)") }
        return a
    }

    /// Reshape; one dimension may be -1.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        var s = newShape
        let unknown = s.indices.filter { s[$0] == -1 }
        guard unknown.count <= 1, s.allSatisfy({ $0 >= -1 }) else { throw ShapeError("reshape", "invalid target shape \(newShape)") }
        if let u = unknown.first {
            let known = s.enumerated().filter { $0.offset != u }.map(\.element).reduce(1, *)
            guard known > 0, count % known == 0 else { throw ShapeError("reshape", "cannot reshape \(shape) to \(newShape)") }
            s[u] = count / known
        }
        guard s.reduce(1, *) == count else { throw ShapeError("reshape", "cannot reshape \(shape) (\(count) elements) to \(newShape)") }
        return Tensor(unchecked: s, data)
    }

    /// Permutes axes: result axis i is input axis `axes[i]`.
    public func permuted(_ axes: [Int]) throws -> Tensor {
        guard axes.count == rank, Set(axes) == Set(0..<rank) else {
            throw ShapeError("permute", "axes \(axes) are not a permutation of 0..<\(rank) for shape \(shape)")
        }
        if axes == Array(0..<rank) { return self }
        let newShape = axes.map { shape[$0] }
        let inStrides = strides
        let permStrides = axes.map { inStrides[$0] }
        var out = [Double](repeating: 0, count: count)
        var idx = [Int](repeating: 0, count: rank)
        var src = 0, unused = 0
        for o in 0..<count {
            out[o] = data[src]
            Tensor.advance(&idx, newShape, &src, permStrides, &unused, permStrides)
        }
        return Tensor(unchecked: newShape, out)
    }

    /// Swaps the last two axes.
    public func transposed() throws -> Tensor {
        guard rank >= 2 else { throw ShapeError("transpose", "needs rank ≥ 2, got shape \(shape)") }
        var axes = Array(0..<rank)
        axes.swapAt(rank - 1, rank - 2)
        return try permuted(axes)
    }

    /// Slice `start..<end` (step 1) along one axis.
    public func slice(axis: Int, _ range: Range<Int>) throws -> Tensor {
        let a = try Tensor.axis(axis, rank: rank, op: "slice")
        guard range.lowerBound >= 0, range.upperBound <= shape[a] else {
            throw ShapeError("slice", "range \(range) outside axis \(a) of size \(shape[a]) (shape \(shape))")
        }
        let outer = shape[..<a].reduce(1, *)
        let inner = shape[(a + 1)...].reduce(1, *)
        var out: [Double] = []
        out.reserveCapacity(outer * range.count * inner)
        for o in 0..<outer {
            let base = o * shape[a] * inner
            out.append(contentsOf: data[(base + range.lowerBound * inner)..<(base + range.upperBound * inner)])
        }
        var s = shape
        s[a] = range.count
        return Tensor(unchecked: s, out)
    }

    /// Concatenates along an axis; all other dimensions must agree.
    public static func concatenate(_ ts: [Tensor], axis: Int) throws -> Tensor {
        guard let first = ts.first else { throw ShapeError("concatenate", "no tensors given") }
        let a = try Tensor.axis(axis, rank: first.rank, op: "concatenate")
        for t in ts where t.rank != first.rank || (0..<first.rank).contains(where: { $0 != a && t.shape[$0] != first.shape[$0] }) {
            throw ShapeError("concatenate", "shape \(t.shape) does not match \(first.shape) outside axis \(a)")
        }
        let outer = first.shape[..<a].reduce(1, *)
        let inner = first.shape[(a + 1)...].reduce(1, *)
        var out: [Double] = []
        out.reserveCapacity(ts.reduce(0) { $0 + $1.count })
        for o in 0..<outer {
            for t in ts {
                let len = t.shape[a] * inner
                out.append(contentsOf: t.data[(o * len)..<((o + 1) * len)])
            }
        }
        var s = first.shape
        s[a] = ts.reduce(0) { $0 + $1.shape[a] }
        return Tensor(unchecked: s, out)
    }

    // MARK: - Elementwise and broadcasting

    public func map(_ f: (Double) -> Double) -> Tensor { Tensor(unchecked: shape, data.map(f)) }

    /// NumPy broadcast of two shapes.
    public static func broadcastShape(_ a: [Int], _ b: [Int], op: String = "broadcast") throws -> [Int] {
        let r = Swift.max(a.count, b.count)
        var out = [Int](repeating: 1, count: r)
        for i in 0..<r {
            let da = i < r - a.count ? 1 : a[i - (r - a.count)]
            let db = i < r - b.count ? 1 : b[i - (r - b.count)]
            guard da == db || da == 1 || db == 1 else {
                throw ShapeError(op, "shapes \(a) and \(b) are not broadcastable (axis \(i): \(da) vs \(db))")
            }
            out[i] = da == 1 ? db : da
        }
        return out
    }

    /// Strides of `shape` viewed inside `target` (0 for broadcast axes).
    static func broadcastStrides(_ shape: [Int], to target: [Int]) -> [Int] {
        let s = strides(for: shape)
        let off = target.count - shape.count
        return (0..<target.count).map { i in
            i < off ? 0 : (shape[i - off] == 1 ? 0 : s[i - off])
        }
    }

    /// Elementwise binary op with NumPy broadcasting.
    public static func zipBroadcast(_ a: Tensor, _ b: Tensor, op: String = "elementwise", _ f: (Double, Double) -> Double) throws -> Tensor {
        if a.shape == b.shape {
            let out = [Double](unsafeUninitializedCapacity: a.count) { buf, count in
                a.data.withUnsafeBufferPointer { pa in
                    b.data.withUnsafeBufferPointer { pb in
                        for i in 0..<pa.count { buf[i] = f(pa[i], pb[i]) }
                    }
                }
                count = a.count
            }
            return Tensor(unchecked: a.shape, out)
        }
        let s = try broadcastShape(a.shape, b.shape, op: op)
        return zipStrided(s, a, broadcastStrides(a.shape, to: s), b, broadcastStrides(b.shape, to: s), f)
    }

    /// One step of a row-major odometer over the first `idx.count` axes of `shape` (the last of them fastest),
    /// moving offset `a` by strides `sa` and offset `b` by strides `sb` (a caller with one offset passes a
    /// throwaway second).
    @inline(__always)
    static func advance(_ idx: inout [Int], _ shape: [Int], _ a: inout Int, _ sa: [Int], _ b: inout Int, _ sb: [Int]) {
        var d = idx.count - 1
        while d >= 0 {
            idx[d] += 1
            a += sa[d]
            b += sb[d]
            if idx[d] < shape[d] { break }
            a -= sa[d] * shape[d]
            b -= sb[d] * shape[d]
            idx[d] = 0
            d -= 1
        }
    }

    /// out[i] = f(a at i, b at i) over shape `s`, where a and b are read with strides `sa` and `sb` (0 on a
    /// broadcast axis). The last axis is a plain strided loop; an odometer steps the axes before it.
    @inline(__always)
    private static func zipStrided(_ s: [Int], _ a: Tensor, _ sa: [Int], _ b: Tensor, _ sb: [Int],
                                   _ f: (Double, Double) -> Double) -> Tensor {
        let n = s.reduce(1, *)
        guard let last = s.indices.last, n > 0 else {
            return Tensor(unchecked: s, n == 1 ? [f(a.data[0], b.data[0])] : [])
        }
        let len = s[last], ja = sa[last], jb = sb[last]
        let out = [Double](unsafeUninitializedCapacity: n) { buf, count in
            a.data.withUnsafeBufferPointer { pa in
                b.data.withUnsafeBufferPointer { pb in
                    var idx = [Int](repeating: 0, count: last)
                    var ia = 0, ib = 0, o = 0
                    while o < n {
                        for j in 0..<len { buf[o + j] = f(pa[ia + j * ja], pb[ib + j * jb]) }
                        o += len
                        advance(&idx, s, &ia, sa, &ib, sb)
                    }
                }
            }
            count = n
        }
        return Tensor(unchecked: s, out)
    }

    /// Broadcasts to a target shape.
    public func broadcast(to target: [Int]) throws -> Tensor {
        let s = try Tensor.broadcastShape(shape, target, op: "broadcast_to")
        guard s == target else { throw ShapeError("broadcast_to", "cannot broadcast \(shape) to \(target)") }
        if shape == target { return self }
        let st = Tensor.broadcastStrides(shape, to: target)
        return Tensor.zipStrided(target, self, st, self, st) { x, _ in x }
    }

    /// Sums a broadcast result back down to `target` (the adjoint of broadcasting).
    public func sumToShape(_ target: [Int]) throws -> Tensor {
        if shape == target { return self }
        guard try Tensor.broadcastShape(target, shape, op: "sum_to_shape") == shape else {
            throw ShapeError("sum_to_shape", "cannot reduce \(shape) to \(target)")
        }
        let off = rank - target.count
        var axes = Array(0..<off)
        for i in 0..<target.count where target[i] == 1 && shape[i + off] != 1 { axes.append(i + off) }
        let r = try sum(axes: axes, keepDims: true)
        return try r.reshaped(target)
    }

    public static func + (a: Tensor, b: Tensor) throws -> Tensor { try zipBroadcast(a, b, op: "add", +) }
    public static func - (a: Tensor, b: Tensor) throws -> Tensor { try zipBroadcast(a, b, op: "sub", -) }
    public static func * (a: Tensor, b: Tensor) throws -> Tensor { try zipBroadcast(a, b, op: "mul", *) }
    public static func / (a: Tensor, b: Tensor) throws -> Tensor { try zipBroadcast(a, b, op: "div", /) }
    public static func * (a: Tensor, s: Double) -> Tensor { a.map { $0 * s } }
    public static func * (s: Double, a: Tensor) -> Tensor { a.map { $0 * s } }
    public static func + (a: Tensor, s: Double) -> Tensor { a.map { $0 + s } }
    public static prefix func - (a: Tensor) -> Tensor { a.map { -$0 } }

    // MARK: - Reductions

    /// Reduces over `axes` with an associative combiner starting from `initial`.
    public func reduce(axes: [Int], keepDims: Bool = false, op: String = "reduce", initial: Double,
                       _ combine: (Double, Double) -> Double) throws -> Tensor {
        try reduced(axes: axes, keepDims: keepDims, op: op, initial: initial, combine)
    }

    /// `reduce`, inlined where the combining function is known (sum: `+`). Elements are combined into their
    /// output slot in increasing flat order, as one pass of an odometer would; the innermost run of axes that
    /// are all reduced (one slot) or all kept (consecutive slots) is a plain loop instead of odometer steps.
    @inline(__always)
    private func reduced(axes: [Int], keepDims: Bool, op: String, initial: Double,
                         _ combine: (Double, Double) -> Double) throws -> Tensor {
        let ax = Set(try axes.map { try Tensor.axis($0, rank: rank, op: op) })
        var outShapeKeep = shape
        for a in ax { outShapeKeep[a] = 1 }
        let n = outShapeKeep.reduce(1, *)
        var out = [Double](repeating: initial, count: n)
        let outShape = keepDims ? outShapeKeep : shape.enumerated().filter { !ax.contains($0.offset) }.map(\.element)
        guard count > 0 else { return Tensor(unchecked: outShape, out) }
        let innerReduced = rank > 0 && ax.contains(rank - 1)
        var t = rank
        while t > 0 && ax.contains(t - 1) == innerReduced { t -= 1 }
        let inner = shape[t..<rank].reduce(1, *)
        let os = Tensor.broadcastStrides(outShapeKeep, to: shape)
        var idx = [Int](repeating: 0, count: t)
        data.withUnsafeBufferPointer { pd in
            out.withUnsafeMutableBufferPointer { po in
                var o = 0, i = 0, unused = 0
                while i < count {
                    if innerReduced {
                        var acc = po[o]
                        for j in 0..<inner { acc = combine(acc, pd[i + j]) }
                        po[o] = acc
                    } else {
                        for j in 0..<inner { po[o + j] = combine(po[o + j], pd[i + j]) }
                    }
                    i += inner
                    Tensor.advance(&idx, shape, &o, os, &unused, os)
                }
            }
        }
        return Tensor(unchecked: outShape, out)
    }

    public func sum(axes: [Int], keepDims: Bool = false) throws -> Tensor {
        try reduced(axes: axes, keepDims: keepDims, op: "sum", initial: 0, +)
    }
    public func mean(axes: [Int], keepDims: Bool = false) throws -> Tensor {
        let ax = Set(try axes.map { try Tensor.axis($0, rank: rank, op: "mean") })
        let n = ax.reduce(1) { $0 * shape[$1] }
        return try sum(axes: axes, keepDims: keepDims).map { $0 / Double(n) }
    }
    public func max(axes: [Int], keepDims: Bool = false) throws -> Tensor {
        try reduce(axes: axes, keepDims: keepDims, op: "max", initial: -.infinity) { Swift.max($0, $1) }
    }
    /// Sum of every element.
    public var sumAll: Double { data.reduce(0, +) }
    /// Inner product of two equal-shaped tensors.
    public func dot(_ other: Tensor) throws -> Double {
        guard shape == other.shape else { throw ShapeError("dot", "shapes \(shape) and \(other.shape) differ") }
        var s = 0.0
        for i in 0..<count { s += data[i] * other.data[i] }
        return s
    }
}
