// ROAD's noisy linear imputation (Rong, Leemann, Borisov, Kasneci & Kasneci, "A Consistent and Efficient
// Evaluation Strategy for Attribution Methods", ICML 2022, §4; official repository tleemann/road_evaluation,
// road/imputations.py NoisyLinearImputer, read for the weights and the noise, no code copied).
//
// Removing pixels by writing one constant lets a retrained model read the label off the *shape* of the
// mask ("class information leakage"). ROAD fills every removed pixel with the weighted mean of its 8
// neighbours instead, all removed pixels at once, as the solution of one sparse linear system, and then
// adds independent noise to each removed pixel so that the imputation is not itself a tell-tale pattern.
//
// Per plane (one [H, W] image channel with its kept indicator), for every removed pixel p:
//     s_p · x_p − Σ_{removed q ∈ N(p)} w_pq · x_q = Σ_{kept q ∈ N(p)} w_pq · v_q,
//     w = 1/6 for the 4 direct and 1/12 for the 4 diagonal neighbours, s_p = Σ_{q ∈ N(p) in the image} w_pq,
// i.e. x_p = the weighted mean of its in-image neighbours (ROAD renormalises by the in-image weights at the
// border, as here). Output: x on kept pixels (bit for bit), solution + noise on removed pixels.
// The matrix diag(s) − W_RR is symmetric (w_pq = w_qp) and, when the plane keeps at least one pixel,
// positive definite (every 8-connected component of removed pixels touches a kept pixel, because the grid
// is connected); it is solved by a banded Cholesky factorisation (unknowns in row-major order, bandwidth
// ≤ W + 1), a direct solve.
// Certify's choices (ROAD does not need them or does otherwise), each a documented parameter:
//   - the kept indicator is per coordinate, so each channel plane has its own mask (ROAD: one mask per
//     pixel shared by the channels; for the suite's one-channel images the two coincide);
//   - a plane that keeps no pixel has a singular system (ROAD's spsolve fails); every pixel of it is
//     `fallback` + noise (the pipeline passes the constant fill, the mean of the training tensor);
//   - the noise is an input: the pipeline draws σ·N(0, 1) from the suite's seeded RNG (ROAD: torch.randn
//     with σ = 0.01 absolute, on normalised images); σ is `--road-noise`.

import Certification
import Foundation
import Tensor

public enum NoisyLinearImputation {
    /// Weights of the 8 neighbours: (row offset, column offset, weight).
    public static let neighbours: [(Int, Int, Double)] = [
        (-1, -1, 1.0 / 12), (-1, 0, 1.0 / 6), (-1, 1, 1.0 / 12),
        (0, -1, 1.0 / 6), (0, 1, 1.0 / 6),
        (1, -1, 1.0 / 12), (1, 0, 1.0 / 6), (1, 1, 1.0 / 12),
    ]

