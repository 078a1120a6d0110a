// The synthetic-video experiment of docs/l2g/REPRODUCTION.md: does early local–global alignment (the L2G-aligner) help
// temporal consistency compared with plain propagation of the previous frame's queries, in a controlled setting?
// A seeded moving-shapes data set, a tiny online VIS model built from the certified parts (convolutions, multi-head attention,
// layer norm, linear, the l2g matcher and losses, the l2g aligner), trained on CPU in Float64, evaluated with l2g.vis_ap and
// identity switches. It cannot reproduce the paper's YouTube-VIS numbers and does not try to.

import Certification
import Foundation
import Ops
import Tensor

/// One synthetic video: frames [T][H·W] (row-major) and per object its class and per-frame visible mask.
public struct ShapesVideo: Sendable {
    public var frames: [[Double]]
    public var classes: [Int]
    public var masks: [[[Bool]]]   // [object][frame][pixel]
}

/// The moving-shapes data set: K = 3 classes (square, disk, plus), 2 objects per video moving on straight lines that often
/// cross; the later-drawn object occludes the earlier one; Gaussian pixel noise.
public struct ShapesDataset: Sendable {
    public static let size = 16, frames = 5, classes = 3

    public static func shape(_ cls: Int, cy: Double, cx: Double, r: Double) -> [Bool] {
        let n = size
        return (0..<(n * n)).map { p in
            let y = Double(p / n) + 0.5, x = Double(p % n) + 0.5
            let dy = y - cy, dx = x - cx
            switch cls {
            case 0: return Swift.abs(dy) <= r && Swift.abs(dx) <= r
            case 1: return dy * dy + dx * dx <= r * r
            default: return (Swift.abs(dy) <= r && Swift.abs(dx) <= r / 2.5) || (Swift.abs(dx) <= r && Swift.abs(dy) <= r / 2.5)
            }
        }
    }

    public static func video(_ rng: inout RNG) -> ShapesVideo {
        let n = size, t = frames
        var classes: [Int] = [], paths: [(Double, Double, Double, Double, Double)] = []
        for o in 0..<2 {
            classes.append(rng.int(below: classes.count == 1 ? classes[0] + 2 : 3) % 3)
            // Start on opposite sides and move across: the two tracks often cross.
            let side = o == 0 ? 3.5 : Double(n) - 3.5
            let cy = rng.uniform(3.5, Double(n) - 3.5), vx = (o == 0 ? 1 : -1) * rng.uniform(1.2, 2.2), vy = rng.uniform(-1, 1)
            paths.append((cy, side, vy, vx, rng.uniform(2.2, 3.2)))
        }
        var frames: [[Double]] = [], masks = [[[Bool]]](repeating: [], count: 2)
        for f in 0..<t {
            var img = (0..<(n * n)).map { _ in rng.normal() * 0.15 }
            var drawn = [[Bool]]()
            for o in 0..<2 {
                let (cy, cx, vy, vx, r) = paths[o]
                drawn.append(shape(classes[o], cy: cy + vy * Double(f), cx: cx + vx * Double(f), r: r))
            }
            let visible0 = zip(drawn[0], drawn[1]).map { $0 && !$1 }   // object 1 is in front
            masks[0].append(visible0)
            masks[1].append(drawn[1])
            for p in 0..<(n * n) where drawn[0][p] || drawn[1][p] { img[p] += drawn[1][p] ? 1.0 : 0.7 }
            frames.append(img)
        }
        return ShapesVideo(frames: frames, classes: classes, masks: masks)
    }
}

/// The tiny online VIS model; `useAligner` selects the arm.
public final class TinyVIS {
    public let e = 16, c = 8, queries = 4, heads = 2
    public let useAligner: Bool
    public var params: [Parameter] = []
    var byName: [String: Parameter] = [:]

