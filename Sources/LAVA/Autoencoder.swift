// lava.autoencoder — the convolutional autoencoder (DeepAutoencoder) trained on fake audio only, its SmoothL1(β = 1e-4)
// reconstruction loss and one Adam step. Official code: autoencoder.py::DeepAutoencoder (encoder Sequential 0–11,
// decoder Sequential 0–11) and ::train (Adam lr 1e-4, SmoothL1Loss(beta=0.0001)). Spec A.2–A.3.

import Certification
import Foundation
import Ops
import Tensor

/// BatchNorm1d eps of every LAVA BatchNorm.
public let lavaBatchNormEps = 1e-5
/// The autoencoder's Dropout(0.3) before the last transposed convolution.
public let lavaDropoutP = 0.3
/// The official SmoothL1 β of the reconstruction loss.
public let lavaSmoothL1Beta = 1e-4

/// Latent length T = ⌈L/16⌉ (four stride-2 convolutions with k9, p4: ⌈·/2⌉ each).
public func latentLength(_ l: Int) -> Int { (l + 15) / 16 }

/// One Conv1d/ConvTranspose1d → BatchNorm1d → ReLU block's batch norm, recording updated running statistics in train mode.
func lavaBatchNorm(_ h: Var, _ w: Weights, _ layer: String, training: Bool, momentum: Double,
                   into stats: inout [String: Tensor]) throws -> Var {
    let r = try batchNorm(h, runningMean: try w.t("\(layer).running_mean"), runningVar: try w.t("\(layer).running_var"),
                          weight: try w.v("\(layer).weight"), bias: try w.v("\(layer).bias"),
                          training: training, momentum: momentum, eps: lavaBatchNormEps)
    if training, let m = r.runningMean, let v = r.runningVar {
        stats["new.\(layer).running_mean"] = m
        stats["new.\(layer).running_var"] = v
    }
    return r.y
}

/// The encoder (autoencoder.py::DeepAutoencoder.encoder): 4 × [Conv1d(k9, s2, p4) → BatchNorm1d → ReLU] on x [B, 1, L],
/// giving z [B, c4, ⌈L/16⌉]. Train mode uses batch statistics and returns the updated running statistics ("new.<bn>.running_*").
public func lavaEncoder(_ x: Var, _ w: Weights, training: Bool, momentum: Double = 0.1) throws -> (z: Var, statistics: [String: Tensor]) {
    guard x.shape.count == 3, x.shape[1] == 1, x.shape[0] >= 1, x.shape[2] >= 1 else {
        throw ShapeError("lava encoder", "x must be [B, 1, L] waveforms with B, L ≥ 1, found \(x.shape)")
    }
    var stats: [String: Tensor] = [:]
    var h = x
    for i in 0..<4 {
        let c = LAVAArchitecture.encoderConv[i]
        h = try conv1d(h, weight: try w.v("encoder.\(c).weight"), bias: try w.v("encoder.\(c).bias"), stride: [2], padding: [4])
        h = relu(try lavaBatchNorm(h, w, "encoder.\(LAVAArchitecture.encoderBN[i])", training: training, momentum: momentum, into: &stats))
    }
    return (h, stats)
}

