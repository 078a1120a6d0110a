// `certify graph-audit` as a plan of independent units: one unit per contiguous chunk of test graphs
// (one graph per unit up to `GraphAuditPlanner.maxUnits` graphs, then ⌈B / maxUnits⌉ graphs per unit,
// so a plan has at most `maxUnits` units). Each unit reads the model and the data (their SHA-256 must
// match the plan), explains its graphs and records every number of each graph's HeadReport; the merge
// prints and writes exactly what `certify graph-audit` does. `certify graph-audit` itself is
// plan → work (all units, here) → merge.

import Certification
import DARTSGT
import Foundation

extension GraphAuditCommand: PlannedCommand {
    static func load(arguments: [String]) throws -> GraphAuditCommand {
        do { return try GraphAuditCommand.parse(arguments) } catch {
            throw PlanError("the plan's graph-audit arguments do not parse (\(GraphAuditCommand.message(for: error)))")
        }
    }

    func makePlan(arguments: [String], directory: String) throws -> WorkPlan {
        try GraphAuditPlanner.plan(self, arguments: arguments, directory: directory)
    }

    func work(store: WorkStore, units: [Int], jobs: Int?, log: @escaping @Sendable (String) -> Void) throws -> String {
        let s = try GraphAuditPlanner.work(self, store: store, units: units, verifyInputs: true, log: log)
        return "ran \(s.ran)\(s.redone > 0 ? " (\(s.redone) redone: damaged files)" : ""), already done \(s.alreadyDone), held by other workers \(s.heldElsewhere)"
    }

    /// No shared preparation: every worker reads the model and the data itself.
    func prepareOnly(store: WorkStore, log: @escaping @Sendable (String) -> Void) throws {
        try store.ensureDirectory()
        try GraphAuditPlanner.verifyInputs(store)
    }

    func merge(store: WorkStore, outputs: [String: String], log: @escaping @Sendable (String) -> Void) throws {
        var a = self
        if let j = outputs["json"] { a.json = j }
        if let s = outputs["svg"] { a.svg = s }
        for path in [a.json, a.svg].compactMap({ $0 }) { try SafeOutput.prepare(path) }
        try GraphAuditPlanner.verifyInputs(store)
        let graphs = try loadAuditGraphs(path: data)
        let m = try DiscreteModel.load(path: model, d: graphs[0].x.shape[1])
        let reports = try GraphAuditPlanner.merge(store: store, graphs: graphs.count)
        try a.printAndWrite(reports, model: m, plan: store.plan)
    }
}

/// The plan, work and merge of `certify graph-audit`.
enum GraphAuditPlanner {
    /// At most this many units per plan (contiguous chunks of graphs beyond it).
    static let maxUnits = 1000

    /// Graphs per unit for a data set of `count` graphs.
    static func chunk(_ count: Int) -> Int { Swift.max(1, (count + maxUnits - 1) / maxUnits) }

    /// The graphs of unit `i`.
    static func range(_ i: Int, count: Int) -> Range<Int> {
        let c = chunk(count)
        return (i * c)..<Swift.min(count, (i + 1) * c)
    }

    static func plan(_ a: GraphAuditCommand, arguments: [String], directory: String, graphCount: Int? = nil) throws -> WorkPlan {
        guard a.kHeads >= 1 else { throw CLIError(message: "--k-heads must be ≥ 1, got \(a.kHeads)") }
        let inputs = [try PlanInput.of(a.model, directory: directory), try PlanInput.of(a.data, directory: directory)]
        let count = try graphCount ?? loadAuditGraphs(path: a.data).count
        let config: [String: String] = [
            "model": a.model, "data": a.data, "k_heads": "\(a.kHeads)", "stable_ties": "\(a.stableTies)",
            "json": a.json ?? "", "svg": a.svg ?? "", "graphs": "\(count)", "graphs_per_unit": "\(chunk(count))",
        ]
        let n = (count + chunk(count) - 1) / chunk(count)
        let units = (0..<n).map { i -> PlanUnit in
            let r = range(i, count: count)
            return PlanUnit(index: i, name: r.count == 1 ? "graph \(r.lowerBound)" : "graphs \(r.lowerBound)-\(r.upperBound - 1)")
        }
        return WorkPlan(command: "graph-audit", arguments: arguments, commandLine: Audit.commandLine(["graph-audit"] + arguments),
                        directory: directory, config: config, inputs: inputs, seeds: [], units: units,
                        info: RunInfo(root: packageRoot(), date: reproducibleDate() ?? Date()))
    }

