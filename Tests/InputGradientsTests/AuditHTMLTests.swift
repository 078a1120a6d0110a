// `certify audit --html`: the DiffROAR curve with its band and the localization curves, inline SVG in one page.

import Certification
import Foundation
@testable import InputGradients
import Testing

@Suite struct AuditHTMLTests {
    static let report = AuditReport(
        dataset: "BlockMNIST", method: "gradient", model: "standard", attributedModelAccuracy: 0.9, attributedModelRobustAccuracy: nil,
        diffROAR: [
            DiffROARPoint(k: 0.1, accTopKept: [0.8, 0.82], accBottomKept: [0.6, 0.58], diffs: [0.2, 0.24], mean: 0.22, std: 0.02),
            DiffROARPoint(k: 0.5, accTopKept: [0.9, 0.9], accBottomKept: [0.85, 0.86], diffs: [0.05, 0.04], mean: 0.045, std: 0.005),
        ],
        localization: [LocalizationPoint(k: 0.1, nullFraction: 0.25, nullMassShare: 0.2), LocalizationPoint(k: 0.5, nullFraction: 0.5, nullMassShare: 0.45)],
        settings: ["ks": "0.1,0.5", "note": "a < b"], seconds: 1, provenance: ["commit": "abc", "date": "1970-01-01T00:00:00Z"])

    @Test func curvesBandAndLocalization() {
        let h = Self.report.html()
        #expect(h.hasPrefix("<!DOCTYPE html>"))
        #expect(!h.contains("<script") && !h.contains("<link") && !h.contains("src="))
        #expect(h.components(separatedBy: "<svg ").count - 1 == 2)
        #expect(h.contains("<polygon"), "the DiffROAR band (mean ± std)")
        #expect(h.contains("DiffROAR — gradient, standard model, BlockMNIST"))
        #expect(h.contains("Localization — gradient, standard model, BlockMNIST"))
        // Localization at k = 0.1 (x = 64 + 0.1·476) with null share 0.25 (y = 40 + 0.75·272).
        #expect(h.contains("<circle cx=\"111.60\" cy=\"244.00\""))
        // The null mass share (0.2 at k = 0.1): dashed, square markers.
        #expect(h.contains("<rect x=\"109.10\" y=\"255.10\" width=\"5\" height=\"5\" fill=\"purple\"/>"))
        #expect(h.contains("stroke=\"purple\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>"))
        #expect(h.contains("null mass share"))
        #expect(h.contains("<td>a &lt; b</td>"))
        #expect(h == Self.report.html())
    }

    @Test func noNullBlockSaysSo() {
        var r = Self.report
        r.localization = []
        #expect(r.html().contains("no localization: the data set has no null block"))
    }
}
