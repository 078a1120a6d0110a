// The paper's theory settings (spec A3):
//   v1 §5 synthetic data (scripts/synthetic_data.py SemiRandomSignalCoordinate(d, num_signal=1,
//   bias_prob=1/d)): y ~ Bernoulli(½), s = 2y − 1, j = 0 with probability 1/d else uniform on 1..d−1
//   (uniform over the d coordinates overall), x = s·e_j; the one-hidden-layer ReLU MLP
//   (scripts/synth_models.py), standard vs ℓ∞-PGD training (eps 0.45, step 0.25·eps, 8 steps, no
//   random start, bounds (−1, 1)), attribution ∇ₓCE(sum) at the true label;
//   NeurIPS "simplified BlockMNIST": d one-dimensional blocks, the signal y·e_{j*} with j* uniform on
//   the task-relevant half R = 0..<d/2, the other half noise N(0, σ²).
// The statistics are those of the notebook (02_fig_in_synthetic_data.ipynb): how often the signal
// coordinate is the top (bottom) attribution, the signal's share of the ℓ1 gradient mass, |cos(g, x)|.

import Foundation
import Ops
import Tensor

public struct SyntheticSet: Sendable {
    public var x: Tensor
    public var y: [Int]
    /// The coordinate carrying the label in each example.
    public var signal: [Int]
}

public enum SyntheticData {
    /// v1 §5: x = (2y − 1)·e_j, j = 0 w.p. 1/d else uniform on 1..d−1.
    public static func signalCoordinate(n: Int, d: Int, rng: inout RNG) -> SyntheticSet {
        var x = [Double](repeating: 0, count: n * d)
        var y: [Int] = [], sig: [Int] = []
        for i in 0..<n {
            let label = rng.int(below: 2)
            let j = rng.bernoulli(1.0 / Double(d)) ? 0 : 1 + rng.int(below: d - 1)
            x[i * d + j] = label == 1 ? 1 : -1
            y.append(label)
            sig.append(j)
        }
        return SyntheticSet(x: Tensor(unchecked: [n, d], x), y: y, signal: sig)
    }

    /// Simplified BlockMNIST: the signal (2y − 1) at j* uniform on 0..<d/2, noise N(0, σ²) on d/2..<d.
    public static func simplifiedBlockMNIST(n: Int, d: Int, noiseStd: Double, rng: inout RNG) -> SyntheticSet {
        let r = d / 2
        var x = [Double](repeating: 0, count: n * d)
        var y: [Int] = [], sig: [Int] = []
        for i in 0..<n {
            let label = rng.int(below: 2)
            let j = rng.int(below: r)
            x[i * d + j] = label == 1 ? 1 : -1
            if noiseStd > 0 { for k in r..<d { x[i * d + k] = noiseStd * rng.normal() } }
            y.append(label)
            sig.append(j)
        }
        return SyntheticSet(x: Tensor(unchecked: [n, d], x), y: y, signal: sig)
    }
}

/// Where attributions put the signal coordinate.
public struct SignalStatistics: Sendable, Codable {
    /// P[the signal coordinate is first in the priority order] (argmax |g|, ties to the lower index).
    public var pTop: Double
    /// P[the signal coordinate is last in the priority order] (argmin |g|).
    public var pBottom: Double
    /// Mean share of the ℓ1 gradient mass on the signal coordinate.
    public var signalMass: Double
    /// Mean share of the ℓ1 mass on `relevant` coordinates (1 when not given).
    public var relevantMass: Double
    /// Mean |cos(g, x)|.
    public var meanAbsCos: Double
    /// With `relevant` (the task-relevant set R), the terms of the NeurIPS theorem, per example then averaged:
    /// the coefficient of variation (population std / mean) of |g| over R (0: constant magnitude on R);
    /// |g_{j*}| / mean_R |g| (1: the instance's own block is not singled out); mean_{noise} |g| / mean_R |g|
    /// (0: the gradient vanishes on the noise blocks). 0, 1 and 0 without `relevant`.
    public var relevantCV: Double = 0
    public var signalToRelevantMean: Double = 1
    public var noiseToRelevantMean: Double = 0

