// lava.heads — the ADA (dataset attribution, K = 3) and ADMR (model recognition, K = 6) heads on the pretrained encoder:
// sigmoid channel gate, mean over time, Linear → ReLU → Linear, and the official partial fine-tuning step.
// Official code: audioDeepfakeAttribution.py::AudioDeepfakeAttributionModel (forward, freezing in __init__) and ::train_model;
// audioDeepfakeModelRecognition.py::ADMR_model (same layers, K = 6); ablationStudies.py::ModelWithoutAttention. Spec A.4.

import Certification
import Foundation
import Ops
import Tensor

/// With or without the attention gate.
public enum HeadVariant: Int, Sendable {
    /// z' = z ⊙ σ(W_a z + b_a) (the released ADA/ADMR models).
    case attention = 1
    /// z' = z (ablationStudies.py::ModelWithoutAttention).
    case withoutAttention = 0
}

/// Every intermediate of the head.
public struct HeadOutput {
    /// The encoder output z [B, c4, T].
    public var latent: Var
    /// A = σ(W_a z + b_a) [B, c4, T] (nil without attention).
    public var gate: Var?
    /// p = mean_t z' [B, c4].
    public var pooled: Var
    public var logits: Var
}

/// The head on a latent z [B, c4, T]: gate (a per-time-step channel gate, no normalisation over t or c), mean over time,
/// classifier.2 (Linear c4 → H), ReLU, classifier.4 (Linear H → K).
public func attributionHead(latent z: Var, _ w: Weights, variant: HeadVariant = .attention) throws -> HeadOutput {
    guard z.shape.count == 3, z.shape[2] >= 1 else { throw ShapeError("lava head", "latent must be [B, C, T] with T ≥ 1, found \(z.shape)") }
    var gate: Var?
    var attended = z
    if variant == .attention {
        let a = sigmoid(try conv1d(z, weight: try w.v("attention.0.weight"), bias: try w.v("attention.0.bias")))
        gate = a
        attended = try z * a
    }
    let pooled = try reshape(try adaptiveAvgPool1d(attended, outputSize: 1), [z.shape[0], z.shape[1]])
    let h = relu(try linear(pooled, weight: try w.v("classifier.2.weight"), bias: try w.v("classifier.2.bias")))
    let logits = try linear(h, weight: try w.v("classifier.4.weight"), bias: try w.v("classifier.4.bias"))
    return HeadOutput(latent: z, gate: gate, pooled: pooled, logits: logits)
}

/// The full ADA / ADMR model: encoder then head. Train mode runs every encoder BatchNorm on batch statistics (the
/// official model trains in train() mode) and returns their updated running statistics.
public func attributionModel(_ x: Var, _ w: Weights, variant: HeadVariant = .attention, training: Bool = false,
                             momentum: Double = 0.1) throws -> (output: HeadOutput, statistics: [String: Tensor]) {
    let enc = try lavaEncoder(x, w, training: training, momentum: momentum)
    return (try attributionHead(latent: enc.z, w, variant: variant), enc.statistics)
}

/// One official training step of a head (train_model's inner loop): forward in train mode, mean cross-entropy,
/// gradients for the trainable set only (encoder.10 γ/β, gate, classifier), Adam(lr) from a fresh state. Returns the new
/// state (trainable tensors stepped, all four encoder BNs' running statistics updated, everything else unchanged) and the loss.
public func officialHeadTrainingStep(x: Tensor, labels: Tensor, state: StateDict, lr: Double = 1e-4,
                                     variant: HeadVariant = .attention, momentum: Double = 0.1) throws -> (state: StateDict, loss: Double) {
    let tape = Tape()
    let trainable = LAVAArchitecture.headTrainable.filter { variant == .attention || !$0.hasPrefix("attention") }
    var leaves: [String: Var] = [:]
    for n in trainable { leaves[n] = tape.leaf(try state.tensor(n)) }
    let w = Weights(v: { name in try leaves[name] ?? tape.constant(try state.tensor(name)) }, t: { try state.tensor($0) })
    let (out, stats) = try attributionModel(tape.constant(x), w, variant: variant, training: true, momentum: momentum)
    let loss = try crossEntropy(out.logits, target: labels)
    let vars = trainable.map { leaves[$0]! }
    let g = try tape.gradients(of: loss, wrt: vars)
    var next = state
    for (k, v) in try adamFirstStep(trainable.map { ($0, leaves[$0]!.value) }, grads: g, lr: lr) {
        next.tensors[String(k.dropFirst(4))] = v
    }
    for (k, v) in stats { next.tensors[String(k.dropFirst(4))] = v }
    return (next, loss.value.data[0])
}

