// lava.metrics — the evaluation metrics LAVA reports (sklearn classification_report, one-vs-rest ROC-AUC and AP).
// Official code: audioDeepfakeAttribution.py::evaluate_and_plot (classification_report, label_binarize + roc_curve + auc,
// average_precision_score); the same in audioDeepfakeModelRecognition.py.

import Certification
import Foundation
import Ops
import Tensor

/// Which labels macro-F1 averages over.
public enum MacroLabels: Int, Sendable {
    /// The labels present in y_true ∪ y_pred: sklearn's classification_report(y_true, y_pred) without `labels`,
    /// as the official code calls it (the default).
    case present = 0
    /// All K classes (a class absent from both counts with F1 = 0).
    case all = 1
}

/// sklearn's classification_report for labels 0..<K, plus the confusion matrix.
public struct ClassificationReport: Sendable, Equatable {
    public var precision: [Double]
    public var recall: [Double]
    public var f1: [Double]
    public var support: [Int]
    /// confusion[i][j] = number of samples of true class i predicted as j.
    public var confusion: [[Int]]
    public var macroF1: Double
    public var accuracy: Double
}

/// Per-class precision, recall, F1 (zero_division = 0), support, confusion matrix, macro-F1 and accuracy.
/// Labels must lie in 0..<numClasses.
public func classificationReport(yTrue: [Int], yPred: [Int], numClasses k: Int,
                                 macroLabels: MacroLabels = .present) throws -> ClassificationReport {
    guard yTrue.count == yPred.count else {
        throw ShapeError("lava.metrics", "y_true has \(yTrue.count) labels, y_pred \(yPred.count); expected the same count")
    }
    guard !yTrue.isEmpty else { throw ShapeError("lava.metrics", "no samples (y_true is empty)") }
    guard k >= 1 else { throw ShapeError("lava.metrics", "number of classes must be ≥ 1, found \(k)") }
    for (name, ys) in [("y_true", yTrue), ("y_pred", yPred)] {
        if let i = ys.firstIndex(where: { $0 < 0 || $0 >= k }) {
            throw ShapeError("lava.metrics", "\(name)[\(i)] = \(ys[i]) is outside the classes 0..<\(k)")
        }
    }
    var cm = [[Int]](repeating: [Int](repeating: 0, count: k), count: k)
    for (t, p) in zip(yTrue, yPred) { cm[t][p] += 1 }
    var precision = [Double](repeating: 0, count: k), recall = precision, f1 = precision
    var support = [Int](repeating: 0, count: k)
    var correct = 0
    for c in 0..<k {
        let tp = cm[c][c]
        let predicted = (0..<k).reduce(0) { $0 + cm[$1][c] }
        let actual = cm[c].reduce(0, +)
        support[c] = actual
        correct += tp
        precision[c] = predicted > 0 ? Double(tp) / Double(predicted) : 0
        recall[c] = actual > 0 ? Double(tp) / Double(actual) : 0
        let denom = precision[c] + recall[c]
        f1[c] = denom > 0 ? 2 * precision[c] * recall[c] / denom : 0   // sklearn 1.2: (1+β²)·P·R/(β²P + R)
    }
    let used: [Int]
    switch macroLabels {
    case .all: used = Array(0..<k)
    case .present: used = (0..<k).filter { c in support[c] > 0 || (0..<k).contains { cm[$0][c] > 0 } }
    }
    let macro = used.reduce(0.0) { $0 + f1[$1] } / Double(used.count)
    return ClassificationReport(precision: precision, recall: recall, f1: f1, support: support, confusion: cm,
                                macroF1: macro, accuracy: Double(correct) / Double(yTrue.count))
}

/// The points of sklearn's _binary_clf_curve: cumulative true/false positives at each distinct score, scores decreasing.
func binaryClassifierCurve(positives: [Bool], scores: [Double]) -> (tps: [Double], fps: [Double]) {
    let order = scores.indices.sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
    var tps: [Double] = [], fps: [Double] = []
    var tp = 0.0, fp = 0.0
    for (r, i) in order.enumerated() {
        if positives[i] { tp += 1 } else { fp += 1 }
        // A threshold closes where the next score differs (ties are one point).
        if r == order.count - 1 || scores[order[r + 1]] != scores[i] {
            tps.append(tp)
            fps.append(fp)
        }
    }
    return (tps, fps)
}

