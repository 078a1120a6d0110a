// Long pipelines: the training procedure of train.py on a tiny network (epoch 1 without shade/whitening,
// then FPS prototypes → mask statistics → training with the full loss), and the evaluation protocol.
import Certification
import Foundation
import Ops
import Tensor
import Testing
@testable import IADG

@Suite struct Pipelines {
    static let widths = IADGWidths(inc: 2, mid: 4, dkgOut: 6, blockOut: 4, cls: [4, 4, 4], dep: [4, 2])

    /// Three epochs of the schedule with Adam; every quantity stays finite, masks have k entries, the
    /// prototypes are rows of the style statistics, and training lowers the loss on a fixed batch.
    @Test func trainingSchedule() throws {
        var rng = RNG(seed: 11)
        let w = Pipelines.widths, f = w.featureChannels
        let params = randomIADGParameters(&rng, w).map { Parameter($0.key, $0.value) }.sorted { $0.name < $1.name }
        let adam = try Adam([ParameterGroup(params: params, lr: 1e-3, weightDecay: 1e-5)])
        // two mixed batches of 2 reals + 2 fakes at 64×64; fakes have a shifted texture
        let batches: [(x: Tensor, labels: [Int])] = (0..<2).map { _ in
            let real = rng.uniformTensor([2, 3, 64, 64], -1, 1)
            let fake = try! rng.uniformTensor([2, 3, 64, 64], -1, 1) * 0.5 + 0.3
            return (try! Tensor.concatenate([real, fake], axis: 0), [0, 0, 1, 1])
        }
        let depth = try Tensor.concatenate([rng.uniformTensor([2, 8, 8]), Tensor(zeros: [2, 8, 8])], axis: 0)
        var running = (mean: Tensor(zeros: [f]), variance: Tensor(ones: [f]))
        var stReal = AIAW.CovarianceStatistics(dim: f, ratio: 0.1), stFake = AIAW.CovarianceStatistics(dim: f, ratio: 0.02)
        func network(_ t: Tape) -> (IADGNetwork, [String: Var]) {
            var leaves: [String: Var] = [:]
            for p in params { leaves[p.name] = p.leaf(on: t) }
            return (IADGNetwork(widths: w) { leaves[$0]! }, leaves)
        }
        func step(_ batch: (x: Tensor, labels: [Int]), shade: Bool, masks: (Tensor, Tensor)?, protos: StylePrototypes?,
                  update: Bool) throws -> Double {
            let t = Tape()
            let (net, leaves) = network(t)
            let loss: Var
            if shade, let protos, let masks {
                let s = try net.trainingStep(x: t.constant(batch.x), labels: batch.labels, depthTarget: depth,
                                             csaWeights: IADGTraining.drawCSAWeights(&rng, batch: 4, styles: protos.count),
                                             prototypes: protos, maskReal: masks.0, maskFake: masks.1,
                                             runningMean: running.mean, runningVar: running.variance)
                if update { running = (s.runningMean, s.runningVar) }
                loss = s.loss
            } else {
                let feat = try net.features(t.constant(batch.x))
                let d = try net.depth(feat)
                loss = try crossEntropy(try net.classifier(feat), target: Tensor(batch.labels.map(Double.init)))
                    + (try mseLoss(try reshape(d, [4, 8, 8]), target: depth)) * 0.1
            }
            let value = loss.value.data[0]
            #expect(value.isFinite)
            if update {
                let names = params.map(\.name)
                let g = try t.gradients(of: loss, wrt: names.map { leaves[$0]! })
                try adam.step(grads: g)
            }
            return value
        }
        var protos: StylePrototypes?
        var masks: (Tensor, Tensor)?
        var first = 0.0, last = 0.0
        for epoch in 1...3 {
            let shade = epoch >= 2
            if shade {
                // validate_for_prototype: catfeat of every real and every fake image (eval; no BN involved)
                let t = Tape()
                let (net, _) = network(t)
                let feats = try batches.map { try net.features(t.constant($0.x)).value }
                let real = try Tensor.concatenate(feats.map { try $0.slice(axis: 0, 0..<2) }, axis: 0)
                let fake = try Tensor.concatenate(feats.map { try $0.slice(axis: 0, 2..<4) }, axis: 0)
                protos = try IADGTraining.selectPrototypes(realFeatures: real, fakeFeatures: fake, count: 3, rng: &rng)
                let styles = try FPS.styleStatistics(real)
                for r in 0..<3 {
                    let row = Array(protos!.meanPos.data[(r * f)..<((r + 1) * f)])
                    #expect((0..<4).contains { i in Array(styles.data[(i * 2 * f)..<(i * 2 * f + f)]) == row })
                }
                let m = try IADGTraining.statisticsEpoch(network: net, batches: batches, prototypes: protos!, real: &stReal, fake: &stFake,
                                                         runningMean: running.mean, runningVar: running.variance, rng: &rng)
                #expect(m.real.sumAll == Double(AIAW.numSensitive(ratio: 0.1, dim: f)))
                #expect(m.fake.sumAll == Double(AIAW.numSensitive(ratio: 0.02, dim: f)))
                #expect(stReal.count == 2 * (epoch - 1), "the accumulator keeps counting across epochs")
                masks = (m.real, m.fake)
            }
            for b in batches { _ = try step(b, shade: shade, masks: masks, protos: protos, update: true) }
            if epoch == 2 { first = try step(batches[0], shade: false, masks: nil, protos: nil, update: false) }
            if epoch == 3 { last = try step(batches[0], shade: false, masks: nil, protos: nil, update: false) }
        }
        #expect(last < first, "org-branch loss on batch 0: \(first) → \(last)")
    }

    /// test.py's evaluation: frame scores from the heads, grouped into videos, then cal_metrics.
    @Test func evaluationProtocol() throws {
        var rng = RNG(seed: 5)
        let w = Pipelines.widths
        let p = randomIADGParameters(&rng, w)
        let t = Tape()
        let net = IADGNetwork(widths: w) { t.constant(p[$0]!) }
        let x = rng.uniformTensor([6, 3, 64, 64], -1, 1)
        let feat = try net.features(t.constant(x))
        let scores = try IADGNetwork.scores(logits: try net.classifier(feat).value, depth: try net.depth(feat).value)
        #expect(scores.data.allSatisfy { $0 >= 0 && $0 < 1.5 })
        let v = try FASMetric.videoLevel(scores: scores.data, labels: [0, 0, 1, 1, 0, 1], videos: [1, 1, 2, 2, 3, 4])
        #expect(v.videos == [1, 2, 3, 4] && v.labels == [0, 1, 0, 1])
        #expect(v.scores[0] == (scores.data[0] + scores.data[1]) / 2)
        let m = try FASMetric.evaluate(labels: v.labels, scores: v.scores)
        #expect(m.hter >= 0 && m.hter <= 1 && m.auc >= 0 && m.auc <= 1)
    }
}
