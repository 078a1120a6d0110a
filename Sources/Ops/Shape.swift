// Slicing and concatenation on the tape: x[..., start:end, ...] (torch.narrow / basic slicing with
// step 1) and torch.cat. Both are linear; their VJPs are each other's adjoints.

import Tensor

/// `x` restricted to `range` along `axis` (torch.narrow(x, axis, start, length), x[:, a:b]).
/// VJP: the cotangent placed back into a zero tensor of x's shape.
public func slice(_ x: Var, axis: Int, _ range: Range<Int>) throws -> Var {
    let a = try Tensor.axis(axis, rank: x.value.rank, op: "slice")
    let y = try x.value.slice(axis: a, range)
    let shape = x.shape
    let outer = shape[..<a].reduce(1, *), inner = shape[(a + 1)...].reduce(1, *)
    let n = shape[a], len = range.count, lo = range.lowerBound
    return x.tape.record(y, parents: [x]) { g in
        var d = [Double](repeating: 0, count: x.value.count)
        g.data.withUnsafeBufferPointer { pg in
            d.withUnsafeMutableBufferPointer { pd in
                for o in 0..<outer {
                    let src = o * len * inner, dst = (o * n + lo) * inner
                    for i in 0..<(len * inner) { pd[dst + i] = pg[src + i] }
                }
            }
        }
        return [Tensor(unchecked: shape, d)]
    }
}

/// torch.cat(xs, dim=axis): every other axis must agree. VJP: the cotangent sliced back per operand.
public func concatenate(_ xs: [Var], axis: Int) throws -> Var {
    guard let first = xs.first else { throw ShapeError("concatenate", "no tensors given") }
    for v in xs.dropFirst() where v.tape !== first.tape { throw ShapeError("concatenate", "operands come from different tapes") }
    let a = try Tensor.axis(axis, rank: first.value.rank, op: "concatenate")
    let y = try Tensor.concatenate(xs.map(\.value), axis: a)
    var starts: [Int] = []
    var s = 0
    for v in xs { starts.append(s); s += v.shape[a] }
    return first.tape.record(y, parents: xs) { g in
        try zip(xs, starts).map { v, st in try g.slice(axis: a, st..<(st + v.shape[a])) }
    }
}
