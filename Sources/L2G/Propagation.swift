// l2g.propagation — the online loop over frames as Certify parameterises it (spec C.2): Q_g^0 is the first frame's local queries
// or a learned set; Q_g^t = aligner(Q_g^{t−1}, Q_l^t); track n's prediction at frame t comes from Q_g^t[n] through the class
// head and the mask head (mask embedding · the frame's per-pixel features). Identity is the query index.

import Certification
import Foundation
import Ops
import Tensor

/// How the global queries start.
public enum GlobalInit: Int, Sendable {
    /// Q_g^0 = Q_l^1, the first frame's local queries (requires N = S; the default).
    case firstFrame = 0
    /// Q_g^0 = a learned set of N queries.
    case learned = 1
}

/// The prediction heads: class logits Linear(E → K+1), mask embedding Linear(E → C) (Mask2Former uses a 3-layer MLP; one
/// layer here, an assumption), mask logits = embedding · per-pixel features.
public struct PredictionHeads {
    public var classWeight: Var, classBias: Var, maskEmbedWeight: Var, maskEmbedBias: Var
    public init(classWeight: Var, classBias: Var, maskEmbedWeight: Var, maskEmbedBias: Var) {
        self.classWeight = classWeight; self.classBias = classBias; self.maskEmbedWeight = maskEmbedWeight; self.maskEmbedBias = maskEmbedBias
    }

    /// queries [N, B, E], features [B, C, H, W] → class logits [B, N, K+1], mask logits [B, N, H, W].
    public func callAsFunction(_ q: Var, features f: Var) throws -> (logits: Var, masks: Var) {
        let (n, b) = (q.shape[0], q.shape[1])
        let (c, h, w) = (f.shape[1], f.shape[2], f.shape[3])
        let qb = try permute(q, [1, 0, 2])                                      // [B, N, E]
        let logits = try linear(qb, weight: classWeight, bias: classBias)       // [B, N, K+1]
        let emb = try linear(qb, weight: maskEmbedWeight, bias: maskEmbedBias)  // [B, N, C]
        let masks = try matmul(emb, try reshape(f, [b, c, h * w]))              // [B, N, H·W]
        return (logits, try reshape(masks, [b, n, h, w]))
    }
}

/// The online loop. local [T, S, B, E] (frame t's local queries), features [T, B, C, H, W]. Frame t's outputs depend only on
/// frames ≤ t (online causality). Returns per frame Q_g^t [N, B, E], class logits [B, N, K+1], mask logits [B, N, H, W].
public func l2gPropagate(local: Var, features: Var, globalInit: Var?, posGlobal: Var?, posLocal: Var?, aligner: AlignerWeights?,
                         options: AlignerOptions, heads: PredictionHeads, initMode: GlobalInit)
    throws -> [(queries: Var, logits: Var, masks: Var)] {
    guard local.value.rank == 4, features.value.rank == 5, local.shape[0] == features.shape[0], local.shape[2] == features.shape[1] else {
        throw ShapeError("l2g.propagation", "local_queries [T, S, B, E] and mask_features [T, B, C, H, W] disagree: \(local.shape), \(features.shape)")
    }
    let (t, s, b, e) = (local.shape[0], local.shape[1], local.shape[2], local.shape[3])
    func frame(_ x: Var, _ i: Int, _ shape: [Int]) throws -> Var { try reshape(try slice(x, axis: 0, i..<(i + 1)), shape) }
    let fshape = Array(features.shape.dropFirst())
    var g: Var
    switch initMode {
    case .firstFrame: g = try frame(local, 0, [s, b, e])
    case .learned:
        guard let gi = globalInit else { throw ShapeError("l2g.propagation", "init = 1 (learned) needs the input global_init [N, B, E]") }
        g = gi
    }
    var out: [(queries: Var, logits: Var, masks: Var)] = []
    for i in 0..<t {
        let ql = try frame(local, i, [s, b, e])
        if let aligner {
            g = try l2gAligner(global: g, local: ql, posGlobal: posGlobal, posLocal: posLocal, weights: aligner, options: options).out
        } else {
            g = ql   // plain propagation without alignment (the experiment's ablation): the frame's own queries
        }
        let (lg, mk) = try heads(g, features: try frame(features, i, fshape))
        out.append((g, lg, mk))
    }
    return out
}

func propagationOutputs(_ ctx: Context) throws -> [String: Var] {
    guard let initMode = GlobalInit(rawValue: try ctx.int("init", default: 0)) else {
        throw ShapeError("l2g.propagation", "init must be 0 (first frame's local queries) or 1 (learned)")
    }
    let heads = PredictionHeads(classWeight: try ctx.v("class_weight"), classBias: try ctx.v("class_bias"),
                                maskEmbedWeight: try ctx.v("mask_embed_weight"), maskEmbedBias: try ctx.v("mask_embed_bias"))
    let frames = try l2gPropagate(local: try ctx.v("local_queries"), features: try ctx.v("mask_features"),
                                  globalInit: initMode == .learned ? try ctx.v("global_init") : nil,
                                  posGlobal: try ctx.optionalV("global_pos"), posLocal: try ctx.optionalV("local_pos"),
                                  aligner: try alignerWeights(ctx), options: try alignerOptions(ctx), heads: heads, initMode: initMode)
    func stack(_ xs: [Var]) throws -> Var { try concatenate(try xs.map { try reshape($0, [1] + $0.shape) }, axis: 0) }
    return ["global_queries": try stack(frames.map(\.queries)), "class_logits": try stack(frames.map(\.logits)),
            "mask_logits": try stack(frames.map(\.masks))]
}

