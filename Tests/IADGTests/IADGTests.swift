// What the suite says about the IADG paper (protocols/iadg/README.md): each measured consequence of a
// paper/code divergence is recomputed here from the golden inputs through the certified reference.
import Certification
import CertifyMethods
import Foundation
import HDF5
import Ops
import Tensor
import Testing
@testable import IADG

/// One golden case of a protocol, read from golden/iadg/<method>.h5.
func goldenCase(_ method: String, _ name: String) throws -> CaseData {
    let file = try File.open(packageRoot() + "/golden/iadg/\(method).h5")
    return try CaseData.read(file: file, name: name)
}

func run(_ id: String, _ data: CaseData) throws -> [String: Tensor] {
    registerAll()
    return try Registry.shared.method(id).evaluate(data, wrt: []).outputs
}

@Suite struct PaperClaims {
    /// §2b: the code's CSA block is residual and applied twice, so the augmented features keep their own
    /// style and add two sampled ones; the paper's replacement form yields the sampled style.
    @Test func residualCSAAddsStyle() throws {
        let d = try goldenCase("csa", "shader_two_blocks")
        let x = try d.tensor("x")
        let code = try run("iadg.csa", d)
        var paper = d
        paper.params["form"] = Tensor(scalar: 1)
        let repl = try run("iadg.csa", paper)
        let sx = try CSA.statistics(x)
        let nm = code["new_mean"]!, ns = code["new_std"]!
        let (b, c) = (x.shape[0], x.shape[1])
        let m1 = try nm.slice(axis: 0, 0..<1).reshaped([b, c]), m2 = try nm.slice(axis: 0, 1..<2).reshaped([b, c])
        let sy = try CSA.statistics(code["y"]!), sp = try CSA.statistics(repl["y"]!)
        // residual: mean(y) = μ + μ_new1 + μ_new2 exactly; replacement: mean(y) = μ_new2
        let meanErr = zip(sy.mean.data, try (sx.mean + m1 + m2).data).map { Swift.abs($0 - $1) }.max()!
        #expect(meanErr < 1e-12)
        let offCode = zip(sy.mean.data, m2.data).map { Swift.abs($0 - $1) }.max()!
        let offPaper = zip(sp.mean.data, m2.data).map { Swift.abs($0 - $1) }.max()!
        #expect(offCode > 4.0 && offCode < 4.1, "max |mean(y) − μ_new₂| under the residual form: \(offCode)")
        #expect(offPaper < 1e-12)
        // std: replacement gives σ_new2·√(v/(v+ε)); residual multiplies std(x) by A₁·A₂ ≥ 1 (here 1.73…5.96)
        let s2 = try ns.slice(axis: 0, 1..<2).reshaped([b, c])
        let stdPaper = zip(sp.variance.data.map { $0.squareRoot() }, s2.data).map { Swift.abs($0 - $1) }.max()!
        #expect(stdPaper < 1e-4)
        let ratios = zip(sy.variance.data, sx.variance.data).map { ($0 / $1).squareRoot() }
        #expect(ratios.min()! > 1.7 && ratios.max()! < 6.0, "std(y)/std(x) in [\(ratios.min()!), \(ratios.max()!)]")
    }

    /// §3c: the never-reset accumulator and the variance statistic change which entries are whitened.
    @Test func accumulatorAndStatisticChangeMasks() throws {
        func masks(_ name: String) throws -> [String: Tensor] { try run("iadg.aiaw", try goldenCase("aiaw", name)) }
        let base = try masks("three_epochs_accumulator"), per = try masks("three_epochs_per_epoch"), std = try masks("three_epochs_paper_std")
        func diff(_ a: Tensor, _ b: Tensor, epoch e: Int) throws -> Int {
            let x = try a.slice(axis: 0, e..<(e + 1)), y = try b.slice(axis: 0, e..<(e + 1))
            return zip(x.data, y.data).filter { $0 != $1 }.count / 2
        }
        let realPer = try (0..<3).map { try diff(base["epoch_masks_real"]!, per["epoch_masks_real"]!, epoch: $0) }
        let fakePer = try (0..<3).map { try diff(base["epoch_masks_fake"]!, per["epoch_masks_fake"]!, epoch: $0) }
        let realStd = try (0..<3).map { try diff(base["epoch_masks_real"]!, std["epoch_masks_real"]!, epoch: $0) }
        let fakeStd = try (0..<3).map { try diff(base["epoch_masks_fake"]!, std["epoch_masks_fake"]!, epoch: $0) }
        #expect(realPer == [0, 2, 1] && fakePer == [0, 1, 0], "per-epoch reset: \(realPer) of 7, \(fakePer) of 2")
        #expect(realStd == [1, 0, 0] && fakeStd == [0, 0, 1], "paper std: \(realStd) of 7, \(fakeStd) of 2")
    }

