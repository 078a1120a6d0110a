// Top-k / bottom-k unmasking for DiffROAR (NeurIPS 2021 §3, Eq. 2; official code
// scripts/saliency_utils.py::get_attribution_indices and scripts/misc_utils.py::get_masked_data).
//
// Every value of x (each channel value of each pixel) is its own coordinate: x and A are flattened
// per example to D = x.count / n. Coordinates are ranked by |A| in one total "priority order":
// |A| descending, ties by flat index ascending (the official code uses NumPy's unstable quicksort,
// so its ties are arbitrary; this order is Certify's documented choice). With m = the masked count
// computed as the code does, round_half_even((1 − k)·D) (Python 3 `round` on the Float64 product),
// and K = D − m kept coordinates:
//   keep top-k    keeps priority[0..<K]      (the code's file "bottom": the m least important masked)
//   keep bottom-k keeps priority[D−K..<D]    (the code's file "top": the m most important masked)
// Masked coordinates are set to one scalar `fill` (the code: the mean of the whole normalised
// training tensor). Using one order for both arms makes the kept sets of top-k and bottom-k′
// disjoint whenever K + K′ ≤ D, even with ties.

import Certification
import Foundation
import Tensor

/// Which coordinates a masked dataset keeps.
public enum KeptCoordinates: String, Sendable, CaseIterable {
    /// The k fraction with the largest |attribution|.
    case top
    /// The k fraction with the smallest |attribution|.
    case bottom
}

public enum AttributionMasking {
    /// Masked count of the official code: round_half_even((1 − k)·D). Throws unless 0 < k ≤ 1.
    public static func maskedCount(k: Double, dimension d: Int) throws -> Int {
        guard k.isFinite, k > 0, k <= 1 else { throw ShapeError("DiffROAR", "k = \(k) is outside (0, 1] (k is the kept fraction)") }
        return Int(((1.0 - k) * Double(d)).rounded(.toNearestOrEven))
    }

    /// Kept count K = D − maskedCount.
    public static func keptCount(k: Double, dimension d: Int) throws -> Int { d - (try maskedCount(k: k, dimension: d)) }

    /// The priority order of one example's attributions: |a| descending, ties by index ascending.
    public static func priorityOrder(_ a: UnsafeBufferPointer<Double>) -> [Int] {
        var idx = Array(0..<a.count)
        let mag = a.map { Swift.abs($0) }
        idx.sort { i, j in mag[i] > mag[j] || (mag[i] == mag[j] && i < j) }
        return idx
    }

    /// Priority orders of every example ([n, D] flat indices as Int).
    public static func priorityOrders(_ attributions: Tensor) throws -> [[Int]] {
        guard attributions.rank >= 1, attributions.shape[0] > 0 else {
            throw ShapeError("DiffROAR", "attributions need a leading example axis, found \(attributions.shape)")
        }
        if let bad = attributions.data.firstIndex(where: { !$0.isFinite }) {
            throw ShapeError("DiffROAR", "attribution \(attributions.data[bad]) at index \(Tensor.unravel(bad, shape: attributions.shape)) is not finite")
        }
        let n = attributions.shape[0], d = attributions.count / n
        return attributions.data.withUnsafeBufferPointer { p in
            (0..<n).map { i in priorityOrder(UnsafeBufferPointer(rebasing: p[(i * d)..<((i + 1) * d)])) }
        }
    }

    /// The kept positions of one priority order.
    @inline(__always)
    static func keptRange(_ keep: KeptCoordinates, kept: Int, d: Int) -> Range<Int> {
        keep == .top ? 0..<kept : (d - kept)..<d
    }

    /// Unmasks x with its attributions: returns the masked x (same shape) and the 0/1 kept indicator.
    public static func unmask(x: Tensor, attributions: Tensor, k: Double, keep: KeptCoordinates,
                              fill: Double) throws -> (masked: Tensor, kept: Tensor) {
        guard x.shape == attributions.shape else {
            throw ShapeError("DiffROAR", "attributions \(attributions.shape) do not match the data \(x.shape)")
        }
        let orders = try priorityOrders(attributions)
        return try unmask(x: x, orders: orders, k: k, keep: keep, fill: fill)
    }

