// `certify vis-eval GT.json RESULTS.json [--json OUT]`: the YouTube-VIS video AP (l2g.vis_ap) on files in the
// YouTube-VIS JSON formats, bit-identical to the official evaluation (pycocotools COCOeval with the YouTube-VIS changes).

import ArgumentParser
import Certification
import Foundation
import L2G

struct VisEval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vis-eval",
        abstract: "YouTube-VIS video AP of a results file against a ground-truth file (certified as l2g.vis_ap).",
        discussion: """
            Prints the standard 12-number summary (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl). With \
            --json OUT, also writes the same numbers at full Float64 precision, the IoU thresholds and recall points \
            (numpy.linspace, bit for bit) and the AP of every category at every IoU threshold. Masks: compressed or \
            uncompressed COCO RLE, or dense 0/1 rows (polygons are not supported). Unlike the official code, a result naming \
            a video or category absent from the ground truth is an error, not an assertion or a silent drop, and every track \
            must have one entry per frame of its video. Exit 0 on success, 2 on bad input (one line naming the file and entry).
            """)

    @Argument(help: "Ground truth (YouTube-VIS instances JSON).") var groundTruth: String
    @Argument(help: "Results (a JSON list of {video_id, category_id, score, segmentations}).") var results: String
    @Option(help: "Also write the evaluation as JSON to this file.") var json: String?
    @Flag(help: "Print the time of each stage (reading, evaluating) to stderr.") var timings = false

    func run() throws {
        if let json { try SafeOutput.prepare(json) }   // before any work
        let e: VISEvaluation
        do {
            let t0 = Date()
            let gt = try readVISGroundTruth(groundTruth)
            let t1 = Date()
            let dts = try readVISResults(results, groundTruth: gt)
            let t2 = Date()
            e = evaluateVIS(videoIDs: gt.videos.map(\.id), categoryIDs: gt.categoryIDs, groundTruth: gt.tracks, detections: dts)
            if timings {
                stderr(String(format: "read ground truth %.3f s, read results %.3f s, evaluate %.3f s\n",
                              t1.timeIntervalSince(t0), t2.timeIntervalSince(t1), Date().timeIntervalSince(t2)))
            }
        } catch let v as VISInputError {
            throw CLIError(message: v.description)
        }
        print(visSummary(e))
        if let json {
            try SafeOutput.write(json, text: visEvaluationJSON(e))
            stderr("wrote \(json)\n")
        }
    }
}