/// One-vs-rest ROC-AUC of a binary problem: the trapezoidal area under (FPR, TPR), thresholds at the distinct scores.
/// NaN when there are no positives or no negatives (sklearn's roc_curve + auc give NaN there).
public func rocAUC(positives: [Bool], scores: [Double]) -> Double {
    let (tps, fps) = binaryClassifierCurve(positives: positives, scores: scores)
    guard let p = tps.last, let n = fps.last, p > 0, n > 0 else { return .nan }
    var area = 0.0, x0 = 0.0, y0 = 0.0
    for (tp, fp) in zip(tps, fps) {
        let x = fp / n, y = tp / p
        area += (x - x0) * (y + y0) / 2
        (x0, y0) = (x, y)
    }
    return area
}

/// sklearn's average_precision_score: Σ_n (R_n − R_{n−1})·P_n over the distinct scores in decreasing order
/// (the step-wise, uninterpolated area). 0 when there are no positives.
public func averagePrecision(positives: [Bool], scores: [Double]) -> Double {
    let (tps, fps) = binaryClassifierCurve(positives: positives, scores: scores)
    guard let p = tps.last, p > 0 else { return 0 }
    var ap = 0.0, prevRecall = 0.0
    for (tp, fp) in zip(tps, fps) {
        let recall = tp / p
        ap += (recall - prevRecall) * (tp / (tp + fp))
        prevRecall = recall
        if tp == p { break }
    }
    return ap
}

/// Per-class one-vs-rest ROC-AUC and AP of scores [N, K] against labels in 0..<K.
public func oneVsRest(yTrue: [Int], scores: Tensor) throws -> (rocAUC: [Double], averagePrecision: [Double]) {
    guard scores.rank == 2, scores.shape[0] == yTrue.count else {
        throw ShapeError("lava.metrics", "scores must be [N, K] with N = \(yTrue.count) labels, found \(scores.shape)")
    }
    let k = scores.shape[1]
    var auc: [Double] = [], ap: [Double] = []
    for c in 0..<k {
        let pos = yTrue.map { $0 == c }
        let s = (0..<yTrue.count).map { scores.data[$0 * k + c] }
        auc.append(rocAUC(positives: pos, scores: s))
        ap.append(averagePrecision(positives: pos, scores: s))
    }
    return (auc, ap)
}

/// Class labels stored as numbers; NaN, infinities, fractions and values beyond ±2⁵³ are errors, not traps.
func labels(_ t: Tensor, _ name: String = "labels") throws -> [Int] {
    try t.data.enumerated().map { i, v in try checkedInt(v, "\(name)[\(i)]") }
}

