// The audit pipeline behind `certify audit`: train the attributed model (standard or ℓ∞-robust),
// attribute train and test sets, then DiffROAR by retraining the suite's reference model (a
// two-hidden-layer ReLU MLP) on top-k- and bottom-k-kept data for each k and seed, plus, on
// BlockMNIST, the localization of the attributions (share of the top-k attributions on the null block).
// Every setting is a documented parameter; the defaults fit the issue's budget (one method, 5 values
// of k × 2 masks × 3 seeds on BlockMNIST-from-Fashion-MNIST, within 10 minutes on 2 cores).

import Certification
import Foundation
import HDF5
import Ops
import Tensor

/// How PredPower's model is chosen from one retraining run.
public enum ModelSelection: String, Sendable, Codable, CaseIterable {
    /// The model after the last epoch (Certify's default: an unbiased estimate).
    case final
    /// The best test accuracy over the epochs (the official code's stats['best_model'][0]).
    case bestOnEvaluation
}

/// The suite's reference model class M for DiffROAR: a ReLU MLP retrained from the seed.
public struct MLPLearner: DiffROARLearner {
    public var hidden: [Int]
    public var training: TrainingConfig
    public var selection: ModelSelection

    public init(hidden: [Int] = [128, 128], training: TrainingConfig = MLPLearner.defaultTraining, selection: ModelSelection = .final) {
        self.hidden = hidden
        self.training = training
        self.selection = selection
    }

    /// SGD, lr 0.05, momentum 0.9, batch 128, 4 epochs, cosine schedule.
    public static let defaultTraining = TrainingConfig(epochs: 4, batchSize: 128, learningRate: 0.05, momentum: 0.9, schedule: .cosine)

    public func fitAndScore(trainX: Tensor, trainY: [Int], testX: Tensor, testY: [Int], seed: UInt64) throws -> Double {
        var rng = RNG(seed: seed)
        let d = trainX.count / Swift.max(trainX.shape[0], 1)
        let classes = Swift.max(trainY.max() ?? 0, testY.max() ?? 0) + 1
        let model = try MLP(sizes: [d] + hidden + [classes], rng: &rng)
        var best = -1.0
        var failure: Error? = nil
        try Trainer.train(model, x: trainX, y: trainY, config: training, rng: &rng) { _, _ in
            guard selection == .bestOnEvaluation, failure == nil else { return }
            do { best = Swift.max(best, try model.accuracy(testX, testY)) } catch { failure = error }
        }
        if let failure { throw failure }
        return selection == .final ? try model.accuracy(testX, testY) : best
    }
}

/// The label an attribution is taken for.
public enum AttributionLabels: String, Sendable, Codable, CaseIterable {
    /// The true label y (official code: LogitGrad gathers yb).
    case trueLabel = "true"
    /// The attributed model's predicted label (argmax of its logits).
    case predicted
}

/// Localization scores at one k.
public struct LocalizationPoint: Sendable, Codable {
    public var k: Double
    public var nullFraction: Double
    public var nullMassShare: Double
}

public struct AuditReport: Sendable, Codable {
    public var dataset: String
    public var method: String
    public var model: String
    public var attributedModelAccuracy: Double?
    public var attributedModelRobustAccuracy: Double?
    public var diffROAR: [DiffROARPoint]
    public var localization: [LocalizationPoint]
    public var settings: [String: String]
    public var seconds: Double
    /// Where the report comes from: commit, command line, data source and subset, seeds, versions
    /// (filled by `certify audit`; absent in reports made through the library API).
    public var provenance: [String: String]? = nil
}

public struct AttributionAudit: Sendable {
    public enum AttributedModel: String, Sendable, CaseIterable {
        case standard, robust
    }

