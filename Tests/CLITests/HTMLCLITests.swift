// `certify run --report FILE.html` writes the HTML report through the CLI.

import Foundation
import Testing

@Suite struct HTMLCLITests {
    @Test func runWritesOneSelfContainedPage() throws {
        let out = scratchDir("html") + "/run.html"
        let r = try certify("run", "core.relu", "--report", out)
        #expect(r.status == 0 && r.out.contains("wrote \(out)"), "\(r.out)\(r.err)")
        let h = try String(contentsOfFile: out, encoding: .utf8)
        #expect(h.hasPrefix("<!DOCTYPE html>") && h.hasSuffix("</body></html>\n"))
        #expect(h.contains("<tr id=\"row-core.relu\">") && h.contains("<span class=\"badge pass\">certified</span>"))
        #expect(!h.contains("<script") && !h.contains("src="))
        let bad = try certify("run", "core.relu", "--report", scratchDir("html") + "/run.pdf")
        #expect(bad.status == 2 && bad.err.contains("use .json, .md, .xml (JUnit) or .html"), "\(bad.err)")
    }
}
