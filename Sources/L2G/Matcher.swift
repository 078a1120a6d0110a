// l2g.matcher — Mask2Former's bipartite matching (mask2former/modeling/matcher.py, as the spec's C.3 describes it), used by
// L2G only as an assumption: point sampling with grid_sample semantics, the cost λ_cls·(−p̂) + λ_ce·BCE_pts + λ_dice·Dice_pts,
// and a Hungarian solver of our own, certified against scipy.optimize.linear_sum_assignment.

import Certification
import Foundation
import Ops
import Tensor

// MARK: - Point sampling

/// Mask2Former's point_sample: torch.nn.functional.grid_sample(x[:, None], 2·points − 1, bilinear, zeros padding,
/// align_corners = False). x [N, H, W]; points [N, P, 2] or [1, P, 2] (shared), each (x, y) in [0, 1] (x along the width).
/// The source position is ix = ((2c_x − 1 + 1)·W − 1)/2, iy likewise; corners outside the image read 0. Returns [N, P].
public func pointSample(_ x: Var, points: Tensor) throws -> Var {
    let op = "point_sample"
    guard x.value.rank == 3 else { throw ShapeError(op, "input must be [N, H, W], found \(x.shape)") }
    let (n, h, w) = (x.shape[0], x.shape[1], x.shape[2])
    guard points.rank == 3, points.shape[2] == 2, points.shape[0] == n || points.shape[0] == 1 else {
        throw ShapeError(op, "points must be [N, P, 2] or [1, P, 2] for input \(x.shape), found \(points.shape)")
    }
    let p = points.shape[1], shared = points.shape[0] == 1
    // Per output: 4 corner indices (−1 outside) and weights.
    var idx = [Int](repeating: -1, count: n * p * 4), wts = [Double](repeating: 0, count: n * p * 4)
    var out = [Double](repeating: 0, count: n * p)
    let xv = x.value.data
    for i in 0..<n {
        for j in 0..<p {
            let base = ((shared ? 0 : i) * p + j) * 2
            let gx = 2 * points.data[base] - 1, gy = 2 * points.data[base + 1] - 1
            let ix = ((gx + 1) * Double(w) - 1) / 2, iy = ((gy + 1) * Double(h) - 1) / 2
            let x0 = Foundation.floor(ix), y0 = Foundation.floor(iy)
            let x1 = x0 + 1, y1 = y0 + 1
            let corners: [(Double, Double, Double)] = [
                (x0, y0, (x1 - ix) * (y1 - iy)), (x1, y0, (ix - x0) * (y1 - iy)),
                (x0, y1, (x1 - ix) * (iy - y0)), (x1, y1, (ix - x0) * (iy - y0)),
            ]
            var acc = 0.0
            for (c, (cx, cy, wt)) in corners.enumerated() {
                let o = (i * p + j) * 4 + c
                guard cx >= 0, cy >= 0, cx < Double(w), cy < Double(h) else { continue }
                let flat = i * h * w + Int(cy) * w + Int(cx)
                idx[o] = flat
                wts[o] = wt
                acc += xv[flat] * wt
            }
            out[i * p + j] = acc
        }
    }
    let shape = x.shape
    return x.tape.record(Tensor(unchecked: [n, p], out), parents: [x]) { g in
        var gx = [Double](repeating: 0, count: n * h * w)
        for o in 0..<(n * p) {
            for c in 0..<4 where idx[o * 4 + c] >= 0 { gx[idx[o * 4 + c]] += wts[o * 4 + c] * g.data[o] }
        }
        return [Tensor(unchecked: shape, gx)]
    }
}

// MARK: - Hungarian algorithm

/// A non-finite cost entry (row, column): the matcher refuses it instead of returning a meaningless assignment.
public struct NonFiniteCostError: Error, CustomStringConvertible, Sendable {
    public var row: Int, column: Int, value: Double
    public var description: String { "cost[\(row)][\(column)] is \(value); the cost matrix must be finite" }
}

