// `certify plan|work|merge|status|slurm`: long runs as plans of independent units (see WorkPlan.swift
// in Certification). `plan` writes the plan; `work` runs units (one, a shard, the index of an array job,
// or all) into PLAN.units/; `merge` checks every unit and writes the command's report; `status` shows
// progress; `slurm` writes (and submits) a Slurm job array and its dependent merge job.

import ArgumentParser
import Certification
import Foundation

/// A command that can run as a plan: `audit`, `graph-audit`, `distill --reproduce` and `dartsgt-reproduce` (`plan search`).
protocol PlannedCommand {
    /// Parses the command's own arguments (validated as on the command line).
    static func load(arguments: [String]) throws -> Self
    func makePlan(arguments: [String], directory: String) throws -> WorkPlan
    /// Runs units (done units are skipped); returns a summary line.
    func work(store: WorkStore, units: [Int], jobs: Int?, log: @escaping @Sendable (String) -> Void) throws -> String
    /// Only the shared preparation (a separate first job on a cluster).
    func prepareOnly(store: WorkStore, log: @escaping @Sendable (String) -> Void) throws
    /// Checks every unit, prints the report and writes the command's output files (paths overridden when given).
    func merge(store: WorkStore, outputs: [String: String], log: @escaping @Sendable (String) -> Void) throws
}

func plannedCommand(_ name: String) -> (any PlannedCommand.Type)? {
    switch name {
    case "audit": Audit.self
    case "graph-audit": GraphAuditCommand.self
    case "dartsgt-reproduce": DARTSGTReproduce.self
    case "distill": Distill.self
    default: nil
    }
}

extension Audit: PlannedCommand {
    static func load(arguments: [String]) throws -> Audit {
        let a: Audit
        do { a = try Audit.parse(arguments) } catch {
            throw PlanError("the plan's audit arguments do not parse (\(Audit.message(for: error)))")
        }
        a.resources.apply()   // the plan's --max-memory holds in every worker and the merge
        return a
    }

    func makePlan(arguments: [String], directory: String) throws -> WorkPlan {
        try AuditPlanner.plan(self, arguments: arguments, directory: directory)
    }

    func work(store: WorkStore, units: [Int], jobs: Int?, log: @escaping @Sendable (String) -> Void) throws -> String {
        let s = try AuditPlanner.work(self, store: store, units: units, jobs: jobs ?? self.jobs, verifyInputs: true, log: log)
        return "ran \(s.ran)\(s.redone > 0 ? " (\(s.redone) redone: damaged files)" : ""), already done \(s.alreadyDone), held by other workers \(s.heldElsewhere)"
    }

    func prepareOnly(store: WorkStore, log: @escaping @Sendable (String) -> Void) throws {
        _ = try AuditPlanner.prepare(self, store: store, verifyInputs: true, log: log)
    }

    func merge(store: WorkStore, outputs: [String: String], log: @escaping @Sendable (String) -> Void) throws {
        var a = self
        if let j = outputs["json"] { a.json = j }
        if let s = outputs["svg"] { a.svg = s }
        for path in [a.json, a.svg].compactMap({ $0 }) { try SafeOutput.prepare(path) }
        var (report, compute) = try AuditPlanner.merge(a, store: store, log: log)
        report.seconds = reproducibleDate() == nil ? compute : 0
        try a.printAndWrite(report)
    }
}

/// Loads a plan and its command; works in the plan's directory (where its relative paths point).
func openPlan(_ path: String) throws -> (WorkStore, any PlannedCommand) {
    let abs = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    let plan = try WorkPlan.load(abs)
    guard let type = plannedCommand(plan.command) else { throw PlanError("\(path): unknown planned command '\(plan.command)'") }
    guard FileManager.default.changeCurrentDirectoryPath(plan.directory) else {
        throw PlanError("\(path): the plan's working directory \(plan.directory) does not exist here (its relative paths point there)")
    }
    return (WorkStore(planPath: abs, plan: plan), try type.load(arguments: plan.arguments))
}

