// `certify dartsgt-reproduce`: DARTS-GT's ablation on the seeded SBM task (Sources/DARTSGT/Reproduce.swift), per seed: search,
// discretise, retrain; uniform and random baselines; test MAE and the explainer's Specialization / Focus medians. JSON with provenance.

import ArgumentParser
import Certification
import DARTSGT
import Foundation

struct DARTSGTReproduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dartsgt-reproduce",
        abstract: "DARTS-GT search vs uniform / random operators on a seeded stochastic-block-model task (CPU-sized).")

    @Option(help: "Seeds, comma-separated.") var seeds: String = "0,1,2"
    @Option(help: "Search epochs (each zip(D_tr, D_val)).") var searchEpochs: Int = 6
    @Option(help: "Retraining epochs of every discrete model.") var trainEpochs: Int = 25
    @Option(help: "Write the results as JSON.") var json: String?
    @Flag(help: "Only time the search (bench/dartsgt_search_bench.py).") var searchOnly = false

    func run() throws {
        let list = seeds.split(separator: ",").compactMap { UInt64($0.trimmingCharacters(in: .whitespaces)) }
        guard !list.isEmpty else { throw CLIError(message: "--seeds must list non-negative integers, got '\(seeds)'") }
        if let json { try SafeOutput.prepare(json) }
        let start = Date()
        var rows: [String] = [], alphas: [String] = []
        for s in list {
            let t0 = Date()
            let r = try reproduceSeed(seed: s, searchEpochs: searchEpochs, trainEpochs: trainEpochs, searchOnly: searchOnly) { stderr($0 + "\n") }
            if searchOnly { print(String(format: "search_seconds_per_epoch %.4f", r.searchSeconds / Double(Swift.max(searchEpochs, 1)))); continue }
            let secs = Date().timeIntervalSince(t0)
            let pi = try (0..<r.alpha.shape[0]).map { l in try r.alpha.slice(axis: 0, l..<(l + 1)).reshaped([3]).softmax(axis: 0).data }
            alphas.append("    {\"seed\": \(s), \"seconds\": \(String(format: "%.1f", secs)), \"pi\": [\(pi.map { "[" + $0.map { String(format: "%.6f", $0) }.joined(separator: ", ") + "]" }.joined(separator: ", "))]}")
            for a in r.arms {
                print(String(format: "seed %d  %-24@ ops %@  test MAE %.4f  S median %.4g  F median %.3f", s, a.arm as NSString,
                             a.ops.map(String.init).joined(separator: ",") as NSString, a.testMAE, a.specializationMedian, a.focusMedian))
                rows.append("    {\"seed\": \(s), \"arm\": \"\(a.arm)\", \"ops\": \(a.ops), \"test_mae\": \(a.testMAE), " +
                            "\"specialization_median\": \(a.specializationMedian), \"focus_median\": \(a.focusMedian)}")
            }
        }
        guard let json else { return }
        let prov = Audit.provenance(data: "synthetic SBM task (Sources/DARTSGT/Reproduce.swift sbmGraphs: 120 graphs per seed, RNG seed 1000 + seed)",
                                    seeds: seeds)
        let provText = prov.sorted { $0.key < $1.key }.map { "    \"\($0.key)\": \"\($0.value.replacingOccurrences(of: "\"", with: "'"))\"" }
        let text = """
        {
          "provenance": {
        \(provText.joined(separator: ",\n"))
          },
          "settings": {"layers": 2, "d": 8, "heads": 2, "search_epochs": \(searchEpochs), "train_epochs": \(trainEpochs), "batch_size": 16, "k_heads": 2},
          "seconds_total": \(String(format: "%.1f", Date().timeIntervalSince(start))),
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