/// The decoder (autoencoder.py::DeepAutoencoder.decoder): 3 × [ConvTranspose1d(k9, s2, p4, output_padding 1) → BatchNorm1d → ReLU],
/// Dropout(0.3) (train mode: y = h·mask/0.7 with the keep-mask given), ConvTranspose1d(c1 → 1), tanh; [B, c4, T] → [B, 1, 16T].
public func lavaDecoder(_ z: Var, _ w: Weights, training: Bool, dropoutMask: Tensor?, momentum: Double = 0.1) throws
    -> (y: Var, statistics: [String: Tensor]) {
    var stats: [String: Tensor] = [:]
    var h = z
    for j in 0..<3 {
        let c = LAVAArchitecture.decoderConv[j]
        h = try convTranspose1d(h, weight: try w.v("decoder.\(c).weight"), bias: try w.v("decoder.\(c).bias"),
                                stride: [2], padding: [4], outputPadding: [1])
        h = relu(try lavaBatchNorm(h, w, "decoder.\(LAVAArchitecture.decoderBN[j])", training: training, momentum: momentum, into: &stats))
    }
    if training {
        guard let mask = dropoutMask else {
            throw ShapeError("lava decoder", "train mode needs dropout_mask, the keep-mask of Dropout(0.3), with shape \(h.shape)")
        }
        guard mask.shape == h.shape else {
            throw ShapeError("lava decoder", "dropout_mask has shape \(mask.shape); expected \(h.shape) ([B, c1, 8T])")
        }
        h = try dropout(h, mask: mask, p: lavaDropoutP, training: true)
    }
    h = try convTranspose1d(h, weight: try w.v("decoder.10.weight"), bias: try w.v("decoder.10.bias"),
                            stride: [2], padding: [4], outputPadding: [1])
    return (Ops.tanh(h), stats)
}

/// One torch.optim.Adam step (betas 0.9/0.999, eps 1e-8, no weight decay) from a fresh state on each named tensor,
/// returned as "new.<name>".
public func adamFirstStep(_ params: [(String, Tensor)], grads: [Tensor], lr: Double) throws -> [String: Tensor] {
    var out: [String: Tensor] = [:]
    for ((name, p), g) in zip(params, grads) {
        let z = Tensor(zeros: p.shape)
        out["new." + name] = try adamStep(param: p, grad: g, expAvg: z, expAvgSq: z, step: 1, lr: lr,
                                          beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0).param
    }
    return out
}

/// Checks a case's tensors against the shapes the channel widths imply.
func requireShapes(_ ctx: Context, _ expected: [(String, [Int])], _ what: String) throws {
    for (name, shape) in expected {
        let t = try ctx.tensor(name)
        guard t.shape == shape else {
            throw InputError(file: ctx.data.source, object: "/\(ctx.data.name)/inputs/\(name)",
                             "wrong shape \(t.shape); \(what) with these channel widths needs \(shape)")
        }
    }
}

/// A random autoencoder / encoder state at the given widths (PyTorch-like scales), for the property checks.
func randomState(_ arch: LAVAArchitecture, _ rng: inout RNG, decoder: Bool = false, head: Bool = false) -> StateDict {
    var names = arch.encoderWeights + arch.encoderStatistics
    if decoder { names += arch.decoderWeights + arch.decoderStatistics }
    if head { names += arch.headWeights }
    var out: [String: Tensor] = [:]
    for (name, shape) in names {
        let n = shape.reduce(1, *)
        let isBN = (LAVAArchitecture.encoderBN.map { "encoder.\($0)." } + LAVAArchitecture.decoderBN.map { "decoder.\($0)." })
            .contains { name.hasPrefix($0) }
        let values: [Double]
        if name.hasSuffix("running_mean") { values = (0..<n).map { _ in 0.1 * rng.normal() } }
        else if name.hasSuffix("running_var") { values = (0..<n).map { _ in rng.uniform(0.5, 1.5) } }
        else if isBN { values = (0..<n).map { _ in (name.hasSuffix("weight") ? 1 : 0) + 0.1 * rng.normal() } }
        else {
            let layer = String(name[..<name.lastIndex(of: ".")!])
            let w = names.first { $0.0 == layer + ".weight" }!.1
            let fanIn = w.count == 3 ? Double(w[1] * w[2]) : Double(w[1])
            let bound = 1 / fanIn.squareRoot()
            values = (0..<n).map { _ in rng.uniform(-bound, bound) }
        }
        out[name] = Tensor(unchecked: shape, values)
    }
    return StateDict(tensors: out, source: "random")
}

/// A random waveform batch [B, 1, L] in [−0.9, 0.9].
func randomWaveform(_ b: Int, _ l: Int, _ rng: inout RNG) -> Tensor { rng.uniformTensor([b, 1, l], -0.9, 0.9) }

