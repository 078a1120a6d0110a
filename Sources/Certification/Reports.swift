// Report writers for `certify run --report FILE` (JSON, Markdown, JUnit XML or HTML by extension) and
// CHECKLIST.md, which is generated from the protocols and a certification run.

import Foundation

public enum ReportFormat: String, Sendable {
    case json, markdown, junit, html

    public init(path: String) throws {
        switch (path as NSString).pathExtension.lowercased() {
        case "json": self = .json
        case "md", "markdown": self = .markdown
        case "xml": self = .junit
        case "html", "htm": self = .html
        default: throw ProtocolError(file: path, "unknown report format; use .json, .md, .xml (JUnit) or .html")
        }
    }
}

/// Formats a worst relative error for tables.
public func formatError(_ x: Double) -> String { x == 0 ? "0" : String(format: "%.2e", x) }

/// The tool's version, printed by `certify --version` and written into every report.
public let certifyVersion = "0.3.0"

/// Where and when a report was made: tool version, commit of the package root (when it is a git
/// checkout), UTC date.
public struct RunInfo: Codable, Sendable {
    public var tool = "certify"
    public var version = certifyVersion
    public var commit: String
    public var date: String

    public init(root: String, date: Date = Date()) {
        commit = RunInfo.commit(root: root)
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        self.date = f.string(from: date)
    }

    /// The commit of a git checkout at `root` ("unknown" elsewhere), read from .git without running git.
    static func commit(root: String) -> String {
        let git = root + "/.git"
        var gitDir = git
        if let text = try? String(contentsOfFile: git, encoding: .utf8), text.hasPrefix("gitdir: ") {
            gitDir = text.dropFirst(8).trimmingCharacters(in: .whitespacesAndNewlines)  // a worktree
        }
        guard let head = try? String(contentsOfFile: gitDir + "/HEAD", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) else {
            return "unknown"
        }
        guard head.hasPrefix("ref: ") else { return head }
        let ref = String(head.dropFirst(5))
        var dirs = [gitDir]
        if let common = try? String(contentsOfFile: gitDir + "/commondir", encoding: .utf8) {
            let c = common.trimmingCharacters(in: .whitespacesAndNewlines)
            dirs.append(c.hasPrefix("/") ? c : gitDir + "/" + c)
        }
        for d in dirs {
            if let h = try? String(contentsOfFile: d + "/" + ref, encoding: .utf8) { return h.trimmingCharacters(in: .whitespacesAndNewlines) }
            if let packed = try? String(contentsOfFile: d + "/packed-refs", encoding: .utf8),
               let line = packed.split(separator: "\n").first(where: { $0.hasSuffix(" " + ref) }) {
                return String(line.split(separator: " ")[0])
            }
        }
        return "unknown"
    }
}

/// Counts of a set of protocol reports.
public struct RunCounts: Codable, Sendable {
    public var protocols: Int
    public var certified: Int
    public var failed: Int
    public var skipped: Int
    public var checks: Int
    public var checksFailed: Int
    public var checksSkipped: Int

    public init(_ reports: [ProtocolReport]) {
        protocols = reports.count
        skipped = reports.filter(\.skipped).count
        certified = reports.filter { $0.passed && !$0.skipped }.count
        failed = protocols - certified - skipped
        checks = reports.reduce(0) { $0 + $1.checks.count }
        checksFailed = reports.reduce(0) { $0 + $1.failures.count }
        checksSkipped = reports.reduce(0) { $0 + $1.checks.filter(\.skipped).count }
    }

    /// "58 certified, 0 failed, 2 skipped of 60 protocols".
    public var line: String { "\(certified) certified, \(failed) failed, \(skipped) skipped of \(protocols) protocols" }
}

