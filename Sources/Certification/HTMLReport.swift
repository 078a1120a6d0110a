// The HTML report of `certify run --report FILE.html` (and the page `certify audit --html` builds on): one
// self-contained file — inline CSS and SVG, no script, no external resource — that a person reads in a
// browser. Per protocol: its status, its check counts, and its worst relative error against the allowed
// tolerance as a bar on a log scale; the failing checks with the comparison's text (actual vs golden at the
// worst index); the skipped protocols and checks with their reason; per paper, its claims ledger.
// Apart from the run line (date, commit), the page depends only on the reports: same run, same bytes.

import Foundation

public enum HTMLReport {
    /// The page's style sheet (shared with `certify audit --html`).
    public static let css = """
        body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;color:#1f2328;padding:0 16px}
        h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
        h2 code{font-size:16px}h3{font-size:15px;margin:18px 0 6px}.meta{color:#59636e;font-size:13px;margin:0 0 12px}
        table{border-collapse:collapse;width:100%;font-size:13px}th,td{border-bottom:1px solid #d8dee4;padding:4px 8px;text-align:left;vertical-align:top}
        th{background:#f6f8fa}code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
        pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:8px;font-size:12px;overflow-x:auto;white-space:pre-wrap}
        p{font-size:14px}.badge{display:inline-block;border-radius:10px;padding:1px 9px;font-size:12px;font-weight:600;color:#fff;white-space:nowrap}
        .pass{background:#1a7f37}.fail{background:#cf222e}.skip{background:#9a6700}.info{background:#59636e}
        .summary{font-size:14px;margin:8px 0 16px}.summary .badge{margin-right:6px}.legend{color:#59636e;font-size:12px;font-weight:normal}
        """

