// l2g.aligner — the L2G-aligner as Certify parameterises it. The abstract says only that it is a "lightweight transformer decoder"
// aligning local queries (the current frame's) with global queries (the past's) early. Every architectural choice is an assumption
// (protocols/l2g/aligner.yaml, unknowns): N_a layers of self-attention over the global queries, cross-attention to the local
// queries, FFN, post-norm by default, Mask2Former's order (cross first) as an option, pre-norm as an option.

import Certification
import Foundation
import Ops
import Tensor

/// The order of the two attention blocks inside a layer.
public enum AlignerOrder: Int, Sendable {
    /// Self-attention, cross-attention, FFN (spec C.2's reference design; the default).
    case selfFirst = 0
    /// Cross-attention, self-attention, FFN (Mask2Former's decoder order).
    case crossFirst = 1
}

/// The weights of N_a aligner layers, each stacked along a leading [N_a] axis (as tape variables).
public struct AlignerWeights {
    public var saInProjWeight: Var, saInProjBias: Var, saOutProjWeight: Var, saOutProjBias: Var
    public var caInProjWeight: Var, caInProjBias: Var, caOutProjWeight: Var, caOutProjBias: Var
    public var norm1Weight: Var, norm1Bias: Var, norm2Weight: Var, norm2Bias: Var, norm3Weight: Var, norm3Bias: Var
    public var linear1Weight: Var, linear1Bias: Var, linear2Weight: Var, linear2Bias: Var
    public var layers: Int { saInProjWeight.shape[0] }

    /// The input/param names, in the protocol's order.
    public static let names = [
        "sa_in_proj_weight", "sa_in_proj_bias", "sa_out_proj_weight", "sa_out_proj_bias",
        "ca_in_proj_weight", "ca_in_proj_bias", "ca_out_proj_weight", "ca_out_proj_bias",
        "norm1_weight", "norm1_bias", "norm2_weight", "norm2_bias", "norm3_weight", "norm3_bias",
        "linear1_weight", "linear1_bias", "linear2_weight", "linear2_bias",
    ]

    public init(_ v: [String: Var]) throws {
        func g(_ n: String) throws -> Var {
            guard let x = v[n] else { throw ShapeError("l2g.aligner", "missing weight '\(n)'") }
            return x
        }
        saInProjWeight = try g("sa_in_proj_weight"); saInProjBias = try g("sa_in_proj_bias")
        saOutProjWeight = try g("sa_out_proj_weight"); saOutProjBias = try g("sa_out_proj_bias")
        caInProjWeight = try g("ca_in_proj_weight"); caInProjBias = try g("ca_in_proj_bias")
        caOutProjWeight = try g("ca_out_proj_weight"); caOutProjBias = try g("ca_out_proj_bias")
        norm1Weight = try g("norm1_weight"); norm1Bias = try g("norm1_bias"); norm2Weight = try g("norm2_weight"); norm2Bias = try g("norm2_bias")
        norm3Weight = try g("norm3_weight"); norm3Bias = try g("norm3_bias")
        linear1Weight = try g("linear1_weight"); linear1Bias = try g("linear1_bias")
        linear2Weight = try g("linear2_weight"); linear2Bias = try g("linear2_bias")
    }

    static func layer(_ x: Var, _ l: Int) throws -> Var {
        try reshape(try slice(x, axis: 0, l..<(l + 1)), Array(x.shape.dropFirst()))
    }

    /// Fresh weights on a tape: PyTorch-like scales (uniform ±1/√fan_in), LayerNorm at γ = 1 + small noise.
    public static func random(_ rng: inout RNG, tape: Tape, layers: Int, dim e: Int, ffn f: Int) -> AlignerWeights {
        func u(_ shape: [Int], _ fan: Int) -> Var { tape.leaf(rng.uniformTensor(shape, -1 / Double(fan).squareRoot(), 1 / Double(fan).squareRoot())) }
        var v: [String: Var] = [:]
        for p in ["sa", "ca"] {
            v["\(p)_in_proj_weight"] = u([layers, 3 * e, e], e); v["\(p)_in_proj_bias"] = u([layers, 3 * e], e)
            v["\(p)_out_proj_weight"] = u([layers, e, e], e); v["\(p)_out_proj_bias"] = u([layers, e], e)
        }
        for k in 1...3 {
            v["norm\(k)_weight"] = tape.leaf(rng.uniformTensor([layers, e], 0.9, 1.1))
            v["norm\(k)_bias"] = tape.leaf(rng.uniformTensor([layers, e], -0.1, 0.1))
        }
        v["linear1_weight"] = u([layers, f, e], e); v["linear1_bias"] = u([layers, f], e)
        v["linear2_weight"] = u([layers, e, f], f); v["linear2_bias"] = u([layers, e], f)
        return try! AlignerWeights(v)
    }