    public static func measure(attributions g: Tensor, x: Tensor, signal: [Int], relevant: Range<Int>? = nil) throws -> SignalStatistics {
        let orders = try AttributionMasking.priorityOrders(g)
        let n = orders.count, d = g.count / n
        var top = 0, bottom = 0, mass = 0.0, rel = 0.0, cos = 0.0, cv = 0.0, sig = 0.0, noise = 0.0
        for i in 0..<n {
            let row = Array(g.data[(i * d)..<((i + 1) * d)]), xr = Array(x.data[(i * d)..<((i + 1) * d)])
            if orders[i][0] == signal[i] { top += 1 }
            if orders[i][d - 1] == signal[i] { bottom += 1 }
            let l1 = row.reduce(0) { $0 + Swift.abs($1) }
            mass += l1 > 0 ? Swift.abs(row[signal[i]]) / l1 : 0
            if let r = relevant {
                rel += l1 > 0 ? r.reduce(0) { $0 + Swift.abs(row[$1]) } / l1 : 0
                let a = r.map { Swift.abs(row[$0]) }
                let m = a.reduce(0, +) / Double(Swift.max(a.count, 1))
                let sd = (a.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(Swift.max(a.count, 1))).squareRoot()
                let off = (0..<d).filter { !r.contains($0) }.map { Swift.abs(row[$0]) }
                let mo = off.reduce(0, +) / Double(Swift.max(off.count, 1))
                cv += m > 0 ? sd / m : 0
                sig += m > 0 ? Swift.abs(row[signal[i]]) / m : 0
                noise += m > 0 ? mo / m : (mo > 0 ? .infinity : 0)
            } else {
                rel += 1
                sig += 1
            }
            let gx = zip(row, xr).reduce(0) { $0 + $1.0 * $1.1 }
            let ng = row.reduce(0) { $0 + $1 * $1 }.squareRoot(), nx = xr.reduce(0) { $0 + $1 * $1 }.squareRoot()
            cos += ng > 0 && nx > 0 ? Swift.abs(gx) / (ng * nx) : 0
        }
        let nn = Double(n)
        return SignalStatistics(pTop: Double(top) / nn, pBottom: Double(bottom) / nn, signalMass: mass / nn,
                                relevantMass: rel / nn, meanAbsCos: cos / nn, relevantCV: cv / nn,
                                signalToRelevantMean: sig / nn, noiseToRelevantMean: noise / nn)
    }
}

/// One theory experiment: data, a one-hidden-layer MLP trained standard or ℓ∞-robust, and where its
/// loss gradients put the signal.
public struct TheoryExperiment: Sendable {
    public enum Data: String, Sendable { case signalCoordinate, simplifiedBlockMNIST }
    public var data: Data = .signalCoordinate
    public var d = 10
    public var noiseStd = 0.1
    public var nTrain = 10_000
    public var nTest = 1000
    public var width = 1000
    public var epochs = 500
    public var batchSize = 250
    public var learningRate = 0.1
    public var schedule = LRSchedule.stepDecay(every: 50, factor: 0.75, floor: 0.01)
    /// ℓ∞ radius of adversarial training (0: standard).
    public var eps = 0.0
    public var seed: UInt64 = 0

    public init() {}

    public struct Result: Sendable, Codable {
        public var cleanAccuracy: Double
        /// Accuracy under the training attack's settings at `eps` (clean accuracy when eps = 0) and at 0.2.
        public var robustAccuracy: Double
        public var robustAccuracyAt02: Double
        public var statistics: SignalStatistics
        public var seconds: Double
        /// Mean training loss of the last epoch, and the accuracy on the training set at the end.
        public var finalTrainingLoss: Double = .nan
        public var trainAccuracy: Double = .nan
        /// The convergence gate: the training set is fitted (accuracy 1) and the last epoch's mean training
        /// loss is ≤ `TheoryExperiment.convergedLoss`. A case whose claim needs convergence fails without it.
        public var converged: Bool = false
    }

