// Broadcasting arithmetic on tape variables; the VJP of broadcasting sums back to each operand's shape.

import Tensor

public func + (a: Var, b: Var) throws -> Var {
    let t = try sameTape("add", a, b)
    let y = try a.value + b.value
    return t.record(y, parents: [a, b]) { g in [try g.sumToShape(a.shape), try g.sumToShape(b.shape)] }
}

public func - (a: Var, b: Var) throws -> Var {
    let t = try sameTape("sub", a, b)
    let y = try a.value - b.value
    return t.record(y, parents: [a, b]) { g in [try g.sumToShape(a.shape), try (-g).sumToShape(b.shape)] }
}

public func * (a: Var, b: Var) throws -> Var {
    let t = try sameTape("mul", a, b)
    let y = try a.value * b.value
    return t.record(y, parents: [a, b]) { g in
        [try (g * b.value).sumToShape(a.shape), try (g * a.value).sumToShape(b.shape)]
    }
}

public func / (a: Var, b: Var) throws -> Var {
    let t = try sameTape("div", a, b)
    let y = try a.value / b.value
    return t.record(y, parents: [a, b]) { g in
        let ga = try (g / b.value).sumToShape(a.shape)
        let gb = try (-(try g * y / b.value)).sumToShape(b.shape)
        return [ga, gb]
    }
}

public func * (a: Var, s: Double) -> Var {
    a.tape.record(a.value * s, parents: [a]) { g in [g * s] }
}

/// Sum over axes (all axes when `axes` is nil).
public func sum(_ x: Var, axes: [Int]? = nil, keepDims: Bool = false) throws -> Var {
    let ax = axes ?? Array(0..<x.value.rank)
    let y = try x.value.sum(axes: ax, keepDims: keepDims)
    let keepShape = try x.value.sum(axes: ax, keepDims: true).shape
    return x.tape.record(y, parents: [x]) { g in [try g.reshaped(keepShape).broadcast(to: x.shape)] }
}

/// Mean over axes (all axes when `axes` is nil).
public func mean(_ x: Var, axes: [Int]? = nil, keepDims: Bool = false) throws -> Var {
    let ax = axes ?? Array(0..<x.value.rank)
    let s = try sum(x, axes: ax, keepDims: keepDims)
    let n = try ax.map { try Tensor.axis($0, rank: x.value.rank, op: "mean") }.reduce(1) { $0 * x.shape[$1] }
    return s * (1.0 / Double(n))
}

public func reshape(_ x: Var, _ shape: [Int]) throws -> Var {
    let y = try x.value.reshaped(shape)
    return x.tape.record(y, parents: [x]) { g in [try g.reshaped(x.shape)] }
}

public func permute(_ x: Var, _ axes: [Int]) throws -> Var {
    let y = try x.value.permuted(axes)
    var inverse = [Int](repeating: 0, count: axes.count)
    for (i, a) in axes.enumerated() { inverse[a] = i }
    return x.tape.record(y, parents: [x]) { g in [try g.permuted(inverse)] }
}

/// Elementwise map with a given derivative: y = f(x), dy/dx = df(x, y).
public func unary(_ x: Var, _ f: (Double) -> Double, derivative df: @escaping (Double, Double) -> Double) -> Var {
    let y = x.value.map(f)
    return x.tape.record(y, parents: [x]) { g in
        var out = g.data
        for i in 0..<out.count { out[i] *= df(x.value.data[i], y.data[i]) }
        return [Tensor(unchecked: g.shape, out)]
    }
}
