// Bad inputs to the IADG reference: every problem is a thrown error naming what was expected, never a trap.
import Certification
import CertifyMethods
import Foundation
import Ops
import Tensor
import Testing
@testable import IADG

private func expectShapeError(_ op: String, mentions: [String] = [], _ body: () throws -> Void) {
    let e = #expect(throws: ShapeError.self) { try body() }
    guard let e else { return }
    #expect(e.op == op, "error names \(e.op), expected \(op)")
    for m in mentions { #expect(e.message.contains(m), "message '\(e.message)' does not mention \(m)") }
}

@Suite struct MetricsBadInput {
    @Test func singleClass() {
        expectShapeError("cal_metrics", mentions: ["both real (0) and fake (1)"]) {
            _ = try FASMetric.evaluate(labels: [0, 0, 0], scores: [0.1, 0.2, 0.3])
        }
    }
    @Test func labelsOutsideZeroOne() {
        expectShapeError("cal_metrics", mentions: ["0 (real) or 1 (fake)"]) {
            _ = try FASMetric.evaluate(labels: [0, 2], scores: [0.1, 0.2])
        }
    }
    @Test func nonFiniteScore() {
        expectShapeError("roc_curve", mentions: ["score 1", "finite"]) {
            _ = try FASMetric.rocCurve(labels: [0, 1], scores: [0.1, .nan])
        }
    }
    @Test func lengthMismatch() {
        expectShapeError("roc_curve", mentions: ["labels (2)", "scores (3)"]) {
            _ = try FASMetric.rocCurve(labels: [0, 1], scores: [0.1, 0.2, 0.3])
        }
    }
    @Test func videoWithMixedLabels() {
        expectShapeError("video_level", mentions: ["video 7"]) {
            _ = try FASMetric.videoLevel(scores: [0.1, 0.2], labels: [0, 1], videos: [7, 7])
        }
    }
    @Test func brentqWithoutSignChange() {
        #expect(throws: BrentError.self) { _ = try FASMetric.brentq({ $0 + 1 }, 0, 1) }
        #expect(throws: BrentError.self) { _ = try FASMetric.brentq({ _ in .nan }, 0, 1) }
    }
    @Test func interp1dOutOfRange() {
        expectShapeError("interp1d", mentions: ["outside the interpolation range"]) {
            _ = try FASMetric.interp1d(1.5, [0, 1], [0, 1])
        }
    }
}

@Suite struct MethodBadInput {
    let tape = Tape()

    @Test func aiawMaskShape() {
        let f = tape.leaf(Tensor(ones: [2, 3, 2, 2]))
        expectShapeError("aiaw.loss", mentions: ["mask_real", "[3, 3]"]) {
            _ = try AIAW.loss(f, maskReal: Tensor(ones: [2, 2]), maskFake: AIAW.upperTriangle(3))
        }
    }
    @Test func aiawEmptyMask() {
        let f = tape.leaf(Tensor(ones: [2, 3, 2, 2]))
        expectShapeError("aiaw.loss", mentions: ["selects no entry"]) {
            _ = try AIAW.loss(f, maskReal: Tensor(zeros: [3, 3]), maskFake: AIAW.upperTriangle(3))
        }
    }
    @Test func aiawSinglePixel() {
        let f = tape.leaf(Tensor(ones: [2, 3, 1, 1]))
        expectShapeError("aiaw.loss", mentions: ["HW − 1"]) {
            _ = try AIAW.loss(f, maskReal: AIAW.upperTriangle(3), maskFake: AIAW.upperTriangle(3))
        }
    }
    @Test func topkOutOfRange() {
        expectShapeError("aiaw.topk", mentions: ["k = 0"]) { _ = try AIAW.topkMask(Tensor(ones: [3, 3]), k: 0) }
    }
    @Test func setMaskBeforeStatistics() {
        var s = AIAW.CovarianceStatistics(dim: 3, ratio: 0.5)
        expectShapeError("aiaw.statistics", mentions: ["no statistics"]) { try s.setMask() }
    }
    @Test func dkgOddChannels() {
        var rng = RNG(seed: 1)
        let (p, _) = randomDKG(&rng, tape, c: 4, p: 2, k: 3)
        expectShapeError("dkg", mentions: ["even"]) { _ = try DKG.forward(tape.leaf(Tensor(ones: [1, 3, 4, 4])), p) }
    }
    @Test func dkgKernelSizeMismatch() {
        var rng = RNG(seed: 1)
        let (p, _) = randomDKG(&rng, tape, c: 4, p: 2, k: 3)
        expectShapeError("dkg", mentions: ["k = 5"]) { _ = try DKG.forward(tape.leaf(Tensor(ones: [1, 4, 6, 6])), p, k: 5, padding: 2) }
    }
    @Test func csaWeightsShape() throws {
        let p = try StylePrototypes(meanPos: Tensor(ones: [2, 3]), stdPos: Tensor(ones: [2, 3]), meanNeg: Tensor(ones: [2, 3]), stdNeg: Tensor(ones: [2, 3]))
        expectShapeError("csa", mentions: ["[B, L] = [2, 2]"]) {
            _ = try CSA.assemble(weights: Tensor(ones: [2, 5]), labels: [0, 1], prototypes: p)
        }
    }
    @Test func csaPrototypeShapes() {
        expectShapeError("csa", mentions: ["[L, C]"]) {
            _ = try StylePrototypes(meanPos: Tensor(ones: [2, 3]), stdPos: Tensor(ones: [2, 4]), meanNeg: Tensor(ones: [2, 3]), stdNeg: Tensor(ones: [2, 3]))
        }
    }
    @Test func fpsStartOutOfRange() {
        expectShapeError("fps", mentions: ["start index 5"]) { _ = try FPS.sample(points: Tensor(ones: [3, 2]), count: 2, start: 5) }
    }
    @Test func networkWidths() {
        expectShapeError("iadg.network", mentions: ["9 values"]) { _ = try IADGWidths([1, 2, 3]) }
    }
}

@Suite struct RegistryBadInput {
    /// A case without a required input fails with the object named.
    @Test func missingInputNamesTheObject() throws {
        registerAll()
        var data = CaseData(name: "c", source: "mine.h5")
        data.inputs["scores"] = Tensor([0.1, 0.9])
        let m = try Registry.shared.method("iadg.metrics")
        let e = #expect(throws: InputError.self) { _ = try m.evaluate(data, wrt: []) }
        #expect(e?.object == "/c/inputs/labels")
    }
    @Test func invalidOption() throws {
        registerAll()
        var data = CaseData(name: "c", source: "mine.h5")
        data.inputs["scores"] = Tensor([0.1, 0.9])
        data.inputs["labels"] = Tensor([0, 1])
        data.params["first_threshold"] = Tensor(scalar: 7)
        let m = try Registry.shared.method("iadg.metrics")
        // Through the registry an op's error also names the file and the case.
        let e = #expect(throws: InputError.self) { _ = try m.evaluate(data, wrt: []) }
        #expect(e?.file == "mine.h5" && e?.description.contains("first_threshold must be 0 (+inf) or 1 (max+1), found 7") == true)
    }
}
