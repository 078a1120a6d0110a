// core.softmax — softmax over one axis (torch.softmax).

import Certification
import Ops
import Tensor

let softmaxMethod = Method("core.softmax", properties: [
    Property("sums_to_one") { rng in
        let shape = (0..<(1 + rng.int(below: 3))).map { _ in 1 + rng.int(below: 5) }
        let axis = rng.int(below: shape.count)
        let y = try rng.normalTensor(shape).map { $0 * 10 }.softmax(axis: axis)
        let s = try y.sum(axes: [axis])
        try requireClose(s, Tensor(ones: s.shape), Tolerance(rtol: 0, atol: 1e-14), "Σ softmax")
    },
    Property("shift_invariance") { rng in
        let shape = [1 + rng.int(below: 4), 1 + rng.int(below: 6)]
        let x = rng.normalTensor(shape)
        let c = rng.normalTensor([shape[0], 1]) * 50
        try requireClose(try (x + c).softmax(axis: 1), try x.softmax(axis: 1), Tolerance(rtol: 1e-12, atol: 1e-15), "softmax(x + c)")
    },
    Property("positive") { rng in
        let x = rng.normalTensor([3, 1 + rng.int(below: 8)]) * 20
        let y = try x.softmax(axis: -1)
        try require(y.data.allSatisfy { $0 > 0 && $0 <= 1 }, "an output outside (0, 1]: \(y)")
    },
]) { ctx in
    ["y": try softmax(ctx.v("x"), axis: ctx.int("axis"))]
}
