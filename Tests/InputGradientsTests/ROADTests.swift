// DiffROAR's controls (issue 12 §2): the mask-only control, ROAD's noisy linear imputation as the fill,
// the chance flags, the model-class learner, the digits export, and the theorem test's convergence gate.
// The ROAD protocol itself (golden and properties) is certified by the Protocols suite.

import Foundation
import Testing
import Tensor
@testable import InputGradients

/// Images that carry no label information (random linear images a + b·row + c·col) with attributions that
/// encode the label in their *positions*: class 0 ranks the left half first, class 1 the right half. A
/// constant fill lets a learner read the label off the mask; ROAD's imputation reproduces a linear image
/// exactly (up to zero-mean noise), so the mask leaves no trace a class-mean learner can see.
func maskLeakData(n: Int, h: Int = 6, w: Int = 6, rng: inout RNG) -> DiffROAR.AttributedSplit {
    var x: [Double] = [], a: [Double] = [], y: [Int] = []
    for _ in 0..<n {
        let label = rng.int(below: 2)
        y.append(label)
        let (c0, br, bc) = (rng.normal(), rng.normal(), rng.normal())
        for r in 0..<h {
            for c in 0..<w {
                x.append(c0 + br * Double(r) + bc * Double(c))
                a.append(((c < w / 2) == (label == 0) ? 10 : 1) + rng.uniform())
            }
        }
    }
    return .init(x: Tensor(unchecked: [n, h, w], x), y: y, attributions: Tensor(unchecked: [n, h, w], a))
}

@Suite struct DiffROARControls {
    @Test("mask-only control: label-encoding masks predict the label; random attributions stay at chance")
    func maskOnly() throws {
        var rng = RNG(seed: 21)
        let tr = maskLeakData(n: 200, rng: &rng), te = maskLeakData(n: 200, rng: &rng)
        let r = try DiffROAR.evaluate(train: tr, test: te, ks: [0.5], seeds: [0], masking: .constant(0), maskOnly: true, learner: NearestClassMean())
        let mo = try #require(r[0].accMaskOnlyTop)
        #expect(mo[0] > 0.95, "the kept indicator encodes the label: mask-only accuracy \(mo[0])")
        // random attributions: the mask says nothing
        var random = tr, randomTest = te
        random.attributions = rng.normalTensor(tr.x.shape)
        randomTest.attributions = rng.normalTensor(te.x.shape)
        let r2 = try DiffROAR.evaluate(train: random, test: randomTest, ks: [0.5], seeds: [0], masking: .constant(0), maskOnly: true, learner: NearestClassMean())
        let chance = try #require(r2[0].chance)
        #expect(DiffROAR.atChance(try #require(r2[0].accMaskOnlyTop)[0] - 0.05, chance: chance, m: 200), "random masks: \(r2[0].accMaskOnlyTop!)")
    }

    @Test("ROAD hides the mask that a constant fill reveals")
    func roadHidesMask() throws {
        var rng = RNG(seed: 22)
        let tr = maskLeakData(n: 300, rng: &rng), te = maskLeakData(n: 300, rng: &rng)
        let constant = try DiffROAR.evaluate(train: tr, test: te, ks: [0.3], seeds: [0], masking: .constant(5), learner: NearestClassMean())
        let road = try DiffROAR.evaluate(train: tr, test: te, ks: [0.3], seeds: [0],
                                         masking: .noisyLinear(sigma: 0.01, fallback: 0, seed: 5), learner: NearestClassMean())
        #expect(constant[0].accTopKept[0] > 0.8, "constant fill: the learner reads the label off the mask (\(constant[0].accTopKept[0]))")
        let chance = try #require(road[0].chance)
        #expect(road[0].accTopKept[0] < chance + 0.12, "ROAD: \(road[0].accTopKept[0]) against chance \(chance)")
        // and the chance flag lists the ROAD runs that ended at chance
        let flagged = try #require(road[0].chanceRuns)
        #expect(flagged.contains("top seed 0") == DiffROAR.atChance(road[0].accTopKept[0], chance: chance, m: 300), "\(flagged)")
    }

    @Test("runs at chance are flagged, not silently averaged")
    func chanceFlags() throws {
        struct Chance: DiffROARLearner {
            func fitAndScore(trainX: Tensor, trainY: [Int], testX: Tensor, testY: [Int], seed: UInt64) throws -> Double {
                seed == 1 ? 0.5 : 0.9
            }
        }
        var rng = RNG(seed: 23)
        let tr = maskLeakData(n: 100, rng: &rng), te = maskLeakData(n: 100, rng: &rng)
        let r = try DiffROAR.evaluate(train: tr, test: te, ks: [0.5], seeds: [0, 1, 2], masking: .constant(0), learner: Chance())
        let chance = try #require(r[0].chance)
        #expect(chance >= 0.5 && chance < 0.62)
        #expect(r[0].chanceRuns == ["top seed 1", "bottom seed 1"], "\(r[0].chanceRuns ?? [])")
        #expect(!DiffROAR.atChance(0.9, chance: chance, m: 100) && DiffROAR.atChance(chance, chance: chance, m: 100))
    }

