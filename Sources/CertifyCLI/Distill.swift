// `certify distill`: NRR-DD / RDED dataset distillation of Fashion-MNIST with the certified NRRDD methods.
// (a) --method random|rded|nrrdd --output SET.h5 writes a distilled set with its relabel plan and stored labels;
// (b) --evaluate SET.h5 trains a student on a distilled set (yours or ours) the same way and reports test accuracy;
// (c) --reproduce runs every arm (3 constructions × 3 label kinds) over seeds, optionally the ε/α_dbr sweep, as
//     plan → work → merge (DistillPlan.swift), the path of `certify plan distill`.
// Progress goes to stderr; files are written atomically at the end (SafeOutput).

import ArgumentParser
import Certification
import Foundation
import HDF5
import InputGradients
import NRRDD
import Tensor

struct Distill: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distill",
        abstract: "Distil Fashion-MNIST with RDED or NRR-DD (CIDD + NRR + DBR), evaluate a distilled set, or reproduce the paper's claims.",
        discussion: """
            (a) certify distill --method nrrdd --labels dbr --output set.h5: trains the teacher, builds the set \
            (random real images, RDED selection + stitching, or CIDD + stitching + NRR), draws the relabel plan \
            (per student step: batch, flips, CutMix partners and box) and stores the teacher's labels for it: \
            DBR's 2 distances per instance per epoch (/dbr/distances) or the K soft probabilities (/soft/probabilities). \
            Images are in the normalised space (x/255 − 0.2860)/0.3530.
            (b) certify distill --evaluate set.h5 --labels onehot|dbr|soft: reads /images [n, 1, 28, 28] and /labels [n] \
            (classes 0–9), relabels them with the suite's teacher and trains a student as in (a); prints its test accuracy.
            (c) certify distill --reproduce --seeds 3 --json FILE [--sweep]: every arm, mean ± standard error.
            Unknown constants of the paper are options with our defaults (see protocols/nrrdd/*.yaml). Exit codes: 0 done, 2 bad input.
            """)

    @Option(help: "Construction for (a): random, rded or nrrdd.") var method: String?
    @Option(help: "Label kind: onehot, dbr or soft.") var labels: String = "dbr"
    @Option(help: "Output HDF5 for (a).") var output: String?
    @Option(help: "A distilled set to evaluate (b).") var evaluate: String?
    @Flag(help: "Run every arm (c).") var reproduce = false
    @Flag(help: "With --reproduce: also the ε and α_dbr sensitivity sweep (first seed).") var sweep = false
    @Option(help: "With --reproduce: number of seeds (0, 1, …).") var seeds: Int = 3
    @Option(help: "Seed for (a) and (b).") var seed: Int = 0
    @Option(help: "With --reproduce: write the results as JSON to FILE.") var json: String?
    @Option(help: "Directory of the MNIST-format IDX files.") var source: String = MNISTFormat.fashionMNISTDirectory
    @Option(help: "Images per class.") var ipc: Int = 10
    @Option(help: "Stitching factor (factor² crops per image).") var factor: Int = 2
    @Option(help: "Candidate pool per class (RDED's mipc).") var mipc: Int = 60
    @Option(help: "Crops per candidate (RDED's num_crop).") var numCrops: Int = 5
    @Option(help: "NRR: ε ∈ [0, 1] (unknown in the paper; our default).") var epsilon: Double = 0.5
    @Option(help: "NRR: step size η (unknown; our default).") var eta: Double = 0.05
    @Option(help: "NRR: steps (unknown; our default).") var nrrSteps: Int = 30
    @Option(help: "NRR: α_bn (unknown; SRe2L's 0.01).") var alphaBn: Double = 0.01
    @Option(help: "DBR: α_dbr (unknown; our default).") var alphaDbr: Double = 1
    @Option(help: "DBR: temperature inside the distances (unknown; our default).") var dbrTau: Double = 1
    @Option(help: "DBR: distance, ce or l2 (unknown; our default ce).") var distance: String = "ce"
    @Option(help: "DBR: loss between distances, l1 or mse (unknown; our default l1).") var dbrLoss: String = "l1"
    @Option(help: "Soft labels: KD temperature (RDED: 20; our default 4).") var kdTau: Double = 4
    @Option(help: "Student epochs.") var studentEpochs: Int = 150
    @Option(help: "Teacher epochs.") var teacherEpochs: Int = 3
    @Option(help: "Training images the teacher sees.") var teacherTrain: Int = 12000
    @Option(help: "Test images the students are evaluated on.") var testLimit: Int = 10000
    @OptionGroup var resources: ResourceOptions

    var config: DistillConfig {
        var c = DistillConfig()
        c.ipc = ipc; c.factor = factor; c.mipc = mipc; c.numCrops = numCrops
        c.epsilon = epsilon; c.eta = eta; c.nrrSteps = nrrSteps; c.alphaBN = alphaBn
        c.alphaDBR = alphaDbr; c.dbrTau = dbrTau
        c.distance = distance == "l2" ? .l2 : .crossEntropy
        c.dbrLoss = dbrLoss == "mse" ? .mse : .l1
        c.kdTau = kdTau; c.studentEpochs = studentEpochs; c.teacherEpochs = teacherEpochs
        c.teacherTrain = teacherTrain; c.testLimit = testLimit
        return c
    }

    func validate() throws {
        let modes = [method != nil, evaluate != nil, reproduce].filter { $0 }.count
        guard modes == 1 else { throw ValidationError("give exactly one of --method (with --output), --evaluate, --reproduce") }
        if let m = method, InitialSet(rawValue: m) == nil { throw ValidationError("--method must be random, rded or nrrdd, got '\(m.prefix(40))'") }
        if method != nil && output == nil { throw ValidationError("--method needs --output FILE.h5") }
        guard LabelKind(rawValue: labels) != nil else { throw ValidationError("--labels must be onehot, dbr or soft, got '\(labels.prefix(40))'") }
        guard ["ce", "l2"].contains(distance) else { throw ValidationError("--distance must be ce or l2") }
        guard ["l1", "mse"].contains(dbrLoss) else { throw ValidationError("--dbr-loss must be l1 or mse") }
        guard seeds >= 1, seed >= 0 else { throw ValidationError("--seeds must be ≥ 1 and --seed ≥ 0") }
        guard epsilon.isFinite, epsilon >= 0, epsilon <= 1 else { throw ValidationError("--epsilon must be in [0, 1], got \(epsilon)") }
        guard dbrTau.isFinite, dbrTau > 0 else { throw ValidationError("--dbr-tau must be > 0, got \(dbrTau)") }
        guard kdTau.isFinite, kdTau > 0 else { throw ValidationError("--kd-tau must be > 0, got \(kdTau)") }
        guard ipc >= 1, factor >= 1, factor <= 4 else { throw ValidationError("--ipc must be ≥ 1 and --factor in [1, 4]") }
        guard ipc * factor * factor <= mipc else {
            throw ValidationError("--ipc × --factor² = \(ipc * factor * factor) crops per class is larger than the candidate pool --mipc \(mipc)")
        }
        guard studentEpochs >= 1, teacherEpochs >= 0, teacherTrain >= 10, testLimit >= 1, nrrSteps >= 0, numCrops >= 1 else {
            throw ValidationError("--student-epochs, --num-crops ≥ 1, --teacher-epochs, --nrr-steps ≥ 0, --teacher-train ≥ 10, --test-limit ≥ 1")
        }
        guard eta.isFinite, eta >= 0, alphaBn.isFinite, alphaBn >= 0, alphaDbr.isFinite, alphaDbr >= 0 else {
            throw ValidationError("--eta, --alpha-bn and --alpha-dbr must be finite and ≥ 0")
        }
    }

    /// The teacher's RNG seed: one teacher for every seed of a reproduction.
    static let teacherSeed: UInt64 = 1_000_003

    struct Data {
        var train: Tensor, trainLabels: [Int], test: Tensor, testLabels: [Int]
    }

    func loadData(_ log: (String) -> Void) throws -> Data {
        log("loading Fashion-MNIST from \(source)")
        let tr = try MNISTFormat.load(directory: source, split: .train)
        let te = try MNISTFormat.load(directory: source, split: .test, limit: testLimit)
        return Data(train: FashionMNIST.normalised(tr), trainLabels: tr.labels, test: FashionMNIST.normalised(te), testLabels: te.labels)
    }

    func teacher(_ d: Data, _ cfg: DistillConfig, _ log: @escaping (String) -> Void) throws -> (NRRTeacher, Double, Double) {
        let start = Date()
        var rng = RNG(seed: Distill.teacherSeed)
        let n = Swift.min(cfg.teacherTrain, d.train.shape[0])
        log("training the teacher on \(n) images, \(cfg.teacherEpochs) epochs")
        let t = try Distillation.trainTeacher(x: Distillation.rowsPublic(d.train, Array(0..<n)), y: Array(d.trainLabels.prefix(n)), config: cfg, rng: &rng) { log("teacher " + $0) }
        let seconds = Date().timeIntervalSince(start)
        let acc = try t.accuracy(d.test, d.testLabels)
        log(String(format: "teacher test accuracy %.4f (%.1f s)", acc, seconds))
        return (t, acc, seconds)
    }

    func run() throws {
        resources.apply()
        for path in [output, json].compactMap({ $0 }) { try SafeOutput.prepare(path) }
        let log = Audit.logger()
        let cfg = config
        try cfg.validate()
        if let path = evaluate {
            try preflight(path, .diff(paths: [], all: true))
            let set = try DistilledSetFile.read(path)
            let d = try loadData(log)
            let (t, tacc, _) = try teacher(d, cfg, log)
            let kind = LabelKind(rawValue: labels)!
            let acc = try DistillRun.student(images: set.images, labels: set.labels, teacher: t, kind: kind, cfg: cfg, seed: UInt64(seed), data: d, log: log)
            print(String(format: "%@: student test accuracy %.4f with %@ labels (teacher %.4f; %d stored label numbers)", path, acc.accuracy, labels, tacc,
                         Distillation.storedNumbers(kind, instances: set.labels.count, epochs: cfg.studentEpochs)))
            return
        }
        if let m = method, let output {
            let d = try loadData(log)
            let (t, tacc, _) = try teacher(d, cfg, log)
            var rng = RNG(seed: UInt64(seed) &* 7919 &+ 17)
            let set = try Distillation.initialSet(InitialSet(rawValue: m)!, x: d.train, y: d.trainLabels, teacher: t, config: cfg, rng: &rng) { log($0) }
            let kind = LabelKind(rawValue: labels)!
            var prng = RNG(seed: UInt64(seed) &* 104_729 &+ 3)
            let plan = try Distillation.relabelPlan(count: set.labels.count, height: set.images.shape[2], width: set.images.shape[3],
                                                    epochs: cfg.studentEpochs, batchSize: cfg.batchSize, rng: &prng)
            log("relabelling: \(kind.rawValue) targets for \(plan.count) epochs")
            let targets = try Distillation.teacherTargets(images: set.images, labels: set.labels, plan: plan, teacher: t, kind: kind, config: cfg)
            var prov = Audit.provenance(data: "Fashion-MNIST IDX files in \(source)", seeds: "distillation RNG(\(seed)·7919 + 17), relabel plan RNG(\(seed)·104729 + 3), teacher RNG(1000003)")
            prov["teacher_test_accuracy"] = String(format: "%.4f", tacc)
            try DistilledSetFile.write(output, images: set.images, labels: set.labels, plan: plan, targets: targets, kind: kind, method: m,
                                       config: cfg, provenance: prov)
            stderr("wrote \(output)\n")
            return
        }
        try reproduce(log: log)
    }

    /// The reproduction (c): plan → work (every unit, here) → merge, the path of `certify plan distill` (DistillPlan.swift).
    func reproduce(log: @escaping @Sendable (String) -> Void) throws {
        let start = Date()
        let tmp = try Audit.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let plan = try DistillPlanner.plan(self, arguments: Distill.ownArguments(), directory: FileManager.default.currentDirectoryPath)
        let store = WorkStore(planPath: tmp + "/plan.json", plan: plan)
        try SafeOutput.write(store.planPath, data: try plan.encoded())
        let d = try loadData(log)
        let (t, tacc, tsec) = try teacher(d, config, log)
        let prep = DistillPreparation(teacher: t, accuracy: tacc, seconds: tsec)
        _ = try DistillPlanner.work(self, store: store, units: Array(plan.units.indices), verifyInputs: false, loaded: (d, prep), log: log)
        var (report, _) = try DistillPlanner.merge(self, store: store, preparation: prep, log: log)
        report.seconds = reproducibleDate() == nil ? Date().timeIntervalSince(start) : 0
        try printAndWrite(report)
    }

    /// Prints the table (stdout) and writes --json: the end of `certify distill --reproduce` and of `certify merge`.
    func printAndWrite(_ report: DistillRun.Report) throws {
        print(DistillRun.table(report))
        if let json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            try SafeOutput.write(json, data: try enc.encode(report))
            stderr("wrote \(json)\n")
        }
    }
}