    public init(useAligner: Bool, rng: inout RNG) {
        self.useAligner = useAligner
        func add(_ name: String, _ shape: [Int], fan: Int) {
            let b = 1 / Double(fan).squareRoot()
            let p = Parameter(name, rng.uniformTensor(shape, -b, b))
            params.append(p); byName[name] = p
        }
        func addConst(_ name: String, _ t: Tensor) { let p = Parameter(name, t); params.append(p); byName[name] = p }
        add("conv1_w", [c, 3, 3, 3], fan: 27); add("conv1_b", [c], fan: 27)
        add("conv2_w", [c, c, 3, 3], fan: 9 * c); add("conv2_b", [c], fan: 9 * c)
        add("key_w", [e, c], fan: c); add("key_b", [e], fan: c)
        addConst("query_init", rng.normalTensor([queries, 1, e]))
        add("dec_in_w", [3 * e, e], fan: e); add("dec_in_b", [3 * e], fan: e); add("dec_out_w", [e, e], fan: e); add("dec_out_b", [e], fan: e)
        addConst("dec_ln1_w", Tensor(ones: [e])); addConst("dec_ln1_b", Tensor(zeros: [e]))
        add("dec_ff1_w", [2 * e, e], fan: e); add("dec_ff1_b", [2 * e], fan: e); add("dec_ff2_w", [e, 2 * e], fan: 2 * e); add("dec_ff2_b", [e], fan: 2 * e)
        addConst("dec_ln2_w", Tensor(ones: [e])); addConst("dec_ln2_b", Tensor(zeros: [e]))
        add("cls_w", [ShapesDataset.classes + 1, e], fan: e); add("cls_b", [ShapesDataset.classes + 1], fan: e)
        add("emb_w", [c, e], fan: e); add("emb_b", [c], fan: e)
        if useAligner {
            let tape = Tape()
            for (name, v) in AlignerWeights.random(&rng, tape: tape, layers: 1, dim: e, ffn: 2 * e).all.sorted(by: { $0.key < $1.key }) {
                addConst("al_\(name)", v.value)
            }
        }
    }

    /// Per frame: class logits [N, K+1] and mask logits [N, H·W], on `tape`.
    public func forward(_ video: ShapesVideo, tape: Tape) throws -> (vars: [String: Var], out: [(logits: Var, masks: Var)]) {
        var v: [String: Var] = [:]
        for p in params { v[p.name] = p.leaf(on: tape) }
        let n = ShapesDataset.size, hw = n * n
        let scale = 1 / Double(n - 1)
        var coords = [Double](repeating: 0, count: 2 * hw)
        for p in 0..<hw {
            coords[p] = Double(p % n) * scale - 0.5
            coords[hw + p] = Double(p / n) * scale - 0.5
        }
        var out: [(logits: Var, masks: Var)] = []
        var prev: Var? = nil
        let aligner = useAligner ? try AlignerWeights(Dictionary(uniqueKeysWithValues: AlignerWeights.names.map { ($0, v["al_\($0)"]!) })) : nil
        for frame in video.frames {
            let x = tape.constant(Tensor(unchecked: [1, 3, n, n], frame + coords))
            let h1 = relu(try conv2d(x, weight: v["conv1_w"]!, bias: v["conv1_b"]!, padding: [1, 1]))
            let feat = try conv2d(h1, weight: v["conv2_w"]!, bias: v["conv2_b"]!, padding: [1, 1])          // [1, C, H, W]
            let tokens = try linear(try permute(try reshape(feat, [c, hw]), [1, 0]), weight: v["key_w"]!, bias: v["key_b"]!) // [HW, E]
            let mem = try reshape(tokens, [hw, 1, e])
            // Frame decoder: the L2G arm always starts from the learned queries (local queries); the propagation arm starts
            // from the previous frame's output queries (plain propagation).
            let q0 = useAligner ? v["query_init"]! : (prev ?? v["query_init"]!)
            let (a, _) = try multiheadAttention(query: q0, key: mem, value: mem, numHeads: heads, inProjWeight: v["dec_in_w"]!,
                                                inProjBias: v["dec_in_b"]!, outProjWeight: v["dec_out_w"]!, outProjBias: v["dec_out_b"]!)
            var q = try layerNorm(try q0 + a, normalizedShape: [e], weight: v["dec_ln1_w"]!, bias: v["dec_ln1_b"]!)
            let ff = try linear(relu(try linear(q, weight: v["dec_ff1_w"]!, bias: v["dec_ff1_b"]!)), weight: v["dec_ff2_w"]!, bias: v["dec_ff2_b"]!)
            q = try layerNorm(try q + ff, normalizedShape: [e], weight: v["dec_ln2_w"]!, bias: v["dec_ln2_b"]!)   // Q_l^t [N, 1, E]
            let g: Var
            if let aligner {
                g = try l2gAligner(global: prev ?? q, local: q, posGlobal: nil, posLocal: nil, weights: aligner,
                                   options: AlignerOptions(numHeads: heads)).out                                   // Q_g^t
            } else { g = q }
            prev = g
            let qf = try reshape(g, [queries, e])
            let logits = try linear(qf, weight: v["cls_w"]!, bias: v["cls_b"]!)
            let emb = try linear(qf, weight: v["emb_w"]!, bias: v["emb_b"]!)                                  // [N, C]
            out.append((logits, try matmul(emb, try reshape(feat, [c, hw]))))                                 // [N, HW]
        }
        return (v, out)
    }