    /// The training loss below which a run counts as converged (with training accuracy 1).
    public var convergedLoss = 0.01

    /// The synthetic sets (train, test), drawn from RNG(seed) and RNG(seed + 1).
    public func sets() -> (SyntheticSet, SyntheticSet) {
        var r1 = RNG(seed: seed), r2 = RNG(seed: seed &+ 1)
        switch data {
        case .signalCoordinate:
            return (SyntheticData.signalCoordinate(n: nTrain, d: d, rng: &r1), SyntheticData.signalCoordinate(n: nTest, d: d, rng: &r2))
        case .simplifiedBlockMNIST:
            return (SyntheticData.simplifiedBlockMNIST(n: nTrain, d: d, noiseStd: noiseStd, rng: &r1),
                    SyntheticData.simplifiedBlockMNIST(n: nTest, d: d, noiseStd: noiseStd, rng: &r2))
        }
    }

    /// The attack of the synthetic experiments: ℓ∞, step 0.25·eps, 8 iterations, no random start, bounds (min, max) of the train data.
    public func attack(eps: Double, bounds: (Double, Double)) -> PGDAttack {
        PGDAttack(norm: .linf, eps: eps, stepSize: 0.25 * eps, iterations: 8, randEps: 0, lower: bounds.0, upper: bounds.1)
    }

    public func run(progress: (Int, Double) -> Void = { _, _ in }) throws -> (model: MLP, result: Result, test: SyntheticSet) {
        let start = Date()
        let what = "the experiment (d \(d), width \(width), n_train \(nTrain), n_test \(nTest), \(epochs) epochs)"
        try Budget.require(elements: (Double(nTrain) + Double(nTest)) * Double(d) * 3 + Double(d) * Double(width) * 4, what)
        let (train, test) = sets()
        let bounds = (train.x.data.min() ?? -1, train.x.data.max() ?? 1)
        var rng = RNG(seed: seed &+ 2)
        let model = try MLP(sizes: [d, width, 2], rng: &rng)
        let cfg = TrainingConfig(epochs: epochs, batchSize: batchSize, learningRate: learningRate, schedule: schedule,
                                 adversary: eps > 0 ? attack(eps: eps, bounds: bounds) : nil)
        var lastLoss = Double.nan
        try Trainer.train(model, x: train.x, y: train.y, config: cfg, rng: &rng) { e, l in
            lastLoss = l
            progress(e, l)
        }
        let trainAcc = try model.accuracy(train.x, train.y)
        let g = try Attribution.inputGradients(model: model, x: test.x, y: test.y, target: .loss)
        let stats = try SignalStatistics.measure(attributions: g, x: test.x, signal: test.signal,
                                                 relevant: data == .simplifiedBlockMNIST ? 0..<(d / 2) : nil)
        func robustAccuracy(_ e: Double) throws -> Double {
            if e == 0 { return try model.accuracy(test.x, test.y) }
            let delta = try attack(eps: e, bounds: bounds).perturb(model: model, x: test.x, y: test.y, rng: &rng)
            return try model.accuracy(test.x + delta, test.y)
        }
        var result = Result(cleanAccuracy: try model.accuracy(test.x, test.y), robustAccuracy: try robustAccuracy(eps),
                            robustAccuracyAt02: try robustAccuracy(0.2), statistics: stats, seconds: Date().timeIntervalSince(start))
        result.finalTrainingLoss = lastLoss
        result.trainAccuracy = trainAcc
        result.converged = trainAcc == 1 && lastLoss <= convergedLoss
        return (model, result, test)
    }
}

/// The theory cases of spec A3 as runnable claims: fast settings for `make test`, full settings for
/// `certify audit --theory --full`.
public struct TheoryCases: Sendable {
    public struct Case: Sendable {
        public var name: String
        public var claim: String
        /// Whose result the case tests: the paper's (which result, where) or Certify's own.
        public var source: String
        public var experiment: TheoryExperiment
        /// Whether the measured result supports the claim (accuracy gates included).
        public var check: @Sendable (TheoryExperiment.Result) -> Bool
    }

