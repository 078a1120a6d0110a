// Reading YouTube-VIS JSON (ground truth and results) for `certify vis-eval`, and writing the evaluation as JSON.
// Ground truth: {"videos": [{"id", "height", "width", "length"}], "categories": [{"id"}], "annotations": [{"id", "video_id",
// "category_id", "iscrowd", "segmentations": [mask or null per frame], "areas": [number or null per frame]}]}.
// Results: [{"video_id", "category_id", "score", "segmentations": [mask or null per frame]}].
// A mask is compressed RLE {"size": [h, w], "counts": "…"}, uncompressed RLE {"size": [h, w], "counts": [n, …]}, or a dense
// h × w array of 0/1 rows. Every problem is one `VISInputError` naming the file and the entry.

import Foundation

/// Bad input: the file, the entry (e.g. "annotations[3].segmentations[2]") and what is wrong.
public struct VISInputError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var entry: String
    public var message: String
    public init(file: String, entry: String, _ message: String) {
        self.file = file; self.entry = entry; self.message = message
    }
    public var description: String { entry.isEmpty ? "\(file): \(message)" : "\(file): \(entry): \(message)" }
}

public struct VISVideo: Sendable {
    public var id: Int
    public var height: Int
    public var width: Int
    public var length: Int
}

public struct VISGroundTruthFile: Sendable {
    public var videos: [VISVideo]
    public var categoryIDs: [Int]
    public var tracks: [VISGroundTruthTrack]
}

let nonFiniteMarker = "__certify_non_finite__:"

func loadJSON(_ path: String) throws -> Any {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw VISInputError(file: path, entry: "", "cannot read the file (missing or unreadable)")
    }
    if data.allSatisfy({ [0x20, 0x0a, 0x0d, 0x09].contains($0) }) { throw VISInputError(file: path, entry: "", "the file is empty") }
    do { return try JSONReader.parse(data) } catch let e as JSONReadError {
        throw VISInputError(file: path, entry: "", "not valid JSON: \(e)")
    }
}

func describeJSON(_ v: Any?) -> String {
    guard let v else { return "nothing" }
    if v is NSNull { return "null" }
    if let s = v as? String {
        if s.hasPrefix(nonFiniteMarker) { return String(s.dropFirst(nonFiniteMarker.count)) }
        return "a string"
    }
    if v is [Any] { return "a list" }
    if v is [String: Any] { return "an object" }
    return "\(v)"
}

/// A JSON number as an exact integer.
func jsonInt(_ v: Any?, file: String, entry: @autoclosure () -> String) throws -> Int {
    if let d = v as? Double, d.isFinite, d.rounded() == d, Swift.abs(d) < 9.007e15 { return Int(d) }
    if let n = v as? NSNumber {
        let d = n.doubleValue
        if d.isFinite, d.rounded() == d, Swift.abs(d) < 9.007e15 { return Int(d) }
    }
    throw VISInputError(file: file, entry: entry(), "expected an integer, found \(describeJSON(v))")
}

func jsonDouble(_ v: Any?, file: String, entry: @autoclosure () -> String) throws -> Double {
    if let d = v as? Double { return d }
    if let n = v as? NSNumber {
        let d = n.doubleValue
        guard d.isFinite else { throw VISInputError(file: file, entry: entry(), "expected a finite number, found \(d)") }
        return d
    }
    throw VISInputError(file: file, entry: entry(), "expected a finite number, found \(describeJSON(v))")
}

