// Certifies every l2g.* protocol against its golden (goldens, gradient checks, properties) and checks that a broken
// implementation fails: each protocol must be able to fail.
import Certification
import CertifyMethods
import Foundation
import Ops
import Tensor
import Testing
@testable import L2G

let root = packageRoot()

func l2gProtocols() throws -> (ProtocolSet, [CertProtocol]) {
    registerAll()
    let set = try ProtocolSet.load(root: root)
    return (set, try set.select(["l2g"]))
}

@Suite struct CertifyL2G {
    @Test(arguments: ["l2g.vis_ap", "l2g.matcher", "l2g.losses", "l2g.aligner", "l2g.propagation"])
    func certified(_ id: String) throws {
        let (set, _) = try l2gProtocols()
        let p = try set.protocolFor(id)
        let r = Certifier.certify(p, in: set)
        let failed = r.checks.filter { !$0.passed }
        #expect(failed.isEmpty, "\(failed.count) failing: \(failed.prefix(5).map { "\($0.name): \($0.message)" }.joined(separator: "\n"))")
        #expect(r.count(.golden).total >= p.cases.count)
        #expect(r.count(.property).total == p.properties.count)
        if !p.grads.isEmpty { #expect(r.count(.gradcheck).passed > 0) }
    }

    /// A one-ulp change to the precision's epsilon (or the tie rule) must fail the bit-exact golden.
    @Test func brokenVisAPFails() throws {
        let (set, _) = try l2gProtocols()
        let p = try set.protocolFor("l2g.vis_ap")
        let good = try Registry.shared.method("l2g.vis_ap")
        let broken = Method("l2g.vis_ap") { ctx in
            var outs = try good.build(ctx)
            // Perturb AP by one ulp: what a different summation order would do.
            let s = outs["stats"]!.value
            outs["stats"] = ctx.constant(Tensor(s.data.map { $0 > 0 ? $0.nextUp : $0 }))
            return outs
        }
        var opts = CertifyOptions()
        opts.properties = false
        let r = Certifier.certify(p, in: set, options: opts, implementation: broken)
        #expect(r.checks.contains { !$0.passed })
    }
}
