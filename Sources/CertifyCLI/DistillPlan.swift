// `certify distill --reproduce` as a plan of independent units: one unit per student run — construction ×
// label kind × seed, then the ε / α_dbr sweep's runs, in the order the single-machine run has always made them
// (beyond `maxUnits` runs, a unit is a contiguous chunk of ⌈R/1000⌉ runs). The single-machine run trains one
// teacher for all seeds, so the teacher is the shared preparation: trained once, by the first worker or by
// `certify work --prepare`, into PLAN.units/prepare.bin (its weights and BN statistics as exact bit patterns, its
// test accuracy, checksummed). Each unit reads the Fashion-MNIST files (their SHA-256 checked against the plan),
// builds its distilled set (a function of construction, seed and ε only; a worker keeps the sets it built for its
// next units), relabels and trains its student. The merge prints the table and writes the JSON of
// `certify distill --reproduce`, which itself is plan → work (all units, here) → merge.

import ArgumentParser
import Certification
import Foundation
import InputGradients
import NRRDD
import Tensor

/// One student run of the reproduction.
struct DistillRunSpec: Sendable, Equatable {
    var construction: InitialSet
    var labels: LabelKind
    var seed: Int
    var epsilon: Double
    var alphaDBR: Double
    /// A run of the sensitivity sweep (the report's `sweep`), not of the main table (`arms`).
    var sweep: Bool

    var name: String {
        let arm = "\(construction.rawValue) \(labels.rawValue)"
        return sweep ? "sweep seed \(seed) epsilon \(epsilon) alpha_dbr \(alphaDBR): \(arm)" : "seed \(seed): \(arm)"
    }
}

/// The teacher, shared by every unit of a plan.
struct DistillPreparation {
    var teacher: NRRTeacher
    var accuracy: Double
    var seconds: Double

    struct Header: Codable {
        var plan: String
        var accuracyBits: String
        var seconds: Double
        var tensors: [PreparationFile.Entry]
    }

    static let magic = Data("certify-distill-prepare/1\n".utf8)

    /// The prepare.bin bytes (`PreparationFile`).
    func encoded(planHash: String) throws -> Data {
        let tensors = teacher.protocolTensors.sorted { $0.key < $1.key }
        let header = Header(plan: planHash, accuracyBits: String(accuracy.bitPattern, radix: 16), seconds: seconds,
                            tensors: tensors.map { PreparationFile.Entry(name: $0.key, shape: $0.value.shape) })
        return try PreparationFile.encode(magic: DistillPreparation.magic, header: header, tensors: tensors.map(\.value))
    }

    /// Reads prepare.bin; throws `PlanError` when it is truncated, corrupt or made for another plan.
    static func decode(_ d: Data, path: String, planHash: String) throws -> DistillPreparation {
        let (header, t) = try PreparationFile.decode(d, magic: magic, what: "a Certify distillation preparation", path: path,
                                                     planHash: planHash, plan: { (h: Header) in h.plan }, entries: { $0.tensors })
        guard let bits = UInt64(header.accuracyBits, radix: 16) else { throw PlanError("\(path): corrupt header (accuracy)") }
        let teacher: NRRTeacher
        do { teacher = try NRRTeacher(protocolTensors: t) } catch {
            throw PlanError("\(path): not a teacher (\(readableError(error)))")
        }
        return DistillPreparation(teacher: teacher, accuracy: Double(bitPattern: bits), seconds: header.seconds)
    }
}

extension Distill: PlannedCommand {
    static func load(arguments: [String]) throws -> Distill {
        let d: Distill
        do { d = try Distill.parse(arguments) } catch {
            throw PlanError("the plan's distill arguments do not parse (\(Distill.message(for: error)))")
        }
        guard d.reproduce else { throw PlanError(DistillPlanner.onlyReproduce) }
        d.resources.apply()   // the plan's --max-memory holds in every worker and the merge
        return d
    }

    func makePlan(arguments: [String], directory: String) throws -> WorkPlan {
        try DistillPlanner.plan(self, arguments: arguments, directory: directory)
    }

    func work(store: WorkStore, units: [Int], jobs: Int?, log: @escaping @Sendable (String) -> Void) throws -> String {
        let s = try DistillPlanner.work(self, store: store, units: units, verifyInputs: true, log: log)
        return "ran \(s.ran)\(s.redone > 0 ? " (\(s.redone) redone: damaged files)" : ""), already done \(s.alreadyDone), held by other workers \(s.heldElsewhere)"
    }

