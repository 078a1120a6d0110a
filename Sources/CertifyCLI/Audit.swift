// `certify audit`: scores attribution methods the way "Do Input Gradients Highlight Discriminative
// Features?" (NeurIPS 2021) does — DiffROAR by retraining, and on BlockMNIST the localization of the
// attributions — for a user's attributions (--attributions) or a built-in method (--method), and runs
// the paper's theory cases (--theory). Progress goes to stderr; the table to stdout; --json, --svg and --html
// are written atomically at the end, so an error never leaves a half-written file.

import ArgumentParser
import Certification
import Foundation
import HDF5
import InputGradients
import Tensor

/// The compiler that built this binary (major.minor), for provenance blocks.
let swiftCompilerVersion: String = {
    #if compiler(>=6.4)
    return "≥ 6.4"
    #elseif compiler(>=6.3)
    return "6.3"
    #elseif compiler(>=6.2)
    return "6.2"
    #elseif compiler(>=6.1)
    return "6.1"
    #else
    return "< 6.1"
    #endif
}()

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "DiffROAR and BlockMNIST localization of attributions; the paper's theory cases.",
        discussion: """
            (a) certify audit --attributions ATTR.h5 --data BLOCKMNIST.h5: scores your attributions of a BlockMNIST \
            export (certify blockmnist export). ATTR.h5 holds /train/attributions and /test/attributions with the shapes \
            of the export's /train/images and /test/images. Localization: share of the top-k attributions in the null \
            block (lower is better). DiffROAR(k) = accuracy of the reference MLP retrained on top-k-kept data − on \
            bottom-k-kept data (> 0: the attribution ranks discriminative features higher).
            (b) certify audit --method gradient|gradient_x_input|smoothgrad|ig|random --model standard|robust: trains the \
            attributed model, attributes, and scores, on BlockMNIST built from --source (default Fashion-MNIST) or \
            --dataset fashion-mnist.
            (c) certify audit --theory [--full]: the theory cases TC1–TC6 (synthetic data, one-hidden-layer MLP).
            Exit codes: 0 done, 2 bad input.
            """)

    @Option(help: "Your attributions (HDF5: /train/attributions, /test/attributions).") var attributions: String?
    @Option(help: "The BlockMNIST export your attributions belong to.") var data: String?
    @Option(help: "Built-in attribution method: gradient, gradient_x_input, smoothgrad, ig, random.") var method: String?
    @Option(help: "Attributed model for --method: standard or robust (ℓ∞ PGD training).") var model: String = "standard"
    @Option(help: "Data set for --method: blockmnist, blockmnist-top or fashion-mnist.") var dataset: String = "blockmnist"
    @OptionGroup var blockmnist: BlockMNISTOptions
    @Flag(help: "Run the theory cases.") var theory = false
    @Flag(help: "With --theory: the full-size settings (minutes to hours) instead of the fast ones.") var full = false
    @Option(help: "With --theory: run one custom experiment instead, e.g. data=simplifiedBlockMNIST,d=20,width=500,epochs=100,n_train=5000,eps=0.3,lr=0.1,batch=250,seed=0,noise=0.1.")
    var experiment: String?
    @Option(help: "Levels k (kept fractions), comma-separated, each in (0, 1].") var ks: String = "0.05,0.1,0.2,0.5,1"
    @Option(help: "Retraining seeds per arm.") var seeds: Int = 3
    @Option(help: "Concurrent retraining runs.") var jobs: Int = 2
    @Option(help: "Epochs of each retraining run.") var learnerEpochs: Int = MLPLearner.defaultTraining.epochs
    @Option(help: "Hidden widths of the reference MLP, comma-separated.") var learnerHidden: String = "128,128"
    @Option(help: "Retrained model selection: final or bestOnEvaluation (the official code).") var selection: String = "final"
    @Option(help: "Epochs of the attributed model.") var modelEpochs: Int = 6
    @Option(help: "ℓ∞ radius of the robust attributed model (pixels in [0, 1]).") var robustEps: Double = 0.1
    @Option(help: "Attribution target: logit (the paper), softmax or loss.") var target: String = "logit"
    @Option(help: "Label the attribution is taken for: true (the official code) or predicted (the attributed model's argmax).")
    var attributionLabel: String = "true"
    @Option(help: "Fill of removed coordinates: constant (the training mean, the official code) or road (ROAD's noisy linear imputation).")
    var fill: String = "constant"
    @Option(help: "With --fill road: standard deviation of the imputation noise (pixels in [0, 1]; ROAD's default 0.01).")
    var roadNoise: Double = 0.01
    @Flag(help: "Mask-only control: also retrain on the kept indicators alone (if they predict the label, the comparison is confounded).")
    var maskOnlyControl = false
    @Option(help: "Model class retrained for PredPower: reference (the small MLP of --learner-hidden/--learner-epochs) or model (the attributed model's architecture and recipe).")
    var learnerClass: String = "reference"
    @Option(help: "Write the report as JSON to FILE.") var json: String?
    @Option(help: "Draw the DiffROAR curve as SVG to FILE.") var svg: String?
    @Option(help: "Write one self-contained HTML page to FILE: the DiffROAR curve with its band, the localization curves, the table, settings and provenance.")
    var html: String?
    @OptionGroup var resources: ResourceOptions

    var kValues: [Double] { ks.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) } }

    func validate() throws {
        let parts = ks.split(separator: ",")
        guard !parts.isEmpty, parts.count == kValues.count else { throw ValidationError("--ks must be comma-separated numbers, got '\(ks)'") }
        for k in kValues where !(k > 0 && k <= 1) { throw ValidationError("k = \(k) is outside (0, 1] (--ks)") }
        guard seeds >= 1, jobs >= 1, learnerEpochs >= 0, modelEpochs >= 0 else { throw ValidationError("--seeds and --jobs must be ≥ 1, epochs ≥ 0") }
        guard robustEps > 0, robustEps.isFinite else { throw ValidationError("--robust-eps must be > 0") }
        guard ModelSelection(rawValue: selection) != nil else { throw ValidationError("--selection must be final or bestOnEvaluation") }
        guard AttributionTarget(rawValue: target) != nil else { throw ValidationError("--target must be logit, softmax or loss") }
        guard AttributionAudit.FillKind(rawValue: fill) != nil else { throw ValidationError("--fill must be constant or road") }
        guard roadNoise >= 0, roadNoise.isFinite else { throw ValidationError("--road-noise must be ≥ 0") }
        guard AttributionAudit.LearnerClass(rawValue: learnerClass) != nil else { throw ValidationError("--learner-class must be reference or model") }
        guard AttributionLabels(rawValue: attributionLabel) != nil else { throw ValidationError("--attribution-label must be true or predicted") }
        guard learnerHidden.split(separator: ",").allSatisfy({ Int($0).map { $0 > 0 } ?? false }) else {
            throw ValidationError("--learner-hidden must be positive integers separated by commas")
        }
        let modes = [attributions != nil, method != nil, theory].filter { $0 }.count
        guard modes == 1 else { throw ValidationError("give exactly one of --attributions (with --data), --method, --theory") }
        if attributions != nil && data == nil { throw ValidationError("--attributions needs --data (the BlockMNIST export)") }
        if let m = method, Audit.methods[m] == nil { throw ValidationError("--method must be one of \(Audit.methods.keys.sorted()), got '\(m)'") }
        guard AttributionAudit.AttributedModel(rawValue: model) != nil else { throw ValidationError("--model must be standard or robust") }
        guard ["blockmnist", "blockmnist-top", "fashion-mnist"].contains(dataset) else {
            throw ValidationError("--dataset must be blockmnist, blockmnist-top or fashion-mnist")
        }
    }

    static let methods: [String: AttributionMethod] = [
        "gradient": .gradient, "gradient_x_input": .gradientTimesInput, "smoothgrad": .smoothGradDefault,
        "ig": .integratedGradientsDefault, "random": .random,
    ]

    var audit: AttributionAudit {
        var a = AttributionAudit()
        a.ks = kValues
        a.seeds = (0..<seeds).map { UInt64($0) }
        a.jobs = jobs
        a.learner.training.epochs = learnerEpochs
        a.learner.hidden = learnerHidden.split(separator: ",").map { Int($0)! }
        a.learner.selection = ModelSelection(rawValue: selection)!
        a.attributedTraining.epochs = modelEpochs
        a.robustEps = robustEps
        a.target = AttributionTarget(rawValue: target)!
        a.labels = AttributionLabels(rawValue: attributionLabel)!
        a.fillKind = AttributionAudit.FillKind(rawValue: fill)!
        a.roadNoise = roadNoise
        a.maskOnlyControl = maskOnlyControl
        a.learnerClass = AttributionAudit.LearnerClass(rawValue: learnerClass)!
        return a
    }

    func run() throws {
        resources.apply()
        for path in [json, svg, html].compactMap({ $0 }) { try SafeOutput.prepare(path) }
        let log = Audit.logger()
        if theory { return try runTheory(log) }
        // One code path with the distributed run: plan → work (every unit, here) → merge.
        let start = Date()
        let tmp = try Audit.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let plan = try AuditPlanner.plan(self, arguments: Audit.ownArguments(), directory: FileManager.default.currentDirectoryPath)
        let store = WorkStore(planPath: tmp + "/plan.json", plan: plan)
        try SafeOutput.write(store.planPath, data: try plan.encoded())
        let prep = try prepare(log: log)
        _ = try AuditPlanner.work(self, store: store, units: Array(plan.units.indices), jobs: jobs, verifyInputs: false, preparation: prep, log: log)
        var (report, _) = try AuditPlanner.merge(self, store: store, preparation: prep, log: log)
        report.seconds = reproducibleDate() == nil ? Date().timeIntervalSince(start) : 0
        try printAndWrite(report)
    }

    /// Prints the table (stdout) and writes --json and --svg: the end of `certify audit` and `certify merge`.
    func printAndWrite(_ report: AuditReport) throws {
        print(report.table())
        if let d = report.attributedModelAccuracy {
            print(String(format: "attributed model: test accuracy %.4f, ℓ∞(%.3g) robust accuracy %.4f", d, robustEps, report.attributedModelRobustAccuracy ?? .nan))
        }
        print(String(format: "%.1f s", report.seconds))
        try writeOutputs(report)
    }

    /// The provenance block of a JSON report: commit, command line, data, seeds and versions.
    static func provenance(data: String, seeds: String) -> [String: String] {
        let info = RunInfo(root: packageRoot(), date: reproducibleDate() ?? Date())
        return provenance(data: data, seeds: seeds, commit: info.commit, date: info.date, command: commandLine(Array(CommandLine.arguments.dropFirst())))
    }

    /// `certify ARGS` with shell quoting where needed.
    static func commandLine(_ arguments: [String]) -> String {
        let args = arguments.map { a in
            a.isEmpty || a.contains(where: { " \"'$|&;<>()*?[]".contains($0) }) ? "'" + a.replacingOccurrences(of: "'", with: "'\\''") + "'" : a
        }
        return (["certify"] + args).joined(separator: " ")
    }

    /// This process's arguments after the `audit` subcommand.
    static func ownArguments() -> [String] {
        let all = Array(CommandLine.arguments.dropFirst())
        guard let i = all.firstIndex(of: "audit") else { return all }
        return Array(all[(i + 1)...])
    }

    static func temporaryDirectory() throws -> String {
        var template = Array((NSTemporaryDirectory() + "/certify-audit-XXXXXX").utf8CString)
        guard let p = mkdtemp(&template) else { throw OutputError(path: NSTemporaryDirectory(), "cannot create a temporary folder") }
        return String(cString: p)
    }

    static func provenance(data: String, seeds: String, commit: String, date: String, command: String) -> [String: String] {
        [
            "commit": commit, "date": date, "command": command,
            "data": data, "seeds": seeds,
            "versions": "certify \(certifyVersion), Swift \(swiftCompilerVersion), \(ProcessInfo.processInfo.operatingSystemVersionString); no Python library is involved",
        ]
    }

    /// The data source and subset of a built-in audit.
    var dataDescription: String {
        let subset = "first \(blockmnist.trainLimit.map(String.init) ?? "all") training and first \(blockmnist.testLimit.map(String.init) ?? "all") test images"
        if dataset == "fashion-mnist" { return "MNIST-format IDX files in \(blockmnist.source), all classes, \(subset)" }
        return "\(dataset == "blockmnist-top" || blockmnist.top ? "BlockMNIST-Top" : "BlockMNIST") built from the MNIST-format IDX files in \(blockmnist.source), classes \(blockmnist.classes), \(subset); null block: outline rows/cols \(blockmnist.nullFirst)..\(blockmnist.nullLast), value \(blockmnist.nullValue), thickness \(blockmnist.nullThickness)"
    }

    /// Every seed of a built-in audit.
    var seedDescription: String {
        let a = audit
        return "retraining seeds \(a.seeds.map(String.init).joined(separator: ","))\(a.fillKind == .road ? "; ROAD noise RNG(\(a.modelSeed)+555 + stream·φ), one stream per level, arm and split" : ""); attributed model RNG(\(a.modelSeed)), robust-accuracy attack RNG(\(a.modelSeed)+7), attribution noise RNG(\(a.modelSeed)+99)"
            + (dataset == "fashion-mnist" ? "" : "; BlockMNIST placement seed \(blockmnist.seed)")
    }

    /// Progress lines on stderr with the elapsed time.
    static func logger() -> @Sendable (String) -> Void {
        let start = Date()
        let lock = NSLock()
        return { line in
            lock.lock()
            defer { lock.unlock() }
            FileHandle.standardError.write(Data(String(format: "[%6.1fs] %@\n", Date().timeIntervalSince(start), line).utf8))
        }
    }

    func writeOutputs(_ report: AuditReport) throws {
        var files: [(path: String, body: (String) throws -> Void)] = []
        if let json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let bytes = try enc.encode(report)
            files.append((json, { try bytes.write(to: URL(fileURLWithPath: $0)) }))
        }
        if let svg {
            let bytes = Data(report.svg().utf8)
            files.append((svg, { try bytes.write(to: URL(fileURLWithPath: $0)) }))
        }
        if let html {
            let bytes = Data(report.html().utf8)
            files.append((html, { try bytes.write(to: URL(fileURLWithPath: $0)) }))
        }
        // All or nothing: when one file cannot be written, none is changed.
        try SafeOutput.writeAll(files)
        for f in files { FileHandle.standardError.write(Data("wrote \(f.path)\n".utf8)) }
    }

    /// The shared preparation of a planned audit: the data and its attributions (trained and attributed
    /// here for --method, read for --attributions).
    func prepare(log: @escaping @Sendable (String) -> Void) throws -> AuditPreparation {
        let start = Date()
        if let path = attributions, let data {
            let (train, _) = try BlockMNISTExport.read(data, split: "train")
            let (test, _) = try BlockMNISTExport.read(data, split: "test")
            let atr = try AttributionAudit.readAttributions(path, split: "train", expectedShape: train.images.shape, dataPath: data)
            let ate = try AttributionAudit.readAttributions(path, split: "test", expectedShape: test.images.shape, dataPath: data)
            let mask = BlockMNIST.nullMask(signalTop: test.signalTop, rows: test.images.shape[1] / 2, cols: test.images.shape[2])
            log("scoring \(path) on \(data): \(train.labels.count) training and \(test.labels.count) test maps")
            return AuditPreparation(dataset: (data as NSString).lastPathComponent, method: (path as NSString).lastPathComponent, model: "user",
                                    accuracy: nil, robustAccuracy: nil, seconds: Date().timeIntervalSince(start),
                                    trainX: train.images, trainY: train.labels, trainA: atr, testX: test.images, testY: test.labels, testA: ate, nullMask: mask)
        }
        let kind = AttributionAudit.AttributedModel(rawValue: model)!
        let m = Audit.methods[method!]!
        let name: String, train: (x: Tensor, y: [Int]), test: (x: Tensor, y: [Int]), mask: Tensor?
        if dataset == "fashion-mnist" {
            log("loading Fashion-MNIST from \(blockmnist.source)")
            let tr = try MNISTFormat.load(directory: blockmnist.source, split: .train, limit: blockmnist.trainLimit)
            let te = try MNISTFormat.load(directory: blockmnist.source, split: .test, limit: blockmnist.testLimit)
            (name, train, test, mask) = ("Fashion-MNIST", (tr.images, tr.labels), (te.images, te.labels), nil)
        } else {
            var opts = blockmnist
            if dataset == "blockmnist-top" { opts.top = true }
            log("building \(opts.top ? "BlockMNIST-Top" : "BlockMNIST") from \(opts.source) (classes \(opts.classes))")
            let (_, tr, te) = try opts.generate()
            (name, train, test) = (opts.top ? "BlockMNIST-Top" : "BlockMNIST", (tr.images, tr.labels), (te.images, te.labels))
            mask = BlockMNIST.nullMask(signalTop: te.signalTop, rows: te.images.shape[1] / 2, cols: te.images.shape[2])
        }
        let r = try audit.attribute(train: train, test: test, model: kind, method: m, log: log)
        return AuditPreparation(dataset: name, method: m.name, model: kind.rawValue, accuracy: r.accuracy, robustAccuracy: r.robustAccuracy,
                                seconds: Date().timeIntervalSince(start), trainX: train.x, trainY: train.y, trainA: r.train,
                                testX: test.x, testY: test.y, testA: r.test, nullMask: mask)
    }

    func customExperiment(_ spec: String) throws -> TheoryExperiment {
        var e = TheoryExperiment()
        for item in spec.split(separator: ",") {
            let kv = item.split(separator: "=").map { String($0).trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2 else { throw CLIError(message: "--experiment: '\(item)' is not key=value") }
            let (key, v) = (kv[0], kv[1])
            func int() throws -> Int { guard let i = Int(v) ?? Double(v).flatMap({ Int(exactly: $0) }), i >= 0 else { throw CLIError(message: "--experiment: \(key) needs an integer ≥ 0, got '\(v)'") }; return i }
            func dbl() throws -> Double { guard let d = Double(v), d.isFinite, d >= 0 else { throw CLIError(message: "--experiment: \(key) needs a number ≥ 0, got '\(v)'") }; return d }
            switch key {
            case "data": guard let d = TheoryExperiment.Data(rawValue: v) else { throw CLIError(message: "--experiment: data must be signalCoordinate or simplifiedBlockMNIST") }; e.data = d
            case "d": e.d = try int()
            case "width": e.width = try int()
            case "epochs": e.epochs = try int()
            case "n_train": e.nTrain = try int()
            case "n_test": e.nTest = try int()
            case "eps": e.eps = try dbl()
            case "lr": e.learningRate = try dbl()
            case "batch": e.batchSize = try int()
            case "seed": e.seed = UInt64(try int())
            case "noise": e.noiseStd = try dbl()
            case "schedule": e.schedule = v == "constant" ? .constant : .stepDecay(every: 50, factor: 0.75, floor: 0.01)
            default: throw CLIError(message: "--experiment: unknown key '\(key)'")
            }
        }
        guard e.d >= 2, e.width >= 1, e.nTrain >= 1, e.nTest >= 1, e.batchSize >= 1 else { throw CLIError(message: "--experiment: d ≥ 2, width, n_train, n_test, batch ≥ 1") }
        return e
    }

    func runTheory(_ log: @escaping @Sendable (String) -> Void) throws {
        let start = Date()
        if let spec = experiment {
            let e = try customExperiment(spec)
            let every = Swift.max(1, e.epochs / 10)
            let r = try e.run { ep, l in if (ep + 1) % every == 0 { log(String(format: "epoch %d, loss %.4f", ep + 1, l)) } }
            print(TheoryCases.Outcome(name: "custom", claim: spec, result: r.result, holds: true).summary)
            return
        }
        let cases = full ? TheoryCases.full : TheoryCases.fast
        var rows: [TheoryCases.Outcome] = []
        for c in cases.experiments {
            log("\(c.name): \(c.experiment.data.rawValue), width \(c.experiment.width), \(c.experiment.epochs) epochs, eps \(c.experiment.eps)")
            let every = Swift.max(1, c.experiment.epochs / 10)
            let r = try c.experiment.run { e, l in if (e + 1) % every == 0 { log(String(format: "%@: epoch %d, loss %.4f", c.name, e + 1, l)) } }
            rows.append(TheoryCases.Outcome(name: c.name, claim: c.claim, source: c.source, result: r.result, holds: c.check(r.result)))
            log("\(c.name): \(rows.last!.summary)")
        }
        log("TC6: oracle DiffROAR identity on the TC1 data")
        let tc6 = try TheoryCases.oracleDiffROAR(cases.tc6)
        func row(_ a: String, _ b: String, _ c: String, _ d: String) -> String {
            a.padding(toLength: 5, withPad: " ", startingAt: 0) + " " + b.padding(toLength: 72, withPad: " ", startingAt: 0) + " " +
                c.padding(toLength: 5, withPad: " ", startingAt: 0) + " " + d
        }
        print(row("case", "claim", "holds", "measured"))
        for o in rows { print(row(o.name, o.claim, o.holds ? "yes" : "NO", o.summary)) }
        print(row("TC6", "retrained DiffROAR(1 coordinate) = (P_top − P_bot)/2", tc6.holds ? "yes" : "NO", tc6.summary))
        print(String(format: "%.1f s", Date().timeIntervalSince(start)))
        if let json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            let prov = Audit.provenance(data: "synthetic (TheoryCases.\(full ? "full" : "fast") in Sources/InputGradients/Theory.swift)",
                                        seeds: "each experiment's seed s (0): training set RNG(s), test set RNG(s+1), model and training RNG(s+2)")
            try SafeOutput.write(json, data: try enc.encode(TheoryCases.Report(cases: rows, tc6: tc6, full: full, provenance: prov)))
        }
    }
}
