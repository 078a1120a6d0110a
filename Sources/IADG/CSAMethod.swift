// iadg.csa and iadg.fps — protocol entries of CSA (CSA.swift) and prototype selection (FPS.swift).

import Certification
import Foundation
import Ops
import Tensor

func prototypes(_ ctx: Context) throws -> StylePrototypes {
    try StylePrototypes(meanPos: ctx.tensor("proto_mean_pos"), stdPos: ctx.tensor("proto_std_pos"),
                        meanNeg: ctx.tensor("proto_mean_neg"), stdNeg: ctx.tensor("proto_std_neg"))
}

/// The K weight matrices of a [K, B, L] tensor.
func weightList(_ t: Tensor) throws -> [Tensor] {
    guard t.rank == 3 else { throw ShapeError("iadg.csa", "weights must be [K, B, L], found \(t.shape)") }
    return try (0..<t.shape[0]).map { try t.slice(axis: 0, $0..<($0 + 1)).reshaped([t.shape[1], t.shape[2]]) }
}

let csaMethod = Method("iadg.csa", properties: csaProperties) { ctx in
    let x = try ctx.v("x")
    let labels = try labelArray(try ctx.tensor("labels"), name: "labels", op: "iadg.csa")
    let r = try CSA.stack(x, labels: labels, weights: try weightList(try ctx.tensor("weights")), prototypes: try prototypes(ctx),
                          eps: try ctx.double("eps", default: 1e-5), form: try enumParam(ctx, "form", CSAForm.self))
    let (b, c) = (x.shape[0], x.shape[1])
    return ["y": r.y,
            "new_mean": ctx.constant(try Tensor.concatenate(r.means.map { try $0.reshaped([1, b, c]) }, axis: 0)),
            "new_std": ctx.constant(try Tensor.concatenate(r.stds.map { try $0.reshaped([1, b, c]) }, axis: 0))]
}

let fpsMethod = Method("iadg.fps", properties: fpsProperties) { ctx in
    let styles = try FPS.styleStatistics(try ctx.tensor("features"), eps: try ctx.double("eps", default: 1e-5))
    let r = try FPS.sample(points: styles, count: try ctx.int("num_styles"), start: try ctx.int("start"))
    let p = try FPS.prototypes(styles: styles, indices: r.indices)
    return ["styles": ctx.constant(styles), "indices": vector(ctx, r.indices.map(Double.init)),
            "distance": vector(ctx, r.distance), "proto_mean": ctx.constant(p.mean), "proto_std": ctx.constant(p.std)]
}

// MARK: - properties

private func randomPrototypes(_ rng: inout RNG, l: Int, c: Int) throws -> StylePrototypes {
    try StylePrototypes(meanPos: rng.normalTensor([l, c]), stdPos: rng.uniformTensor([l, c], 0.2, 2),
                        meanNeg: rng.normalTensor([l, c]), stdNeg: rng.uniformTensor([l, c], 0.2, 2))
}

private func csaSetup(_ rng: inout RNG) throws -> (x: Tensor, labels: [Int], w: Tensor, p: StylePrototypes) {
    let b = 1 + rng.int(below: 4), c = 1 + rng.int(below: 5), l = 1 + rng.int(below: 6)
    let x = try rng.normalTensor([b, c, 2 + rng.int(below: 3), 2 + rng.int(below: 3)]) * rng.uniform(0.2, 3) + rng.normal()
    let labels = (0..<b).map { _ in rng.int(below: 2) }
    return (x, labels, CSA.drawWeights(&rng, batch: b, styles: l, concentration: rng.uniform(0.05, 2)), try randomPrototypes(&rng, l: l, c: c))
}

private func eval(_ f: (Tape) throws -> Var) rethrows -> Tensor { try f(Tape()).value }

