// Losses as torch.nn.functional: cross_entropy, binary_cross_entropy_with_logits, mse_loss,
// l1_loss, smooth_l1_loss, kl_div (batchmean), and a soft Dice loss (Certify's definition).
// Every loss returns a 0-d Var; targets are constants (no target gradient).

import Foundation
import Tensor

/// How an elementwise loss is reduced to a scalar.
public enum LossReduction: Sendable, Equatable {
    /// The mean over elements (PyTorch's default 'mean'; for weighted cross-entropy Σ w·l / Σ w).
    case mean
    /// The sum over elements ('sum').
    case sum
}

/// Checks that a loss target has the input's shape.
func lossCheckSameShape(_ op: String, _ inputName: String, _ input: [Int], _ target: Tensor) throws {
    guard target.shape == input else {
        throw ShapeError(op, "target has shape \(target.shape), \(inputName) has shape \(input)")
    }
}

/// Records a scalar loss Σᵢ l(xᵢ, tᵢ)·scale with ∂xᵢ = g·dl(xᵢ, tᵢ)·scale.
func lossRecordElementwise(_ x: Var, _ t: Tensor, scale: Double, _ l: (Double, Double) -> Double,
                           _ dl: @escaping (Double, Double) -> Double) -> Var {
    let xd = x.value.data, td = t.data, n = xd.count, shape = x.shape
    var s = 0.0
    xd.withUnsafeBufferPointer { xb in
        td.withUnsafeBufferPointer { tb in
            for i in 0..<n { s += l(xb[i], tb[i]) }
        }
    }
    return x.tape.record(Tensor(scalar: s * scale), parents: [x]) { g in
        let gs = g.data[0] * scale
        let dx = [Double](unsafeUninitializedCapacity: n) { buf, count in
            xd.withUnsafeBufferPointer { xb in
                td.withUnsafeBufferPointer { tb in
                    for i in 0..<n { buf[i] = dl(xb[i], tb[i]) * gs }
                }
            }
            count = n
        }
        return [Tensor(unchecked: shape, dx)]
    }
}

@inline(__always) func lossScale(_ r: LossReduction, _ n: Int) -> Double { r == .mean ? 1.0 / Double(n) : 1.0 }

/// sign(d) with sign(0) = 0 (torch.sgn / sign).
@inline(__always) func lossSign(_ d: Double) -> Double { d > 0 ? 1 : (d < 0 ? -1 : 0) }

// MARK: - Cross-entropy

