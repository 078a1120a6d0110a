// Matrix products. Semantics of torch.matmul for rank ≥ 2 operands (batch axes broadcast).

import Tensor

/// C = A·B over the last two axes, batch axes broadcast (torch.matmul / torch.bmm).
/// VJP: ∂A = G·Bᵀ (summed over broadcast batch axes), ∂B = Aᵀ·G.
public func matmul(_ a: Var, _ b: Var) throws -> Var {
    let t = try sameTape("matmul", a, b)
    let y = try Tensor.matmul(a.value, b.value)
    return t.record(y, parents: [a, b]) { g, needs in
        let ga = needs[0] ? try Tensor.matmul(g, b.value, transposeB: true).sumToShape(a.shape) : nil
        let gb = needs[1] ? try Tensor.matmul(a.value, g, transposeA: true).sumToShape(b.shape) : nil
        return [ga, gb]
    }
}
