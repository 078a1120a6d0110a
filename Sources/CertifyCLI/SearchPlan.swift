// `certify dartsgt-reproduce` as a plan of independent units (`certify plan search`): one unit per (seed, arm). Arm 0, the
// searched one, runs the seed's first-order search, discretises α and retrains; the other arms (one uniform operator per
// operator, a random operator per layer) need no search: their operators are fixed by the plan and their initialisations
// are the k-th draws of the seed's stream (Reproduction in Sources/DARTSGT/Reproduce.swift), so every unit depends only on
// the plan and its index. There are no data files: each seed's 120 SBM graphs are generated, and the plan records their
// SHA-256 (`synthetic:` inputs); a worker that generates other bits (another platform's libm) refuses to run (exit 2).
// The merge prints and writes exactly what `certify dartsgt-reproduce` does, which itself is plan → work → merge.

import ArgumentParser
import Certification
import DARTSGT
import Foundation
import Tensor

extension DARTSGTReproduce: PlannedCommand {
    static func load(arguments: [String]) throws -> DARTSGTReproduce {
        do { return try DARTSGTReproduce.parse(arguments) } catch {
            throw PlanError("the plan's dartsgt-reproduce arguments do not parse (\(DARTSGTReproduce.message(for: error)))")
        }
    }

    func makePlan(arguments: [String], directory: String) throws -> WorkPlan {
        try SearchPlanner.plan(self, arguments: arguments, directory: directory)
    }

    func work(store: WorkStore, units: [Int], jobs: Int?, log: @escaping @Sendable (String) -> Void) throws -> String {
        let s = try SearchPlanner.work(self, store: store, units: units, log: log)
        return "ran \(s.ran)\(s.redone > 0 ? " (\(s.redone) redone: damaged files)" : ""), already done \(s.alreadyDone), held by other workers \(s.heldElsewhere)"
    }

    /// No shared preparation: each unit generates its seed's graphs; this only checks that they are the plan's.
    func prepareOnly(store: WorkStore, log: @escaping @Sendable (String) -> Void) throws {
        try store.ensureDirectory()
        var checked = Set<UInt64>()
        for s in try seedList where !checked.contains(s) {
            try SearchPlanner.verifyData(store, seed: s, reproduction: SearchPlanner.reproduction(self, seed: s))
            checked.insert(s)
        }
    }

    func merge(store: WorkStore, outputs: [String: String], log: @escaping @Sendable (String) -> Void) throws {
        var c = self
        if let j = outputs["json"] { c.json = j }
        if let json = c.json { try SafeOutput.prepare(json) }
        let merged = try SearchPlanner.merge(store: store)
        try c.printAndWrite(merged, plan: store.plan, seconds: reproducibleDate() == nil ? merged.computeSeconds : 0)
    }
}

/// The plan, work and merge of `certify dartsgt-reproduce`.
enum SearchPlanner {
    /// The reproduction's fixed sizes (Sources/DARTSGT/Reproduce.swift defaults), recorded in the plan.
    static let layers = 2, d = 8, heads = 2, batchSize = 16, kHeads = 2, graphsPerSeed = 120
    static var arms: [String] { Reproduction.armNames }

    /// Unit `i`: seed index i / arms, arm i % arms.
    static func unit(_ i: Int) -> (seedIndex: Int, arm: Int) { (i / arms.count, i % arms.count) }

    static func reproduction(_ c: DARTSGTReproduce, seed: UInt64) -> Reproduction {
        Reproduction(seed: seed, layers: layers, d: d, heads: heads, searchEpochs: c.searchEpochs, trainEpochs: c.trainEpochs, batchSize: batchSize)
    }

    /// The input name of seed `s`'s generated graphs.
    static func dataName(_ s: UInt64) -> String { "synthetic:sbm-graphs-seed-\(s)" }

    /// SHA-256 of graphs (per graph: node count, x, edge list, edge features, y; little-endian int64 / IEEE-754 float64) and the byte count.
    static func digest(_ graphs: [AuditGraph]) -> (sha256: String, bytes: Int) {
        var h = SHA256()
        var bytes = 0
        func ints(_ v: [Int]) { var le = v.map { UInt64(bitPattern: Int64($0)).littleEndian }; h.update(Data(bytes: &le, count: le.count * 8)); bytes += le.count * 8 }
        func doubles(_ v: [Double]) { ints(v.map { Int(bitPattern: UInt($0.bitPattern)) }) }
        for g in graphs {
            ints([g.x.shape[0], g.x.shape[1], g.edges.count])
            doubles(g.x.data); ints(g.edges.src); ints(g.edges.dst); doubles(g.edgeAttr.data); doubles(g.y)
        }
        return (h.finalize().map { String(format: "%02x", $0) }.joined(), bytes)
    }