    /// Escapes text for HTML content and attribute values.
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for ch in s {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(ch)
            }
        }
        return out
    }

    /// A page around `body`: doctype, charset, title, the style sheet.
    public static func page(title: String, body: String) -> String {
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>\(escape(title))</title>\n<style>\n\(css)\n</style></head><body>\n"
            + body + "</body></html>\n"
    }

    static let (lo, hi) = (-17.0, 1.0)

    static func num(_ x: Double) -> String { String(format: "%.1f", x) }

    /// The worst relative error (bar) against the tolerance (black tick) on a log scale from 1e-17 to 10;
    /// green when the checks passed, red when one failed. nil error: no bar ("–").
    public static func bar(error: Double?, tolerance: Double?, passed: Bool, width: Double = 220, height: Double = 16) -> String {
        func x(_ v: Double) -> Double {
            guard v > 0 else { return 0 }
            guard v.isFinite else { return width }
            return (Swift.min(Swift.max(log10(v), lo), hi) - lo) / (hi - lo) * width
        }
        let color = passed ? "#1a7f37" : "#cf222e"
        let label = "worst relative error \(error.map(formatError) ?? "–")" + (tolerance.map { ", tolerance \(formatError($0))" } ?? "")
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(num(width + 70))\" height=\"\(num(height))\" role=\"img\" aria-label=\"\(escape(label))\">"
        s += "<title>\(escape(label))</title><rect x=\"0\" y=\"2\" width=\"\(num(width))\" height=\"\(num(height - 4))\" fill=\"#eaeef2\"/>"
        if let e = error {
            s += "<rect class=\"err\" x=\"0\" y=\"3\" width=\"\(num(e > 0 ? x(e) : 2))\" height=\"\(num(height - 6))\" fill=\"\(color)\"/>"
        }
        if let t = tolerance, t > 0 {
            s += "<rect class=\"tol\" x=\"\(num(x(t) - 1))\" y=\"0\" width=\"2\" height=\"\(num(height))\" fill=\"#1f2328\"/>"
        }
        s += "<text x=\"\(num(width + 6))\" y=\"\(num(height - 4))\" font-size=\"11\" font-family=\"sans-serif\" fill=\"#1f2328\">\(escape(error.map(formatError) ?? "–"))</text>"
        return s + "</svg>"
    }

    static func badge(_ status: String) -> String {
        let cls = ["certified": "pass", "passed": "pass", "reproduced": "pass", "FAILED": "fail", "failed": "fail", "refuted": "fail",
                   "skipped": "skip", "inconclusive": "skip"][status] ?? "info"
        return "<span class=\"badge \(cls)\">\(escape(status))</span>"
    }

    /// The report of a certification run. `ledgers`: the claims ledgers; those of the papers whose protocols
    /// are in the run are shown.
    public static func render(_ reports: [ProtocolReport], info: RunInfo, ledgers: [ClaimsLedger] = [], root: String = "") -> String {
        let c = RunCounts(reports)
        var b = "<h1>Certify report</h1>\n"
        b += "<p class=\"meta\">\(escape(info.tool)) \(escape(info.version)) · commit <code>\(escape(info.commit))</code> · \(escape(info.date))</p>\n"
        b += "<p class=\"summary\"><span class=\"badge pass\">\(c.certified) certified</span>"
        b += "<span class=\"badge fail\">\(c.failed) failed</span><span class=\"badge skip\">\(c.skipped) skipped</span> "
        b += "\(c.protocols) protocols, \(c.checks) checks (\(c.checksFailed) failed, \(c.checksSkipped) skipped)</p>\n"
        b += "<h2>Protocols</h2>\n<table><tr><th>protocol</th><th>method</th><th>status</th><th>goldens</th><th>gradient checks</th><th>properties</th>"
        b += "<th>worst relative error vs tolerance <span class=\"legend\">(log scale 1e-17…10; black tick: rtol)</span></th></tr>\n"
        for r in reports {
            let g = r.count(.golden), gc = r.count(.gradcheck), pr = r.count(.property)
            let ran = r.checks.contains { $0.kind == .golden && !$0.skipped && $0.worstRelError != nil }
            b += "<tr id=\"row-\(escape(r.id))\"><td><a href=\"#\(escape(r.id))\"><code>\(escape(r.id))</code></a></td><td>\(escape(r.title))</td>"
            b += "<td>\(badge(r.status))</td><td>\(g.passed)/\(g.total)</td><td>\(gc.passed)/\(gc.total)</td><td>\(pr.passed)/\(pr.total)</td>"
            b += "<td>\(bar(error: ran ? r.worstRelError : nil, tolerance: r.tolerance?.rtol, passed: r.passed || r.skipped))</td></tr>\n"
        }
        b += "</table>\n"
        for r in reports where !r.passed && !r.skipped {
            b += "<h2 id=\"\(escape(r.id))\"><code>\(escape(r.id))</code> \(badge(r.status))</h2>\n"
            b += "<p>\(escape(r.title)) · golden <code>\(escape(r.golden))</code>"
            if let t = r.tolerance { b += " · tolerance rtol \(t.rtol), atol \(t.atol)" }
            b += "</p>\n<h3>Failing checks (actual vs golden at the worst index)</h3>\n"
            for f in r.failures {
                b += "<p><code>[\(f.kind.rawValue)] \(escape(f.name))</code> \(bar(error: f.worstRelError, tolerance: r.tolerance?.rtol, passed: false))</p>\n"
                b += "<pre>\(escape(f.message))</pre>\n"
            }
        }
        // Skipped checks, one row per protocol and reason (a missing fixture skips every check of a protocol).
        var skipped: [(id: String, reason: String, checks: [String])] = []
        for r in reports {
            for ch in r.checks where ch.skipped {
                let name = "[\(ch.kind.rawValue)] \(ch.name)"
                if let i = skipped.firstIndex(where: { $0.id == r.id && $0.reason == ch.message }) { skipped[i].checks.append(name) }
                else { skipped.append((r.id, ch.message, [name])) }
            }
        }
        if !skipped.isEmpty {
            b += "<h2>Skipped</h2>\n<table><tr><th>protocol</th><th>checks</th><th>reason</th></tr>\n"
            for row in skipped {
                b += "<tr><td><code>\(escape(row.id))</code></td><td><code>\(row.checks.map(escape).joined(separator: "</code>, <code>"))</code></td><td>\(escape(row.reason))</td></tr>\n"
            }
            b += "</table>\n"
        }
        let prefixes = Set(reports.map { String($0.id.split(separator: ".").first ?? "") })
        let shown = ledgers.filter { prefixes.contains($0.protocols) }
        if !shown.isEmpty {
            b += "<h2>Papers: claims ledgers</h2>\n"
            for l in shown { b += ledger(l, root: root) }
        }
        return page(title: "Certify report", body: b)
    }

    /// One paper's claims: id and claim, location, status, and the evidence or the reason.
    public static func ledger(_ l: ClaimsLedger, root: String) -> String {
        var s = "<h3>\(escape(l.paper))</h3>\n<p class=\"meta\">\(ClaimStatus.allCases.map { "\(l.count($0)) \($0.rawValue)" }.joined(separator: " · ")) · ledger <code>\(escape(l.relativePath(root: root)))</code></p>\n"
        s += "<table><tr><th>claim</th><th>where</th><th>status</th><th>evidence or reason</th></tr>\n"
        for c in l.claims {
            let detail = c.evidence.map { "<code>\(escape($0.command))</code>" } ?? escape(c.reason ?? "")
            s += "<tr><td><code>\(escape(c.id))</code> \(escape(c.claim))</td><td>\(escape(c.location))</td><td>\(badge(c.status.rawValue))</td><td>\(detail)</td></tr>\n"
        }
        return s + "</table>\n"
    }
}
