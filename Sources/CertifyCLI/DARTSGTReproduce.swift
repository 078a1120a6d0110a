// `certify dartsgt-reproduce`: DARTS-GT's ablation on the seeded SBM task (Sources/DARTSGT/Reproduce.swift), per seed: search,
// discretise, retrain; uniform and random baselines; test MAE and the explainer's Specialization / Focus medians. JSON with provenance.
// It runs as plan → work → merge (SearchPlan.swift), the path of `certify plan search`: one unit per (seed, arm).

import ArgumentParser
import Certification
import DARTSGT
import Foundation

struct DARTSGTReproduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dartsgt-reproduce",
        abstract: "DARTS-GT search vs uniform / random operators on a seeded stochastic-block-model task (CPU-sized).",
        discussion: """
            One unit per (seed, arm): the searched arm runs the seed's search, then every arm is retrained from its own \
            initialisation. `certify plan search [these options] -o PLAN.json` splits the same run across machines; \
            `certify merge PLAN.json` writes exactly what this command writes. Exit codes: 0 done, 2 bad input.
            """)

    @Option(help: "Seeds, comma-separated.") var seeds: String = "0,1,2"
    @Option(help: "Search epochs (each zip(D_tr, D_val)).") var searchEpochs: Int = 6
    @Option(help: "Retraining epochs of every discrete model.") var trainEpochs: Int = 25
    @Option(help: "Write the results as JSON.") var json: String?
    @Flag(help: "Only time the search (bench/dartsgt_search_bench.py).") var searchOnly = false

    /// The seeds of --seeds; every comma-separated part must be a non-negative integer.
    var seedList: [UInt64] {
        get throws {
            let parts = seeds.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            let list = parts.compactMap { UInt64($0) }
            guard !parts.isEmpty, list.count == parts.count else { throw CLIError(message: "--seeds must list non-negative integers, got '\(seeds)'") }
            return list
        }
    }

    func validate() throws {
        do { _ = try seedList } catch let e as CLIError { throw ValidationError(e.message) }
        guard searchEpochs >= 0 else { throw ValidationError("--search-epochs must be ≥ 0, got \(searchEpochs)") }
        guard trainEpochs >= 0 else { throw ValidationError("--train-epochs must be ≥ 0, got \(trainEpochs)") }
    }

    func run() throws {
        let list = try seedList
        if searchOnly {
            for s in list {
                let r = try reproduceSeed(seed: s, searchEpochs: searchEpochs, trainEpochs: trainEpochs, searchOnly: true) { stderr($0 + "\n") }
                print(String(format: "search_seconds_per_epoch %.4f", r.searchSeconds / Double(Swift.max(searchEpochs, 1))))
            }
            return
        }
        if let json { try SafeOutput.prepare(json) }
        // One code path with the distributed run: plan → work (every unit, here) → merge.
        let start = Date()
        let tmp = try Audit.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let plan = try SearchPlanner.plan(self, arguments: DARTSGTReproduce.ownArguments(), directory: FileManager.default.currentDirectoryPath)
        let store = WorkStore(planPath: tmp + "/plan.json", plan: plan)
        try SafeOutput.write(store.planPath, data: try plan.encoded())
        _ = try SearchPlanner.work(self, store: store, units: Array(plan.units.indices), log: { stderr($0 + "\n") })
        let merged = try SearchPlanner.merge(store: store)
        try printAndWrite(merged, plan: plan, seconds: reproducibleDate() == nil ? Date().timeIntervalSince(start) : 0)
    }

    /// This process's arguments after the `dartsgt-reproduce` subcommand.
    static func ownArguments() -> [String] {
        let all = Array(CommandLine.arguments.dropFirst())
        guard let i = all.firstIndex(of: "dartsgt-reproduce") else { return all }
        return Array(all[(i + 1)...])
    }

    /// Prints one line per (seed, arm) (stdout) and writes --json: the end of `certify dartsgt-reproduce` and of `certify merge`.
    func printAndWrite(_ m: SearchPlanner.Merged, plan: WorkPlan, seconds: Double) throws {
        var rows: [String] = [], alphas: [String] = []
        for s in m.seeds {
            let pi = try (0..<s.alpha.shape[0]).map { l in try s.alpha.slice(axis: 0, l..<(l + 1)).reshaped([3]).softmax(axis: 0).data }
            alphas.append("    {\"seed\": \(s.seed), \"seconds\": \(String(format: "%.1f", s.seconds)), \"pi\": [\(pi.map { "[" + $0.map { String(format: "%.6f", $0) }.joined(separator: ", ") + "]" }.joined(separator: ", "))]}")
            for a in s.arms {
                print(String(format: "seed %d  %-24@ ops %@  test MAE %.4f  S median %.4g  F median %.3f", s.seed, a.arm as NSString,
                             a.ops.map(String.init).joined(separator: ",") as NSString, a.testMAE, a.specializationMedian, a.focusMedian))
                rows.append("    {\"seed\": \(s.seed), \"arm\": \"\(a.arm)\", \"ops\": \(a.ops), \"test_mae\": \(a.testMAE), " +
                            "\"specialization_median\": \(a.specializationMedian), \"focus_median\": \(a.focusMedian)}")
            }
        }
        guard let json else { return }
        let prov = Audit.provenance(data: "synthetic SBM task (Sources/DARTSGT/Reproduce.swift sbmGraphs: 120 graphs per seed, RNG seed 1000 + seed)",
                                    seeds: seeds, commit: plan.commit, date: plan.created, command: plan.commandLine)
        let provText = prov.sorted { $0.key < $1.key }.map { "    \"\($0.key)\": \"\($0.value.replacingOccurrences(of: "\"", with: "'"))\"" }
        let text = """
        {
          "provenance": {
        \(provText.joined(separator: ",\n"))
          },
          "settings": {"layers": 2, "d": 8, "heads": 2, "search_epochs": \(searchEpochs), "train_epochs": \(trainEpochs), "batch_size": 16, "k_heads": 2},
          "seconds_total": \(String(format: "%.1f", seconds)),
          "search": [
        \(alphas.joined(separator: ",\n"))
          ],
          "results": [
        \(rows.joined(separator: ",\n"))
          ]
        }

        """
        try SafeOutput.write(json, text: text)
        stderr("wrote \(json)\n")
    }
}