    public struct Outcome: Sendable, Codable {
        public var name: String
        public var claim: String
        public var source: String?
        public var result: TheoryExperiment.Result
        public var holds: Bool
        public init(name: String, claim: String, source: String? = nil, result: TheoryExperiment.Result, holds: Bool) {
            self.name = name
            self.claim = claim
            self.source = source
            self.result = result
            self.holds = holds
        }
        public var summary: String {
            let s = result.statistics
            return String(format: "acc %.3f, robust acc %.3f, P_top %.3f, P_bot %.3f, signal mass %.3f, relevant mass %.3f, |cos| %.3f, CV on R %.3f, |g_j*|/mean_R %.3f, noise/R %.3f, train loss %.2g, train acc %.3f, %@ (%.0fs)",
                          result.cleanAccuracy, result.robustAccuracy, s.pTop, s.pBottom, s.signalMass, s.relevantMass, s.meanAbsCos,
                          s.relevantCV, s.signalToRelevantMean, s.noiseToRelevantMean, result.finalTrainingLoss, result.trainAccuracy,
                          result.converged ? "converged" : "NOT converged", result.seconds)
        }
    }

    /// Who owns each case's result: the paper's results and Certify's own checks, named for what they are.
    public static let sources: [String: String] = [
        "TC1": "paper, arXiv v1 §5: the synthetic experiment of the official notebook 02 (standard MLP; an empirical result, not a theorem)",
        "TC2": "paper, arXiv v1 §5: the same experiment with ℓ∞-robust training (an empirical result, not a theorem)",
        "TC3": "ours: a sanity check of a linear model (its gradient is one vector w for every x) and of the tie order",
        "TC4": "ours: the closed form of a linear model on simplified BlockMNIST (mass 2/d on j*, 0 off R); the linear analogue of the theorem",
        "TC5s": "paper, NeurIPS §5 Theorem 1 (simplified BlockMNIST, one-hidden-layer ReLU MLP): tested empirically, as far as the statement was retrieved",
        "TC5r": "paper, NeurIPS §5 empirical figure (the adversarially trained MLP highlights only j*); no theorem",
        "TC6": "ours: an identity of the DiffROAR definition (a Bayes-optimal learner with one kept coordinate gives (P_top − P_bot)/2), a check of Certify's retraining pipeline",
    ]

    public struct OracleOutcome: Sendable, Codable {
        public var pTop: Double
        public var pBottom: Double
        public var identity: Double
        public var retrained: Double
        public var tolerance: Double
        public var holds: Bool { Swift.abs(retrained - identity) <= tolerance }
        public var summary: String {
            String(format: "P_top %.3f, P_bot %.3f, (P_top − P_bot)/2 = %+.3f, retrained %+.3f (tolerance %.2f)", pTop, pBottom, identity, retrained, tolerance)
        }
    }

    public struct Report: Sendable, Codable {
        public var cases: [Outcome]
        public var tc6: OracleOutcome
        public var full: Bool
        /// Commit, command line, data, seeds and versions (filled by `certify audit --theory`).
        public var provenance: [String: String]?
        /// Every case's owner (TheoryCases.sources), TC3, TC4 and TC6 included.
        public var sources: [String: String]? = TheoryCases.sources
        public init(cases: [Outcome], tc6: OracleOutcome, full: Bool, provenance: [String: String]? = nil) {
            self.cases = cases
            self.tc6 = tc6
            self.full = full
            self.provenance = provenance
        }
    }

    public var experiments: [Case]
    /// The TC1 experiment whose model TC6 attributes.
    public var tc6: TheoryExperiment

    static func experiment(_ data: TheoryExperiment.Data = .signalCoordinate, d: Int, width: Int, epochs: Int, nTrain: Int,
                           batch: Int, lr: Double, eps: Double, seed: UInt64 = 0) -> TheoryExperiment {
        var e = TheoryExperiment()
        e.data = data
        e.d = d
        e.width = width
        e.epochs = epochs
        e.nTrain = nTrain
        e.batchSize = batch
        e.learningRate = lr
        e.eps = eps
        e.seed = seed
        return e
    }

