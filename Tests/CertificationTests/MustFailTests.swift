// The certification must be able to fail: deliberately broken implementations are caught by the
// golden comparison, the gradient check and the property checks.

import Certification
import CertifyMethods
import Foundation
import Ops
import Tensor
import Testing

@Suite struct MustFail {
    func certifyIsolated(_ id: String, _ broken: Method) throws -> ProtocolReport {
        Certifier.certify(try protocolSet.protocolFor(id), in: protocolSet, implementation: broken)
    }

    @Test func wrongForwardFailsTheGolden() throws {
        // softmax without the max shift is still exact here; scale the output instead.
        let broken = Method("core.softmax") { ctx in ["y": try softmax(ctx.v("x"), axis: ctx.int("axis")) * (1 + 1e-9)] }
        let r = try certifyIsolated("core.softmax", broken)
        #expect(!r.passed)
        #expect(r.failures.contains { $0.kind == .golden })
    }

    @Test func wrongBackwardFailsGoldenGradsAndGradcheck() throws {
        // Correct forward, VJP that forgets the −Σ g·y term.
        let broken = Method("core.softmax") { ctx in
            let x = try ctx.v("x")
            let axis = try ctx.int("axis")
            let y = try x.value.softmax(axis: axis)
            return ["y": ctx.tape.record(y, parents: [x]) { g in [try y * g] }]
        }
        let r = try certifyIsolated("core.softmax", broken)
        #expect(r.failures.contains { $0.kind == .golden && $0.name.contains("grads") })
        let gc = r.failures.filter { $0.kind == .gradcheck }
        #expect(!gc.isEmpty)
        #expect(gc.contains { $0.message.contains("output 'y'") && $0.message.contains("input 'x'") })
    }

    @Test func missingPropertyImplementationFails() throws {
        let broken = Method("core.matmul") { ctx in ["c": try matmul(ctx.v("a"), ctx.v("b"))] }
        let r = try certifyIsolated("core.matmul", broken)
        #expect(r.failures.contains { $0.kind == .property && $0.message.contains("not implemented") })
    }

    @Test func falsePropertyFails() {
        let p = Property("always_positive") { rng in try require(rng.normal() > 0, "drew a negative number") }
        #expect(!Certifier.runProperty(p, protocolID: "x", trials: 20).passed)
    }
}

@Suite struct ReportDetails {
    /// ULP distances count in the compared dtype's units, and are omitted for integer data.
    @Test func ulpUnits() {
        let ints = Compare.arrays(name: "i", actual: [1, 2], actualShape: [2], actualDType: .int64,
                                  expected: [1, 3], expectedShape: [2], expectedDType: .int64)
        #expect(!ints.passed && ints.maxULP == nil && !ints.description.contains("ULP"), "\(ints.description)")
        let x = 1.0 + 1e-6
        let f32 = Compare.arrays(name: "f", actual: [Double(Float(x))], actualShape: [1], actualDType: .float32,
                                 expected: [1.0], expectedShape: [1], expectedDType: .float64, tolerance: .float64)
        // Float(1 + 1e-6) is 8 Float32 ULPs above 1 (but about 4.5e9 Float64 ULPs).
        #expect(f32.maxULP == 8, "\(String(describing: f32.maxULP))")
        let f64 = Compare.arrays(name: "d", actual: [(1.0 as Double).nextUp.nextUp], actualShape: [1], expected: [1.0], expectedShape: [1],
                                 tolerance: Tolerance(rtol: 0, atol: 0))
        #expect(f64.maxULP == 2 && f64.description.contains("ULP distance (float64): 2"), "\(f64.description)")
    }

    /// A skipped check is never reported as `"passed": true`.
    @Test func skippedIsNotPassed() throws {
        let c = CheckResult(kind: .gradcheck, name: "big full", passed: true, message: "full mode skipped", skipped: true)
        let obj = try #require(try JSONSerialization.jsonObject(with: try JSONEncoder().encode(c)) as? [String: Any])
        #expect(obj["passed"] as? Bool == false && obj["status"] as? String == "skipped")
        var r = ProtocolReport(id: "x.y", title: "t", golden: "g")
        r.checks = [c]
        let doc = try #require(try JSONSerialization.jsonObject(with: try JSONEncoder().encode(r)) as? [String: Any])
        #expect(doc["passed"] as? Bool == false && doc["status"] as? String == "skipped")
    }

    /// JUnit failure messages are the first line, cut at a word boundary.
    @Test func junitMessagesAreNotCutMidWord() {
        let long = (0..<80).map { "word\($0)" }.joined(separator: " ") + "\nsecond line"
        let h = Reports.headline(long)
        #expect(h.hasSuffix(" …") && h.count <= 202)
        let last = h.dropLast(2).split(separator: " ").last.map(String.init) ?? ""
        #expect(long.split(separator: " ").map(String.init).contains(last), "cut mid-word: \(last)")
        var r = ProtocolReport(id: "x.y", title: "t", golden: "g")
        r.checks = [CheckResult(kind: .golden, name: "c", passed: false, message: long)]
        let xml = Reports.junit([r], info: RunInfo(root: "/nonexistent"))
        #expect(xml.contains("message=\"\(h)\""), "\(xml)")
    }
}