    /// Unmasking with precomputed priority orders (one per example), so several k share one sort.
    public static func unmask(x: Tensor, orders: [[Int]], k: Double, keep: KeptCoordinates,
                              fill: Double) throws -> (masked: Tensor, kept: Tensor) {
        let n = x.shape.first ?? 0
        guard n == orders.count, n > 0 else { throw ShapeError("DiffROAR", "\(orders.count) attribution rows for \(n) examples") }
        let d = x.count / n
        let kept = try keptCount(k: k, dimension: d)
        for (i, o) in orders.enumerated() where o.count != d || o.contains(where: { $0 < 0 || $0 >= d }) {
            throw ShapeError("DiffROAR", "priority order \(i) has \(o.count) entries (or an index outside 0..<\(d)) for D = \(d)")
        }
        var out = [Double](repeating: fill, count: x.count)
        var ind = [Double](repeating: 0, count: x.count)
        x.data.withUnsafeBufferPointer { px in
            for i in 0..<n {
                let o = orders[i]
                for r in keptRange(keep, kept: kept, d: d) {
                    let j = i * d + o[r]
                    out[j] = px[j]
                    ind[j] = 1
                }
            }
        }
        return (Tensor(unchecked: x.shape, out), Tensor(unchecked: x.shape, ind))
    }
}

/// BlockMNIST localization (the later re-runs' metric): of the K top-|attribution| coordinates
/// (K = the DiffROAR kept count at level k, priority order as above), the fraction that lie in the
/// null block, and the share of their |attribution| mass that lies in the null block. When the top-K
/// mass is zero (all-zero attributions) the mass share is defined as the pixel fraction.
public enum Localization {
    public struct Result: Sendable {
        /// Per example: fraction of the top-K coordinates inside the null block.
        public var nullFraction: [Double]
        /// Per example: share of the top-K |attribution| mass inside the null block.
        public var nullMassShare: [Double]
        public var meanNullFraction: Double { nullFraction.reduce(0, +) / Double(Swift.max(nullFraction.count, 1)) }
        public var meanNullMassShare: Double { nullMassShare.reduce(0, +) / Double(Swift.max(nullMassShare.count, 1)) }
    }

    /// `nullMask` has the attributions' shape, 1 on null-block coordinates and 0 elsewhere.
    public static func measure(attributions: Tensor, nullMask: Tensor, k: Double) throws -> Result {
        guard attributions.shape == nullMask.shape else {
            throw ShapeError("Localization", "attributions \(attributions.shape) do not match the null mask \(nullMask.shape)")
        }
        let orders = try AttributionMasking.priorityOrders(attributions)
        let n = orders.count, d = attributions.count / n
        let kept = try AttributionMasking.keptCount(k: k, dimension: d)
        var frac = [Double](repeating: 0, count: n), mass = [Double](repeating: 0, count: n)
        for i in 0..<n {
            var inNull = 0, massNull = 0.0, massAll = 0.0
            for r in 0..<kept {
                let j = i * d + orders[i][r]
                let a = Swift.abs(attributions.data[j])
                massAll += a
                if nullMask.data[j] != 0 { inNull += 1; massNull += a }
            }
            frac[i] = kept == 0 ? 0 : Double(inNull) / Double(kept)
            mass[i] = massAll > 0 ? massNull / massAll : frac[i]
        }
        return Result(nullFraction: frac, nullMassShare: mass)
    }
}

// MARK: - Protocol entries

