// l2g.vis_ap — YouTube-VIS video AP: COCOeval's matching and accumulation with the spatio-temporal mask IoU
// and the YouTube-VIS area ranges (youtubevos/cocoapi ytvoseval.py; spec C.4 and E.2). Written from the
// description; every tie rule and floating-point step is the reference's, so the numbers are bit-identical.

import Certification
import Foundation
import Ops
import Tensor

/// One ground-truth track.
public struct VISGroundTruthTrack: Sendable {
    public var id: Int
    public var videoID: Int
    public var categoryID: Int
    public var iscrowd: Bool
    /// One mask per frame (nil: the object is absent from the frame).
    public var masks: [RLE?]
    /// The JSON `areas`, one per frame (nil for null); the track's area is the mean of the non-null, non-zero ones.
    public var areas: [Double?]
    public init(id: Int, videoID: Int, categoryID: Int, iscrowd: Bool, masks: [RLE?], areas: [Double?]) {
        self.id = id; self.videoID = videoID; self.categoryID = categoryID; self.iscrowd = iscrowd
        self.masks = masks; self.areas = areas
    }
}

/// One predicted track (a results-file entry).
public struct VISDetection: Sendable {
    public var videoID: Int
    public var categoryID: Int
    public var score: Double
    public var masks: [RLE?]
    public init(videoID: Int, categoryID: Int, score: Double, masks: [RLE?]) {
        self.videoID = videoID; self.categoryID = categoryID; self.score = score; self.masks = masks
    }
}

/// The evaluation's fixed parameters (YouTube-VIS defaults).
public enum VISParams {
    /// numpy.linspace(0.5, 0.95, 10): 0.5 + i·((0.95 − 0.5)/9), the last exactly 0.95.
    public static let iouThresholds: [Double] = linspace(0.5, 0.95, 10)
    /// numpy.linspace(0, 1, 101): i·0.01, the last exactly 1.
    public static let recallThresholds: [Double] = linspace(0.0, 1.0, 101)
    public static let maxDets = [1, 10, 100]
    /// all, small, medium, large; both ends inclusive.
    public static let areaRanges: [(Double, Double)] = [(0, 1e10), (0, 16384), (16384, 65536), (65536, 1e10)]
    public static let areaLabels = ["all", "small", "medium", "large"]
    /// The 12 summary numbers, in the standard order.
    public static let statNames = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
}

/// numpy.linspace(start, stop, num) with endpoint: (0..<num)·step + start, step = (stop − start)/(num − 1), last = stop.
public func linspace(_ start: Double, _ stop: Double, _ num: Int) -> [Double] {
    guard num > 1 else { return num == 1 ? [start] : [] }
    let step = (stop - start) / Double(num - 1)
    var y = (0..<num).map { Double($0) * step + start }
    y[num - 1] = stop
    return y
}

/// numpy's sum of a contiguous float64 array: 0 + the pairwise sum of each block of 8192 in turn
/// (pairwise: < 8 terms in order; ≤ 128 terms in 8 interleaved accumulators; else split at n/2 rounded down to a multiple of 8).
public func numpySum(_ a: [Double]) -> Double {
    func pairwise(_ lo: Int, _ n: Int) -> Double {
        if n < 8 {
            var r = 0.0
            for i in lo..<(lo + n) { r += a[i] }
            return r
        }
        if n <= 128 {
            var r = (0..<8).map { a[lo + $0] }
            var i = 8
            while i < n - n % 8 {
                for j in 0..<8 { r[j] += a[lo + i + j] }
                i += 8
            }
            var res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
            while i < n { res += a[lo + i]; i += 1 }
            return res
        }
        var n2 = n / 2
        n2 -= n2 % 8
        return pairwise(lo, n2) + pairwise(lo + n2, n - n2)
    }
    var total = 0.0
    var lo = 0
    while lo < a.count {
        let n = Swift.min(8192, a.count - lo)
        total += pairwise(lo, n)
        lo += n
    }
    return total
}

/// numpy.mean of a float64 array (nan when empty).
public func numpyMean(_ a: [Double]) -> Double { numpySum(a) / Double(a.count) }