/// torch.nn.functional.cross_entropy(logits, target, weight, reduction, ignore_index) for logits
/// [N, C] and integer class targets [N] (as a Float64 tensor): lₙ = −w[tₙ]·log_softmax(logits[n])[tₙ]
/// (w ≡ 1 without weights). Mean: Σ lₙ / Σ w[tₙ] (NOT ÷N when weighted); sum: Σ lₙ. Rows whose
/// target equals `ignoreIndex` contribute neither loss nor weight. Built on `logSoftmax`.
public func crossEntropy(_ logits: Var, target: Tensor, weight: Tensor? = nil, reduction: LossReduction = .mean,
                         ignoreIndex: Int = -100) throws -> Var {
    let op = "cross_entropy"
    guard logits.value.rank == 2 else { throw ShapeError(op, "logits has shape \(logits.shape); expected [N, C]") }
    let n = logits.shape[0], c = logits.shape[1]
    guard target.shape == [n] else {
        throw ShapeError(op, "target has shape \(target.shape), expected [\(n)] for logits \(logits.shape)")
    }
    if let weight, weight.shape != [c] {
        throw ShapeError(op, "weight has shape \(weight.shape), expected [\(c)] for logits \(logits.shape)")
    }
    var cls = [Int](repeating: 0, count: n)
    try target.data.withUnsafeBufferPointer { tb in
        for i in 0..<n {
            let v = tb[i]
            guard v.rounded() == v, Swift.abs(v) < 9e15 else { throw ShapeError(op, "target[\(i)] = \(v) is not an integer class index") }
            let k = Int(v)
            guard (k >= 0 && k < c) || k == ignoreIndex else {
                throw ShapeError(op, "target[\(i)] = \(k) is outside [0, \(c)) for logits \(logits.shape)")
            }
            cls[i] = k
        }
    }
    // Fused log_softmax + NLL: the forward keeps only each row's max and log Σ exp; the backward
    // rebuilds log_softmax from them. The arithmetic is that of `logSoftmax` followed by the NLL pick,
    // in the same order (max and Σ exp left to right, y = (x − max) − lse, ∂x = ĝ − exp(y)·Σ ĝ with ĝ
    // nonzero only at the target), so values and gradients are bit for bit those of the composition.
    let wt = (0..<n).map { i -> Double in cls[i] == ignoreIndex ? 0 : (weight?.data[cls[i]] ?? 1.0) }
    var rowMax = [Double](repeating: 0, count: n), rowLse = rowMax
    var total = 0.0, wsum = 0.0
    let xd = logits.value.data
    xd.withUnsafeBufferPointer { xb in
        for i in 0..<n {
            let r = xb.baseAddress! + i &* c
            var m = -Double.infinity
            for j in 0..<c { m = Swift.max(m, r[j]) }
            var se = 0.0
            for j in 0..<c { se = se + Foundation.exp(r[j] - m) }
            let lse = Foundation.log(se)
            rowMax[i] = m
            rowLse[i] = lse
            if cls[i] != ignoreIndex {
                total -= ((r[cls[i]] - m) - lse) * wt[i]
                wsum += wt[i]
            }
        }
    }
    let denom = reduction == .mean ? wsum : 1.0
    return logits.tape.record(Tensor(scalar: total / denom), parents: [logits]) { g in
        let gs = g.data[0]
        let d = [Double](unsafeUninitializedCapacity: n * c) { db, count in
            xd.withUnsafeBufferPointer { xb in
                for i in 0..<n {
                    let r = xb.baseAddress! + i &* c, o = db.baseAddress! + i &* c
                    let m = rowMax[i], lse = rowLse[i]
                    let hit = cls[i] != ignoreIndex
                    let s = hit ? -wt[i] * gs / denom : 0.0
                    for j in 0..<c { o[j] = 0 - Foundation.exp((r[j] - m) - lse) * s }
                    if hit { o[cls[i]] = s - Foundation.exp((r[cls[i]] - m) - lse) * s }
                }
            }
            count = n * c
        }
        return [Tensor(unchecked: [n, c], d)]
    }
}

// MARK: - Binary cross-entropy with logits

/// torch.nn.functional.binary_cross_entropy_with_logits(logits, target) (no weight/pos_weight), in
/// the stable form lᵢ = (1 − t)·x − log σ(x), log σ(x) = min(x, 0) − log1p(exp(−|x|)) (PyTorch's
/// log_sigmoid). ∂x = (σ(x) − t)·g (÷ numel for the mean).
public func bceWithLogits(_ logits: Var, target: Tensor, reduction: LossReduction = .mean) throws -> Var {
    try lossCheckSameShape("binary_cross_entropy_with_logits", "logits", logits.shape, target)
    return lossRecordElementwise(logits, target, scale: lossScale(reduction, logits.value.count), { x, t in
        (1 - t) * x - (Swift.min(x, 0) - Foundation.log1p(Foundation.exp(-Swift.abs(x))))
    }, { x, t in sigmoidValue(x) - t })
}

// MARK: - Regression losses

/// torch.nn.functional.mse_loss(input, target): mean((input − target)²); ∂input = 2(input − target)·g/numel.
public func mseLoss(_ input: Var, target: Tensor, reduction: LossReduction = .mean) throws -> Var {
    try lossCheckSameShape("mse_loss", "input", input.shape, target)
    return lossRecordElementwise(input, target, scale: lossScale(reduction, input.value.count),
                                 { x, t in (x - t) * (x - t) }, { x, t in 2 * (x - t) })
}

/// torch.nn.functional.l1_loss(input, target): mean|input − target|; ∂input = sign(input − target)·g/numel
/// with sign(0) = 0.
public func l1Loss(_ input: Var, target: Tensor, reduction: LossReduction = .mean) throws -> Var {
    try lossCheckSameShape("l1_loss", "input", input.shape, target)
    return lossRecordElementwise(input, target, scale: lossScale(reduction, input.value.count),
                                 { x, t in Swift.abs(x - t) }, { x, t in lossSign(x - t) })
}

