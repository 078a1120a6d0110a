// Initial data: RDED's selection (synthesize/utils.py::selector, MultiRandomCrop, pad) and NRR-DD's
// Critical-based Initial Data Discovery (CIDD), which inverts it with the CAM ratio.

import Foundation
import Ops
import Tensor

/// How crops are chosen per image and across images.
public enum SelectionOrdering: Int, Sendable, CaseIterable {
    /// RDED: per image the crop of lowest loss ℓ, across images the n lowest.
    case rded = 0
    /// CIDD (NRR-DD): per image the crop of highest CAM ratio ρ, across images the n highest losses.
    case cidd = 1
}

public struct SelectionResult: Sendable {
    /// ℓ = −log softmax(T(pad(p)))_y per image and crop.
    public var scores: [[Double]]
    /// ρ of every box on the image's CAM.
    public var ratios: [[Double]]
    /// The crop kept per image.
    public var chosen: [Int]
    /// The images kept, in kept order.
    public var selected: [Int]
    /// The kept crops (resized to s × s, not padded), in kept order: [n, C, s, s].
    public var crops: Tensor
}

public enum InitialDataSelection {
    /// Zero padding to size × size with the crop centred (top = ⌊(size − s)/2⌋), RDED's `pad`.
    public static func pad(_ x: Tensor, to size: Int) throws -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        try check(h <= size && w <= size, "size", "≥ the crop size \(h) × \(w)", size)
        let top = (size - h) / 2, left = (size - w) / 2
        var d = [Double](repeating: 0, count: n * c * size * size)
        for p in 0..<(n * c) {
            for u in 0..<h { for v in 0..<w { d[(p * size + top + u) * size + left + v] = x.data[(p * h + u) * w + v] } }
        }
        return Tensor(unchecked: [n, c, size, size], d)
    }

    /// Crop `box` of image `index` of x [N, C, H, W], resized to s × s (antialiased bilinear).
    public static func crop(_ x: Tensor, index: Int, box: CropBox, side s: Int) throws -> Tensor {
        let (c, h, w) = (x.shape[1], x.shape[2], x.shape[3])
        try box.validate(height: h, width: w)
        var d = [Double](repeating: 0, count: c * box.height * box.width)
        for ch in 0..<c {
            for u in 0..<box.height {
                for v in 0..<box.width {
                    d[(ch * box.height + u) * box.width + v] = x.data[((index * c + ch) * h + box.top + u) * w + box.left + v]
                }
            }
        }
        return try AntialiasedResize.bilinear(Tensor(unchecked: [c, box.height, box.width], d), height: s, width: s)
    }

    /// Scores, ratios and the selection (RDED or CIDD) of one candidate pool.
    public static func select(images: Tensor, labels: [Int], boxes: [[CropBox]], teacher: NRRTeacher, size: Int, factor: Int,
                              n: Int, ordering: SelectionOrdering) throws -> SelectionResult {
        guard images.rank == 4 else { throw NRRDDError.parameter("images", "shape [N, C, H, W]", images.shape) }
        let (count, c, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        try check(factor >= 1, "factor", "≥ 1", factor)
        try check(size >= factor, "size", "≥ factor (\(factor)), so that size // factor ≥ 1", size)
        let s = size / factor
        try check(labels.count == count, "labels", "one per image (\(count))", labels.count)
        try check(boxes.count == count, "boxes", "one list per image (\(count))", boxes.count)
        try check(n >= 0 && n <= count, "n", "in [0, \(count)] (ipc·factor² crops from a pool of \(count) images)", n)
        let m = boxes.first?.count ?? 0
        try check(m >= 1 && boxes.allSatisfy { $0.count == m }, "boxes", "the same number (≥ 1) of boxes per image", boxes.map(\.count))
        for y in labels { try check(y >= 0 && y < teacher.classes, "labels", "class indices in [0, \(teacher.classes))", y) }
        var crops: [Tensor] = []
        for i in 0..<count { for j in 0..<m { crops.append(try crop(images, index: i, box: boxes[i][j], side: s)) } }
        let stacked = Tensor(unchecked: [count * m, c, s, s], crops.flatMap(\.data))
        let z = try teacher.logits(pad(stacked, to: size))
        let k = z.shape[1]
        var scores = [[Double]](repeating: [Double](repeating: 0, count: m), count: count)
        for i in 0..<count {
            for j in 0..<m {
                // RDED's cross_entropy: −log(softmax(z)_y), softmax computed as exp(z − max)/Σ
                let row = Array(z.data[((i * m + j) * k)..<((i * m + j + 1) * k)])
                let mx = row.max()!
                let e = row.map { Foundation.exp($0 - mx) }
                scores[i][j] = -Foundation.log(e[labels[i]] / e.reduce(0, +))
            }
        }
        let cam = try ClassActivationMap.of(images, labels: labels, teacher: teacher)
        let ratios = try (0..<count).map { i in try (0..<m).map { j in try ClassActivationMap.ratio(cam, index: i, box: boxes[i][j]) } }
        var chosen: [Int] = []
        for i in 0..<count {
            var b = 0
            for j in 1..<m {
                switch ordering {
                case .rded: if scores[i][j] < scores[i][b] { b = j }
                case .cidd: if ratios[i][j] > ratios[i][b] { b = j }
                }
            }
            chosen.append(b)
        }
        let key = (0..<count).map { scores[$0][chosen[$0]] }
        let order = (0..<count).sorted { a, b in
            if key[a] != key[b] { return ordering == .rded ? key[a] < key[b] : key[a] > key[b] }
            return a < b
        }
        let selected = Array(order.prefix(n))
        let per = c * s * s
        let kept = selected.flatMap { i in crops[i * m + chosen[i]].data }
        _ = per
        return SelectionResult(scores: scores, ratios: ratios, chosen: chosen, selected: selected,
                               crops: Tensor(unchecked: [selected.count, c, s, s], kept))
    }
}

