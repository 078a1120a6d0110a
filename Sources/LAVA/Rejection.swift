// lava.rejection — confidence-based rejection ("unknown" below τ), the official τ search and the ADA → ADMR cascade.
// Official code: audioDeepfakeAttribution.py::predict_with_confidence_threshold and ::find_confidence_thresholds
// (the same in audioDeepfakeModelRecognition.py), pipeline.py::run_pipeline. Paper: "threshold different for each level".

import Certification
import Foundation
import Ops
import Tensor

/// Which samples reach ADMR (model recognition) after ADA (dataset attribution).
public enum CascadeMode: Int, Sendable {
    /// pipeline.py::run_pipeline: ADMR runs for every sample ADA accepts, whatever its class (the default).
    case officialCode = 0
    /// The paper and project page: ADMR runs only when ADA accepts the sample as CodecFake (class 0).
    case paper = 1
}

/// The label of a rejected sample ("unknown").
public let rejectedLabel = -1
/// The ADMR label of a sample ADMR did not run on (None in pipeline.py).
public let notRunLabel = -2
/// ADA's CodecFake class: the only one whose fakes ADMR knows.
public let codecFakeClass = 0

/// Max-softmax confidences, argmax classes and decisions (argmax if confidence ≥ τ, else −1) of logits [N, K].
public func confidenceDecisions(logits: Tensor, tau: Double) throws -> (confidence: [Double], argmax: [Int], decision: [Int]) {
    guard logits.rank == 2, logits.shape[1] >= 1 else {
        throw ShapeError("lava.rejection", "logits must be [N, K] with K ≥ 1, found \(logits.shape)")
    }
    let p = try logits.softmax(axis: 1)
    let k = logits.shape[1]
    var conf: [Double] = [], arg: [Int] = [], dec: [Int] = []
    for i in 0..<logits.shape[0] {
        var best = 0
        for c in 1..<k where p.data[i * k + c] > p.data[i * k + best] { best = c }   // first maximum, as torch.max
        let c = p.data[i * k + best]
        conf.append(c)
        arg.append(best)
        dec.append(c >= tau ? best : rejectedLabel)
    }
    return (conf, arg, dec)
}

/// np.linspace(0, 1, points): t_i = i·(1/(points−1)) for i < points−1 and exactly 1 at the end.
public func thresholdGrid(points: Int) -> [Double] {
    guard points > 1 else { return points == 1 ? [0] : [] }
    let step = 1.0 / Double(points - 1)
    return (0..<points).map { $0 == points - 1 ? 1.0 : Double($0) * step }
}

/// The result of the official τ search.
public struct ThresholdSearch: Sendable {
    public var tau: Double
    public var grid: [Double]
    /// Coverage |{c ≥ t}|/M at each t (0 where nothing is accepted).
    public var coverage: [Double]
    /// Accuracy on {c ≥ t} at each t (NaN where nothing is accepted; the official loop skips those t).
    public var accuracy: [Double]
}

/// find_confidence_thresholds: the first t of the grid with coverage ≥ minCoverage whose accuracy is strictly greater than
/// the best so far (start: best 0, τ 0), so ties go to the smaller t and 0 comes back when nothing qualifies.
public func findConfidenceThreshold(confidence: [Double], predicted: [Int], truth: [Int],
                                    minCoverage: Double = 0.8, gridPoints: Int = 500) throws -> ThresholdSearch {
    guard confidence.count == predicted.count, confidence.count == truth.count else {
        throw ShapeError("lava.rejection", "search_confidence, search_pred and search_true must have one entry per sample, found \(confidence.count), \(predicted.count), \(truth.count)")
    }
    guard !confidence.isEmpty else { throw ShapeError("lava.rejection", "the τ-search set is empty") }
    guard gridPoints >= 1 else { throw ShapeError("lava.rejection", "grid_points must be ≥ 1, found \(gridPoints)") }
    let grid = thresholdGrid(points: gridPoints)
    var best = 0.0, tau = 0.0
    var cov = [Double](repeating: 0, count: grid.count), acc = [Double](repeating: .nan, count: grid.count)
    let m = Double(confidence.count)
    for (i, t) in grid.enumerated() {
        var accepted = 0, right = 0
        for j in confidence.indices where confidence[j] >= t {
            accepted += 1
            if predicted[j] == truth[j] { right += 1 }
        }
        if accepted == 0 { continue }
        let a = Double(right) / Double(accepted), c = Double(accepted) / m
        cov[i] = c
        acc[i] = a
        if c >= minCoverage && a > best { (best, tau) = (a, t) }
    }
    return ThresholdSearch(tau: tau, grid: grid, coverage: cov, accuracy: acc)
}

