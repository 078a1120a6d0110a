// Projected gradient descent attacks exactly as the official code (scripts/ptb_utils.py,
// PGD_Attack / Linf_PGD_Attack / L2_PGD_Attack, 'untargeted', minimal=False):
//   objective      L = −CE_mean(f(x + δ), y); δ ← δ − lr·direction(∇_δ L)  (ascent on CE)
//   ℓ∞ start       δ₀ = noise, noise ~ U(−rand_eps, rand_eps) per coordinate (not projected)
//   ℓ∞ step        δ ← δ − lr·sign(∇_δ L); δ ← clip(δ, −eps, eps)
//   ℓ2 start       δ₀ = s · rand_eps·noise / (‖noise‖₂ + 1e−15), per example norm; ONE scalar s ~ U(0, 1)
//                  per batch and restart (Python's random.random())
//   ℓ2 step        δ ← δ − lr·∇/(‖∇‖₂ + 1e−15); δ ← eps·δ / max(‖δ‖₂, eps)
//   both, each step δ ← max(B₀ − x, min(B₁ − x, δ))  (x + δ inside the bounds)
//   restarts       keep, per example, the δ with the larger CE (reduction 'none'); ties go to the newer δ
//   eps = 0        δ = 0 (nothing drawn)

import Certification
import Foundation
import Ops
import Tensor

public struct PGDAttack: Sendable, Equatable {
    public enum Norm: String, Sendable, CaseIterable { case linf, l2 }

    public var norm: Norm
    public var eps: Double
    /// The step size (the code's `lr`).
    public var stepSize: Double
    public var iterations: Int
    /// Radius of the random start (the code's `rand_eps`, default 1e−3; the synthetic training uses 0).
    public var randEps: Double
    public var restarts: Int
    /// Valid input range (B₀, B₁).
    public var lower: Double
    public var upper: Double

    public static let overflowConstant = 1e-15

    public init(norm: Norm, eps: Double, stepSize: Double, iterations: Int, randEps: Double = 1e-3, restarts: Int = 1,
                lower: Double = 0, upper: Double = 1) {
        self.norm = norm
        self.eps = eps
        self.stepSize = stepSize
        self.iterations = iterations
        self.randEps = randEps
        self.restarts = restarts
        self.lower = lower
        self.upper = upper
    }

    func validate() throws {
        guard eps >= 0, eps.isFinite, stepSize.isFinite, stepSize >= 0, iterations >= 0, restarts >= 1,
              randEps >= 0, randEps.isFinite, lower <= upper else {
            throw ShapeError("PGD", "invalid settings: eps \(eps), step \(stepSize), iterations \(iterations), restarts \(restarts), rand_eps \(randEps), bounds (\(lower), \(upper))")
        }
    }

    /// Per-example ℓ2 norms of a [n, ...] tensor.
    static func rowNorms(_ t: Tensor) -> [Double] {
        let n = t.shape.first ?? 0, d = n > 0 ? t.count / n : 0
        return (0..<n).map { i in
            var s = 0.0
            for j in (i * d)..<((i + 1) * d) { s += t.data[j] * t.data[j] }
            return s.squareRoot()
        }
    }

    /// The start δ₀ from the drawn noise (and, for ℓ2, the batch scalar).
    public func initialDelta(noise: Tensor, scaling: Double) -> Tensor {
        switch norm {
        case .linf:
            return noise
        case .l2:
            let norms = PGDAttack.rowNorms(noise)
            let d = noise.count / Swift.max(noise.shape[0], 1)
            var out = noise.data
            for i in 0..<norms.count {
                for j in (i * d)..<((i + 1) * d) { out[j] = scaling * (randEps * out[j] / (norms[i] + PGDAttack.overflowConstant)) }
            }
            return Tensor(unchecked: noise.shape, out)
        }
    }

