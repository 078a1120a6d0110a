// `certify plan distill`, `work`, `status`, `merge` end to end on a tiny MNIST-format source (10 classes of 8×8
// images, written here): units run out of order by racing workers and two shards merge into exactly the table and
// JSON of the single-machine `certify distill --reproduce`; a bad unit index, an edited plan, a unit of another
// version and a truncated unit are refused (exit 2), never merged. One run serves every assertion (a few seconds).

import Certification
import Foundation
import Testing

private let root = packageRoot()

private func certifyPath() -> String {
    for p in [root + "/.build/debug/certify", root + "/.build/release/certify"] where FileManager.default.isExecutableFile(atPath: p) { return p }
    return root + "/.build/debug/certify"
}

private struct CLIRun {
    var status: Int32
    var out: String
    var err: String
}

/// Runs certify in `cwd` (SOURCE_DATE_EPOCH fixed, no array-job index inherited).
private func certify(_ args: [String], in cwd: String, env extra: [String: String] = [:]) throws -> CLIRun {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: certifyPath())
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: cwd)
    var env = ProcessInfo.processInfo.environment
    for k in ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"] { env[k] = nil }
    env["SOURCE_DATE_EPOCH"] = "1700000000"
    env["CERTIFY_ROOT"] = root
    for (k, v) in extra { env[k] = v }
    p.environment = env
    let o = Pipe(), e = Pipe()
    p.standardOutput = o
    p.standardError = e
    try p.run()
    let od = o.fileHandleForReading.readDataToEndOfFile(), ed = e.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return CLIRun(status: p.terminationStatus, out: String(decoding: od, as: UTF8.self), err: String(decoding: ed, as: UTF8.self))
}

/// Whether this build's `certify` plans distillations.
private let distillPlansWired: Bool = FileManager.default.isExecutableFile(atPath: certifyPath())
    && ((try? certify(["plan", "distill", "--help"], in: root))?.status ?? 1) == 0