    /// The training loss of one video: match on the first frame (l2g matcher cost on every pixel), keep the match in every frame
    /// (identity by query index), and average the set criterion (CE with no-object weight 0.1, BCE, Dice; 2/5/5) over frames.
    public func loss(_ video: ShapesVideo, tape: Tape) throws -> (loss: Var, vars: [String: Var]) {
        let (vars, out) = try forward(video, tape: tape)
        let hw = ShapesDataset.size * ShapesDataset.size, g = video.classes.count, k1 = ShapesDataset.classes + 1
        let t0 = Tensor(unchecked: [g, hw], video.masks.flatMap { $0[0].map { $0 ? 1.0 : 0.0 } })
        let cost = try MatchingCost().cost(logits: out[0].logits.value, pointLogits: out[0].masks.value, pointTargets: t0, labels: video.classes)
        let pairs = try hungarian(cost)
        var total: Var? = nil
        for (f, o) in out.enumerated() {
            var cls = [Double](repeating: Double(k1 - 1), count: queries)
            for p in pairs { cls[p.row] = Double(video.classes[p.column]) }
            var w = [Double](repeating: 1, count: k1); w[k1 - 1] = 0.1
            let ce = try crossEntropy(o.logits, target: Tensor(cls), weight: Tensor(w))
            let src = try concatenate(try pairs.map { try slice(o.masks, axis: 0, $0.row..<($0.row + 1)) }, axis: 0)
            let tgt = Tensor(unchecked: [pairs.count, hw], pairs.flatMap { video.masks[$0.column][f].map { $0 ? 1.0 : 0.0 } })
            let bce = try bceWithLogits(src, target: tgt, reduction: .sum) * (1 / Double(hw * g))
            let dice = try diceLoss(src, target: tgt) * (Double(pairs.count) / Double(g))
            let term = try (ce * 2 + bce * 5) + dice * 5
            total = try total.map { try $0 + term } ?? term
        }
        return (total! * (1 / Double(out.count)), vars)
    }
}

/// What one trained arm scores on the test videos.
public struct ArmResult: Codable, Sendable {
    public var arm: String
    public var seed: Int
    public var ap: Double, ap50: Double, ap75: Double, ar10: Double
    public var identitySwitches: Double   // per test video
    public var finalTrainLoss: Double
    public var trainSeconds: Double
}