    /// ∇_δ of L = −CE_mean(f(x + δ), y).
    static func objectiveGradient(model: any Classifier, x: Tensor, y: Tensor, delta: Tensor) throws -> Tensor {
        let tape = Tape()
        let dv = tape.leaf(delta)
        let z = try model.logits(tape.constant(x) + dv, model.leaves(on: tape))
        let ce = try crossEntropy(z, target: y, reduction: .mean)
        return try tape.gradients(of: [(ce, Tensor(scalar: -1))], wrt: [dv])[0]
    }

    /// One step from δ (the gradient step, the norm-ball projection, the bounds clip).
    public func step(delta: Tensor, gradient g: Tensor, x: Tensor) -> Tensor {
        var d = delta.data
        let n = delta.shape.first ?? 0, per = n > 0 ? delta.count / n : 0
        switch norm {
        case .linf:
            for j in 0..<d.count {
                let s: Double = g.data[j] > 0 ? 1 : (g.data[j] < 0 ? -1 : 0)
                d[j] = Swift.min(Swift.max(d[j] - stepSize * s, -eps), eps)
            }
        case .l2:
            let gn = PGDAttack.rowNorms(g)
            for i in 0..<n {
                for j in (i * per)..<((i + 1) * per) { d[j] = d[j] - stepSize * (g.data[j] / (gn[i] + PGDAttack.overflowConstant)) }
            }
            let dn = PGDAttack.rowNorms(Tensor(unchecked: delta.shape, d))
            for i in 0..<n {
                let c = Swift.max(dn[i], eps)
                for j in (i * per)..<((i + 1) * per) { d[j] = eps * d[j] / c }
            }
        }
        for j in 0..<d.count { d[j] = Swift.max(lower - x.data[j], Swift.min(upper - x.data[j], d[j])) }
        return Tensor(unchecked: delta.shape, d)
    }

    /// One restart from δ₀; returns every iterate (δ₀ first, then δ after each step).
    public func perturbOnce(model: any Classifier, x: Tensor, y: [Int], start: Tensor) throws -> [Tensor] {
        guard start.shape == x.shape else { throw ShapeError("PGD", "start \(start.shape) does not match x \(x.shape)") }
        let yt = Tensor(y.map(Double.init))
        var delta = start
        var path = [delta]
        for _ in 0..<iterations {
            let g = try PGDAttack.objectiveGradient(model: model, x: x, y: yt, delta: delta)
            delta = step(delta: delta, gradient: g, x: x)
            path.append(delta)
        }
        return path
    }

    /// The attack with given restart draws: `noise[r]` has x's shape, `scaling[r]` is the ℓ2 batch scalar.
    /// Returns the kept δ and every restart's iterates.
    public func perturb(model: any Classifier, x: Tensor, y: [Int], noise: [Tensor], scaling: [Double]) throws
        -> (delta: Tensor, paths: [[Tensor]]) {
        try validate()
        guard noise.count == restarts, scaling.count == restarts else {
            throw ShapeError("PGD", "\(noise.count) noise draws and \(scaling.count) scalars for \(restarts) restarts")
        }
        if eps == 0 { return (Tensor(zeros: x.shape), []) }
        let n = x.shape[0], per = x.count / n
        var best = Tensor(zeros: x.shape)
        var bestLoss: [Double] = []
        var paths: [[Tensor]] = []
        for r in 0..<restarts {
            let path = try perturbOnce(model: model, x: x, y: y, start: initialDelta(noise: noise[r], scaling: scaling[r]))
            paths.append(path)
            let delta = path.last!
            let z = try model.logits(x + delta)
            let loss = try crossEntropyPerExample(logits: z, y: y)
            if r == 0 {
                best = delta
                bestLoss = loss
            } else {
                for i in 0..<n where loss[i] >= bestLoss[i] {
                    for j in (i * per)..<((i + 1) * per) { best.data[j] = delta.data[j] }
                }
                for i in 0..<n { bestLoss[i] = Swift.max(bestLoss[i], loss[i]) }
            }
        }
        return (best, paths)
    }