let headsMethod = Method("lava.heads", properties: [
    Property("gate_bounds") { rng in
        let arch = try LAVAArchitecture(channels: [1, 2, 3, 4, 5], hidden: 4, classes: 3)
        var sd = randomState(arch, &rng, head: true)
        let z = rng.uniformTensor([2, 5, 1 + rng.int(below: 20)], 0, 3)   // a latent is ≥ 0 (ReLU)
        func gated(_ sd: StateDict) throws -> (gate: Tensor, attended: Tensor) {
            let tape = Tape()
            let o = try attributionHead(latent: tape.constant(z), .stateDict(sd, tape: tape))
            return (o.gate!.value, try z * o.gate!.value)
        }
        let (a, za) = try gated(sd)
        try require(a.data.allSatisfy { $0 > 0 && $0 < 1 }, "a gate value outside (0, 1)")
        try require(zip(za.data, z.data).allSatisfy { Swift.abs($0) <= Swift.abs($1) }, "|z'| > |z| somewhere")
        sd.tensors["attention.0.weight"] = Tensor(zeros: [5, 5, 1])
        sd.tensors["attention.0.bias"] = Tensor(zeros: [5])
        let (_, half) = try gated(sd)
        try requireClose(half, z * 0.5, Tolerance(rtol: 0, atol: 0), "z' with W_a = 0, b_a = 0")
    },
    Property("time_permutation_invariance") { rng in
        let arch = try LAVAArchitecture(channels: [1, 2, 3, 4, 6], hidden: 5, classes: 6)
        let sd = randomState(arch, &rng, head: true)
        let b = 1 + rng.int(below: 3), c = 6, t = 2 + rng.int(below: 30)
        let z = rng.uniformTensor([b, c, t], 0, 2)
        let perm = rng.permutation(t)
        var zp = z
        for i in 0..<(b * c) { for j in 0..<t { zp.data[i * t + j] = z.data[i * t + perm[j]] } }
        func logits(_ z: Tensor) throws -> Tensor {
            let tape = Tape()
            return try attributionHead(latent: tape.constant(z), .stateDict(sd, tape: tape)).logits.value
        }
        try requireClose(try logits(zp), try logits(z), Tolerance(rtol: 1e-12, atol: 1e-14), "logits after permuting the time columns")
    },
    Property("eval_batch_independence") { rng in
        let arch = try LAVAArchitecture(channels: [1, 2, 3, 4, 5], hidden: 4, classes: 3)
        let sd = randomState(arch, &rng, head: true)
        let l = 32 + rng.int(below: 100)   // T ≥ 2: a train-mode BN needs more than one value per channel
        let x1 = randomWaveform(1, l, &rng), both = try Tensor.concatenate([x1, randomWaveform(1 + rng.int(below: 3), l, &rng)], axis: 0)
        func outputs(_ x: Tensor, _ training: Bool) throws -> (logits: Tensor, pooled: Tensor) {
            let tape = Tape()
            let o = try attributionModel(tape.constant(x), .stateDict(sd, tape: tape), training: training).output
            return (try o.logits.value.slice(axis: 0, 0..<1), try o.pooled.value.slice(axis: 0, 0..<1))
        }
        try requireClose(try outputs(both, false).logits, try outputs(x1, false).logits, Tolerance(rtol: 1e-12, atol: 1e-14),
                         "eval-mode logits of x1 inside a batch")
        try requireClose(try outputs(both, false).pooled, try outputs(x1, false).pooled, Tolerance(rtol: 1e-12, atol: 1e-14),
                         "eval-mode pooled features of x1 inside a batch")
        // Train mode: the pooled features (before the ReLU MLP, which may zero a tiny random model's logits' dependence).
        let d = zip(try outputs(both, true).pooled.data, try outputs(x1, true).pooled.data).map { Swift.abs($0 - $1) }.max() ?? 0
        try require(d > 1e-8, "train mode did not depend on the batch (max |Δ| \(d)): batch statistics are not in use")
    },
    Property("frozen_parameters") { rng in
        let arch = try LAVAArchitecture(channels: [1, 2, 3, 4, 5], hidden: 4, classes: 3)
        let sd = randomState(arch, &rng, head: true)
        let b = 2 + rng.int(below: 3)
        let x = randomWaveform(b, 32 + rng.int(below: 64), &rng)
        let labels = Tensor((0..<b).map { _ in Double(rng.int(below: 3)) })
        let (next, _) = try officialHeadTrainingStep(x: x, labels: labels, state: sd)
        for (name, t) in sd.tensors.sorted(by: { $0.key < $1.key }) {
            let moved = next.tensors[name]! != t
            if name.contains("running_") {
                try require(moved, "\(name): the running statistics did not update in train mode")
            } else if !LAVAArchitecture.headTrainable.contains(name) {
                try require(!moved, "\(name) is frozen in the official setup but changed in one training step")
            }
        }
        // The last bias always has a non-zero gradient (mean of softmax − one-hot), so Adam moves it; the other trainable
        // tensors move unless a tiny random model's ReLUs are all dead (zero gradient).
        try require(next.tensors["classifier.4.bias"]! != sd.tensors["classifier.4.bias"]!, "classifier.4.bias did not train")
    },
]) { ctx in
    guard let variant = HeadVariant(rawValue: try ctx.int("attention", default: 1)) else {
        throw ShapeError("lava.heads", "attention must be 1 (gate) or 0 (ablation without attention)")
    }
    let k = try ctx.tensor("classifier.4.weight").shape.first ?? 0
    let hidden = try ctx.tensor("classifier.2.weight").shape.first ?? 0
    let arch = try LAVAArchitecture(channels: try ctx.ints("channels"), hidden: hidden, classes: k)
    try requireShapes(ctx, arch.encoderWeights + arch.encoderStatistics
                      + arch.headWeights.filter { variant == .attention || !$0.0.hasPrefix("attention") }, "the head")
    let training = try ctx.bool("training", default: false)
    let w = Weights.context(ctx)
    let (o, stats) = try attributionModel(try w.v("x"), w, variant: variant, training: training,
                                          momentum: try ctx.double("momentum", default: 0.1))
    let loss = try crossEntropy(o.logits, target: try ctx.tensor("labels"))
    var out: [String: Var] = ["latent": o.latent, "pooled": o.pooled, "logits": o.logits, "loss": loss]
    if let g = o.gate { out["gate"] = g }
    for (k, v) in stats { out[k] = ctx.constant(v) }
    if ctx.data.has("adam_lr") {
        let names = LAVAArchitecture.headTrainable.filter { variant == .attention || !$0.hasPrefix("attention") }
        let vars = try names.map { try w.v($0) }
        let g = try ctx.tape.gradients(of: loss, wrt: vars)
        for (k, v) in try adamFirstStep(zip(names, vars.map(\.value)).map { ($0, $1) }, grads: g, lr: try ctx.double("adam_lr")) {
            out[k] = ctx.constant(v)
        }
    }
    return out
}