func absolute(_ p: String) -> String { p.hasPrefix("/") ? p : FileManager.default.currentDirectoryPath + "/" + p }

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Write a run as a plan of independent units (run them with `certify work`, anywhere).",
        discussion: """
            certify plan audit [audit options] -o PLAN.json: the full configuration (every option, each data source with \
            its SHA-256, seeds, certify version and commit, a hash of it all) and the list of units (one per DiffROAR \
            retraining); certify plan graph-audit [graph-audit options] -o PLAN.json: one unit per test graph (contiguous \
            chunks of graphs beyond 1000 graphs, at most 1000 units); certify plan distill --reproduce [distill options] -o PLAN.json: \
            one unit per student run (construction × labels × seed, then the sweep's; at most 1000 units), the teacher trained \
            once as the shared preparation. Then: certify work PLAN.json --all | --unit I | --shard i/n (or the index of an array job), \
            certify status PLAN.json, certify merge PLAN.json (the same report, JSON and SVG as the single-machine command), \
            certify slurm PLAN.json. Exit codes: 0 done, 2 bad input.
            certify plan search [dartsgt-reproduce options] -o PLAN.json (alias: plan dartsgt-reproduce): one unit per (seed, arm) of the DARTS-GT reproduction; the searched arm runs its seed's search.
            """,
        subcommands: [PlanAudit.self, PlanGraphAudit.self, PlanSearch.self, PlanDistill.self])
}

struct PlanAudit: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "audit", abstract: "Plan `certify audit` (the --theory cases are not planned).")

    @OptionGroup var audit: Audit
    @Option(name: .shortAndLong, help: "The plan file to write (its units go to PLAN.units/ next to it).") var output: String

    func run() throws {
        try SafeOutput.prepare(output)
        let args = PlanAudit.auditArguments(Array(CommandLine.arguments.dropFirst()))
        let plan = try audit.makePlan(arguments: args, directory: FileManager.default.currentDirectoryPath)
        // The recorded arguments must give back this very audit.
        _ = try Audit.load(arguments: args)
        try SafeOutput.write(output, data: try plan.encoded())
        print("wrote \(output): \(plan.units.count) units, config hash \(plan.configHash.prefix(12))")
        print("run: certify work \(output) --all   (or --unit I, --shard i/n, or as a job array: certify slurm \(output))")
    }

    /// The audit's arguments: what follows `plan audit`, without -o/--output and its value.
    static func auditArguments(_ all: [String], command: String = "audit") -> [String] {
        var rest = all
        if let i = rest.firstIndex(of: "plan"), i + 1 < rest.count, rest[i + 1] == command { rest = Array(rest[(i + 2)...]) }
        var out: [String] = []
        var i = 0
        while i < rest.count {
            let a = rest[i]
            if a == "-o" || a == "--output" { i += 2; continue }
            if a.hasPrefix("--output=") { i += 1; continue }
            out.append(a)
            i += 1
        }
        return out
    }
}

