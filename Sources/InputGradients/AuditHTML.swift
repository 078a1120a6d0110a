// The page of `certify audit --html FILE`: the DiffROAR curve with its uncertainty band (mean ± std over the
// retraining seeds), the localization curves (BlockMNIST: share of the top-k attributions in the null block),
// the table, the settings and the provenance, in one self-contained HTML file with inline SVG.

import Certification
import Foundation

extension AuditReport {
    /// The localization curves over k as a standalone SVG: the null-block share of the top-k attributions
    /// (count and mass), with the share a random attribution would give as a dashed line when known.
    public func localizationSVG(nullShare: Double? = nil) -> String {
        let (w, h, l, r, t, b) = (560.0, 360.0, 64.0, 20.0, 40.0, 48.0)
        let pts = localization.sorted { $0.k < $1.k }
        func X(_ k: Double) -> Double { l + k * (w - l - r) }
        func Y(_ v: Double) -> Double { t + (1 - v) * (h - t - b) }
        func f(_ x: Double) -> String { String(format: "%.2f", x) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(w / 2)\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">\(xmlEscape("Localization — \(method), \(model) model, \(dataset)"))</text>\n"
        s += "<line x1=\"\(l)\" y1=\"\(h - b)\" x2=\"\(w - r)\" y2=\"\(h - b)\" stroke=\"black\"/>\n<line x1=\"\(l)\" y1=\"\(t)\" x2=\"\(l)\" y2=\"\(h - b)\" stroke=\"black\"/>\n"
        for k in stride(from: 0.0, through: 1.0001, by: 0.2) {
            s += "<line x1=\"\(f(X(k)))\" y1=\"\(h - b)\" x2=\"\(f(X(k)))\" y2=\"\(h - b + 5)\" stroke=\"black\"/><text x=\"\(f(X(k)))\" y=\"\(h - b + 18)\" text-anchor=\"middle\">\(String(format: "%.1f", k))</text>\n"
        }
        for i in 0...4 {
            let v = Double(i) / 4
            s += "<line x1=\"\(l - 5)\" y1=\"\(f(Y(v)))\" x2=\"\(l)\" y2=\"\(f(Y(v)))\" stroke=\"black\"/><text x=\"\(l - 8)\" y=\"\(f(Y(v) + 4))\" text-anchor=\"end\">\(String(format: "%.2f", v))</text>\n"
        }
        s += "<text x=\"\((l + w - r) / 2)\" y=\"\(h - 10)\" text-anchor=\"middle\">k (fraction of coordinates, top-k by |attribution|)</text>\n"
        s += "<text x=\"16\" y=\"\((t + h - b) / 2)\" text-anchor=\"middle\" transform=\"rotate(-90 16 \((t + h - b) / 2))\">share in the null block (lower is better)</text>\n"
        if let n = nullShare {
            s += "<line x1=\"\(l)\" y1=\"\(f(Y(n)))\" x2=\"\(w - r)\" y2=\"\(f(Y(n)))\" stroke=\"gray\" stroke-dasharray=\"4 3\"/>\n"
        }
        // The second series is dashed with square markers, so that it stays visible where the curves coincide.
        let series: [(String, String, String, (LocalizationPoint) -> Double)] = [
            ("null share of top-k", "darkorange", "", { $0.nullFraction }), ("null mass share", "purple", " stroke-dasharray=\"6 4\"", { $0.nullMassShare }),
        ]
        for (i, (name, color, dash, value)) in series.enumerated() where !pts.isEmpty {
            s += "<polyline points=\"\(pts.map { "\(f(X($0.k))),\(f(Y(value($0))))" }.joined(separator: " "))\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(dash)/>\n"
            for p in pts {
                s += i == 0 ? "<circle cx=\"\(f(X(p.k)))\" cy=\"\(f(Y(value(p))))\" r=\"4.5\" fill=\"white\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
                    : "<rect x=\"\(f(X(p.k) - 2.5))\" y=\"\(f(Y(value(p)) - 2.5))\" width=\"5\" height=\"5\" fill=\"\(color)\"/>\n"
            }
            let ly = t + 14 + Double(i) * 16
            s += "<line x1=\"\(w - r - 170)\" y1=\"\(ly - 4)\" x2=\"\(w - r - 150)\" y2=\"\(ly - 4)\" stroke=\"\(color)\" stroke-width=\"2\"\(dash)/><text x=\"\(w - r - 144)\" y=\"\(ly)\">\(name)</text>\n"
        }
        if pts.isEmpty {
            s += "<text x=\"\(w / 2)\" y=\"\(h / 2)\" text-anchor=\"middle\" fill=\"gray\">no localization: the data set has no null block</text>\n"
        }
        return s + "</svg>\n"
    }

    /// The whole audit as one self-contained HTML page.
    public func html() -> String {
        var b = "<h1>Attribution audit</h1>\n"
        b += "<p class=\"meta\">\(HTMLReport.escape("\(method), \(model) model, \(dataset)"))"
        if let c = provenance?["commit"], let d = provenance?["date"] { b += " · commit <code>\(HTMLReport.escape(c))</code> · \(HTMLReport.escape(d))" }
        b += "</p>\n"
        if let a = attributedModelAccuracy {
            b += "<p>attributed model: test accuracy \(String(format: "%.4f", a))"
            if let r = attributedModelRobustAccuracy { b += ", robust accuracy \(String(format: "%.4f", r))" }
            b += "</p>\n"
        }
        b += "<h2>DiffROAR (mean ± std over the retraining seeds)</h2>\n" + svg().replacingOccurrences(of: "<?xml", with: "<!--") + "\n"
        b += "<h2>Localization</h2>\n" + localizationSVG() + "\n"
        b += "<h2>Table</h2>\n<pre>\(HTMLReport.escape(table()))</pre>\n"
        b += "<h2>Settings</h2>\n<table><tr><th>setting</th><th>value</th></tr>\n"
        for (k, v) in settings.sorted(by: { $0.key < $1.key }) { b += "<tr><td><code>\(HTMLReport.escape(k))</code></td><td>\(HTMLReport.escape(v))</td></tr>\n" }
        b += "</table>\n"
        if let p = provenance {
            b += "<h2>Provenance</h2>\n<table><tr><th>item</th><th>value</th></tr>\n"
            for (k, v) in p.sorted(by: { $0.key < $1.key }) { b += "<tr><td><code>\(HTMLReport.escape(k))</code></td><td>\(HTMLReport.escape(v))</td></tr>\n" }
            b += "</table>\n"
        }
        return HTMLReport.page(title: "Certify attribution audit — \(method)", body: b)
    }
}