    static func cases(tc1: TheoryExperiment, tc2: TheoryExperiment, tc5s: TheoryExperiment, tc5r: TheoryExperiment) -> [Case] {
        let uniformOverR5 = 2.0 / Double(tc5s.d)
        return [
            Case(name: "TC1", claim: "standard: the signal is rarely the top attribution, often the bottom", source: sources["TC1"]!, experiment: tc1) { r in
                r.cleanAccuracy >= 0.99 && r.statistics.pTop <= 0.05 && r.statistics.pBottom >= 0.5 && r.statistics.signalMass < 1.0 / Double(tc1.d)
            },
            Case(name: "TC2", claim: "ℓ∞-robust (eps 0.45): the signal is the top attribution ≥ 95%", source: sources["TC2"]!, experiment: tc2) { r in
                // the attribution claim; accuracy is asserted only once robust training has converged
                r.statistics.pTop >= 0.95 && r.statistics.pBottom <= 0.01 && (r.robustAccuracy < 0.95 || r.cleanAccuracy >= 0.99)
            },
            Case(name: "TC5s", claim: "Theorem 1: converged standard MLP, simplified BlockMNIST: |g| ≈ constant on R whatever j*, ≈ 0 on the noise blocks",
                 source: sources["TC5s"]!, experiment: tc5s) { r in
                theoremHolds(r, uniformOverR: uniformOverR5)
            },
            Case(name: "TC5r", claim: "ℓ∞-robust (eps 0.3), simplified BlockMNIST: the mass concentrates on j*", source: sources["TC5r"]!, experiment: tc5r) { r in
                r.statistics.pTop >= 0.9 && r.statistics.signalMass / r.statistics.relevantMass >= 1.5 * uniformOverR5
            },
        ]
    }

    /// Thresholds of the theorem test (TC5s), fixed before the runs: the gradient's magnitude on R varies by
    /// less than a quarter of its mean (coefficient of variation ≤ 0.25), the instance's own coordinate is
    /// within 1/1.5…1.5 of the mean on R (not singled out), the noise coordinates carry at most a tenth of the
    /// per-coordinate magnitude on R, and at least 90 % of the ℓ1 mass is on R.
    public static let theoremCV = 0.25, theoremSignalRatio = 1.5, theoremNoiseRatio = 0.1, theoremRelevantMass = 0.9

    /// The statement of Theorem 1 as far as it was retrieved (spec A3.2), on a model that must have converged
    /// (a non-converged model fails, it never passes): test accuracy ≥ 0.99; ≥ 90 % of the gradient mass on R;
    /// |g| constant on R (CV ≤ 0.25); the instance's own coordinate not singled out (ratio to the mean on R
    /// in [1/1.5, 1.5], its mass share ≤ 1.5 × uniform, and rarely the top attribution); ≈ 0 on the noise blocks.
    public static func theoremHolds(_ r: TheoryExperiment.Result, uniformOverR: Double) -> Bool {
        let s = r.statistics
        return r.converged && r.cleanAccuracy >= 0.99 && s.relevantMass >= theoremRelevantMass && s.relevantCV <= theoremCV
            && s.signalToRelevantMean <= theoremSignalRatio && s.signalToRelevantMean >= 1 / theoremSignalRatio
            && s.signalMass / s.relevantMass <= theoremSignalRatio * uniformOverR && s.pTop <= 0.2
            && s.noiseToRelevantMean <= theoremNoiseRatio
    }