/// Spatio-temporal mask IoU: Σ_t |d_t ∩ g_t| / Σ_t |d_t ∪ g_t| over the frames both tracks have (zip: the shorter length);
/// a frame where one is absent adds its area to the union; 0 when the union is 0.
public func spatioTemporalIoU(_ d: [RLE?], _ g: [RLE?]) -> Double {
    var i = 0.0, u = 0.0
    for (dm, gm) in zip(d, g) {
        switch (dm, gm) {
        case let (x?, y?):
            let inter = RLE.intersectionArea(x, y)
            i += Double(inter)
            u += Double(x.area + y.area - inter)
        case (nil, let y?): u += Double(y.area)
        case (let x?, nil): u += Double(x.area)
        case (nil, nil): break
        }
    }
    return u > 0 ? i / u : 0
}

/// The evaluation's results.
public struct VISEvaluation: Sendable {
    /// Sorted video ids and category ids the arrays are indexed by.
    public var videoIDs: [Int]
    public var categoryIDs: [Int]
    /// precision[t][r][k][a][m], flattened row-major [T, R, K, A, M]; −1 where the category/area has no ground truth.
    public var precision: [Double]
    /// recall[t][k][a][m], flattened [T, K, A, M].
    public var recall: [Double]
    /// AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl.
    public var stats: [Double]
    public var T: Int { VISParams.iouThresholds.count }
    public var R: Int { VISParams.recallThresholds.count }
    public var K: Int { categoryIDs.count }

    public func precision(t: Int, r: Int, k: Int, a: Int, m: Int) -> Double {
        precision[(((t * R + r) * K + k) * 4 + a) * 3 + m]
    }

    /// AP of category k at IoU threshold t (area all, 100 detections): the mean over recall points of the precision, −1 without ground truth.
    public func categoryAP(t: Int, k: Int) -> Double {
        let v = (0..<R).map { precision(t: t, r: $0, k: k, a: 0, m: 2) }.filter { $0 > -1 }
        return v.isEmpty ? -1 : numpyMean(v)
    }
}

/// Per (video, category, area range) result of the greedy matching (COCOeval.evaluateImg).
struct VISVideoEval {
    var dtScores: [Double]
    var dtMatched: [[Bool]]   // [T][D]: matched to a ground truth with a non-zero id
    var dtIgnore: [[Bool]]    // [T][D]
    var gtIgnore: [Bool]
}

