// The protocol entries (protocols/nrrdd/*.yaml) and the properties each declares.

import Certification
import Foundation
import Ops
import Tensor

/// A random teacher (the generator's draw distribution) for properties.
func randomTeacher(_ rng: inout RNG, channels: Int, widths: [Int] = [3, 4], classes: Int = 4) throws -> NRRTeacher {
    var t: [String: Tensor] = [:]
    var cin = channels
    for (i, c) in widths.enumerated() {
        let l = i + 1
        t["t_conv\(l)_weight"] = rng.normalTensor([c, cin, 3, 3]) * (i == 0 ? 0.5 : 0.3)
        t["t_conv\(l)_bias"] = rng.normalTensor([c]) * 0.1
        t["t_bn\(l)_weight"] = rng.uniformTensor([c], 0.5, 1.5)
        t["t_bn\(l)_bias"] = rng.normalTensor([c]) * 0.1
        t["t_bn\(l)_running_mean"] = rng.normalTensor([c]) * 0.2
        t["t_bn\(l)_running_var"] = rng.uniformTensor([c], 0.5, 2)
        cin = c
    }
    t["t_fc_weight"] = rng.normalTensor([classes, cin])
    t["t_fc_bias"] = rng.normalTensor([classes]) * 0.1
    return try NRRTeacher(protocolTensors: t)
}

func teacherFrom(_ ctx: Context) throws -> NRRTeacher {
    var t: [String: Tensor] = [:]
    for n in NRRTeacher.protocolNames(blocks: ctx.data.has("t_conv3_weight") ? 3 : 2) { t[n] = try ctx.tensor(n) }
    return try NRRTeacher(protocolTensors: t)
}

/// Throws a PropertyFailure unless `body` throws.
func requireThrows(_ what: String, _ body: () throws -> Void) throws {
    var threw = false
    do { try body() } catch { threw = true }
    try require(threw, "\(what) was accepted")
}

// MARK: - nrrdd.cam

let camMethod = Method("nrrdd.cam", properties: [
    Property("gap_identity") { rng in
        let (n, k, h, w, cl) = (1 + rng.int(below: 3), 1 + rng.int(below: 5), 1 + rng.int(below: 6), 1 + rng.int(below: 6), 2 + rng.int(below: 5))
        let tape = Tape()
        let f = tape.constant(rng.normalTensor([n, k, h, w])), wt = tape.constant(rng.normalTensor([cl, k])), b = rng.normalTensor([cl])
        let y = (0..<n).map { _ in rng.int(below: cl) }
        let a = try ClassActivationMap.raw(features: f, fcWeight: wt, labels: y)
        let z = try linear(mean(f, axes: [2, 3]), weight: wt, bias: tape.constant(b)).value
        let m = try a.value.mean(axes: [1, 2])
        for i in 0..<n {
            let want = z.data[i * cl + y[i]] - b.data[y[i]]
            try require(Swift.abs(m.data[i] - want) <= 1e-12 * Swift.max(1, Swift.abs(want)), "map \(i): mean A = \(m.data[i]), z − b = \(want)")
        }
    },
    Property("normalised_range") { rng in
        let (n, h, w) = (1 + rng.int(below: 3), 1 + rng.int(below: 6), 1 + rng.int(below: 6))
        var raw = rng.normalTensor([n, h, w])
        if rng.bernoulli(0.3) { raw = raw.map { -Swift.abs($0) } }   // a map that is ≤ 0 everywhere: constant after ReLU
        let same = try ClassActivationMap.normalised(raw: raw, height: h, width: w)
        for i in 0..<n {
            let s = same.data[(i * h * w)..<((i + 1) * h * w)], r = raw.data[(i * h * w)..<((i + 1) * h * w)].map { Swift.max($0, 0) }
            if r.max()! == r.min()! {
                try require(s.allSatisfy { $0 == 0 }, "constant map \(i) not normalised to 0")
            } else {
                try require(s.min()! == 0 && s.max()! == 1, "map \(i): min \(s.min()!), max \(s.max()!)")
            }
        }
        let up = try ClassActivationMap.normalised(raw: raw, height: h + rng.int(below: 20), width: w + rng.int(below: 20))
        try require(up.data.allSatisfy { $0 >= 0 && $0 <= 1 }, "upsampled C outside [0, 1]")
    },
    Property("ratio_additive") { rng in
        let (h, w) = (2 + rng.int(below: 20), 1 + rng.int(below: 20))
        let c = rng.uniformTensor([1, h, w])
        let top = rng.int(below: h - 1), bh = 2 + rng.int(below: h - top - 1), cut = 1 + rng.int(below: bh - 1)
        let left = rng.int(below: w), bw = 1 + rng.int(below: w - left)
        let whole = try ClassActivationMap.ratio(c, index: 0, box: CropBox(top: top, left: left, height: bh, width: bw))
        let a = try ClassActivationMap.ratio(c, index: 0, box: CropBox(top: top, left: left, height: cut, width: bw))
        let b = try ClassActivationMap.ratio(c, index: 0, box: CropBox(top: top + cut, left: left, height: bh - cut, width: bw))
        try require(Swift.abs(whole - a - b) <= 1e-12, "ρ(B) = \(whole), ρ(B₁) + ρ(B₂) = \(a + b)")
        try require(whole >= 0 && whole <= 1 + 1e-15, "ρ = \(whole) outside [0, 1]")
        let all = try ClassActivationMap.ratio(c, index: 0, box: CropBox(top: 0, left: 0, height: h, width: w))
        try require(Swift.abs(all - 1) <= 1e-15, "ρ(whole image) = \(all)")
    },
    Property("bad_box_rejected") { rng in
        let c = rng.uniformTensor([1, 6, 6])
        try requireThrows("an empty box") { _ = try ClassActivationMap.ratio(c, index: 0, box: CropBox(top: 1, left: 1, height: 0, width: 3)) }
        try requireThrows("a box outside the image") { _ = try ClassActivationMap.ratio(c, index: 0, box: CropBox(top: 4, left: 0, height: 3, width: 3)) }
        let tape = Tape()
        try requireThrows("label 3 of 3 classes") {
            _ = try ClassActivationMap.raw(features: tape.constant(rng.normalTensor([1, 2, 3, 3])), fcWeight: tape.constant(rng.normalTensor([3, 2])), labels: [3])
        }
        try requireThrows("height 0") { _ = try ClassActivationMap.normalised(raw: rng.normalTensor([1, 3, 3]), height: 0, width: 4) }
    },
]) { ctx in
    let f = try ctx.v("features"), w = try ctx.v("fc_weight"), b = try ctx.v("fc_bias")
    let labels = try labelList(ctx.tensor("labels"), classes: w.shape[0])
    let (h, wd) = (try ctx.int("height"), try ctx.int("width"))
    let raw = try ClassActivationMap.raw(features: f, fcWeight: w, labels: labels)
    let z = try linear(mean(f, axes: [2, 3]), weight: w, bias: b)
    let cam = try ClassActivationMap.normalised(raw: raw.value, height: h, width: wd)
    let boxes = try boxList(ctx.tensor("boxes"))
    try check(boxes.count == labels.count, "boxes", "one per map (\(labels.count))", boxes.count)
    let ratio = try boxes.enumerated().map { try ClassActivationMap.ratio(cam, index: $0.offset, box: $0.element) }
    return ["cam_raw": raw, "logits": z, "cam": ctx.constant(cam), "ratio": ctx.constant(Tensor(ratio))]
}