    /// Settings for `make test` (seconds). Robust training at d = 10 needs width ≫ 1000 and hundreds of
    /// epochs (spec A3), so the fast robust cases use d = 4 (TC2) and d = 8 (TC5r) with a larger step.
    /// The fast theorem case TC5s uses the full case's d = 20: at d = 8 (width 100, even after 80 epochs)
    /// the noise coordinates keep about a tenth of the per-coordinate magnitude on R, just above the
    /// theorem test's threshold, because their first-layer weights stay near their initialisation (no
    /// weight decay shrinks them); that finite-training departure from "zero on the noise blocks" shrinks as
    /// the relevant weights grow, and is reported, not hidden (docs/input_gradients/REPRODUCTION.md).
    public static let fast = TheoryCases(
        experiments: cases(
            tc1: experiment(d: 10, width: 200, epochs: 40, nTrain: 2000, batch: 50, lr: 0.1, eps: 0),
            tc2: experiment(d: 4, width: 100, epochs: 40, nTrain: 1000, batch: 25, lr: 0.2, eps: 0.45),
            tc5s: experiment(.simplifiedBlockMNIST, d: 20, width: 100, epochs: 40, nTrain: 1000, batch: 25, lr: 0.2, eps: 0),
            tc5r: experiment(.simplifiedBlockMNIST, d: 8, width: 100, epochs: 40, nTrain: 1000, batch: 25, lr: 0.2, eps: 0.3)),
        tc6: experiment(d: 10, width: 200, epochs: 40, nTrain: 2000, batch: 50, lr: 0.1, eps: 0))

    /// Full-size settings at the notebook's d = 10 (and d = 20 for simplified BlockMNIST); minutes in
    /// release. Standard training uses the code's schedule (batch 250, lr 0.1). Robust training with
    /// that schedule needs the code's width 25 000 and 500 epochs: at width 1000 it stalls at chance
    /// accuracy (measured: 200 epochs, accuracy 0.73, P_top 1.0), so the robust cases take batch 25
    /// and lr 0.2, with which width 1000 converges in 60 epochs.
    public static let full = TheoryCases(
        experiments: cases(
            tc1: experiment(d: 10, width: 1000, epochs: 100, nTrain: 10_000, batch: 250, lr: 0.1, eps: 0),
            tc2: experiment(d: 10, width: 1000, epochs: 60, nTrain: 10_000, batch: 25, lr: 0.2, eps: 0.45),
            tc5s: experiment(.simplifiedBlockMNIST, d: 20, width: 1000, epochs: 60, nTrain: 5000, batch: 25, lr: 0.2, eps: 0),
            tc5r: experiment(.simplifiedBlockMNIST, d: 20, width: 1000, epochs: 60, nTrain: 5000, batch: 25, lr: 0.2, eps: 0.3)),
        tc6: experiment(d: 10, width: 1000, epochs: 100, nTrain: 10_000, batch: 250, lr: 0.1, eps: 0))

    /// TC6: with one kept coordinate on the TC1 data, a Bayes-optimal learner reaches (1 + P[signal kept])/2,
    /// so DiffROAR = (P_top − P_bot)/2. Trains `experiment`'s model, attributes train and test sets (∇ loss),
    /// measures P_top / P_bot on the test set, and retrains a small MLP on the masked data.
    public static func oracleDiffROAR(_ experiment: TheoryExperiment, tolerance: Double = 0.05) throws -> OracleOutcome {
        let (model, _, _) = try experiment.run()
        let (train, test) = experiment.sets()
        let atr = try Attribution.inputGradients(model: model, x: train.x, y: train.y, target: .loss)
        let ate = try Attribution.inputGradients(model: model, x: test.x, y: test.y, target: .loss)
        let stats = try SignalStatistics.measure(attributions: ate, x: test.x, signal: test.signal)
        let k = 1.0 / Double(experiment.d)
        let learner = MLPLearner(hidden: [32], training: TrainingConfig(epochs: 20, batchSize: 100, learningRate: 0.1, momentum: 0.9))
        let fill = train.x.data.reduce(0, +) / Double(train.x.count)
        let r = try DiffROAR.evaluate(train: .init(x: train.x, y: train.y, attributions: atr), test: .init(x: test.x, y: test.y, attributions: ate),
                                      ks: [k], seeds: [0], fill: fill, learner: learner)
        return OracleOutcome(pTop: stats.pTop, pBottom: stats.pBottom, identity: (stats.pTop - stats.pBottom) / 2,
                             retrained: r[0].mean, tolerance: tolerance)
    }
}