/// Antialiased bilinear resize as torch.nn.functional.interpolate(mode='bilinear', align_corners=False,
/// antialias=True) computes it (ATen's separable AA kernel, the resize inside torchvision's
/// RandomResizedCrop on tensors): per axis, scale = in/out, support = scale ≥ 1 ? scale : 1,
/// centre = scale·(i + ½), taps xmin = max(⌊centre − support + ½⌋, 0) … min(⌊centre + support + ½⌋, in),
/// weights tri((j + xmin − centre + ½)·(scale ≥ 1 ? 1/scale : 1)) normalised to sum 1.
public enum AntialiasedResize {
    static func taps(input: Int, output: Int) -> [(start: Int, weights: [Double])] {
        let scale = Double(input) / Double(output)
        let support = scale >= 1 ? scale : 1.0
        let invscale = scale >= 1 ? 1 / scale : 1.0
        return (0..<output).map { i in
            let center = scale * (Double(i) + 0.5)
            let xmin = Swift.max(Int(center - support + 0.5), 0)
            let xsize = Swift.min(Int(center + support + 0.5), input) - xmin
            var ws = (0..<xsize).map { j -> Double in
                let t = Swift.abs((Double(j + xmin) - center + 0.5) * invscale)
                return t < 1 ? 1 - t : 0
            }
            let total = ws.reduce(0, +)
            if total != 0 { ws = ws.map { $0 / total } }
            return (xmin, ws)
        }
    }

