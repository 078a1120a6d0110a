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

    /// Protocols whose generator transcribes official code name, per step, the official function (file, lines, commit) and the
    /// generator function, with a line-by-line mapping (issue 12): every IADG and LAVA protocol but lava.resample (the official
    /// LAVA code has no resampling). The generator functions must exist, and the map reaches `certify show` and its JSON.
    @Test func transcriptionMapsNameOfficialAndGeneratorFunctions() throws {
        let mapped = protocolSet.protocols.filter { $0.id.hasPrefix("iadg.") || $0.id.hasPrefix("lava.") }.filter { $0.id != "lava.resample" }
        #expect(mapped.count == 11)
        for p in mapped {
            #expect(!p.transcribes.isEmpty, "\(p.id): no transcribes: map")
            let source = try String(contentsOfFile: protocolSet.root + "/" + p.generator, encoding: .utf8)
            for t in p.transcribes {
                #expect(t.generator.hasPrefix(p.generator + ":"), "\(p.id): \(t.generator) is not in \(p.generator)")
                // "file.py:f, g (detail)" or "file.py:f and …": f and g must be functions, classes or constants of the generator.
                var head = String(t.generator.dropFirst(p.generator.count + 1))
                for cut in [" (", " and "] { if let r = head.range(of: cut) { head = String(head[..<r.lowerBound]) } }
                let names = head.components(separatedBy: ", ")
                #expect(!names.isEmpty && names.allSatisfy { !$0.isEmpty })
                for n in names {
                    #expect(source.contains("def \(n)(") || source.contains("class \(n)") || source.contains("\n\(n) = "),
                            "\(p.id): \(p.generator) has no \(n)")
                }
                #expect(t.official.range(of: #"\.py:[A-Za-z_]"#, options: .regularExpression) != nil && t.official.contains("line"),
                        "\(p.id): '\(t.official)' must name file.py:function and lines")
                #expect(t.official.contains("a7110c2") || t.official.contains("c04bd31"), "\(p.id): no commit in '\(t.official)'")
                #expect(t.steps.count > 40 && t.steps.contains("→"), "\(p.id): steps must map official lines → generator statements")
            }
        }
        let json = String(decoding: try JSONEncoder().encode(ProtocolContract(try protocolSet.protocolFor("iadg.dkg"))), as: UTF8.self)
        #expect(json.contains("\"transcribes\":[{") && json.contains("dkg_reference"))
        // A malformed entry is an error naming the key.
        let src = try String(contentsOfFile: protocolSet.root + "/protocols/core/softmax.yaml", encoding: .utf8)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("softmax_transcribes_\(getpid()).yaml").path
        try (src + "transcribes:\n  - {official: \"a.py:f (lines 1–2, abc)\", generator: \"golden/generate/core.py:f\"}\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        do { _ = try CertProtocol.load(path); Issue.record("accepted a transcription without steps") } catch let e as ProtocolError {
            #expect(e.message.contains("'transcribes' is malformed"), "\(e)")
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
