// Protocol entries of the shape ops core.slice and core.concatenate (Sources/Ops/Shape.swift).

import Certification
import Ops
import Tensor

let shapeOpMethods: [Method] = [sliceMethod, concatenateMethod]

let sliceMethod = Method("core.slice", properties: [
    Property("concatenate_inverse") { rng in
        let shape = (0..<(1 + rng.int(below: 3))).map { _ in 1 + rng.int(below: 5) }
        let axis = rng.int(below: shape.count), cut = rng.int(below: shape[axis] + 1)
        let x = rng.normalTensor(shape)
        let t = Tape()
        let xv = t.leaf(x)
        let (p, q) = (try slice(xv, axis: axis, 0..<cut), try slice(xv, axis: axis, cut..<shape[axis]))
        try requireClose(try concatenate([p, q], axis: axis).value, x, Tolerance(rtol: 0, atol: 0), "cat(slices)")
        let g = rng.normalTensor(q.shape)
        let gx = try t.gradients(of: [(q, g)], wrt: [xv])[0]
        let lhs = try q.value.dot(g), rhs = try x.dot(gx)
        try require(Swift.abs(lhs - rhs) <= 1e-12 * (1 + Swift.abs(lhs)), "⟨slice x, g⟩ = \(lhs) but ⟨x, slice*(g)⟩ = \(rhs)")
    },
]) { ctx in
    let x = try ctx.v("x")
    let axis = try Tensor.axis(try ctx.int("axis"), rank: x.value.rank, op: "slice")
    let (start, end) = (try ctx.int("start"), try ctx.int("end"))
    guard start >= 0, start <= end, end <= x.shape[axis] else {
        throw ShapeError("slice", "need 0 ≤ start ≤ end ≤ \(x.shape[axis]) (axis \(axis) of x \(x.shape)), got start \(start), end \(end)")
    }
    return ["y": try slice(x, axis: axis, start..<end)]
}

let concatenateMethod = Method("core.concatenate", properties: [
    Property("slice_inverse") { rng in
        var shape = (0..<(1 + rng.int(below: 3))).map { _ in 1 + rng.int(below: 4) }
        let axis = rng.int(below: shape.count)
        let a = rng.normalTensor(shape)
        shape[axis] = rng.int(below: 4)
        let b = rng.normalTensor(shape)
        let t = Tape()
        let (av, bv) = (t.leaf(a), t.leaf(b))
        let y = try concatenate([av, bv], axis: axis)
        let na = a.shape[axis]
        try requireClose(try y.value.slice(axis: axis, 0..<na), a, Tolerance(rtol: 0, atol: 0), "cat(a, b)[:n_a]")
        try requireClose(try y.value.slice(axis: axis, na..<y.shape[axis]), b, Tolerance(rtol: 0, atol: 0), "cat(a, b)[n_a:]")
        let g = rng.normalTensor(y.shape)
        let gs = try t.gradients(of: [(y, g)], wrt: [av, bv])
        let lhs = try y.value.dot(g), rhs = try a.dot(gs[0]) + b.dot(gs[1])
        try require(Swift.abs(lhs - rhs) <= 1e-12 * (1 + Swift.abs(lhs)), "⟨cat, g⟩ = \(lhs) but Σ⟨xᵢ, gᵢ⟩ = \(rhs)")
    },
]) { ctx in
    var xs = [try ctx.v("a"), try ctx.v("b")]
    if let c = try ctx.optionalV("c") { xs.append(c) }
    return ["y": try concatenate(xs, axis: try ctx.int("axis"))]
}