/// The encoder on a state dict (constants on a fresh tape).
func encode(_ x: Tensor, _ sd: StateDict, training: Bool = false) throws -> Tensor {
    let tape = Tape()
    return try lavaEncoder(tape.constant(x), .stateDict(sd, tape: tape), training: training).z.value
}

let autoencoderMethod = Method("lava.autoencoder", properties: [
    Property("latent_length") { rng in
        let arch = try LAVAArchitecture(channels: [1, 2, 3, 3, 4])
        let sd = randomState(arch, &rng, decoder: true)
        let l = 1 + rng.int(below: 200)
        let tape = Tape()
        let w = Weights.stateDict(sd, tape: tape)
        let z = try lavaEncoder(tape.constant(randomWaveform(1, l, &rng)), w, training: false).z
        let y = try lavaDecoder(z, w, training: false, dropoutMask: nil).y
        try require(z.shape == [1, 4, latentLength(l)], "L = \(l): latent shape \(z.shape), expected [1, 4, \(latentLength(l))]")
        try require(y.shape == [1, 1, 16 * latentLength(l)], "L = \(l): reconstruction shape \(y.shape)")
        try require((y.shape[2] == l) == (l % 16 == 0), "L = \(l): output length \(y.shape[2])")
    },
    Property("encoder_nonnegative") { rng in
        let arch = try LAVAArchitecture(channels: [1, 3, 4, 5, 6])
        let sd = randomState(arch, &rng, decoder: true)
        let training = rng.bernoulli(0.5)
        let x = randomWaveform(2, 16 + rng.int(below: 100), &rng)
        let tape = Tape()
        let w = Weights.stateDict(sd, tape: tape)
        let z = try lavaEncoder(tape.constant(x), w, training: training).z
        let mask = training ? try dropoutMask(shape: [2, 3, 8 * z.shape[2]], p: lavaDropoutP, rng: &rng) : nil
        let y = try lavaDecoder(z, w, training: training, dropoutMask: mask).y
        try require(z.value.data.allSatisfy { $0 >= 0 }, "a negative latent value")
        try require(y.value.data.allSatisfy { $0 > -1 && $0 < 1 }, "a reconstruction outside (−1, 1)")
    },
    Property("locality") { rng in
        let arch = try LAVAArchitecture(channels: [1, 2, 3, 4, 5])
        let sd = randomState(arch, &rng)
        let l = 64 + rng.int(below: 200), extra = 1 + rng.int(below: 80)
        let x = randomWaveform(1, l, &rng)
        let longer = try Tensor.concatenate([x, randomWaveform(1, extra, &rng)], axis: 2)
        let z1 = try encode(x, sd), z2 = try encode(longer, sd)
        let t = z1.shape[2]
        let kept = (0..<t).filter { 16 * $0 + 60 <= l - 1 }
        for c in 0..<5 {
            for j in kept {
                let a = z1.data[c * t + j], b = z2.data[c * z2.shape[2] + j]
                try require(Swift.abs(a - b) <= 1e-12 * (1 + Swift.abs(a)), "L = \(l): column \(j) (16t + 60 ≤ L − 1) changed by appending samples")
            }
        }
    },
    Property("eval_batch_independence") { rng in
        let arch = try LAVAArchitecture(channels: [1, 2, 3, 4, 5])
        let sd = randomState(arch, &rng)
        let l = 32 + rng.int(below: 100)   // T ≥ 2: a train-mode BN needs more than one value per channel
        let x1 = randomWaveform(1, l, &rng), x2 = randomWaveform(1 + rng.int(below: 3), l, &rng)
        let both = try Tensor.concatenate([x1, x2], axis: 0)
        let single = try encode(x1, sd), batched = try encode(both, sd).slice(axis: 0, 0..<1)
        try requireClose(batched, single, Tolerance(rtol: 1e-12, atol: 1e-14), "eval-mode latent of x1 inside a batch")
        let trainSingle = try encode(x1, sd, training: true), trainBatched = try encode(both, sd, training: true).slice(axis: 0, 0..<1)
        let diff = zip(trainSingle.data, trainBatched.data).map { Swift.abs($0 - $1) }.max() ?? 0
        try require(diff > 1e-6, "train mode did not depend on the batch (max |Δ| \(diff)): batch statistics are not in use")
    },
    Property("smooth_l1_limits") { rng in
        let beta = Foundation.pow(10, rng.uniform(-6, 0))
        func lossAndSlope(_ d: Double, _ b: Double) throws -> (Double, Double) {
            let tape = Tape()
            let v = tape.leaf(Tensor([d]))
            let l = try smoothL1Loss(v, target: Tensor([0]), beta: b)
            return (l.value.data[0], try tape.gradients(of: l, wrt: [v])[0].data[0])
        }
        let s = rng.bernoulli(0.5) ? 1.0 : -1.0, h = beta * 1e-9
        let (vIn, gIn) = try lossAndSlope(s * (beta - h), beta), (vOut, gOut) = try lossAndSlope(s * (beta + h), beta)
        try require(Swift.abs(vIn - beta / 2) <= 1e-8 * beta && Swift.abs(vOut - beta / 2) <= 1e-8 * beta, "value at |d| = β: \(vIn), \(vOut), expected β/2 = \(beta / 2)")
        try require(Swift.abs(gIn - s) <= 1e-8 && gOut == s, "slope at |d| = β: \(gIn) inside, \(gOut) outside, expected \(s)")
        let d = rng.uniform(-2, 2)
        let (small, _) = try lossAndSlope(d, 1e-12)
        try require(Swift.abs(small - Swift.abs(d)) <= 1e-12, "β → 0 does not give L1: \(small) vs |d| = \(Swift.abs(d))")
    },
]) { ctx in
    let arch = try LAVAArchitecture(channels: try ctx.ints("channels"))
    try requireShapes(ctx, arch.encoderWeights + arch.encoderStatistics + arch.decoderWeights + arch.decoderStatistics, "the autoencoder")
    let training = try ctx.bool("training", default: false)
    let momentum = try ctx.double("momentum", default: 0.1)
    let beta = try ctx.double("smooth_l1_beta", default: lavaSmoothL1Beta)
    let w = Weights.context(ctx)
    let x = try w.v("x")
    let enc = try lavaEncoder(x, w, training: training, momentum: momentum)
    let mask = training ? try ctx.tensor("dropout_mask") : nil
    let dec = try lavaDecoder(enc.z, w, training: training, dropoutMask: mask, momentum: momentum)
    var out: [String: Var] = ["latent": enc.z, "reconstruction": dec.y]
    for (k, v) in enc.statistics.merging(dec.statistics, uniquingKeysWith: { a, _ in a }) { out[k] = ctx.constant(v) }
    if dec.y.shape == x.shape {
        // The residual x̂ − x against 0, so that the loss differentiates through the target x too (as PyTorch's does).
        let loss = try smoothL1Loss(try dec.y - x, target: Tensor(zeros: x.shape), beta: beta)
        out["loss"] = loss
        if ctx.data.has("adam_lr") {
            let names = (arch.encoderWeights + arch.decoderWeights).map(\.0)
            let vars = try names.map { try w.v($0) }
            let g = try ctx.tape.gradients(of: loss, wrt: vars)
            for (k, v) in try adamFirstStep(zip(names, vars.map(\.value)).map { ($0, $1) }, grads: g, lr: try ctx.double("adam_lr")) {
                out[k] = ctx.constant(v)
            }
        }
    } else if ctx.data.has("adam_lr") {
        throw ShapeError("lava.autoencoder", "adam_lr needs the loss, which needs L % 16 = 0 (reconstruction \(dec.y.shape) vs x \(x.shape))")
    }
    return out
}