@Suite(.enabled(if: distillPlansWired)) struct DistillPlanCLI {
    /// A reproduction with the sweep on the tiny source: 2 seeds × 9 arms + 8 sweep runs = 26 units.
    func args(_ source: String) -> [String] {
        ["--reproduce", "--seeds", "2", "--sweep", "--source", source, "--ipc", "1", "--factor", "2", "--mipc", "4", "--num-crops", "2",
         "--nrr-steps", "1", "--student-epochs", "2", "--teacher-epochs", "2", "--teacher-train", "60", "--test-limit", "20", "--json", "r.json"]
    }

    /// MNIST-format IDX files (uncompressed): 60 training and 20 test images of 8×8, 10 classes of checkerboards whose
    /// bright squares' level is the class.
    func writeSource(_ dir: String) throws {
        func idx(_ name: String, _ shape: [Int], _ values: [UInt8]) throws {
            var d = Data([0, 0, 0x08, UInt8(shape.count)])
            for s in shape { d.append(contentsOf: [24, 16, 8, 0].map { UInt8((s >> $0) & 0xFF) }) }
            d.append(contentsOf: values)
            try d.write(to: URL(fileURLWithPath: dir + "/" + name))
        }
        var state: UInt64 = 3
        func noise() -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(state >> 60) - 8
        }
        for (split, n) in [("train", 60), ("t10k", 20)] {
            let labels = (0..<n).map { ($0 * 7) % 10 }
            var pixels: [UInt8] = []
            for l in labels {
                for r in 0..<8 { for c in 0..<8 { pixels.append(UInt8(max(0, min(255, ((r + c) % 2 == 0 ? 10 + 24 * l : 10) + noise())))) } }
            }
            try idx("\(split)-images-idx3-ubyte", [n, 8, 8], pixels)
            try idx("\(split)-labels-idx1-ubyte", [n], labels.map(UInt8.init))
        }
    }

    func exists(_ p: String) -> Bool { FileManager.default.fileExists(atPath: p) }
    func bytes(_ p: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: p)) }

    @Test func planWorkMergeEqualsTheSingleMachineReproductionAndBadInputIsRefused() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("certify-distill-plan-\(getpid())").path
        try? FileManager.default.removeItem(atPath: base)
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (source, dir, single) = (base + "/source", base + "/run", base + "/single")
        for d in [source, dir, single] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        try writeSource(source)

        var r = try certify(["plan", "distill", "--method", "nrrdd", "--output", "set.h5", "-o", "p.json"], in: dir)
        #expect(r.status == 2 && r.err.contains("only the reproduction (--reproduce) runs as a plan") && !exists(dir + "/p.json"), "\(r.err)")
        r = try certify(["plan", "distill"] + args(source) + ["-o", "plan.json"], in: dir)
        #expect(r.status == 0 && r.out.contains("26 units"), "\(r.out) \(r.err)")
        let plan = try JSONDecoder().decode(WorkPlan.self, from: bytes(dir + "/plan.json"))
        #expect(plan.command == "distill" && plan.inputs.count == 4 && plan.seeds == [0, 1] && plan.config["teacher_seed"] == "1000003"
                && plan.config["kd_tau"] == "4.0" && plan.config["student_widths"] == "8,16,32", "\(plan.config)")
        #expect(plan.units[0].name == "seed 0: random onehot" && plan.units[25].name == "sweep seed 0 epsilon 0.5 alpha_dbr 10.0: random dbr")

        // Out of range: exit 2, nothing run.
        for (extra, env) in [(["--unit", "26"], [:]), ([], ["SLURM_ARRAY_TASK_ID": "30"])] {
            r = try certify(["work", "plan.json"] + extra, in: dir, env: env)
            #expect(r.status == 2 && r.err.contains("out of range"), "\(extra) \(env): \(r.err)")
        }
        #expect(!exists(dir + "/plan.units/prepare.bin"), "no work after a bad index")

        // Units out of order: two workers race for the teacher (one trains it, the other waits), then two shards at once.
        final class Out: @unchecked Sendable { var runs: [CLIRun?] = [nil, nil] }
        for work in [[["--unit", "20"], ["--unit", "3"]], [["--shard", "1/2"], ["--shard", "0/2"]]] {
            let out = Out()
            DispatchQueue.concurrentPerform(iterations: 2) { w in out.runs[w] = try? certify(["work", "plan.json"] + work[w], in: dir) }
            for run in out.runs { #expect(run?.status == 0, "\(work): \(run?.err ?? "no run")") }
        }
        r = try certify(["status", "plan.json"], in: dir)
        #expect(r.status == 0 && r.out.contains("distill, 26 units") && r.out.contains("done 26, running 0, failed 0, not started 0"), "\(r.out)")
        let merged = try certify(["merge", "plan.json"], in: dir)
        #expect(merged.status == 0, "\(merged.err)")

        let one = try certify(["distill"] + args(source), in: single)
        #expect(one.status == 0, "\(one.err)")
        #expect(merged.out == one.out && one.out.contains("nrrdd  soft"), "the table: \(merged.out) vs \(one.out)")
        let json = try bytes(single + "/r.json")
        #expect(try bytes(dir + "/r.json") == json, "r.json differs between the single-machine reproduction and the merge")
        let text = String(decoding: json, as: UTF8.self)
        #expect(text.contains("\"command\" : \"certify distill --reproduce --seeds 2") && text.contains("\"date\" : \"2023-11-14T22:13:20Z\""))
        #expect(!FileManager.default.fileExists(atPath: single + "/plan.units"), "the single-machine run leaves no units behind")

        // A plan edited after its units were written.
        let planText = try String(contentsOfFile: dir + "/plan.json", encoding: .utf8)
        let edited = planText.replacingOccurrences(of: "\"kd_tau\" : \"4.0\"", with: "\"kd_tau\" : \"5.0\"")
        #expect(edited != planText)
        try edited.write(toFile: dir + "/plan.json", atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(atPath: dir + "/r.json")
        for cmd in [["work", "plan.json", "--all"], ["merge", "plan.json"]] {
            r = try certify(cmd, in: dir)
            #expect(r.status == 2 && r.err.contains("edited after it was made"), "\(cmd): \(r.err)")
        }
        try planText.write(toFile: dir + "/plan.json", atomically: true, encoding: .utf8)

        // A unit of another certify version: an error, never silently replaced.
        let unit7 = dir + "/plan.units/unit-00007.json", good7 = try bytes(unit7)
        var record = try JSONDecoder().decode(UnitRecord.self, from: good7)
        record.version = "0.0.1"
        record.checksum = record.computedChecksum
        try JSONEncoder().encode(record).write(to: URL(fileURLWithPath: unit7))
        for cmd in [["merge", "plan.json"], ["work", "plan.json", "--unit", "7"]] {
            r = try certify(cmd, in: dir)
            #expect(r.status == 2 && r.err.contains("written by certify 0.0.1"), "\(cmd): \(r.err)")
        }
        try good7.write(to: URL(fileURLWithPath: unit7))

        // A unit truncated by a killed job: never merged, redone by the next worker.
        let unit11 = dir + "/plan.units/unit-00011.json"
        try bytes(unit11).prefix(200).write(to: URL(fileURLWithPath: unit11))
        r = try certify(["merge", "plan.json"], in: dir)
        #expect(r.status == 2 && r.err.contains("unit-00011.json: truncated or corrupt"), "\(r.err)")
        #expect(!exists(dir + "/r.json"), "never a merged report from inconsistent units")
        r = try certify(["work", "plan.json", "--all"], in: dir)
        #expect(r.status == 0 && r.out.contains("ran 1 (1 redone") && r.out.contains("26/26"), "\(r.out) \(r.err)")
        r = try certify(["merge", "plan.json"], in: dir)
        #expect(r.status == 0 && (try? bytes(dir + "/r.json")) == json, "\(r.err)")
    }
}