    /// Levels k (kept fraction).
    public var ks: [Double] = [0.05, 0.1, 0.2, 0.5, 1.0]
    public var seeds: [UInt64] = [0, 1, 2]
    public var learner = MLPLearner()
    public var jobs = 2
    /// The attributed model: a two-hidden-layer MLP trained on clean data.
    public var attributedHidden = [256, 256]
    public var attributedTraining = TrainingConfig(epochs: 6, batchSize: 128, learningRate: 0.05, momentum: 0.9, schedule: .cosine)
    /// ℓ∞ robust training: eps (pixels in [0, 1]), step 0.25·eps, 8 iterations, no random start, as the
    /// synthetic experiments of the code; bounds (0, 1).
    public var robustEps = 0.1
    public var target = AttributionTarget.logit
    /// Which label the attribution differentiates: the true label (the official code's LogitGrad)
    /// or the attributed model's prediction (the NeurIPS wording). With true labels the positions of
    /// the kept coordinates can encode the label itself (see the reproduction notes).
    public var labels = AttributionLabels.trueLabel
    public var modelSeed: UInt64 = 1234
    /// How removed coordinates are filled: the constant training mean (the official code) or ROAD's noisy
    /// linear imputation with noise σ = `roadNoise` (pixels in [0, 1]; ROAD's default 0.01 absolute).
    public var fillKind = FillKind.constant
    public var roadNoise = 0.01
    /// Also retrain on the kept indicators alone (the mask-only control).
    public var maskOnlyControl = false
    /// The model class M retrained for PredPower: the small reference MLP (`learner`) or the attributed
    /// model's own class (its architecture and training recipe, standard training).
    public var learnerClass = LearnerClass.reference

    public enum FillKind: String, Sendable, CaseIterable { case constant, road }
    public enum LearnerClass: String, Sendable, CaseIterable {
        case reference
        /// The attributed model's class (the paper's PredPower is a sup over the model class M).
        case model
    }

    /// The learner used for PredPower.
    public var effectiveLearner: MLPLearner {
        learnerClass == .reference ? learner : MLPLearner(hidden: attributedHidden, training: attributedTraining, selection: learner.selection)
    }

    public init() {}

    public func robustAttack(bounds: (Double, Double)) -> PGDAttack {
        PGDAttack(norm: .linf, eps: robustEps, stepSize: 0.25 * robustEps, iterations: 8, randEps: 0, lower: bounds.0, upper: bounds.1)
    }

    /// Trains the attributed model on (x, y).
    public func trainAttributedModel(_ kind: AttributedModel, x: Tensor, y: [Int], log: (String) -> Void) throws -> MLP {
        var rng = RNG(seed: modelSeed)
        let d = x.count / x.shape[0]
        let model = try MLP(sizes: [d] + attributedHidden + [(y.max() ?? 0) + 1], rng: &rng)
        var cfg = attributedTraining
        if kind == .robust { cfg.adversary = robustAttack(bounds: (x.data.min() ?? 0, x.data.max() ?? 1)) }
        try Trainer.train(model, x: x, y: y, config: cfg, rng: &rng) { e, l in
            log(String(format: "%@ model: epoch %d/%d, training loss %.4f", kind.rawValue, e + 1, cfg.epochs, l))
        }
        return model
    }

    /// Robust accuracy of a model under this audit's attack.
    public func robustAccuracy(_ model: any Classifier, x: Tensor, y: [Int]) throws -> Double {
        var rng = RNG(seed: modelSeed &+ 7)
        let delta = try robustAttack(bounds: (x.data.min() ?? 0, x.data.max() ?? 1)).perturb(model: model, x: x, y: y, rng: &rng)
        return try model.accuracy(x + delta, y)
    }

    /// The full audit of a built-in attribution method. `nullMasks` (test set) enables localization.
    public func run(dataset: String, train: (x: Tensor, y: [Int]), test: (x: Tensor, y: [Int]), testNullMask: Tensor?,
                    model kind: AttributedModel, method: AttributionMethod, log: @escaping @Sendable (String) -> Void) throws -> AuditReport {
        let start = Date()
        let (atr, ate, acc, racc) = try attribute(train: train, test: test, model: kind, method: method, log: log)
        var report = try score(dataset: dataset, train: (train.x, train.y, atr), test: (test.x, test.y, ate),
                               testNullMask: testNullMask, method: method.name, model: kind.rawValue, log: log)
        report.attributedModelAccuracy = acc
        report.attributedModelRobustAccuracy = racc
        report.seconds = Date().timeIntervalSince(start)
        return report
    }