let csaProperties: [Property] = [
    Property("csa_moments") { rng in
        let (x, labels, w, p) = try csaSetup(&rng)
        let s = try CSA.assemble(weights: w, labels: labels, prototypes: p)
        let y = try eval { t in try CSA.adain(t.leaf(x), newMean: s.mean, newStd: s.std) }
        let sx = try CSA.statistics(x), sy = try CSA.statistics(y)
        try requireClose(sy.mean, s.mean, Tolerance(rtol: 1e-12, atol: 1e-12), "mean(CSA(x)) vs μ_new")
        let expected = try s.std * (try sx.variance / sx.variance.map { $0 + 1e-5 }).map { $0.squareRoot() }
        try requireClose(sy.variance.map { $0.squareRoot() }, expected, Tolerance(rtol: 1e-10, atol: 1e-12),
                         "unbiased std(CSA(x)) vs σ_new·√(v/(v+ε))")
    },
    Property("residual_block_affine") { rng in
        let (x, labels, w, p) = try csaSetup(&rng)
        let s = try CSA.assemble(weights: w, labels: labels, prototypes: p)
        let y = try eval { t in try CSA.block(t.leaf(x), labels: labels, weights: w, prototypes: p).y }
        let sx = try CSA.statistics(x), sy = try CSA.statistics(y)
        // y = A·x + b per channel with A = 1 + σ_new/√(v+ε) ≥ 1: mean(y) = μ + μ_new, std(y) = A·std(x)
        try requireClose(sy.mean, try sx.mean + s.mean, Tolerance(rtol: 1e-11, atol: 1e-11), "mean(x + CSA(x)) vs μ + μ_new")
        let a = try s.std / sx.variance.map { ($0 + 1e-5).squareRoot() } + Tensor(ones: s.std.shape)
        try require(a.data.allSatisfy { $0 >= 1 }, "A < 1")
        try requireClose(sy.variance.map { $0.squareRoot() }, try a * sx.variance.map { $0.squareRoot() },
                         Tolerance(rtol: 1e-10, atol: 1e-12), "std(x + CSA(x)) vs A·std(x)")
    },
    Property("single_prototype_exact") { rng in
        let (x, labels, _, _) = try csaSetup(&rng)
        let p = try randomPrototypes(&rng, l: 1, c: x.shape[1])
        let s = try CSA.assemble(weights: Tensor(ones: [labels.count, 1]), labels: labels, prototypes: p)
        for (i, y) in labels.enumerated() {
            let (pm, ps) = y == 0 ? (p.meanPos, p.stdPos) : (p.meanNeg, p.stdNeg)
            try require(Array(s.mean.data[(i * p.channels)..<((i + 1) * p.channels)]) == pm.data
                        && Array(s.std.data[(i * p.channels)..<((i + 1) * p.channels)]) == ps.data,
                        "with L = 1 the assembled style is not the prototype")
        }
        // convex hull: each coordinate lies between the prototypes' min and max
        let (x2, labels2, w2, p2) = try csaSetup(&rng)
        _ = x2
        let s2 = try CSA.assemble(weights: w2, labels: labels2, prototypes: p2)
        for (i, y) in labels2.enumerated() {
            let pm = y == 0 ? p2.meanPos : p2.meanNeg
            for k in 0..<p2.channels {
                let col = (0..<p2.count).map { pm.data[$0 * p2.channels + k] }
                let v = s2.mean.data[i * p2.channels + k]
                try require(v >= col.min()! - 1e-12 && v <= col.max()! + 1e-12, "μ_new outside the prototypes' hull")
            }
        }
    },
    Property("category_routing") { rng in
        let (x, labels, w, p) = try csaSetup(&rng)
        var q = p
        q.meanNeg = rng.normalTensor(p.meanNeg.shape)
        q.stdNeg = rng.uniformTensor(p.stdNeg.shape, 0.2, 2)
        let y1 = try eval { t in try CSA.block(t.leaf(x), labels: labels, weights: w, prototypes: p).y }
        let y2 = try eval { t in try CSA.block(t.leaf(x), labels: labels, weights: w, prototypes: q).y }
        let inner = x.count / labels.count
        for (i, l) in labels.enumerated() {
            let a = Array(y1.data[(i * inner)..<((i + 1) * inner)]), b = Array(y2.data[(i * inner)..<((i + 1) * inner)])
            try require(l == 0 ? a == b : a != b, "sample \(i) (label \(l)): changing the spoof prototypes \(l == 0 ? "changed" : "did not change") it")
        }
    },
    Property("detached_gradient") { rng in
        let (x, labels, w, p) = try csaSetup(&rng)
        let form: CSAForm = rng.bernoulli(0.5) ? .officialCode : .paperReplacement
        let s = try CSA.assemble(weights: w, labels: labels, prototypes: p)
        let st = try CSA.statistics(x)
        let g = rng.normalTensor(x.shape)
        let t = Tape()
        let xv = t.leaf(x)
        let y = try CSA.block(xv, labels: labels, weights: w, prototypes: p, form: form).y
        let gx = try t.gradients(of: [(y, g)], wrt: [xv])[0]
        let (b, c) = (x.shape[0], x.shape[1])
        let ratio = try (s.std / st.variance.map { ($0 + 1e-5).squareRoot() }).reshaped([b, c, 1, 1])
        let closed = try g * (form == .officialCode ? ratio + Tensor(ones: [b, c, 1, 1]) : ratio)
        try requireClose(gx, closed, Tolerance(rtol: 1e-12, atol: 1e-13), "VJP vs g·(1 + σ_new/√(v+ε))")
        // central differences of the map with μ and v frozen at x's statistics
        let frozen: (Tensor) throws -> Tensor = { z in
            let mu = try st.mean.reshaped([b, c, 1, 1]), sd = try st.variance.map { ($0 + 1e-5).squareRoot() }.reshaped([b, c, 1, 1])
            let out = try (try (z - mu) / sd) * s.std.reshaped([b, c, 1, 1]) + s.mean.reshaped([b, c, 1, 1])
            return form == .officialCode ? try z + out : out
        }
        let u = rng.normalTensor(x.shape), h = 1e-6
        let fd = (try frozen(try x + u * h).dot(g) - frozen(try x + u * (-h)).dot(g)) / (2 * h)
        let an = try gx.dot(u)
        try require(Swift.abs(fd - an) <= 1e-6 * Swift.max(1, Swift.abs(an)), "FD of the frozen map \(fd) vs VJP \(an)")
    },
    Property("dirichlet_draws") { rng in
        let l = 2 + rng.int(below: 20), n = 4000
        let alpha = 1.0 / Double(l)
        let w = CSA.drawWeights(&rng, batch: n, styles: l)
        var mean = 0.0, sq = 0.0
        for i in 0..<n {
            let row = w.data[(i * l)..<((i + 1) * l)]
            try require(row.allSatisfy { $0 >= 0 } && Swift.abs(row.reduce(0, +) - 1) < 1e-12, "a draw is not on the simplex")
            mean += row.first!
            sq += row.first! * row.first!
        }
        mean /= Double(n)
        let variance = sq / Double(n) - mean * mean
        let (em, ev) = (alpha, alpha * (1 - alpha) / (Double(l) * alpha + 1))  // E and Var of one component
        try require(Swift.abs(mean - em) < 6 * (ev / Double(n)).squareRoot(), "E[w₁] = \(mean), expected \(em)")
        try require(Swift.abs(variance - ev) < 0.25 * ev, "Var[w₁] = \(variance), expected \(ev)")
    },
]