    func prepareOnly(store: WorkStore, log: @escaping @Sendable (String) -> Void) throws {
        _ = try DistillPlanner.prepare(self, store: store, verifyInputs: true, log: log)
    }

    func merge(store: WorkStore, outputs: [String: String], log: @escaping @Sendable (String) -> Void) throws {
        guard outputs["svg"] == nil else { throw PlanError("certify distill writes no SVG; merge a distill plan without --svg") }
        var d = self
        if let j = outputs["json"] { d.json = j }
        if let j = d.json { try SafeOutput.prepare(j) }
        var (report, compute) = try DistillPlanner.merge(d, store: store, log: log)
        report.seconds = reproducibleDate() == nil ? compute : 0
        try d.printAndWrite(report)
    }

    /// This process's arguments after the `distill` subcommand.
    static func ownArguments() -> [String] {
        let all = Array(CommandLine.arguments.dropFirst())
        guard let i = all.firstIndex(of: "distill") else { return all }
        return Array(all[(i + 1)...])
    }
}

/// The plan, work and merge of `certify distill --reproduce`.
enum DistillPlanner {
    static let prepareFile = "prepare.bin"
    /// At most this many units per plan (contiguous chunks of runs beyond it).
    static let maxUnits = 1000
    static let onlyReproduce = "only the reproduction (--reproduce) runs as a plan; --method and --evaluate are single runs: run `certify distill` itself"

    /// Every student run, in the single-machine order: seeds × constructions × label kinds, then the sweep.
    static func runs(_ d: Distill) -> [DistillRunSpec] {
        let eps = d.epsilon, alpha = d.alphaDbr
        var r: [DistillRunSpec] = []
        for seed in 0..<d.seeds {
            for c in InitialSet.allCases {
                for k in LabelKind.allCases { r.append(DistillRunSpec(construction: c, labels: k, seed: seed, epsilon: eps, alphaDBR: alpha, sweep: false)) }
            }
        }
        if d.sweep {
            for e in [0.25, 0.75] where e != eps {
                for k in [LabelKind.dbr, .soft] { r.append(DistillRunSpec(construction: .nrrdd, labels: k, seed: 0, epsilon: e, alphaDBR: alpha, sweep: true)) }
            }
            for c in [InitialSet.nrrdd, .random] {
                for a in [0.1, 10.0] where a != alpha {
                    r.append(DistillRunSpec(construction: c, labels: .dbr, seed: 0, epsilon: eps, alphaDBR: a, sweep: true))
                }
            }
        }
        return r
    }

    /// Runs per unit for `count` runs.
    static func chunk(_ count: Int) -> Int { Swift.max(1, (count + maxUnits - 1) / maxUnits) }

    /// The runs of unit `i`.
    static func range(_ i: Int, count: Int) -> Range<Int> {
        let c = chunk(count)
        return (i * c)..<Swift.min(count, (i + 1) * c)
    }

    static func unitNames(_ runs: [DistillRunSpec]) -> [String] {
        let n = (runs.count + chunk(runs.count) - 1) / chunk(runs.count)
        return (0..<n).map { i in
            let r = range(i, count: runs.count)
            return r.count == 1 ? runs[r.lowerBound].name : "runs \(r.lowerBound)-\(r.upperBound - 1)"
        }
    }

    /// The runs of a plan, checked against its units (the arguments must give back the plan's units).
    static func checkedRuns(_ d: Distill, plan: WorkPlan) throws -> [DistillRunSpec] {
        let runs = runs(d)
        guard unitNames(runs) == plan.units.map(\.name), plan.config["runs"] == "\(runs.count)" else {
            throw PlanError("the plan's units do not match its distill arguments (\(plan.units.count) units; the arguments give \(runs.count) runs); make a new plan with `certify plan distill`")
        }
        return runs
    }

