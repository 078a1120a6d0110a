// RDED's knowledge transfer (validation/utils.py, validation/main.py @ 3f6453d): in-place CutMix,
// ShufflePatches, KL(batchmean) at τ without τ², and the cosine LambdaLR that ends at 0.5.

import Foundation
import Ops
import Tensor

/// RDED's rand_bbox box: x along H (rows), y along W (columns), half-open [x1, x2) × [y1, y2).
public struct CutMixBox: Sendable, Equatable {
    public var x1: Int, y1: Int, x2: Int, y2: Int
    public var area: Int { (x2 - x1) * (y2 - y1) }
}

/// ShufflePatches' handling of a size not divisible by the factor.
public enum ShuffleRemainder: Int, Sendable, CaseIterable {
    /// The code: a strip runs to the end only when its pixel offset i·⌊size/factor⌋ equals factor − 1.
    case officialCode = 0
    /// The evident intent: the last strip takes the remainder.
    case lastStripTakesRemainder = 1
}

public enum KnowledgeTransfer {
    /// rand_bbox with λ and the centre given: cut = ⌊H·√(1 − λ)⌋ (rows), ⌊W·√(1 − λ)⌋ (columns); clipped.
    public static func cutmixBox(height H: Int, width W: Int, lam: Double, cx: Int, cy: Int) throws -> CutMixBox {
        try check(lam.isFinite && lam >= 0 && lam <= 1, "lam", "in [0, 1]", lam)
        try check(cx >= 0 && cx < H, "cx", "in [0, \(H))", cx)
        try check(cy >= 0 && cy < W, "cy", "in [0, \(W))", cy)
        let r = (1 - lam).squareRoot()
        let cw = Int(Double(H) * r), ch = Int(Double(W) * r)
        func clip(_ v: Int, _ hi: Int) -> Int { Swift.min(Swift.max(v, 0), hi) }
        return CutMixBox(x1: clip(cx - cw / 2, H), y1: clip(cy - ch / 2, W), x2: clip(cx + cw / 2, H), y2: clip(cy + ch / 2, W))
    }

    /// images[:, :, x1:x2, y1:y2] ← images[randIndex, :, x1:x2, y1:y2] (the right side read before writing).
    public static func cutmix(_ images: Tensor, randIndex: [Int], box: CutMixBox) throws -> Tensor {
        let (n, c, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        try check(randIndex.count == n && Set(randIndex) == Set(0..<n), "rand_index", "a permutation of 0..<\(n)", randIndex)
        var out = images
        for i in 0..<n {
            for ch in 0..<c {
                for u in box.x1..<Swift.max(box.x1, box.x2) {
                    for v in box.y1..<Swift.max(box.y1, box.y2) {
                        out.data[((i * c + ch) * h + u) * w + v] = images.data[((randIndex[i] * c + ch) * h + u) * w + v]
                    }
                }
            }
        }
        return out
    }

    /// λ_eff = 1 − area/(H·W).
    public static func lambdaEffective(_ box: CutMixBox, height: Int, width: Int) -> Double {
        1 - Double(box.area) / Double(height * width)
    }

    /// nn.KLDivLoss('batchmean')(log_softmax(z^S/τ), softmax(z^T/τ)), no τ² factor.
    public static func kdLoss(student: Var, teacher: Tensor, tau: Double) throws -> Var {
        try check(tau.isFinite && tau > 0, "tau", "finite and > 0", tau)
        return try klDiv(logSoftmax(student * (1 / tau), axis: 1), target: (teacher * (1 / tau)).softmax(axis: 1))
    }

    /// LambdaLR multiplier: ½(1 + cos(π·e/E/2)) for e ≤ E, else 0 (ends at 0.5).
    public static func cosineMultiplier(epoch: Int, epochs: Int) throws -> Double {
        try check(epochs >= 1, "epochs", "≥ 1", epochs)
        try check(epoch >= 0, "epoch", "≥ 0", epoch)
        return epoch <= epochs ? 0.5 * (1.0 + Foundation.cos(Double.pi * Double(epoch) / Double(epochs) / 2)) : 0
    }

    /// One shuffle_weight pass along the last axis of x [C, A, B]: strips permuted by `perm`.
    static func shuffleLastAxis(_ x: Tensor, factor: Int, perm: [Int], rule: ShuffleRemainder) -> Tensor {
        let (c, a, b) = (x.shape[0], x.shape[1], x.shape[2])
        let tw = b / factor
        var strips: [Range<Int>] = []
        for i in 0..<factor {
            let start = i * tw
            let toEnd = rule == .officialCode ? start == factor - 1 : i == factor - 1
            strips.append(toEnd ? start..<b : start..<(start + tw))
        }
        let cols = perm.flatMap { Array(strips[$0]) }
        var d = [Double](repeating: 0, count: c * a * cols.count)
        for p in 0..<(c * a) { for (o, s) in cols.enumerated() { d[p * cols.count + o] = x.data[p * b + s] } }
        return Tensor(unchecked: [c, a, cols.count], d)
    }

    /// ShufflePatches(factor) on one image [C, H, W]: along W by permW, then along H by permH.
    public static func shufflePatches(_ img: Tensor, factor: Int, permW: [Int], permH: [Int], rule: ShuffleRemainder = .officialCode) throws -> Tensor {
        try check(factor >= 1, "factor", "≥ 1", factor)
        guard img.rank == 3 else { throw NRRDDError.parameter("shuffle_image", "shape [C, H, W]", img.shape) }
        for (name, p) in [("perm_w", permW), ("perm_h", permH)] {
            try check(p.count == factor && Set(p) == Set(0..<factor), name, "a permutation of 0..<\(factor)", p)
        }
        try check(img.shape[1] >= factor && img.shape[2] >= factor, "shuffle_image", "at least factor × factor pixels", img.shape)
        let a = shuffleLastAxis(img, factor: factor, perm: permW, rule: rule)
        let b = shuffleLastAxis(try a.permuted([0, 2, 1]), factor: factor, perm: permH, rule: rule)
        return try b.permuted([0, 2, 1])
    }
}
