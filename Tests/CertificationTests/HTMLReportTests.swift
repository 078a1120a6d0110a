// The HTML report of `certify run --report FILE.html`: one self-contained page (no script, no external
// resource) with each protocol's status, its error against the tolerance as a log-scale bar, the failing
// checks' comparison text, the skipped checks' reasons and the claims ledger of each paper in the run.

import Certification
import Foundation
import Testing

@Suite struct HTMLReportTests {
    static let info: RunInfo = {
        var i = RunInfo(root: "/nonexistent", date: Date(timeIntervalSince1970: 0))
        i.commit = "abc123"
        return i
    }()

    static let reports: [ProtocolReport] = [
        ProtocolReport(id: "lava.softmaxish", title: "A certified method", golden: "golden/x.h5", checks: [
            CheckResult(kind: .golden, name: "rows/outputs/y", passed: true, worstRelError: 1e-14, message: ""),
            CheckResult(kind: .gradcheck, name: "rows full", passed: true, message: ""),
        ], tolerance: Tolerance(rtol: 1e-10, atol: 1e-12)),
        ProtocolReport(id: "core.broken", title: "A <broken> method", golden: "golden/y.h5", checks: [
            CheckResult(kind: .golden, name: "basic/outputs/y", passed: false, worstRelError: 0.5,
                        message: "basic/outputs/y: NOT CLOSE — greatest absolute difference: 0.5 at index [1, 2]; actual 1.5, golden 1 & <more>"),
        ], tolerance: Tolerance(rtol: 1e-10, atol: 1e-12)),
        ProtocolReport(id: "lava.weights", title: "Needs fixtures", golden: "golden/z.h5", checks: [
            CheckResult(kind: .golden, name: "case0", passed: true, message: "fixtures not found: ../shared/fixtures/lava", skipped: true),
            CheckResult(kind: .property, name: "locality", passed: true, message: "fixtures not found: ../shared/fixtures/lava", skipped: true),
        ]),
    ]

    static func render() throws -> String {
        let ledgers = try ClaimsLedger.loadAll(root: packageRoot())
        return HTMLReport.render(reports, info: info, ledgers: ledgers, root: packageRoot())
    }

    @Test func formatFollowsTheExtension() throws {
        #expect(try ReportFormat(path: "out.html") == .html)
        #expect(try ReportFormat(path: "OUT.HTM") == .html)
        #expect(throws: ProtocolError.self) { try ReportFormat(path: "out.pdf") }
    }

    @Test func selfContained() throws {
        let h = try Self.render()
        #expect(h.hasPrefix("<!DOCTYPE html>\n"))
        #expect(h.hasSuffix("</body></html>\n"))
        #expect(h.contains("<meta charset=\"utf-8\">"))
        for forbidden in ["<script", "<link", "<img", "<iframe", "@import", "url(", "src=", "href=\"http"] {
            #expect(!h.contains(forbidden), "the page must not load anything: found \(forbidden)")
        }
        // The only URL is the SVG namespace.
        #expect(h.replacingOccurrences(of: "http://www.w3.org/2000/svg", with: "").range(of: "http") == nil)
    }

    @Test func statusBarsFailuresSkipsAndLedgers() throws {
        let h = try Self.render()
        #expect(h.contains("commit <code>abc123</code> · 1970-01-01T00:00:00Z"))
        #expect(h.contains("<span class=\"badge pass\">1 certified</span><span class=\"badge fail\">1 failed</span><span class=\"badge skip\">1 skipped</span>"))
        // One row per protocol, in run order, with its status.
        let rows = ["row-lava.softmaxish", "row-core.broken", "row-lava.weights"].map { h.range(of: $0)?.lowerBound }
        #expect(rows.allSatisfy { $0 != nil })
        #expect(rows[0]! < rows[1]! && rows[1]! < rows[2]!)
        #expect(h.contains("<span class=\"badge fail\">FAILED</span>") && h.contains("<span class=\"badge skip\">skipped</span>"))
        // Log-scale bars over 1e-17…10 on 220 px: 1e-14 → 36.7 px, 0.5 → 204.1 px; the tolerance tick at 1e-10 → 85.6 − 1.
        #expect(h.contains("<rect class=\"err\" x=\"0\" y=\"3\" width=\"36.7\" height=\"10.0\" fill=\"#1a7f37\"/>"))
        #expect(h.contains("<rect class=\"err\" x=\"0\" y=\"3\" width=\"204.1\" height=\"10.0\" fill=\"#cf222e\"/>"))
        #expect(h.contains("<rect class=\"tol\" x=\"84.6\" y=\"0\" width=\"2\""))
        #expect(h.contains("worst relative error 1.00e-14, tolerance 1.00e-10"))
        // The failing check's text, escaped: actual vs golden at the worst index.
        #expect(h.contains("<h2 id=\"core.broken\">"))
        #expect(h.contains("at index [1, 2]; actual 1.5, golden 1 &amp; &lt;more&gt;"))
        #expect(h.contains("A &lt;broken&gt; method"))
        #expect(!h.contains("<broken>"))
        // Skipped checks with their reason: one row per protocol and reason.
        #expect(h.contains("<tr><td><code>lava.weights</code></td><td><code>[golden] case0</code>, <code>[property] locality</code></td><td>fixtures not found: ../shared/fixtures/lava</td></tr>"))
        // The claims ledgers of the papers in the run (lava and core have none; iadg is not in the run).
        #expect(h.contains("Papers: claims ledgers"))
        #expect(h.contains("LAVA (Di Pierno et al."))
        #expect(h.contains("ada_f1_above_95"))
        #expect(!h.contains("Zhou et al."))
    }

    @Test func deterministic() throws {
        #expect(try Self.render() == Self.render())
        let json = try Reports.render(Self.reports, format: .html, info: Self.info)
        #expect(json.contains("Certify report"))
    }
}