let masksMethod = Method("input_gradients.masks", properties: [
    Property("masked_count") { rng in
        let (n, d) = (1 + rng.int(below: 3), 1 + rng.int(below: 60))
        let k = [0.05, 0.1, 0.25, 0.3, 0.5, 0.75, 0.9, 1.0, rng.uniform(0.01, 1)][rng.int(below: 9)]
        let x = rng.normalTensor([n, d]), a = rng.normalTensor([n, d])
        let r = try AttributionMasking.unmask(x: x, attributions: a, k: k, keep: rng.bernoulli(0.5) ? .top : .bottom, fill: 0)
        let m = Int(((1 - k) * Double(d)).rounded(.toNearestOrEven))
        for i in 0..<n {
            let kept = r.kept.data[(i * d)..<((i + 1) * d)].reduce(0, +)
            try require(Int(kept) == d - m, "example \(i): \(Int(kept)) kept of D = \(d) at k = \(k), expected \(d - m)")
        }
    },
    Property("kept_values_unchanged") { rng in
        let (n, d) = (1 + rng.int(below: 3), 2 + rng.int(below: 40))
        // some values on a small lattice (so that some equal the fill value), the rest continuous
        let x = Tensor(unchecked: [n, d], (0..<(n * d)).map { _ in rng.bernoulli(0.4) ? Double(rng.int(below: 5)) - 2 : rng.normal() })
        let a = rng.normalTensor([n, d])
        let k = rng.uniform(0.05, 1), fill = 0.0
        let r = try AttributionMasking.unmask(x: x, attributions: a, k: k, keep: rng.bernoulli(0.5) ? .top : .bottom, fill: fill)
        let m = try AttributionMasking.maskedCount(k: k, dimension: d)
        for i in 0..<n {
            var fills = 0, keptFill = 0
            for j in (i * d)..<((i + 1) * d) {
                if r.kept.data[j] == 1 {
                    try require(r.masked.data[j].bitPattern == x.data[j].bitPattern, "kept coordinate \(j) changed")
                    if x.data[j] == fill { keptFill += 1 }
                }
                if r.masked.data[j] == fill { fills += 1 }
            }
            try require(fills == m + keptFill, "example \(i): fill appears \(fills) times, expected \(m) + \(keptFill)")
        }
    },
    Property("top_is_bottom_of_reversed") { rng in
        let (n, d) = (1 + rng.int(below: 3), 2 + rng.int(below: 50))
        let x = rng.normalTensor([n, d]), a = rng.normalTensor([n, d])
        let c = (a.data.map { Swift.abs($0) }.max() ?? 0) + 1
        let reversed = a.map { c - Swift.abs($0) }
        let k = rng.uniform(0.05, 1)
        let top = try AttributionMasking.unmask(x: x, attributions: a, k: k, keep: .top, fill: 0)
        let bot = try AttributionMasking.unmask(x: x, attributions: reversed, k: k, keep: .bottom, fill: 0)
        try require(top.kept == bot.kept, "top-k of A differs from bottom-k of c − |A| at k = \(k)")
    },
    Property("disjoint_and_complementary") { rng in
        let (n, d) = (1 + rng.int(below: 3), 2 * (1 + rng.int(below: 25)))
        // integer attributions: many ties
        let a = Tensor(unchecked: [n, d], (0..<(n * d)).map { _ in Double(rng.int(below: 3)) })
        let x = rng.normalTensor([n, d])
        let k1 = rng.uniform(0.01, 1), k2 = rng.uniform(0.01, 1)
        let top = try AttributionMasking.unmask(x: x, attributions: a, k: k1, keep: .top, fill: 0).kept
        let bot = try AttributionMasking.unmask(x: x, attributions: a, k: k2, keep: .bottom, fill: 0).kept
        let kk1 = try AttributionMasking.keptCount(k: k1, dimension: d), kk2 = try AttributionMasking.keptCount(k: k2, dimension: d)
        if kk1 + kk2 <= d {
            try require(!zip(top.data, bot.data).contains { $0 == 1 && $1 == 1 }, "kept sets overlap with K + K′ = \(kk1 + kk2) ≤ D = \(d)")
        }
        let th = try AttributionMasking.unmask(x: x, attributions: a, k: 0.5, keep: .top, fill: 0).kept
        let bh = try AttributionMasking.unmask(x: x, attributions: a, k: 0.5, keep: .bottom, fill: 0).kept
        try require(zip(th.data, bh.data).allSatisfy { $0 + $1 == 1 }, "top-D/2 and bottom-D/2 are not complementary (D = \(d))")
    },
    Property("rescaling_invariant") { rng in
        let (n, d) = (1 + rng.int(below: 3), 1 + rng.int(below: 50))
        let x = rng.normalTensor([n, d])
        let a = Tensor(unchecked: [n, d], (0..<(n * d)).map { _ in rng.bernoulli(0.3) ? 1.0 : rng.normal() })
        let c = (rng.bernoulli(0.5) ? 1 : -1) * Foundation.exp(rng.uniform(-5, 5))
        let k = rng.uniform(0.05, 1)
        for keep in KeptCoordinates.allCases {
            let r1 = try AttributionMasking.unmask(x: x, attributions: a, k: k, keep: keep, fill: 0)
            let r2 = try AttributionMasking.unmask(x: x, attributions: a * c, k: k, keep: keep, fill: 0)
            try require(r1.kept == r2.kept, "\(keep)-k masks change when A is scaled by \(c)")
        }
    },
    Property("bad_k_rejected") { rng in
        let x = rng.normalTensor([2, 5]), a = rng.normalTensor([2, 5])
        for k in [0.0, -rng.uniform(), 1 + rng.uniform(1e-9, 2), Double.nan, Double.infinity] {
            var threw = false
            do { _ = try AttributionMasking.unmask(x: x, attributions: a, k: k, keep: .top, fill: 0) } catch { threw = true }
            try require(threw, "k = \(k) accepted")
        }
        var bad = a
        bad.data[rng.int(below: 10)] = [Double.nan, .infinity, -.infinity][rng.int(below: 3)]
        var threw = false
        do { _ = try AttributionMasking.unmask(x: x, attributions: bad, k: 0.5, keep: .top, fill: 0) } catch { threw = true }
        try require(threw, "non-finite attribution accepted")
    },
]) { ctx in
    let x = try ctx.tensor("x"), a = try ctx.tensor("attributions")
    guard x.shape == a.shape else { throw ShapeError("input_gradients.masks", "attributions \(a.shape) do not match x \(x.shape)") }
    let keep: KeptCoordinates = try ctx.int("keep_top") == 1 ? .top : .bottom
    let orders = try AttributionMasking.priorityOrders(a)
    let r = try AttributionMasking.unmask(x: x, orders: orders, k: ctx.double("k"), keep: keep, fill: ctx.double("fill"))
    let order = Tensor(unchecked: [orders.count, orders.first?.count ?? 0], orders.flatMap { $0.map(Double.init) })
    return ["masked": ctx.constant(r.masked), "kept": ctx.constant(r.kept), "order": ctx.constant(order)]
}