    static func plan(_ d: Distill, arguments: [String], directory: String) throws -> WorkPlan {
        guard d.reproduce else { throw PlanError(onlyReproduce) }
        let cfg = d.config
        try cfg.validate()
        var inputs: [PlanInput] = []
        for split in [MNISTFormat.Split.train, .test] {
            for images in [true, false] {
                inputs.append(try PlanInput.of(try MNISTFormat.locate(d.source, MNISTFormat.stem(split, images: images)), directory: directory))
            }
        }
        let runs = runs(d)
        // Every option with its effective value, then the constants without an option (DistillConfig's summary).
        var config: [String: String] = [
            "reproduce": "\(d.reproduce)", "sweep": "\(d.sweep)", "seeds": "\(d.seeds)", "seed": "\(d.seed)", "labels": d.labels,
            "method": d.method ?? "", "output": d.output ?? "", "evaluate": d.evaluate ?? "", "json": d.json ?? "", "source": d.source,
            "ipc": "\(d.ipc)", "factor": "\(d.factor)", "mipc": "\(d.mipc)", "num_crops": "\(d.numCrops)", "epsilon": "\(d.epsilon)",
            "eta": "\(d.eta)", "nrr_steps": "\(d.nrrSteps)", "alpha_bn": "\(d.alphaBn)", "alpha_dbr": "\(d.alphaDbr)", "dbr_tau": "\(d.dbrTau)",
            "distance": d.distance, "dbr_loss": d.dbrLoss, "kd_tau": "\(d.kdTau)", "student_epochs": "\(d.studentEpochs)",
            "teacher_epochs": "\(d.teacherEpochs)", "teacher_train": "\(d.teacherTrain)", "test_limit": "\(d.testLimit)",
            "max_memory": d.resources.maxMemory ?? "",
            "teacher_seed": "\(Distill.teacherSeed)", "runs": "\(runs.count)", "runs_per_unit": "\(chunk(runs.count))",
        ]
        for (k, v) in cfg.summary where config[k] == nil { config[k] = v }
        return WorkPlan(command: "distill", arguments: arguments, commandLine: Audit.commandLine(["distill"] + arguments), directory: directory,
                        config: config, inputs: inputs, seeds: (0..<d.seeds).map { UInt64($0) },
                        units: unitNames(runs).enumerated().map { PlanUnit(index: $0.offset, name: $0.element) },
                        info: RunInfo(root: packageRoot(), date: reproducibleDate() ?? Date()))
    }

    /// Loads the teacher, training it when no worker has (under PLAN.units/prepare.lock; a worker that finds the
    /// lock held by a live process waits for its result). Returns the data too when it loaded it.
    static func prepare(_ d: Distill, store: WorkStore, verifyInputs: Bool,
                        log: @escaping @Sendable (String) -> Void) throws -> (DistillPreparation, String, Distill.Data?) {
        let path = store.file(prepareFile)
        try store.ensureDirectory()
        var waited = false
        while true {
            if let bytes = FileManager.default.contents(atPath: path) {
                return (try DistillPreparation.decode(bytes, path: path, planHash: store.plan.configHash), SHA256.hex(bytes), nil)
            }
            let lock = store.file("prepare.lock")
            switch try store.claim(path: lock) {
            case .heldBy(let l):
                if !waited { log("waiting for the teacher (trained by \(l.host) pid \(l.pid) since \(l.started))") }
                waited = true
                Thread.sleep(forTimeInterval: 0.5)
                continue
            case .acquired:
                defer { store.release(path: lock) }
                if FileManager.default.fileExists(atPath: path) { continue }
                if verifyInputs { try GraphAuditPlanner.verifyInputs(store) }
                let data = try d.loadData(log)
                let (t, acc, seconds) = try d.teacher(data, d.config, log)
                let prep = DistillPreparation(teacher: t, accuracy: acc, seconds: seconds)
                let bytes = try prep.encoded(planHash: store.plan.configHash)
                try SafeOutput.write(path, data: bytes)
                return (prep, SHA256.hex(bytes), data)
            }
        }
    }

    /// The distilled sets a worker built, by construction, seed and ε (the set depends on nothing else that a
    /// plan varies). It keeps seed 0's sets (the sweep's) and the current seed's.
    struct SetCache {
        struct Key: Hashable { var construction: InitialSet; var seed: Int; var epsilon: UInt64 }
        var sets: [Key: (images: Tensor, labels: [Int])] = [:]

