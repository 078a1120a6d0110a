// dartsgt.explain — the paper's interpretability metrics (Sec. III-C; explainer/pk_explainer*.py, spec B.4 and E.1):
// per-graph error E, Head-deviation δ, Specialization S, the top-k head rule, Focus F, the Pearson r between the top heads'
// attention maps, per-head attention sum / std and the entropy–δ Spearman ρ. Not differentiable: certified by exact recomputation.

import Certification
import Foundation
import Ops
import Tensor

/// The task kinds of the error function E(ŷ, y).
public enum ExplainTask: Int, Sendable { case regression = 0, binary = 1, multiclass = 2, multilabel = 3 }

/// E(ŷ, y) (B.4): regression mean |ŷ − y|; binary mean |σ(ŷ) − y|; multiclass 1[argmax ŷ ≠ y] (first maximum);
/// multilabel mean over non-NaN labels of |1[σ(ŷ) > 0.5] − y| (0 when every label is NaN).
public func explainError(_ pred: [Double], _ y: [Double], task: ExplainTask) -> Double {
    switch task {
    case .regression: return zip(pred, y).map { Swift.abs($0 - $1) }.reduce(0, +) / Double(pred.count)
    case .binary: return zip(pred, y).map { Swift.abs(sigmoidValue($0) - $1) }.reduce(0, +) / Double(pred.count)
    case .multiclass:
        var best = 0
        for i in 1..<pred.count where pred[i] > pred[best] { best = i }
        return Double(best) == y[0] ? 0 : 1
    case .multilabel:
        let pairs = zip(pred, y).filter { !$0.1.isNaN }
        guard !pairs.isEmpty else { return 0 }
        return pairs.map { Swift.abs((sigmoidValue($0.0) > 0.5 ? 1.0 : 0.0) - $0.1) }.reduce(0, +) / Double(pairs.count)
    }
}

/// Specialization S (B.4): the population standard deviation (ddof 0) of the head deviations.
public func specialization(_ delta: [Double]) -> Double {
    guard !delta.isEmpty else { return 0 }
    let m = delta.reduce(0, +) / Double(delta.count)
    return (delta.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(delta.count)).squareRoot()
}

/// The top-k heads (B.4, E.1): heads in descending δ with a stable sort (equal δ keep layer-then-head order); the positive ones
/// first (up to k), then, if fewer than k, the negative ones in the same order; δ = 0 exactly is never chosen.
public func topHeads(_ delta: [Double], k: Int) -> [Int] {
    let order = delta.indices.sorted { delta[$0] > delta[$1] || (delta[$0] == delta[$1] && $0 < $1) }
    let pos = order.filter { delta[$0] > 0 }, neg = order.filter { delta[$0] < 0 }
    return pos.count >= k ? Array(pos.prefix(k)) : pos + Array(neg.prefix(k - pos.count))
}

/// numpy.argsort(v) with numpy's default kind ('quicksort' = introsort, not stable; numpy 1.24's aquicksort: median of three,
/// insertion sort for partitions of at most 16 elements, heapsort past depth 2·⌊log₂ n⌋), so ties come out in numpy's order (E.1).
public func numpyArgsort(_ v: [Double]) -> [Int] {
    let n = v.count
    var a = Array(0..<n)
    guard n > 1 else { return a }
    func less(_ x: Double, _ y: Double) -> Bool { x < y || (y.isNaN && !x.isNaN) }
    func heapsort(_ lo: Int, _ count: Int) {
        // 1-based heap on a[lo ..< lo + count]
        func at(_ i: Int) -> Int { a[lo + i - 1] }
        func set(_ i: Int, _ x: Int) { a[lo + i - 1] = x }
        var m = count
        var l = m >> 1
        while l > 0 {
            let tmp = at(l)
            var i = l, j = l << 1
            while j <= m {
                if j < m && less(v[at(j)], v[at(j + 1)]) { j += 1 }
                if less(v[tmp], v[at(j)]) { set(i, at(j)); i = j; j += j } else { break }
            }
            set(i, tmp)
            l -= 1
        }
        while m > 1 {
            let tmp = at(m)
            set(m, at(1))
            m -= 1
            var i = 1, j = 2
            while j <= m {
                if j < m && less(v[at(j)], v[at(j + 1)]) { j += 1 }
                if less(v[tmp], v[at(j)]) { set(i, at(j)); i = j; j += j } else { break }
            }
            set(i, tmp)
        }
    }
    var msb = 0
    var t = n
    while t > 1 { t >>= 1; msb += 1 }
    var stack: [(Int, Int, Int)] = []
    var pl = 0, pr = n - 1, cdepth = msb * 2
    while true {
        if cdepth < 0 {
            heapsort(pl, pr - pl + 1)
        } else {
            while pr - pl > 15 {
                let pm = pl + ((pr - pl) >> 1)
                if less(v[a[pm]], v[a[pl]]) { a.swapAt(pm, pl) }
                if less(v[a[pr]], v[a[pm]]) { a.swapAt(pr, pm) }
                if less(v[a[pm]], v[a[pl]]) { a.swapAt(pm, pl) }
                let vp = v[a[pm]]
                var pi = pl, pj = pr - 1
                a.swapAt(pm, pj)
                while true {
                    repeat { pi += 1 } while less(v[a[pi]], vp)
                    repeat { pj -= 1 } while less(vp, v[a[pj]])
                    if pi >= pj { break }
                    a.swapAt(pi, pj)
                }
                a.swapAt(pi, pr - 1)
                cdepth -= 1
                // the larger partition goes on the stack
                if pi - pl < pr - pi {
                    stack.append((pi + 1, pr, cdepth))
                    pr = pi - 1
                } else {
                    stack.append((pl, pi - 1, cdepth))
                    pl = pi + 1
                }
            }
            var i = pl + 1
            while i <= pr {
                let vi = a[i], x = v[vi]
                var j = i
                while j > pl && less(x, v[a[j - 1]]) { a[j] = a[j - 1]; j -= 1 }
                a[j] = vi
                i += 1
            }
        }
        guard let (l, r, d) = stack.popLast() else { break }
        pl = l; pr = r; cdepth = d
    }
    return a
}