struct Work: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run units of a plan; one result file per unit, written atomically next to the plan.",
        discussion: """
            Which units: --unit I, --shard i/n (units i, i+n, …), --all, or without these the index of an array job \
            (SLURM_ARRAY_TASK_ID, else JOB_COMPLETION_INDEX; with --shards n it is a shard index). Done units are \
            skipped, so a rerun after preemption redoes nothing; a unit claimed by a live worker (its lock file: host, \
            pid) is skipped; a lock left by a dead process of this host, or by another host without heartbeat for \
            10 minutes ($CERTIFY_LOCK_STALE_SECONDS), is taken over. Exit codes: 0 done, 2 error \
            (index out of range, plan edited, units of another version, a failed unit).
            """)

    @Argument(help: "The plan (from `certify plan`).") var plan: String
    @Option(help: "Run unit I (0-based).") var unit: Int?
    @Option(help: "Run shard i of n: units i, i + n, i + 2n, … (e.g. 0/4).") var shard: String?
    @Option(help: "With an array job's index: the index is a shard of n (as written by `certify slurm --shards n`).") var shards: Int?
    @Flag(help: "Run every unit not done yet.") var all = false
    @Flag(help: "Only make the shared preparation (the first job of `certify slurm`).") var prepare = false
    @Option(help: "Concurrent units in this worker (default: the plan's --jobs).") var jobs: Int?

    func validate() throws {
        guard [unit != nil, shard != nil, all, prepare].filter({ $0 }).count <= 1 else { throw ValidationError("give at most one of --unit, --shard, --all, --prepare") }
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be ≥ 1") }
        if let shards, shards < 1 { throw ValidationError("--shards must be ≥ 1") }
    }

    func run() throws {
        let (store, command) = try openPlan(plan)
        let log = Audit.logger()
        let n = store.plan.units.count
        if prepare {
            try command.prepareOnly(store: store, log: log)
            print("prepared \(store.directory)")
            return
        }
        var units: [Int]
        if all {
            units = Array(0..<n)
        } else if let unit {
            guard unit >= 0 && unit < n else { throw PlanError("--unit \(unit) is out of range: the plan has units 0..<\(n) (0...\(n - 1))") }
            units = [unit]
        } else if let shard {
            units = try WorkStore.shard(shard, count: n)
        } else if let (i, key) = try WorkStore.indexFromEnvironment() {
            if let shards {
                guard i >= 0 && i < shards else { throw PlanError("\(key)=\(i) is out of range for --shards \(shards)") }
                units = try WorkStore.shard("\(i)/\(shards)", count: n)
            } else {
                guard i >= 0 && i < n else { throw PlanError("\(key)=\(i) is out of range: the plan has units 0..<\(n)") }
                units = [i]
            }
        } else {
            throw PlanError("which units? give --unit I, --shard i/n or --all (or run as an array job: SLURM_ARRAY_TASK_ID / JOB_COMPLETION_INDEX)")
        }
        let summary = try command.work(store: store, units: units, jobs: jobs, log: log)
        let done = store.plan.units.indices.filter { if case .done = store.state($0) { true } else { false } }.count
        print("\(plan): units \(truncatedList(units.map(String.init), limit: 12)): \(summary); \(done)/\(n) units of the plan done")
    }
}

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every unit of a plan and write the command's report, JSON and SVG.",
        discussion: """
            Every unit must be present and consistent with the plan (same config hash, same certify version and commit, \
            intact, made from the same preparation); otherwise nothing is written and the exit code is 2. The output is \
            exactly what the single-machine command writes (with SOURCE_DATE_EPOCH set, byte for byte: the date is that \
            time and the wall time 0).
            """)

    @Argument(help: "The plan.") var plan: String
    @Option(help: "Write the JSON report here instead of the plan's --json.") var json: String?
    @Option(help: "Write the SVG here instead of the plan's --svg.") var svg: String?

    func run() throws {
        var outputs: [String: String] = [:]
        if let json { outputs["json"] = absolute(json) }
        if let svg { outputs["svg"] = absolute(svg) }
        let (store, command) = try openPlan(plan)
        try command.merge(store: store, outputs: outputs, log: Audit.logger())
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Units of a plan: done, running (lock files), failed (with the error), remaining, estimated time left.")

    @Argument(help: "The plan.") var plan: String

    func run() throws {
        let (store, _) = try openPlan(plan)
        let n = store.plan.units.count
        var done: [UnitRecord] = [], running: [(Int, UnitLock, Bool)] = [], failed: [(Int, String)] = [], invalid: [String] = [], todo: [Int] = []
        for i in 0..<n {
            switch store.state(i) {
            case .done(let r): done.append(r)
            case .invalid(let why): invalid.append(why); todo.append(i)
            case .missing:
                if let l = store.readLock(i) { running.append((i, l, WorkStore.isStale(l, path: store.lockPath(i)))) }
                else if let f = store.readFailure(i) { failed.append((i, f["error"] ?? "?")) }
                else { todo.append(i) }
            }
        }
        print("\(plan): \(store.plan.command), \(n) units, config hash \(store.plan.configHash.prefix(12)), certify \(store.plan.version)")
        let stale = running.filter { $0.2 }.count
        print("done \(done.count), running \(running.count - stale), failed \(failed.count), not started \(todo.count)"
              + (stale > 0 ? ", stale locks \(stale) (workers that are gone; taken over by the next worker)" : ""))
        for (i, l, stale) in running {
            print("  running unit \(i) (\(store.plan.units[i].name)): \(l.host) pid \(l.pid) since \(l.started)\(stale ? " — STALE (the process is gone, or no heartbeat for \(Int(WorkStore.staleSeconds)) s): the next worker takes it over" : "")")
        }
        for (i, e) in failed { print("  failed unit \(i) (\(store.plan.units[i].name)): \(e)") }
        for w in invalid { print("  unusable: \(w)") }
        if !done.isEmpty {
            let mean = done.reduce(0) { $0 + $1.seconds } / Double(done.count)
            let left = n - done.count
            let parallel = Swift.max(1, running.filter { !$0.2 }.count)
            print(String(format: "unit time: mean %.1f s over %d done units; remaining %d units ≈ %.0f s of compute, ≈ %.0f s at the current %d in parallel",
                         mean, done.count, left, mean * Double(left), mean * Double(left) / Double(parallel), parallel))
        } else {
            print("remaining time: unknown until a unit finishes")
        }
        if done.count == n { print("complete: certify merge \(plan)") }
    }
}