    /// §3d: with an odd batch the code divides the real half by the fake half's size.
    @Test func fakeHalfDivisor() throws {
        let d = try goldenCase("aiaw", "odd_batch")
        var own = d
        own.params["divisor"] = Tensor(scalar: 1)
        let a = try run("iadg.aiaw", d), b = try run("iadg.aiaw", own)
        let ratio = b["loss"]!.data[0] / a["loss"]!.data[0]
        #expect(Swift.abs(ratio - 1.1860991562062957) < 1e-12, "loss(own half)/loss(code) = \(ratio)")
        // only the real part changes, by 3/2 (2 reals, 3 fakes): loss_own − loss_code = ½·L_real,code per feature set
        let mr = a["mask_real"]!
        let c = mr.shape[0]
        func realPart(_ f: Tensor) throws -> Double {
            let g = try AIAW.gram(f, eps: 1e-5)
            var s = 0.0
            for b in 0..<2 { for i in 0..<(c * c) { s += Swift.abs(g.data[b * c * c + i]) * mr.data[i] } }
            return 0.5 * s / mr.sumAll / 3
        }
        let lr = try realPart(d.tensor("f_org")) + realPart(d.tensor("f_aug"))
        #expect(Swift.abs((b["loss"]!.data[0] - a["loss"]!.data[0]) - 0.5 * lr) < 1e-12)
    }

    /// §5: perfectly separated scores give AUC 1 and EER 0 but HTER = 1/(2·N_real).
    @Test func separatedScoresHTERFloor() throws {
        let out = try run("iadg.metrics", try goldenCase("metrics", "separated"))
        #expect(out["auc"]!.data[0] == 1 && out["eer"]!.data[0] == 0)
        #expect(out["hter"]!.data[0] == 1.0 / 24)
    }

    /// §5: on the first ROC segment both threshold conventions exceed max(score), so HTER is the same;
    /// only Thre differs. Checked on many random score sets with real/fake ties at the top.
    @Test func firstThresholdConventionsGiveTheSameHTER() throws {
        var rng = RNG(seed: 2023)
        var firstSegment = 0
        for _ in 0..<400 {
            let n = 4 + rng.int(below: 40)
            var labels = (0..<n).map { _ in rng.int(below: 2) }
            labels[0] = 0
            labels[1] = 1
            let top = 1 + rng.int(below: 4)
            let scores = labels.enumerated().map { i, y in i < top + 1 ? 2.0 : ((rng.normal() + (y == 0 ? 0.5 : 0)) * 4).rounded() / 4 }
            let a = try FASMetric.evaluate(labels: labels, scores: scores, firstThreshold: .officialCode)
            let b = try FASMetric.evaluate(labels: labels, scores: scores, firstThreshold: .sklearn12)
            #expect(a.hter == b.hter && a.eer == b.eer && a.auc == b.auc)
            if a.threshold != b.threshold {
                firstSegment += 1
                #expect(a.threshold == .infinity && b.threshold > scores.max()!)
            }
        }
        #expect(firstSegment > 20, "only \(firstSegment) score sets put the EER on the first segment")
    }

    /// §6: k_r = 442 and k_s = 88 at C = 384; the golden C = 384 masks have exactly those counts.
    @Test func defaultMaskSizes() throws {
        #expect(AIAW.numSensitive(ratio: 3.0 / 1000, dim: 384) == 442)
        #expect(AIAW.numSensitive(ratio: 0.6 / 1000, dim: 384) == 88)
        let out = try run("iadg.aiaw", try goldenCase("aiaw", "default_ratios_c384"))
        #expect(out["mask_real"]!.sumAll == 442 && out["mask_fake"]!.sumAll == 88)
    }

    /// §2a: FPS's 1e10 initial distance caps huge squared distances; the selection degenerates to index order.
    @Test func fpsDistanceCap() throws {
        let out = try run("iadg.fps", try goldenCase("fps", "beyond_1e10"))
        #expect(out["indices"]!.data == [3, 0, 1, 2])
    }