    /// The first half of an audit of a built-in method: trains the attributed model and attributes the
    /// train and test sets. Returns the attributions, the model's test accuracy and robust accuracy.
    public func attribute(train: (x: Tensor, y: [Int]), test: (x: Tensor, y: [Int]), model kind: AttributedModel, method: AttributionMethod,
                          log: @escaping @Sendable (String) -> Void) throws -> (train: Tensor, test: Tensor, accuracy: Double, robustAccuracy: Double) {
        let model = try trainAttributedModel(kind, x: train.x, y: train.y, log: log)
        let acc = try model.accuracy(test.x, test.y)
        let racc = try robustAccuracy(model, x: test.x, y: test.y)
        log(String(format: "%@ model: test accuracy %.4f, ℓ∞(%.3g) robust accuracy %.4f", kind.rawValue, acc, robustEps, racc))
        var rng = RNG(seed: modelSeed &+ 99)
        log("attributing \(train.y.count) training and \(test.y.count) test images with \(method.name) (\(labels.rawValue) labels)")
        let ltr = labels == .trueLabel ? train.y : try model.predict(train.x)
        let lte = labels == .trueLabel ? test.y : try model.predict(test.x)
        let atr = try Attribution.attribute(model: model, x: train.x, y: ltr, method: method, target: target, rng: &rng)
        let ate = try Attribution.attribute(model: model, x: test.x, y: lte, method: method, target: target, rng: &rng)
        return (atr, ate, acc, racc)
    }

    /// Reads a user's attributions (/<split>/attributions) and checks them against the data: the shape
    /// must equal the data's `expectedShape` and every value must be finite.
    public static func readAttributions(_ path: String, split: String, expectedShape: [Int], dataPath: String) throws -> Tensor {
        let f = try File.open(path)
        let object = "/\(split)/attributions"
        guard f.root.isDataset("\(split)/attributions") else {
            throw InputError(file: path, object: object, "missing dataset; expected a float array of shape \(expectedShape) (the data set's /\(split)/images)")
        }
        let ds = try f.dataset("\(split)/attributions")
        let shape = try ds.shape
        guard shape == expectedShape else {
            throw InputError(file: path, object: object, "shape \(shape) does not match /\(split)/images \(expectedShape) of \(dataPath)")
        }
        let dtype = try ds.dtype
        guard dtype.isFloatingPoint || dtype.isInteger else { throw InputError(file: path, object: object, "expected a numeric dataset, found \(dtype)") }
        do { try Budget.require(shape: shape, "the attributions") } catch let e as ShapeError {
            throw InputError(file: path, object: object, e.description)
        }
        let values = try ds.readDoubles()
        if let i = values.firstIndex(where: { !$0.isFinite }) {
            throw InputError(file: path, object: object, "value \(values[i]) at index \(Tensor.unravel(i, shape: shape)); attributions must be finite")
        }
        return Tensor(unchecked: shape, values)
    }

    /// Scores given attributions: localization (when a null mask is given) and DiffROAR.
    public func score(dataset: String, train: (x: Tensor, y: [Int], a: Tensor), test: (x: Tensor, y: [Int], a: Tensor),
                      testNullMask: Tensor?, method: String, model: String, log: @escaping @Sendable (String) -> Void) throws -> AuditReport {
        let start = Date()
        let (_, masking) = maskingScheme(trainX: train.x)
        let points = try DiffROAR.evaluate(train: .init(x: train.x, y: train.y, attributions: train.a),
                                           test: .init(x: test.x, y: test.y, attributions: test.a),
                                           ks: ks, seeds: seeds, masking: masking, maskOnly: maskOnlyControl, learner: effectiveLearner, jobs: jobs, progress: log)
        return try report(dataset: dataset, method: method, model: model, trainX: train.x, testAttributions: test.a, testNullMask: testNullMask,
                          points: points, seconds: Date().timeIntervalSince(start))
    }