    /// All weights as a name → var map (for optimisers).
    public var all: [String: Var] {
        Dictionary(uniqueKeysWithValues: zip(AlignerWeights.names, [
            saInProjWeight, saInProjBias, saOutProjWeight, saOutProjBias, caInProjWeight, caInProjBias, caOutProjWeight, caOutProjBias,
            norm1Weight, norm1Bias, norm2Weight, norm2Bias, norm3Weight, norm3Bias, linear1Weight, linear1Bias, linear2Weight, linear2Bias,
        ]))
    }
}

/// Aligner options (all assumptions: unknowns in protocols/l2g/aligner.yaml).
public struct AlignerOptions: Sendable {
    public var numHeads = 8
    public var order = AlignerOrder.selfFirst
    /// false: post-norm X ← LN(X + f(X)) (spec C.2, Mask2Former's default); true: pre-norm X ← X + f(LN(X)).
    public var normFirst = false
    public var eps = 1e-5
    public init(numHeads: Int = 8, order: AlignerOrder = .selfFirst, normFirst: Bool = false) {
        self.numHeads = numHeads; self.order = order; self.normFirst = normFirst
    }
}

/// The attention maps of one aligner application, per layer: self [B, N, N] and cross [B, N, S] (head means).
public struct AlignerAttention {
    public var selfAttention: [Var] = []
    public var crossAttention: [Var] = []
}

/// The aligner: global queries qg [N, B, E] attend to themselves and to the local queries ql [S, B, E] over N_a layers.
/// Positional embeddings (Mask2Former's with_pos_embed) are added to the queries and keys, never to the values:
/// self-attention q = k = X + posG, v = X; cross-attention q = X + posG, k = ql + posL, v = ql.
public func l2gAligner(global qg: Var, local ql: Var, posGlobal: Var?, posLocal: Var?, weights w: AlignerWeights,
                       options o: AlignerOptions) throws -> (out: Var, attention: AlignerAttention) {
    guard qg.value.rank == 3, ql.value.rank == 3, qg.shape[1] == ql.shape[1], qg.shape[2] == ql.shape[2] else {
        throw ShapeError("l2g.aligner", "global queries [N, B, E] and local queries [S, B, E] disagree: \(qg.shape), \(ql.shape)")
    }
    let e = qg.shape[2]
    func pos(_ x: Var, _ p: Var?) throws -> Var { try p.map { try x + $0 } ?? x }
    var x = qg
    var att = AlignerAttention()
    for l in 0..<w.layers {
        func L(_ v: Var) throws -> Var { try AlignerWeights.layer(v, l) }
        func norm(_ v: Var, _ g: Var, _ b: Var) throws -> Var { try layerNorm(v, normalizedShape: [e], weight: try L(g), bias: try L(b), eps: o.eps) }
        func selfBlock() throws {
            let inp = o.normFirst ? try norm(x, w.norm1Weight, w.norm1Bias) : x
            let qk = try pos(inp, posGlobal)
            let (a, weights) = try multiheadAttention(query: qk, key: qk, value: inp, numHeads: o.numHeads,
                                                      inProjWeight: try L(w.saInProjWeight), inProjBias: try L(w.saInProjBias),
                                                      outProjWeight: try L(w.saOutProjWeight), outProjBias: try L(w.saOutProjBias))
            att.selfAttention.append(weights)
            x = o.normFirst ? try x + a : try norm(try x + a, w.norm1Weight, w.norm1Bias)
        }
        func crossBlock() throws {
            let inp = o.normFirst ? try norm(x, w.norm2Weight, w.norm2Bias) : x
            let (a, weights) = try multiheadAttention(query: try pos(inp, posGlobal), key: try pos(ql, posLocal), value: ql, numHeads: o.numHeads,
                                                      inProjWeight: try L(w.caInProjWeight), inProjBias: try L(w.caInProjBias),
                                                      outProjWeight: try L(w.caOutProjWeight), outProjBias: try L(w.caOutProjBias))
            att.crossAttention.append(weights)
            x = o.normFirst ? try x + a : try norm(try x + a, w.norm2Weight, w.norm2Bias)
        }
        switch o.order {
        case .selfFirst: try selfBlock(); try crossBlock()
        case .crossFirst: try crossBlock(); try selfBlock()
        }
        let inp = o.normFirst ? try norm(x, w.norm3Weight, w.norm3Bias) : x
        let f = try linear(relu(try linear(inp, weight: try L(w.linear1Weight), bias: try L(w.linear1Bias))),
                           weight: try L(w.linear2Weight), bias: try L(w.linear2Bias))
        x = o.normFirst ? try x + f : try norm(try x + f, w.norm3Weight, w.norm3Bias)
    }
    return (x, att)
}

func alignerOptions(_ ctx: Context) throws -> AlignerOptions {
    guard let order = AlignerOrder(rawValue: try ctx.int("order", default: 0)) else {
        throw ShapeError("l2g.aligner", "order must be 0 (self-attention first) or 1 (cross-attention first)")
    }
    return AlignerOptions(numHeads: try ctx.int("num_heads"), order: order, normFirst: try ctx.int("norm_first", default: 0) != 0)
}

