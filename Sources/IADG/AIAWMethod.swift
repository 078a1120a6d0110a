// iadg.aiaw — the protocol entry of AIAW (AIAW.swift) and its properties.

import Certification
import Foundation
import Ops
import Tensor

func enumParam<E: RawRepresentable>(_ ctx: Context, _ name: String, _ type: E.Type) throws -> E where E.RawValue == Int {
    let v = try ctx.int(name, default: 0)
    guard let e = E(rawValue: v) else { throw ShapeError("iadg", "param \(name) = \(v) is not a valid option") }
    return e
}

let aiawMethod = Method("iadg.aiaw", properties: aiawProperties) { ctx in
    let mode = try enumParam(ctx, "mask_mode", WhiteningMask.self)
    let fOrg = try ctx.v("f_org"), fAug = try ctx.v("f_aug")
    guard fOrg.value.rank == 4, fOrg.shape == fAug.shape else {
        throw ShapeError("iadg.aiaw", "f_org \(fOrg.shape) and f_aug \(fAug.shape) must both be [B, C, H, W]")
    }
    let c = fOrg.shape[1]
    var out: [String: Var] = [:]
    let maskReal: Tensor, maskFake: Tensor
    switch mode {
    case .selective:
        let so = try ctx.tensor("stat_org"), sa = try ctx.tensor("stat_aug")
        guard so.rank == 6, so.shape[3] == c else {
            throw ShapeError("iadg.aiaw", "stat_org must be [E, T, B, C, H, W] with C = \(c), found \(so.shape)")
        }
        let r = try AIAW.statisticsPasses(org: so, aug: sa, ratioReal: try ctx.double("ratio_real"), ratioFake: try ctx.double("ratio_fake"),
                                          eps: try ctx.double("eps_stat", default: 1e-7),
                                          accumulation: try enumParam(ctx, "accumulation", StatisticsAccumulation.self),
                                          statistic: try enumParam(ctx, "statistic", SelectionStatistic.self))
        maskReal = r.masksReal.last!
        maskFake = r.masksFake.last!
        out["cov_real"] = ctx.constant(r.real.cov!)
        out["cov_fake"] = ctx.constant(r.fake.cov!)
        out["epoch_masks_real"] = ctx.constant(try Tensor.concatenate(r.masksReal.map { try $0.reshaped([1, c, c]) }, axis: 0))
        out["epoch_masks_fake"] = ctx.constant(try Tensor.concatenate(r.masksFake.map { try $0.reshaped([1, c, c]) }, axis: 0))
    case .allOffDiagonal:
        maskReal = AIAW.upperTriangle(c)
        maskFake = maskReal
    case .given:
        (maskReal, maskFake) = (try givenMask(ctx, "mask_real"), try givenMask(ctx, "mask_fake"))
    }
    out["mask_real"] = ctx.constant(maskReal)
    out["mask_fake"] = ctx.constant(maskFake)
    out["num_sensitive_real"] = scalar(ctx, maskReal.sumAll)
    out["num_sensitive_fake"] = scalar(ctx, maskFake.sumAll)
    let eps = try ctx.double("eps_loss", default: 1e-5)
    let divisor = try enumParam(ctx, "divisor", HalfBatchDivisor.self)
    let lo = try AIAW.loss(fOrg, maskReal: maskReal, maskFake: maskFake, eps: eps, divisor: divisor)
    let la = try AIAW.loss(fAug, maskReal: maskReal, maskFake: maskFake, eps: eps, divisor: divisor)
    out["loss_org"] = lo
    out["loss_aug"] = la
    out["loss"] = try lo + la
    return out
}

/// A mask param of mask_mode 2: 0/1 entries (its shape is checked by the loss).
private func givenMask(_ ctx: Context, _ name: String) throws -> Tensor {
    let m = try ctx.tensor(name)
    if let i = m.data.firstIndex(where: { $0 != 0 && $0 != 1 }) {
        throw ShapeError("iadg.aiaw", "\(name) must hold 0/1 entries, found \(m.data[i]) at \(Tensor.unravel(i, shape: m.shape))")
    }
    return m
}

