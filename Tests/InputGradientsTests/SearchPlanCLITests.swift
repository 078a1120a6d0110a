// `certify plan search` (the DARTS-GT reproduction as (seed, arm) units), `work`, `status`, `slurm`, `merge` end to end on a
// tiny reproduction (1 seed, 1 search epoch, no training epoch: 5 units): units run in shuffled order and as two shards merge
// into exactly what the single-machine `certify dartsgt-reproduce` prints and writes; an out-of-range unit, an edited plan and
// a truncated unit are refused (exit 2), never merged. One run serves every assertion (the suite is slow enough).

import Certification
import Foundation
import Testing

@Suite(.enabled(if: plansWired)) struct SearchPlanCLI {
    let args = ["--seeds", "0", "--search-epochs", "1", "--train-epochs", "0", "--json", "r.json"]

    func exists(_ p: String) -> Bool { FileManager.default.fileExists(atPath: p) }

    @Test func mergeEqualsTheSingleMachineReproductionByteForByteAndBadInputIsRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("certify-search-plan-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var r = try runCertify(["plan", "search"] + args + ["-o", "plan.json"], in: dir)
        #expect(r.status == 0 && r.out.contains("5 units"), "\(r.out) \(r.err)")
        r = try runCertify(["plan", "dartsgt-reproduce"] + args + ["-o", "alias.json"], in: dir)
        let plan = try String(contentsOfFile: dir + "/plan.json", encoding: .utf8)
        let alias = try String(contentsOfFile: dir + "/alias.json", encoding: .utf8)
        #expect(r.status == 0 && alias == plan, "the alias writes the same plan")
        #expect(plan.contains("\"synthetic:sbm-graphs-seed-0\"") && plan.contains("\"name\" : \"seed 0: random per layer\""), "\(plan.prefix(400))")
        r = try runCertify(["plan", "search", "--search-only", "-o", "p.json"], in: dir)
        #expect(r.status == 2 && r.err.contains("not split into units"), "\(r.err)")

        r = try runCertify(["work", "plan.json", "--unit", "5"], in: dir)
        #expect(r.status == 2 && r.err.contains("out of range"), "\(r.err)")
        r = try runCertify(["work", "plan.json"], in: dir, env: ["SLURM_ARRAY_TASK_ID": "5"])
        #expect(r.status == 2 && r.err.contains("out of range"), "\(r.err)")
        for i in [3, 0] { #expect(try runCertify(["work", "plan.json", "--unit", "\(i)"], in: dir).status == 0) }
        r = try runCertify(["work", "plan.json", "--shard", "1/2"], in: dir)
        #expect(r.status == 0 && r.out.contains("units 1, 3: ran 1, already done 1"), "\(r.out) \(r.err)")
        r = try runCertify(["status", "plan.json"], in: dir)
        #expect(r.status == 0 && r.out.contains("dartsgt-reproduce, 5 units") && r.out.contains("done 3, running 0, failed 0, not started 2"), "\(r.out)")
        r = try runCertify(["merge", "plan.json"], in: dir)
        #expect(r.status == 2 && r.err.contains("2 of 5 units are not done: 2, 4") && !exists(dir + "/r.json"), "\(r.err)")
        r = try runCertify(["slurm", "plan.json", "--missing"], in: dir)
        let work = try String(contentsOfFile: dir + "/plan.units/slurm-work.sbatch", encoding: .utf8)
        #expect(r.status == 0 && work.contains("--array=2,4\n"), "\(work)")
        r = try runCertify(["work", "plan.json", "--shard", "0/2"], in: dir)
        #expect(r.status == 0 && r.out.contains("ran 2, already done 1") && r.out.contains("5/5"), "\(r.out) \(r.err)")
        let merged = try runCertify(["merge", "plan.json"], in: dir)
        #expect(merged.status == 0, "\(merged.err)")

        let single = dir + "/single"
        try FileManager.default.createDirectory(atPath: single, withIntermediateDirectories: true)
        let reproduce = try runCertify(["dartsgt-reproduce"] + args, in: single)
        #expect(reproduce.status == 0, "\(reproduce.err)")
        #expect(merged.out == reproduce.out && reproduce.out.contains("seed 0  random per layer"), "the printed rows")
        let a = try Data(contentsOf: URL(fileURLWithPath: single + "/r.json")), b = try Data(contentsOf: URL(fileURLWithPath: dir + "/r.json"))
        #expect(a == b, "r.json differs between the single-machine reproduction and the merge")
        let json = String(decoding: b, as: UTF8.self)
        #expect(json.contains("\"command\": \"certify dartsgt-reproduce --seeds 0 --search-epochs 1") && json.contains("\"date\": \"2023-11-14T22:13:20Z\"")
                && json.contains("\"seconds_total\": 0.0"), "\(json.prefix(700))")

        // Bad input after the fact: never a merged report.
        try FileManager.default.removeItem(atPath: dir + "/r.json")
        let edited = plan.replacingOccurrences(of: "\"train_epochs\" : \"0\"", with: "\"train_epochs\" : \"1\"")
        #expect(edited != plan)
        try edited.write(toFile: dir + "/plan.json", atomically: true, encoding: .utf8)
        for cmd in [["work", "plan.json", "--all"], ["merge", "plan.json"], ["status", "plan.json"]] {
            r = try runCertify(cmd, in: dir)
            #expect(r.status == 2 && r.err.contains("edited after it was made"), "\(cmd): \(r.err)")
        }
        try plan.write(toFile: dir + "/plan.json", atomically: true, encoding: .utf8)
        let unit = dir + "/plan.units/unit-00004.json"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: unit))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: unit))
        r = try runCertify(["merge", "plan.json"], in: dir)
        #expect(r.status == 2 && r.err.contains("unit-00004.json: truncated or corrupt") && !exists(dir + "/r.json"), "\(r.err)")
    }
}