/// The two-level decisions of a batch.
public struct CascadeResult: Sendable {
    public var adaConfidence: [Double]
    /// ADA class, or −1 when rejected.
    public var adaDecision: [Int]
    /// ADMR confidence where ADMR runs, NaN elsewhere.
    public var admrConfidence: [Double]
    /// ADMR class, −1 when ADMR runs and rejects, −2 when it does not run.
    public var admrDecision: [Int]
}

/// Whether ADMR runs after ADA's decision under `mode`.
public func cascadeRunsADMR(adaDecision: Int, mode: CascadeMode) -> Bool {
    switch mode {
    case .officialCode: adaDecision != rejectedLabel
    case .paper: adaDecision == codecFakeClass
    }
}

/// ADA then ADMR on logits [N, K_ada] and [N, K_admr] of the same samples.
public func cascade(adaLogits: Tensor, admrLogits: Tensor, tauADA: Double, tauADMR: Double,
                    mode: CascadeMode = .officialCode) throws -> CascadeResult {
    guard adaLogits.rank == 2, admrLogits.rank == 2, adaLogits.shape[0] == admrLogits.shape[0] else {
        throw ShapeError("lava.rejection", "logits_ada [N, K_ada] and logits_admr [N, K_admr] must have the same N, found \(adaLogits.shape) and \(admrLogits.shape)")
    }
    let a = try confidenceDecisions(logits: adaLogits, tau: tauADA)
    let r = try confidenceDecisions(logits: admrLogits, tau: tauADMR)
    var conf: [Double] = [], dec: [Int] = []
    for i in a.decision.indices {
        if cascadeRunsADMR(adaDecision: a.decision[i], mode: mode) {
            conf.append(r.confidence[i])
            dec.append(r.decision[i])
        } else {
            conf.append(.nan)
            dec.append(notRunLabel)
        }
    }
    return CascadeResult(adaConfidence: a.confidence, adaDecision: a.decision, admrConfidence: conf, admrDecision: dec)
}