/// Trains one arm and evaluates it.
public func runExperimentArm(useAligner: Bool, seed: Int, train: [ShapesVideo], test: [ShapesVideo], epochs: Int,
                             lr: Double = 3e-3, log: (String) -> Void = { _ in }) throws -> ArmResult {
    var rng = RNG(seed: UInt64(1000 + seed))
    let model = TinyVIS(useAligner: useAligner, rng: &rng)
    let opt = try Adam(model.params, lr: lr)
    let start = Date()
    var last = 0.0
    for ep in 0..<epochs {
        var sum = 0.0
        for i in rng.permutation(train.count) {
            let tape = Tape()
            let (l, vars) = try model.loss(train[i], tape: tape)
            let leaves = model.params.map { vars[$0.name]! }
            let grads = try tape.gradients(of: l, wrt: leaves)
            try opt.step(grads: grads)
            sum += l.value.data[0]
        }
        last = sum / Double(train.count)
        log("\(useAligner ? "l2g" : "propagation") seed \(seed) epoch \(ep + 1)/\(epochs): loss \(String(format: "%.4f", last))")
    }
    let seconds = Date().timeIntervalSince(start)
    // Evaluation: every query is a track; class = argmax of the frame-averaged class probabilities over the K real classes,
    // score = that probability; masks = logits > 0.
    let n = ShapesDataset.size
    var gts: [VISGroundTruthTrack] = [], dts: [VISDetection] = []
    var switches = 0
    for (vi, video) in test.enumerated() {
        let tape = Tape()
        let (_, out) = try model.forward(video, tape: tape)
        var meanProb = [Double](repeating: 0, count: model.queries * (ShapesDataset.classes + 1))
        for o in out { for (j, p) in try o.logits.value.softmax(axis: 1).data.enumerated() { meanProb[j] += p / Double(out.count) } }
        var predMasks: [[RLE]] = []
        for q in 0..<model.queries {
            let masks = out.map { o in RLE(denseRowMajor: (0..<(n * n)).map { o.masks.value.data[q * n * n + $0] > 0 }, height: n, width: n) }
            predMasks.append(masks)
            let probs = (0..<ShapesDataset.classes).map { meanProb[q * (ShapesDataset.classes + 1) + $0] }
            let best = probs.indices.max { probs[$0] < probs[$1] }!
            dts.append(VISDetection(videoID: vi + 1, categoryID: best + 1, score: probs[best], masks: masks))
        }
        for (o, cls) in video.classes.enumerated() {
            let masks: [RLE?] = video.masks[o].map { m in m.contains(true) ? RLE(denseRowMajor: m, height: n, width: n) : nil }
            gts.append(VISGroundTruthTrack(id: gts.count + 1, videoID: vi + 1, categoryID: cls + 1, iscrowd: false, masks: masks,
                                           areas: masks.map { $0.map { Double($0.area) } }))
            // Identity switches: the query that best covers the object (IoU ≥ 0.5) changes between frames.
            var previous: Int? = nil
            for f in 0..<out.count {
                guard let gm = masks[f] else { continue }
                let ious = (0..<model.queries).map { spatioTemporalIoU([predMasks[$0][f]], [gm]) }
                let best = ious.indices.max { ious[$0] < ious[$1] }!
                guard ious[best] >= 0.5 else { continue }
                if let p = previous, p != best { switches += 1 }
                previous = best
            }
        }
    }
    let e = evaluateVIS(videoIDs: Array(1...test.count), categoryIDs: Array(1...ShapesDataset.classes), groundTruth: gts, detections: dts)
    return ArmResult(arm: useAligner ? "L2G-aligner" : "plain propagation", seed: seed, ap: e.stats[0], ap50: e.stats[1], ap75: e.stats[2],
                     ar10: e.stats[7], identitySwitches: Double(switches) / Double(test.count), finalTrainLoss: last, trainSeconds: seconds)
}

/// The data sets: fixed (seed 0), independent of the training seed.
public func experimentData(trainVideos: Int, testVideos: Int) -> (train: [ShapesVideo], test: [ShapesVideo]) {
    var rng = RNG(seed: 20250720)
    let train = (0..<trainVideos).map { _ in ShapesDataset.video(&rng) }
    let test = (0..<testVideos).map { _ in ShapesDataset.video(&rng) }
    return (train, test)
}