/// Evaluates detections against ground truth exactly as the YouTube-VIS evaluation does. Videos and categories are those of the
/// ground truth, sorted ascending; tracks of other videos or categories must be rejected by the caller.
public func evaluateVIS(videoIDs: [Int], categoryIDs: [Int], groundTruth gts: [VISGroundTruthTrack], detections dts: [VISDetection]) -> VISEvaluation {
    let vids = Array(Set(videoIDs)).sorted(), cats = Array(Set(categoryIDs)).sorted()
    let vIndex = Dictionary(uniqueKeysWithValues: vids.enumerated().map { ($1, $0) })
    let cIndex = Dictionary(uniqueKeysWithValues: cats.enumerated().map { ($1, $0) })
    let V = vids.count, K = cats.count
    let thr = VISParams.iouThresholds, recThr = VISParams.recallThresholds
    let T = thr.count, R = recThr.count, A = 4, M = 3
    let maxDet = VISParams.maxDets[2]

    // Areas: ground truth from the JSON areas, detections from their masks (non-zero entries only).
    func meanNonZero(_ xs: [Double]) -> Double { xs.isEmpty ? 0 : numpyMean(xs) }
    let gtArea = gts.map { g in meanNonZero(g.areas.compactMap { $0 }.filter { $0 != 0 }) }
    let dtArea = dts.map { d in meanNonZero(d.masks.compactMap { $0?.area }.filter { $0 != 0 }.map(Double.init)) }

    // Tracks per (video, category) in file order.
    var gtBy = [[Int]](repeating: [], count: V * K), dtBy = gtBy
    for (i, g) in gts.enumerated() { if let v = vIndex[g.videoID], let c = cIndex[g.categoryID] { gtBy[v * K + c].append(i) } }
    for (i, d) in dts.enumerated() { if let v = vIndex[d.videoID], let c = cIndex[d.categoryID] { dtBy[v * K + c].append(i) } }

    func scoreOrder(_ idx: [Int]) -> [Int] {
        // Stable sort by descending score (numpy argsort of −score, mergesort).
        idx.enumerated().sorted { a, b in
            let sa = -dts[a.element].score, sb = -dts[b.element].score
            return sa < sb || (sa == sb && a.offset < b.offset)
        }.map(\.element)
    }

    // IoUs per (video, category): rows = detections by score (capped), columns = ground truth in file order.
    var sortedDt = [[Int]](repeating: [], count: V * K)
    var ious = [[Double]](repeating: [], count: V * K)
    for cell in 0..<(V * K) {
        let ds = Array(scoreOrder(dtBy[cell]).prefix(maxDet))
        sortedDt[cell] = ds
        let gs = gtBy[cell]
        var m = [Double](repeating: 0, count: ds.count * gs.count)
        for (r, di) in ds.enumerated() {
            for (c, gi) in gs.enumerated() { m[r * gs.count + c] = spatioTemporalIoU(dts[di].masks, gts[gi].masks) }
        }
        ious[cell] = m
    }

    // Greedy matching per (category, area range, video).
    var evals = [VISVideoEval?](repeating: nil, count: K * A * V)
    for k in 0..<K {
        for a in 0..<A {
            let (lo, hi) = VISParams.areaRanges[a]
            for v in 0..<V {
                let cell = v * K + k
                let gIdx = gtBy[cell], ds = sortedDt[cell]
                if gIdx.isEmpty && dtBy[cell].isEmpty { continue }
                let ig = gIdx.map { gts[$0].iscrowd || gtArea[$0] < lo || gtArea[$0] > hi }
                // Ground truth with ignore last (stable).
                let gOrder = gIdx.indices.sorted { (ig[$0] ? 1 : 0, $0) < (ig[$1] ? 1 : 0, $1) }
                let G = gIdx.count, D = ds.count
                let gtIg = gOrder.map { ig[$0] }
                let crowd = gOrder.map { gts[gIdx[$0]].iscrowd }
                let gtID = gOrder.map { gts[gIdx[$0]].id }
                var dtMatched = [[Bool]](repeating: [Bool](repeating: false, count: D), count: T)
                var dtIg = dtMatched
                if D > 0 && G > 0 {
                    let iou = ious[cell]
                    for t in 0..<T {
                        var gtTaken = [Bool](repeating: false, count: G)
                        for d in 0..<D {
                            var best = Swift.min(thr[t], 1 - 1e-10)
                            var m = -1
                            for gi in 0..<G {
                                if gtTaken[gi] && !crowd[gi] { continue }
                                if m > -1 && !gtIg[m] && gtIg[gi] { break }
                                let x = iou[d * G + gOrder[gi]]
                                if x < best { continue }
                                best = x
                                m = gi
                            }
                            if m == -1 { continue }
                            dtIg[t][d] = gtIg[m]
                            dtMatched[t][d] = gtID[m] != 0   // the reference stores the ground truth's id; id 0 reads as "unmatched"
                            gtTaken[m] = true   // the reference stores the detection's id, file position + 1, never 0
                        }
                    }
                }
                for d in 0..<D {
                    let out = dtArea[ds[d]] < lo || dtArea[ds[d]] > hi
                    for t in 0..<T where !dtMatched[t][d] && out { dtIg[t][d] = true }
                }
                evals[(k * A + a) * V + v] = VISVideoEval(dtScores: ds.map { dts[$0].score }, dtMatched: dtMatched, dtIgnore: dtIg, gtIgnore: gtIg)
            }
        }
    }

    // Accumulation.
    var precision = [Double](repeating: -1, count: T * R * K * A * M)
    var recall = [Double](repeating: -1, count: T * K * A * M)
    for k in 0..<K {
        for a in 0..<A {
            for (mi, md) in VISParams.maxDets.enumerated() {
                let E = (0..<V).compactMap { evals[(k * A + a) * V + $0] }
                if E.isEmpty { continue }
                var scores: [Double] = [], matched = [[Bool]](repeating: [], count: T), ign = matched
                for e in E {
                    let n = Swift.min(md, e.dtScores.count)
                    scores += e.dtScores[0..<n]
                    for t in 0..<T { matched[t] += e.dtMatched[t][0..<n]; ign[t] += e.dtIgnore[t][0..<n] }
                }
                let npig = E.reduce(0) { $0 + $1.gtIgnore.filter { !$0 }.count }
                if npig == 0 { continue }
                let order = scores.indices.sorted { (-scores[$0], $0) < (-scores[$1], $1) }
                let nd = order.count
                for t in 0..<T {
                    var tp = 0.0, fp = 0.0
                    var rc = [Double](repeating: 0, count: nd), pr = rc
                    for (j, i) in order.enumerated() {
                        if !ign[t][i] { if matched[t][i] { tp += 1 } else { fp += 1 } }
                        rc[j] = tp / Double(npig)
                        pr[j] = tp / (fp + tp + 2.220446049250313e-16)
                    }
                    recall[((t * K + k) * A + a) * M + mi] = nd > 0 ? rc[nd - 1] : 0
                    if nd > 1 { for i in stride(from: nd - 1, to: 0, by: -1) where pr[i] > pr[i - 1] { pr[i - 1] = pr[i] } }
                    var q = [Double](repeating: 0, count: R)
                    var lo = 0
                    for (ri, r) in recThr.enumerated() {
                        // searchsorted(rc, r, 'left'): the first index with rc[i] ≥ r (rc is non-decreasing).
                        while lo < nd && rc[lo] < r { lo += 1 }
                        if lo >= nd { break }
                        q[ri] = pr[lo]
                    }
                    for r in 0..<R { precision[(((t * R + r) * K + k) * A + a) * M + mi] = q[r] }
                }
            }
        }
    }

    // Summary (COCOeval.summarize): the mean of the entries > −1, −1 when there are none.
    func summarize(ap: Bool, iouThr: Double? = nil, area: Int = 0, maxDets: Int = 100) -> Double {
        let ts = iouThr.map { x in (0..<T).filter { thr[$0] == x } } ?? Array(0..<T)
        guard let mi = VISParams.maxDets.firstIndex(of: maxDets) else { return -1 }
        var vals: [Double] = []
        for t in ts {
            if ap {
                for r in 0..<R { for k in 0..<K { vals.append(precision[(((t * R + r) * K + k) * A + area) * M + mi]) } }
            } else {
                for k in 0..<K { vals.append(recall[((t * K + k) * A + area) * M + mi]) }
            }
        }
        let kept = vals.filter { $0 > -1 }
        return kept.isEmpty ? -1 : numpyMean(kept)
    }
    let stats = [
        summarize(ap: true), summarize(ap: true, iouThr: 0.5), summarize(ap: true, iouThr: 0.75),
        summarize(ap: true, area: 1), summarize(ap: true, area: 2), summarize(ap: true, area: 3),
        summarize(ap: false, maxDets: 1), summarize(ap: false, maxDets: 10), summarize(ap: false),
        summarize(ap: false, area: 1), summarize(ap: false, area: 2), summarize(ap: false, area: 3),
    ]
    return VISEvaluation(videoIDs: vids, categoryIDs: cats, precision: precision, recall: recall, stats: stats)
}