struct Slurm: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write (and with --submit, submit) a Slurm job array for a plan, and its dependent merge job.",
        discussion: """
            Three scripts next to the plan (PLAN.units/slurm-*.sbatch): a preparation job, the job array (one task per \
            unit, or per shard with --shards n; --array=0-N%K), and the merge job (afterok on the array). Each array task \
            runs `certify work PLAN.json` and takes its unit from SLURM_ARRAY_TASK_ID; nothing Slurm-specific is in the \
            units, so the same plan runs as a Kubernetes Indexed Job (JOB_COMPLETION_INDEX) or under GNU parallel. \
            With --missing, the array holds only the units not done (a resubmission after preemption).
            """)

    @Argument(help: "The plan.") var plan: String
    @Option(help: "Slurm partition.") var partition: String?
    @Option(help: "Time limit per array task (Slurm format, e.g. 1:00:00).") var time: String?
    @Option(help: "CPUs per task.") var cpus: Int = 1
    @Option(help: "Memory per task (e.g. 4G).") var mem: String?
    @Option(help: "At most K array tasks at a time (the %K of --array).") var maxParallel: Int?
    @Option(help: "One array task per shard of n units' share instead of one per unit.") var shards: Int?
    @Flag(help: "Only the units not done yet (per unit; not with --shards).") var missing = false
    @Option(help: "The certify executable the jobs run (default: this one).") var certify: String?
    @Flag(help: "Submit with sbatch and print the job ids.") var submit = false

    func validate() throws {
        if cpus < 1 { throw ValidationError("--cpus must be ≥ 1") }
        if let k = maxParallel, k < 1 { throw ValidationError("--max-parallel must be ≥ 1") }
        if let s = shards, s < 1 { throw ValidationError("--shards must be ≥ 1") }
        if missing && shards != nil { throw ValidationError("--missing lists units; it does not go with --shards") }
        for (name, v) in [("partition", partition), ("time", time), ("mem", mem)] {
            if let v, v.isEmpty || v.contains(where: { $0.isWhitespace || "'\"$`\\;|&".contains($0) }) { throw ValidationError("--\(name) '\(v)' is not a plain value") }
        }
    }

    func run() throws {
        let planPath = absolute(plan)
        let (store, _) = try openPlan(planPath)
        let exe = certify.map(absolute) ?? (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let n = store.plan.units.count
        var indices: [Int]
        if let shards { indices = Array(0..<Swift.min(shards, n)) }
        else if missing { indices = (0..<n).filter { if case .done = store.state($0) { false } else { true } } }
        else { indices = Array(0..<n) }
        if indices.isEmpty {
            print("every unit of \(plan) is done: certify merge \(plan)")
            return
        }
        try store.ensureDirectory()
        let q = { (s: String) in "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let stem = ((planPath as NSString).lastPathComponent as NSString).deletingPathExtension
        var common = ""
        if let partition { common += "#SBATCH --partition=\(partition)\n" }
        if let time { common += "#SBATCH --time=\(time)\n" }
        if let mem { common += "#SBATCH --mem=\(mem)\n" }
        let range = Slurm.arraySpec(indices) + (maxParallel.map { "%\($0)" } ?? "")
        let header = "#!/bin/bash\n# Written by `certify slurm` for \(planPath) (config hash \(store.plan.configHash.prefix(12))).\n"
        let prepare = header + "#SBATCH --job-name=\(stem)-prepare\n#SBATCH --cpus-per-task=\(cpus)\n" + common
            + "#SBATCH --output=\(store.directory)/slurm-prepare-%j.out\n#SBATCH --error=\(store.directory)/slurm-prepare-%j.err\nset -euo pipefail\nexec \(q(exe)) work \(q(planPath)) --prepare\n"
        let array = header + "#SBATCH --job-name=\(stem)-work\n#SBATCH --array=\(range)\n#SBATCH --cpus-per-task=\(cpus)\n" + common
            + "#SBATCH --output=\(store.directory)/slurm-work-%A_%a.out\n#SBATCH --error=\(store.directory)/slurm-work-%A_%a.err\nset -euo pipefail\n"
            + "# The unit (or shard) comes from SLURM_ARRAY_TASK_ID; done units are skipped, so a resubmission is safe.\n"
            + "exec \(q(exe)) work \(q(planPath)) --jobs \(cpus)\(shards.map { " --shards \($0)" } ?? "")\n"
        let merge = header + "#SBATCH --job-name=\(stem)-merge\n#SBATCH --cpus-per-task=1\n#SBATCH --kill-on-invalid-dep=yes\n" + common
            + "#SBATCH --output=\(store.directory)/slurm-merge-%j.out\n#SBATCH --error=\(store.directory)/slurm-merge-%j.err\nset -euo pipefail\nexec \(q(exe)) merge \(q(planPath))\n"
        let paths = ["prepare", "work", "merge"].map { store.file("slurm-\($0).sbatch") }
        for (p, body) in zip(paths, [prepare, array, merge]) {
            try SafeOutput.write(p, text: body)
            chmod(p, 0o755)
        }
        print("wrote \(paths.joined(separator: ", ")) (array \(range), \(indices.count) tasks)")
        guard submit else {
            print("submit: j=$(sbatch --parsable \(paths[0])); a=$(sbatch --parsable --dependency=afterok:$j \(paths[1])); sbatch --dependency=afterok:$a \(paths[2])")
            return
        }
        let prep = try Slurm.sbatch([paths[0]])
        let arr = try Slurm.sbatch(["--dependency=afterok:\(prep)", paths[1]])
        let mer = try Slurm.sbatch(["--dependency=afterok:\(arr)", paths[2]])
        print("submitted: prepare \(prep), array \(arr), merge \(mer)")
    }

    /// "0-11" for a contiguous range, else "3,7,9".
    static func arraySpec(_ i: [Int]) -> String {
        guard let f = i.first, let l = i.last else { return "" }
        if i == Array(f...l) { return f == l ? "\(f)" : "\(f)-\(l)" }
        return i.map(String.init).joined(separator: ",")
    }

    /// Runs `sbatch --parsable ARGS` and returns the job id.
    static func sbatch(_ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["sbatch", "--parsable"] + args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        do { try p.run() } catch { throw PlanError("cannot run sbatch (\(readableError(error)))") }
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let id = String(decoding: o, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ";").first.map(String.init) ?? ""
        guard p.terminationStatus == 0, !id.isEmpty else {
            throw PlanError("sbatch \(args.joined(separator: " ")) failed (exit \(p.terminationStatus)): \(String(decoding: e, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return id
    }
}

struct PlanGraphAudit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph-audit",
        abstract: "Plan `certify graph-audit`: one unit per test graph (contiguous chunks of ⌈B/1000⌉ graphs beyond 1000 graphs).")

    @OptionGroup var graphAudit: GraphAuditCommand
    @Option(name: .shortAndLong, help: "The plan file to write (its units go to PLAN.units/ next to it).") var output: String

    func run() throws {
        try SafeOutput.prepare(output)
        let args = PlanAudit.auditArguments(Array(CommandLine.arguments.dropFirst()), command: "graph-audit")
        // The recorded arguments must give back this very graph audit.
        _ = try GraphAuditCommand.load(arguments: args)
        let plan = try graphAudit.makePlan(arguments: args, directory: FileManager.default.currentDirectoryPath)
        try SafeOutput.write(output, data: try plan.encoded())
        print("wrote \(output): \(plan.units.count) units, config hash \(plan.configHash.prefix(12))")
        print("run: certify work \(output) --all   (or --unit I, --shard i/n, or as a job array: certify slurm \(output))")
    }
}