/// The top node set of one attention map (B.4): scores = column sums; the last max(1, ⌊n/10⌋) of argsort(scores)
/// (numpy's default order, or a stable ascending order with `stable`).
public func topNodeSet(_ attn: [Double], n: Int, stable: Bool) -> Set<Int> {
    var s = [Double](repeating: 0, count: n)
    for q in 0..<n { for k in 0..<n { s[k] += attn[q * n + k] } }
    let order = stable ? s.indices.sorted { s[$0] < s[$1] || (s[$0] == s[$1] && $0 < $1) } : numpyArgsort(s)
    return Set(order.suffix(Swift.max(1, n / 10)))
}

/// Focus F (B.4): the mean pairwise Jaccard index of the top heads' top node sets; 0 with fewer than two heads.
public func focus(_ sets: [Set<Int>]) -> Double {
    guard sets.count >= 2 else { return 0 }
    var total = 0.0, pairs = 0
    for i in 0..<sets.count {
        for j in (i + 1)..<sets.count {
            let u = sets[i].union(sets[j]).count
            total += u > 0 ? Double(sets[i].intersection(sets[j]).count) / Double(u) : 0
            pairs += 1
        }
    }
    return total / Double(pairs)
}

/// Pearson r of two flattened maps as numpy.corrcoef, 0 when either is constant.
public func pearson(_ a: [Double], _ b: [Double]) -> Double {
    let n = Double(a.count)
    let ma = a.reduce(0, +) / n, mb = b.reduce(0, +) / n
    var sab = 0.0, saa = 0.0, sbb = 0.0
    for i in a.indices { sab += (a[i] - ma) * (b[i] - mb); saa += (a[i] - ma) * (a[i] - ma); sbb += (b[i] - mb) * (b[i] - mb) }
    guard saa > 0, sbb > 0 else { return 0 }
    return Swift.min(1, Swift.max(-1, sab / (saa.squareRoot() * sbb.squareRoot())))
}

/// Average ranks (scipy.stats.rankdata 'average').
func averageRanks(_ v: [Double]) -> [Double] {
    let order = v.indices.sorted { v[$0] < v[$1] || (v[$0] == v[$1] && $0 < $1) }
    var r = [Double](repeating: 0, count: v.count)
    var i = 0
    while i < order.count {
        var j = i
        while j + 1 < order.count && v[order[j + 1]] == v[order[i]] { j += 1 }
        for k in i...j { r[order[k]] = Double(i + j) / 2 + 1 }
        i = j + 1
    }
    return r
}

/// Spearman ρ as scipy.stats.spearmanr, with the explainer's rules: 0 with fewer than 3 heads or when undefined (constant input).
public func spearman(_ a: [Double], _ b: [Double]) -> Double {
    guard a.count >= 3 else { return 0 }
    let ra = averageRanks(a), rb = averageRanks(b)
    let ca = ra.allSatisfy { $0 == ra[0] }, cb = rb.allSatisfy { $0 == rb[0] }
    return ca || cb ? 0 : pearson(ra, rb)
}