// MARK: - nrrdd.stitching

let stitchingMethod = Method("nrrdd.stitching", properties: [
    Property("every_pixel_once") { rng in
        let factor = 1 + rng.int(below: 4), ipc = 1 + rng.int(below: 3)
        let size = factor + rng.int(below: 20), side = 1 + rng.int(below: 8)
        var d: [Double] = []
        for k in 0..<(factor * factor) { for _ in 0..<ipc { d += [Double](repeating: Double(k + 1), count: side * side) } }
        let mixed = try Stitching.mix(Tensor(unchecked: [factor * factor * ipc, 1, side, side], d), size: size, factor: factor, ipc: ipc)
        let cells = try Stitching.cellSizes(size: size, factor: factor)
        let starts = cells.indices.map { cells[..<$0].reduce(0, +) }
        func cell(_ p: Int) -> Int { starts.lastIndex { $0 <= p }! }
        for t in 0..<ipc {
            for u in 0..<size {
                for v in 0..<size {
                    let want = Double(cell(u) * factor + cell(v) + 1), got = mixed.data[(t * size + u) * size + v]
                    try require(got == want, "pixel (\(t), \(u), \(v)) = \(got), expected cell \(want)")
                }
            }
        }
    },
    Property("cell_sizes_sum") { rng in
        let factor = 1 + rng.int(below: 6), size = factor + rng.int(below: 40)
        let cells = try Stitching.cellSizes(size: size, factor: factor)
        try require(cells.reduce(0, +) == size, "cell sizes \(cells) do not sum to \(size)")
        if size % factor == 0 { try require(cells.allSatisfy { $0 == size / factor }, "unequal cells \(cells) for size \(size), factor \(factor)") }
    },
    Property("image_j_from_crops_j") { rng in
        let factor = 1 + rng.int(below: 3), ipc = 2 + rng.int(below: 3), size = factor * (2 + rng.int(below: 4))
        let crops = rng.normalTensor([factor * factor * ipc, 1, 4, 4])
        let a = try Stitching.mix(crops, size: size, factor: factor, ipc: ipc)
        let t = rng.int(below: ipc)
        var other = crops
        for i in 0..<(factor * factor * ipc) where i % ipc != t { for j in 0..<16 { other.data[i * 16 + j] += 1 } }
        let b = try Stitching.mix(other, size: size, factor: factor, ipc: ipc)
        let plane = size * size
        try require(a.data[(t * plane)..<((t + 1) * plane)] == b.data[(t * plane)..<((t + 1) * plane)], "image \(t) changed with crops of other images")
    },
    Property("bad_counts_rejected") { rng in
        let crops = rng.normalTensor([8, 1, 3, 3])
        try requireThrows("7 crops for factor 2, ipc 2") { _ = try Stitching.mix(try crops.slice(axis: 0, 0..<7), size: 8, factor: 2, ipc: 2) }
        try requireThrows("factor 0") { _ = try Stitching.mix(crops, size: 8, factor: 0, ipc: 2) }
        try requireThrows("ipc 0") { _ = try Stitching.mix(crops, size: 8, factor: 2, ipc: 0) }
        try requireThrows("size 1 < factor 2") { _ = try Stitching.mix(crops, size: 1, factor: 2, ipc: 2) }
    },
]) { ctx in
    let crops = try ctx.v("crops")
    let (size, factor, ipc) = (try ctx.int("size"), try ctx.int("factor"), try ctx.int("ipc"))
    let mixed = try Stitching.mix(crops, size: size, factor: factor, ipc: ipc)
    let cells = try Stitching.cellSizes(size: size, factor: factor)
    return ["mixed": mixed, "cell_sizes": ctx.constant(Tensor(cells.map(Double.init)))]
}

