// Protocol entries of the graph group of the certified op library: segment softmax, gather,
// scatter_add (here), attention (GraphAttention.swift), optimizers and clipping (GraphOptim.swift).

import Certification
import Ops
import Tensor

let graphGroupMethods: [Method] = [
    segmentSoftmaxMethod, gatherMethod, scatterAddMethod,
    sdpaMethod, multiheadAttentionMethod,
    sgdStepMethod, adamStepMethod, adamwStepMethod, clipGradNormMethod,
]

// MARK: - helpers shared by the graph group's properties

/// out[…, i, …] = t[…, perm[i], …] along `axis`.
func graphReorder(_ t: Tensor, axis: Int, _ perm: [Int]) -> Tensor {
    let outer = t.shape[..<axis].reduce(1, *), n = t.shape[axis], inner = t.shape[(axis + 1)...].reduce(1, *)
    var out = [Double](repeating: 0, count: t.count)
    for o in 0..<outer {
        for i in 0..<n {
            let dst = (o * n + i) * inner, src = (o * n + perm[i]) * inner
            for j in 0..<inner { out[dst + j] = t.data[src + j] }
        }
    }
    return Tensor(unchecked: t.shape, out)
}

/// A random integer tensor with entries in 0..<bound.
func graphRandomIndex(_ rng: inout RNG, _ shape: [Int], below bound: Int) -> Tensor {
    Tensor(unchecked: shape, (0..<shape.reduce(1, *)).map { _ in Double(rng.int(below: bound)) })
}

/// A random shape of `rank` dimensions, each in 1...maxDim.
func graphRandomShape(_ rng: inout RNG, rank: Int, maxDim: Int = 4) -> [Int] {
    (0..<rank).map { _ in 1 + rng.int(below: maxDim) }
}

// MARK: - core.segment_softmax

let segmentSoftmaxMethod = Method("core.segment_softmax", properties: [
    Property("sums_to_one") { rng in
        let (e, h, n) = (1 + rng.int(below: 12), 1 + rng.int(below: 3), 1 + rng.int(below: 5))
        let index = graphRandomIndex(&rng, [e], below: n)
        let scores = rng.normalTensor([e, h]) * 20
        let tape = Tape()
        let out = try segmentSoftmax(tape.leaf(scores), index: index, numNodes: n).value
        let sums = try scatterAdd(tape.leaf(out), axis: 0, index: index, dimSize: n).value
        for i in 0..<n where index.data.contains(Double(i)) {
            for j in 0..<h {
                try require(Swift.abs(sums.data[i * h + j] - 1) <= 1e-14, "node \(i) head \(j): Σ out = \(sums.data[i * h + j])")
            }
        }
        try require(out.data.allSatisfy { $0 >= 0 && $0 <= 1 }, "an output outside [0, 1]: \(out)")
    },
    Property("shift_invariance") { rng in
        let (e, n) = (1 + rng.int(below: 10), 1 + rng.int(below: 4))
        let index = graphRandomIndex(&rng, [e], below: n)
        let scores = rng.normalTensor([e])
        let c = rng.normalTensor([n]) * 30
        let shifted = Tensor(unchecked: [e], (0..<e).map { scores.data[$0] + c.data[Int(index.data[$0])] })
        let tape = Tape()
        let a = try segmentSoftmax(tape.leaf(scores), index: index, numNodes: n).value
        let b = try segmentSoftmax(tape.leaf(shifted), index: index, numNodes: n).value
        try requireClose(b, a, Tolerance(rtol: 1e-12, atol: 1e-15), "segment_softmax(scores + c[index])")
    },
    Property("edge_permutation_equivariance") { rng in
        let (e, h, n) = (1 + rng.int(below: 10), 1 + rng.int(below: 3), 1 + rng.int(below: 4))
        let index = graphRandomIndex(&rng, [e], below: n)
        let scores = rng.normalTensor([e, h]) * 3
        let perm = rng.permutation(e)
        let tape = Tape()
        let out = try segmentSoftmax(tape.leaf(scores), index: index, numNodes: n).value
        let outP = try segmentSoftmax(tape.leaf(graphReorder(scores, axis: 0, perm)), index: graphReorder(index, axis: 0, perm),
                                      numNodes: n).value
        try requireClose(outP, graphReorder(out, axis: 0, perm), Tolerance(rtol: 1e-13, atol: 1e-15), "out of permuted edges")
    },
]) { ctx in
    ["out": try segmentSoftmax(ctx.v("scores"), index: ctx.tensor("index"), numNodes: ctx.int("num_nodes"))]
}

// MARK: - core.gather

/// A random gather instance: (x, index, axis), row layout or general layout (index possibly smaller).
private func randomGather(_ rng: inout RNG, fullSize: Bool) -> (Tensor, Tensor, Int) {
    let rank = 1 + rng.int(below: 3)
    let xs = graphRandomShape(&rng, rank: rank)
    let x = rng.normalTensor(xs)
    if rank > 1 && rng.bernoulli(0.5) {
        return (x, graphRandomIndex(&rng, [1 + rng.int(below: 7)], below: xs[0]), 0)
    }
    let axis = rng.int(below: rank)
    var ishape = xs
    for d in 0..<rank { ishape[d] = d == axis ? 1 + rng.int(below: 6) : (fullSize ? xs[d] : 1 + rng.int(below: xs[d])) }
    return (x, graphRandomIndex(&rng, ishape, below: xs[axis]), axis)
}