    /// Draws the official code's restart noise: U(−rand_eps, rand_eps) per coordinate, and one U(0, 1)
    /// scalar per restart (used by ℓ2 only).
    public func drawStarts(shape: [Int], rng: inout RNG) -> (noise: [Tensor], scaling: [Double]) {
        var noise: [Tensor] = [], scaling: [Double] = []
        for _ in 0..<restarts {
            scaling.append(norm == .l2 ? rng.uniform() : 1)
            noise.append(randEps == 0 ? Tensor(zeros: shape) : rng.uniformTensor(shape, -randEps, randEps))
        }
        return (noise, scaling)
    }

    /// The attack with restart draws from `rng`.
    public func perturb(model: any Classifier, x: Tensor, y: [Int], rng: inout RNG) throws -> Tensor {
        try validate()
        if eps == 0 { return Tensor(zeros: x.shape) }
        let s = drawStarts(shape: x.shape, rng: &rng)
        return try perturb(model: model, x: x, y: y, noise: s.noise, scaling: s.scaling).delta
    }
}

/// Per-example cross-entropy −log softmax(z)_y (rows of [n, C] logits).
func crossEntropyPerExample(logits z: Tensor, y: [Int]) throws -> [Double] {
    let c = z.shape[1]
    let tape = Tape()
    let lsm = try logSoftmax(tape.leaf(z), axis: 1).value
    return y.enumerated().map { i, yi in -lsm.data[i * c + yi] }
}

// MARK: - Protocol entry

func caseAttack(_ ctx: Context, restarts: Int) throws -> PGDAttack {
    guard let norm = PGDAttack.Norm(rawValue: try ctx.data.string("norm")) else {
        throw ShapeError("input_gradients.pgd", "unknown norm '\(try ctx.data.string("norm"))' (linf, l2)")
    }
    return PGDAttack(norm: norm, eps: try ctx.double("eps"), stepSize: try ctx.double("step_size"), iterations: try ctx.int("iterations"),
                     randEps: try ctx.double("rand_eps"), restarts: restarts, lower: try ctx.double("lower"), upper: try ctx.double("upper"))
}