    /// The fill of removed coordinates (the mean of the training tensor) and the masking scheme.
    public func maskingScheme(trainX: Tensor) -> (fill: Double, scheme: MaskingScheme) {
        let fill = trainX.data.reduce(0, +) / Double(trainX.count)
        return (fill, fillKind == .constant ? .constant(fill) : .noisyLinear(sigma: roadNoise, fallback: fill, seed: modelSeed &+ 555))
    }

    /// The report of scored attributions from DiffROAR's points: localization (when a null mask is
    /// given) and every setting. `certify audit` and `certify merge` both end here.
    public func report(dataset: String, method: String, model: String, trainX: Tensor, testAttributions: Tensor, testNullMask: Tensor?,
                       points: [DiffROARPoint], seconds: Double) throws -> AuditReport {
        var loc: [LocalizationPoint] = []
        if let mask = testNullMask {
            for k in ks {
                let r = try Localization.measure(attributions: testAttributions, nullMask: mask, k: k)
                loc.append(LocalizationPoint(k: k, nullFraction: r.meanNullFraction, nullMassShare: r.meanNullMassShare))
            }
        }
        let (fill, masking) = maskingScheme(trainX: trainX)
        let learner = effectiveLearner
        let settings: [String: String] = [
            "ks": ks.map { String($0) }.joined(separator: ","), "seeds": seeds.map(String.init).joined(separator: ","),
            "learner": "MLP \(learner.hidden), SGD lr \(learner.training.learningRate) momentum \(learner.training.momentum), batch \(learner.training.batchSize), \(learner.training.epochs) epochs, \(learner.training.schedule), selection \(learner.selection.rawValue)",
            "learner_class": learnerClass == .reference ? "reference (the suite's small MLP)" : "model (the attributed model's architecture and training recipe, standard training)",
            "masking": masking.description, "fill_kind": fillKind.rawValue,
            "mask_only_control": maskOnlyControl ? "yes: the learner retrained on the kept indicators alone" : "no",
            "chance": "majority-class rate of the test labels; a run is flagged when its accuracy ≤ chance + 3·√(chance(1 − chance)/m)",
            "attributed_model": "MLP \(attributedHidden), SGD lr \(attributedTraining.learningRate) momentum \(attributedTraining.momentum), batch \(attributedTraining.batchSize), \(attributedTraining.epochs) epochs; robust: ℓ∞ eps \(robustEps), step 0.25·eps, 8 iterations, no random start",
            "target": target.rawValue, "attribution_labels": labels.rawValue, "fill": "\(fill) (mean of the training tensor)\(fillKind == .road ? "; ROAD fallback only" : "")",
            "tie_break": "|A| descending, index ascending",
        ]
        return AuditReport(dataset: dataset, method: method, model: model, attributedModelAccuracy: nil, attributedModelRobustAccuracy: nil,
                           diffROAR: points, localization: loc, settings: settings, seconds: seconds)
    }
}

extension AuditReport {
    /// A plain-text table: k, DiffROAR mean ± std, the two arms' mean accuracies, localization.
    public func table() -> String {
        let maskOnly = diffROAR.contains { $0.accMaskOnlyTop != nil }
        var lines = ["  k     DiffROAR           acc(top-k kept)  acc(bottom-k kept)" + (maskOnly ? "  mask only (top / bottom)" : "")
                     + (localization.isEmpty ? "" : "  null share of top-k  null mass share")]
        func mean(_ v: [Double]) -> Double { v.reduce(0, +) / Double(Swift.max(v.count, 1)) }
        for (i, p) in diffROAR.enumerated() {
            var line = String(format: "  %-5.2f %+.4f ± %.4f   %.4f           %.4f", p.k, p.mean, p.std, mean(p.accTopKept), mean(p.accBottomKept))
            if let t = p.accMaskOnlyTop, let b = p.accMaskOnlyBottom { line += String(format: "              %.4f / %.4f", mean(t), mean(b)) }
            if i < localization.count { line += String(format: "              %.4f               %.4f", localization[i].nullFraction, localization[i].nullMassShare) }
            if let c = p.chanceRuns, !c.isEmpty { line += "   ! at chance: " + c.joined(separator: ", ") }
            lines.append(line)
        }
        if let c = diffROAR.first?.chance { lines.append(String(format: "  chance (majority-class rate of the test set): %.4f", c)) }
        return lines.joined(separator: "\n")
    }