// MARK: - nrrdd.dbr

func dbrDistance(_ code: Int) throws -> DBRDistance {
    guard let d = DBRDistance(rawValue: code) else { throw NRRDDError.parameter("distance", "0 (cross-entropy) or 1 (ℓ2)", code) }
    return d
}

func dbrLoss(_ code: Int) throws -> DBRLoss {
    guard let d = DBRLoss(rawValue: code) else { throw NRRDDError.parameter("dbr_loss", "0 (L1) or 1 (MSE)", code) }
    return d
}

let dbrMethod = Method("nrrdd.dbr", properties: [
    Property("distance_nonnegative") { rng in
        let (n, k) = (1 + rng.int(below: 5), 2 + rng.int(below: 8))
        let tape = Tape()
        let z = tape.constant(rng.normalTensor([n, k]) * rng.uniform(0.1, 20))
        let y = (0..<n).map { _ in rng.int(below: k) }
        for kind in DBRDistance.allCases {
            let d = try DistanceBasedRepresentative.distances(z, labels: y, tau: rng.uniform(0.5, 20), kind: kind)
            try require(d.value.data.allSatisfy { $0 >= 0 }, "\(kind) distance negative: \(d.value.data)")
        }
        var sure = Tensor(zeros: [1, k])
        sure.data[y[0]] = 1000
        for kind in DBRDistance.allCases {
            let d = try DistanceBasedRepresentative.distances(tape.constant(sure), labels: [y[0]], tau: 1, kind: kind)
            try require(d.value.data[0] == 0, "\(kind) distance \(d.value.data[0]) with p_y = 1")
        }
    },
    Property("two_labels_bound") { rng in
        let (n, k) = (1 + rng.int(below: 5), 3 + rng.int(below: 8))
        let tape = Tape()
        let z = tape.constant(rng.normalTensor([n, k]) * 3)
        let yo = (0..<n).map { _ in rng.int(below: k) }
        let ya = yo.map { ($0 + 1 + rng.int(below: k - 1)) % k }
        let tau = rng.uniform(0.5, 5)
        let d = try DistanceBasedRepresentative.pair(z, yOrg: yo, yAug: ya, tau: tau, kind: .crossEntropy).value
        for i in 0..<n {
            let s = Foundation.exp(-d.data[2 * i]) + Foundation.exp(-d.data[2 * i + 1])
            try require(s < 1, "row \(i): e^{−d_org} + e^{−d_aug} = \(s)")
        }
        let same = try DistanceBasedRepresentative.pair(z, yOrg: yo, yAug: yo, tau: tau, kind: .crossEntropy).value
        for i in 0..<n { try require(same.data[2 * i] == same.data[2 * i + 1], "row \(i): d_org ≠ d_aug for equal labels") }
    },
    Property("shift_invariant") { rng in
        let (n, k) = (1 + rng.int(below: 5), 2 + rng.int(below: 8))
        let tape = Tape()
        let zt = rng.normalTensor([n, k]) * 2
        let shift = rng.normalTensor([n, 1]) * 10
        let y = (0..<n).map { _ in rng.int(below: k) }
        for kind in DBRDistance.allCases {
            let a = try DistanceBasedRepresentative.distances(tape.constant(zt), labels: y, tau: 2, kind: kind).value
            let b = try DistanceBasedRepresentative.distances(tape.constant(zt + shift), labels: y, tau: 2, kind: kind).value
            try requireClose(b, a, Tolerance(rtol: 1e-12, atol: 1e-12), "\(kind) distances after a logit shift")
        }
    },
    Property("distance_gradient") { rng in
        let (n, k) = (1 + rng.int(below: 5), 2 + rng.int(below: 8))
        let tape = Tape()
        let z = tape.leaf(rng.normalTensor([n, k]) * 2)
        let y = (0..<n).map { _ in rng.int(below: k) }
        let tau = rng.uniform(0.5, 20)
        let d = try DistanceBasedRepresentative.distances(z, labels: y, tau: tau, kind: .crossEntropy)
        let g = try tape.gradients(of: sum(d), wrt: [z])[0]
        let p = try (z.value * (1 / tau)).softmax(axis: 1)
        let want = try (p - oneHot(y, classes: k)) * (1 / tau)
        try requireClose(g, want, Tolerance(rtol: 1e-12, atol: 1e-14), "∂d/∂z")
        for i in 0..<n { try require(Swift.abs(g.data[(i * k)..<((i + 1) * k)].reduce(0, +)) < 1e-14, "row \(i): ∂d/∂z does not sum to 0") }
    },
    Property("storage_arithmetic") { _ in
        let s = DistanceBasedRepresentative.storage(instances: 200 * 1000, epochs: 300, classes: 1000, bytesPerNumber: 2)
        try require(s.softLabels == 120e9 && s.dbr == 0.24e9 && s.ratio == 500, "storage \(s), expected 120 GB, 0.24 GB, 500×")
    },
    Property("bad_tau_rejected") { rng in
        let tape = Tape()
        let z = tape.constant(rng.normalTensor([2, 4]))
        for tau in [0, -1, Double.nan, .infinity] {
            try requireThrows("τ = \(tau)") { _ = try DistanceBasedRepresentative.distances(z, labels: [0, 1], tau: tau, kind: .crossEntropy) }
        }
        try requireThrows("label 4 of 4") { _ = try DistanceBasedRepresentative.distances(z, labels: [0, 4], tau: 1, kind: .l2) }
        try requireThrows("distance code 2") { _ = try dbrDistance(2) }
        try requireThrows("loss code −1") { _ = try dbrLoss(-1) }
        try requireThrows("a box outside 8 × 8") { _ = try dbrLambda(Tensor([0, 0, 9, 4]), height: 8, width: 8) }
    },
]) { ctx in
    let zs = try ctx.v("student_logits"), zt = try ctx.tensor("teacher_logits")
    let k = zs.shape[1]
    let yo = try labelList(ctx.tensor("y_org"), classes: k, name: "y_org"), ya = try labelList(ctx.tensor("y_aug"), classes: k, name: "y_aug")
    let tau = try ctx.double("tau", default: 1), kind = try dbrDistance(ctx.int("distance", default: 0))
    let lossKind = try dbrLoss(ctx.int("dbr_loss", default: 0)), alpha = try ctx.double("alpha_dbr", default: 1)
    try check(alpha.isFinite && alpha >= 0, "alpha_dbr", "finite and ≥ 0", alpha)
    let lam = try dbrLambda(ctx.tensor("bbox"), height: ctx.int("height"), width: ctx.int("width"))
    let dT = try DistanceBasedRepresentative.pair(ctx.constant(zt), yOrg: yo, yAug: ya, tau: tau, kind: kind)
    let dS = try DistanceBasedRepresentative.pair(zs, yOrg: yo, yAug: ya, tau: tau, kind: kind)
    let lDBR = try DistanceBasedRepresentative.loss(student: dS, teacher: dT.value, kind: lossKind)
    let lSCE = try DistanceBasedRepresentative.sce(zs, yOrg: yo, yAug: ya, lamEff: lam)
    return ["d_teacher": dT, "d_student": dS, "l_dbr": lDBR, "l_sce": lSCE, "loss": try lSCE + lDBR * alpha,
            "lam_eff": ctx.constant(Tensor(scalar: lam))]
}