let localizationMethod = Method("input_gradients.localization", properties: [
    Property("oracle_attribution_zero") { rng in
        let (n, r, c) = (1 + rng.int(below: 4), 2 + rng.int(below: 6), 2 + rng.int(below: 6))
        let top = (0..<n).map { _ in rng.bernoulli(0.5) }
        let null = BlockMNIST.nullMask(signalTop: top, rows: r, cols: c)
        // |A| > 0 exactly on the signal block (rows 0..<r when the signal is on top), built from the
        // placements directly rather than from nullMask
        var ad = [Double](repeating: 0, count: n * 2 * r * c)
        for i in 0..<n {
            let rowsWithSignal = top[i] ? 0..<r : r..<(2 * r)
            for row in rowsWithSignal { for col in 0..<c { ad[(i * 2 * r + row) * c + col] = 0.1 + rng.uniform() } }
        }
        let a = Tensor(unchecked: null.shape, ad)
        let k = rng.uniform(0.01, 0.5)
        let res = try Localization.measure(attributions: a, nullMask: null, k: k)
        try require(res.nullFraction.allSatisfy { $0 == 0 } && res.nullMassShare.allSatisfy { $0 == 0 },
                    "oracle attribution scores \(res.nullFraction) at k = \(k)")
    },
    Property("bounds") { rng in
        let (n, r, c) = (1 + rng.int(below: 4), 1 + rng.int(below: 6), 1 + rng.int(below: 6))
        let top = (0..<n).map { _ in rng.bernoulli(0.5) }
        let null = BlockMNIST.nullMask(signalTop: top, rows: r, cols: c)
        let a = rng.normalTensor(null.shape)
        let res = try Localization.measure(attributions: a, nullMask: null, k: rng.uniform(0.01, 1))
        try require((res.nullFraction + res.nullMassShare).allSatisfy { $0 >= 0 && $0 <= 1 }, "a score outside [0, 1]")
        let all = try Localization.measure(attributions: a, nullMask: null, k: 1)
        try require(all.nullFraction.allSatisfy { $0 == 0.5 }, "null fraction at k = 1 is \(all.nullFraction), expected 0.5")
    },
]) { ctx in
    let a = try ctx.tensor("attributions")
    guard a.rank == 3, a.shape[1] % 2 == 0 else { throw ShapeError("input_gradients.localization", "attributions must be [n, 2R, C], found \(a.shape)") }
    let top = try ctx.tensor("signal_top").data.map { $0 != 0 }
    guard top.count == a.shape[0] else { throw ShapeError("input_gradients.localization", "\(top.count) placements for \(a.shape[0]) maps") }
    let null = BlockMNIST.nullMask(signalTop: top, rows: a.shape[1] / 2, cols: a.shape[2])
    let r = try Localization.measure(attributions: a, nullMask: null, k: ctx.double("k"))
    return ["null_fraction": ctx.constant(Tensor(r.nullFraction)), "null_mass_share": ctx.constant(Tensor(r.nullMassShare))]
}