let metricsMethod = Method("lava.metrics", properties: [
    Property("macro_f1_in_unit_interval") { rng in
        let k = 2 + rng.int(below: 5), n = 1 + rng.int(below: 40)
        let y = (0..<n).map { _ in rng.int(below: k) }, p = (0..<n).map { _ in rng.int(below: k) }
        for m in [MacroLabels.present, .all] {
            let r = try classificationReport(yTrue: y, yPred: p, numClasses: k, macroLabels: m)
            for v in r.precision + r.recall + r.f1 + [r.macroF1, r.accuracy] {
                try require(v >= 0 && v <= 1, "a metric outside [0, 1]: \(v) in \(r)")
            }
        }
    },
    Property("relabeling_invariance") { rng in
        let k = 2 + rng.int(below: 5), n = 5 + rng.int(below: 40)
        let y = (0..<n).map { _ in rng.int(below: k) }, p = (0..<n).map { _ in rng.int(below: k) }
        let s = rng.uniformTensor([n, k])
        let perm = rng.permutation(k)   // class c becomes perm[c]
        var s2 = s
        for i in 0..<n { for c in 0..<k { s2.data[i * k + perm[c]] = s.data[i * k + c] } }
        let r1 = try classificationReport(yTrue: y, yPred: p, numClasses: k)
        let r2 = try classificationReport(yTrue: y.map { perm[$0] }, yPred: p.map { perm[$0] }, numClasses: k)
        let o1 = try oneVsRest(yTrue: y, scores: s), o2 = try oneVsRest(yTrue: y.map { perm[$0] }, scores: s2)
        try require(Swift.abs(r1.macroF1 - r2.macroF1) <= 1e-15 && r1.accuracy == r2.accuracy, "macro-F1/accuracy changed: \(r1.macroF1) vs \(r2.macroF1)")
        for c in 0..<k {
            let d = perm[c]
            try require(r1.f1[c] == r2.f1[d] && r1.precision[c] == r2.precision[d] && r1.recall[c] == r2.recall[d],
                        "class \(c) → \(d): per-class metrics not permuted")
            let same = (o1.rocAUC[c].isNaN && o2.rocAUC[d].isNaN) || o1.rocAUC[c] == o2.rocAUC[d]
            try require(same && o1.averagePrecision[c] == o2.averagePrecision[d], "class \(c) → \(d): AUC/AP not permuted")
        }
    },
    Property("auc_rank_invariance") { rng in
        let n = 2 + rng.int(below: 40)
        var pos = (0..<n).map { _ in rng.bernoulli(0.4) }
        pos[0] = true
        pos[1] = false
        // Scores on a coarse grid so that ties occur.
        let s = (0..<n).map { _ in Double(rng.int(below: 7)) / 6 }
        let auc = rocAUC(positives: pos, scores: s), ap = averagePrecision(positives: pos, scores: s)
        let t = s.map { Foundation.exp(3 * $0) - 2 }   // strictly increasing
        try require(Swift.abs(rocAUC(positives: pos, scores: t) - auc) <= 1e-14, "AUC changed under a monotone transform")
        try require(Swift.abs(averagePrecision(positives: pos, scores: t) - ap) <= 1e-14, "AP changed under a monotone transform")
        try require(Swift.abs(rocAUC(positives: pos, scores: s.map { -$0 }) - (1 - auc)) <= 1e-14, "AUC(−s) ≠ 1 − AUC(s)")
    },
    Property("perfect_prediction") { rng in
        let k = 2 + rng.int(below: 5), n = k + rng.int(below: 30)
        let y = (0..<n).map { $0 < k ? $0 : rng.int(below: k) }
        let r = try classificationReport(yTrue: y, yPred: y, numClasses: k)
        try require(r.f1.allSatisfy { $0 == 1 } && r.macroF1 == 1 && r.accuracy == 1, "ŷ = y is not perfect: \(r)")
        var s = rng.uniformTensor([n, k], 0, 0.5)
        for i in 0..<n { s.data[i * k + y[i]] += 0.5 }
        let o = try oneVsRest(yTrue: y, scores: s)
        try require(o.rocAUC.allSatisfy { $0 == 1 } && o.averagePrecision.allSatisfy { $0 == 1 }, "separating scores: \(o)")
    },
]) { ctx in
    let y = try labels(try ctx.tensor("y_true"), "y_true"), p = try labels(try ctx.tensor("y_pred"), "y_pred")
    let scores = try ctx.data.tensor("scores", rank: 2)
    let k = scores.shape[1]
    guard let macro = MacroLabels(rawValue: try ctx.int("macro_labels", default: 0)) else {
        throw ShapeError("lava.metrics", "macro_labels must be 0 (present labels) or 1 (all classes)")
    }
    let r = try classificationReport(yTrue: y, yPred: p, numClasses: k, macroLabels: macro)
    let o = try oneVsRest(yTrue: y, scores: scores)
    return [
        "precision": ctx.constant(Tensor(r.precision)), "recall": ctx.constant(Tensor(r.recall)),
        "f1": ctx.constant(Tensor(r.f1)), "support": ctx.constant(Tensor(r.support.map(Double.init))),
        "confusion": ctx.constant(Tensor(unchecked: [k, k], r.confusion.flatMap { $0.map(Double.init) })),
        "macro_f1": ctx.constant(Tensor(scalar: r.macroF1)), "accuracy": ctx.constant(Tensor(scalar: r.accuracy)),
        "roc_auc": ctx.constant(Tensor(o.rocAUC)), "average_precision": ctx.constant(Tensor(o.averagePrecision)),
    ]
}