// MARK: - The protocol entry

/// Reads the tracks of a golden case: counts/offsets as uncompressed RLE, T frames of H × W.
func goldenTracks(_ counts: Tensor, _ offsets: Tensor, n: Int, frames: Int, height: Int, width: Int, what: String) throws -> [[RLE?]] {
    let off = try offsets.data.enumerated().map { try checkedInt($1, "\(what)_offsets[\($0)]") }
    guard off.count == n * frames + 1 else {
        throw ShapeError("l2g.vis_ap", "\(what)_offsets has \(off.count) entries, expected tracks × frames + 1 = \(n * frames + 1)")
    }
    let c = try counts.data.enumerated().map { try checkedInt($1, "\(what)_counts[\($0)]") }
    var out: [[RLE?]] = []
    for i in 0..<n {
        var masks: [RLE?] = []
        for f in 0..<frames {
            let j = i * frames + f
            guard off[j] <= off[j + 1], off[j + 1] <= c.count else {
                throw ShapeError("l2g.vis_ap", "\(what)_offsets[\(j)...\(j + 1)] = \(off[j])...\(off[j + 1]) is not a range of \(what)_counts (\(c.count))")
            }
            do { masks.append(try RLE(height: height, width: width, counts: Array(c[off[j]..<off[j + 1]]))) } catch {
                throw ShapeError("l2g.vis_ap", "\(what) track \(i) frame \(f): \(error)")
            }
        }
        out.append(masks)
    }
    return out
}