/// One mask: compressed or uncompressed RLE, or a dense array of rows; nil for null. Must be height × width.
func parseMask(_ v: Any, height: Int, width: Int, file: String, entry: String) throws -> RLE? {
    if v is NSNull { return nil }
    if let o = v as? [String: Any] {
        guard let size = o["size"] as? [Any], size.count == 2 else {
            throw VISInputError(file: file, entry: entry, "RLE needs \"size\": [height, width]")
        }
        let h = try jsonInt(size[0], file: file, entry: entry + ".size[0]"), w = try jsonInt(size[1], file: file, entry: entry + ".size[1]")
        guard h == height, w == width else {
            throw VISInputError(file: file, entry: entry, "mask size [\(h), \(w)] differs from the video's [\(height), \(width)]")
        }
        do {
            if let s = o["counts"] as? String { return try RLE(compressed: s, height: h, width: w) }
            if let c = o["counts"] as? [Double] {
                var counts = [Int](repeating: 0, count: c.count)
                for (j, x) in c.enumerated() {
                    guard x.rounded() == x, Swift.abs(x) < 9.007e15 else {
                        throw VISInputError(file: file, entry: entry + ".counts[\(j)]", "expected an integer, found \(x)")
                    }
                    counts[j] = Int(x)
                }
                return try RLE(height: h, width: w, counts: counts)
            }
            if let c = o["counts"] as? [Any] {
                let counts = try c.enumerated().map { try jsonInt($1, file: file, entry: entry + ".counts[\($0)]") }
                return try RLE(height: h, width: w, counts: counts)
            }
        } catch let e as RLE.FormatError {
            throw VISInputError(file: file, entry: entry, "malformed RLE: \(e.message)")
        }
        throw VISInputError(file: file, entry: entry, "RLE needs \"counts\" (a string or a list of integers)")
    }
    if let rows = v as? [Any] {
        if rows.count == height, rows.allSatisfy({ ($0 as? [Any])?.count == width }) {
            var dense = [Bool](repeating: false, count: height * width)
            for (y, r) in rows.enumerated() {
                for (x, p) in (r as! [Any]).enumerated() {
                    let b = try jsonInt(p, file: file, entry: entry + "[\(y)][\(x)]")
                    guard b == 0 || b == 1 else { throw VISInputError(file: file, entry: entry + "[\(y)][\(x)]", "a dense mask holds 0 or 1, found \(b)") }
                    dense[y * width + x] = b == 1
                }
            }
            return RLE(denseRowMajor: dense, height: height, width: width)
        }
        throw VISInputError(file: file, entry: entry,
                            "polygons are not supported, and a dense mask must be \(height) rows of \(width) values (the video's size); convert polygons to RLE")
    }
    throw VISInputError(file: file, entry: entry, "expected a mask (RLE object, dense rows) or null, found \(describeJSON(v))")
}

func parseMasks(_ v: Any?, video: VISVideo, file: String, entry: String) throws -> [RLE?] {
    guard let list = v as? [Any] else { throw VISInputError(file: file, entry: entry, "expected a list of per-frame masks, found \(describeJSON(v))") }
    guard list.count == video.length else {
        throw VISInputError(file: file, entry: entry, "\(list.count) frames, but video \(video.id) has \(video.length)")
    }
    return try list.enumerated().map { try parseMask($1, height: video.height, width: video.width, file: file, entry: entry + "[\($0)]") }
}

