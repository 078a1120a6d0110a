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