    /// x [C, h, w] → [C, height, width]: along W first, then along H.
    public static func bilinear(_ x: Tensor, height: Int, width: Int) throws -> Tensor {
        try check(height >= 1 && width >= 1, "resize size", "≥ 1", "\(height) × \(width)")
        let (c, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        let tw = taps(input: w, output: width), th = taps(input: h, output: height)
        var mid = [Double](repeating: 0, count: c * h * width)
        for p in 0..<(c * h) {
            for (o, t) in tw.enumerated() {
                var s = 0.0
                for (j, wt) in t.weights.enumerated() { s += wt * x.data[p * w + t.start + j] }
                mid[p * width + o] = s
            }
        }
        var out = [Double](repeating: 0, count: c * height * width)
        for ch in 0..<c {
            for (o, t) in th.enumerated() {
                for v in 0..<width {
                    var s = 0.0
                    for (j, wt) in t.weights.enumerated() { s += wt * mid[(ch * h + t.start + j) * width + v] }
                    out[(ch * height + o) * width + v] = s
                }
            }
        }
        return Tensor(unchecked: [c, height, width], out)
    }
}

/// RandomResizedCrop.get_params (torchvision 0.14) with Tensor's seeded RNG for torch's draws:
/// up to 10 attempts of area·U(scale), exp(U(log ratio)), w = round(√(area·aspect)), h = round(√(area/aspect))
/// (Python's half-to-even), accepted when 0 < w ≤ W and 0 < h ≤ H, then i ~ U{0..H−h}, j ~ U{0..W−w};
/// otherwise the centre crop with the aspect ratio clamped to the range.
public struct RandomResizedCropBoxes: Sendable {
    public var scale: (Double, Double) = (0.08, 1)
    public var ratio: (Double, Double) = (1, 1)
    public init(scale: (Double, Double) = (0.08, 1), ratio: (Double, Double) = (1, 1)) {
        self.scale = scale
        self.ratio = ratio
    }

    public func sample(height H: Int, width W: Int, rng: inout RNG) throws -> CropBox {
        try check(H >= 1 && W >= 1, "image size", "≥ 1", "\(H) × \(W)")
        try check(scale.0 > 0 && scale.0 <= scale.1, "scale", "0 < min ≤ max", scale)
        try check(ratio.0 > 0 && ratio.0 <= ratio.1, "ratio", "0 < min ≤ max", ratio)
        let lr = (Foundation.log(ratio.0), Foundation.log(ratio.1))
        for _ in 0..<10 {
            let u = rng.uniform(scale.0, scale.1), aspect = Foundation.exp(rng.uniform(lr.0, lr.1))
            if let (h, w) = RandomResizedCropBoxes.accepted(height: H, width: W, scaleDraw: u, aspect: aspect) {
                return CropBox(top: rng.int(below: H - h + 1), left: rng.int(below: W - w + 1), height: h, width: w)
            }
        }
        return fallback(height: H, width: W)
    }

    /// get_params' size rule for one attempt: target = H·W·u, w = round(√(target·aspect)), h = round(√(target/aspect))
    /// (half to even); the attempt is accepted when 0 < w ≤ W and 0 < h ≤ H.
    public static func accepted(height H: Int, width W: Int, scaleDraw u: Double, aspect: Double) -> (h: Int, w: Int)? {
        let target = Double(H * W) * u
        let w = Int((target * aspect).squareRoot().rounded(.toNearestOrEven))
        let h = Int((target / aspect).squareRoot().rounded(.toNearestOrEven))
        return w > 0 && w <= W && h > 0 && h <= H ? (h, w) : nil
    }

    /// get_params after 10 rejected attempts: the centre crop with the aspect ratio clamped to the range.
    public func fallback(height H: Int, width W: Int) -> CropBox {
        let inRatio = Double(W) / Double(H)
        var w = W, h = H
        if inRatio < ratio.0 {
            h = Int((Double(w) / ratio.0).rounded(.toNearestOrEven))
        } else if inRatio > ratio.1 {
            w = Int((Double(h) * ratio.1).rounded(.toNearestOrEven))
        }
        return CropBox(top: (H - h) / 2, left: (W - w) / 2, height: h, width: w)
    }

    /// Replays recorded draws (per attempt the scale draw and the aspect ratio after exp; the two offsets of the
    /// accepted attempt) through get_params' rules: the box torchvision returns for the same draws.
    public func replay(height H: Int, width W: Int, attempts: [(scaleDraw: Double, aspect: Double)], offsets: (top: Int, left: Int)?) throws -> CropBox {
        for a in attempts.prefix(10) {
            if let (h, w) = RandomResizedCropBoxes.accepted(height: H, width: W, scaleDraw: a.scaleDraw, aspect: a.aspect) {
                guard let o = offsets else { throw NRRDDError.parameter("offsets", "the offsets of the accepted attempt", "none") }
                try check(o.top >= 0 && o.top <= H - h && o.left >= 0 && o.left <= W - w, "offsets", "inside the image", o)
                return CropBox(top: o.top, left: o.left, height: h, width: w)
            }
        }
        return fallback(height: H, width: W)
    }
}