/// Reads a YouTube-VIS ground-truth file.
public func readVISGroundTruth(_ path: String) throws -> VISGroundTruthFile {
    guard let root = try loadJSON(path) as? [String: Any] else { throw VISInputError(file: path, entry: "", "the top level must be an object") }
    guard let vlist = root["videos"] as? [Any], !vlist.isEmpty else { throw VISInputError(file: path, entry: "videos", "missing or empty: no videos") }
    guard let clist = root["categories"] as? [Any], !clist.isEmpty else { throw VISInputError(file: path, entry: "categories", "missing or empty: no categories") }
    guard let alist = root["annotations"] as? [Any] else { throw VISInputError(file: path, entry: "annotations", "missing: no annotations list") }
    var videos: [Int: VISVideo] = [:], order: [VISVideo] = []
    for (i, v) in vlist.enumerated() {
        let e = "videos[\(i)]"
        guard let o = v as? [String: Any] else { throw VISInputError(file: path, entry: e, "expected an object") }
        let id = try jsonInt(o["id"], file: path, entry: e + ".id")
        let h = try jsonInt(o["height"], file: path, entry: e + ".height"), w = try jsonInt(o["width"], file: path, entry: e + ".width")
        let len: Int
        if o["length"] != nil { len = try jsonInt(o["length"], file: path, entry: e + ".length") }
        else if let f = o["file_names"] as? [Any] { len = f.count }
        else { throw VISInputError(file: path, entry: e, "needs \"length\" or \"file_names\"") }
        guard h > 0, w > 0, len > 0, h <= 1 << 16, w <= 1 << 16 else { throw VISInputError(file: path, entry: e, "height, width and length must be positive (found \(h), \(w), \(len))") }
        guard videos[id] == nil else { throw VISInputError(file: path, entry: e + ".id", "duplicate video id \(id)") }
        videos[id] = VISVideo(id: id, height: h, width: w, length: len)
        order.append(videos[id]!)
    }
    var cats: [Int] = []
    for (i, c) in clist.enumerated() {
        guard let o = c as? [String: Any] else { throw VISInputError(file: path, entry: "categories[\(i)]", "expected an object") }
        let id = try jsonInt(o["id"], file: path, entry: "categories[\(i)].id")
        guard !cats.contains(id) else { throw VISInputError(file: path, entry: "categories[\(i)].id", "duplicate category id \(id)") }
        cats.append(id)
    }
    var tracks: [VISGroundTruthTrack] = [], ids = Set<Int>()
    for (i, a) in alist.enumerated() {
        let e = "annotations[\(i)]"
        guard let o = a as? [String: Any] else { throw VISInputError(file: path, entry: e, "expected an object") }
        let id = try jsonInt(o["id"], file: path, entry: e + ".id")
        guard ids.insert(id).inserted else { throw VISInputError(file: path, entry: e + ".id", "duplicate annotation id \(id)") }
        let vid = try jsonInt(o["video_id"], file: path, entry: e + ".video_id")
        guard let video = videos[vid] else { throw VISInputError(file: path, entry: e + ".video_id", "video \(vid) is not in \"videos\"") }
        let cat = try jsonInt(o["category_id"], file: path, entry: e + ".category_id")
        guard cats.contains(cat) else { throw VISInputError(file: path, entry: e + ".category_id", "category \(cat) is not in \"categories\"") }
        let crowd = o["iscrowd"] == nil ? 0 : try jsonInt(o["iscrowd"], file: path, entry: e + ".iscrowd")
        let masks = try parseMasks(o["segmentations"], video: video, file: path, entry: e + ".segmentations")
        var areas: [Double?]
        if let al = o["areas"] as? [Any] {
            guard al.count == video.length else { throw VISInputError(file: path, entry: e + ".areas", "\(al.count) entries, but video \(vid) has \(video.length) frames") }
            areas = try al.enumerated().map { j, x in x is NSNull ? nil : try jsonDouble(x, file: path, entry: e + ".areas[\(j)]") }
        } else if o["areas"] == nil || o["areas"] is NSNull {
            areas = masks.map { $0.map { Double($0.area) } }   // Certify's fallback: the masks' areas
        } else { throw VISInputError(file: path, entry: e + ".areas", "expected a list of numbers or nulls") }
        tracks.append(VISGroundTruthTrack(id: id, videoID: vid, categoryID: cat, iscrowd: crowd != 0, masks: masks, areas: areas))
    }
    return VISGroundTruthFile(videos: order, categoryIDs: cats, tracks: tracks)
}

