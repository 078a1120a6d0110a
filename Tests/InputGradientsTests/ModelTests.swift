// Models, training and the audit pipeline on small data: determinism, the CNN, adversarial training
// with both norms, and bad input.

import Certification
import Foundation
import HDF5
import Testing
import Tensor
@testable import InputGradients

@Suite struct ModelsAndTraining {
    @Test func trainingIsDeterministicPerSeed() throws {
        var r0 = RNG(seed: 9)
        let data = SyntheticData.signalCoordinate(n: 300, d: 6, rng: &r0)
        func trained() throws -> [Tensor] {
            var rng = RNG(seed: 1)
            let m = try MLP(sizes: [6, 16, 8, 2], rng: &rng)
            try Trainer.train(m, x: data.x, y: data.y, config: TrainingConfig(epochs: 3, batchSize: 32, learningRate: 0.1, momentum: 0.9), rng: &rng)
            return m.parameters.map(\.value)
        }
        #expect(try trained() == trained())
    }

    @Test func pytorchDefaultInitBounds() throws {
        var rng = RNG(seed: 2)
        let m = try MLP(sizes: [100, 30, 3], rng: &rng)
        #expect(m.parameters[0].value.data.allSatisfy { Swift.abs($0) <= 0.1 } && m.parameters[1].value.data.allSatisfy { Swift.abs($0) <= 0.1 })
        #expect(m.parameters[2].value.data.allSatisfy { Swift.abs($0) <= 1 / 30.0.squareRoot() })
        #expect((m.parameters[0].value.data.map { Swift.abs($0) }.max() ?? 0) > 0.09, "the full range U(−1/√fan_in, 1/√fan_in) is used")
    }

    @Test func smallCNNLearnsAndAttributes() throws {
        var rng = RNG(seed: 3)
        let src = syntheticTwoClassSource(n: 200, rows: 8, cols: 8, rng: &rng)
        let cnn = try SmallCNN(height: 8, width: 8, channels: (4, 4), classes: 2, rng: &rng)
        try Trainer.train(cnn, x: src.images, y: src.labels, config: TrainingConfig(epochs: 5, batchSize: 20, learningRate: 0.05, momentum: 0.9), rng: &rng)
        #expect(try cnn.accuracy(src.images, src.labels) > 0.95)
        let g = try Attribution.inputGradient(model: cnn, x: src.images.slice(axis: 0, 0..<5), y: Array(src.labels[0..<5]), target: .logit)
        #expect(g.shape == [5, 8, 8])
        // the class evidence is in the halves; the gradient must not be identically zero
        #expect(g.data.contains { $0 != 0 })
    }

    @Test(arguments: PGDAttack.Norm.allCases)
    func adversarialTrainingRaisesRobustAccuracy(norm: PGDAttack.Norm) throws {
        var r0 = RNG(seed: 4)
        let train = SyntheticData.signalCoordinate(n: 1000, d: 4, rng: &r0), test = SyntheticData.signalCoordinate(n: 400, d: 4, rng: &r0)
        let eps = norm == .linf ? 0.45 : 0.7
        let attack = PGDAttack(norm: norm, eps: eps, stepSize: 0.25 * eps, iterations: 8, randEps: 0, lower: -1, upper: 1)
        func robustAccuracy(adversarial: Bool) throws -> Double {
            var rng = RNG(seed: 5)
            let m = try MLP(sizes: [4, 100, 2], rng: &rng)
            try Trainer.train(m, x: train.x, y: train.y,
                              config: TrainingConfig(epochs: 30, batchSize: 25, learningRate: 0.2, adversary: adversarial ? attack : nil), rng: &rng)
            return try m.accuracy(test.x + attack.perturb(model: m, x: test.x, y: test.y, rng: &rng), test.y)
        }
        let (std, adv) = (try robustAccuracy(adversarial: false), try robustAccuracy(adversarial: true))
        #expect(adv > std + 0.2, "\(norm): robust accuracy standard \(std), adversarially trained \(adv)")
    }