/// The loss value of features f with given masks (a fresh tape).
func aiawLossValue(_ f: Tensor, _ mr: Tensor, _ mf: Tensor, divisor: HalfBatchDivisor = .officialCode) throws -> Double {
    let t = Tape()
    return try AIAW.loss(t.leaf(f), maskReal: mr, maskFake: mf, divisor: divisor).value.data[0]
}

/// A random mask with k strictly upper-triangular ones.
func randomUpperMask(_ rng: inout RNG, c: Int, k: Int) -> Tensor {
    var pos: [Int] = []
    for i in 0..<c { for j in (i + 1)..<Swift.max(i + 1, c) { pos.append(i * c + j) } }
    let p = rng.permutation(pos.count)
    var m = [Double](repeating: 0, count: c * c)
    for i in p.prefix(k) { m[pos[i]] = 1 }
    return Tensor(unchecked: [c, c], m)
}

private func randomSetup(_ rng: inout RNG) -> (f: Tensor, mr: Tensor, mf: Tensor) {
    let b = 2 + rng.int(below: 4), c = 3 + rng.int(below: 6), h = 2 + rng.int(below: 3), w = 1 + rng.int(below: 3)
    let tri = c * (c - 1) / 2
    return (rng.normalTensor([b, c, h, w]), randomUpperMask(&rng, c: c, k: 1 + rng.int(below: tri)),
            randomUpperMask(&rng, c: c, k: 1 + rng.int(below: tri)))
}

/// Permutes axis 0 of a [B, ...] tensor: result[i] = x[p[i]].
func permuteBatch(_ x: Tensor, _ p: [Int]) throws -> Tensor {
    try Tensor.concatenate(p.map { try x.slice(axis: 0, $0..<($0 + 1)) }, axis: 0)
}