/// Reads a YouTube-VIS results file against its ground truth.
public func readVISResults(_ path: String, groundTruth gt: VISGroundTruthFile) throws -> [VISDetection] {
    let root = try loadJSON(path)
    let list: [Any]
    if let l = root as? [Any] { list = l }
    else if let o = root as? [String: Any], let l = o["annotations"] as? [Any] { list = l }
    else { throw VISInputError(file: path, entry: "", "the top level must be a list of results") }
    let videos = Dictionary(uniqueKeysWithValues: gt.videos.map { ($0.id, $0) })
    let cats = Set(gt.categoryIDs)
    var out: [VISDetection] = []
    out.reserveCapacity(list.count)
    for (i, r) in list.enumerated() {
        let e = "[\(i)]"
        guard let o = r as? [String: Any] else { throw VISInputError(file: path, entry: e, "expected an object") }
        let vid = try jsonInt(o["video_id"], file: path, entry: e + ".video_id")
        guard let video = videos[vid] else { throw VISInputError(file: path, entry: e + ".video_id", "unknown video \(vid) (not in the ground truth)") }
        let cat = try jsonInt(o["category_id"], file: path, entry: e + ".category_id")
        guard cats.contains(cat) else { throw VISInputError(file: path, entry: e + ".category_id", "unknown category \(cat) (not in the ground truth)") }
        let score = try jsonDouble(o["score"], file: path, entry: e + ".score")
        let masks = try parseMasks(o["segmentations"], video: video, file: path, entry: e + ".segmentations")
        out.append(VISDetection(videoID: vid, categoryID: cat, score: score, masks: masks))
    }
    return out
}

/// The evaluation as JSON, every number at full Float64 precision (shortest round-trip form).
public func visEvaluationJSON(_ e: VISEvaluation) -> String {
    func num(_ d: Double) -> String { "\(d)" }   // Swift prints the shortest string that reads back to the same double
    func arr(_ a: [Double]) -> String { "[" + a.map(num).joined(separator: ", ") + "]" }
    var s = "{\n  \"stats\": {" + zip(VISParams.statNames, e.stats).map { "\"\($0)\": \(num($1))" }.joined(separator: ", ") + "},\n"
    s += "  \"stats_list\": \(arr(e.stats)),\n"
    s += "  \"iou_thresholds\": \(arr(VISParams.iouThresholds)),\n"
    s += "  \"recall_thresholds\": \(arr(VISParams.recallThresholds)),\n"
    s += "  \"categories\": [\n"
    s += e.categoryIDs.enumerated().map { k, id in
        "    {\"id\": \(id), \"ap_per_iou_threshold\": \(arr((0..<e.T).map { e.categoryAP(t: $0, k: k) }))}"
    }.joined(separator: ",\n")
    s += "\n  ]\n}\n"
    return s
}

/// The standard 12-line summary, as pycocotools prints it.
public func visSummary(_ e: VISEvaluation) -> String {
    let rows: [(String, String, String, String, Int)] = [
        ("Average Precision", "(AP)", "0.50:0.95", "all", 100), ("Average Precision", "(AP)", "0.50", "all", 100),
        ("Average Precision", "(AP)", "0.75", "all", 100), ("Average Precision", "(AP)", "0.50:0.95", "small", 100),
        ("Average Precision", "(AP)", "0.50:0.95", "medium", 100), ("Average Precision", "(AP)", "0.50:0.95", "large", 100),
        ("Average Recall", "(AR)", "0.50:0.95", "all", 1), ("Average Recall", "(AR)", "0.50:0.95", "all", 10),
        ("Average Recall", "(AR)", "0.50:0.95", "all", 100), ("Average Recall", "(AR)", "0.50:0.95", "small", 100),
        ("Average Recall", "(AR)", "0.50:0.95", "medium", 100), ("Average Recall", "(AR)", "0.50:0.95", "large", 100),
    ]
    return zip(rows, e.stats).map { r, v in
        let title = r.0.padding(toLength: 18, withPad: " ", startingAt: 0)
        let iou = r.2.padding(toLength: 9, withPad: " ", startingAt: 0)
        let area = String(repeating: " ", count: Swift.max(0, 6 - r.3.count)) + r.3
        let md = String(repeating: " ", count: Swift.max(0, 3 - String(r.4).count)) + String(r.4)
        return " \(title) \(r.1) @[ IoU=\(iou) | area=\(area) | maxDets=\(md) ] = \(String(format: "%.3f", v))"
    }.joined(separator: "\n")
}
