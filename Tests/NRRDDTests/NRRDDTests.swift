// NRR-DD: every nrrdd.* protocol against its PyTorch golden (values, gradient checks, properties),
// and a broken implementation that must fail.

import Certification
import CertifyMethods
import Foundation
import Ops
import Tensor
import Testing
@testable import NRRDD

let nrrddSet: ProtocolSet = {
    registerAll()
    return try! ProtocolSet.load(root: packageRoot())
}()

@Suite struct NRRDDCertification {
    @Test(arguments: ["nrrdd.cam", "nrrdd.selection", "nrrdd.stitching", "nrrdd.refinement", "nrrdd.dbr", "nrrdd.relabel"])
    func certified(_ id: String) throws {
        let p = try nrrddSet.protocolFor(id)
        let r = Certifier.certify(p, in: nrrddSet)
        for f in r.failures { Issue.record("\(id) \(f.kind.rawValue) \(f.name): \(f.message)") }
        #expect(r.passed, "\(id): \(r.status)")
        print("\(id): \(r.status), worst relative error \(r.worstRelError), checks \(r.checks.count)")
    }

    /// A one-character change in the mathematics (ε − C → C − ε in the mask) must fail the golden.
    @Test func brokenMaskFails() throws {
        let p = try nrrddSet.protocolFor("nrrdd.refinement")
        let good = try Registry.shared.method("nrrdd.refinement")
        let broken = Method("nrrdd.refinement", properties: good.properties) { ctx in
            var out = try good.build(ctx)
            let m = out["mask"]!.value
            out["mask"] = ctx.constant(m.map { $0 > 0 ? $0 * (1 + 1e-9) : $0 })
            return out
        }
        let r = Certifier.certify(p, in: nrrddSet, options: { var o = CertifyOptions(); o.gradientChecks = false; o.properties = false; return o }(),
                                  implementation: broken)
        #expect(!r.passed)
    }

    /// The storage arithmetic of the paper's ImageNet-1k example, by function.
    @Test func storageOfImageNet() {
        let s = DistanceBasedRepresentative.storage(instances: 200_000, epochs: 300, classes: 1000, bytesPerNumber: 2)
        #expect(s.softLabels / 1e9 == 120)
        #expect(s.dbr / 1e9 == 0.24)
    }
}