/// Entropy of a map's normalised column sums (natural log, zero entries left out; 0 when the sum is 0).
public func attentionEntropy(_ attn: [Double], n: Int) -> Double {
    var s = [Double](repeating: 0, count: n)
    for q in 0..<n { for k in 0..<n { s[k] += attn[q * n + k] } }
    let total = s.reduce(0, +)
    guard total > 0 else { return 0 }
    return -s.map { $0 / total }.filter { $0 > 0 }.map { $0 * Foundation.log($0) }.reduce(0, +)
}

/// The sparse path's attention matrix (B.4): M[src, dst] = a_e (a later edge overwrites an earlier one on the same pair), then each
/// row divided by its sum (zero rows stay zero).
public func sparseAttentionMatrix(_ weights: [Double], edges: EdgeList) -> [Double] {
    let n = edges.nodes
    var m = [Double](repeating: 0, count: n * n)
    for e in 0..<edges.count { m[edges.src[e] * n + edges.dst[e]] = weights[e] }
    for r in 0..<n {
        var s = 0.0
        for c in 0..<n { s += m[r * n + c] }
        if s != 0 { for c in 0..<n { m[r * n + c] /= s } }
    }
    return m
}

/// All explainer outputs for one graph.
public struct HeadReport: Sendable {
    public var errors: [Double], delta: [Double], specialization: Double, top: [Int], focus: Double, correlation: Double
    public var headSum: [Double], headStd: [Double], entropy: [Double], entropySpearman: Double

    public init(errors: [Double], delta: [Double], specialization: Double, top: [Int], focus: Double, correlation: Double,
                headSum: [Double], headStd: [Double], entropy: [Double], entropySpearman: Double) {
        self.errors = errors
        self.delta = delta
        self.specialization = specialization
        self.top = top
        self.focus = focus
        self.correlation = correlation
        self.headSum = headSum
        self.headStd = headStd
        self.entropy = entropy
        self.entropySpearman = entropySpearman
    }
}

/// The explainer on one graph: `predictions[0]` is the full model's, `predictions[1 + m]` the model without head m (heads in
/// layer-then-head order); `maps[m]` is head m's n×n attention map (dense A[q, k], or the row-normalised sparse matrix).
public func explainGraph(predictions: [[Double]], y: [Double], task: ExplainTask, maps: [[Double]], n: Int, k: Int, stable: Bool) throws -> HeadReport {
    guard k >= 1 else { throw ShapeError("dartsgt.explain", "k_heads must be ≥ 1, got \(k)") }
    let errors = predictions.map { explainError($0, y, task: task) }
    let delta = errors.dropFirst().map { $0 - errors[0] }
    let top = topHeads(delta, k: k)
    let sets = top.map { topNodeSet(maps[$0], n: n, stable: stable) }
    var rs: [Double] = []
    for i in 0..<top.count { for j in (i + 1)..<top.count where j < top.count { rs.append(pearson(maps[top[i]], maps[top[j]])) } }
    let sums = maps.map { $0.reduce(0, +) }
    let stds = maps.map { m -> Double in
        let mu = m.reduce(0, +) / Double(m.count)
        return (m.map { ($0 - mu) * ($0 - mu) }.reduce(0, +) / Double(m.count)).squareRoot()
    }
    let ent = maps.map { attentionEntropy($0, n: n) }
    return HeadReport(errors: errors, delta: delta, specialization: specialization(delta), top: top, focus: focus(sets),
                      correlation: rs.isEmpty ? 0 : rs.reduce(0, +) / Double(rs.count), headSum: sums, headStd: stds, entropy: ent,
                      entropySpearman: spearman(ent, delta))
}

