// The claims ledgers (protocols/<paper>/claims.yaml), the reference kinds of the protocols, and the
// reproduction's generated tables: every cited file exists and carries provenance, every entry has
// evidence or a reason, and REPRODUCTION.md's tables and figures are the ones its result files give.

import Certification
import CertifyMethods
import Foundation
import Testing

@Suite struct Claims {
    /// The papers implemented so far: every one has a ledger.
    static let papers = ["iadg", "input_gradients", "lava", "nrrdd", "dartsgt", "l2g"]

    @Test func everyPaperHasALedger() throws {
        let prefixes = Set(protocolSet.ledgers.map(\.protocols))
        for p in Claims.papers { #expect(prefixes.contains(p), "protocols/\(p)/claims.yaml is missing") }
        let paperPrefixes = Set(protocolSet.protocols.map { String($0.id.split(separator: ".")[0]) }).subtracting(["core"])
        #expect(paperPrefixes.isSubset(of: prefixes), "papers without a ledger: \(paperPrefixes.subtracting(prefixes).sorted())")
        // A ledger is never mistaken for a protocol.
        #expect(!protocolSet.protocols.contains { $0.file.hasSuffix("/" + ClaimsLedger.fileName) })
    }

    @Test func everyEntryHasEvidenceOrAReason() {
        for l in protocolSet.ledgers {
            #expect(!l.claims.isEmpty, "\(l.file): no claims")
            for c in l.claims {
                let files = c.evidence?.files ?? []
                switch c.status {
                case .reproduced, .refuted:
                    #expect(!files.isEmpty && !(c.evidence?.command.isEmpty ?? true), "\(l.file): \(c.id) is \(c.status.rawValue) without evidence")
                    // Goldens certify implementations; a paper's result needs a result file of a reproduction run.
                    #expect(files.contains { $0.hasPrefix("docs/") && $0.hasSuffix(".json") },
                            "\(l.file): \(c.id) is \(c.status.rawValue) but cites no committed result file under docs/")
                case .inconclusive:
                    #expect(!files.isEmpty || c.reason != nil, "\(l.file): \(c.id) is inconclusive with neither evidence nor a reason")
                case .untestable:
                    #expect(c.reason != nil && c.tested_instead != nil, "\(l.file): \(c.id) is untestable without a reason and what was tested instead")
                }
            }
        }
    }

    @Test func everyCitedFileExists() {
        let missing = protocolSet.ledgers.flatMap { $0.missingFiles(root: protocolSet.root) }
        #expect(missing.isEmpty, "\(missing.joined(separator: "\n"))")
    }