func randomTrack(_ rng: inout RNG, frames: Int, h: Int, w: Int, density: Double) -> [RLE?] {
    (0..<frames).map { _ in
        rng.bernoulli(0.15) ? nil : RLE(denseRowMajor: (0..<(h * w)).map { _ in rng.bernoulli(density) }, height: h, width: w)
    }
}

func randomVISProblem(_ rng: inout RNG) -> (gts: [VISGroundTruthTrack], dts: [VISDetection]) {
    let frames = 1 + rng.int(below: 4), h = 3 + rng.int(below: 5), w = 3 + rng.int(below: 5)
    var gts: [VISGroundTruthTrack] = [], dts: [VISDetection] = []
    for v in 1...3 {
        for _ in 0..<(1 + rng.int(below: 3)) {
            let m = randomTrack(&rng, frames: frames, h: h, w: w, density: 0.4)
            gts.append(VISGroundTruthTrack(id: gts.count + 1, videoID: v, categoryID: 1 + rng.int(below: 2), iscrowd: rng.bernoulli(0.1),
                                           masks: m, areas: m.map { $0.map { Double($0.area) } }))
            for _ in 0..<rng.int(below: 3) {
                // A noisy copy: each pixel flipped with probability 0.15.
                let noisy: [RLE?] = m.map { r in
                    guard let r else { return nil }
                    return RLE(denseRowMajor: r.denseRowMajor().map { rng.bernoulli(0.15) ? !$0 : $0 }, height: h, width: w)
                }
                dts.append(VISDetection(videoID: v, categoryID: gts.last!.categoryID, score: rng.uniform(), masks: noisy))
            }
        }
        for _ in 0..<rng.int(below: 3) {
            dts.append(VISDetection(videoID: v, categoryID: 1 + rng.int(below: 2), score: rng.uniform(),
                                    masks: randomTrack(&rng, frames: frames, h: h, w: w, density: 0.3)))
        }
    }
    return (gts, dts)
}