    /// The DiffROAR curve (mean ± std band over k) as a standalone SVG.
    public func svg(title: String? = nil) -> String {
        let (w, h, l, r, t, b) = (560.0, 360.0, 64.0, 20.0, 40.0, 48.0)
        let pts = diffROAR.sorted { $0.k < $1.k }
        let lo = Swift.min(-0.05, pts.map { $0.mean - $0.std }.min() ?? 0), hi = Swift.max(0.05, pts.map { $0.mean + $0.std }.max() ?? 0)
        let pad = 0.1 * (hi - lo)
        let (ymin, ymax) = (lo - pad, hi + pad)
        func X(_ k: Double) -> Double { l + k * (w - l - r) }
        func Y(_ v: Double) -> Double { t + (ymax - v) / (ymax - ymin) * (h - t - b) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        let heading = title ?? "DiffROAR — \(method), \(model) model, \(dataset)"
        s += "<text x=\"\(w / 2)\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">\(xmlEscape(heading))</text>\n"
        // axes and zero line
        s += "<line x1=\"\(l)\" y1=\"\(h - b)\" x2=\"\(w - r)\" y2=\"\(h - b)\" stroke=\"black\"/>\n<line x1=\"\(l)\" y1=\"\(t)\" x2=\"\(l)\" y2=\"\(h - b)\" stroke=\"black\"/>\n"
        s += "<line x1=\"\(l)\" y1=\"\(Y(0))\" x2=\"\(w - r)\" y2=\"\(Y(0))\" stroke=\"gray\" stroke-dasharray=\"4 3\"/>\n"
        for k in stride(from: 0.0, through: 1.0001, by: 0.2) {
            s += "<line x1=\"\(X(k))\" y1=\"\(h - b)\" x2=\"\(X(k))\" y2=\"\(h - b + 5)\" stroke=\"black\"/><text x=\"\(X(k))\" y=\"\(h - b + 18)\" text-anchor=\"middle\">\(String(format: "%.1f", k))</text>\n"
        }
        for i in 0...4 {
            let v = ymin + Double(i) / 4 * (ymax - ymin)
            s += "<line x1=\"\(l - 5)\" y1=\"\(Y(v))\" x2=\"\(l)\" y2=\"\(Y(v))\" stroke=\"black\"/><text x=\"\(l - 8)\" y=\"\(Y(v) + 4)\" text-anchor=\"end\">\(String(format: "%+.3f", v))</text>\n"
        }
        s += "<text x=\"\((l + w - r) / 2)\" y=\"\(h - 10)\" text-anchor=\"middle\">k (fraction of coordinates kept)</text>\n"
        s += "<text x=\"16\" y=\"\((t + h - b) / 2)\" text-anchor=\"middle\" transform=\"rotate(-90 16 \((t + h - b) / 2))\">DiffROAR(k) = acc(top-k) − acc(bottom-k)</text>\n"
        if !pts.isEmpty {
            let upper = pts.map { "\(X($0.k)),\(Y($0.mean + $0.std))" }, lower = pts.reversed().map { "\(X($0.k)),\(Y($0.mean - $0.std))" }
            s += "<polygon points=\"\((upper + lower).joined(separator: " "))\" fill=\"steelblue\" fill-opacity=\"0.2\"/>\n"
            s += "<polyline points=\"\(pts.map { "\(X($0.k)),\(Y($0.mean))" }.joined(separator: " "))\" fill=\"none\" stroke=\"steelblue\" stroke-width=\"2\"/>\n"
            for p in pts { s += "<circle cx=\"\(X(p.k))\" cy=\"\(Y(p.mean))\" r=\"3.5\" fill=\"white\" stroke=\"steelblue\" stroke-width=\"2\"/>\n" }
        }
        return s + "</svg>\n"
    }
}

func xmlEscape(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
}