let rejectionMethod = Method("lava.rejection", properties: [
    Property("coverage_non_increasing") { rng in
        let m = 1 + rng.int(below: 60)
        let conf = (0..<m).map { _ in rng.int(below: 4) == 0 ? Double(rng.int(below: 500)) / 499 : rng.uniform(0.3, 1) }
        let truth = (0..<m).map { _ in rng.int(below: 3) }, pred = (0..<m).map { _ in rng.int(below: 3) }
        let s = try findConfidenceThreshold(confidence: conf, predicted: pred, truth: truth)
        for i in 1..<s.coverage.count {
            try require(s.coverage[i] <= s.coverage[i - 1], "coverage rises from t = \(s.grid[i - 1]) to \(s.grid[i])")
        }
        try require(s.coverage[0] == 1, "coverage at t = 0 is \(s.coverage[0]), expected 1 (confidences are ≥ 0)")
    },
    Property("accept_all_below_one_over_k") { rng in
        let k = 1 + rng.int(below: 8), n = 1 + rng.int(below: 20)
        let logits = rng.normalTensor([n, k]) * (1 + 10 * rng.uniform())
        let d = try confidenceDecisions(logits: logits, tau: 1 / Double(k) * (1 - 1e-12))
        try require(!d.decision.contains(rejectedLabel), "τ < 1/K rejected a sample: \(d)")
        try require(d.confidence.allSatisfy { $0 >= 1 / Double(k) * (1 - 1e-14) }, "a confidence below 1/K: \(d.confidence)")
    },
    Property("logit_shift_invariance") { rng in
        let k = 2 + rng.int(below: 6), n = 1 + rng.int(below: 20)
        let logits = rng.normalTensor([n, k]) * 3
        let shift = rng.normalTensor([n, 1]) * 100
        let tau = rng.uniform(0.2, 1)
        let a = try confidenceDecisions(logits: logits, tau: tau), b = try confidenceDecisions(logits: try logits + shift, tau: tau)
        try requireClose(Tensor(b.confidence), Tensor(a.confidence), Tolerance(rtol: 1e-12, atol: 1e-14), "confidence after a shift")
        // A decision can only flip when the confidence sits within rounding of τ.
        for i in 0..<n where a.decision[i] != b.decision[i] {
            try require(Swift.abs(a.confidence[i] - tau) < 1e-12, "decision \(a.decision[i]) → \(b.decision[i]) after a shift")
        }
    },
    Property("tau_search_contract") { rng in
        let m = 5 + rng.int(below: 80), points = [500, 11, 101][rng.int(below: 3)]
        let minCov = [0.8, 0.5, 0.95][rng.int(below: 3)]
        let conf = (0..<m).map { _ in rng.uniform(0.3, 1) }
        let truth = (0..<m).map { _ in rng.int(below: 3) }
        let pred = truth.enumerated().map { i, t in rng.uniform() < conf[i] ? t : (t + 1) % 3 }
        let s = try findConfidenceThreshold(confidence: conf, predicted: pred, truth: truth, minCoverage: minCov, gridPoints: points)
        let again = try findConfidenceThreshold(confidence: conf, predicted: pred, truth: truth, minCoverage: minCov, gridPoints: points)
        try require(s.tau == again.tau, "not deterministic")
        try require(s.grid.contains(s.tau), "τ = \(s.tau) is not on the grid")
        let qualifying = s.grid.indices.filter { s.coverage[$0] >= minCov && s.coverage[$0] > 0 }
        let bestAcc = qualifying.map { s.accuracy[$0] }.max() ?? 0
        let expected = bestAcc > 0 ? s.grid[qualifying.first { s.accuracy[$0] == bestAcc }!] : 0
        try require(s.tau == expected, "τ = \(s.tau), expected the first qualifying t with the best accuracy \(bestAcc): \(expected)")
        if let i = s.grid.firstIndex(of: s.tau), s.tau != 0 {
            try require(s.coverage[i] >= minCov, "coverage(τ) = \(s.coverage[i]) < \(minCov)")
        }
    },
    Property("cascade_modes") { rng in
        let n = 1 + rng.int(below: 30)
        let la = rng.normalTensor([n, 3]) * 3, lr = rng.normalTensor([n, 6]) * 3
        let ta = rng.uniform(0.3, 1), tr = rng.uniform(0.2, 1)
        let code = try cascade(adaLogits: la, admrLogits: lr, tauADA: ta, tauADMR: tr, mode: .officialCode)
        let paper = try cascade(adaLogits: la, admrLogits: lr, tauADA: ta, tauADMR: tr, mode: .paper)
        try require(code.adaDecision == paper.adaDecision, "ADA decisions depend on the cascade mode")
        for i in 0..<n {
            let a = code.adaDecision[i]
            try require((paper.admrDecision[i] != notRunLabel) == (a == codecFakeClass), "paper mode: ADMR ran = \(paper.admrDecision[i]) for ADA \(a)")
            try require((code.admrDecision[i] != notRunLabel) == (a != rejectedLabel), "code mode: ADMR ran = \(code.admrDecision[i]) for ADA \(a)")
            if a == codecFakeClass { try require(code.admrDecision[i] == paper.admrDecision[i], "modes disagree on an accepted CodecFake") }
        }
    },
]) { ctx in
    guard let mode = CascadeMode(rawValue: try ctx.int("cascade", default: 0)) else {
        throw ShapeError("lava.rejection", "cascade must be 0 (official code) or 1 (paper)")
    }
    let r = try cascade(adaLogits: try ctx.data.tensor("logits_ada", rank: 2), admrLogits: try ctx.data.tensor("logits_admr", rank: 2),
                        tauADA: try ctx.double("tau_ada"), tauADMR: try ctx.double("tau_admr"), mode: mode)
    let s = try findConfidenceThreshold(confidence: try ctx.tensor("search_confidence").data,
                                        predicted: try labels(try ctx.tensor("search_pred"), "search_pred"), truth: try labels(try ctx.tensor("search_true"), "search_true"),
                                        minCoverage: try ctx.double("min_coverage", default: 0.8),
                                        gridPoints: try ctx.int("grid_points", default: 500))
    func c(_ xs: [Double]) -> Var { ctx.constant(Tensor(xs)) }
    return [
        "confidence_ada": c(r.adaConfidence), "decision_ada": c(r.adaDecision.map(Double.init)),
        "confidence_admr": c(r.admrConfidence), "decision_admr": c(r.admrDecision.map(Double.init)),
        "tau": ctx.constant(Tensor(scalar: s.tau)), "coverage_curve": c(s.coverage), "accuracy_curve": c(s.accuracy),
    ]
}