    /// §2b says the α = 1/L draws are "almost one-hot". They are not: as L grows, Dir(1/L, …, 1/L) tends
    /// to the Poisson–Dirichlet(1) law, whose largest weight exceeds x ≥ ½ with probability ln(1/x):
    /// 69% of the draws have a weight above ½ and only 10.5% one above 0.9 (measured on the suite's RNG).
    @Test func dirichletLargestWeightLaw() {
        var rng = RNG(seed: 7)
        let n = 4000
        for l in [64, 128, 256] {
            let w = CSA.drawWeights(&rng, batch: n, styles: l)
            let maxes = (0..<n).map { i in w.data[(i * l)..<((i + 1) * l)].max()! }
            for x in [0.5, 0.9] {
                let frac = Double(maxes.filter { $0 > x }.count) / Double(n)
                #expect(Swift.abs(frac - Foundation.log(1 / x)) < 0.035, "L = \(l): P(max > \(x)) = \(frac), PD(1) gives \(Foundation.log(1 / x))")
            }
        }
    }

    /// The IW baseline whitens every off-diagonal entry: on the same training features its loss differs
    /// from AIAW's selective one.
    @Test func iwBaselineVersusAIAW() throws {
        let a = try run("iadg.aiaw", try goldenCase("aiaw", "two_epochs"))
        let b = try run("iadg.aiaw", try goldenCase("aiaw", "iw_baseline_same_data"))
        #expect(b["num_sensitive_real"]!.data[0] == 28 && a["num_sensitive_real"]!.data[0] == 6)
        #expect(a["loss"]!.data[0] != b["loss"]!.data[0])
    }
}

/// Issue 10 §2: iadg.aiaw takes the masks directly (mask_mode 2), so users testing their own AIAW loss
/// need not construct statistics whose top-k lands on their mask.
@Suite struct AIAWGivenMasks {
    /// The selective masks of a golden case, given directly, reproduce that case's losses and gradients.
    @Test func givenMasksReproduceTheSelectiveCase() throws {
        registerAll()
        let set = try ProtocolSet.load(root: packageRoot())
        let p = try set.protocolFor("iadg.aiaw")
        let file = try File.open(set.goldenPath(p))
        for name in ["two_epochs", "odd_batch_own_half"] {
            let golden = try p.read(file: file, case: name)
            var d = golden
            d.inputs["stat_org"] = nil
            d.inputs["stat_aug"] = nil
            d.params["mask_mode"] = Tensor(scalar: 2)
            d.params["mask_real"] = golden.outputs["mask_real"]
            d.params["mask_fake"] = golden.outputs["mask_fake"]
            let r = try Registry.shared.method(p.id).evaluate(d, wrt: p.grads)
            for k in ["loss_org", "loss_aug", "loss", "mask_real", "num_sensitive_fake"] {
                #expect(r.outputs[k]?.data == golden.outputs[k]?.data || Swift.abs(r.outputs[k]!.data[0] - golden.outputs[k]!.data[0]) <= 1e-12,
                        "\(name)/\(k)")
            }
            for k in p.grads {
                let (a, e) = (try #require(r.grads[k]), try #require(golden.grads[k]))
                #expect(zip(a.data, e.data).allSatisfy { Swift.abs($0 - $1) <= 1e-12 + 1e-10 * Swift.abs($1) }, "\(name)/grads/\(k)")
            }
        }
    }

    @Test func givenMasksMustBeZeroOne() throws {
        registerAll()
        let set = try ProtocolSet.load(root: packageRoot())
        let p = try set.protocolFor("iadg.aiaw")
        var d = try p.read(file: try File.open(set.goldenPath(p)), case: "given_masks", sections: ["inputs", "params"])
        var m = try #require(d.params["mask_fake"])
        m.data[3] = 0.5
        d.params["mask_fake"] = m
        let e = try #require(throws: InputError.self) { _ = try Registry.shared.method(p.id).evaluate(d, wrt: []) }
        #expect("\(e)".contains("mask_fake must hold 0/1 entries"), "\(e)")
        d.params["mask_fake"] = nil
        let e2 = try #require(throws: InputError.self) { _ = try Registry.shared.method(p.id).evaluate(d, wrt: []) }
        #expect(e2.object == "/given_masks/params/mask_fake", "\(e2)")
    }
}
