// iadg.dkg — the protocol entry of the Dynamic Kernel Generator (DKG.swift) and its properties.

import Certification
import Foundation
import Ops
import Tensor

let dkgMethod = Method("iadg.dkg", properties: dkgProperties) { ctx in
    let p = try DKGParameters { try ctx.v($0) }
    let k = try ctx.int("k", default: 3)
    let r = try DKG.forward(try ctx.v("x"), p, k: k, padding: try ctx.int("padding", default: 1), stride: try ctx.int("stride", default: 1))
    return ["y": r.y, "dynamic": r.dynamic, "kernels": r.kernels]
}

/// Random DKG parameters (constants on `t`) for C channels, P outputs, kernel k.
func randomDKG(_ rng: inout RNG, _ t: Tape, c: Int, p: Int, k: Int) -> (DKGParameters, [Tensor]) {
    let ts = [rng.normalTensor([k * k, 1, 1, 1]), rng.normalTensor([k * k]), rng.normalTensor([1, 1, 1, 1]), rng.normalTensor([1]),
              rng.normalTensor([c / 2, c / 2, 3, 3]) * 0.3, rng.normalTensor([c / 2]), rng.normalTensor([p, c, 1, 1]) * 0.3, rng.normalTensor([p])]
    let v = ts.map { t.leaf($0) }
    return (DKGParameters(kernelWeight: v[0], kernelBias: v[1], kWeight: v[2], kBias: v[3], staticWeight: v[4], staticBias: v[5],
                          fuseWeight: v[6], fuseBias: v[7]), ts)
}

/// Depthwise conv of x [N, C, H, W] with one kernel per (sample, channel) [N, C, k, k] (stride 1).
func depthwisePerSample(_ x: Tensor, _ kernels: Tensor, padding: Int) throws -> Tensor {
    let (n, c, k) = (x.shape[0], x.shape[1], kernels.shape[2])
    var outs: [Tensor] = []
    for i in 0..<n {
        let t = Tape()
        let xi = try x.slice(axis: 0, i..<(i + 1)), ki = try kernels.slice(axis: 0, i..<(i + 1)).reshaped([c, 1, k, k])
        outs.append(try conv2d(t.leaf(xi), weight: t.leaf(ki), bias: nil, padding: [padding, padding], groups: c).value)
    }
    return try Tensor.concatenate(outs, axis: 0)
}

private func dkgSetup(_ rng: inout RNG) -> (x: Tensor, c: Int, p: Int, k: Int, pad: Int) {
    let c = 2 * (1 + rng.int(below: 4)), p = 1 + rng.int(below: 5), k = rng.bernoulli(0.7) ? 3 : 5
    let pad = (k - 1) / 2
    return (rng.normalTensor([1 + rng.int(below: 3), c, k + rng.int(below: 4), k + rng.int(below: 4)]), c, p, k, pad)
}

let dkgProperties: [Property] = [
    Property("dynamic_equals_affine_depthwise") { rng in
        let (x, c, p, k, pad) = dkgSetup(&rng)
        let t = Tape()
        let (params, ts) = randomDKG(&rng, t, c: c, p: p, k: k)
        let r = try DKG.forward(t.leaf(x), params, k: k, padding: pad)
        let (u, v) = DKG.affineKernel(kernelWeight: ts[0], kernelBias: ts[1], kWeight: ts[2], kBias: ts[3])
        let xd = try x.slice(axis: 1, 0..<(c / 2))
        let g = try xd.mean(axes: [2, 3])
        let n = x.shape[0], half = c / 2
        var kern = [Double](repeating: 0, count: n * half * k * k)
        for i in 0..<n { for ch in 0..<half { for q in 0..<(k * k) {
            kern[(i * half + ch) * k * k + q] = g.data[i * half + ch] * u[q] + v[q]
        } } }
        let kt = Tensor(unchecked: [n, half, k, k], kern)
        try requireClose(r.kernels.value, kt, Tolerance(rtol: 1e-12, atol: 1e-13), "K_{n,c} vs g_{n,c}·u + v")
        try requireClose(r.dynamic.value, try depthwisePerSample(xd, kt, padding: pad), Tolerance(rtol: 1e-11, atol: 1e-12),
                         "Z_dyn vs depthwise conv with g·u + v")
    },
    Property("dynamic_not_homogeneous") { rng in
        // Z_dyn(λX) = λ²·((g·u) ⋆ X) + λ·(v ⋆ X)
        let (x, c, p, k, pad) = dkgSetup(&rng)
        let lam = rng.uniform(-3, 3)
        let t = Tape()
        let (params, ts) = randomDKG(&rng, t, c: c, p: p, k: k)
        let z = try DKG.forward(t.leaf(x * lam), params, k: k, padding: pad).dynamic.value
        let (u, v) = DKG.affineKernel(kernelWeight: ts[0], kernelBias: ts[1], kWeight: ts[2], kBias: ts[3])
        let xd = try x.slice(axis: 1, 0..<(c / 2))
        let g = try xd.mean(axes: [2, 3])
        let (n, half) = (x.shape[0], c / 2)
        var ku = [Double](), kv = [Double]()
        for i in 0..<n { for ch in 0..<half { ku += u.map { $0 * g.data[i * half + ch] }; kv += v } }
        let a = try depthwisePerSample(xd, Tensor(unchecked: [n, half, k, k], ku), padding: pad)
        let b = try depthwisePerSample(xd, Tensor(unchecked: [n, half, k, k], kv), padding: pad)
        try requireClose(z, try a * (lam * lam) + b * lam, Tolerance(rtol: 1e-10, atol: 1e-11), "Z_dyn(λX) vs λ²(gu ⋆ X) + λ(v ⋆ X)")
    },
    Property("dynamic_channel_separation") { rng in
        let (x, c, p, k, pad) = dkgSetup(&rng)
        let t = Tape()
        let (params, _) = randomDKG(&rng, t, c: c, p: p, k: k)
        let ch = rng.int(below: c / 2)
        var d = x.data
        let hw = x.shape[2] * x.shape[3]
        for i in 0..<x.shape[0] { for q in 0..<hw { d[(i * c + ch) * hw + q] += rng.normal() } }
        let z1 = try DKG.forward(t.leaf(x), params, k: k, padding: pad).dynamic.value
        let z2 = try DKG.forward(t.leaf(Tensor(unchecked: x.shape, d)), params, k: k, padding: pad).dynamic.value
        for i in 0..<x.shape[0] { for o in 0..<(c / 2) {
            let r = ((i * (c / 2) + o) * hw)..<((i * (c / 2) + o + 1) * hw)
            let same = Array(z1.data[r]) == Array(z2.data[r])
            try require(o == ch ? !same : same, "perturbing dynamic channel \(ch) \(o == ch ? "left" : "changed") output channel \(o)")
        } }
    },
]