    /// Imputes one plane in place: `x` [H·W] (kept values; removed values are overwritten), `kept` [H·W]
    /// (nonzero = kept), `noise` [H·W] (added on removed pixels). Scratch buffers are reused.
    static func imputePlane(_ x: UnsafeMutableBufferPointer<Double>, kept: UnsafeBufferPointer<Double>,
                            noise: UnsafeBufferPointer<Double>, h: Int, w: Int, fallback: Double,
                            scratch: inout Scratch) {
        var index = scratch.index, band0 = scratch.band, rhs0 = scratch.rhs
        scratch = Scratch(planeSize: 0)
        defer { scratch.index = index; scratch.band = band0; scratch.rhs = rhs0 }
        let n = h * w
        var unknowns = 0
        for p in 0..<n {
            if kept[p] != 0 { index[p] = -1 } else { index[p] = unknowns; unknowns += 1 }
        }
        if unknowns == 0 { return }
        if unknowns == n {
            for p in 0..<n { x[p] = fallback + noise[p] }
            return
        }
        let b = w + 1
        let bs = b + 1
        // band[i·stride + (i − j)] = A[i][j] for j ∈ [i − b, i]; rhs[i]
        band0.removeAll(keepingCapacity: true)
        band0.append(contentsOf: repeatElement(0, count: unknowns * bs))
        rhs0.removeAll(keepingCapacity: true)
        rhs0.append(contentsOf: repeatElement(0, count: unknowns))
        band0.withUnsafeMutableBufferPointer { band in
            rhs0.withUnsafeMutableBufferPointer { rhs in
                for p in 0..<n where kept[p] == 0 {
                    let i = index[p]
                    let (r, c) = (p / w, p % w)
                    var s = 0.0, acc = 0.0
                    for (dr, dc, wt) in neighbours {
                        let (rr, cc) = (r + dr, c + dc)
                        guard rr >= 0, rr < h, cc >= 0, cc < w else { continue }
                        s += wt
                        let q = rr * w + cc
                        if kept[q] != 0 {
                            acc += wt * x[q]
                        } else {
                            let j = index[q]
                            if j < i { band[i * bs + (i - j)] = -wt }
                        }
                    }
                    band[i * bs] = s
                    rhs[i] = acc
                }
                // banded Cholesky A = L·Lᵀ, L stored over A's lower band
                for j in 0..<unknowns {
                    var d = band[j * bs]
                    let lo = Swift.max(0, j - b)
                    for k in lo..<j { let l = band[j * bs + (j - k)]; d -= l * l }
                    let ljj = d.squareRoot()
                    band[j * bs] = ljj
                    let hi = Swift.min(unknowns - 1, j + b)
                    if j + 1 <= hi {
                        for i in (j + 1)...hi {
                            var v = band[i * bs + (i - j)]
                            let lo2 = Swift.max(0, i - b)
                            if lo2 < j { for k in lo2..<j { v -= band[i * bs + (i - k)] * band[j * bs + (j - k)] } }
                            band[i * bs + (i - j)] = v / ljj
                        }
                    }
                }
                // L y = rhs
                for i in 0..<unknowns {
                    var v = rhs[i]
                    let lo = Swift.max(0, i - b)
                    for k in lo..<i { v -= band[i * bs + (i - k)] * rhs[k] }
                    rhs[i] = v / band[i * bs]
                }
                // Lᵀ x = y
                for i in stride(from: unknowns - 1, through: 0, by: -1) {
                    var v = rhs[i]
                    let hi = Swift.min(unknowns - 1, i + b)
                    if i + 1 <= hi { for k in (i + 1)...hi { v -= band[k * bs + (k - i)] * rhs[k] } }
                    rhs[i] = v / band[i * bs]
                }
                for p in 0..<n where kept[p] == 0 { x[p] = rhs[index[p]] + noise[p] }
            }
        }
    }

    struct Scratch {
        var index: [Int]
        var band: [Double] = []
        var rhs: [Double] = []
        init(planeSize: Int) { index = [Int](repeating: 0, count: planeSize) }
    }

    /// Imputes x ([n, …, H, W], rank ≥ 2; the last two axes are the image plane) where `kept` is 0.
    /// `noise` has x's shape and is added on removed coordinates only. `jobs` planes run concurrently.
    public static func impute(x: Tensor, kept: Tensor, noise: Tensor, fallback: Double, jobs: Int = 1) throws -> Tensor {
        guard x.rank >= 2 else { throw ShapeError("ROAD", "images need two trailing image axes [.., H, W], found \(x.shape)") }
        guard kept.shape == x.shape, noise.shape == x.shape else {
            throw ShapeError("ROAD", "kept \(kept.shape) and noise \(noise.shape) must match x \(x.shape)")
        }
        if let bad = x.data.firstIndex(where: { !$0.isFinite }) ?? noise.data.firstIndex(where: { !$0.isFinite }) {
            throw ShapeError("ROAD", "non-finite value at flat index \(bad) of x or noise")
        }
        guard fallback.isFinite else { throw ShapeError("ROAD", "fallback \(fallback) is not finite") }
        let (h, w) = (x.shape[x.rank - 2], x.shape[x.rank - 1])
        let plane = h * w
        let planes = plane == 0 ? 0 : x.count / plane
        let buf = UnsafeMutableBufferPointer<Double>.allocate(capacity: x.count)
        _ = buf.initialize(from: x.data)
        defer { buf.deallocate() }
        let chunks = Swift.max(1, Swift.min(jobs, planes))
        let per = (planes + chunks - 1) / Swift.max(chunks, 1)
        let box = UnsafeShared(buf)
        _ = try kept.data.withUnsafeBufferPointer { pk in
            try noise.data.withUnsafeBufferPointer { pn in
                let (pk, pn) = (UnsafeShared(pk), UnsafeShared(pn))
                return try parallelMap(Array(0..<chunks), jobs: chunks) { c in
                    var scratch = Scratch(planeSize: plane)
                    for q in (c * per)..<Swift.min(planes, (c + 1) * per) {
                        let o = q * plane
                        imputePlane(UnsafeMutableBufferPointer(rebasing: box.value[o..<(o + plane)]),
                                    kept: UnsafeBufferPointer(rebasing: pk.value[o..<(o + plane)]),
                                    noise: UnsafeBufferPointer(rebasing: pn.value[o..<(o + plane)]),
                                    h: h, w: w, fallback: fallback, scratch: &scratch)
                    }
                    return 0
                }
            }
        }
        return Tensor(unchecked: x.shape, Array(buf))
    }
}