    static func plan(_ c: DARTSGTReproduce, arguments: [String], directory: String) throws -> WorkPlan {
        guard !c.searchOnly else { throw PlanError("--search-only only times the search; it is not split into units (run `certify dartsgt-reproduce --search-only`)") }
        let seeds = try c.seedList
        guard Set(seeds).count == seeds.count else { throw PlanError("--seeds lists a seed twice ('\(c.seeds)')") }
        var inputs: [PlanInput] = []
        for s in seeds {
            let dg = digest(reproduction(c, seed: s).graphs)
            inputs.append(PlanInput(path: dataName(s), sha256: dg.sha256, bytes: dg.bytes))
        }
        let config: [String: String] = [
            "seeds": c.seeds, "search_epochs": "\(c.searchEpochs)", "train_epochs": "\(c.trainEpochs)", "json": c.json ?? "",
            "search_only": "\(c.searchOnly)", "layers": "\(layers)", "d": "\(d)", "heads": "\(heads)", "batch_size": "\(batchSize)",
            "k_heads": "\(kHeads)", "graphs_per_seed": "\(graphsPerSeed)", "arms": arms.joined(separator: "; "),
            "data": "synthetic SBM task (Sources/DARTSGT/Reproduce.swift sbmGraphs, RNG seed 1000 + seed): 80 training graphs (48 D_tr, 32 D_val), 40 test graphs",
        ]
        var units: [PlanUnit] = []
        for s in seeds {
            for a in arms { units.append(PlanUnit(index: units.count, name: "seed \(s): \(a)")) }
        }
        return WorkPlan(command: "dartsgt-reproduce", arguments: arguments, commandLine: Audit.commandLine(["dartsgt-reproduce"] + arguments),
                        directory: directory, config: config, inputs: inputs, seeds: seeds, units: units,
                        info: RunInfo(root: packageRoot(), date: reproducibleDate() ?? Date()))
    }

    /// Seed `s`'s generated graphs must be the bits the plan hashed.
    static func verifyData(_ store: WorkStore, seed s: UInt64, reproduction r: Reproduction) throws {
        guard let input = store.plan.inputs.first(where: { $0.path == dataName(s) }) else {
            throw PlanError("\(store.planPath): no data hash for seed \(s)")
        }
        let now = digest(r.graphs)
        guard now.sha256 == input.sha256 else {
            throw PlanError("seed \(s): the generated SBM graphs have SHA-256 \(now.sha256.prefix(12)), the plan records \(input.sha256.prefix(12)) (another platform's random numbers?); units would not match the plan")
        }
    }

    /// Runs `units` (skipping those done; redoing those whose file is unusable), one after another.
    static func work(_ c: DARTSGTReproduce, store: WorkStore, units: [Int], log: @escaping @Sendable (String) -> Void) throws -> WorkSummary {
        var summary = WorkSummary()
        let todo = try store.pending(units, summary: &summary, log: log)
        if todo.isEmpty { return summary }
        try store.ensureDirectory()
        let seeds = store.plan.seeds
        guard seeds == (try c.seedList), store.plan.units.count == seeds.count * arms.count else {
            throw PlanError("\(store.planPath): \(store.plan.units.count) units for seeds \(seeds), expected \(seeds.count) × \(arms.count) arms")
        }
        var prepared: [UInt64: Reproduction] = [:]
        for i in todo {
            try store.runUnit(i, preparation: nil, summary: &summary, log: log) {
                let (si, arm) = unit(i)
                let r: Reproduction
                if let p = prepared[seeds[si]] { r = p } else {
                    r = reproduction(c, seed: seeds[si])
                    try verifyData(store, seed: seeds[si], reproduction: r)
                    prepared[seeds[si]] = r
                }
                var result: [String: Double] = [:]
                var alpha: Tensor?
                if arm == 0 {
                    let (a, seconds) = try r.search(progress: log)
                    alpha = a
                    result["alpha.rows"] = Double(a.shape[0])
                    result["alpha.cols"] = Double(a.shape[1])
                    for (k, v) in a.data.enumerated() { result["alpha.\(k)"] = v }
                    result["search_seconds"] = seconds
                }
                let res = try r.train(arm: arm, ops: try r.ops(arm: arm, alpha: alpha), progress: log)
                result["ops.count"] = Double(res.ops.count)
                for (l, o) in res.ops.enumerated() { result["ops.\(l)"] = Double(o) }
                result["test_mae"] = res.testMAE
                result["specialization_median"] = res.specializationMedian
                result["focus_median"] = res.focusMedian
                return result
            }
        }
        return summary
    }