/// λ_eff of a CutMix box (x1, y1, x2, y2) inside H × W.
func dbrLambda(_ b: Tensor, height: Int, width: Int) throws -> Double {
    try check(height >= 1 && width >= 1, "height/width", "≥ 1", "\(height) × \(width)")
    try check(b.count == 4, "bbox", "4 numbers (x1, y1, x2, y2)", b.count)
    let v = try b.data.map { try checkedInt($0, "bbox") }
    try check(0 <= v[0] && v[0] <= v[2] && v[2] <= height && 0 <= v[1] && v[1] <= v[3] && v[3] <= width, "bbox",
              "0 ≤ x1 ≤ x2 ≤ \(height) and 0 ≤ y1 ≤ y2 ≤ \(width)", v)
    return KnowledgeTransfer.lambdaEffective(CutMixBox(x1: v[0], y1: v[1], x2: v[2], y2: v[3]), height: height, width: width)
}

// MARK: - nrrdd.relabel

let relabelMethod = Method("nrrdd.relabel", properties: [
    Property("cutmix_box_bounds") { rng in
        let (n, c, h, w) = (1 + rng.int(below: 4), 1 + rng.int(below: 2), 1 + rng.int(below: 12), 1 + rng.int(below: 12))
        let lam = rng.bernoulli(0.2) ? [0.0, 1.0][rng.int(below: 2)] : rng.beta(1, 1)
        let box = try KnowledgeTransfer.cutmixBox(height: h, width: w, lam: lam, cx: rng.int(below: h), cy: rng.int(below: w))
        try require(0 <= box.x1 && box.x1 <= box.x2 && box.x2 <= h && 0 <= box.y1 && box.y1 <= box.y2 && box.y2 <= w, "box \(box) in \(h) × \(w)")
        let le = KnowledgeTransfer.lambdaEffective(box, height: h, width: w)
        try require(le >= 0 && le <= 1, "λ_eff = \(le)")
        let x = rng.normalTensor([n, c, h, w])
        let mixed = try KnowledgeTransfer.cutmix(x, randIndex: rng.permutation(n), box: box)
        for i in 0..<n { for ch in 0..<c { for u in 0..<h { for v in 0..<w where !(box.x1..<box.x2).contains(u) || !(box.y1..<box.y2).contains(v) {
            let o = ((i * c + ch) * h + u) * w + v
            try require(mixed.data[o].bitPattern == x.data[o].bitPattern, "pixel (\(i), \(ch), \(u), \(v)) outside the box changed")
        } } } }
    },
    Property("kd_nonnegative") { rng in
        let (n, k) = (1 + rng.int(below: 5), 2 + rng.int(below: 8))
        let tau = rng.uniform(0.5, 20)
        let tape = Tape()
        let zs = tape.leaf(rng.normalTensor([n, k]) * 3), zt = rng.normalTensor([n, k]) * 3
        let kl = try KnowledgeTransfer.kdLoss(student: zs, teacher: zt, tau: tau)
        try require(kl.value.data[0] >= 0, "KL = \(kl.value.data[0])")
        let g = try tape.gradients(of: kl, wrt: [zs])[0]
        let want = try ((zs.value * (1 / tau)).softmax(axis: 1) - (zt * (1 / tau)).softmax(axis: 1)) * (1 / (tau * Double(n)))
        try requireClose(g, want, Tolerance(rtol: 1e-10, atol: 1e-14), "∂KL/∂z^S")
        let shifted = try KnowledgeTransfer.kdLoss(student: tape.constant(try zt + rng.normalTensor([n, 1])), teacher: zt, tau: tau)
        try require(Swift.abs(shifted.value.data[0]) < 1e-12, "KL of shifted logits = \(shifted.value.data[0])")
    },
    Property("schedule_ends_half") { rng in
        let e = 1 + rng.int(below: 500)
        try require(try KnowledgeTransfer.cosineMultiplier(epoch: 0, epochs: e) == 1, "m(0) ≠ 1")
        try require(Swift.abs(try KnowledgeTransfer.cosineMultiplier(epoch: e, epochs: e) - 0.5) < 1e-15, "m(E) ≠ 0.5")
        try require(try KnowledgeTransfer.cosineMultiplier(epoch: e + 1, epochs: e) == 0, "m(E + 1) ≠ 0")
        var last = 2.0
        for t in 0...e {
            let m = try KnowledgeTransfer.cosineMultiplier(epoch: t, epochs: e)
            try require(m <= last, "m increases at \(t)")
            last = m
        }
    },
    Property("shuffle_is_permutation") { rng in
        let factor = 1 + rng.int(below: 4)
        let (c, h, w) = (1 + rng.int(below: 3), factor * (1 + rng.int(below: 5)), factor * (1 + rng.int(below: 5)))
        let img = rng.normalTensor([c, h, w])
        let (pw, ph) = (rng.permutation(factor), rng.permutation(factor))
        // the code's rule permutes too unless an offset i·⌊size/factor⌋ (i < factor − 1) equals factor − 1
        func quirk(_ size: Int) -> Bool { (0..<(factor - 1)).contains { $0 * (size / factor) == factor - 1 } }
        for rule in ShuffleRemainder.allCases where rule == .lastStripTakesRemainder || (!quirk(h) && !quirk(w)) {
            let s = try KnowledgeTransfer.shufflePatches(img, factor: factor, permW: pw, permH: ph, rule: rule)
            try require(s.shape == img.shape && s.data.sorted() == img.data.sorted(), "\(rule): ShufflePatches is not a permutation of the pixels")
            let id = try KnowledgeTransfer.shufflePatches(img, factor: factor, permW: Array(0..<factor), permH: Array(0..<factor), rule: rule)
            try require(id == img, "\(rule): identity permutations changed the image")
        }
        if factor == 3 {
            let six = try KnowledgeTransfer.shufflePatches(rng.normalTensor([1, 6, 6]), factor: 3, permW: [0, 1, 2], permH: [0, 1, 2])
            try require(six.shape == [1, 8, 8], "the code's rule on 6 × 6, factor 3 gives \(six.shape), expected [1, 8, 8]")
        }
    },
    Property("bad_params_rejected") { rng in
        let tape = Tape()
        try requireThrows("τ = 0") { _ = try KnowledgeTransfer.kdLoss(student: tape.constant(rng.normalTensor([2, 3])), teacher: rng.normalTensor([2, 3]), tau: 0) }
        try requireThrows("λ = 1.5") { _ = try KnowledgeTransfer.cutmixBox(height: 8, width: 8, lam: 1.5, cx: 1, cy: 1) }
        try requireThrows("cx = 8 in 8 rows") { _ = try KnowledgeTransfer.cutmixBox(height: 8, width: 8, lam: 0.5, cx: 8, cy: 1) }
        try requireThrows("rand_index [0, 0]") { _ = try KnowledgeTransfer.cutmix(rng.normalTensor([2, 1, 4, 4]), randIndex: [0, 0], box: CutMixBox(x1: 0, y1: 0, x2: 2, y2: 2)) }
        try requireThrows("factor 0") { _ = try KnowledgeTransfer.shufflePatches(rng.normalTensor([1, 4, 4]), factor: 0, permW: [], permH: []) }
    },
]) { ctx in
    let images = try ctx.tensor("images")
    guard images.rank == 4 else { throw NRRDDError.parameter("images", "shape [N, C, H, W]", images.shape) }
    let (h, w) = (images.shape[2], images.shape[3])
    let box = try KnowledgeTransfer.cutmixBox(height: h, width: w, lam: ctx.double("lam"), cx: ctx.int("cx"), cy: ctx.int("cy"))
    let perm = try ctx.tensor("rand_index").data.map { try checkedInt($0, "rand_index") }
    let mixed = try KnowledgeTransfer.cutmix(images, randIndex: perm, box: box)
    let zs = try ctx.v("student_logits")
    let kd = try KnowledgeTransfer.kdLoss(student: zs, teacher: ctx.tensor("teacher_logits"), tau: ctx.double("tau"))
    guard let rule = ShuffleRemainder(rawValue: try ctx.int("shuffle_remainder", default: 0)) else {
        throw NRRDDError.parameter("shuffle_remainder", "0 (the code's rule) or 1 (the intent)", try ctx.int("shuffle_remainder"))
    }
    let shuffled = try KnowledgeTransfer.shufflePatches(ctx.tensor("shuffle_image"), factor: ctx.int("factor"),
                                                        permW: ctx.tensor("perm_w").data.map { try checkedInt($0, "perm_w") },
                                                        permH: ctx.tensor("perm_h").data.map { try checkedInt($0, "perm_h") }, rule: rule)
    let mult = try KnowledgeTransfer.cosineMultiplier(epoch: ctx.int("epoch"), epochs: ctx.int("epochs"))
    return ["mixed": ctx.constant(mixed), "bbox": ctx.constant(Tensor([box.x1, box.y1, box.x2, box.y2].map(Double.init))),
            "lam_eff": ctx.constant(Tensor(scalar: KnowledgeTransfer.lambdaEffective(box, height: h, width: w))),
            "kd_loss": kd, "shuffled": ctx.constant(shuffled), "lr_multiplier": ctx.constant(Tensor(scalar: mult))]
}

