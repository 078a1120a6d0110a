// dartsgt.mixed_op — the DARTS mixed operation over the GNN experts (spec B.1 steps 1–3, NAS_layer_edge.py::NASLayer.forward):
// the shared BN_kv once per expert, the joint standardisation, expert dropout and KV = Σ_o softmax(α)_o Ŷ_o.

import Certification
import Foundation
import Ops
import Tensor

/// Joint standardisation (B.1 step 2): μ and the unbiased s over every element of every expert, Ŷ_o = (Y_o − μ)/(s + 1e-8).
public func jointStandardise(_ ys: [Var]) throws -> [Var] {
    let flat = try concatenate(try ys.map { try reshape($0, [$0.value.count]) }, axis: 0)
    let n = flat.value.count
    guard n >= 2 else { throw ShapeError("dartsgt.mixed_op", "the unbiased std needs at least 2 elements over all experts, got \(n)") }
    let mu = try mean(flat)
    let centred = try flat - mu
    let s = sqrtVar(try sum(try centred * centred) * (1 / Double(n - 1)))
    let denom = try s + scalar(s, 1e-8)
    return try ys.map { try ($0 - mu) / denom }
}

/// The mixed op's result: KV, the standardised experts (before expert dropout), π and BN_kv's running statistics.
public struct MixedOpOutput {
    public var kv: Var
    public var standardised: [Var]
    public var pi: Var
    public var runningMean: Tensor?, runningVar: Tensor?
}

/// Steps 1–3 of B.1 on the experts' outputs Y_o (already through their own dropout): BN_kv (one module, called once per expert,
/// so in train mode each call uses its own batch statistics and updates the running statistics in turn), the joint standardisation,
/// expert dropout (train only, keep-masks given) and KV = Σ_o π_o Ŷ_o with π = softmax(α) (eq. 3).
public func mixedOp(experts: [Var], alpha: Var, bnWeight: Var, bnBias: Var, runningMean: Tensor, runningVar: Tensor,
                    training: Bool, expertMasks: [Tensor]?, p: Double) throws -> MixedOpOutput {
    let op = "dartsgt.mixed_op"
    guard !experts.isEmpty else { throw ShapeError(op, "no experts") }
    guard alpha.shape == [experts.count] else {
        throw ShapeError(op, "alpha has shape \(alpha.shape); expected [\(experts.count)] (one entry per candidate operator)")
    }
    var rm = runningMean, rv = runningVar
    var ys: [Var] = []
    for y in experts {
        let bn = try batchNorm(y, runningMean: rm, runningVar: rv, weight: bnWeight, bias: bnBias, training: training)
        if training, let m = bn.runningMean, let v = bn.runningVar { rm = m; rv = v }
        ys.append(bn.y)
    }
    let std = try jointStandardise(ys)
    var dropped = std
    if training, let masks = expertMasks {
        dropped = try zip(std, masks).map { try dropout($0, mask: $1, p: p, training: true) }
    }
    let pi = try softmax(alpha, axis: 0)
    var kv: Var?
    for (o, y) in dropped.enumerated() {
        let w = try reshape(try slice(pi, axis: 0, o..<(o + 1)), [1, 1])
        let term = try y * w
        kv = try kv.map { try $0 + term } ?? term
    }
    return MixedOpOutput(kv: kv!, standardised: std, pi: pi, runningMean: training ? rm : nil, runningVar: training ? rv : nil)
}

private func splitExperts(_ e: Var) throws -> [Var] {
    guard e.value.rank == 3 else { throw ShapeError("dartsgt.mixed_op", "experts has shape \(e.shape); expected [O, N, d]") }
    return try (0..<e.shape[0]).map { try reshape(try slice(e, axis: 0, $0..<($0 + 1)), [e.shape[1], e.shape[2]]) }
}

private func randomMixed(_ rng: inout RNG, o: Int = 3) -> (Tensor, Tensor) {
    let (n, d) = (2 + rng.int(below: 5), 1 + rng.int(below: 4))
    return (rng.normalTensor([o, n, d]) * 2 + 0.5, rng.normalTensor([o]))
}

