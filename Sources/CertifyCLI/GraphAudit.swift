// `certify graph-audit`: the DARTS-GT interpretability audit (Head-deviation, Specialization, Focus; dartsgt.explain) on a trained
// discrete DARTS-GT model and a data set, both HDF5 (layouts in Sources/DARTSGT/GraphAudit.swift and docs/dartsgt/README.md).
// Per-graph lines and the summary go to stdout; --json and --svg are written atomically at the end (all or nothing). It runs as
// plan → work → merge (GraphAuditPlan.swift), the path of `certify plan graph-audit`.

import ArgumentParser
import Certification
import DARTSGT
import Foundation

struct GraphAuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph-audit",
        abstract: "DARTS-GT head ablation audit: per-graph δ, Specialization S, Focus F; dataset median, mean ± std, S > 0.1 / F > 0.3 shares.",
        discussion: """
            certify graph-audit --model MODEL.h5 --data DATA.h5 [--k-heads K] [--stable-ties] [--json OUT.json] [--svg OUT.svg]
            MODEL.h5: /config/{heads, edge_stream, pooling, task}, /ops [L], /layers/<l>/<name> (dartsgt.layer's names),
            /head/<i>/{weight, bias}. DATA.h5: /x, /edge_index, /edge_attr, /batch, /y [B, T].
            Exit codes: 0 done, 2 bad input.
            """)

    @Option(help: "The trained discrete model (HDF5).") var model: String
    @Option(help: "The data set to audit (HDF5).") var data: String
    @Option(help: "k_heads: the top heads used by Focus (≥ 1; the official default is 1 when the config omits it).") var kHeads: Int = 1
    @Flag(help: "Break score ties with a stable sort instead of numpy's default argsort order.") var stableTies = false
    @Option(help: "Write the audit as JSON.") var json: String?
    @Option(help: "Write the δ distribution per layer and head as SVG.") var svg: String?

    func run() throws {
        guard kHeads >= 1 else { throw CLIError(message: "--k-heads must be ≥ 1, got \(kHeads)") }
        for path in [json, svg].compactMap({ $0 }) { try SafeOutput.prepare(path) }
        let graphs = try loadAuditGraphs(path: data)
        let m = try DiscreteModel.load(path: model, d: graphs[0].x.shape[1])
        // One code path with the distributed run: plan → work (every unit, here) → merge.
        let tmp = try Audit.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let plan = try GraphAuditPlanner.plan(self, arguments: GraphAuditCommand.ownArguments(), directory: FileManager.default.currentDirectoryPath,
                                              graphCount: graphs.count)
        let store = WorkStore(planPath: tmp + "/plan.json", plan: plan)
        try SafeOutput.write(store.planPath, data: try plan.encoded())
        _ = try GraphAuditPlanner.work(self, store: store, units: Array(plan.units.indices), verifyInputs: false, loaded: (m, graphs), log: { _ in })
        let reports = try GraphAuditPlanner.merge(store: store, graphs: graphs.count)
        try printAndWrite(reports, model: m, plan: plan)
    }

    /// This process's arguments after the `graph-audit` subcommand.
    static func ownArguments() -> [String] {
        let all = Array(CommandLine.arguments.dropFirst())
        guard let i = all.firstIndex(of: "graph-audit") else { return all }
        return Array(all[(i + 1)...])
    }

    /// Prints the per-graph lines and the summary (stdout) and writes --json and --svg: the end of `certify graph-audit`
    /// and of `certify merge`.
    func printAndWrite(_ reports: [HeadReport], model m: DiscreteModel, plan: WorkPlan) throws {
        for (g, r) in reports.enumerated() {
            print(String(format: "graph %d: baseline error %.6g  S %.6g  F %.4f  top heads %@", g, r.errors[0], r.specialization, r.focus,
                         r.top.map { "L\($0 / m.heads)H\($0 % m.heads)" }.joined(separator: " ")))
        }
        let s = summary(reports.map(\.specialization)), f = summary(reports.map(\.focus))
        let sHigh = reports.filter { $0.specialization > 0.1 }.count, fHigh = reports.filter { $0.focus > 0.3 }.count
        print(String(format: "Specialization: median %.6g, mean %.6g ± %.6g; S > 0.1 in %d of %d graphs", s.median, s.mean, s.std, sHigh, reports.count))
        print(String(format: "Focus: median %.4f, mean %.4f ± %.4f; F > 0.3 in %d of %d graphs", f.median, f.mean, f.std, fHigh, reports.count))
        var files: [(path: String, body: (String) throws -> Void)] = []
        if let json {
            let prov = Audit.provenance(data: "model \(model), data \(data)", seeds: "none (deterministic)", commit: plan.commit, date: plan.created,
                                        command: plan.commandLine)
            let bytes = Data(auditJSON(reports, model: m, provenance: prov, k: kHeads).utf8)
            files.append((json, { try bytes.write(to: URL(fileURLWithPath: $0)) }))
        }
        if let svg {
            let bytes = Data(auditSVG(reports, layers: m.ops.count, heads: m.heads).utf8)
            files.append((svg, { try bytes.write(to: URL(fileURLWithPath: $0)) }))
        }
        try SafeOutput.writeAll(files)
        for f in files { stderr("wrote \(f.path)\n") }
    }
}
