// iadg.metrics — the protocol entry of the FAS metrics (Metrics.swift) and its properties.

import Certification
import Foundation
import Ops
import Tensor

func scalar(_ ctx: Context, _ v: Double) -> Var { ctx.constant(Tensor(scalar: v)) }
func vector(_ ctx: Context, _ v: [Double]) -> Var { ctx.constant(Tensor(v)) }

/// Integer labels from a tensor, requiring 0/1 values.
/// `op` names the protocol whose case is being read.
func labelArray(_ t: Tensor, name: String, op: String) throws -> [Int] {
    guard t.rank == 1 else { throw ShapeError(op, "\(name) must be 1-D, found shape \(t.shape)") }
    return try t.data.enumerated().map { i, v in
        guard v == 0 || v == 1 else { throw ShapeError(op, "\(name)[\(i)] = \(v); labels must be 0 (real) or 1 (fake)") }
        return Int(v)
    }
}

let metricsMethod = Method("iadg.metrics", properties: metricsProperties) { ctx in
    let scoresT = try ctx.tensor("scores")
    guard scoresT.rank == 1 else { throw ShapeError("iadg.metrics", "scores must be 1-D, found shape \(scoresT.shape)") }
    var scores = scoresT.data
    var labels = try labelArray(try ctx.tensor("labels"), name: "labels", op: "iadg.metrics")
    guard labels.count == scores.count else {
        throw ShapeError("iadg.metrics", "labels has \(labels.count) entries, scores \(scores.count)")
    }
    let code = try ctx.int("first_threshold", default: 0)
    guard let first = ROCFirstThreshold(rawValue: code) else {
        throw ShapeError("iadg.metrics", "first_threshold must be 0 (+inf) or 1 (max+1), found \(code)")
    }
    var out: [String: Var] = [:]
    if try ctx.bool("video_level", default: false) {
        let videos = try ctx.tensor("videos").data.enumerated().map { i, v in try checkedInt(v, "iadg.metrics: videos[\(i)]") }
        let v = try FASMetric.videoLevel(scores: scores, labels: labels, videos: videos)
        scores = v.scores
        labels = v.labels
        out["video_scores"] = vector(ctx, scores)
        out["video_labels"] = vector(ctx, labels.map(Double.init))
    }
    let m = try FASMetric.evaluate(labels: labels, scores: scores, firstThreshold: first)
    out["fpr"] = vector(ctx, m.roc.fpr)
    out["tpr"] = vector(ctx, m.roc.tpr)
    out["thresholds"] = vector(ctx, m.roc.thresholds)
    out["roc_points"] = scalar(ctx, Double(m.roc.fpr.count))
    out["auc"] = scalar(ctx, m.auc)
    out["eer"] = scalar(ctx, m.eer)
    out["threshold"] = scalar(ctx, m.threshold)
    out["brent_iterations"] = scalar(ctx, Double(m.brent.iterations))
    out["brent_function_calls"] = scalar(ctx, Double(m.brent.functionCalls))
    for (k, v) in [("tp", m.tp), ("fn", m.fn), ("fp", m.fp), ("tn", m.tn)] { out[k] = scalar(ctx, Double(v)) }
    out["apcer"] = scalar(ctx, m.apcer)
    out["bpcer"] = scalar(ctx, m.bpcer)
    out["hter"] = scalar(ctx, m.hter)
    out["acc"] = scalar(ctx, m.accuracy)
    return out
}

/// Random labelled scores on a coarse grid (so ties occur) with both classes present.
private func randomScores(_ rng: inout RNG, n: Int, grid: Double) -> (labels: [Int], scores: [Double]) {
    var labels = (0..<n).map { _ in rng.int(below: 2) }
    labels[0] = 0
    labels[1] = 1
    let scores = labels.map { y in ((rng.normal() + (y == 0 ? 0.8 : 0)) / grid).rounded() * grid }
    return (labels, scores)
}

