// `certify run --jobs N`: protocols certified in worker processes give the sequential run's reports,
// bit for bit and in the same order (issue 17 §3).

import Foundation
import Testing

@Suite struct ConcurrentRun {
    /// The JSON report without what is allowed to differ between runs (timings, the date).
    func reportWithoutTimes(_ path: String) throws -> String {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        func strip(_ x: Any) -> Any {
            if let d = x as? [String: Any] { return d.filter { $0.key != "seconds" && $0.key != "date" }.mapValues(strip) }
            if let a = x as? [Any] { return a.map(strip) }
            return x
        }
        let data = try JSONSerialization.data(withJSONObject: strip(json), options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    @Test func twoJobsGiveTheSequentialReportsInOrder() throws {
        let ids = ["core.softmax", "core.layer_norm", "core.relu", "core.conv1d", "core.cross_entropy"]
        let seq = tmp("seq.json"), par = tmp("par.json")
        let a = try certify(["run"] + ids + ["--jobs", "1", "--report", seq])
        let b = try certify(["run"] + ids + ["--jobs", "3", "--report", par])
        #expect(a.status == 0 && b.status == 0, "\(a.err)\n\(b.err)")
        let same = try reportWithoutTimes(seq) == reportWithoutTimes(par)
        #expect(same)
        // the table lists the protocols in the order they were asked for, whatever order they finished in
        let order = b.out.split(separator: "\n").compactMap { line in ids.first { line.hasPrefix($0 + " ") } }
        #expect(order == ids)
    }

    @Test func jobsMustBePositive() throws {
        let r = try certify("run", "core.softmax", "--jobs", "0")
        #expect(r.status == 2)
        #expect(r.err.contains("--jobs must be at least 1"))
    }
}