    /// The model and data files must still be the ones the plan hashed.
    static func verifyInputs(_ store: WorkStore) throws {
        for input in store.plan.inputs {
            let now = try PlanInput.of(input.path, directory: store.plan.directory)
            guard now.sha256 == input.sha256 else {
                throw PlanError("\(input.path): changed since the plan was made (SHA-256 \(now.sha256.prefix(12)), the plan records \(input.sha256.prefix(12)))")
            }
        }
    }

    /// Graph `g`'s report as a unit's numbers (keys "g<g>.<field>", arrays as "<field>.<i>" with "<field>.count").
    static func record(_ r: HeadReport, graph g: Int, into out: inout [String: Double]) {
        let p = "g\(g)."
        func put(_ name: String, _ v: [Double]) {
            out[p + name + ".count"] = Double(v.count)
            for (i, x) in v.enumerated() { out[p + name + ".\(i)"] = x }
        }
        put("errors", r.errors); put("delta", r.delta); put("top", r.top.map(Double.init))
        put("head_sum", r.headSum); put("head_std", r.headStd); put("entropy", r.entropy)
        out[p + "specialization"] = r.specialization
        out[p + "focus"] = r.focus
        out[p + "correlation"] = r.correlation
        out[p + "entropy_spearman"] = r.entropySpearman
    }

    /// Graph `g`'s report from a unit's record (exact values, from the bit patterns).
    static func report(_ rec: UnitRecord, graph g: Int, path: String) throws -> HeadReport {
        let p = "g\(g)."
        func one(_ name: String) throws -> Double {
            guard let v = rec.value(p + name) else { throw PlanError("\(path): no value \(p + name)") }
            return v
        }
        func many(_ name: String) throws -> [Double] {
            let n = try one(name + ".count")
            guard n >= 0, n < 1e9, n == n.rounded() else { throw PlanError("\(path): \(p + name).count is \(n)") }
            return try (0..<Int(n)).map { try one(name + ".\($0)") }
        }
        return HeadReport(errors: try many("errors"), delta: try many("delta"), specialization: try one("specialization"),
                          top: try many("top").map { Int($0) }, focus: try one("focus"), correlation: try one("correlation"),
                          headSum: try many("head_sum"), headStd: try many("head_std"), entropy: try many("entropy"),
                          entropySpearman: try one("entropy_spearman"))
    }

    /// Runs `units` (skipping those done; redoing those whose file is unusable), one after another.
    /// `loaded`: the model and graphs read in this process already (the single-machine graph-audit).
    static func work(_ a: GraphAuditCommand, store: WorkStore, units: [Int], verifyInputs check: Bool,
                     loaded: (DiscreteModel, [AuditGraph])? = nil, log: @escaping @Sendable (String) -> Void) throws -> WorkSummary {
        var summary = WorkSummary()
        let todo = try store.pending(units, summary: &summary, log: log)
        if todo.isEmpty { return summary }
        try store.ensureDirectory()
        let (m, graphs): (DiscreteModel, [AuditGraph])
        if let loaded { (m, graphs) = loaded } else {
            if check { try verifyInputs(store) }
            let g = try loadAuditGraphs(path: a.data)
            (m, graphs) = (try DiscreteModel.load(path: a.model, d: g[0].x.shape[1]), g)
        }
        let count = Int(store.plan.config["graphs"] ?? "") ?? -1
        guard count == graphs.count else { throw PlanError("\(a.data): \(graphs.count) graphs, the plan has \(count)") }
        for i in todo {
            try store.runUnit(i, preparation: nil, summary: &summary, log: log) {
                let r = range(i, count: count)
                let reports = try graphAudit(model: m, graphs: Array(graphs[r]), k: a.kHeads, stable: a.stableTies)
                var result: [String: Double] = [:]
                for (j, rep) in reports.enumerated() { record(rep, graph: r.lowerBound + j, into: &result) }
                return result
            }
        }
        return summary
    }

    /// Every graph's report, in order, from a complete, consistent set of units.
    static func merge(store: WorkStore, graphs count: Int) throws -> [HeadReport] {
        let records = try store.allRecords()
        guard Int(store.plan.config["graphs"] ?? "") == count else {
            throw PlanError("\(store.plan.config["data"] ?? "data"): \(count) graphs, the plan has \(store.plan.config["graphs"] ?? "?")")
        }
        if let bad = records.first(where: { $0.preparation != nil }) {
            throw PlanError("\(store.unitPath(bad.unit)): made from a preparation; a graph audit has none; cannot merge")
        }
        var out: [HeadReport] = []
        for (i, rec) in records.enumerated() {
            guard rec.unit == i else { throw PlanError("\(store.unitPath(i)): holds unit \(rec.unit); cannot merge") }
            for g in range(rec.unit, count: count) { out.append(try report(rec, graph: g, path: store.unitPath(rec.unit))) }
        }
        return out
    }
}
