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

    @Test func checklistIsUpToDate() throws {
        let committed = try String(contentsOfFile: protocolSet.root + "/CHECKLIST.md", encoding: .utf8)
        let reports = Array(certifiedReports.values)
        let fresh = Reports.checklist(protocols: protocolSet.protocols, reports: reports)
        // A protocol that cannot run here (third-party fixtures absent) is compared on the other rows only.
        let skipped = reports.filter(\.skipped).map { "| `\($0.id)` |" }
        func rows(_ text: String) -> [String] {
            text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                .filter { line in !skipped.contains { line.hasPrefix($0) } && !(skipped.isEmpty == false && line.hasSuffix("protocols certified.")) }
        }
        // The worst-error column is a power-of-ten bound; BLAS kernels chosen for another CPU may move
        // the last digits of a result across a decade, so that column may differ by one decade.
        func split(_ line: String) -> (rest: [String], bound: Int?) {
            var cells = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard cells.count > 8 else { return (cells, nil) }
            let cell = cells[7].trimmingCharacters(in: .whitespaces)
            cells[7] = ""
            return (cells, cell == "0" ? -99 : Int(cell.replacingOccurrences(of: "≤ 1e", with: "")))
        }
        let (a, b) = (rows(committed), rows(fresh))
        var stale = a.count != b.count
        for (x, y) in zip(a, b) where x != y {
            let (sx, sy) = (split(x), split(y))
            if sx.rest != sy.rest { stale = true; continue }
            let (bx, by) = (sx.bound ?? 0, sy.bound ?? 0)
            let near = (bx == by) || (Swift.abs(bx - by) == 1) || (Swift.min(bx, by) == -99 && Swift.max(bx, by) <= -14)
            if !near { stale = true }
        }
        #expect(!stale, "CHECKLIST.md is stale: run `make checklist` (or `swift run certify checklist`)")
    }
}
