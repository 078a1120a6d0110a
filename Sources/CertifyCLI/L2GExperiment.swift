// `certify l2g experiment`: the synthetic moving-shapes experiment of docs/l2g/REPRODUCTION.md (L2G-aligner vs plain
// propagation of the previous frame's queries), over several seeds, with mean ± standard error.

import ArgumentParser
import Certification
import Foundation
import L2G

struct L2GCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "l2g",
        abstract: "Local2Global (online VIS): the synthetic-video experiment.",
        subcommands: [L2GExperimentCommand.self])
}

struct L2GExperimentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experiment",
        abstract: "Train the tiny online VIS model with and without the L2G-aligner on synthetic moving shapes; print the table.",
        discussion: """
            The data set is fixed (seeded); --seeds sets the number of training seeds (model initialisation and video order). \
            Each arm is evaluated with l2g.vis_ap (AP, AP50, AP75, AR10) and by identity switches per test video. Mean ± \
            standard error over seeds. With --json OUT, every per-seed number is written too. This does not reproduce the \
            paper's YouTube-VIS results: it tests the aligner's effect in a controlled setting.
            """)

    @Option(help: "Training seeds (≥ 3 for the table in docs/l2g).") var seeds = 3
    @Option(help: "Epochs per arm.") var epochs = 12
    @Option(help: "Training videos.") var train = 48
    @Option(help: "Test videos.") var test = 32
    @Option(help: "Also write every per-seed result as JSON to this file.") var json: String?

    func run() throws {
        if let json { try SafeOutput.prepare(json) }
        let (tr, te) = experimentData(trainVideos: train, testVideos: test)
        var results: [ArmResult] = []
        for s in 0..<seeds {
            for aligner in [true, false] {
                let r = try runExperimentArm(useAligner: aligner, seed: s, train: tr, test: te, epochs: epochs) { stderr($0 + "\n") }
                stderr("\(r.arm) seed \(s): AP \(r.ap), IDS/video \(r.identitySwitches), \(String(format: "%.1f", r.trainSeconds)) s\n")
                results.append(r)
            }
        }
        print(experimentTable(results))
        if let json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try SafeOutput.write(json, data: try enc.encode(results))
            stderr("wrote \(json)\n")
        }
    }
}

func meanSE(_ xs: [Double]) -> String {
    let m = xs.reduce(0, +) / Double(xs.count)
    guard xs.count > 1 else { return String(format: "%.3f", m) }
    let v = xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count - 1)
    return String(format: "%.3f ± %.3f", m, (v / Double(xs.count)).squareRoot())
}

func experimentTable(_ rs: [ArmResult]) -> String {
    var s = "| arm | seeds | AP | AP50 | AP75 | AR10 | identity switches / video | final train loss | train s (mean) |\n|---|---|---|---|---|---|---|---|---|\n"
    for arm in ["L2G-aligner", "plain propagation"] {
        let a = rs.filter { $0.arm == arm }
        guard !a.isEmpty else { continue }
        s += "| \(arm) | \(a.count) | \(meanSE(a.map(\.ap))) | \(meanSE(a.map(\.ap50))) | \(meanSE(a.map(\.ap75))) | \(meanSE(a.map(\.ar10))) | " +
            "\(meanSE(a.map(\.identitySwitches))) | \(meanSE(a.map(\.finalTrainLoss))) | \(String(format: "%.1f", a.map(\.trainSeconds).reduce(0, +) / Double(a.count))) |\n"
    }
    return s
}