/// torch.nn.functional.smooth_l1_loss(input, target, beta): d = input − target;
/// l = 0.5·d²/beta if |d| < beta (strict) else |d| − 0.5·beta; beta = 0 is l1_loss (PyTorch's special
/// case). ∂input = d/beta inside, sign(d) outside.
public func smoothL1Loss(_ input: Var, target: Tensor, beta: Double = 1, reduction: LossReduction = .mean) throws -> Var {
    try lossCheckSameShape("smooth_l1_loss", "input", input.shape, target)
    guard beta >= 0, beta.isFinite else { throw ShapeError("smooth_l1_loss", "beta must be finite and ≥ 0, got \(beta)") }
    if beta == 0 { return try l1Loss(input, target: target, reduction: reduction) }
    return lossRecordElementwise(input, target, scale: lossScale(reduction, input.value.count), { x, t in
        let z = Swift.abs(x - t)
        return z < beta ? 0.5 * z * z / beta : z - 0.5 * beta
    }, { x, t in
        let d = x - t
        return Swift.abs(d) < beta ? d / beta : lossSign(d)
    })
}

// MARK: - KL divergence

/// xlogy(t, t) = t·log t with xlogy(0, ·) = 0 (NaN stays NaN).
@inline(__always) func lossXlogx(_ t: Double) -> Double { t == 0 ? 0 : t * Foundation.log(t) }

/// torch.nn.functional.kl_div(input, target, reduction='batchmean', log_target=False), input being
/// log-probabilities log q and target probabilities p: Σ_all (xlogy(p, p) − p·input) / input.shape[0]
/// (= KL(p ‖ q) averaged over the batch; a 0-d input is not divided). ∂input = −p·g/N.
public func klDiv(_ input: Var, target: Tensor) throws -> Var {
    try lossCheckSameShape("kl_div", "input", input.shape, target)
    let n = input.value.rank == 0 ? 1 : input.shape[0]
    guard n > 0 else { throw ShapeError("kl_div", "batchmean needs a non-empty batch axis, input has shape \(input.shape)") }
    return lossRecordElementwise(input, target, scale: 1.0 / Double(n),
                                 { x, t in lossXlogx(t) - t * x }, { _, t in -t })
}

// MARK: - Dice

/// Soft Dice loss on logits (Certify's definition; not a torch built-in): p = σ(logits); per sample n
/// (sums over every axis but 0) Dₙ = (2·Σ p·t + smooth)/(Σ p + Σ t + smooth); loss = meanₙ(1 − Dₙ).
/// ∂p = −(2t/(den + s) − (2I + s)/(den + s)²)/N, then ∂x = ∂p·(1 − p)·p.
public func diceLoss(_ logits: Var, target: Tensor, smooth: Double = 1) throws -> Var {
    let op = "dice_loss"
    guard logits.value.rank >= 2 else { throw ShapeError(op, "logits has shape \(logits.shape); expected [N, ...] of rank ≥ 2") }
    try lossCheckSameShape(op, "logits", logits.shape, target)
    guard smooth >= 0, smooth.isFinite else { throw ShapeError(op, "smooth must be finite and ≥ 0, got \(smooth)") }
    let n = logits.shape[0], m = n == 0 ? 0 : logits.value.count / n
    guard n > 0 else { throw ShapeError(op, "empty batch: logits has shape \(logits.shape)") }
    let p = logits.value.data.map(sigmoidValue), td = target.data
    var inter = [Double](repeating: 0, count: n), den = inter
    var loss = 0.0
    for s in 0..<n {
        var i = 0.0, sp = 0.0, st = 0.0
        for j in (s * m)..<((s + 1) * m) {
            i += p[j] * td[j]
            sp += p[j]
            st += td[j]
        }
        inter[s] = i
        den[s] = sp + st
        loss += 1 - (2 * i + smooth) / (den[s] + smooth)
    }
    let shape = logits.shape
    return logits.tape.record(Tensor(scalar: loss / Double(n)), parents: [logits]) { g in
        let gs = g.data[0] / Double(n)
        var dx = [Double](repeating: 0, count: n * m)
        for s in 0..<n {
            let d = den[s] + smooth
            let a = 2 / d, b = (2 * inter[s] + smooth) / (d * d)
            for j in (s * m)..<((s + 1) * m) {
                let dp = -(a * td[j] - b) * gs
                dx[j] = dp * (1 - p[j]) * p[j]
            }
        }
        return [Tensor(unchecked: shape, dx)]
    }
}
