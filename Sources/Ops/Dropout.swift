// Dropout with an explicit keep-mask, as torch's _dropout_impl with the Bernoulli draw given:
// noise = mask/(1 − p); y = x·noise in training, y = x in evaluation.

import Tensor

/// torch.nn.functional.dropout semantics with the keep-mask as an argument (so the result never
/// depends on a hidden RNG): training: y = x·(mask/(1 − p)), ∂x = g·mask/(1 − p); evaluation: y = x.
/// p = 1 gives y = x·0 like PyTorch. `mask` must have x's shape (0/1 values; not checked to be binary).
public func dropout(_ x: Var, mask: Tensor, p: Double, training: Bool = true) throws -> Var {
    guard p >= 0, p <= 1 else { throw ShapeError("dropout", "p must be in [0, 1], got \(p)") }
    guard mask.shape == x.shape else {
        throw ShapeError("dropout", "mask has shape \(mask.shape), x has shape \(x.shape)")
    }
    let shape = x.shape
    guard training else { return x.tape.record(x.value, parents: [x]) { g in [g] } }
    let noise: [Double] = p == 1 ? [Double](repeating: 0, count: mask.count) : mask.data.map { $0 / (1.0 - p) }
    let xd = x.value.data
    let y = [Double](unsafeUninitializedCapacity: xd.count) { buf, count in
        for i in 0..<xd.count { buf[i] = xd[i] * noise[i] }
        count = xd.count
    }
    return x.tape.record(Tensor(unchecked: shape, y), parents: [x]) { g in
        let gd = g.data
        return [Tensor(unchecked: shape, (0..<gd.count).map { gd[$0] * noise[$0] })]
    }
}

/// A keep-mask for `dropout` from the suite's RNG: each entry is 1 with probability 1 − p
/// (uniform() ≥ p), else 0.
public func dropoutMask(shape: [Int], p: Double, rng: inout RNG) throws -> Tensor {
    guard p >= 0, p <= 1 else { throw ShapeError("dropout_mask", "p must be in [0, 1], got \(p)") }
    guard shape.allSatisfy({ $0 >= 0 }) else { throw ShapeError("dropout_mask", "negative dimension in shape \(shape)") }
    let n = shape.reduce(1, *)
    var d = [Double](repeating: 0, count: n)
    for i in 0..<n { d[i] = rng.uniform() >= p ? 1 : 0 }
    return Tensor(unchecked: shape, d)
}