let visAPMethod = Method("l2g.vis_ap", properties: [
    Property("iou_symmetric_unit_interval") { rng in
        let t = 1 + rng.int(below: 4), h = 2 + rng.int(below: 6), w = 2 + rng.int(below: 6)
        let a = randomTrack(&rng, frames: t, h: h, w: w, density: rng.uniform()), b = randomTrack(&rng, frames: t, h: h, w: w, density: rng.uniform())
        let x = spatioTemporalIoU(a, b), y = spatioTemporalIoU(b, a)
        try require(x == y && x >= 0 && x <= 1, "IoU(a, b) = \(x), IoU(b, a) = \(y)")
        let self1 = spatioTemporalIoU(a, a)
        let nonEmpty = a.contains { ($0?.area ?? 0) > 0 }
        try require(self1 == (nonEmpty ? 1 : 0), "IoU(a, a) = \(self1)")
    },
    Property("iou_single_frame") { rng in
        let h = 1 + rng.int(below: 7), w = 1 + rng.int(below: 7)
        let a = (0..<(h * w)).map { _ in rng.bernoulli(0.5) }, b = (0..<(h * w)).map { _ in rng.bernoulli(0.5) }
        let inter = zip(a, b).filter { $0 && $1 }.count, uni = zip(a, b).filter { $0 || $1 }.count
        let x = spatioTemporalIoU([RLE(denseRowMajor: a, height: h, width: w)], [RLE(denseRowMajor: b, height: h, width: w)])
        try require(x == (uni > 0 ? Double(inter) / Double(uni) : 0), "frame IoU \(inter)/\(uni), found \(x)")
    },
    Property("iou_both_empty_frames") { rng in
        let t = 1 + rng.int(below: 4), h = 2 + rng.int(below: 5), w = 2 + rng.int(below: 5)
        let a = randomTrack(&rng, frames: t, h: h, w: w, density: 0.5), b = randomTrack(&rng, frames: t, h: h, w: w, density: 0.5)
        var a2 = a, b2 = b
        for _ in 0..<(1 + rng.int(below: 3)) {
            let at = rng.int(below: a2.count + 1)
            let empty: RLE? = rng.bernoulli(0.5) ? nil : RLE.empty(height: h, width: w)
            a2.insert(empty, at: at)
            b2.insert(rng.bernoulli(0.5) ? nil : RLE.empty(height: h, width: w), at: at)
        }
        try require(spatioTemporalIoU(a, b) == spatioTemporalIoU(a2, b2), "both-empty frames changed the IoU")
    },
    Property("ap_monotone_score_invariance") { rng in
        let (gts, dts) = randomVISProblem(&rng)
        let e1 = evaluateVIS(videoIDs: [1, 2, 3], categoryIDs: [1, 2], groundTruth: gts, detections: dts)
        let dts2 = dts.map { d in var d = d; d.score = Foundation.exp(3 * d.score) - 7; return d }
        let e2 = evaluateVIS(videoIDs: [1, 2, 3], categoryIDs: [1, 2], groundTruth: gts, detections: dts2)
        try require(e1.stats == e2.stats && e1.precision == e2.precision, "a monotone score transform changed \(e1.stats) → \(e2.stats)")
    },
    Property("low_false_positive") { rng in
        let (gts, dts) = randomVISProblem(&rng)
        let e1 = evaluateVIS(videoIDs: [1, 2, 3], categoryIDs: [1, 2], groundTruth: gts, detections: dts)
        let minScore = dts.map(\.score).min() ?? 1
        let frames = gts[0].masks.count
        let (h, w) = (gts[0].masks.compactMap { $0 }.first?.height ?? 3, gts[0].masks.compactMap { $0 }.first?.width ?? 3)
        // A detection that overlaps nothing of its category: an empty track.
        let fp = VISDetection(videoID: 1 + rng.int(below: 3), categoryID: 1 + rng.int(below: 2), score: minScore - 1,
                              masks: [RLE?](repeating: RLE.empty(height: h, width: w), count: frames))
        let e2 = evaluateVIS(videoIDs: [1, 2, 3], categoryIDs: [1, 2], groundTruth: gts, detections: dts + [fp])
        for i in 0..<6 { try require(e1.stats[i] == e2.stats[i], "a lowest-scored false positive changed \(VISParams.statNames[i]): \(e1.stats[i]) → \(e2.stats[i])") }
    },
    Property("video_order_invariance") { rng in
        // With distinct scores, renumbering the videos (ids, hence their order) leaves every number unchanged.
        var (gts, dts) = randomVISProblem(&rng)
        for i in dts.indices { dts[i].score = Double(i + 1) / Double(dts.count + 1) }
        dts.shuffle(using: &rng)
        let e1 = evaluateVIS(videoIDs: [1, 2, 3], categoryIDs: [1, 2], groundTruth: gts, detections: dts)
        let map = [1: 30, 2: 10, 3: 20]
        let g2 = gts.map { g in var g = g; g.videoID = map[g.videoID]!; return g }
        let d2 = dts.map { d in var d = d; d.videoID = map[d.videoID]!; return d }
        let e2 = evaluateVIS(videoIDs: [30, 10, 20], categoryIDs: [1, 2], groundTruth: g2, detections: d2)
        try require(e1.stats == e2.stats && e1.precision == e2.precision, "reordering the videos changed \(e1.stats) → \(e2.stats)")
    },
    Property("precision_non_increasing") { rng in
        let (gts, dts) = randomVISProblem(&rng)
        let e = evaluateVIS(videoIDs: [1, 2, 3], categoryIDs: [1, 2], groundTruth: gts, detections: dts)
        for t in 0..<e.T { for k in 0..<e.K { for a in 0..<4 { for m in 0..<3 {
            let p = (0..<e.R).map { e.precision(t: t, r: $0, k: k, a: a, m: m) }
            for r in 1..<e.R where p[r] > p[r - 1] && p[r - 1] != -1 {
                throw PropertyFailure("precision rises from \(p[r - 1]) to \(p[r]) at recall point \(r) (t \(t), k \(k), a \(a), m \(m))")
            }
            try require(p.allSatisfy { $0 == -1 || ($0 >= 0 && $0 <= 1) }, "precision outside [0, 1]")
        } } } }
        try require(e.stats.allSatisfy { $0 == -1 || ($0 >= 0 && $0 <= 1) }, "a summary number outside [0, 1]: \(e.stats)")
    },
    Property("rle_round_trip") { rng in
        let h = 1 + rng.int(below: 9), w = 1 + rng.int(below: 9)
        let a = (0..<(h * w)).map { _ in rng.bernoulli(rng.uniform()) }, b = (0..<(h * w)).map { _ in rng.bernoulli(0.5) }
        let r = RLE(denseRowMajor: a, height: h, width: w), s = RLE(denseRowMajor: b, height: h, width: w)
        let back = try RLE(compressed: r.compressedString, height: h, width: w)
        try require(back == r && back.denseRowMajor() == a, "round trip changed the mask")
        try require(r.area == a.filter { $0 }.count, "area")
        try require(RLE.intersectionArea(r, s) == zip(a, b).filter { $0 && $1 }.count, "intersection")
    },
]) { ctx in
    let v = try ctx.int("num_videos"), k = try ctx.int("num_categories")
    let frames = try ctx.int("frames"), h = try ctx.int("height"), w = try ctx.int("width")
    let gv = try ctx.tensor("gt_video"), gc = try ctx.tensor("gt_category"), crowd = try ctx.tensor("gt_iscrowd")
    let areas = try ctx.data.tensor("gt_areas", rank: 2)
    let g = gv.count
    let gm = try goldenTracks(try ctx.tensor("gt_counts"), try ctx.tensor("gt_offsets"), n: g, frames: frames, height: h, width: w, what: "gt")
    var gts: [VISGroundTruthTrack] = []
    for i in 0..<g {
        let a = (0..<frames).map { f -> Double? in let x = areas.data[i * frames + f]; return x == 0 ? nil : x }
        gts.append(VISGroundTruthTrack(id: i + 1, videoID: try checkedInt(gv.data[i], "gt_video[\(i)]") + 1,
                                       categoryID: try checkedInt(gc.data[i], "gt_category[\(i)]"), iscrowd: crowd.data[i] != 0,
                                       masks: gm[i], areas: a))
    }
    let dv = try ctx.tensor("dt_video"), dc = try ctx.tensor("dt_category"), ds = try ctx.tensor("dt_score")
    let dm = try goldenTracks(try ctx.tensor("dt_counts"), try ctx.tensor("dt_offsets"), n: dv.count, frames: frames, height: h, width: w, what: "dt")
    var dts: [VISDetection] = []
    for i in 0..<dv.count {
        dts.append(VISDetection(videoID: try checkedInt(dv.data[i], "dt_video[\(i)]") + 1, categoryID: try checkedInt(dc.data[i], "dt_category[\(i)]"),
                                score: ds.data[i], masks: dm[i]))
    }
    let e = evaluateVIS(videoIDs: Array(1...v), categoryIDs: Array(1...k), groundTruth: gts, detections: dts)
    var prec = [Double](), apc = [Double]()
    for t in 0..<10 { for r in 0..<101 { for c in 0..<k { prec.append(e.precision(t: t, r: r, k: c, a: 0, m: 2)) } } }
    for t in 0..<10 { for c in 0..<k { apc.append(e.categoryAP(t: t, k: c)) } }
    return [
        "stats": ctx.constant(Tensor(e.stats)),
        "precision": ctx.constant(Tensor(unchecked: [10, 101, k], prec)),
        "recall": ctx.constant(Tensor(unchecked: [10, k, 4, 3], e.recall)),
        "ap_per_category": ctx.constant(Tensor(unchecked: [10, k], apc)),
        "iou_thresholds": ctx.constant(Tensor(VISParams.iouThresholds)),
        "recall_thresholds": ctx.constant(Tensor(VISParams.recallThresholds)),
    ]
}