// MARK: - nrrdd.selection

/// A random pool for the selection properties.
func randomPool(_ rng: inout RNG, identicalBoxes: Bool = false) throws -> (NRRTeacher, Tensor, [Int], [[CropBox]]) {
    let count = 2 + rng.int(below: 4), m = 1 + rng.int(below: 3), side = 8 + 2 * rng.int(below: 3)
    let teacher = try randomTeacher(&rng, channels: 1, widths: rng.bernoulli(0.5) ? [3, 4] : [3, 4, 5])
    let images = rng.normalTensor([count, 1, side, side])
    let labels = (0..<count).map { _ in rng.int(below: teacher.classes) }
    let sampler = RandomResizedCropBoxes()
    let boxes = try (0..<count).map { _ -> [CropBox] in
        if identicalBoxes { let b = try sampler.sample(height: side, width: side, rng: &rng); return [CropBox](repeating: b, count: m) }
        return try (0..<m).map { _ in try sampler.sample(height: side, width: side, rng: &rng) }
    }
    return (teacher, images, labels, boxes)
}

let selectionMethod = Method("nrrdd.selection", properties: [
    Property("rded_minimises") { rng in
        let (t, x, y, b) = try randomPool(&rng)
        let n = rng.int(below: x.shape[0] + 1)
        let r = try InitialDataSelection.select(images: x, labels: y, boxes: b, teacher: t, size: x.shape[2], factor: 2, n: n, ordering: .rded)
        let key = (0..<x.shape[0]).map { r.scores[$0][r.chosen[$0]] }
        for i in 0..<x.shape[0] { try require(key[i] == r.scores[i].min()!, "image \(i): kept score is not its minimum") }
        for i in r.selected { for j in 0..<x.shape[0] where !r.selected.contains(j) { try require(key[i] <= key[j], "kept \(i) scores above unkept \(j)") } }
    },
    Property("cidd_maximises") { rng in
        let (t, x, y, b) = try randomPool(&rng)
        let n = rng.int(below: x.shape[0] + 1)
        let r = try InitialDataSelection.select(images: x, labels: y, boxes: b, teacher: t, size: x.shape[2], factor: 2, n: n, ordering: .cidd)
        let key = (0..<x.shape[0]).map { r.scores[$0][r.chosen[$0]] }
        for i in 0..<x.shape[0] { try require(r.ratios[i][r.chosen[i]] == r.ratios[i].max()!, "image \(i): kept crop's ratio is not maximal") }
        for i in r.selected { for j in 0..<x.shape[0] where !r.selected.contains(j) { try require(key[i] >= key[j], "kept \(i) scores below unkept \(j)") } }
    },
    Property("ties_first_index") { rng in
        let (t, x, y, b) = try randomPool(&rng, identicalBoxes: true)
        for ordering in SelectionOrdering.allCases {
            let r = try InitialDataSelection.select(images: x, labels: y, boxes: b, teacher: t, size: x.shape[2], factor: 2, n: x.shape[0], ordering: ordering)
            try require(r.chosen.allSatisfy { $0 == 0 }, "\(ordering): identical crops did not choose the first: \(r.chosen)")
        }
        // identical images and labels: equal scores across images keep index order
        let one = try x.slice(axis: 0, 0..<1)
        let same = try Tensor.concatenate([Tensor](repeating: one, count: x.shape[0]), axis: 0)
        let r = try InitialDataSelection.select(images: same, labels: [Int](repeating: y[0], count: x.shape[0]),
                                                boxes: [[CropBox]](repeating: b[0], count: x.shape[0]), teacher: t, size: x.shape[2], factor: 2,
                                                n: x.shape[0], ordering: .rded)
        try require(r.selected == Array(0..<x.shape[0]), "equal scores reordered images: \(r.selected)")
    },
    Property("box_sampler_rules") { rng in
        let (h, w) = (1 + rng.int(below: 40), 1 + rng.int(below: 40))
        let sampler = RandomResizedCropBoxes(scale: (0.08, 1), ratio: rng.bernoulli(0.5) ? (1, 1) : (0.75, 4.0 / 3))
        let seed = rng.next()
        var a = RNG(seed: seed), b = RNG(seed: seed)
        for _ in 0..<20 {
            let box = try sampler.sample(height: h, width: w, rng: &a)
            try box.validate(height: h, width: w)
            try require(box == (try sampler.sample(height: h, width: w, rng: &b)), "same seed, different boxes")
        }
    },
    Property("bad_selection_rejected") { rng in
        let (t, x, y, b) = try randomPool(&rng)
        let s = x.shape[2]
        try requireThrows("n = N + 1") { _ = try InitialDataSelection.select(images: x, labels: y, boxes: b, teacher: t, size: s, factor: 2, n: x.shape[0] + 1, ordering: .rded) }
        var bad = b
        bad[0][0] = CropBox(top: 0, left: 0, height: 0, width: 3)
        try requireThrows("an empty box") { _ = try InitialDataSelection.select(images: x, labels: y, boxes: bad, teacher: t, size: s, factor: 2, n: 1, ordering: .rded) }
        bad[0][0] = CropBox(top: s - 1, left: 0, height: 2, width: 2)
        try requireThrows("a box outside the image") { _ = try InitialDataSelection.select(images: x, labels: y, boxes: bad, teacher: t, size: s, factor: 2, n: 1, ordering: .cidd) }
        try requireThrows("size // factor = 0") { _ = try InitialDataSelection.select(images: x, labels: y, boxes: b, teacher: t, size: 1, factor: 2, n: 1, ordering: .rded) }
    },
]) { ctx in
    let teacher = try teacherFrom(ctx)
    let images = try ctx.tensor("images")
    guard images.rank == 4 else { throw NRRDDError.parameter("images", "shape [N, C, H, W]", images.shape) }
    let labels = try labelList(ctx.tensor("labels"), classes: teacher.classes)
    let bt = try ctx.tensor("boxes")
    guard bt.rank == 3, bt.shape[0] == images.shape[0], bt.shape[2] == 4 else { throw NRRDDError.parameter("boxes", "shape [\(images.shape[0]), m, 4]", bt.shape) }
    let flat = try boxList(bt)
    let m = bt.shape[1]
    let boxes = (0..<images.shape[0]).map { Array(flat[($0 * m)..<(($0 + 1) * m)]) }
    guard let ordering = SelectionOrdering(rawValue: try ctx.int("order", default: 0)) else {
        throw NRRDDError.parameter("order", "0 (RDED) or 1 (CIDD)", try ctx.int("order"))
    }
    let r = try InitialDataSelection.select(images: images, labels: labels, boxes: boxes, teacher: teacher, size: ctx.int("size"),
                                            factor: ctx.int("factor"), n: ctx.int("n"), ordering: ordering)
    let n = images.shape[0]
    return ["scores": ctx.constant(Tensor(unchecked: [n, m], r.scores.flatMap { $0 })),
            "ratios": ctx.constant(Tensor(unchecked: [n, m], r.ratios.flatMap { $0 })),
            "chosen": ctx.constant(Tensor(r.chosen.map(Double.init))), "selected": ctx.constant(Tensor(r.selected.map(Double.init))),
            "crops": ctx.constant(r.crops)]
}

