// core.matmul — C = A·B over the last two axes, batch axes broadcast (torch.matmul).

import Certification
import Ops
import Tensor

let matmulMethod = Method("core.matmul", properties: [
    Property("bilinearity") { rng in
        let (m, k, n) = (1 + rng.int(below: 5), 1 + rng.int(below: 5), 1 + rng.int(below: 5))
        let a1 = rng.normalTensor([m, k]), a2 = rng.normalTensor([m, k]), b = rng.normalTensor([k, n])
        let (al, be) = (rng.normal(), rng.normal())
        let lhs = try Tensor.matmul(try a1 * al + a2 * be, b)
        let rhs = try Tensor.matmul(a1, b) * al + Tensor.matmul(a2, b) * be
        try requireClose(lhs, rhs, Tolerance(rtol: 1e-12, atol: 1e-12), "(αA₁+βA₂)B vs αA₁B+βA₂B")
        let b2 = rng.normalTensor([k, n])
        try requireClose(try Tensor.matmul(a1, try b * al + b2 * be), try Tensor.matmul(a1, b) * al + Tensor.matmul(a1, b2) * be,
                         Tolerance(rtol: 1e-12, atol: 1e-12), "A(αB₁+βB₂) vs αAB₁+βAB₂")
    },
    Property("transpose_identity") { rng in
        let (m, k, n) = (1 + rng.int(below: 6), 1 + rng.int(below: 6), 1 + rng.int(below: 6))
        let a = rng.normalTensor([2, m, k]), b = rng.normalTensor([2, k, n])
        let lhs = try Tensor.matmul(a, b).transposed()
        let rhs = try Tensor.matmul(b.transposed(), a.transposed())
        try requireClose(lhs, rhs, Tolerance(rtol: 1e-13, atol: 1e-13), "(AB)ᵀ vs BᵀAᵀ")
    },
]) { ctx in
    ["c": try matmul(ctx.v("a"), ctx.v("b"))]
}
