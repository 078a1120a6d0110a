// Issue 11, section 5: Foundation and Codable errors become short reasons, not their raw descriptions.

import Certification
import Foundation
import Testing

@Suite struct Messages {
    @Test func fileErrorsReadAsReasons() {
        do {
            try Data("x".utf8).write(to: URL(fileURLWithPath: "/nonexistent-dir/out.json"), options: .atomic)
            Issue.record("expected a write error")
        } catch {
            let m = readableError(error)
            #expect(!m.contains("NSCocoaErrorDomain") && !m.contains("The operation could not be completed"), "\(m)")
            #expect(m.contains("No such file") || m.contains("no such file"), "\(m)")
        }
    }

    @Test func decodingErrorsNameTheKey() {
        struct Spec: Decodable { var name: String; var shape: String }
        do {
            _ = try JSONDecoder().decode([Spec].self, from: Data(#"[{"name": "x", "shape": 3}]"#.utf8))
            Issue.record("expected a decoding error")
        } catch {
            let m = readableError(error)
            #expect(m == "at [0].shape: expected String", "\(m)")
        }
    }

    @Test func longListsAreTruncatedWithACount() {
        let s = truncatedList((0..<100).map { "input\($0) [3]" })
        #expect(s.hasSuffix("… and 92 more") && s.count < 200, "\(s)")
    }
}
