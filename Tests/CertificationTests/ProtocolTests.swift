// Every protocol: goldens (outputs and gradients), gradient checks in both modes, and properties.
// Adding a protocol file and registering its method is all it takes for these to cover it.

import Certification
import CertifyMethods
import Foundation
import PropertyBased
import Tensor
import Testing

@Suite struct Protocols {
    @Test("certified against its goldens and gradient checks", arguments: allProtocolIDs)
    func certified(_ id: String) throws {
        let r = try #require(certifiedReports[id])
        if r.skipped {
            Issue.record("\(id) skipped: \(r.checks.first?.message ?? "")", severity: .warning)
            return
        }
        for f in r.failures { Issue.record("[\(f.kind.rawValue)] \(f.name): \(f.message)") }
        #expect(r.count(.golden).total > 0, "no golden checks ran for \(id)")
        #expect(r.worstRelError <= 1e-10 || r.failures.isEmpty, "worst relative error \(r.worstRelError)")
    }

    /// Properties through swift-property-based: it draws the seeds (and prints a replay seed on failure).
    @Test("property holds on random instances", arguments: allProperties)
    func property(_ key: String) async throws {
        let parts = key.split(separator: "#").map(String.init)
        let method = try Registry.shared.method(parts[0])
        let prop = try #require(method.properties.first { $0.id == parts[1] }, "property \(key) is declared but not implemented")
        if certifiedReports[parts[0]]?.skipped == true {
            Issue.record("\(key) skipped: \(certifiedReports[parts[0]]?.checks.first?.message ?? "")", severity: .warning)
            return
        }
        await propertyCheck(count: 30, input: Gen.uint64()) { seed in
            var rng = RNG(seed: seed)
            do { try prop.check(&rng) } catch let e as SkippableError {
                Issue.record("\(key) skipped: \(e.skipReason)", severity: .warning)
            } catch { Issue.record("\(key) fails for RNG seed \(seed): \(error)") }
        }
    }

    @Test func everyProtocolHasGoldenAndImplementation() throws {
        for p in protocolSet.protocols {
            #expect(FileManager.default.fileExists(atPath: protocolSet.goldenPath(p)), "\(p.id): golden missing")
            #expect((try? Registry.shared.method(p.id)) != nil, "\(p.id): no registered implementation")
            #expect(FileManager.default.fileExists(atPath: protocolSet.root + "/" + p.generator), "\(p.id): generator missing")
        }
    }

    @Test func everyGoldenBelongsToAProtocol() throws {
        let root = protocolSet.root + "/golden"
        let golden = Set(protocolSet.protocols.map(\.golden))
        let files = FileManager.default.enumerator(atPath: root)!.compactMap { $0 as? String }.filter { $0.hasSuffix(".h5") }
        #expect(!files.isEmpty)
        for f in files { #expect(golden.contains("golden/" + f), "golden/\(f) belongs to no protocol") }
    }

    @Test func everyRegisteredMethodHasAProtocol() {
        for id in Registry.shared.ids { #expect(allProtocolIDs.contains(id), "\(id) is registered but has no protocol") }
    }

    /// CHECKLIST.md holds only what is the same on every machine (status, counts, declared
    /// tolerances), so it is compared exactly: no BLAS kernel can make it stale.
    @Test func checklistIsUpToDate() throws {
        let committed = try String(contentsOfFile: protocolSet.root + "/CHECKLIST.md", encoding: .utf8)
        let reports = Array(certifiedReports.values)
        let fresh = Reports.checklist(protocols: protocolSet.protocols, reports: reports, ledgers: protocolSet.ledgers, root: protocolSet.root)
        // A protocol that cannot run here (third-party fixtures absent) is compared on the other rows only.
        let skipped = reports.filter(\.skipped).map { "| `\($0.id)` |" }
        func rows(_ text: String) -> [String] {
            text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                .filter { line in !skipped.contains { line.hasPrefix($0) } && !(!skipped.isEmpty && line.hasSuffix(" protocols.")) }
        }
        let (a, b) = (rows(committed), rows(fresh))
        let firstDifference = zip(a, b).first { $0 != $1 }
        #expect(a == b, "CHECKLIST.md is stale: run `make checklist`; first differing row: \(firstDifference.map { "\($0.0) ≠ \($0.1)" } ?? "line counts \(a.count) vs \(b.count)")")
    }

    /// Nothing measured (and so CPU-dependent) goes into CHECKLIST.md: perturbing every measured
    /// error and timing leaves the file unchanged, while a status change does not.
    @Test func checklistIsMachineIndependent() throws {
        let reports = protocolSet.protocols.compactMap { certifiedReports[$0.id] }
        let base = Reports.checklist(protocols: protocolSet.protocols, reports: reports)
        var perturbed = reports
        for i in perturbed.indices {
            perturbed[i].seconds *= 3
            for j in perturbed[i].checks.indices where perturbed[i].checks[j].worstRelError != nil {
                perturbed[i].checks[j].worstRelError! = perturbed[i].checks[j].worstRelError! * 97 + 1e-15
            }
        }
        #expect(Reports.checklist(protocols: protocolSet.protocols, reports: perturbed) == base)
        var failed = reports
        if let k = failed.firstIndex(where: { !$0.skipped }), let j = failed[k].checks.firstIndex(where: { $0.kind == .golden }) {
            failed[k].checks[j].passed = false
        }
        #expect(Reports.checklist(protocols: protocolSet.protocols, reports: failed) != base)
    }
}