let aiawProperties: [Property] = [
    Property("loss_nonnegative_zero_on_disjoint_support") { rng in
        let (f, mr, mf) = randomSetup(&rng)
        let l = try aiawLossValue(f, mr, mf)
        try require(l >= 0, "AIAW = \(l) < 0")
        // channel c lives only on spatial positions ≡ c (mod C): disjoint supports
        let (b, c, h, w) = (f.shape[0], f.shape[1], f.shape[2], f.shape[3])
        var d = f.data
        for s in 0..<b { for ch in 0..<c { for p in 0..<(h * w) where p % c != ch { d[(s * c + ch) * h * w + p] = 0 } } }
        let l0 = try aiawLossValue(Tensor(unchecked: f.shape, d), mr, mf)
        try require(l0 == 0, "AIAW = \(l0) ≠ 0 for channel maps with disjoint support")
    },
    Property("quadratic_homogeneity") { rng in
        let (f, mr, mf) = randomSetup(&rng)
        let a = rng.uniform(-3, 3)
        let l = try aiawLossValue(f, mr, mf), la = try aiawLossValue(f * a, mr, mf)
        try require(Swift.abs(la - a * a * l) <= 1e-12 * Swift.max(1, la), "AIAW(αF) = \(la) vs α²·AIAW(F) = \(a * a * l)")
    },
    Property("batch_order_invariance") { rng in
        let (f, mr, mf) = randomSetup(&rng)
        let b = f.shape[0], half = b / 2
        let pr = rng.permutation(half), pf = rng.permutation(b - half).map { $0 + half }
        let g = try permuteBatch(f, pr + pf)
        let l1 = try aiawLossValue(f, mr, mf), l2 = try aiawLossValue(g, mr, mf)
        try require(Swift.abs(l1 - l2) <= 1e-13 * Swift.max(1, l1), "loss \(l1) vs \(l2) after permuting within classes")
        let aug = rng.normalTensor(f.shape)
        let s1 = try AIAW.pairStatistic(org: f, aug: aug)
        let s2 = try AIAW.pairStatistic(org: try permuteBatch(f, rng.permutation(b)), aug: try permuteBatch(aug, rng.permutation(b)))
        try requireClose(s2, s1, Tolerance(rtol: 1e-11, atol: 1e-13), "batch statistic after permuting the instances")
    },
    Property("joint_channel_permutation") { rng in
        let (f, mr, mf) = randomSetup(&rng)
        let (b, c, hw) = (f.shape[0], f.shape[1], f.shape[2] * f.shape[3])
        let p = rng.permutation(c)  // new channel i = old channel p[i]
        var inv = [Int](repeating: 0, count: c)
        for (i, q) in p.enumerated() { inv[q] = i }
        var d = [Double](repeating: 0, count: f.count)
        for s in 0..<b { for i in 0..<c { for k in 0..<hw { d[(s * c + i) * hw + k] = f.data[(s * c + p[i]) * hw + k] } } }
        func move(_ m: Tensor) -> Tensor {
            var o = [Double](repeating: 0, count: c * c)
            for i in 0..<c { for j in 0..<c where m.data[i * c + j] != 0 {
                let (a, bb) = (inv[i], inv[j])
                o[Swift.min(a, bb) * c + Swift.max(a, bb)] = 1
            } }
            return Tensor(unchecked: [c, c], o)
        }
        let l1 = try aiawLossValue(f, mr, mf), l2 = try aiawLossValue(Tensor(unchecked: f.shape, d), move(mr), move(mf))
        try require(Swift.abs(l1 - l2) <= 1e-13 * Swift.max(1, l1), "loss \(l1) vs \(l2) after a joint channel permutation")
    },
    Property("mask_structure") { rng in
        let c = 4 + rng.int(below: 10), b = 2 * (1 + rng.int(below: 3))
        let shape = [1, 1 + rng.int(below: 3), b, c, 2, 1 + rng.int(below: 3)]
        let org = rng.normalTensor(shape), aug = try org * rng.uniform(0.5, 2) + rng.normalTensor(shape)
        // ratios from whole k's (k + ½)/C², so that int(ratio·C²) = k without rounding doubts
        let tri = c * (c - 1) / 2
        let kr = 1 + rng.int(below: tri), kf = 1 + rng.int(below: Swift.max(1, kr / 3))
        let (rr, rf) = ((Double(kr) + 0.5) / Double(c * c), (Double(kf) + 0.5) / Double(c * c))
        let r = try AIAW.statisticsPasses(org: org, aug: aug, ratioReal: rr, ratioFake: rf)
        for (m, k, name) in [(r.masksReal[0], kr, "real"), (r.masksFake[0], kf, "fake")] {
            try require(AIAW.numSensitive(ratio: name == "real" ? rr : rf, dim: c) == k, "int(ratio·C²) ≠ \(k)")
            try require(m.sumAll == Double(k), "\(name) mask has \(m.sumAll) entries, expected \(k)")
            for i in 0..<c { for j in 0...i { try require(m.data[i * c + j] == 0, "\(name) mask selects (\(i), \(j)) on/below the diagonal") } }
        }
        let scaled = try AIAW.topkMask(r.real.cov!.map { $0 * 7.25 }, k: kr)
        try require(scaled == r.masksReal[0], "scaling the statistic by 7.25 changed the mask")
    },
    Property("gradient_closed_form") { rng in
        let (f, mr, mf) = randomSetup(&rng)
        let t = Tape()
        let fv = t.leaf(f)
        let gTape = try t.gradients(of: try AIAW.loss(fv, maskReal: mr, maskFake: mf), wrt: [fv])[0]
        let (b, c, hw) = (f.shape[0], f.shape[1], f.shape[2] * f.shape[3])
        let half = b / 2
        let g = try AIAW.gram(f, eps: 1e-5)
        var expected = [Double](repeating: 0, count: f.count)
        for s in 0..<b {
            let m = s < half ? mr : mf
            let cb = 1 / (2 * m.sumAll * Double(b - half) * Double(hw - 1))
            var sym = [Double](repeating: 0, count: c * c)
            for i in 0..<c { for j in 0..<c {
                let gij = g.data[(s * c + i) * c + j]
                let sij = m.data[i * c + j] * (gij > 0 ? 1 : (gij < 0 ? -1 : 0))
                sym[i * c + j] += sij
                sym[j * c + i] += sij
            } }
            for i in 0..<c { for k in 0..<hw {
                var acc = 0.0
                for j in 0..<c { acc += sym[i * c + j] * f.data[(s * c + j) * hw + k] }
                expected[(s * c + i) * hw + k] = cb * acc
            } }
        }
        try requireClose(gTape, Tensor(unchecked: f.shape, expected), Tolerance(rtol: 1e-11, atol: 1e-14), "∂AIAW/∂F vs c(S + Sᵀ)F")
    },
]