func alignerWeights(_ ctx: Context) throws -> AlignerWeights {
    try AlignerWeights(Dictionary(uniqueKeysWithValues: try AlignerWeights.names.map { ($0, try ctx.v($0)) }))
}

/// A random aligner problem for the properties: weights, queries, local queries, positions.
func randomAlignerProblem(_ rng: inout RNG, tape: Tape) -> (w: AlignerWeights, o: AlignerOptions, n: Int, s: Int, b: Int, e: Int) {
    let heads = 1 + rng.int(below: 2), e = heads * (2 + rng.int(below: 3))
    let w = AlignerWeights.random(&rng, tape: tape, layers: 1 + rng.int(below: 2), dim: e, ffn: 2 * e)
    let o = AlignerOptions(numHeads: heads, order: rng.bernoulli(0.5) ? .selfFirst : .crossFirst, normFirst: rng.bernoulli(0.5))
    return (w, o, 2 + rng.int(below: 4), 2 + rng.int(below: 4), 1 + rng.int(below: 2), e)
}

/// Permutes axis 0 of a [T, B, E] tensor: row i of the result is row perm[i].
func permuteRows(_ t: Tensor, _ perm: [Int]) -> Tensor {
    let row = t.count / t.shape[0]
    return Tensor(unchecked: t.shape, perm.flatMap { t.data[($0 * row)..<(($0 + 1) * row)] })
}

let alignerMethod = Method("l2g.aligner", properties: [
    Property("global_query_permutation_equivariance") { rng in
        let tape = Tape()
        let (w, o, n, s, b, e) = randomAlignerProblem(&rng, tape: tape)
        let qg = rng.normalTensor([n, b, e]), pg = rng.normalTensor([n, b, e]), ql = rng.normalTensor([s, b, e]), pl = rng.normalTensor([s, b, e])
        let perm = rng.permutation(n)
        let y = try l2gAligner(global: tape.constant(qg), local: tape.constant(ql), posGlobal: tape.constant(pg), posLocal: tape.constant(pl), weights: w, options: o).out
        let yp = try l2gAligner(global: tape.constant(permuteRows(qg, perm)), local: tape.constant(ql), posGlobal: tape.constant(permuteRows(pg, perm)),
                                posLocal: tape.constant(pl), weights: w, options: o).out
        try requireClose(yp.value, permuteRows(y.value, perm), Tolerance(rtol: 1e-11, atol: 1e-12), "aligner(Pq) vs P·aligner(q)")
    },
    Property("local_query_permutation_invariance") { rng in
        let tape = Tape()
        let (w, o, n, s, b, e) = randomAlignerProblem(&rng, tape: tape)
        let qg = rng.normalTensor([n, b, e]), pg = rng.normalTensor([n, b, e]), ql = rng.normalTensor([s, b, e]), pl = rng.normalTensor([s, b, e])
        let perm = rng.permutation(s)
        let y = try l2gAligner(global: tape.constant(qg), local: tape.constant(ql), posGlobal: tape.constant(pg), posLocal: tape.constant(pl), weights: w, options: o).out
        let yp = try l2gAligner(global: tape.constant(qg), local: tape.constant(permuteRows(ql, perm)), posGlobal: tape.constant(pg),
                                posLocal: tape.constant(permuteRows(pl, perm)), weights: w, options: o).out
        try requireClose(yp.value, y.value, Tolerance(rtol: 1e-11, atol: 1e-12), "aligner with the local queries permuted")
    },
    Property("attention_rows_sum_to_one") { rng in
        let tape = Tape()
        let (w, o, n, s, b, e) = randomAlignerProblem(&rng, tape: tape)
        let r = try l2gAligner(global: tape.constant(rng.normalTensor([n, b, e]) * 3), local: tape.constant(rng.normalTensor([s, b, e]) * 3),
                               posGlobal: nil, posLocal: nil, weights: w, options: o)
        for a in r.attention.selfAttention + r.attention.crossAttention {
            let last = a.shape.last!
            for row in 0..<(a.value.count / last) {
                let sum = a.value.data[(row * last)..<((row + 1) * last)].reduce(0, +)
                try require(Swift.abs(sum - 1) <= 1e-14 && a.value.data.allSatisfy { $0 >= 0 }, "an attention row sums to \(sum)")
            }
        }
    },
]) { ctx in
    let (out, att) = try l2gAligner(global: try ctx.v("global_queries"), local: try ctx.v("local_queries"),
                                    posGlobal: try ctx.optionalV("global_pos"), posLocal: try ctx.optionalV("local_pos"),
                                    weights: try alignerWeights(ctx), options: try alignerOptions(ctx))
    return ["out": out,
            "self_attention": try concatenate(try att.selfAttention.map { try reshape($0, [1] + $0.shape) }, axis: 0),
            "cross_attention": try concatenate(try att.crossAttention.map { try reshape($0, [1] + $0.shape) }, axis: 0)]
}
