// Standard and adversarial training with the tape and torch.optim.SGD semantics (Ops.SGD), as the
// official loop (scripts/utils.py fit_model / synth_models): per epoch a fresh shuffle, mini-batches
// in order (the last one may be smaller), CE mean over the batch, one optimizer step per batch, the
// learning-rate multiplier applied per epoch (LambdaLR stepped once per epoch). Adversarial training
// replaces each batch by x + δ with δ from the PGD attack on the current model (train on x + δ only).
// The final model is returned (the code's best-model bookkeeping does not select the model used).

import Foundation
import Ops
import Tensor

/// Learning-rate multiplier per epoch.
public enum LRSchedule: Sendable, Equatable {
    case constant
    /// max(floor, factor^⌊epoch / every⌋) — the synthetic experiments' LambdaLR (0.75, 50, 0.01).
    case stepDecay(every: Int, factor: Double, floor: Double)
    /// ½(1 + cos(π·epoch/epochs)).
    case cosine

    public func multiplier(epoch: Int, epochs: Int) -> Double {
        switch self {
        case .constant: return 1
        case .stepDecay(let every, let factor, let floor): return Swift.max(floor, Foundation.pow(factor, Double(epoch / every)))
        case .cosine: return 0.5 * (1 + Foundation.cos(Double.pi * Double(epoch) / Double(Swift.max(epochs, 1))))
        }
    }
}

public struct TrainingConfig: Sendable, Equatable {
    public var epochs: Int
    public var batchSize: Int
    public var learningRate: Double
    public var momentum: Double = 0
    public var weightDecay: Double = 0
    public var schedule: LRSchedule = .constant
    /// PGD adversary for adversarial training (nil: standard training).
    public var adversary: PGDAttack? = nil

    public init(epochs: Int, batchSize: Int, learningRate: Double, momentum: Double = 0, weightDecay: Double = 0,
                schedule: LRSchedule = .constant, adversary: PGDAttack? = nil) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.schedule = schedule
        self.adversary = adversary
    }
}

public enum Trainer {
    /// Rows `idx` of x ([n, ...]) as a new tensor.
    public static func rows(_ x: Tensor, _ idx: ArraySlice<Int>) -> Tensor {
        let d = x.count / Swift.max(x.shape[0], 1)
        var out = [Double](repeating: 0, count: idx.count * d)
        x.data.withUnsafeBufferPointer { px in
            out.withUnsafeMutableBufferPointer { po in
                for (r, i) in idx.enumerated() {
                    (po.baseAddress! + r * d).update(from: px.baseAddress! + i * d, count: d)
                }
            }
        }
        return Tensor(unchecked: [idx.count] + Array(x.shape.dropFirst()), out)
    }

    /// Trains `model` in place. `progress` receives (epoch, mean training loss of the epoch).
    /// Every random draw (shuffles, PGD starts) comes from `rng`.
    public static func train(_ model: any Classifier, x: Tensor, y: [Int], config: TrainingConfig, rng: inout RNG,
                             progress: (Int, Double) -> Void = { _, _ in }) throws {
        let n = x.shape.first ?? 0
        guard n == y.count, n > 0 else { throw ShapeError("train", "\(y.count) labels for data of shape \(x.shape)") }
        guard config.epochs >= 0, config.batchSize >= 1, config.learningRate >= 0 else {
            throw ShapeError("train", "invalid config: \(config.epochs) epochs, batch \(config.batchSize), lr \(config.learningRate)")
        }
        for (i, v) in y.enumerated() where v < 0 || v >= model.classes {
            throw ShapeError("train", "label y[\(i)] = \(v) outside 0..<\(model.classes)")
        }
        var opt = try SGD([ParameterGroup(params: model.parameters, lr: config.learningRate, weightDecay: config.weightDecay)],
                          momentum: config.momentum)
        for epoch in 0..<config.epochs {
            opt.groups[0].lr = config.learningRate * config.schedule.multiplier(epoch: epoch, epochs: config.epochs)
            let perm = rng.permutation(n)
            var total = 0.0
            var start = 0
            while start < n {
                let idx = perm[start..<Swift.min(n, start + config.batchSize)]
                start += config.batchSize
                var xb = rows(x, idx)
                let yb = idx.map { y[$0] }
                if let adv = config.adversary {
                    xb = try xb + adv.perturb(model: model, x: xb, y: yb, rng: &rng)
                }
                let tape = Tape()
                let params = model.leaves(on: tape)
                let loss = try crossEntropy(model.logits(tape.leaf(xb), params), target: Tensor(yb.map(Double.init)), reduction: .mean)
                total += loss.value.data[0] * Double(idx.count)
                try opt.step(grads: tape.gradients(of: loss, wrt: params))
            }
            progress(epoch, total / Double(n))
        }
    }
}