let explainMethod = Method("dartsgt.explain", properties: [
    Property("specialization_shift_invariance") { rng in
        let m = 2 + rng.int(below: 10)
        let d = (0..<m).map { _ in rng.normal() }
        let c = rng.normal() * 10
        let s = specialization(d)
        try require(s >= 0, "S = \(s) < 0")
        try require(Swift.abs(specialization(d.map { $0 + c }) - s) <= 1e-12 * Swift.max(1, s), "S(δ + c) ≠ S(δ)")
        // Equal deviations: S = 0 up to the rounding of their mean (NumPy gives the same).
        try require(specialization([Double](repeating: c, count: m)) <= 1e-15 * Swift.max(1, Swift.abs(c)), "S of equal deviations is not 0")
        try require(specialization([Double](repeating: 0.25, count: m)) == 0, "S of equal dyadic deviations is not exactly 0")
    },
    Property("focus_range_and_symmetry") { rng in
        let n = 1 + rng.int(below: 40), h = 1 + rng.int(below: 5)
        let sets = (0..<h).map { _ in topNodeSet((0..<(n * n)).map { _ in rng.uniform() }, n: n, stable: false) }
        let f = focus(sets)
        try require(f >= 0 && f <= 1, "F = \(f)")
        try require(Swift.abs(focus(sets.reversed()) - f) < 1e-15, "F depends on the head order")
        if h >= 2 { try require(focus([Set<Int>](repeating: sets[0], count: h)) == 1, "F of coinciding sets is not 1") }
    },
    Property("top_heads_rule") { rng in
        let m = 1 + rng.int(below: 12), k = 1 + rng.int(below: 6)
        let d = (0..<m).map { _ in rng.bernoulli(0.3) ? 0 : (rng.int(below: 5) - 2) == 0 ? 0.5 : Double(rng.int(below: 5) - 2) }
        let t = topHeads(d, k: k)
        try require(t.allSatisfy { d[$0] != 0 }, "a head with δ = 0 was chosen")
        try require(t.count == Swift.min(k, d.filter { $0 != 0 }.count), "chose \(t.count) heads")
        let firstNeg = t.firstIndex { d[$0] < 0 } ?? t.count
        try require(t[..<firstNeg].allSatisfy { d[$0] > 0 } && t[firstNeg...].allSatisfy { d[$0] < 0 }, "positive heads do not come first")
    },
    Property("numpy_argsort_sorts") { rng in
        let n = 1 + rng.int(below: 300)
        let v = (0..<n).map { _ in Double(rng.int(below: 1 + n / 3)) }
        let a = numpyArgsort(v)
        try require(a.sorted() == Array(0..<n), "not a permutation")
        try require(zip(a, a.dropFirst()).allSatisfy { v[$0.0] <= v[$0.1] }, "not ascending")
    },
], allowsNonFinite: true) { ctx in
    let op = "dartsgt.explain"
    let pred = try ctx.tensor("predictions"), y = try ctx.tensor("y")
    guard pred.rank == 2, pred.shape[0] >= 2 else { throw ShapeError(op, "predictions has shape \(pred.shape); expected [1 + M, T] (row 0 the full model)") }
    let m = pred.shape[0] - 1, t = pred.shape[1]
    guard t >= 1 else { throw ShapeError(op, "predictions has shape \(pred.shape); expected [1 + M, T] with T ≥ 1") }
    guard let task = ExplainTask(rawValue: try ctx.int("task")) else { throw ShapeError(op, "task must be 0, 1, 2 or 3") }
    guard y.rank == 1, y.count == (task == .multiclass ? 1 : t) else {
        throw ShapeError(op, "y has shape \(y.shape); expected [\(task == .multiclass ? 1 : t)]")
    }
    let k = try ctx.int("k_heads")
    guard k >= 1, k <= 1 << 16 else { throw ShapeError(op, "k_heads must be in 1...65536, got \(k)") }
    var maps: [[Double]] = []
    let n: Int
    if try ctx.int("sparse") != 0 {
        let w = try ctx.tensor("attn_edges")
        n = try ctx.int("num_nodes")
        try Budget.require(elements: Double(m) * Double(n) * Double(n), "dartsgt.explain's \(m) attention maps of \(n)×\(n) nodes")
        let edges = try EdgeList(try ctx.tensor("edge_index"), nodes: n, op: op)
        guard w.shape == [m, edges.count] else { throw ShapeError(op, "attn_edges has shape \(w.shape); expected [M, E] = [\(m), \(edges.count)]") }
        for h in 0..<m { maps.append(sparseAttentionMatrix(Array(w.data[(h * edges.count)..<((h + 1) * edges.count)]), edges: edges)) }
    } else {
        let a = try ctx.tensor("attn")
        guard a.rank == 3, a.shape[0] == m, a.shape[1] == a.shape[2], a.shape[1] >= 1 else {
            throw ShapeError(op, "attn has shape \(a.shape); expected [M, n, n] with M = \(m)")
        }
        n = a.shape[1]
        for h in 0..<m { maps.append(Array(a.data[(h * n * n)..<((h + 1) * n * n)])) }
    }
    let rows = (0...m).map { Array(pred.data[($0 * t)..<(($0 + 1) * t)]) }
    let r = try explainGraph(predictions: rows, y: y.data, task: task, maps: maps, n: n, k: k, stable: try ctx.int("stable_ties", default: 0) != 0)
    let top = r.top.map(Double.init) + [Double](repeating: -1, count: k - r.top.count)
    let c = { (v: [Double]) in ctx.constant(Tensor(v)) }
    return ["errors": c(r.errors), "delta": c(r.delta), "specialization": ctx.constant(Tensor(scalar: r.specialization)),
            "top_heads": c(top), "focus": ctx.constant(Tensor(scalar: r.focus)), "correlation": ctx.constant(Tensor(scalar: r.correlation)),
            "head_sum": c(r.headSum), "head_std": c(r.headStd), "entropy": c(r.entropy),
            "entropy_spearman": ctx.constant(Tensor(scalar: r.entropySpearman))]
}