/// Minimum-cost assignment of a rectangular cost matrix [rows][columns]: min(rows, columns) pairs, each row and column at
/// most once (scipy.optimize.linear_sum_assignment's problem). Shortest augmenting paths with row and column potentials
/// (the O(n²m) Hungarian method), rows added in index order. Ties: among equal reduced costs the lowest column index is
/// taken (strict <), so the result is deterministic; with several optima it may differ from SciPy's, the cost never does.
/// Returns (row, column) pairs sorted by row.
public func hungarian(_ cost: [[Double]]) throws -> [(row: Int, column: Int)] {
    let rows = cost.count, cols = cost.first?.count ?? 0
    for (i, r) in cost.enumerated() {
        guard r.count == cols else { throw ShapeError("hungarian", "row \(i) has \(r.count) entries, row 0 has \(cols)") }
        if let j = r.firstIndex(where: { !$0.isFinite }) { throw NonFiniteCostError(row: i, column: j, value: r[j]) }
    }
    if rows == 0 || cols == 0 { return [] }
    if rows > cols {
        let t = (0..<cols).map { j in (0..<rows).map { cost[$0][j] } }
        return try hungarian(t).map { (row: $0.column, column: $0.row) }.sorted { $0.row < $1.row }
    }
    let n = rows, m = cols
    var u = [Double](repeating: 0, count: n + 1), v = [Double](repeating: 0, count: m + 1)
    var p = [Int](repeating: 0, count: m + 1), way = [Int](repeating: 0, count: m + 1)
    for i in 1...n {
        p[0] = i
        var j0 = 0
        var minv = [Double](repeating: .infinity, count: m + 1)
        var used = [Bool](repeating: false, count: m + 1)
        repeat {
            used[j0] = true
            let i0 = p[j0]
            var delta = Double.infinity, j1 = 0
            for j in 1...m where !used[j] {
                let cur = cost[i0 - 1][j - 1] - u[i0] - v[j]
                if cur < minv[j] { minv[j] = cur; way[j] = j0 }
                if minv[j] < delta { delta = minv[j]; j1 = j }
            }
            for j in 0...m {
                if used[j] { u[p[j]] += delta; v[j] -= delta } else { minv[j] -= delta }
            }
            j0 = j1
        } while p[j0] != 0
        repeat {
            let j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
        } while j0 != 0
    }
    var pairs: [(row: Int, column: Int)] = []
    for j in 1...m where p[j] != 0 { pairs.append((row: p[j] - 1, column: j - 1)) }
    return pairs.sorted { $0.row < $1.row }
}

// MARK: - The matching cost

/// Mask2Former's matching cost between Q predictions and G targets, on P points shared by all masks:
/// C = λ_cls·(−softmax(logits)[q, c_g]) + λ_ce·BCE_pts(q, g) + λ_dice·Dice_pts(q, g), with
/// BCE_pts = (1/P)Σ_p [t·softplus(−x) + (1 − t)·softplus(x)] and Dice_pts = 1 − (2Σσ(x)t + 1)/(Σσ(x) + Σt + 1).
public struct MatchingCost: Sendable {
    public var costClass = 2.0, costMask = 5.0, costDice = 5.0
    public init(costClass: Double = 2, costMask: Double = 5, costDice: Double = 5) {
        self.costClass = costClass; self.costMask = costMask; self.costDice = costDice
    }