/// A pointer shared across the workers of `impute`, each writing disjoint planes.
struct UnsafeShared<P>: @unchecked Sendable {
    let value: P
    init(_ v: P) { value = v }
}

/// How DiffROAR fills the coordinates a mask removes.
public enum MaskingScheme: Sendable, Equatable {
    /// One constant (the official code: the mean of the training tensor).
    case constant(Double)
    /// ROAD's noisy linear imputation with noise σ·N(0, 1) from RNG(seed) (one stream per split, level and
    /// arm); `fallback` fills a plane that keeps nothing.
    case noisyLinear(sigma: Double, fallback: Double, seed: UInt64)

    public var name: String {
        switch self {
        case .constant: return "constant"
        case .noisyLinear: return "road"
        }
    }

    public var description: String {
        switch self {
        case .constant(let v): return "constant \(v) (mean of the training tensor)"
        case .noisyLinear(let s, let f, let seed):
            return "ROAD noisy linear imputation (8-neighbour weights 1/6 direct, 1/12 diagonal, renormalised at the border; sparse direct solve per plane), noise σ = \(s)·N(0, 1) from RNG(\(seed) + stream), fallback \(f) for a plane that keeps nothing"
        }
    }

    /// Applies the scheme to a masked split. `stream` separates the noise of splits, levels and arms.
    public func apply(x: Tensor, kept: Tensor, constantMasked: Tensor, stream: UInt64, jobs: Int = 1) throws -> Tensor {
        switch self {
        case .constant: return constantMasked
        case .noisyLinear(let sigma, let fallback, let seed):
            var rng = RNG(seed: seed &+ stream &* 0x9E37_79B9_7F4A_7C15)
            let noise = sigma == 0 ? Tensor(unchecked: x.shape, [Double](repeating: 0, count: x.count))
                                   : Tensor(unchecked: x.shape, (0..<x.count).map { _ in sigma * rng.normal() })
            return try NoisyLinearImputation.impute(x: x, kept: kept, noise: noise, fallback: fallback, jobs: jobs)
        }
    }
}

// MARK: - Protocol entry

/// A random 0/1 kept indicator with at least one kept coordinate per plane.
func roadRandomKept(_ shape: [Int], p: Double, rng: inout RNG) -> Tensor {
    let (h, w) = (shape[shape.count - 2], shape[shape.count - 1])
    var k = (0..<shape.reduce(1, *)).map { _ in rng.bernoulli(p) ? 1.0 : 0.0 }
    for q in 0..<(k.count / (h * w)) where !k[(q * h * w)..<((q + 1) * h * w)].contains(1) { k[q * h * w + rng.int(below: h * w)] = 1 }
    return Tensor(unchecked: shape, k)
}