public enum Reports {
    /// `ledgers` and `root`: the claims ledgers the HTML report shows for the papers in the run.
    public static func render(_ reports: [ProtocolReport], format: ReportFormat, info: RunInfo,
                              ledgers: [ClaimsLedger] = [], root: String = "") throws -> String {
        switch format {
        case .json:
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            struct Doc: Encodable {
                var status: String
                var passed: Bool
                var counts: RunCounts
                var run: RunInfo
                var protocols: [ProtocolReport]
            }
            let counts = RunCounts(reports)
            let status = counts.failed > 0 ? "failed" : counts.certified == 0 && counts.skipped > 0 ? "skipped" : "certified"
            return String(decoding: try enc.encode(Doc(status: status, passed: counts.failed == 0 && counts.certified > 0,
                                                       counts: counts, run: info, protocols: reports)), as: UTF8.self)
        case .markdown:
            return "# Certify run\n\n\(info.tool) \(info.version), commit `\(info.commit)`, \(info.date)\n\n"
                + "**\(RunCounts(reports).line)**\n\n" + markdownTable(reports)
        case .junit:
            return junit(reports, info: info)
        case .html:
            return HTMLReport.render(reports, info: info, ledgers: ledgers, root: root)
        }
    }

    public static func markdownTable(_ reports: [ProtocolReport]) -> String {
        var s = "| protocol | status | goldens | gradient checks | properties | skipped checks | tolerance | worst relative error | time |\n"
        s += "|---|---|---|---|---|---|---|---|---|\n"
        for r in reports {
            let g = r.count(.golden), gc = r.count(.gradcheck), pr = r.count(.property)
            let sk = r.checks.filter(\.skipped).count
            s += "| `\(r.id)` | \(r.status) | \(g.passed)/\(g.total) | \(gc.passed)/\(gc.total) | \(pr.passed)/\(pr.total) | \(sk) | \(r.tolerance.map { "\($0)" } ?? "–") | \(formatError(r.worstRelError)) | \(String(format: "%.2f s", r.seconds)) |\n"
        }
        return s
    }

    static func xml(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
            .replacingOccurrences(of: "\n", with: "&#10;")
    }

    /// The first line of a message, shortened at a word boundary to about `limit` characters.
    public static func headline(_ message: String, limit: Int = 200) -> String {
        let first = message.split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? ""
        guard first.count > limit else { return first }
        let cut = first.prefix(limit)
        let word = cut.lastIndex(of: " ").map { cut[..<$0] } ?? cut
        return word.trimmingCharacters(in: .whitespaces) + " …"
    }

    public static func junit(_ reports: [ProtocolReport], info: RunInfo) -> String {
        let c = RunCounts(reports)
        var s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        s += "<testsuites name=\"certify\" tests=\"\(c.checks)\" failures=\"\(c.checksFailed)\" skipped=\"\(c.checksSkipped)\" timestamp=\"\(info.date)\">\n"
        for r in reports {
            s += "  <testsuite name=\"\(xml(r.id))\" tests=\"\(r.checks.count)\" failures=\"\(r.failures.count)\" skipped=\"\(r.checks.filter(\.skipped).count)\" time=\"\(r.seconds)\" timestamp=\"\(info.date)\">\n"
            s += "    <properties><property name=\"version\" value=\"\(xml(info.version))\"/><property name=\"commit\" value=\"\(xml(info.commit))\"/>"
            s += "<property name=\"status\" value=\"\(r.status)\"/>"
            if let t = r.tolerance { s += "<property name=\"rtol\" value=\"\(t.rtol)\"/><property name=\"atol\" value=\"\(t.atol)\"/>" }
            s += "</properties>\n"
            for ch in r.checks {
                s += "    <testcase classname=\"\(xml(r.id)).\(ch.kind.rawValue)\" name=\"\(xml(ch.name))\""
                if ch.skipped {
                    s += "><skipped message=\"\(xml(headline(ch.message)))\"/></testcase>\n"
                } else if ch.passed {
                    s += "/>\n"
                } else {
                    s += "><failure message=\"\(xml(headline(ch.message)))\">\(xml(ch.message))</failure></testcase>\n"
                }
            }
            s += "  </testsuite>\n"
        }
        return s + "</testsuites>\n"
    }

