// `certify audit` as a plan of independent units: one unit per DiffROAR retraining (k × arm × seed,
// and the mask-only control's runs). The shared preparation — the data, the attributed model's
// attributions and accuracies — is made once by the first worker into PLAN.units/prepare.bin; each
// unit retrains one model on its masked data; the merge assembles exactly the report `certify audit`
// writes. `certify audit` itself is plan → work (all units, here) → merge.

import Certification
import Foundation
import InputGradients
import Tensor

/// What every unit of an audit needs, made once per plan.
struct AuditPreparation {
    var dataset: String
    var method: String
    var model: String
    var accuracy: Double?
    var robustAccuracy: Double?
    var seconds: Double
    var trainX: Tensor, trainY: [Int], trainA: Tensor
    var testX: Tensor, testY: [Int], testA: Tensor
    var nullMask: Tensor?

    struct Header: Codable {
        var plan: String
        var dataset: String
        var method: String
        var model: String
        var accuracyBits: String?
        var robustAccuracyBits: String?
        var seconds: Double
        var arrays: [PreparationFile.Entry]
    }

    static let magic = Data("certify-prepare/1\n".utf8)

    /// The prepare.bin bytes (`PreparationFile`).
    func encoded(planHash: String) throws -> Data {
        var arrays: [(String, Tensor)] = [("train_x", trainX), ("train_y", Tensor(trainY.map(Double.init))), ("train_a", trainA),
                                          ("test_x", testX), ("test_y", Tensor(testY.map(Double.init))), ("test_a", testA)]
        if let nullMask { arrays.append(("null_mask", nullMask)) }
        let header = Header(plan: planHash, dataset: dataset, method: method, model: model,
                            accuracyBits: accuracy.map { String($0.bitPattern, radix: 16) },
                            robustAccuracyBits: robustAccuracy.map { String($0.bitPattern, radix: 16) }, seconds: seconds,
                            arrays: arrays.map { PreparationFile.Entry(name: $0.0, shape: $0.1.shape) })
        return try PreparationFile.encode(magic: AuditPreparation.magic, header: header, tensors: arrays.map(\.1))
    }

    /// Reads prepare.bin; throws `PlanError` when it is truncated, corrupt or made for another plan.
    static func decode(_ d: Data, path: String, planHash: String) throws -> AuditPreparation {
        let (header, t) = try PreparationFile.decode(d, magic: magic, what: "a Certify preparation", path: path, planHash: planHash,
                                                     plan: { (h: Header) in h.plan }, entries: { $0.arrays })
        guard let trX = t["train_x"], let trY = t["train_y"], let trA = t["train_a"], let teX = t["test_x"], let teY = t["test_y"], let teA = t["test_a"] else {
            throw PlanError("\(path): arrays missing")
        }
        func bits(_ s: String?) -> Double? { s.flatMap { UInt64($0, radix: 16) }.map(Double.init(bitPattern:)) }
        return AuditPreparation(dataset: header.dataset, method: header.method, model: header.model, accuracy: bits(header.accuracyBits),
                                robustAccuracy: bits(header.robustAccuracyBits), seconds: header.seconds,
                                trainX: trX, trainY: trY.data.map { Int($0) }, trainA: trA, testX: teX, testY: teY.data.map { Int($0) }, testA: teA,
                                nullMask: t["null_mask"])
    }
}

/// The plan, work and merge of `certify audit`.
enum AuditPlanner {
    static let prepareFile = "prepare.bin"