    @Test("ROAD fill through the pipeline keeps the kept coordinates and fills the rest smoothly")
    func roadScheme() throws {
        var rng = RNG(seed: 24)
        let x = rng.uniformTensor([3, 8, 7])
        let a = rng.normalTensor([3, 8, 7])
        let orders = try AttributionMasking.priorityOrders(a)
        let m = try AttributionMasking.unmask(x: x, orders: orders, k: 0.2, keep: .top, fill: 0.5)
        let scheme = MaskingScheme.noisyLinear(sigma: 0, fallback: 0.5, seed: 1)
        let out = try scheme.apply(x: x, kept: m.kept, constantMasked: m.masked, stream: 0)
        for j in 0..<x.count where m.kept.data[j] == 1 { #expect(out.data[j] == x.data[j]) }
        #expect(out.data != m.masked.data, "ROAD must not be the constant fill")
        // the noise stream is a function of (seed, stream): reproducible, different across streams
        let noisy = MaskingScheme.noisyLinear(sigma: 0.01, fallback: 0.5, seed: 1)
        let o1 = try noisy.apply(x: x, kept: m.kept, constantMasked: m.masked, stream: 3)
        let o2 = try noisy.apply(x: x, kept: m.kept, constantMasked: m.masked, stream: 3)
        let o3 = try noisy.apply(x: x, kept: m.kept, constantMasked: m.masked, stream: 4)
        #expect(o1.data == o2.data && o1.data != o3.data)
    }

    @Test("the model-class learner is the attributed model's architecture and recipe")
    func modelClassLearner() {
        var a = AttributionAudit()
        a.learnerClass = .model
        #expect(a.effectiveLearner.hidden == a.attributedHidden && a.effectiveLearner.training == a.attributedTraining)
        a.learnerClass = .reference
        #expect(a.effectiveLearner.hidden == a.learner.hidden)
    }

    @Test("the scikit-learn digits export reads as MNIST-format IDX: 1437 + 360 images, 28×28, 10 classes")
    func digitsExport() throws {
        let dir = packageRootPath + "/docs/input_gradients/data/sklearn-digits"
        let tr = try MNISTFormat.load(directory: dir, split: .train), te = try MNISTFormat.load(directory: dir, split: .test)
        #expect(tr.images.shape == [1437, 28, 28] && te.images.shape == [360, 28, 28])
        #expect(Set(tr.labels) == Set(0..<10) && Set(te.labels) == Set(0..<10))
        // 3× replication of 8×8 images, centred: the 2-pixel border is zero and each 3×3 cell is constant
        for i in [0, 700, 1436] {
            let img = Array(tr.images.data[(i * 784)..<((i + 1) * 784)])
            for r in 0..<28 { for c in 0..<28 where r < 2 || r >= 26 || c < 2 || c >= 26 { #expect(img[r * 28 + c] == 0) } }
            for r in 2..<26 { for c in 2..<26 { #expect(img[r * 28 + c] == img[(2 + 3 * ((r - 2) / 3)) * 28 + 2 + 3 * ((c - 2) / 3)]) } }
            #expect(img.contains { $0 > 0.9 }, "a digit reaches full intensity")
        }
    }
}

@Suite struct TheoremGate {
    @Test("TC5s: a non-converged model fails the theorem test (it never passes it)")
    func notConvergedFails() throws {
        let c = try #require(TheoryCases.fast.experiments.first { $0.name == "TC5s" })
        var e = c.experiment
        e.epochs = 1
        let r = try e.run().result
        #expect(!r.converged, "one epoch cannot converge: loss \(r.finalTrainingLoss)")
        #expect(!c.check(r), "the theorem check passed a non-converged model")
        // even with every statistic forced to the theorem's values, no convergence → no pass
        var forced = r
        forced.cleanAccuracy = 1
        forced.statistics = SignalStatistics(pTop: 0, pBottom: 0, signalMass: 2.0 / Double(e.d), relevantMass: 1, meanAbsCos: 0,
                                             relevantCV: 0, signalToRelevantMean: 1, noiseToRelevantMean: 0)
        #expect(!c.check(forced))
        forced.converged = true
        #expect(c.check(forced), "the forced statistics satisfy the theorem once converged")
    }

    @Test("every theory case names whose result it tests")
    func sources() {
        for name in ["TC1", "TC2", "TC3", "TC4", "TC5s", "TC5r", "TC6"] {
            let s = TheoryCases.sources[name] ?? ""
            #expect(s.hasPrefix("paper") || s.hasPrefix("ours"), "\(name): \(s)")
        }
        #expect(TheoryCases.sources["TC5s"]!.contains("Theorem 1"))
        for c in TheoryCases.full.experiments { #expect(c.source == TheoryCases.sources[c.name]) }
    }
}
