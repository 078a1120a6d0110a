// `certify vis-eval`'s reader: a golden case written as YouTube-VIS JSON evaluates to the golden's numbers bit for bit, and
// every kind of bad input is one error naming the file and the entry (exit 2 from the command line).
import Certification
import Foundation
import HDF5
import Tensor
import Testing
@testable import L2G

func scratchFile(_ name: String, _ text: String) throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("l2g-tests-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let path = dir.appendingPathComponent(name).path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

/// A golden case of l2g.vis_ap as (ground-truth JSON, results JSON): GT as uncompressed RLE with null for empty frames,
/// results as compressed RLE strings.
func goldenAsJSON(_ name: String) throws -> (gt: String, res: String, stats: [Double]) {
    let file = try File.open(root + "/golden/l2g/vis_ap.h5")
    let d = try CaseData.read(file: file, name: name)
    let (v, k, t, h, w) = (try d.int("num_videos"), try d.int("num_categories"), try d.int("frames"), try d.int("height"), try d.int("width"))
    let gv = try d.tensor("gt_video"), dv = try d.tensor("dt_video")
    let gm = try goldenTracks(try d.tensor("gt_counts"), try d.tensor("gt_offsets"), n: gv.count, frames: t, height: h, width: w, what: "gt")
    let dm = try goldenTracks(try d.tensor("dt_counts"), try d.tensor("dt_offsets"), n: dv.count, frames: t, height: h, width: w, what: "dt")
    let areas = try d.tensor("gt_areas"), gc = try d.tensor("gt_category"), crowd = try d.tensor("gt_iscrowd")
    var anns: [String] = []
    for i in 0..<gv.count {
        let segs = gm[i].map { m -> String in
            guard let m, m.area > 0 else { return "null" }
            return "{\"size\": [\(h), \(w)], \"counts\": [\(m.counts.map(String.init).joined(separator: ", "))]}"
        }
        let ar = (0..<t).map { f -> String in let a = areas.data[i * t + f]; return a == 0 ? "null" : "\(Int(a))" }
        anns.append("{\"id\": \(i + 1), \"video_id\": \(Int(gv.data[i]) + 1), \"category_id\": \(Int(gc.data[i])), \"iscrowd\": \(Int(crowd.data[i])), " +
                    "\"segmentations\": [\(segs.joined(separator: ", "))], \"areas\": [\(ar.joined(separator: ", "))]}")
    }
    let videos = (1...v).map { "{\"id\": \($0), \"height\": \(h), \"width\": \(w), \"length\": \(t)}" }
    let cats = (1...k).map { "{\"id\": \($0)}" }
    let gt = "{\"videos\": [\(videos.joined(separator: ", "))], \"categories\": [\(cats.joined(separator: ", "))], \"annotations\": [\(anns.joined(separator: ",\n"))]}"
    let dc = try d.tensor("dt_category"), ds = try d.tensor("dt_score")
    var res: [String] = []
    for i in 0..<dv.count {
        let segs = dm[i].map { m in "{\"size\": [\(h), \(w)], \"counts\": \"\(m!.compressedString.replacingOccurrences(of: "\\", with: "\\\\"))\"}" }
        res.append("{\"video_id\": \(Int(dv.data[i]) + 1), \"category_id\": \(Int(dc.data[i])), \"score\": \(ds.data[i]), \"segmentations\": [\(segs.joined(separator: ", "))]}")
    }
    return (gt, "[" + res.joined(separator: ",\n") + "]", d.outputs["stats"]!.data)
}

@Suite struct VisEvalFiles {
    @Test(arguments: ["basic", "crowd_regions", "empty_frames", "area_ranges", "score_ties"])
    func jsonMatchesGolden(_ name: String) throws {
        let (gt, res, stats) = try goldenAsJSON(name)
        let g = try readVISGroundTruth(try scratchFile("\(name)-gt.json", gt))
        let r = try readVISResults(try scratchFile("\(name)-res.json", res), groundTruth: g)
        let e = evaluateVIS(videoIDs: g.videos.map(\.id), categoryIDs: g.categoryIDs, groundTruth: g.tracks, detections: r)
        #expect(e.stats == stats, "\(e.stats) vs golden \(stats)")
    }

    @Test func linspaceIsNumpys() {
        #expect(VISParams.iouThresholds[7] == 0.85)
        #expect(VISParams.recallThresholds[35] == 0.35000000000000003)   // 35 · 0.01, numpy's value, not 0.35
        #expect(VISParams.recallThresholds[100] == 1)
    }

    static let gtOK = """
        {"videos": [{"id": 1, "height": 2, "width": 3, "length": 2}], "categories": [{"id": 1}],
         "annotations": [{"id": 1, "video_id": 1, "category_id": 1, "iscrowd": 0,
           "segmentations": [{"size": [2, 3], "counts": [1, 2, 3]}, null], "areas": [2, null]}]}
        """

    func expectError(_ gt: String, _ res: String?, contains parts: [String]) throws {
        let gp = try scratchFile("gt-\(UUID().uuidString).json", gt)
        do {
            let g = try readVISGroundTruth(gp)
            guard let res else { Issue.record("no error for bad ground truth"); return }
            let rp = try scratchFile("res-\(UUID().uuidString).json", res)
            _ = try readVISResults(rp, groundTruth: g)
            Issue.record("no error for \(res)")
        } catch let e as VISInputError {
            for p in parts { #expect(e.description.contains(p), "\(e.description) lacks '\(p)'") }
            #expect(!e.description.contains("\n"))
        }
    }

    @Test func badInputs() throws {
        let seg = "[{\"size\": [2, 3], \"counts\": \"02\"}, null]"
        try expectError(Self.gtOK, "[{\"video_id\": 7, \"category_id\": 1, \"score\": 0.5, \"segmentations\": \(seg)}]", contains: ["[0].video_id", "unknown video 7"])
        try expectError(Self.gtOK, "[{\"video_id\": 1, \"category_id\": 9, \"score\": 0.5, \"segmentations\": \(seg)}]", contains: ["[0].category_id", "unknown category 9"])
        try expectError(Self.gtOK, "[{\"video_id\": 1, \"category_id\": 1, \"score\": NaN, \"segmentations\": \(seg)}]", contains: ["[0].score", "NaN"])
        try expectError(Self.gtOK, "[{\"video_id\": 1, \"category_id\": 1, \"score\": 0.5, \"segmentations\": [{\"size\": [4, 3], \"counts\": \"03\"}, null]}]",
                        contains: ["[0].segmentations[0]", "differs from the video's [2, 3]"])
        try expectError(Self.gtOK, "[{\"video_id\": 1, \"category_id\": 1, \"score\": 0.5, \"segmentations\": [{\"size\": [2, 3], \"counts\": \"0~\"}, null]}]",
                        contains: ["[0].segmentations[0]", "malformed RLE"])
        try expectError(Self.gtOK, "[{\"video_id\": 1, \"category_id\": 1, \"score\": 0.5, \"segmentations\": [{\"size\": [2, 3], \"counts\": [1, 2]}, null]}]",
                        contains: ["[0].segmentations[0]", "sum to 3"])
        try expectError(Self.gtOK, "[{\"video_id\": 1, \"category_id\": 1, \"score\": 0.5, \"segmentations\": [null]}]", contains: ["[0].segmentations", "1 frames"])
        try expectError("", nil, contains: ["empty"])
        try expectError("{\"videos\": [], \"categories\": [], \"annotations\": []}", nil, contains: ["videos"])
        try expectError("{\"videos\": [{\"id\": 1, \"height\": 2, \"width\": 3, \"length\": 1}], \"categories\": [{\"id\": 1}], \"annotations\": [" +
                        "{\"id\": 1, \"video_id\": 1, \"category_id\": 1, \"segmentations\": [[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]]}]}", nil,
                        contains: ["annotations[0].segmentations[0]", "polygons"])
        try expectError("{\"videos\": [{\"id\": 1, \"height\": 2,", nil, contains: ["not valid JSON"])
    }

    @Test func denseMasksEqualRLE() throws {
        let res = "[{\"video_id\": 1, \"category_id\": 1, \"score\": 0.5, \"segmentations\": [[[0, 1, 0], [1, 0, 0]], null]}]"
        let g = try readVISGroundTruth(try scratchFile("dense-gt.json", Self.gtOK))
        let r = try readVISResults(try scratchFile("dense-res.json", res), groundTruth: g)
        // Column-major counts [1, 2, 3]: pixels (1,0) and (0,1) are set.
        #expect(r[0].masks[0] == g.tracks[0].masks[0])
        let e = evaluateVIS(videoIDs: [1], categoryIDs: [1], groundTruth: g.tracks, detections: r)
        #expect(e.stats[0] == 1.0 || e.stats[0] == 0.9999999999999998)
    }

    /// The command line: bad input exits 2 with one line naming the file; --json writes full-precision numbers.
    @Test func commandLine() throws {
        // The `certify` of this test binary's own build (its sibling), else .build/release or .build/debug.
        let sibling = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("certify").path
        guard let exe = [sibling, root + "/.build/release/certify", root + "/.build/debug/certify"]
            .first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else { return }
        let gp = try scratchFile("cli-gt.json", Self.gtOK)
        let bad = try scratchFile("cli-bad.json", "[{\"video_id\": 3, \"category_id\": 1, \"score\": 1, \"segmentations\": [null, null]}]")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = ["vis-eval", gp, bad, "--json", bad + ".out.json"]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = Pipe()
        try p.run()
        let msg = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 2)
        #expect(msg.contains("cli-bad.json") && msg.contains("[0].video_id") && msg.split(separator: "\n").count == 1, "\(msg)")
        #expect(!FileManager.default.fileExists(atPath: bad + ".out.json"), "nothing half-written")
    }
}