    /// The plan of an audit given by `arguments` (the audit's own arguments), relative to `directory`.
    static func plan(_ a: Audit, arguments: [String], directory: String) throws -> WorkPlan {
        guard !a.theory else { throw PlanError("the theory cases (--theory) are not split into units; run `certify audit --theory`") }
        var inputs: [PlanInput] = []
        if let attributions = a.attributions, let data = a.data {
            inputs = [try PlanInput.of(attributions, directory: directory), try PlanInput.of(data, directory: directory)]
        } else {
            for split in [MNISTFormat.Split.train, .test] {
                for images in [true, false] {
                    inputs.append(try PlanInput.of(try MNISTFormat.locate(a.blockmnist.source, MNISTFormat.stem(split, images: images)), directory: directory))
                }
            }
        }
        let audit = a.audit
        let runs = DiffROAR.runs(ks: audit.ks, seeds: audit.seeds, maskOnly: audit.maskOnlyControl)
        let b = a.blockmnist
        var config: [String: String] = [
            "ks": a.ks, "seeds": "\(a.seeds)", "jobs": "\(a.jobs)", "learner_epochs": "\(a.learnerEpochs)", "learner_hidden": a.learnerHidden,
            "selection": a.selection, "model_epochs": "\(a.modelEpochs)", "robust_eps": "\(a.robustEps)", "target": a.target,
            "attribution_label": a.attributionLabel, "fill": a.fill, "road_noise": "\(a.roadNoise)", "mask_only_control": "\(a.maskOnlyControl)",
            "learner_class": a.learnerClass, "model": a.model, "dataset": a.dataset,
            "source": b.source, "blockmnist_seed": "\(b.seed)", "top": "\(b.top)", "classes": b.classes, "null_first": "\(b.nullFirst)",
            "null_last": "\(b.nullLast)", "null_value": "\(b.nullValue)", "null_thickness": "\(b.nullThickness)",
            "train_limit": b.trainLimit.map(String.init) ?? "all", "test_limit": b.testLimit.map(String.init) ?? "all",
            "json": a.json ?? "", "svg": a.svg ?? "", "max_memory": a.resources.maxMemory ?? "",
            "attributed_model_seed": "\(audit.modelSeed)",
        ]
        if let m = a.method { config["method"] = m }
        if let at = a.attributions { config["attributions"] = at }
        if let d = a.data { config["data"] = d }
        return WorkPlan(command: "audit", arguments: arguments, commandLine: Audit.commandLine(["audit"] + arguments), directory: directory,
                        config: config, inputs: inputs, seeds: audit.seeds,
                        units: runs.enumerated().map { PlanUnit(index: $0.offset, name: DiffROAR.name($0.element, ks: audit.ks)) },
                        info: RunInfo(root: packageRoot(), date: reproducibleDate() ?? Date()))
    }

    /// Loads the preparation, making it when no worker has (under PLAN.units/prepare.lock; a worker that
    /// finds the lock held by a live process waits for its result).
    static func prepare(_ a: Audit, store: WorkStore, verifyInputs: Bool, log: @escaping @Sendable (String) -> Void) throws -> (AuditPreparation, String) {
        let path = store.file(prepareFile)
        try store.ensureDirectory()
        var waited = false
        while true {
            if let d = FileManager.default.contents(atPath: path) {
                let p = try AuditPreparation.decode(d, path: path, planHash: store.plan.configHash)
                return (p, SHA256.hex(d))
            }
            let lock = store.file("prepare.lock")
            switch try store.claim(path: lock) {
            case .heldBy(let l):
                if !waited { log("waiting for the preparation (made by \(l.host) pid \(l.pid) since \(l.started))") }
                waited = true
                Thread.sleep(forTimeInterval: 0.5)
                continue
            case .acquired:
                defer { store.release(path: lock) }
                if FileManager.default.fileExists(atPath: path) { continue }
                if verifyInputs {
                    for input in store.plan.inputs {
                        let now = try PlanInput.of(input.path, directory: store.plan.directory)
                        guard now.sha256 == input.sha256 else {
                            throw PlanError("\(input.path): changed since the plan was made (SHA-256 \(now.sha256.prefix(12)), the plan records \(input.sha256.prefix(12)))")
                        }
                    }
                }
                let prep = try a.prepare(log: log)
                let d = try prep.encoded(planHash: store.plan.configHash)
                try SafeOutput.write(path, data: d)
                return (prep, SHA256.hex(d))
            }
        }
    }