    /// logits [Q, K+1], sampled mask logits [Q, P], sampled targets [G, P], target labels [G] → cost [Q][G].
    public func cost(logits: Tensor, pointLogits: Tensor, pointTargets: Tensor, labels: [Int]) throws -> [[Double]] {
        let q = logits.shape[0], k1 = logits.shape[1], g = labels.count, p = pointLogits.shape[1]
        guard pointLogits.shape == [q, p], pointTargets.shape == [g, p] else {
            throw ShapeError("l2g.matcher", "point logits \(pointLogits.shape) and targets \(pointTargets.shape) must be [Q, P] and [G, P]")
        }
        for (i, c) in labels.enumerated() where c < 0 || c >= k1 - 1 {
            throw ShapeError("l2g.matcher", "target label \(i) = \(c) is outside the classes 0..<\(k1 - 1)")
        }
        let prob = try logits.softmax(axis: 1)
        func softplus(_ x: Double) -> Double { Swift.max(x, 0) + Foundation.log1p(Foundation.exp(-Swift.abs(x))) }
        var out = [[Double]](repeating: [Double](repeating: 0, count: g), count: q)
        for i in 0..<q {
            let xs = Array(pointLogits.data[(i * p)..<((i + 1) * p)])
            let pos = xs.map { softplus(-$0) }, neg = xs.map { softplus($0) }, sig = xs.map(sigmoidValue)
            let sigSum = sig.reduce(0, +)
            for j in 0..<g {
                var ce = 0.0, inter = 0.0, tsum = 0.0
                for r in 0..<p {
                    let t = pointTargets.data[j * p + r]
                    ce += pos[r] * t + neg[r] * (1 - t)
                    inter += sig[r] * t
                    tsum += t
                }
                let dice = 1 - (2 * inter + 1) / (sigSum + tsum + 1)
                out[i][j] = costMask * (ce / Double(p)) + costClass * (-prob.data[i * k1 + labels[j]]) + costDice * dice
            }
        }
        return out
    }
}

func labelList(_ t: Tensor, _ name: String) throws -> [Int] {
    try t.data.enumerated().map { try checkedInt($1, "\(name)[\($0)]") }
}

/// The matcher on one frame: cost and assignment.
func matchFrame(logits: Tensor, masks: Tensor, targetMasks: Tensor, labels: [Int], points: Tensor, weights: MatchingCost) throws
    -> (cost: [[Double]], pairs: [(row: Int, column: Int)], pointLogits: Tensor, pointTargets: Tensor) {
    let tape = Tape()
    let pl = try pointSample(tape.constant(masks), points: points).value
    let pt = try pointSample(tape.constant(targetMasks), points: points).value
    let c = try weights.cost(logits: logits, pointLogits: pl, pointTargets: pt, labels: labels)
    return (c, try hungarian(c), pl, pt)
}

func bruteForceMinimum(_ c: [[Double]]) -> Double {
    let n = c.count, m = c.first?.count ?? 0
    if n == 0 || m == 0 { return 0 }
    var best = Double.infinity
    func go(_ i: Int, _ used: inout [Bool], _ acc: Double, _ left: Int) {
        if left == 0 || i == n { if left == 0 { best = Swift.min(best, acc) }; return }
        // Row i may stay unassigned only when there are more rows than columns.
        if n - i > left { go(i + 1, &used, acc, left) }
        for j in 0..<m where !used[j] {
            used[j] = true
            go(i + 1, &used, acc + c[i][j], left - 1)
            used[j] = false
        }
    }
    var used = [Bool](repeating: false, count: m)
    go(0, &used, 0, Swift.min(n, m))
    return best
}

func assignmentCost(_ c: [[Double]], _ pairs: [(row: Int, column: Int)]) -> Double { pairs.reduce(0) { $0 + c[$1.row][$1.column] } }

func randomCost(_ rng: inout RNG, _ n: Int, _ m: Int, ties: Bool) -> [[Double]] {
    (0..<n).map { _ in (0..<m).map { _ in ties ? Double(rng.int(below: 4)) : rng.normal() } }
}