/// A random propagation problem for the properties, as case data.
func randomPropagationCase(_ rng: inout RNG, learned: Bool) -> CaseData {
    // At least 3 features: a layer norm over 2 is a sign (±w + b), so with post-norm a perturbation of later
    // frames could leave every output bit unchanged and online_causality's "the test could fail" check would trip.
    let heads = 1 + rng.int(below: 2), e = heads * (3 + rng.int(below: 2))
    let t = 2 + rng.int(below: 3), s = 2 + rng.int(below: 3), n = learned ? 2 + rng.int(below: 3) : s, b = 1, k1 = 3, c = 3, h = 3, w = 4
    var d = CaseData(name: "random", source: "property")
    let tape = Tape()
    let aw = AlignerWeights.random(&rng, tape: tape, layers: 1, dim: e, ffn: 2 * e)
    for (name, v) in aw.all { d.inputs[name] = v.value }
    d.inputs["local_queries"] = rng.normalTensor([t, s, b, e])
    d.inputs["mask_features"] = rng.normalTensor([t, b, c, h, w])
    d.inputs["global_pos"] = rng.normalTensor([n, b, e])
    d.inputs["local_pos"] = rng.normalTensor([s, b, e])
    if learned { d.inputs["global_init"] = rng.normalTensor([n, b, e]) }
    d.inputs["class_weight"] = rng.normalTensor([k1, e]); d.inputs["class_bias"] = rng.normalTensor([k1])
    d.inputs["mask_embed_weight"] = rng.normalTensor([c, e]); d.inputs["mask_embed_bias"] = rng.normalTensor([c])
    d.params["num_heads"] = Tensor(scalar: Double(heads))
    d.params["init"] = Tensor(scalar: learned ? 1 : 0)
    d.params["order"] = Tensor(scalar: rng.bernoulli(0.5) ? 1 : 0)
    d.params["norm_first"] = Tensor(scalar: rng.bernoulli(0.5) ? 1 : 0)
    return d
}

func runPropagation(_ d: CaseData) throws -> [String: Tensor] {
    let ctx = Context(data: d, differentiable: [])
    return try propagationOutputs(ctx).mapValues(\.value)
}

/// Frames 0..<upTo of an output stacked on axis 0.
func leadingFrames(_ x: Tensor, _ upTo: Int) throws -> [Double] { try x.slice(axis: 0, 0..<upTo).data }

let propagationMethod = Method("l2g.propagation", properties: [
    Property("online_causality") { rng in
        var d = randomPropagationCase(&rng, learned: rng.bernoulli(0.5))
        let a = try runPropagation(d)
        let t = d.inputs["local_queries"]!.shape[0], cut = 1 + rng.int(below: t - 1)   // frames ≥ cut change
        for name in ["local_queries", "mask_features"] {
            var x = d.inputs[name]!
            let per = x.count / t
            for j in (cut * per)..<x.count { x.data[j] += rng.normal() * 5 }
            d.inputs[name] = x
        }
        let b = try runPropagation(d)
        for k in ["global_queries", "class_logits", "mask_logits"] {
            try require(try leadingFrames(a[k]!, cut) == leadingFrames(b[k]!, cut), "\(k) of frames < \(cut) changed when later frames changed")
            try require(try a[k]!.slice(axis: 0, cut..<t).data != b[k]!.slice(axis: 0, cut..<t).data, "later frames did not change \(k) (the test could not fail)")
        }
    },
    Property("track_identity_by_query_index") { rng in
        // With learned initial queries, permuting them (with their positional embeddings) permutes every frame's tracks the same way.
        var d = randomPropagationCase(&rng, learned: true)
        let a = try runPropagation(d)
        let n = d.inputs["global_init"]!.shape[0], perm = rng.permutation(n)
        d.inputs["global_init"] = permuteRows(d.inputs["global_init"]!, perm)
        d.inputs["global_pos"] = permuteRows(d.inputs["global_pos"]!, perm)
        let b = try runPropagation(d)
        let q = a["global_queries"]!, t = q.shape[0]
        for f in 0..<t {
            let qa = try q.slice(axis: 0, f..<(f + 1)).reshaped(Array(q.shape.dropFirst()))
            let qb = try b["global_queries"]!.slice(axis: 0, f..<(f + 1)).reshaped(Array(q.shape.dropFirst()))
            try requireClose(qb, permuteRows(qa, perm), Tolerance(rtol: 1e-11, atol: 1e-12), "frame \(f): track n of the permuted run is track perm[n]")
        }
    },
]) { ctx in try propagationOutputs(ctx) }
