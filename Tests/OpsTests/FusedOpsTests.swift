// The fused / in-place fast paths of issue 17 against their plain definitions: cross_entropy against
// log_softmax + the NLL pick, the row-layout gather / scatter_add against the general layout, and the
// in-place optimizer updates against the element formulas (and against mutating a value someone else holds).
import Foundation
import Ops
import Tensor
import Testing

@Suite struct FusedOpPaths {
    /// cross_entropy (fused) against log_softmax on the tape followed by Σ lsm ⊙ mask, mask[n, tₙ] = −w[tₙ]/denom:
    /// the same loss (to rounding) and the same gradient bit for bit, with weights, ignore_index and both reductions.
    @Test func crossEntropyMatchesLogSoftmaxComposition() throws {
        var rng = RNG(seed: 21)
        let (n, c) = (37, 6)
        let logits = rng.normalTensor([n, c]) * 4
        let weight = Tensor((0..<c).map { _ in rng.uniform(0.2, 2) })
        let ignore = 3
        let cls = (0..<n).map { i in i % 5 == 4 ? ignore : rng.int(below: c) }
        let target = Tensor(cls.map(Double.init))
        for w in [nil, weight] as [Tensor?] {
            for red in [LossReduction.mean, .sum] {
                let tape = Tape()
                let x = tape.leaf(logits)
                let loss = try crossEntropy(x, target: target, weight: w, reduction: red, ignoreIndex: ignore)
                let gx = try tape.gradients(of: loss, wrt: [x])[0]

                let wt = cls.map { $0 == ignore ? 0.0 : (w?.data[$0] ?? 1.0) }
                let denom = red == .mean ? wt.reduce(0, +) : 1.0
                var mask = [Double](repeating: 0, count: n * c)
                for i in 0..<n where cls[i] != ignore { mask[i * c + cls[i]] = -wt[i] / denom }
                let ref = Tape()
                let xr = ref.leaf(logits)
                let lr = try sum(logSoftmax(xr, axis: 1) * ref.constant(Tensor(unchecked: [n, c], mask)))
                let gr = try ref.gradients(of: lr, wrt: [xr])[0]

                let (a, b) = (loss.value.scalar!, lr.value.scalar!)
                #expect(Swift.abs(a - b) <= 1e-14 * Swift.abs(b), "loss \(a) vs \(b) (weight: \(w != nil), \(red))")
                #expect(gx == gr, "gradient differs (weight: \(w != nil), \(red))")
                for i in 0..<n where cls[i] == ignore {
                    #expect((0..<c).allSatisfy { gx.data[i * c + $0] == 0 }, "ignored row \(i) has a gradient")
                }
            }
        }
    }

    /// Row gather / scatter_add (rank-1 index, block copies) equal the general layout with the index expanded.
    @Test func rowLayoutMatchesGeneralLayout() throws {
        var rng = RNG(seed: 22)
        let (nodes, edges, d) = (9, 40, 7)  // d not a multiple of 4: the scalar tail runs
        let x = rng.normalTensor([nodes, d]), src = rng.normalTensor([edges, d])
        let idx = (0..<edges).map { _ in Double(rng.int(below: nodes)) }
        let rowIndex = Tensor(idx)
        let fullIndex = Tensor(unchecked: [edges, d], idx.flatMap { [Double](repeating: $0, count: d) })
        do {
            let (xi, si) = (rowIndex, rowIndex)
            let tape = Tape()
            let xv = tape.leaf(x), sv = tape.leaf(src)
            let g1 = try gather(xv, axis: 0, index: xi), g2 = try gather(xv, axis: 0, index: fullIndex)
            #expect(g1.value == g2.value)
            let s1 = try scatterAdd(sv, axis: 0, index: si, dimSize: nodes)
            let s2 = try scatterAdd(sv, axis: 0, index: fullIndex, dimSize: nodes)
            #expect(s1.value == s2.value)
            let cg = rng.normalTensor([edges, d]), cs = rng.normalTensor([nodes, d])
            let r1 = try tape.gradients(of: [(g1, cg), (s1, cs)], wrt: [xv, sv])
            let r2 = try tape.gradients(of: [(g2, cg), (s2, cs)], wrt: [xv, sv])
            #expect(r1 == r2)
        }
    }