let roadMethod = Method("input_gradients.road", properties: [
    Property("kept_unchanged") { rng in
        let shape = [1 + rng.int(below: 3), 2 + rng.int(below: 9), 2 + rng.int(below: 9)]
        let x = rng.normalTensor(shape), kept = roadRandomKept(shape, p: rng.uniform(0.05, 0.9), rng: &rng)
        let out = try NoisyLinearImputation.impute(x: x, kept: kept, noise: rng.normalTensor(shape), fallback: 0)
        for j in 0..<x.count where kept.data[j] != 0 {
            try require(out.data[j].bitPattern == x.data[j].bitPattern, "kept coordinate \(j) changed: \(x.data[j]) → \(out.data[j])")
        }
    },
    Property("linear_image_exact_in_interior") { rng in
        // removed pixels only off the border: every one has its 8 neighbours, and the weighted mean of a
        // linear image over a symmetric neighbourhood is its centre value
        let (h, w) = (3 + rng.int(below: 10), 3 + rng.int(below: 10))
        let (a, br, bc) = (rng.normal(), rng.normal(), rng.normal())
        let x = Tensor(unchecked: [1, h, w], (0..<(h * w)).map { p in a + br * Double(p / w) + bc * Double(p % w) })
        let kept = Tensor(unchecked: [1, h, w], (0..<(h * w)).map { p in
            let (r, c) = (p / w, p % w)
            return r == 0 || c == 0 || r == h - 1 || c == w - 1 || rng.bernoulli(0.2) ? 1.0 : 0.0
        })
        let sigma = rng.uniform(0, 0.1)
        let noise = rng.normalTensor([1, h, w]) * sigma
        let out = try NoisyLinearImputation.impute(x: x, kept: kept, noise: noise, fallback: 0)
        let scale = x.data.map { Swift.abs($0) }.max() ?? 1
        for p in 0..<(h * w) where kept.data[p] == 0 {
            try require(Swift.abs(out.data[p] - noise.data[p] - x.data[p]) <= 1e-11 * Swift.max(scale, 1),
                        "pixel \(p / w),\(p % w): imputed \(out.data[p] - noise.data[p]), linear image \(x.data[p])")
        }
    },
    Property("constant_image_exact") { rng in
        let shape = [1 + rng.int(below: 2), 2 + rng.int(below: 8), 2 + rng.int(below: 8)]
        let v = rng.normal()
        let x = Tensor(unchecked: shape, [Double](repeating: v, count: shape.reduce(1, *)))
        let kept = roadRandomKept(shape, p: rng.uniform(0.01, 0.5), rng: &rng)
        let out = try NoisyLinearImputation.impute(x: x, kept: kept, noise: x * 0, fallback: v + 7)
        try require(out.data.allSatisfy { Swift.abs($0 - v) <= 1e-12 * Swift.max(1, Swift.abs(v)) }, "a constant image \(v) is not imputed exactly")
    },
    Property("weighted_mean_of_neighbours") { rng in
        // the definition itself, checked on the output (independent of the solver)
        let (h, w) = (2 + rng.int(below: 9), 2 + rng.int(below: 9))
        let x = rng.normalTensor([1, h, w]), kept = roadRandomKept([1, h, w], p: rng.uniform(0.05, 0.8), rng: &rng)
        let out = try NoisyLinearImputation.impute(x: x, kept: kept, noise: x * 0, fallback: 0)
        for p in 0..<(h * w) where kept.data[p] == 0 {
            var s = 0.0, acc = 0.0
            for (dr, dc, wt) in NoisyLinearImputation.neighbours {
                let (r, c) = (p / w + dr, p % w + dc)
                guard r >= 0, r < h, c >= 0, c < w else { continue }
                s += wt
                acc += wt * out.data[r * w + c]
            }
            try require(Swift.abs(out.data[p] - acc / s) <= 1e-11, "pixel \(p): \(out.data[p]) vs neighbour mean \(acc / s)")
        }
    },
    Property("maximum_principle") { rng in
        let shape = [1, 2 + rng.int(below: 9), 2 + rng.int(below: 9)]
        let x = rng.normalTensor(shape), kept = roadRandomKept(shape, p: rng.uniform(0.05, 0.8), rng: &rng)
        let out = try NoisyLinearImputation.impute(x: x, kept: kept, noise: x * 0, fallback: 0)
        let kv = (0..<x.count).filter { kept.data[$0] != 0 }.map { x.data[$0] }
        let (lo, hi) = (kv.min()!, kv.max()!)
        try require(out.data.allSatisfy { $0 >= lo - 1e-12 && $0 <= hi + 1e-12 }, "an imputed value leaves [\(lo), \(hi)] of the kept values")
    },
    Property("noise_is_additive") { rng in
        let shape = [1 + rng.int(below: 2), 2 + rng.int(below: 7), 2 + rng.int(below: 7)]
        let x = rng.normalTensor(shape), kept = roadRandomKept(shape, p: rng.uniform(0.05, 0.8), rng: &rng)
        let noise = rng.normalTensor(shape)
        let a = try NoisyLinearImputation.impute(x: x, kept: kept, noise: noise, fallback: 0)
        let b = try NoisyLinearImputation.impute(x: x, kept: kept, noise: x * 0, fallback: 0)
        for j in 0..<x.count {
            let expect = kept.data[j] != 0 ? 0 : noise.data[j]
            try require(Swift.abs(a.data[j] - b.data[j] - expect) <= 1e-12 * (1 + Swift.abs(b.data[j])), "coordinate \(j): noise not additive")
        }
    },
    Property("nothing_kept_falls_back") { rng in
        let shape = [1, 2 + rng.int(below: 5), 2 + rng.int(below: 5)]
        let x = rng.normalTensor(shape), noise = rng.normalTensor(shape)
        let f = rng.normal()
        let out = try NoisyLinearImputation.impute(x: x, kept: x * 0, noise: noise, fallback: f)
        try require(zip(out.data, noise.data).allSatisfy { $0 == f + $1 }, "a plane with no kept pixel is not fallback + noise")
    },
]) { ctx in
    let x = try ctx.tensor("x"), kept = try ctx.tensor("kept"), noise = try ctx.tensor("noise")
    return ["imputed": ctx.constant(try NoisyLinearImputation.impute(x: x, kept: kept, noise: noise, fallback: ctx.double("fallback")))]
}

extension MaskingScheme {
    /// The constant written by the plain masking step (the ROAD fallback for the noisy linear scheme).
    var constantValue: Double {
        switch self {
        case .constant(let v): return v
        case .noisyLinear(_, let f, _): return f
        }
    }
}