private func runMixed(_ e: Tensor, _ a: Tensor, training: Bool = false) throws -> (MixedOpOutput, Tape, Var, Var) {
    let t = Tape()
    let ev = t.leaf(e), av = t.leaf(a)
    let d = e.shape[2]
    let r = try mixedOp(experts: try splitExperts(ev), alpha: av, bnWeight: t.leaf(Tensor(ones: [d])), bnBias: t.leaf(Tensor(zeros: [d])),
                        runningMean: Tensor(zeros: [d]), runningVar: Tensor(ones: [d]), training: training, expertMasks: nil, p: 0)
    return (r, t, ev, av)
}

let mixedOpMethod = Method("dartsgt.mixed_op", properties: [
    Property("standardised_moments") { rng in
        let (e, a) = randomMixed(&rng)
        let (r, _, _, _) = try runMixed(e, a, training: rng.bernoulli(0.5))
        let all = r.standardised.flatMap(\.value.data)
        let m = all.reduce(0, +) / Double(all.count)
        let s = (all.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(all.count - 1)).squareRoot()
        try require(Swift.abs(m) < 1e-14, "mean(Ŷ) = \(m)")
        try require(Swift.abs(s - 1) < 1e-7 && s < 1, "unbiased std(Ŷ) = \(s), expected 1 − O(1e-8)")
    },
    Property("alpha_shift_invariance") { rng in
        let (e, a) = randomMixed(&rng)
        let c = rng.normal() * 3
        let (r1, _, _, _) = try runMixed(e, a), (r2, _, _, _) = try runMixed(e, a + c)
        try requireClose(r2.kv.value, r1.kv.value, Tolerance(rtol: 1e-12, atol: 1e-13), "KV(α + c)")
        try require(r1.pi.value.data.allSatisfy { $0 > 0 } && Swift.abs(r1.pi.value.sumAll - 1) < 1e-15, "π = \(r1.pi.value.data)")
    },
    Property("equal_experts_any_alpha") { rng in
        let (e, a) = randomMixed(&rng)
        let one = try e.slice(axis: 0, 0..<1)
        let same = try Tensor.concatenate([one, one, one], axis: 0)
        let (r, _, _, _) = try runMixed(same, a)
        try requireClose(r.kv.value, r.standardised[0].value, Tolerance(rtol: 1e-13, atol: 1e-14), "KV with equal experts")
    },
    Property("alpha_gradient_formula") { rng in
        // ∂L/∂α_j = π_j ⟨G, Ŷ_j − KV⟩ for L = ⟨G, KV⟩ (B.7).
        let (e, a) = randomMixed(&rng)
        let (r, t, _, av) = try runMixed(e, a)
        let g = rng.normalTensor(r.kv.shape)
        let grad = try t.gradients(of: [(r.kv, g)], wrt: [av])[0]
        for j in 0..<3 {
            let want = r.pi.value.data[j] * (try g.dot(try r.standardised[j].value - r.kv.value))
            try require(Swift.abs(grad.data[j] - want) <= 1e-12 * Swift.max(1, Swift.abs(want)), "∂L/∂α_\(j) = \(grad.data[j]), π_j⟨G, Ŷ_j − KV⟩ = \(want)")
        }
    },
]) { ctx in
    let e = try ctx.v("experts")
    let experts = try splitExperts(e)
    let training = try flag(ctx, "training")
    var masks: [Tensor]?
    var p = 0.0
    if training {
        let m = try ctx.tensor("expert_mask")
        guard m.shape == e.shape else { throw ShapeError("dartsgt.mixed_op", "expert_mask has shape \(m.shape); expected \(e.shape) like experts") }
        masks = try (0..<m.shape[0]).map { try m.slice(axis: 0, $0..<($0 + 1)).reshaped([m.shape[1], m.shape[2]]) }
        p = try ctx.double("expert_dropout")
    }
    let r = try mixedOp(experts: experts, alpha: try ctx.v("alpha"), bnWeight: try ctx.v("bn_kv.weight"), bnBias: try ctx.v("bn_kv.bias"),
                        runningMean: try ctx.tensor("bn_kv.running_mean"), runningVar: try ctx.tensor("bn_kv.running_var"),
                        training: training, expertMasks: masks, p: p)
    var out: [String: Var] = ["kv": r.kv, "pi": r.pi, "standardised": try concatenate(try r.standardised.map { try reshape($0, [1] + $0.shape) }, axis: 0)]
    if let m = r.runningMean, let v = r.runningVar {
        out["bn_kv.new_running_mean"] = ctx.constant(m)
        out["bn_kv.new_running_var"] = ctx.constant(v)
    }
    return out
}