extension Distillation {
    static func rowsPublic(_ x: Tensor, _ idx: [Int]) -> Tensor {
        let per = x.count / x.shape[0]
        var d = [Double]()
        d.reserveCapacity(idx.count * per)
        for i in idx { d += x.data[(i * per)..<((i + 1) * per)] }
        return Tensor(unchecked: [idx.count] + Array(x.shape.dropFirst()), d)
    }
}

/// The reproduction's report and one student run (the runs themselves: DistillPlan.swift).
enum DistillRun {
    struct Arm: Codable {
        var construction: String, labels: String, seed: Int, accuracy: Double, seconds: Double, stored_numbers: Int
        var epsilon: Double, alpha_dbr: Double
    }

    struct Report: Codable {
        var provenance: [String: String]
        var config: [String: String]
        var teacher_accuracy: Double
        var teacher_seconds: Double
        var nrr_seconds_per_class: Double
        var arms: [Arm]
        var sweep: [Arm]
        var seconds: Double
    }

    /// Relabels (plan + teacher targets) and trains one student; test accuracy.
    static func student(images: Tensor, labels: [Int], teacher: NRRTeacher, kind: LabelKind, cfg: DistillConfig, seed: UInt64, data: Distill.Data,
                        log: @escaping (String) -> Void) throws -> (accuracy: Double, seconds: Double) {
        let start = Date()
        var prng = RNG(seed: seed &* 104_729 &+ 3)
        let plan = try Distillation.relabelPlan(count: labels.count, height: images.shape[2], width: images.shape[3], epochs: cfg.studentEpochs,
                                                batchSize: cfg.batchSize, rng: &prng)
        let targets = try Distillation.teacherTargets(images: images, labels: labels, plan: plan, teacher: teacher, kind: kind, config: cfg)
        var srng = RNG(seed: seed &* 15_485_863 &+ 11)
        var lastLog = Date()
        let s = try Distillation.trainStudent(images: images, labels: labels, plan: plan, targets: targets, kind: kind, config: cfg, rng: &srng) { line in
            if Date().timeIntervalSince(lastLog) > 20 { log("  student (\(kind.rawValue)) \(line)"); lastLog = Date() }
        }
        return (try s.accuracy(data.test, data.testLabels), Date().timeIntervalSince(start))
    }

    static func table(_ r: Report) -> String {
        var lines = ["construction  labels  accuracy (mean ± SE over seeds)  stored label numbers"]
        for c in InitialSet.allCases {
            for k in LabelKind.allCases {
                let a = r.arms.filter { $0.construction == c.rawValue && $0.labels == k.rawValue }.map(\.accuracy)
                guard !a.isEmpty else { continue }
                let m = a.reduce(0, +) / Double(a.count)
                let se = a.count > 1 ? (a.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(a.count - 1)).squareRoot() / Double(a.count).squareRoot() : 0
                let stored = r.arms.first { $0.construction == c.rawValue && $0.labels == k.rawValue }!.stored_numbers
                lines.append(String(format: "%@  %@  %.4f ± %.4f (n = %d)  %d", c.rawValue, k.rawValue, m, se, a.count, stored))
            }
        }
        lines.append(String(format: "teacher %.4f (%.1f s); total %.1f s", r.teacher_accuracy, r.teacher_seconds, r.seconds))
        return lines.joined(separator: "\n")
    }
}