    /// Runs `units` (skipping those done; redoing those whose file is unusable), `jobs` at a time.
    /// `preparation`: made in this process already (the single-machine audit keeps it in memory: no
    /// prepare.bin, and the units record no preparation hash).
    static func work(_ a: Audit, store: WorkStore, units: [Int], jobs: Int, verifyInputs: Bool, preparation: AuditPreparation? = nil,
                     log: @escaping @Sendable (String) -> Void) throws -> WorkSummary {
        var summary = WorkSummary()
        let todo = try store.pending(units, summary: &summary, log: log)
        if todo.isEmpty { return summary }
        try store.ensureDirectory()
        let (prep, prepHash): (AuditPreparation, String?) = try preparation.map { ($0, nil) }
            ?? prepare(a, store: store, verifyInputs: verifyInputs, log: log)
        let audit = a.audit
        let (_, masking) = audit.maskingScheme(trainX: prep.trainX)
        final class Counts: @unchecked Sendable { var ran = 0, held = 0; let lock = NSLock() }
        let counts = Counts()
        let plan = store.plan
        try DiffROAR.compute(train: .init(x: prep.trainX, y: prep.trainY, attributions: prep.trainA),
                             test: .init(x: prep.testX, y: prep.testY, attributions: prep.testA),
                             ks: audit.ks, seeds: audit.seeds, masking: masking, maskOnly: audit.maskOnlyControl,
                             learner: audit.effectiveLearner, jobs: jobs, selected: Set(todo), progress: log,
                             claim: { i in
                                 switch try store.claim(path: store.lockPath(i)) {
                                 case .acquired:
                                     if case .done = store.state(i) { store.release(path: store.lockPath(i)); return false }
                                     return true
                                 case .heldBy(let l):
                                     log("unit \(i) is being run by \(l.host) pid \(l.pid) (since \(l.started)); skipped")
                                     counts.lock.lock(); counts.held += 1; counts.lock.unlock()
                                     return false
                                 }
                             },
                             done: { i, result, started in
                                 defer { store.release(path: store.lockPath(i)) }
                                 switch result {
                                 case .success(let acc):
                                     try store.write(UnitRecord(plan: plan, unit: i, started: started, preparation: prepHash, result: ["accuracy": acc]))
                                     counts.lock.lock(); counts.ran += 1; counts.lock.unlock()
                                 case .failure(let e):
                                     store.recordFailure(i, error: "\(e)")
                                 }
                             })
        summary.ran = counts.ran
        summary.heldElsewhere = counts.held
        return summary
    }

    /// The audit's report from a complete, consistent set of units.
    static func merge(_ a: Audit, store: WorkStore, preparation: AuditPreparation? = nil,
                      log: @escaping @Sendable (String) -> Void) throws -> (AuditReport, computeSeconds: Double) {
        let records = try store.allRecords()
        let path = store.file(prepareFile)
        let prep: AuditPreparation, prepHash: String?
        if let preparation {
            (prep, prepHash) = (preparation, nil)
        } else {
            guard let d = FileManager.default.contents(atPath: path) else { throw PlanError("\(path): the preparation is missing; cannot merge") }
            (prep, prepHash) = (try AuditPreparation.decode(d, path: path, planHash: store.plan.configHash), SHA256.hex(d))
        }
        if let bad = records.first(where: { $0.preparation != prepHash }) {
            throw PlanError("\(store.unitPath(bad.unit)): made from another preparation than \(path); cannot merge")
        }
        var acc: [Double] = []
        for r in records {
            guard let v = r.value("accuracy") else { throw PlanError("\(store.unitPath(r.unit)): no accuracy") }
            acc.append(v)
        }
        let audit = a.audit
        let points = try DiffROAR.assemble(ks: audit.ks, seeds: audit.seeds, maskOnly: audit.maskOnlyControl, accuracies: acc, testY: prep.testY,
                                           progress: log)
        var report = try audit.report(dataset: prep.dataset, method: prep.method, model: prep.model, trainX: prep.trainX, testAttributions: prep.testA,
                                      testNullMask: prep.nullMask, points: points, seconds: 0)
        report.attributedModelAccuracy = prep.accuracy
        report.attributedModelRobustAccuracy = prep.robustAccuracy
        let plan = store.plan
        let (data, seeds) = a.attributions != nil
            ? ("BlockMNIST export \(a.data!), attributions \(a.attributions!)", "retraining seeds \(audit.seeds.map(String.init).joined(separator: ","))")
            : (a.dataDescription, a.seedDescription)
        report.provenance = Audit.provenance(data: data, seeds: seeds, commit: plan.commit, date: plan.created, command: plan.commandLine)
        return (report, prep.seconds + records.reduce(0) { $0 + $1.seconds })
    }
}

/// SOURCE_DATE_EPOCH (the reproducible-builds convention), when set: the date written into reports.
/// Under it, the reports' measured wall time (`seconds`) is 0 too, so that two runs of one plan — on
/// one machine or as a job array — give the same bytes.
func reproducibleDate() -> Date? {
    ProcessInfo.processInfo.environment["SOURCE_DATE_EPOCH"].flatMap { Double($0) }.map { Date(timeIntervalSince1970: $0) }
}
