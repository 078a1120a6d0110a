// `certify plan graph-audit`, `work`, `merge`, `status`, `slurm` end to end on the small trained DARTS-GT model of
// docs/dartsgt: the merged output equals the single-machine `certify graph-audit` byte for byte, and an edited plan or a
// truncated unit is refused (exit 2), never merged.

import Certification
import Foundation
import Testing

@Suite(.enabled(if: plansWired)) struct GraphAuditPlanCLI {
    let root = packageRootPath + "/docs/dartsgt"

    func args() -> [String] {
        ["--model", root + "/model.h5", "--data", root + "/data.h5", "--k-heads", "2", "--json", "a.json", "--svg", "a.svg"]
    }

    /// A fresh folder with a plan of the graph audit (20 graphs: 20 units).
    func planned(_ name: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("certify-graph-audit-plan-\(name)-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let r = try runCertify(["plan", "graph-audit"] + args() + ["-o", "plan.json"], in: dir)
        #expect(r.status == 0 && r.out.contains("20 units"), "\(r.out) \(r.err)")
        return dir
    }

    func exists(_ p: String) -> Bool { FileManager.default.fileExists(atPath: p) }

    @Test func mergeEqualsTheSingleMachineGraphAuditByteForByte() throws {
        let dir = try planned("same")
        #expect(try runCertify(["work", "plan.json", "--unit", "7"], in: dir).status == 0)
        var r = try runCertify(["work", "plan.json", "--shard", "3/4"], in: dir)
        #expect(r.status == 0 && r.out.contains("ran 4, already done 1"), "\(r.out) \(r.err)")
        r = try runCertify(["work", "plan.json"], in: dir, env: ["SLURM_ARRAY_TASK_ID": "2"])
        #expect(r.status == 0 && r.out.contains("units 2: ran 1"), "\(r.out) \(r.err)")
        r = try runCertify(["status", "plan.json"], in: dir)
        #expect(r.status == 0 && r.out.contains("graph-audit, 20 units") && r.out.contains("done 6, running 0, failed 0, not started 14"), "\(r.out)")
        r = try runCertify(["merge", "plan.json"], in: dir)
        #expect(r.status == 2 && r.err.contains("14 of 20 units are not done") && !exists(dir + "/a.json"), "\(r.err)")
        r = try runCertify(["slurm", "plan.json", "--missing"], in: dir)
        let work = try String(contentsOfFile: dir + "/plan.units/slurm-work.sbatch", encoding: .utf8)
        #expect(r.status == 0 && work.contains("--array=0,1,4,5,6,8,9,10,12,13,14,16,17,18\n"), "\(work)")
        r = try runCertify(["work", "plan.json", "--all"], in: dir)
        #expect(r.status == 0 && r.out.contains("ran 14, already done 6") && r.out.contains("20/20"), "\(r.out) \(r.err)")
        let merged = try runCertify(["merge", "plan.json"], in: dir)
        #expect(merged.status == 0, "\(merged.err)")

        let single = dir + "/single"
        try FileManager.default.createDirectory(atPath: single, withIntermediateDirectories: true)
        let audit = try runCertify(["graph-audit"] + args(), in: single)
        #expect(audit.status == 0, "\(audit.err)")
        #expect(merged.out == audit.out && audit.out.contains("Focus: median"), "the printed summary")
        for f in ["a.json", "a.svg"] {
            let a = try Data(contentsOf: URL(fileURLWithPath: single + "/" + f)), b = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + f))
            #expect(a == b, "\(f) differs between the single-machine graph audit and the merge")
        }
        let json = try String(contentsOfFile: dir + "/a.json", encoding: .utf8)
        #expect(json.contains("\"command\": \"certify graph-audit --model") && json.contains("\"date\": \"2023-11-14T22:13:20Z\""), "\(json.prefix(600))")
    }

    @Test func editedPlanAndTruncatedUnitAreRefused() throws {
        let dir = try planned("refused")
        #expect(try runCertify(["work", "plan.json", "--all"], in: dir).status == 0)
        let plan = dir + "/plan.json"
        let text = try String(contentsOfFile: plan, encoding: .utf8)
        let edited = text.replacingOccurrences(of: "\"k_heads\" : \"2\"", with: "\"k_heads\" : \"3\"")
        #expect(edited != text)
        try edited.write(toFile: plan, atomically: true, encoding: .utf8)
        for cmd in [["work", "plan.json", "--all"], ["merge", "plan.json"], ["status", "plan.json"]] {
            let r = try runCertify(cmd, in: dir)
            #expect(r.status == 2 && r.err.contains("edited after it was made"), "\(cmd): \(r.err)")
        }
        #expect(!exists(dir + "/a.json"), "never a merged report from an edited plan")
        try text.write(toFile: plan, atomically: true, encoding: .utf8)
        let unit = dir + "/plan.units/unit-00005.json"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: unit))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: unit))
        var r = try runCertify(["merge", "plan.json"], in: dir)
        #expect(r.status == 2 && r.err.contains("unit-00005.json: truncated or corrupt"), "\(r.err)")
        #expect(!exists(dir + "/a.json") && !exists(dir + "/a.svg"), "never a merged report from a truncated unit")
        r = try runCertify(["work", "plan.json", "--all"], in: dir)
        #expect(r.status == 0 && r.out.contains("ran 1 (1 redone"), "\(r.out) \(r.err)")
        r = try runCertify(["merge", "plan.json"], in: dir)
        #expect(r.status == 0 && exists(dir + "/a.json"), "\(r.err)")
    }
}