    @Test func badTrainingInput() throws {
        var rng = RNG(seed: 6)
        let m = try MLP(sizes: [3, 4, 2], rng: &rng)
        #expect(throws: ShapeError.self) { try Trainer.train(m, x: Tensor(zeros: [5, 3]), y: [0, 1], config: .init(epochs: 1, batchSize: 2, learningRate: 0.1), rng: &rng) }
        #expect(throws: ShapeError.self) { try Trainer.train(m, x: Tensor(zeros: [2, 3]), y: [0, 2], config: .init(epochs: 1, batchSize: 2, learningRate: 0.1), rng: &rng) }
        #expect(throws: ShapeError.self) { try m.logits(Tensor(zeros: [2, 4])) }
        #expect(throws: ShapeError.self) { try Attribution.inputGradient(model: m, x: Tensor(zeros: [2, 3]), y: [0, 5], target: .logit) }
        #expect(throws: ShapeError.self) { try Attribution.integratedGradients(model: m, x: Tensor(zeros: [2, 3]), y: [0, 1], target: .logit, steps: 0) }
        #expect(throws: ShapeError.self) {
            try PGDAttack(norm: .linf, eps: -1, stepSize: 0.1, iterations: 1).perturb(model: m, x: Tensor(zeros: [2, 3]), y: [0, 1], rng: &rng)
        }
    }
}

@Suite struct DiffROARPipeline {
    @Test func mlpLearnerPipelineAndReport() throws {
        var rng = RNG(seed: 7)
        let tr = diffROARToyData(n: 200, d: 12, signal: 3, rng: &rng), te = diffROARToyData(n: 100, d: 12, signal: 3, rng: &rng)
        var audit = AttributionAudit()
        audit.ks = [0.25, 1]
        audit.seeds = [0, 1]
        audit.learner = MLPLearner(hidden: [8], training: TrainingConfig(epochs: 5, batchSize: 20, learningRate: 0.1, momentum: 0.9))
        let report = try audit.score(dataset: "toy", train: (tr.x, tr.y, tr.signalMask), test: (te.x, te.y, te.signalMask), testNullMask: nil,
                                     method: "oracle", model: "none", log: { _ in })
        #expect(report.diffROAR.count == 2)
        #expect(report.diffROAR[0].mean > 0.2, "oracle attributions: \(report.table())")
        #expect(report.diffROAR[1].mean == 0, "k = 1: identical arms")
        // same seeds, jobs = 1 or 2: identical results
        audit.jobs = 1
        let again = try audit.score(dataset: "toy", train: (tr.x, tr.y, tr.signalMask), test: (te.x, te.y, te.signalMask), testNullMask: nil,
                                    method: "oracle", model: "none", log: { _ in })
        #expect(again.diffROAR.map(\.accTopKept) == report.diffROAR.map(\.accTopKept))
        #expect(report.svg().contains("<polyline"))
    }

    @Test func bestOnEvaluationIsNeverBelowFinal() throws {
        var rng = RNG(seed: 8)
        let tr = diffROARToyData(n: 150, d: 10, signal: 2, rng: &rng), te = diffROARToyData(n: 100, d: 10, signal: 2, rng: &rng)
        var l = MLPLearner(hidden: [8], training: TrainingConfig(epochs: 6, batchSize: 15, learningRate: 0.3, momentum: 0.9))
        let final = try l.fitAndScore(trainX: tr.x, trainY: tr.y, testX: te.x, testY: te.y, seed: 3)
        l.selection = .bestOnEvaluation
        let best = try l.fitAndScore(trainX: tr.x, trainY: tr.y, testX: te.x, testY: te.y, seed: 3)
        #expect(best >= final)
    }

    @Test func userAttributionChecks() throws {
        let dir = tempDir("attr")
        let f = try File.create(dir + "/a.h5")
        try f.root.write("test/attributions", .float64([1, .nan, 3, 4]), shape: [2, 2])
        try f.root.write("train/attributions", .float64([1, 2, 3]), shape: [3])
        try f.flush()
        expectInputError("must be finite") { _ = try AttributionAudit.readAttributions(dir + "/a.h5", split: "test", expectedShape: [2, 2], dataPath: "d.h5") }
        expectInputError("does not match") { _ = try AttributionAudit.readAttributions(dir + "/a.h5", split: "train", expectedShape: [3, 1], dataPath: "d.h5") }
        expectInputError("missing dataset") { _ = try AttributionAudit.readAttributions(dir + "/a.h5", split: "val", expectedShape: [3], dataPath: "d.h5") }
    }
}