    /// Result files (JSON under docs/) cited by a ledger, and every report in docs/input_gradients/results,
    /// carry provenance: commit, command line, data source and subset, seeds, library versions.
    @Test func citedResultFilesCarryProvenance() throws {
        let resultsDir = protocolSet.root + "/docs/input_gradients/results"
        let reports = try FileManager.default.contentsOfDirectory(atPath: resultsDir).filter { $0.hasSuffix(".json") }
            .map { "docs/input_gradients/results/" + $0 }
        let cited = protocolSet.ledgers.flatMap(\.citedFiles).filter { $0.hasPrefix("docs/") && $0.hasSuffix(".json") }
        #expect(!reports.isEmpty && !cited.isEmpty)
        for f in Set(reports + cited).sorted() {
            let data = try Data(contentsOf: URL(fileURLWithPath: protocolSet.root + "/" + f))
            let doc = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], "\(f) is not a JSON object")
            let prov = doc["provenance"] as? [String: String] ?? [:]
            for key in ["commit", "command", "data", "seeds", "versions"] {
                #expect(!(prov[key] ?? "").isEmpty, "\(f): provenance has no '\(key)' (write \"not recorded\" when it is unknown)")
            }
        }
    }

    /// REPRODUCTION.md's tables and quoted figures are generated from the result files (tables.py --check).
    @Test func reproductionTablesAreGenerated() throws {
        let (code, output) = try python(["docs/input_gradients/tables.py", "--check"], in: protocolSet.root)
        #expect(code == 0, "REPRODUCTION.md is not what its result files give: \(output)")
    }

    /// … and the check can fail: a typed table cell, a changed quoted figure, or an unquoted figure is caught.
    @Test(arguments: [
        ("| blockmnist10_standard | 0.848 |", "| blockmnist10_standard | 0.849 |"),
        ("-->41<!--/fig-->", "-->42<!--/fig-->"),
        ("which is chance level.", "which is chance level (0.501)."),
    ])
    func reproductionCheckCatchesATypedFigure(_ edit: (String, String)) throws {
        let dir = tempPath("reproduction-\(abs(edit.1.hashValue))")
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.copyItem(atPath: protocolSet.root + "/docs/input_gradients", toPath: dir)
        let doc = dir + "/REPRODUCTION.md"
        let text = try String(contentsOfFile: doc, encoding: .utf8)
        #expect(text.contains(edit.0), "the edit's anchor is gone from REPRODUCTION.md")
        try text.replacingOccurrences(of: edit.0, with: edit.1).write(toFile: doc, atomically: true, encoding: .utf8)
        let (code, output) = try python([dir + "/tables.py", "--check"], in: dir)
        #expect(code == 1, "tables.py --check missed \(edit.1): \(output)")
    }

    @Test func strictLoaderNamesFileAndClaim() throws {
        let good = """
            paper: "P"
            protocols: core
            claims:
              - id: one
                claim: "x"
                location: "Table 1"
                status: untestable here
                reason: "no data"
                tested_instead: "the op"

            """
        let path = tempPath("claims.yaml")
        try good.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try ClaimsLedger.load(path).claims.count == 1)
        let bad: [(String, String)] = [
            (good.replacingOccurrences(of: "    reason:", with: "    colour: red\n    reason:"), "claim 'one': unknown key(s) [\"colour\"]"),
            (good.replacingOccurrences(of: "    reason: \"no data\"\n", with: ""), "claim 'one': status 'untestable here' needs a 'reason'"),
            (good.replacingOccurrences(of: "    tested_instead: \"the op\"\n", with: ""), "claim 'one': status 'untestable here' needs 'tested_instead'"),
            (good.replacingOccurrences(of: "status: untestable here", with: "status: reproduced"), "claim 'one': status 'reproduced' needs 'evidence'"),
            (good.replacingOccurrences(of: "status: untestable here", with: "status: certified"), "claim 'one': 'status' must be one of"),
            (good.replacingOccurrences(of: "status: untestable here", with: "status: inconclusive").replacingOccurrences(of: "    reason: \"no data\"\n", with: ""),
             "claim 'one': status 'inconclusive' needs 'evidence' or a 'reason'"),
            (good.replacingOccurrences(of: "status: untestable here", with: "status: refuted\n    evidence: {command: \"certify run\"}"),
             "claim 'one': evidence needs 'files'"),
            (good.replacingOccurrences(of: "    reason:", with: "    evidence: {command: c, files: [/etc/passwd]}\n    reason:"), "must be a path relative to the package root"),
            (good + good.components(separatedBy: "claims:\n")[1], "claim 'one': duplicate id"),
            (good.replacingOccurrences(of: "paper: \"P\"", with: "paper: \"P\"\nauthor: Q"), "unknown key(s) [\"author\"]"),
        ]
        for (text, message) in bad {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            do {
                _ = try ClaimsLedger.load(path)
                Issue.record("accepted a bad ledger (expected: \(message))")
            } catch let e as ProtocolError {
                #expect(e.file == path && e.message.contains(message), "\(e) does not say \(message)")
            }
        }
    }

    /// Definition protocols are labelled as such in CHECKLIST.md, `certify show` and its JSON.
    @Test func referenceKinds() throws {
        let definitions = Set(protocolSet.protocols.filter { $0.referenceKind == .definition }.map(\.id))
        #expect(definitions == ["core.dice_loss", "input_gradients.blockmnist", "input_gradients.diffroar", "input_gradients.localization",
                                "input_gradients.masks", "lava.rejection"])
        // Synthetic passing reports (certifying everything is the Protocols suite's job).
        let reports = protocolSet.protocols.map {
            ProtocolReport(id: $0.id, title: $0.title, golden: $0.golden, checks: [CheckResult(kind: .golden, name: "c", passed: true, message: "")])
        }
        let checklist = Reports.checklist(protocols: protocolSet.protocols, reports: reports, ledgers: protocolSet.ledgers, root: protocolSet.root)
        for p in protocolSet.protocols {
            let row = try #require(checklist.split(separator: "\n").first { $0.hasPrefix("| `\(p.id)` |") })
            #expect(row.contains(p.referenceKind.certifiedLabel + " |"), "\(row)")
            #expect(p.referenceKind == .definition ? row.contains("consistent with its definition") : row.contains("✅ certified |"))
        }
        let enc = JSONEncoder()
        let json = String(decoding: try enc.encode(ProtocolContract(try protocolSet.protocolFor("input_gradients.masks"))), as: UTF8.self)
        #expect(json.contains("\"reference_kind\":\"definition\""))
        let json2 = String(decoding: try enc.encode(ProtocolContract(try protocolSet.protocolFor("core.softmax"))), as: UTF8.self)
        #expect(json2.contains("\"reference_kind\":\"independent\""))
    }

    @Test func badReferenceKindIsAnError() throws {
        let src = try String(contentsOfFile: protocolSet.root + "/protocols/core/softmax.yaml", encoding: .utf8)
        let path = tempPath("softmax_kind.yaml")
        try (src + "reference_kind: ours\n").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ProtocolError.self) { try CertProtocol.load(path) }
        try (src + "reference_kind: definition\n").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try CertProtocol.load(path).referenceKind == .definition)
        #expect(try CertProtocol.load(protocolSet.root + "/protocols/core/softmax.yaml").referenceKind == .independent)
    }

    /// CHECKLIST.md's second table: per paper, claims by status, from the ledgers.
    @Test func checklistCountsClaimsByStatus() {
        let table = Reports.claimsTable(protocolSet.ledgers, root: protocolSet.root)
        for l in protocolSet.ledgers {
            let counts = [ClaimStatus.reproduced, .refuted, .inconclusive, .untestable].map { String(l.count($0)) }.joined(separator: " | ")
            #expect(table.contains("| \(l.paper) | \(counts) | [`\(l.relativePath(root: protocolSet.root))`]"), "\(l.paper) row missing or wrong")
        }
    }
}

/// Runs /usr/bin/python3 with `args` in `dir`; returns the exit code and the combined output.
func python(_ args: [String], in dir: String) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: dir)
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}