// MARK: - nrrdd.refinement

func refinementConfig(_ ctx: Context) throws -> RefinementConfig {
    guard let opt = RefinementOptimizer(rawValue: try ctx.int("optimizer", default: 0)) else {
        throw NRRDDError.parameter("optimizer", "0 (gradient descent) or 1 (Adam)", try ctx.int("optimizer"))
    }
    let clip = try ctx.int("clip", default: 0) != 0
    let lo = try ctx.double("clip_min", default: -1), hi = try ctx.double("clip_max", default: 1)
    if clip { try check(lo <= hi, "clip_min", "≤ clip_max (\(hi))", lo) }
    return RefinementConfig(epsilon: try ctx.double("epsilon"), eta: try ctx.double("eta"), steps: try ctx.int("steps"),
                            alphaBN: try ctx.double("alpha_bn"), firstBNMultiplier: try ctx.double("first_bn_multiplier", default: 10),
                            optimizer: opt, recomputeCAM: try ctx.int("recompute_cam", default: 0) != 0, clip: clip ? lo...hi : nil)
}

/// A random refinement instance for the properties.
func randomRefinement(_ rng: inout RNG) throws -> (NRRTeacher, Tensor, [Int]) {
    let c = 1 + rng.int(below: 2)
    let teacher = try randomTeacher(&rng, channels: c, widths: rng.bernoulli(0.5) ? [3, 4] : [3, 4, 5])
    let n = 1 + rng.int(below: 3), side = 4 + 2 * rng.int(below: 3)
    return (teacher, rng.normalTensor([n, c, side, side]), (0..<n).map { _ in rng.int(below: teacher.classes) })
}

