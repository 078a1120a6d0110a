// `certify plan audit`, `work`, `merge`, `status` end to end on the tiny IDX source: the merged files
// equal the single-machine audit byte for byte, and every bad input — a unit index out of range, a plan
// edited after units were written, units of another plan or version, a truncated or corrupt unit file,
// racing workers, stale and live locks — is a clear error (exit 2) or a safe skip, never a merged report.

import Certification
import Foundation
import Testing
@testable import InputGradients

/// Runs certify in `cwd` with extra environment (SOURCE_DATE_EPOCH fixed, no array-job index inherited).
func runCertify(_ args: [String], in cwd: String, env extra: [String: String] = [:]) throws -> CLIRun {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: certifyExecutable())
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: cwd)
    var env = ProcessInfo.processInfo.environment
    for k in ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"] { env[k] = nil }
    env["SOURCE_DATE_EPOCH"] = "1700000000"
    env["CERTIFY_ROOT"] = packageRootPath
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

/// Whether this build's `certify` has the plan subcommands.
let plansWired: Bool = auditWired && ((try? runCertify(["work", "--help"]))?.status ?? 1) == 0

@Suite(.enabled(if: plansWired)) struct PlanCLI {
    /// A tiny audit: 2 levels × 2 arms × 2 seeds = 8 units.
    func auditArgs(_ source: String) -> [String] {
        ["--method", "gradient", "--source", source, "--ks", "0.5,1", "--seeds", "2", "--learner-epochs", "1", "--learner-hidden", "8,8",
         "--model-epochs", "1", "--jobs", "1", "--json", "r.json", "--svg", "r.svg"] + tinyBlockArgs
    }

    /// A fresh folder with a plan of the tiny audit: (folder, source, plan path).
    func planned(_ name: String) throws -> (String, String, String) {
        let source = try tinySource("plan-\(name)")
        let dir = source + "/run"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let r = try runCertify(["plan", "audit"] + auditArgs(source) + ["-o", "plan.json"], in: dir)
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("8 units"), "\(r.out)")
        return (dir, source, dir + "/plan.json")
    }

    func unitFile(_ dir: String, _ i: Int) -> String { dir + String(format: "/plan.units/unit-%05d.json", i) }
    func exists(_ p: String) -> Bool { FileManager.default.fileExists(atPath: p) }

    @Test func unitsMergedEqualTheSingleMachineAuditByteForByte() throws {
        let (dir, source, _) = try planned("same")
        for i in [5, 0, 7] { #expect(try runCertify(["work", "plan.json", "--unit", "\(i)"], in: dir).status == 0) }
        var r = try runCertify(["work", "plan.json", "--shard", "1/2"], in: dir)
        #expect(r.status == 0 && r.out.contains("already done 2"), "\(r.out) \(r.err)")
        r = try runCertify(["work", "plan.json"], in: dir, env: ["SLURM_ARRAY_TASK_ID": "2"])
        #expect(r.status == 0 && r.out.contains("units 2: ran 1"), "\(r.out) \(r.err)")
        r = try runCertify(["work", "plan.json"], in: dir, env: ["JOB_COMPLETION_INDEX": "4"])
        #expect(r.status == 0 && r.out.contains("units 4: ran 1"), "\(r.out) \(r.err)")
        r = try runCertify(["status", "plan.json"], in: dir)
        #expect(r.status == 0 && r.out.contains("done 7, running 0, failed 0, not started 1"), "\(r.out)")
        r = try runCertify(["work", "plan.json", "--all"], in: dir)
        #expect(r.status == 0 && r.out.contains("ran 1, already done 7") && r.out.contains("8/8"), "\(r.out) \(r.err)")
        let merged = try runCertify(["merge", "plan.json"], in: dir)
        #expect(merged.status == 0, "\(merged.err)")

        let single = dir + "/../single"
        try? FileManager.default.removeItem(atPath: single)
        try FileManager.default.createDirectory(atPath: single, withIntermediateDirectories: true)
        let audit = try runCertify(["audit"] + auditArgs(source), in: single)
        #expect(audit.status == 0, "\(audit.err)")
        #expect(merged.out == audit.out, "the table")
        for f in ["r.json", "r.svg"] {
            let a = try Data(contentsOf: URL(fileURLWithPath: single + "/" + f)), b = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + f))
            #expect(a == b, "\(f) differs between the single-machine audit and the merge")
        }
        let report = try JSONDecoder().decode(AuditReport.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/r.json")))
        #expect(report.diffROAR.map(\.k) == [0.5, 1.0] && report.diffROAR[0].accTopKept.count == 2)
        #expect(report.provenance?["command"]?.hasPrefix("certify audit --method gradient") == true, "\(report.provenance ?? [:])")
    }

    @Test func unitIndexOutOfRangeIsExitTwo() throws {
        let (dir, _, _) = try planned("range")
        for args in [["--unit", "8"], ["--unit", "-1"], ["--shard", "2/2"], ["--shard", "x"]] {
            let r = try runCertify(["work", "plan.json"] + args, in: dir)
            #expect(r.status == 2, "\(args): \(r.err)")
        }
        var r = try runCertify(["work", "plan.json", "--unit", "8"], in: dir)
        #expect(r.err.contains("out of range") && r.err.contains("0..<8"), "\(r.err)")
        r = try runCertify(["work", "plan.json"], in: dir, env: ["SLURM_ARRAY_TASK_ID": "12"])
        #expect(r.status == 2 && r.err.contains("SLURM_ARRAY_TASK_ID=12 is out of range"), "\(r.err)")
        r = try runCertify(["work", "plan.json"], in: dir)
        #expect(r.status == 2 && r.err.contains("which units?"), "\(r.err)")
        #expect(!exists(dir + "/plan.units/prepare.bin"), "no work after a bad index")
    }

    @Test func planEditedAfterUnitsWereWrittenIsRefused() throws {
        let (dir, _, plan) = try planned("edited")
        #expect(try runCertify(["work", "plan.json", "--unit", "0"], in: dir).status == 0)
        // An edit of the plan file itself: its hash no longer matches its content.
        let text = try String(contentsOfFile: plan, encoding: .utf8)
        try text.replacingOccurrences(of: "\"learner_epochs\" : \"1\"", with: "\"learner_epochs\" : \"2\"").write(toFile: plan, atomically: true, encoding: .utf8)
        for cmd in [["work", "plan.json", "--all"], ["merge", "plan.json"], ["status", "plan.json"]] {
            let r = try runCertify(cmd, in: dir)
            #expect(r.status == 2 && r.err.contains("edited after it was made"), "\(cmd): \(r.err)")
        }
        // A new plan at the same path (another configuration): the old units belong to another plan.
        let r0 = try runCertify(["plan", "audit"] + auditArgs(dir + "/..").map { $0 == "2" ? "3" : $0 } + ["-o", "plan.json"], in: dir)
        #expect(r0.status == 0, "\(r0.err)")
        var r = try runCertify(["work", "plan.json", "--unit", "0"], in: dir)
        #expect(r.status == 2 && r.err.contains("another plan"), "\(r.err)")
        r = try runCertify(["merge", "plan.json"], in: dir)
        #expect(r.status == 2 && r.err.contains("another plan"), "\(r.err)")
        #expect(!exists(dir + "/r.json"), "never a merged report from inconsistent units")
    }

    @Test func unitsFromAnotherVersionAreRefused() throws {
        let (dir, _, _) = try planned("version")
        #expect(try runCertify(["work", "plan.json", "--all"], in: dir).status == 0)
        var record = try JSONDecoder().decode(UnitRecord.self, from: Data(contentsOf: URL(fileURLWithPath: unitFile(dir, 3))))
        record.version = "0.0.1"
        record.checksum = record.computedChecksum
        try JSONEncoder().encode(record).write(to: URL(fileURLWithPath: unitFile(dir, 3)))
        var r = try runCertify(["merge", "plan.json"], in: dir)
        #expect(r.status == 2 && r.err.contains("written by certify 0.0.1"), "\(r.err)")
        #expect(!exists(dir + "/r.json"))
        r = try runCertify(["work", "plan.json", "--all"], in: dir)
        #expect(r.status == 2 && r.err.contains("written by certify 0.0.1"), "never silently replaced: \(r.err)")
    }

    @Test func truncatedOrCorruptUnitIsNeverMergedAndIsRedone() throws {
        let (dir, _, _) = try planned("truncated")
        #expect(try runCertify(["work", "plan.json", "--all"], in: dir).status == 0)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: unitFile(dir, 6)))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: unitFile(dir, 6)))
        // A changed value with the old checksum: corrupt.
        let text = try String(contentsOfFile: unitFile(dir, 1), encoding: .utf8)
        let edited = text.replacingOccurrences(of: "\"seconds\" : ", with: "\"seconds\" : 1")
        #expect(edited != text)
        try edited.write(toFile: unitFile(dir, 1), atomically: true, encoding: .utf8)
        var r = try runCertify(["merge", "plan.json"], in: dir)
        #expect(r.status == 2, "\(r.err)")
        #expect(r.err.contains("unit-00006.json: truncated or corrupt") && r.err.contains("unit-00001.json: corrupt"), "\(r.err)")
        #expect(!exists(dir + "/r.json"), "never a merged report from damaged units")
        r = try runCertify(["work", "plan.json", "--all"], in: dir)
        #expect(r.status == 0 && r.out.contains("ran 2 (2 redone"), "\(r.out) \(r.err)")
        r = try runCertify(["merge", "plan.json"], in: dir)
        #expect(r.status == 0 && exists(dir + "/r.json"), "\(r.err)")
    }

    @Test func racingWorkersAndLocks() throws {
        let (dir, _, _) = try planned("race")
        // A live worker's lock (this test process, this host): the unit is skipped, never run twice.
        try FileManager.default.createDirectory(atPath: dir + "/plan.units", withIntermediateDirectories: true)
        let host = ProcessInfo.processInfo.hostName
        let live = "{\"host\":\"\(host)\",\"pid\":\(getpid()),\"started\":\"2026-01-01T00:00:00Z\"}"
        try live.write(toFile: dir + "/plan.units/unit-00002.lock", atomically: true, encoding: .utf8)
        // A dead process's lock on this host: taken over.
        let gone = Process()
        gone.executableURL = URL(fileURLWithPath: "/bin/true")
        try gone.run()
        gone.waitUntilExit()
        let stale = "{\"host\":\"\(host)\",\"pid\":\(gone.processIdentifier),\"started\":\"2026-01-01T00:00:00Z\"}"
        try stale.write(toFile: dir + "/plan.units/unit-00005.lock", atomically: true, encoding: .utf8)
        var r = try runCertify(["status", "plan.json"], in: dir)
        #expect(r.out.contains("running unit 2") && r.out.contains("STALE"), "\(r.out)")

        // Two workers race over every unit.
        final class Out: @unchecked Sendable { var runs: [CLIRun?] = [nil, nil] }
        let out = Out()
        DispatchQueue.concurrentPerform(iterations: 2) { w in out.runs[w] = try? runCertify(["work", "plan.json", "--all"], in: dir) }
        for run in out.runs { #expect(run?.status == 0, "\(run?.err ?? "no run")") }
        let ran = out.runs.compactMap { $0?.out }.map { o -> Int in
            Int(o.components(separatedBy: "ran ").dropFirst().first?.prefix(while: \.isNumber) ?? "") ?? -1
        }
        #expect(ran.reduce(0, +) == 7, "each of the 7 free units run exactly once: \(ran)")
        #expect(exists(unitFile(dir, 5)) && !exists(dir + "/plan.units/unit-00005.lock"), "the stale lock was taken over")
        #expect(!exists(unitFile(dir, 2)), "the live worker's unit is skipped")
        r = try runCertify(["merge", "plan.json"], in: dir)
        #expect(r.status == 2 && r.err.contains("1 of 8 units are not done: 2 (1 running)"), "\(r.err)")
        #expect(!exists(dir + "/r.json"))
        try FileManager.default.removeItem(atPath: dir + "/plan.units/unit-00002.lock")
        #expect(try runCertify(["work", "plan.json", "--unit", "2"], in: dir).status == 0)
        r = try runCertify(["merge", "plan.json"], in: dir)
        #expect(r.status == 0, "\(r.err)")
    }

    @Test func damagedPreparationFailedUnitsAndTheoryPlans() throws {
        let (dir, source, _) = try planned("prep")
        #expect(try runCertify(["work", "plan.json", "--all"], in: dir).status == 0)
        let prep = dir + "/plan.units/prepare.bin"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: prep))
        try bytes.prefix(bytes.count - 100).write(to: URL(fileURLWithPath: prep))
        var r = try runCertify(["merge", "plan.json"], in: dir)
        #expect(r.status == 2 && r.err.contains("prepare.bin: truncated or corrupt"), "\(r.err)")
        #expect(!exists(dir + "/r.json"))
        // A unit whose last run failed: status shows the error.
        try FileManager.default.removeItem(atPath: unitFile(dir, 3))
        try #"{"unit": "3", "error": "boom: out of memory"}"#.write(toFile: dir + "/plan.units/unit-00003.error.json", atomically: true, encoding: .utf8)
        r = try runCertify(["status", "plan.json"], in: dir)
        #expect(r.out.contains("done 7, running 0, failed 1") && r.out.contains("failed unit 3") && r.out.contains("boom: out of memory"), "\(r.out)")
        #expect(r.out.contains("remaining 1 units"), "\(r.out)")
        r = try runCertify(["plan", "audit", "--theory", "-o", "t.json"], in: dir)
        #expect(r.status == 2 && r.err.contains("not split into units"), "\(r.err)")
        r = try runCertify(["plan", "audit"] + auditArgs(source + "/nowhere") + ["-o", "x.json"], in: dir)
        #expect(r.status == 2 && r.err.contains("missing file") && !exists(dir + "/x.json"), "\(r.err)")
    }

    @Test func locksOfOtherHostsWithoutHeartbeatAreTakenOver() throws {
        let (dir, _, _) = try planned("heartbeat")
        try FileManager.default.createDirectory(atPath: dir + "/plan.units", withIntermediateDirectories: true)
        let other = #"{"host":"a-node-that-died","pid":4242,"started":"2026-01-01T00:00:00Z"}"#
        for i in [0, 1] { try other.write(toFile: dir + String(format: "/plan.units/unit-%05d.lock", i), atomically: true, encoding: .utf8) }
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -7200)], ofItemAtPath: dir + "/plan.units/unit-00000.lock")
        var r = try runCertify(["work", "plan.json", "--all"], in: dir)
        #expect(r.status == 0 && r.out.contains("ran 7") && r.out.contains("held by other workers 1"), "\(r.out) \(r.err)")
        #expect(exists(unitFile(dir, 0)), "a lock without heartbeat for 2 hours is taken over")
        #expect(!exists(unitFile(dir, 1)), "a fresh lock of another host is respected")
        r = try runCertify(["status", "plan.json"], in: dir)
        #expect(r.out.contains("running unit 1") && r.out.contains("a-node-that-died") && !r.out.contains("STALE"), "\(r.out)")
        r = try runCertify(["work", "plan.json", "--unit", "1"], in: dir, env: ["CERTIFY_LOCK_STALE_SECONDS": "0.001"])
        #expect(r.status == 0 && r.out.contains("ran 1"), "\(r.out) \(r.err)")
    }

    @Test func slurmScripts() throws {
        let (dir, _, plan) = try planned("slurm")
        var r = try runCertify(["slurm", "plan.json", "--partition", "cpu", "--time", "0:10:00", "--cpus", "2", "--mem", "1G", "--max-parallel", "3"], in: dir)
        #expect(r.status == 0, "\(r.err)")
        let work = try String(contentsOfFile: dir + "/plan.units/slurm-work.sbatch", encoding: .utf8)
        #expect(work.contains("#SBATCH --array=0-7%3") && work.contains("#SBATCH --partition=cpu") && work.contains("#SBATCH --mem=1G"), "\(work)")
        #expect(work.contains("work '\(plan)' --jobs 2"), "\(work)")
        let merge = try String(contentsOfFile: dir + "/plan.units/slurm-merge.sbatch", encoding: .utf8)
        #expect(merge.contains("merge '\(plan)'") && merge.contains("--kill-on-invalid-dep=yes"), "\(merge)")
        r = try runCertify(["slurm", "plan.json", "--shards", "2"], in: dir)
        #expect(try String(contentsOfFile: dir + "/plan.units/slurm-work.sbatch", encoding: .utf8).contains("--array=0-1\n"), "\(r.out)")
        r = try runCertify(["work", "plan.json", "--shards", "4"], in: dir, env: ["SLURM_ARRAY_TASK_ID": "1"])
        #expect(r.status == 0 && r.out.contains("units 1, 5: ran 2"), "an array task of shards: \(r.out) \(r.err)")
        r = try runCertify(["work", "plan.json", "--shards", "4"], in: dir, env: ["SLURM_ARRAY_TASK_ID": "4"])
        #expect(r.status == 2 && r.err.contains("out of range for --shards 4"), "\(r.err)")
        r = try runCertify(["slurm", "plan.json", "--missing"], in: dir)
        #expect(try String(contentsOfFile: dir + "/plan.units/slurm-work.sbatch", encoding: .utf8).contains("--array=0,2,3,4,6,7\n"), "\(r.out)")
        r = try runCertify(["slurm", "plan.json", "--mem", "1G; rm -rf /"], in: dir)
        #expect(r.status == 2)
    }
}

@Suite struct SHA256Vectors {
    @Test func knownDigests() {
        #expect(SHA256.hex(Data()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Data("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        var s = SHA256()
        for _ in 0..<1000 { s.update(Data(repeating: 0x61, count: 1000)) }
        #expect(s.finalize().map { String(format: "%02x", $0) }.joined() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