        mutating func set(_ c: InitialSet, seed: Int, cfg: DistillConfig, data: Distill.Data, teacher: NRRTeacher,
                          log: (String) -> Void, nrrSeconds: @escaping (Double) -> Void) throws -> (images: Tensor, labels: [Int]) {
            let key = Key(construction: c, seed: seed, epsilon: cfg.epsilon.bitPattern)
            if let s = sets[key] { return s }
            if seed != 0 { sets = sets.filter { $0.key.seed == 0 || $0.key.seed == seed } }
            var rng = RNG(seed: UInt64(seed) &* 7919 &+ 17)
            let s0 = Date()
            let s = try Distillation.initialSet(c, x: data.train, y: data.trainLabels, teacher: teacher, config: cfg, rng: &rng, nrrSeconds: nrrSeconds)
            log("\(c.rawValue) set (seed \(seed)) built in \(String(format: "%.1f", Date().timeIntervalSince(s0))) s")
            sets[key] = s
            return s
        }
    }

    /// Runs `units` (skipping those done; redoing those whose file is unusable), one after another.
    /// `loaded`: the data and the teacher made in this process already (the single-machine run keeps them in
    /// memory: no prepare.bin, and the units record no preparation hash).
    static func work(_ d: Distill, store: WorkStore, units: [Int], verifyInputs check: Bool,
                     loaded: (data: Distill.Data, preparation: DistillPreparation)? = nil,
                     log: @escaping @Sendable (String) -> Void) throws -> WorkSummary {
        var summary = WorkSummary()
        let todo = try store.pending(units, summary: &summary, log: log)
        if todo.isEmpty { return summary }
        try store.ensureDirectory()
        let runs = try checkedRuns(d, plan: store.plan)
        let data: Distill.Data, prep: DistillPreparation, prepHash: String?
        if let loaded {
            (data, prep, prepHash) = (loaded.data, loaded.preparation, nil)
        } else {
            let (p, hash, made) = try prepare(d, store: store, verifyInputs: check, log: log)
            if let made { data = made } else {
                if check { try GraphAuditPlanner.verifyInputs(store) }
                data = try d.loadData(log)
            }
            (prep, prepHash) = (p, hash)
        }
        var cache = SetCache()
        for i in todo {
            try store.runUnit(i, preparation: prepHash, summary: &summary, log: log) {
                var result: [String: Double] = [:]
                var nrr: [Double] = []
                for j in range(i, count: runs.count) {
                    let spec = runs[j]
                    var cfg = d.config
                    cfg.epsilon = spec.epsilon
                    cfg.alphaDBR = spec.alphaDBR
                    let set = try cache.set(spec.construction, seed: spec.seed, cfg: cfg, data: data, teacher: prep.teacher, log: log,
                                            nrrSeconds: { nrr.append($0) })
                    let r = try DistillRun.student(images: set.images, labels: set.labels, teacher: prep.teacher, kind: spec.labels, cfg: cfg,
                                                   seed: UInt64(spec.seed), data: data, log: log)
                    log(String(format: "seed %d  %@ %@ accuracy %.4f (%.1f s)", spec.seed, spec.construction.rawValue, spec.labels.rawValue, r.accuracy, r.seconds))
                    result["r\(j).accuracy"] = r.accuracy
                    result["r\(j).seconds"] = r.seconds
                    result["r\(j).stored_numbers"] = Double(Distillation.storedNumbers(spec.labels, instances: set.labels.count, epochs: cfg.studentEpochs))
                }
                result["nrr_seconds"] = nrr.reduce(0, +)
                result["nrr_passes"] = Double(nrr.count)
                return result
            }
        }
        return summary
    }