let gatherMethod = Method("core.gather", properties: [
    Property("adjoint_of_scatter_add") { rng in
        // (a) where scatter_add is defined (index covers x off the axis), ∂x = scatter_add(c)
        let (x, index, axis) = randomGather(&rng, fullSize: true)
        let tape = Tape()
        let xv = tape.leaf(x)
        let y = try gather(xv, axis: axis, index: index)
        let c = rng.normalTensor(y.shape)
        let gx = try tape.gradients(of: [(y, c)], wrt: [xv])[0]
        let sc = try scatterAdd(tape.leaf(c), axis: axis, index: index, dimSize: x.shape[axis]).value
        try requireClose(gx, sc, Tolerance(rtol: 0, atol: 0), "∂x vs scatter_add(cotangent)")
        // (b) in general (smaller index): ⟨gather(x), c⟩ = ⟨x, ∂x⟩ for the VJP ∂x of c
        let (x2, index2, axis2) = randomGather(&rng, fullSize: false)
        let t2 = Tape()
        let xv2 = t2.leaf(x2)
        let y2 = try gather(xv2, axis: axis2, index: index2)
        let c2 = rng.normalTensor(y2.shape)
        let g2 = try t2.gradients(of: [(y2, c2)], wrt: [xv2])[0]
        let lhs = try y2.value.dot(c2), rhs = try x2.dot(g2)
        try require(Swift.abs(lhs - rhs) <= 1e-12 * (1 + Swift.abs(lhs)), "⟨gather(x), c⟩ = \(lhs) but ⟨x, ∂x⟩ = \(rhs)")
    },
    Property("linearity") { rng in
        let (x1, index, axis) = randomGather(&rng, fullSize: false)
        let x2 = rng.normalTensor(x1.shape)
        let (a, b) = (rng.normal(), rng.normal())
        let tape = Tape()
        let lhs = try gather(tape.leaf(try x1 * a + x2 * b), axis: axis, index: index).value
        let rhs = try gather(tape.leaf(x1), axis: axis, index: index).value * a + gather(tape.leaf(x2), axis: axis, index: index).value * b
        try requireClose(lhs, rhs, Tolerance(rtol: 1e-13, atol: 1e-14), "gather(αx₁ + βx₂)")
    },
]) { ctx in
    ["y": try gather(ctx.v("x"), axis: ctx.int("axis"), index: ctx.tensor("index"))]
}

// MARK: - core.scatter_add

/// A random scatter_add instance: (src, index, axis, dimSize).
private func randomScatter(_ rng: inout RNG, rowsOnly: Bool = false) -> (Tensor, Tensor, Int, Int) {
    let rank = 1 + rng.int(below: 3)
    let ss = graphRandomShape(&rng, rank: rank, maxDim: 6)
    let src = rng.normalTensor(ss)
    let dimSize = 1 + rng.int(below: 5)
    if rank > 1 && (rowsOnly || rng.bernoulli(0.5)) {
        return (src, graphRandomIndex(&rng, [ss[0]], below: dimSize), 0, dimSize)
    }
    let axis = rowsOnly ? 0 : rng.int(below: rank)
    return (src, graphRandomIndex(&rng, ss, below: dimSize), axis, dimSize)
}

let scatterAddMethod = Method("core.scatter_add", properties: [
    Property("sum_preserved") { rng in
        let (src, index, axis, dimSize) = randomScatter(&rng)
        let tape = Tape()
        let out = try scatterAdd(tape.leaf(src), axis: axis, index: index, dimSize: dimSize).value
        try requireClose(try out.sum(axes: [axis]), try src.sum(axes: [axis]), Tolerance(rtol: 1e-12, atol: 1e-13),
                         "Σ_axis out vs Σ_axis src")
    },
    Property("adjoint_of_gather") { rng in
        let (src, index, axis, dimSize) = randomScatter(&rng)
        let tape = Tape()
        let sv = tape.leaf(src)
        let out = try scatterAdd(sv, axis: axis, index: index, dimSize: dimSize)
        let c = rng.normalTensor(out.shape)
        let g = try tape.gradients(of: [(out, c)], wrt: [sv])[0]
        try requireClose(g, try gather(tape.leaf(c), axis: axis, index: index).value, Tolerance(rtol: 0, atol: 0),
                         "∂src vs gather(cotangent)")
    },
    Property("permutation_invariance") { rng in
        let (src, index, _, dimSize) = randomScatter(&rng, rowsOnly: true)
        let perm = rng.permutation(src.shape[0])
        let tape = Tape()
        let out = try scatterAdd(tape.leaf(src), axis: 0, index: index, dimSize: dimSize).value
        let outP = try scatterAdd(tape.leaf(graphReorder(src, axis: 0, perm)), axis: 0,
                                  index: graphReorder(index, axis: 0, perm), dimSize: dimSize).value
        try requireClose(outP, out, Tolerance(rtol: 1e-13, atol: 1e-14), "scatter_add of permuted entries")
    },
]) { ctx in
    ["out": try scatterAdd(ctx.v("src"), axis: ctx.int("axis"), index: ctx.tensor("index"), dimSize: ctx.int("dim_size"))]
}