let metricsProperties: [Property] = [
    Property("auc_monotone_invariance") { rng in
        let (labels, scores) = randomScores(&rng, n: 5 + rng.int(below: 60), grid: 1.0 / 16)
        let a = try FASMetric.evaluate(labels: labels, scores: scores)
        // strictly increasing and injective on the grid (values 1/16 apart stay far apart)
        let transforms: [(Double) -> Double] = [{ Foundation.exp($0) }, { 2 * $0 + 0.5 }, { $0 * $0 * $0 + $0 }, { Foundation.atan($0) }]
        for (i, f) in transforms.enumerated() {
            let b = try FASMetric.evaluate(labels: labels, scores: scores.map(f))
            try require(a.roc.fpr == b.roc.fpr && a.roc.tpr == b.roc.tpr, "transform \(i) changed the ROC rates")
            try require(a.auc == b.auc, "transform \(i) changed AUC: \(a.auc) vs \(b.auc)")
            try require(a.eer == b.eer, "transform \(i) changed EER: \(a.eer) vs \(b.eer)")
        }
    },
    Property("auc_mann_whitney") { rng in
        let (labels, scores) = randomScores(&rng, n: 2 + rng.int(below: 80), grid: rng.bernoulli(0.5) ? 0.25 : 1e-9)
        let m = try FASMetric.evaluate(labels: labels, scores: scores)
        var wins = 0.0, pairs = 0.0
        for i in labels.indices where labels[i] == 0 {
            for j in labels.indices where labels[j] == 1 {
                pairs += 1
                wins += scores[i] > scores[j] ? 1 : (scores[i] == scores[j] ? 0.5 : 0)
            }
        }
        try require(Swift.abs(m.auc - wins / pairs) <= 1e-12, "AUC \(m.auc) vs Mann–Whitney \(wins / pairs)")
    },
    Property("hter_in_unit_interval") { rng in
        let (labels, scores) = randomScores(&rng, n: 2 + rng.int(below: 80), grid: rng.bernoulli(0.5) ? 0.5 : 1e-9)
        let first: ROCFirstThreshold = rng.bernoulli(0.5) ? .officialCode : .sklearn12
        let m = try FASMetric.evaluate(labels: labels, scores: scores, firstThreshold: first)
        let nReal = labels.filter { $0 == 0 }.count
        for (name, v) in [("APCER", m.apcer), ("BPCER", m.bpcer), ("HTER", m.hter)] {
            try require(v >= 0 && v <= 1, "\(name) = \(v) outside [0, 1]")
        }
        try require(m.hter == (m.apcer + m.bpcer) / 2, "HTER \(m.hter) ≠ (APCER + BPCER)/2")
        try require(m.apcer == Double(m.fp) / Double(m.fp + m.tn) && m.bpcer == Double(m.fn) / Double(m.fn + m.tp),
                    "APCER/BPCER are not FP/(FP+TN) and FN/(FN+TP)")
        let predictedReal = scores.filter { $0 > m.threshold }.count
        try require(m.tp + m.fp == predictedReal, "TP+FP = \(m.tp + m.fp) but \(predictedReal) scores exceed Thre")
        try require(m.tp + m.fn == nReal && m.fp + m.tn == labels.count - nReal, "confusion counts do not add up")
        try require(m.accuracy == Double(m.tp + m.tn) / Double(labels.count), "ACC ≠ (TP+TN)/N")
    },
    Property("separated_hter_floor") { rng in
        let nReal = 1 + rng.int(below: 20), nFake = 1 + rng.int(below: 20)
        var labels = [Int](repeating: 0, count: nReal) + [Int](repeating: 1, count: nFake)
        var scores = (0..<nReal).map { _ in rng.uniform(1.0, 2.0) } + (0..<nFake).map { _ in rng.uniform(-1.0, 0.9) }
        let p = rng.permutation(labels.count)
        labels = p.map { labels[$0] }
        scores = p.map { scores[$0] }
        let m = try FASMetric.evaluate(labels: labels, scores: scores)
        let minReal = zip(labels, scores).filter { $0.0 == 0 }.map(\.1).min()!
        try require(m.auc == 1 && m.eer == 0, "AUC \(m.auc), EER \(m.eer) for separated scores")
        try require(m.threshold == minReal, "Thre \(m.threshold) ≠ min real score \(minReal)")
        try require(m.hter == 1.0 / Double(2 * nReal), "HTER \(m.hter) ≠ 1/(2·\(nReal))")
    },
    Property("brentq_root") { rng in
        // piecewise-linear with a kink (the EER's case) and a flat cubic (bisection steps), roots in (0, 1)
        let root = rng.uniform(0.05, 0.95), kink = rng.uniform(0, 1), slope2 = rng.uniform(0, 0.9)
        let g: (Double) -> Double = { t in -t + slope2 * Swift.max(0, t - kink) }
        let functions: [(Double) -> Double] = [
            { x in g(x) - g(root) },
            { x in let d = root - x; return d < 0 ? -(-d).squareRoot() : d.squareRoot() },
        ]
        for (i, f) in functions.enumerated() {
            let r = try FASMetric.brentq(f, 0, 1)
            try require(Swift.abs(r.root - root) <= 2e-12 + 4 * Double.ulpOfOne * Swift.abs(root) + 1e-15,
                        "function \(i): brentq root \(r.root) vs \(root)")
        }
        do {
            _ = try FASMetric.brentq({ x in x + 1 }, 0, 1)
            throw PropertyFailure("brentq accepted a bracket without a sign change")
        } catch is BrentError {}
    },
    Property("video_single_frame_identity") { rng in
        let (labels, scores) = randomScores(&rng, n: 2 + rng.int(below: 40), grid: 1e-6)
        let ids = rng.permutation(labels.count).map { $0 * 3 + 11 }
        let v = try FASMetric.videoLevel(scores: scores, labels: labels, videos: ids)
        try require(v.scores == scores && v.labels == labels, "one frame per video changed the scores")
        let a = try FASMetric.evaluate(labels: labels, scores: scores)
        let b = try FASMetric.evaluate(labels: v.labels, scores: v.scores)
        try require(a == b, "metrics differ between frame and single-frame-video level")
    },
]
