// Asymmetric Instance Adaptive Whitening (AIAW), IADG §3.3 (L_AIAW with selective masks M_r, M_s and the
// real:spoof ratio k_r : k_s).
//
// Official code:
//   statistics  models/framework.py Shader.forward(cal_covstat=True): per class, the Gram matrices of the
//               org and aug views of its half of the batch, G = F Fᵀ/(HW−1) + 1e-7·I, strict upper triangle,
//               torch.var over the 2·B_cls matrices (unbiased); utils/cov_settings.py set_pair_covariance
//               accumulates Σ V and a batch count that are NEVER reset, set_mask_matrix overwrites the sum
//               by its average and takes topk(k = int(ratio·C²)) of the flattened C×C statistic;
//   loss        losses/aiaw_loss.py AIAWLoss: G = F Fᵀ/(HW−1) + 1e-5·I per sample,
//               L_cls = Σ_b clamp(Σ|G_b ⊙ M_cls| − 0, 0)/k_cls / B, AIAW = (L_real + L_fake)/2,
//               B the size of the fake half (it overwrites the real half's B).
// The halves are positional: real = f[:⌊B/2⌋], fake = f[⌊B/2⌋:] (train.py mix_pos_neg puts reals first).

import Foundation
import Ops
import Tensor

/// How the per-batch statistics are accumulated into the ranking statistic.
public enum StatisticsAccumulation: Int, Sendable, CaseIterable {
    /// The code: the sum and the batch count are never reset; each epoch the sum is overwritten by
    /// its average, so epoch e ranks (A_{e−1} + Σ_batches V)/(all batches so far).
    case officialCode = 0
    /// A fresh average per epoch (what resetting the statistics with the mask would give).
    case perEpoch = 1
}

/// The statistic of the covariance entries across the org/aug views that selects the mask.
public enum SelectionStatistic: Int, Sendable, CaseIterable {
    /// The code: the unbiased variance (torch.var).
    case officialCode = 0
    /// The paper's wording, "standard deviation": the square root of each batch's variance, then accumulated.
    case paperStd = 1
}

/// The B that divides each class's sum in the loss.
public enum HalfBatchDivisor: Int, Sendable, CaseIterable {
    /// The code: the fake half's size for both classes (get_covariance_matrix's B is overwritten).
    case officialCode = 0
    /// Each class divided by its own half's size (the mean over the class's instances).
    case ownHalf = 1
}

/// Which covariance entries are whitened.
public enum WhiteningMask: Int, Sendable, CaseIterable {
    /// AIAW: the top-k selective masks from the statistics, k_r = int(ratio_r·C²), k_s = int(ratio_s·C²).
    case selective = 0
    /// The plain instance-whitening baseline (RobustNet's IW loss form): every strictly upper-triangular
    /// entry, k = C(C−1)/2, for both classes.
    case allOffDiagonal = 1
    /// Masks given by the caller (params mask_real, mask_fake: 0/1 entries, [C, C], any positions), for
    /// checking an AIAW loss against masks of one's own without constructing statistics that select them.
    case given = 2
}