    /// Adam, AdamW and SGD (momentum, dampening, Nesterov, weight decay) against torch's element formulas over
    /// three steps, bit for bit; a copy of a parameter's value or state held elsewhere (a tape leaf) keeps its value.
    @Test func inPlaceOptimizerUpdatesMatchTheFormulas() throws {
        var rng = RNG(seed: 23)
        let shape = [5, 3], n = 15
        let p0 = rng.normalTensor(shape)
        let grads = (0..<3).map { _ in rng.normalTensor(shape) }
        for (beta1, wd, decoupled) in [(0.9, 0.0, false), (0.9, 0.05, false), (0.3, 0.05, false), (0.9, 0.1, true), (0.2, 0.1, true)] {
            let (lr, beta2, eps) = (0.01, 0.999, 1e-8)
            let p = Parameter("p", p0)
            let opt: any Optimizer = decoupled
                ? try AdamW([p], lr: lr, beta1: beta1, beta2: beta2, eps: eps, weightDecay: wd)
                : try Adam([p], lr: lr, beta1: beta1, beta2: beta2, eps: eps, weightDecay: wd)
            var x = p0.data, m = [Double](repeating: 0, count: n), v = m
            for (k, g) in grads.enumerated() {
                let heldValue = p.value, heldM = p.expAvg
                let snapValue = heldValue.data.map { $0 }, snapM = heldM?.data.map { $0 }
                try opt.step(grads: [g])
                #expect(heldValue.data == snapValue && heldM?.data == snapM, "a held copy changed")
                let t = Double(k + 1)
                let bc1 = 1 - Foundation.pow(beta1, t), bc2 = 1 - Foundation.pow(beta2, t)
                let w = 1 - beta1
                for i in 0..<n {
                    var gi = g.data[i]
                    if decoupled { x[i] = x[i] * (1 - lr * wd) } else if wd != 0 { gi = gi + wd * x[i] }
                    m[i] = w < 0.5 ? m[i] + w * (gi - m[i]) : gi - (gi - m[i]) * (1 - w)
                    v[i] = v[i] * beta2 + (1 - beta2) * gi * gi
                    x[i] = x[i] + (-(lr / bc1)) * m[i] / (v[i].squareRoot() / bc2.squareRoot() + eps)
                }
                #expect(p.value.data == x && p.expAvg!.data == m && p.expAvgSq!.data == v,
                        "Adam β₁ \(beta1) wd \(wd) decoupled \(decoupled) step \(k + 1)")
            }
        }
        for (mu, damp, wd, nesterov) in [(0.9, 0.0, 0.0, false), (0.9, 0.2, 0.01, false), (0.8, 0.0, 0.01, true), (0.0, 0.0, 0.01, false)] {
            let lr = 0.1
            let p = Parameter("p", p0)
            let opt = try SGD([p], lr: lr, momentum: mu, dampening: damp, weightDecay: wd, nesterov: nesterov)
            var x = p0.data, buf: [Double]? = nil
            for g in grads {
                let heldValue = p.value, heldBuf = p.momentumBuffer
                let snapValue = heldValue.data.map { $0 }, snapBuf = heldBuf?.data.map { $0 }
                try opt.step(grads: [g])
                #expect(heldValue.data == snapValue && heldBuf?.data == snapBuf, "a held copy changed")
                var d = g.data
                for i in 0..<n where wd != 0 { d[i] = d[i] + wd * x[i] }
                if mu != 0 {
                    if var b = buf {
                        for i in 0..<n { b[i] = b[i] * mu + (1 - damp) * d[i] }
                        buf = b
                    } else {
                        buf = d
                    }
                    if nesterov { for i in 0..<n { d[i] = d[i] + mu * buf![i] } } else { d = buf! }
                }
                for i in 0..<n { x[i] = x[i] + (-lr) * d[i] }
                #expect(p.value.data == x && p.momentumBuffer?.data == buf, "SGD μ \(mu) dampening \(damp) wd \(wd) nesterov \(nesterov)")
            }
        }
    }
}
