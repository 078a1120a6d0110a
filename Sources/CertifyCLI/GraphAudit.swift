// `certify graph-audit`: the DARTS-GT interpretability audit (Head-deviation, Specialization, Focus; dartsgt.explain) on a trained
// discrete DARTS-GT model and a data set, both HDF5 (layouts in Sources/DARTSGT/GraphAudit.swift and docs/dartsgt/README.md).
// Per-graph lines and the summary go to stdout; --json and --svg are written atomically at the end (all or nothing).

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
        let reports = try graphAudit(model: m, graphs: graphs, k: kHeads, stable: stableTies)
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
            let prov = Audit.provenance(data: "model \(model), data \(data)", seeds: "none (deterministic)")
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
