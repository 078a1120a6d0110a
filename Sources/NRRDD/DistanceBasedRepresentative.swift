// NRR-DD's Distance-Based Representative (DBR) knowledge transfer (§3): two distances per CutMix
// instance instead of the teacher's K class probabilities, and the student loss L_S = L_sce + α_dbr·L_dbr.

import Foundation
import Ops
import Tensor

public enum DBRDistance: Int, Sendable, CaseIterable {
    /// d = −log softmax(z/τ)_y = KL(e_y ‖ p).
    case crossEntropy = 0
    /// d = ‖softmax(z/τ) − e_y‖₂.
    case l2 = 1
}

public enum DBRLoss: Int, Sendable, CaseIterable {
    case l1 = 0, mse = 1
}

public enum DistanceBasedRepresentative {
    /// d(z, y) per row, on the tape: [N].
    public static func distances(_ logits: Var, labels: [Int], tau: Double, kind: DBRDistance) throws -> Var {
        try check(tau.isFinite && tau > 0, "tau", "finite and > 0", tau)
        guard logits.value.rank == 2 else { throw NRRDDError.parameter("logits", "shape [N, K]", logits.shape) }
        let k = logits.shape[1]
        try check(labels.count == logits.shape[0], "labels", "one per row (\(logits.shape[0]))", labels.count)
        for y in labels { try check(y >= 0 && y < k, "labels", "class indices in [0, \(k))", y) }
        let e = logits.tape.constant(oneHot(labels, classes: k))
        switch kind {
        case .crossEntropy:
            return try sum(logSoftmax(logits * (1 / tau), axis: 1) * e, axes: [1]) * -1
        case .l2:
            let d = try softmax(logits * (1 / tau), axis: 1) - e
            let s = try sum(d * d, axes: [1])
            return unary(s, { $0.squareRoot() }, derivative: { _, y in y > 0 ? 0.5 / y : 0 })
        }
    }

    /// (d_org, d_aug) per row: [N, 2].
    public static func pair(_ logits: Var, yOrg: [Int], yAug: [Int], tau: Double, kind: DBRDistance) throws -> Var {
        let a = try distances(logits, labels: yOrg, tau: tau, kind: kind), b = try distances(logits, labels: yAug, tau: tau, kind: kind)
        let n = a.shape[0]
        return try concatenate([reshape(a, [n, 1]), reshape(b, [n, 1])], axis: 1)
    }

    /// L_dbr = mean_n Σ_j |d^S − d^T| (L1) or (d^S − d^T)² (MSE); d^T constant (the stored numbers).
    public static func loss(student: Var, teacher: Tensor, kind: DBRLoss) throws -> Var {
        guard student.shape == teacher.shape, student.value.rank == 2 else {
            throw NRRDDError.parameter("stored distances", "shape \(student.shape)", teacher.shape)
        }
        let d = try student - student.tape.constant(teacher)
        let per: Var
        switch kind {
        case .l1: per = unary(d, { Swift.abs($0) }, derivative: { x, _ in x > 0 ? 1 : (x < 0 ? -1 : 0) })
        case .mse: per = try d * d
        }
        return try sum(per) * (1 / Double(student.shape[0]))
    }

    /// λ_eff·CE(z, y_org) + (1 − λ_eff)·CE(z, y_aug), CE averaged over the batch.
    public static func sce(_ logits: Var, yOrg: [Int], yAug: [Int], lamEff: Double) throws -> Var {
        let a = try crossEntropy(logits, target: Tensor(yOrg.map(Double.init)))
        let b = try crossEntropy(logits, target: Tensor(yAug.map(Double.init)))
        return try a * lamEff + b * (1 - lamEff)
    }

    /// Label storage in bytes: full soft labels n·E·K numbers against DBR's n·E·2.
    public static func storage(instances: Double, epochs: Double, classes: Double, bytesPerNumber: Double)
        -> (softLabels: Double, dbr: Double, ratio: Double) {
        let soft = instances * epochs * classes * bytesPerNumber, dbr = instances * epochs * 2 * bytesPerNumber
        return (soft, dbr, soft / dbr)
    }
}