    /// A complete, consistent set of units, per seed in the plan's order.
    struct Merged {
        struct Seed { var seed: UInt64; var alpha: Tensor; var seconds: Double; var arms: [ArmResult] }
        var seeds: [Seed]
        var computeSeconds: Double
    }

    static func merge(store: WorkStore) throws -> Merged {
        let records = try store.allRecords()
        let seeds = store.plan.seeds
        guard records.count == seeds.count * arms.count else {
            throw PlanError("\(store.planPath): \(records.count) units for \(seeds.count) seeds × \(arms.count) arms; cannot merge")
        }
        var out: [Merged.Seed] = []
        for (si, s) in seeds.enumerated() {
            var alpha: Tensor?
            var results: [ArmResult] = []
            var seconds = 0.0
            for arm in arms.indices {
                let i = si * arms.count + arm
                let rec = records[i], path = store.unitPath(i)
                guard rec.unit == i else { throw PlanError("\(path): holds unit \(rec.unit); cannot merge") }
                if rec.preparation != nil { throw PlanError("\(path): made from a preparation; a search plan has none; cannot merge") }
                func one(_ key: String) throws -> Double {
                    guard let v = rec.value(key) else { throw PlanError("\(path): no value \(key); cannot merge") }
                    return v
                }
                func count(_ key: String, max: Int) throws -> Int {
                    let n = try one(key)
                    guard n >= 0, n <= Double(max), n == n.rounded() else { throw PlanError("\(path): \(key) is \(n); cannot merge") }
                    return Int(n)
                }
                let ops = try (0..<count("ops.count", max: 1 << 20)).map { try count("ops.\($0)", max: 2) }
                guard ops.count == layers else { throw PlanError("\(path): \(ops.count) operators, the model has \(layers) layers; cannot merge") }
                if arm == 0 {
                    let rows = try count("alpha.rows", max: 1 << 20), cols = try count("alpha.cols", max: 1 << 20)
                    guard rows == layers, cols == 3 else { throw PlanError("\(path): α is \(rows)×\(cols), expected \(layers)×3; cannot merge") }
                    let a = Tensor(unchecked: [rows, cols], try (0..<(rows * cols)).map { try one("alpha.\($0)") })
                    guard try discretise(a, groups: Array(0..<layers)) == ops else {
                        throw PlanError("\(path): the searched operators \(ops) are not argmax softmax(α); cannot merge")
                    }
                    alpha = a
                } else if arm <= GNNOperator.allCases.count, ops != Array(repeating: GNNOperator.allCases[arm - 1].rawValue, count: layers) {
                    throw PlanError("\(path): operators \(ops) for arm '\(arms[arm])'; cannot merge")
                }
                results.append(ArmResult(arm: arms[arm], ops: ops, testMAE: try one("test_mae"),
                                         specializationMedian: try one("specialization_median"), focusMedian: try one("focus_median")))
                seconds += rec.seconds
            }
            out.append(Merged.Seed(seed: s, alpha: alpha!, seconds: reproducibleDate() == nil ? seconds : 0, arms: results))
        }
        return Merged(seeds: out, computeSeconds: records.reduce(0) { $0 + $1.seconds })
    }
}

struct PlanSearch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Plan `certify dartsgt-reproduce` (DARTS-GT search and retrained arms): one unit per (seed, arm); the searched arm runs the seed's search.",
        aliases: ["dartsgt-reproduce"])

    @OptionGroup var reproduce: DARTSGTReproduce
    @Option(name: .shortAndLong, help: "The plan file to write (its units go to PLAN.units/ next to it).") var output: String

    func run() throws {
        try SafeOutput.prepare(output)
        let all = Array(CommandLine.arguments.dropFirst())
        let name = all.firstIndex(of: "plan").flatMap { all.indices.contains($0 + 1) ? all[$0 + 1] : nil } ?? "search"
        let args = PlanAudit.auditArguments(all, command: name)
        // The recorded arguments must give back this very reproduction.
        _ = try DARTSGTReproduce.load(arguments: args)
        let plan = try reproduce.makePlan(arguments: args, directory: FileManager.default.currentDirectoryPath)
        try SafeOutput.write(output, data: try plan.encoded())
        print("wrote \(output): \(plan.units.count) units, config hash \(plan.configHash.prefix(12))")
        print("run: certify work \(output) --all   (or --unit I, --shard i/n, or as a job array: certify slurm \(output))")
    }
}