let refinementMethod = Method("nrrdd.refinement", properties: [
    Property("critical_pixels_bit_identical") { rng in
        let (t, x, y) = try randomRefinement(&rng)
        let cfg = RefinementConfig(epsilon: rng.uniform(0.1, 0.9), eta: rng.uniform(0.01, 1), steps: 1 + rng.int(below: 4), alphaBN: rng.uniform(0, 0.5),
                                   optimizer: rng.bernoulli(0.5) ? .adam : .gradientDescent, clip: rng.bernoulli(0.5) ? -0.5...0.5 : nil)
        let r = try NonCriticalRegionRefinement.refine(x, labels: y, teacher: t, config: cfg)
        let (c, plane) = (x.shape[1], x.shape[2] * x.shape[3])
        var frozen = 0
        for i in 0..<x.count where r.mask.data[(i / (c * plane)) * plane + i % plane] == 0 {
            frozen += 1
            try require(r.refined.data[i].bitPattern == x.data[i].bitPattern, "critical pixel \(i) changed (\(cfg))")
        }
        try require(r.mask.data.contains { $0 > 0 } || frozen == x.count, "mask inconsistent")
    },
    Property("epsilon_nonpositive_no_change") { rng in
        let (t, x, y) = try randomRefinement(&rng)
        for eps in [0.0, -rng.uniform(0.01, 1)] {
            let cfg = RefinementConfig(epsilon: eps, eta: rng.uniform(0.1, 2), steps: 1 + rng.int(below: 3), alphaBN: 0.1,
                                       optimizer: rng.bernoulli(0.5) ? .adam : .gradientDescent)
            let r = try NonCriticalRegionRefinement.refine(x, labels: y, teacher: t, config: cfg, allowNegativeEpsilon: true)
            try require(zip(r.refined.data, x.data).allSatisfy { $0.bitPattern == $1.bitPattern }, "ε = \(eps) changed the image")
        }
    },
    Property("one_step_linear_in_eta") { rng in
        let (t, x, y) = try randomRefinement(&rng)
        let eta = rng.uniform(0.01, 0.5), eps = rng.uniform(0.2, 1)
        let a = try NonCriticalRegionRefinement.refine(x, labels: y, teacher: t, config: RefinementConfig(epsilon: eps, eta: eta, steps: 1, alphaBN: 0.1))
        let b = try NonCriticalRegionRefinement.refine(x, labels: y, teacher: t, config: RefinementConfig(epsilon: eps, eta: 2 * eta, steps: 1, alphaBN: 0.1))
        try requireClose(try b.refined - x, try (a.refined - x) * 2, Tolerance(rtol: 1e-9, atol: 1e-13), "displacement at 2η vs 2 × displacement at η")
    },
    Property("bn_loss_nonnegative") { rng in
        let (t, x, _) = try randomRefinement(&rng)
        let tape = Tape()
        let o = try t.forward(tape.constant(x), t.parameters.map { tape.constant($0.value) })
        let l = try NonCriticalRegionRefinement.bnLoss(bnInputs: o.bnInputs, runningMean: t.runningMean, runningVar: t.runningVar, firstMultiplier: 10)
        try require(l.value.data[0] >= 0, "L_bn = \(l.value.data[0])")
        let means = try o.bnInputs.map { try $0.value.mean(axes: [0, 2, 3]) }
        let vars = try o.bnInputs.enumerated().map { l, a in
            try ((a.value - (try a.value.mean(axes: [0, 2, 3], keepDims: true))).map { $0 * $0 }).mean(axes: [0, 2, 3])
        }
        let matched = try NonCriticalRegionRefinement.bnLoss(bnInputs: o.bnInputs, runningMean: means, runningVar: vars, firstMultiplier: 10)
        try require(matched.value.data[0] < 1e-12, "L_bn with matched statistics = \(matched.value.data[0])")
    },
    Property("mask_range") { rng in
        let (t, x, y) = try randomRefinement(&rng)
        let eps = rng.uniform(0, 1)
        let (tape, o) = try t.forward(x)
        _ = tape
        let m = try NonCriticalRegionRefinement.mask(features: o.features.value, labels: y, teacher: t, height: x.shape[2], width: x.shape[3], epsilon: eps)
        let c = try ClassActivationMap.of(x, labels: y, teacher: t)
        try require(m.data.allSatisfy { $0 >= 0 && $0 <= eps }, "M outside [0, ε]")
        try require(zip(m.data, c.data).allSatisfy { ($0 == 0) == ($1 >= eps) }, "M = 0 does not coincide with C ≥ ε")
    },
    Property("bad_refinement_rejected") { rng in
        let (t, x, y) = try randomRefinement(&rng)
        for cfg in [RefinementConfig(epsilon: 1.5, eta: 0.1, steps: 1, alphaBN: 0), RefinementConfig(epsilon: -0.1, eta: 0.1, steps: 1, alphaBN: 0),
                    RefinementConfig(epsilon: 0.5, eta: -0.1, steps: 1, alphaBN: 0), RefinementConfig(epsilon: 0.5, eta: 0.1, steps: -1, alphaBN: 0),
                    RefinementConfig(epsilon: 0.5, eta: 0.1, steps: 1, alphaBN: -1), RefinementConfig(epsilon: .nan, eta: 0.1, steps: 1, alphaBN: 0)] {
            try requireThrows("\(cfg)") { _ = try NonCriticalRegionRefinement.refine(x, labels: y, teacher: t, config: cfg) }
        }
        var nan = x
        nan.data[rng.int(below: x.count)] = .nan
        try requireThrows("a NaN image") { _ = try NonCriticalRegionRefinement.refine(nan, labels: y, teacher: t, config: RefinementConfig(epsilon: 0.5, eta: 0.1, steps: 1, alphaBN: 0)) }
        var tensors = t.protocolTensors
        tensors["t_bn1_running_var"]!.data[0] = 0
        try requireThrows("a zero running variance") { _ = try NRRTeacher(protocolTensors: tensors) }
    },
]) { ctx in
    let teacher = try teacherFrom(ctx)
    let xv = try ctx.v("x")
    let labels = try labelList(ctx.tensor("labels"), classes: teacher.classes)
    let cfg = try refinementConfig(ctx)
    let obj = try NonCriticalRegionRefinement.objective(xv, labels: labels, teacher: teacher, alphaBN: cfg.alphaBN, firstMultiplier: cfg.firstBNMultiplier)
    let r = try NonCriticalRegionRefinement.refine(xv.value, labels: labels, teacher: teacher, config: cfg)
    return ["refined": ctx.constant(r.refined), "mask": ctx.constant(r.mask), "losses": ctx.constant(Tensor(r.losses)),
            "objective": obj.total, "ce": obj.ce, "l_bn": obj.bn]
}