public enum AIAW {
    /// G_b = F_b F_bᵀ/(HW − 1) + eps·I for every sample of f [B, C, H, W]; returns [B, C, C].
    public static func gram(_ f: Tensor, eps: Double) throws -> Tensor {
        guard f.rank == 4 else { throw ShapeError("aiaw.gram", "features must be [B, C, H, W], found \(f.shape)") }
        let (b, c, hw) = (f.shape[0], f.shape[1], f.shape[2] * f.shape[3])
        guard hw > 1 else { throw ShapeError("aiaw.gram", "needs H·W > 1 (the normaliser is HW − 1), found \(f.shape)") }
        let fr = try f.reshaped([b, c, hw])
        var g = try Tensor.matmul(fr, fr, transposeB: true)
        let inv = 1.0 / Double(hw - 1)
        g.data.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count { p[i] = p[i] * inv }
            for s in 0..<b { for i in 0..<c { p[(s * c + i) * c + i] += eps } }
        }
        return g
    }

    /// One batch's statistic for one class: the unbiased variance, across the 2·B_cls Gram matrices of
    /// cat(org, aug), of each strictly upper-triangular entry (zero on and below the diagonal).
    public static func pairStatistic(org: Tensor, aug: Tensor, eps: Double = 1e-7,
                                     statistic: SelectionStatistic = .officialCode) throws -> Tensor {
        guard org.shape == aug.shape else {
            throw ShapeError("aiaw.statistics", "org \(org.shape) and aug \(aug.shape) views differ in shape")
        }
        let s = try Tensor.concatenate([org, aug], axis: 0)
        let n = s.shape[0], c = s.shape[1]
        guard n >= 2 else { throw ShapeError("aiaw.statistics", "the variance needs at least 2 matrices, found \(n)") }
        let g = try gram(s, eps: eps)
        var v = [Double](repeating: 0, count: c * c)
        g.data.withUnsafeBufferPointer { p in
            for i in 0..<c {
                for j in (i + 1)..<Swift.max(i + 1, c) {
                    var mean = 0.0
                    for k in 0..<n { mean += p[(k * c + i) * c + j] }
                    mean /= Double(n)
                    var ss = 0.0
                    for k in 0..<n { let d = p[(k * c + i) * c + j] - mean; ss += d * d }
                    let variance = ss / Double(n - 1)
                    v[i * c + j] = statistic == .paperStd ? variance.squareRoot() : variance
                }
            }
        }
        return Tensor(unchecked: [c, c], v)
    }

    /// int(ratio · C²) as the code computes it (Python's int truncates).
    public static func numSensitive(ratio: Double, dim: Int) -> Int { Int(ratio * Double(dim * dim)) }

    /// 1 at the k largest entries of the flattened statistic, 0 elsewhere (torch.topk; ties, whose
    /// order PyTorch leaves unspecified, go to the lower flat index here).
    public static func topkMask(_ stat: Tensor, k: Int) throws -> Tensor {
        guard k >= 1 && k <= stat.count else {
            throw ShapeError("aiaw.topk", "k = \(k) must lie in 1...\(stat.count) (C² entries)")
        }
        let d = stat.data
        let order = d.indices.sorted { d[$0] > d[$1] || (d[$0] == d[$1] && $0 < $1) }
        var m = [Double](repeating: 0, count: d.count)
        for i in order.prefix(k) { m[i] = 1 }
        return Tensor(unchecked: stat.shape, m)
    }

    /// The strict upper triangle (the IW baseline's mask).
    public static func upperTriangle(_ c: Int) -> Tensor {
        var m = [Double](repeating: 0, count: c * c)
        for i in 0..<c { for j in (i + 1)..<Swift.max(i + 1, c) { m[i * c + j] = 1 } }
        return Tensor(unchecked: [c, c], m)
    }

    /// The covariance-statistics accumulator of one class (utils/cov_settings.py CovMatrix_AIAW_*).
    public struct CovarianceStatistics: Sendable {
        public var dim: Int
        public var ratio: Double
        public var accumulation: StatisticsAccumulation
        public private(set) var cov: Tensor?
        public private(set) var count = 0
        public private(set) var mask: Tensor?

        public init(dim: Int, ratio: Double, accumulation: StatisticsAccumulation = .officialCode) {
            self.dim = dim
            self.ratio = ratio
            self.accumulation = accumulation
        }

        /// reset_mask_matrix (and, for `.perEpoch`, a fresh sum and count).
        public mutating func beginEpoch() {
            mask = nil
            if accumulation == .perEpoch {
                cov = nil
                count = 0
            }
        }

        /// set_pair_covariance: adds one batch's statistic.
        public mutating func add(_ v: Tensor) throws {
            guard v.shape == [dim, dim] else { throw ShapeError("aiaw.statistics", "statistic \(v.shape), expected [\(dim), \(dim)]") }
            cov = try cov.map { try $0 + v } ?? v
            count += 1
        }

        /// set_mask_matrix: the sum is overwritten by its average and the top-k mask is taken.
        @discardableResult
        public mutating func setMask() throws -> Tensor {
            guard let c = cov, count > 0 else { throw ShapeError("aiaw.statistics", "no statistics accumulated before set_mask") }
            let avg = c.map { $0 / Double(count) }
            cov = avg
            let m = try AIAW.topkMask(avg, k: AIAW.numSensitive(ratio: ratio, dim: dim))
            mask = m
            return m
        }
    }

    /// The AIAW loss of one feature set f [B, C, H, W] (reals first), with constant masks:
    /// (L_real + L_fake)/2, L_cls = Σ_{b ∈ cls} Σ_ij |G_b ⊙ M_cls|_ij / k_cls / B_div.
    /// k_cls = Σ M_cls (num_sensitive). The clamp at margin 0 is the identity on these non-negative sums.
    public static func loss(_ f: Var, maskReal: Tensor, maskFake: Tensor, eps: Double = 1e-5,
                            divisor: HalfBatchDivisor = .officialCode) throws -> Var {
        guard f.value.rank == 4 else { throw ShapeError("aiaw.loss", "features must be [B, C, H, W], found \(f.shape)") }
        let (b, c, hw) = (f.shape[0], f.shape[1], f.shape[2] * f.shape[3])
        guard b >= 2 else { throw ShapeError("aiaw.loss", "needs a real and a fake half, batch is \(b)") }
        guard hw > 1 else { throw ShapeError("aiaw.loss", "needs H·W > 1 (the normaliser is HW − 1), found \(f.shape)") }
        for (name, m) in [("mask_real", maskReal), ("mask_fake", maskFake)] where m.shape != [c, c] {
            throw ShapeError("aiaw.loss", "\(name) has shape \(m.shape), expected [\(c), \(c)]")
        }
        let half = b / 2
        let kr = maskReal.sumAll, kf = maskFake.sumAll
        guard kr > 0 && kf > 0 else { throw ShapeError("aiaw.loss", "a mask selects no entry (k_real \(kr), k_fake \(kf))") }
        let divReal = Double(divisor == .officialCode ? b - half : half), divFake = Double(b - half)
        // per-sample weights: M_cls/(k_cls · B_div · 2)
        var w = [Double](repeating: 0, count: b * c * c)
        for s in 0..<b {
            let (m, scale) = s < half ? (maskReal, 1 / (kr * divReal * 2)) : (maskFake, 1 / (kf * divFake * 2))
            for i in 0..<(c * c) { w[s * c * c + i] = m.data[i] * scale }
        }
        let tape = f.tape
        let fr = try reshape(f, [b, c, hw])
        let g = try matmul(fr, try permute(fr, [0, 2, 1])) * (1.0 / Double(hw - 1))
        var eye = [Double](repeating: 0, count: c * c)
        for i in 0..<c { eye[i * c + i] = eps }
        let gEps = try g + tape.constant(Tensor(unchecked: [c, c], eye))
        let absG = unary(gEps, { Swift.abs($0) }, derivative: { x, _ in x > 0 ? 1 : (x < 0 ? -1 : 0) })
        return try sum(try absG * tape.constant(Tensor(unchecked: [b, c, c], w)))
    }

    /// Runs the statistics passes of E epochs × T batches (org/aug features [E, T, B, C, H, W]) through
    /// the two class accumulators, as train.py does before each epoch's training; returns the masks of
    /// every epoch and the final accumulators.
    public static func statisticsPasses(org: Tensor, aug: Tensor, ratioReal: Double, ratioFake: Double, eps: Double = 1e-7,
                                        accumulation: StatisticsAccumulation = .officialCode,
                                        statistic: SelectionStatistic = .officialCode) throws
        -> (real: CovarianceStatistics, fake: CovarianceStatistics, masksReal: [Tensor], masksFake: [Tensor]) {
        guard org.rank == 6, org.shape == aug.shape else {
            throw ShapeError("aiaw.statistics", "org/aug statistics features must both be [E, T, B, C, H, W], found \(org.shape) and \(aug.shape)")
        }
        let (e, t, b, c) = (org.shape[0], org.shape[1], org.shape[2], org.shape[3])
        guard b >= 2 else { throw ShapeError("aiaw.statistics", "batches need a real and a fake half, B = \(b)") }
        let half = b / 2
        var real = CovarianceStatistics(dim: c, ratio: ratioReal, accumulation: accumulation)
        var fake = CovarianceStatistics(dim: c, ratio: ratioFake, accumulation: accumulation)
        var mr: [Tensor] = [], mf: [Tensor] = []
        let per = Array(org.shape[2...])
        for ei in 0..<e {
            real.beginEpoch()
            fake.beginEpoch()
            for ti in 0..<t {
                let o = try org.slice(axis: 0, ei..<(ei + 1)).slice(axis: 1, ti..<(ti + 1)).reshaped(per)
                let a = try aug.slice(axis: 0, ei..<(ei + 1)).slice(axis: 1, ti..<(ti + 1)).reshaped(per)
                try real.add(try pairStatistic(org: o.slice(axis: 0, 0..<half), aug: a.slice(axis: 0, 0..<half), eps: eps, statistic: statistic))
                try fake.add(try pairStatistic(org: o.slice(axis: 0, half..<b), aug: a.slice(axis: 0, half..<b), eps: eps, statistic: statistic))
            }
            mr.append(try real.setMask())
            mf.append(try fake.setMask())
        }
        return (real, fake, mr, mf)
    }
}