let matcherMethod = Method("l2g.matcher", properties: [
    Property("hungarian_brute_force") { rng in
        let n = 1 + rng.int(below: 7), m = 1 + rng.int(below: 7)
        let c = randomCost(&rng, n, m, ties: rng.bernoulli(0.4))
        let pairs = try hungarian(c)
        try require(pairs.count == Swift.min(n, m), "\(pairs.count) pairs for a \(n)×\(m) matrix")
        try require(Set(pairs.map(\.row)).count == pairs.count && Set(pairs.map(\.column)).count == pairs.count, "a row or column used twice")
        let best = bruteForceMinimum(c), got = assignmentCost(c, pairs)
        try require(got <= best + 1e-12 * Swift.max(1, Swift.abs(best)), "Hungarian cost \(got) > brute-force minimum \(best) on \(c)")
    },
    Property("row_column_constant_invariance") { rng in
        let n = 1 + rng.int(below: 7), m = n + rng.int(below: 3)   // rows ≤ columns: every row is assigned
        let c = randomCost(&rng, n, m, ties: false)
        var d = c
        let r = rng.int(below: n), k = rng.normal() * 3
        for j in 0..<m { d[r][j] += k }
        let a = try hungarian(c), b = try hungarian(d)
        try require(a.map(\.column) == b.map(\.column), "adding \(k) to row \(r) changed the assignment")
        if n == m {
            var e = c
            let col = rng.int(below: m)
            for i in 0..<n { e[i][col] += k }
            try require(try hungarian(e).map(\.column) == a.map(\.column), "adding \(k) to column \(col) changed the assignment")
        }
    },
    Property("query_permutation_equivariance") { rng in
        let n = 1 + rng.int(below: 8), m = 1 + rng.int(below: 8)
        let c = randomCost(&rng, n, m, ties: false)
        let perm = rng.permutation(n)   // new row i is old row perm[i]
        let pc = perm.map { c[$0] }
        let a = Dictionary(uniqueKeysWithValues: try hungarian(c).map { ($0.row, $0.column) })
        let b = try hungarian(pc)
        for pr in b { try require(a[perm[pr.row]] == pr.column, "permuting the queries did not permute the assignment") }
        try require(b.count == a.count, "pair count changed")
    },
    Property("non_finite_cost_refused") { rng in
        let n = 1 + rng.int(below: 5), m = 1 + rng.int(below: 5)
        var c = randomCost(&rng, n, m, ties: false)
        let (i, j) = (rng.int(below: n), rng.int(below: m))
        c[i][j] = [Double.nan, .infinity, -.infinity][rng.int(below: 3)]
        do {
            _ = try hungarian(c)
            throw PropertyFailure("a cost of \(c[i][j]) at [\(i)][\(j)] was accepted")
        } catch let e as NonFiniteCostError {
            try require(e.row == i && e.column == j, "the error names [\(e.row)][\(e.column)], not [\(i)][\(j)]")
        }
    },
]) { ctx in
    let logits = try ctx.data.tensor("pred_logits", rank: 2), masks = try ctx.data.tensor("pred_masks", rank: 3)
    let tm = try ctx.data.tensor("tgt_masks", rank: 3), labels = try labelList(try ctx.tensor("tgt_labels"), "tgt_labels")
    let pts = try ctx.data.tensor("points", rank: 2)
    let w = MatchingCost(costClass: try ctx.double("cost_class", default: 2), costMask: try ctx.double("cost_mask", default: 5),
                         costDice: try ctx.double("cost_dice", default: 5))
    let r = try matchFrame(logits: logits, masks: masks, targetMasks: tm, labels: labels, points: try pts.reshaped([1] + pts.shape), weights: w)
    let q = logits.shape[0], g = labels.count
    return [
        "point_logits": ctx.constant(r.pointLogits), "point_targets": ctx.constant(r.pointTargets),
        "cost": ctx.constant(Tensor(unchecked: [q, g], r.cost.flatMap { $0 })),
        "assignment_cost": ctx.constant(Tensor(scalar: assignmentCost(r.cost, r.pairs))),
        "row_index": ctx.constant(Tensor(r.pairs.map { Double($0.row) })),
        "column_index": ctx.constant(Tensor(r.pairs.map { Double($0.column) })),
    ]
}