let fpsProperties: [Property] = [
    Property("farthest_point_greedy") { rng in
        let n = 2 + rng.int(below: 30), d = 1 + rng.int(below: 6), l = 1 + rng.int(below: n)
        let pts = rng.normalTensor([n, d])
        let r = try FPS.sample(points: pts, count: l, start: rng.int(below: n))
        try require(Set(r.indices).count == l, "indices repeat for distinct points: \(r.indices)")
        func dist(_ a: Int, _ b: Int) -> Double { (0..<d).reduce(0) { $0 + Foundation.pow(pts.data[a * d + $1] - pts.data[b * d + $1], 2) } }
        for i in 1..<l {
            let chosen = Array(r.indices[..<i])
            func minDist(_ j: Int) -> Double { chosen.map { dist(j, $0) }.min()! }
            let best = (0..<n).map(minDist).max()!
            try require(minDist(r.indices[i]) >= best * (1 - 1e-12), "step \(i) does not maximise the min distance")
        }
    },
    Property("rigid_motion_invariance") { rng in
        let n = 3 + rng.int(below: 20), l = 1 + rng.int(below: n)
        let pts = rng.normalTensor([n, 2])
        let th = rng.uniform(0, 2 * Double.pi), (tx, ty) = (rng.normal() * 5, rng.normal() * 5)
        var moved = pts.data
        for i in 0..<n {
            let (x, y) = (pts.data[2 * i], pts.data[2 * i + 1])
            moved[2 * i] = Foundation.cos(th) * x - Foundation.sin(th) * y + tx
            moved[2 * i + 1] = Foundation.sin(th) * x + Foundation.cos(th) * y + ty
        }
        let s = rng.int(below: n)
        let a = try FPS.sample(points: pts, count: l, start: s), b = try FPS.sample(points: Tensor(unchecked: [n, 2], moved), count: l, start: s)
        try require(a.indices == b.indices, "a rotation + translation changed the selection: \(a.indices) vs \(b.indices)")
    },
    Property("style_statistics") { rng in
        let f = try rng.normalTensor([1 + rng.int(below: 3), 1 + rng.int(below: 4), 2 + rng.int(below: 3), 2]) * 2 + 1
        let s = try FPS.styleStatistics(f)
        let st = try CSA.statistics(f)
        let (n, c) = (f.shape[0], f.shape[1])
        for i in 0..<n { for k in 0..<c {
            try require(s.data[i * 2 * c + k] == st.mean.data[i * c + k], "μ half")
            try require(s.data[i * 2 * c + c + k] == (st.variance.data[i * c + k] + 1e-5).squareRoot(), "σ half")
        } }
    },
]