    /// CHECKLIST.md: one row per protocol, in protocol order, then the claims of each paper by status.
    /// Everything in it is machine-independent (status, check counts, the protocol's declared
    /// tolerance, the ledgers), so the same code and protocols give the same file on every CPU and
    /// BLAS kernel; measured errors go to `certify run --report`.
    public static func checklist(protocols: [CertProtocol], reports: [ProtocolReport], ledgers: [ClaimsLedger] = [], root: String = "") -> String {
        var s = """
            # Certification checklist

            Generated by `certify checklist` from `protocols/` (the protocols and the claims ledgers) and a
            certification run; do not edit by hand. `make test` fails when this file is stale.

            ## Implementations

            **What "certified" means.** "✅ certified" means that Certify's implementation equals an
            independent reference (PyTorch, SciPy, scikit-learn, or the official code written with their
            operations) on every golden case within the tolerance shown, and that its gradient checks and
            properties pass. "✅ consistent with its definition" marks a protocol whose golden encodes a
            definition of Certify's own (`reference_kind: definition`: a tie rule, a data-set composition, a
            metric or pooling written out in NumPy): the implementation agrees with that definition, but no
            independent reference was consulted. Neither says that the paper's results hold; that is the
            second table, from the claims ledgers.

            Counts are the checks that ran (a gradient check's full-Jacobian mode is left out for large
            cases, where fast mode covers it). The measured worst errors depend on the CPU and its BLAS
            kernels, so they are not recorded here: `certify run --report FILE.md` lists them for your machine.

            | protocol | method | status | golden checks | gradient checks | properties | tolerance (rtol, atol) | divergences |
            |---|---|---|---|---|---|---|---|

            """
        for p in protocols {
            let tol = "\(p.tolerance.rtol), \(p.tolerance.atol)" + (p.outputs.contains { $0.rtol != nil || $0.atol != nil } ? " (per-output overrides)" : "")
            guard let r = reports.first(where: { $0.id == p.id }) else {
                s += "| `\(p.id)` | \(p.title) | not run | – | – | – | \(tol) | \(p.divergences.count) |\n"
                continue
            }
            // A check counts when it ran and passed; a property skipped for a documented reason on
            // one seeded draw counts as declared, so that the count is the same on every machine.
            let g = r.count(.golden), gc = r.count(.gradcheck)
            let props = r.checks.filter { $0.kind == .property }
            let propsOK = props.filter { $0.passed || $0.skipped }.count
            let status = r.skipped ? "⏭ skipped (\(Reports.headline(r.checks.first?.message ?? "", limit: 60)))" : r.passed ? p.referenceKind.certifiedLabel : "❌ failed"
            s += "| `\(p.id)` | \(p.title) | \(status) | \(g.passed)/\(g.total) | \(gc.passed)/\(gc.total) | \(propsOK)/\(props.count) | \(tol) | \(p.divergences.count) |\n"
        }
        s += "\n\(RunCounts(reports).line).\n"
        let open = protocols.filter { !$0.unknowns.isEmpty }
        if !open.isEmpty {
            s += "\n## Assumptions (`unknowns:`)\n\nWhere a paper leaves an architectural choice open, the protocol certifies Certify's parameterisation and lists\n"
            s += "each assumption here: they are Certify's, not the paper's.\n\n"
            for p in open {
                for u in p.unknowns { s += "- `\(p.id)` · \(u.id): \(u.assumed)\(u.option.map { " (option: \($0))" } ?? "")\n" }
            }
        }
        if !ledgers.isEmpty { s += "\n" + claimsTable(ledgers, root: root) }
        return s
    }

    /// The second table of CHECKLIST.md: per paper, its claims by status.
    public static func claimsTable(_ ledgers: [ClaimsLedger], root: String) -> String {
        var s = """
            ## Papers: do their claims hold?

            From the claims ledgers `protocols/<paper>/claims.yaml`: every headline claim of the paper, with
            its location, its status and its evidence (the command and the committed result file it reads).
            "Reproduced" needs a committed result file that supports the claim. "Untestable here" claims need
            data, weights or compute this project does not have; their ledger entry says why, and what was
            tested in their place.

            | paper | reproduced | refuted | inconclusive | untestable here | ledger |
            |---|---|---|---|---|---|

            """
        for l in ledgers {
            let path = l.relativePath(root: root)
            s += "| \(l.paper) | \(l.count(.reproduced)) | \(l.count(.refuted)) | \(l.count(.inconclusive)) | \(l.count(.untestable)) | [`\(path)`](\(path)) |\n"
        }
        let all = ledgers.flatMap(\.claims)
        s += "\n\(all.count) claims: \(ClaimStatus.allCases.map { st in "\(all.filter { $0.status == st }.count) \(st.rawValue)" }.joined(separator: ", ")).\n"
        return s
    }
}