let pgdMethod = Method("input_gradients.pgd", properties: [
    Property("feasible_every_iterate") { rng in
        let (n, d) = (1 + rng.int(below: 4), 2 + rng.int(below: 10))
        let model = try MLP(sizes: [d, 8, 3], rng: &rng)
        let x = rng.uniformTensor([n, d])
        let y = (0..<n).map { _ in rng.int(below: 3) }
        let norm: PGDAttack.Norm = rng.bernoulli(0.5) ? .linf : .l2
        let eps = rng.uniform(0.01, norm == .linf ? 0.5 : 2)
        let attack = PGDAttack(norm: norm, eps: eps, stepSize: rng.uniform(0.1, 1) * eps, iterations: 1 + rng.int(below: 6),
                               randEps: rng.uniform(0, eps), restarts: 1 + rng.int(below: 3), lower: 0, upper: 1)
        let s = attack.drawStarts(shape: x.shape, rng: &rng)
        let r = try attack.perturb(model: model, x: x, y: y, noise: s.noise, scaling: s.scaling)
        for path in r.paths {
            for delta in path.dropFirst() {
                for j in 0..<delta.count {
                    let v = x.data[j] + delta.data[j]
                    try require(v >= -1e-15 && v <= 1 + 1e-15, "x + δ = \(v) outside [0, 1]")
                    if norm == .linf { try require(Swift.abs(delta.data[j]) <= eps, "|δ| = \(Swift.abs(delta.data[j])) > eps \(eps)") }
                }
                if norm == .l2 {
                    for nm in PGDAttack.rowNorms(delta) { try require(nm <= eps * (1 + 1e-6), "‖δ‖₂ = \(nm) > eps \(eps)") }
                }
            }
        }
    },
    Property("eps_zero_is_zero") { rng in
        let model = try MLP(sizes: [5, 4, 2], rng: &rng)
        let x = rng.normalTensor([3, 5])
        let attack = PGDAttack(norm: rng.bernoulli(0.5) ? .linf : .l2, eps: 0, stepSize: 0.1, iterations: 3, randEps: 0.5)
        var r2 = rng
        let d = try attack.perturb(model: model, x: x, y: [0, 1, 0], rng: &r2)
        try require(d == Tensor(zeros: [3, 5]), "eps = 0 gave a non-zero δ")
        try require(r2.next() == rng.next(), "eps = 0 drew from the RNG")
    },
    Property("zero_gradient_coordinate_stays") { rng in
        let (n, d) = (1 + rng.int(below: 4), 3 + rng.int(below: 8))
        let model = try MLP(sizes: [d, 6, 2], rng: &rng)
        let dead = rng.int(below: d)
        for o in 0..<6 { model.parameters[0].value.data[o * d + dead] = 0 }
        let x = rng.normalTensor([n, d])
        let attack = PGDAttack(norm: .linf, eps: 0.3, stepSize: 0.1, iterations: 4, randEps: 0, lower: -10, upper: 10)
        let delta = try attack.perturb(model: model, x: x, y: (0..<n).map { _ in rng.int(below: 2) }, rng: &rng)
        for i in 0..<n { try require(delta.data[i * d + dead] == 0, "the dead coordinate moved to \(delta.data[i * d + dead])") }
        // (When every hidden unit is inactive the whole input gradient is zero and nothing moves:
        // the instance is vacuous, not a failure.)
    },
    Property("attack_increases_loss") { rng in
        let (n, d) = (2 + rng.int(below: 6), 3 + rng.int(below: 8))
        let model = try MLP(sizes: [d, 10, 3], rng: &rng)
        let x = rng.normalTensor([n, d])
        let y = (0..<n).map { _ in rng.int(below: 3) }
        let clean = try crossEntropyPerExample(logits: model.logits(x), y: y).reduce(0, +)
        var attack = PGDAttack(norm: rng.bernoulli(0.5) ? .linf : .l2, eps: 0.2, stepSize: 0.05, iterations: 5, randEps: 0.2, lower: -10, upper: 10)
        attack.restarts = 3
        let s = attack.drawStarts(shape: x.shape, rng: &rng)
        let three = try attack.perturb(model: model, x: x, y: y, noise: s.noise, scaling: s.scaling).delta
        attack.restarts = 1
        let one = try attack.perturb(model: model, x: x, y: y, noise: [s.noise[0]], scaling: [s.scaling[0]]).delta
        let l3 = try crossEntropyPerExample(logits: model.logits(x + three), y: y)
        let l1 = try crossEntropyPerExample(logits: model.logits(x + one), y: y)
        try require(l3.reduce(0, +) >= clean, "attacked CE \(l3.reduce(0, +)) below clean \(clean)")
        for i in 0..<n { try require(l3[i] >= l1[i], "example \(i): CE with 3 restarts \(l3[i]) < with 1 restart \(l1[i])") }
    },
]) { ctx in
    let model = try caseMLP(ctx)
    let x = try ctx.tensor("x"), y = try caseLabels(ctx)
    let noise = try ctx.tensor("noise"), scaling = try ctx.tensor("scaling")
    guard noise.rank == x.rank + 1, Array(noise.shape.dropFirst()) == x.shape, scaling.shape == [noise.shape[0]] else {
        throw ShapeError("input_gradients.pgd", "noise \(noise.shape) / scaling \(scaling.shape) must be [R] + \(x.shape) and [R]")
    }
    let restarts = noise.shape[0]
    let attack = try caseAttack(ctx, restarts: restarts)
    let starts = try (0..<restarts).map { try noise.slice(axis: 0, $0..<($0 + 1)).reshaped(x.shape) }
    let r = try attack.perturb(model: model, x: x, y: y, noise: starts, scaling: scaling.data)
    var out = ["delta": ctx.constant(r.delta)]
    if !r.paths.isEmpty {
        let flat = r.paths.flatMap { $0.flatMap(\.data) }
        out["path"] = ctx.constant(Tensor(unchecked: [restarts, attack.iterations + 1] + x.shape, flat))
    }
    return out
}