    /// The reproduction's report from a complete, consistent set of units (`seconds` left 0 for the caller).
    static func merge(_ d: Distill, store: WorkStore, preparation: DistillPreparation? = nil,
                      log: @escaping @Sendable (String) -> Void) throws -> (DistillRun.Report, computeSeconds: Double) {
        let records = try store.allRecords()
        let runs = try checkedRuns(d, plan: store.plan)
        let path = store.file(prepareFile)
        let prep: DistillPreparation, prepHash: String?
        if let preparation {
            (prep, prepHash) = (preparation, nil)
        } else {
            guard let bytes = FileManager.default.contents(atPath: path) else { throw PlanError("\(path): the teacher (the preparation) is missing; cannot merge") }
            (prep, prepHash) = (try DistillPreparation.decode(bytes, path: path, planHash: store.plan.configHash), SHA256.hex(bytes))
        }
        if let bad = records.first(where: { $0.preparation != prepHash }) {
            throw PlanError("\(store.unitPath(bad.unit)): made with another teacher than \(path); cannot merge")
        }
        // Measured times only without SOURCE_DATE_EPOCH: under it one machine and a job array give the same bytes.
        let timed = reproducibleDate() == nil
        var arms: [DistillRun.Arm] = [], sweep: [DistillRun.Arm] = []
        var nrrSeconds = 0.0, nrrPasses = 0.0
        for (i, rec) in records.enumerated() {
            let unitPath = store.unitPath(i)
            guard rec.unit == i else { throw PlanError("\(unitPath): holds unit \(rec.unit); cannot merge") }
            func value(_ key: String) throws -> Double {
                guard let v = rec.value(key), v.isFinite else { throw PlanError("\(unitPath): no finite value \(key); cannot merge") }
                return v
            }
            for j in range(i, count: runs.count) {
                let spec = runs[j]
                let stored = try value("r\(j).stored_numbers")
                guard stored >= 0, stored < 1e15, stored == stored.rounded() else { throw PlanError("\(unitPath): r\(j).stored_numbers is \(stored)") }
                let arm = DistillRun.Arm(construction: spec.construction.rawValue, labels: spec.labels.rawValue, seed: spec.seed,
                                         accuracy: try value("r\(j).accuracy"), seconds: timed ? try value("r\(j).seconds") : 0,
                                         stored_numbers: Int(stored), epsilon: spec.epsilon, alpha_dbr: spec.alphaDBR)
                if spec.sweep { sweep.append(arm) } else { arms.append(arm) }
            }
            nrrSeconds += try value("nrr_seconds")
            nrrPasses += try value("nrr_passes")
        }
        let plan = store.plan
        let cfg = d.config
        let prov = Audit.provenance(data: "Fashion-MNIST IDX files in \(d.source) (teacher: first \(cfg.teacherTrain) training images; test: first \(cfg.testLimit))",
                                    seeds: "seed s: distillation RNG(s·7919 + 17), relabel plan RNG(s·104729 + 3), student RNG(s·15485863 + 11); teacher RNG(\(Distill.teacherSeed))",
                                    commit: plan.commit, date: plan.created, command: plan.commandLine)
        let report = DistillRun.Report(provenance: prov, config: cfg.summary, teacher_accuracy: prep.accuracy, teacher_seconds: timed ? prep.seconds : 0,
                                       nrr_seconds_per_class: timed && nrrPasses > 0 ? nrrSeconds / nrrPasses : 0,
                                       arms: arms, sweep: sweep, seconds: 0)
        return (report, prep.seconds + records.reduce(0) { $0 + $1.seconds })
    }
}

struct PlanDistill: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distill",
        abstract: "Plan `certify distill --reproduce`: one unit per student run (construction × labels × seed, then the sweep's runs); the teacher is trained once.")

    @OptionGroup var distill: Distill
    // -o only: --output is distill's own option (the set of --method).
    @Option(name: .customShort("o"), help: ArgumentHelp("The plan file to write (its units go to PLAN.units/ next to it).", valueName: "plan.json"))
    var planFile: String

    func run() throws {
        guard distill.reproduce else { throw PlanError(DistillPlanner.onlyReproduce) }
        try SafeOutput.prepare(planFile)
        let args = PlanDistill.distillArguments(Array(CommandLine.arguments.dropFirst()))
        // The recorded arguments must give back this very reproduction.
        _ = try Distill.load(arguments: args)
        let plan = try distill.makePlan(arguments: args, directory: FileManager.default.currentDirectoryPath)
        try SafeOutput.write(planFile, data: try plan.encoded())
        print("wrote \(planFile): \(plan.units.count) units, config hash \(plan.configHash.prefix(12))")
        print("run: certify work \(planFile) --all   (or --unit I, --shard i/n, or as a job array: certify slurm \(planFile))")
    }

    /// The reproduction's arguments: what follows `plan distill`, without -o and its value.
    static func distillArguments(_ all: [String]) -> [String] {
        var rest = all
        if let i = rest.firstIndex(of: "plan"), i + 1 < rest.count, rest[i + 1] == "distill" { rest = Array(rest[(i + 2)...]) }
        var out: [String] = []
        var i = 0
        while i < rest.count {
            let a = rest[i]
            if a == "-o" { i += 2; continue }
            if a.hasPrefix("-o=") { i += 1; continue }
            out.append(a)
            i += 1
        }
        return out
    }
}
