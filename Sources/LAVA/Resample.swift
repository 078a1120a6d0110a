// lava.resample — band-limited resampling of a waveform to LAVA's rate (16 kHz), exactly as scipy.signal.resample_poly
// with its defaults: polyphase filtering with a linear-phase low-pass FIR (Kaiser window β = 5, 20·max(up, down) + 1 taps,
// cutoff at the lower of the two Nyquist frequencies, gain `up`), zero padding at both ends, output length ⌈N·up/down⌉.
// The official LAVA code reads pre-resampled .pt tensors and does no resampling (spec A.1); this is Certify's documented choice.

import Certification
import Foundation
import Ops
import Tensor

/// LAVA's sample rate (Hz): Certify's assumption. The released code reads pre-resampled tensors and states no rate (spec A.1;
/// protocols/lava/resample.yaml, divergence sample_rate_assumed).
public let lavaSampleRate = 16_000

/// Modified Bessel function of the first kind, order 0: Σ_k ((x/2)^k / k!)², summed until the terms vanish.
func besselI0(_ x: Double) -> Double {
    let q = x * x / 4
    var term = 1.0, sum = 1.0, k = 1.0
    while term > sum * 1e-17 {
        term *= q / (k * k)
        sum += term
        k += 1
    }
    return sum
}

/// scipy.signal.firwin(2·halfLength + 1, cutoff, window=('kaiser', beta)) (a low-pass with unit DC gain), times `gain`.
func kaiserLowpass(halfLength: Int, cutoff: Double, beta: Double = 5, gain: Double) -> [Double] {
    let n = 2 * halfLength + 1
    let alpha = Double(halfLength)
    let i0b = besselI0(beta)
    var h = [Double](repeating: 0, count: n)
    for j in 0..<n {
        let m = Double(j) - alpha
        let arg = cutoff * m
        let sinc = arg == 0 ? 1.0 : Foundation.sin(Double.pi * arg) / (Double.pi * arg)
        let r = m / alpha
        let w = besselI0(beta * (1 - r * r).squareRoot()) / i0b
        h[j] = cutoff * sinc * w
    }
    let s = h.reduce(0, +)
    return h.map { $0 / s * gain }
}

func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

/// scipy.signal.resample_poly(x, up, down): y[m] = Σ_i x[i]·h[m·down − i·up + L] with the centred filter h of half-length
/// L = 10·max(up, down) (after reducing up/down by their gcd); y has ⌈N·up/down⌉ samples. Identity when up = down.
public func resamplePoly(_ x: [Double], up: Int, down: Int) throws -> [Double] {
    guard up >= 1, down >= 1 else { throw ShapeError("resample", "up and down must be ≥ 1, found \(up), \(down)") }
    let g = gcd(up, down)
    let (u, d) = (up / g, down / g)
    if u == 1 && d == 1 { return x }
    let maxRate = max(u, d)
    let half = try checkedMul(10, maxRate, "resample")
    // The filter (and its normalised copy), the output, and the work (filter design ≈ 150 operations per
    // tap, then ≈ taps/up multiply-adds per output sample) must fit the budget.
    let taps = 2 * Double(half) + 1
    let outCount = (Double(x.count) * Double(u) / Double(d)).rounded(.up)
    let what = "resampling \(x.count) samples by \(u)/\(d) (a \(String(format: "%.0f", taps))-tap filter, \(String(format: "%.0f", outCount)) output samples)"
    try Budget.require(elements: 2 * taps + outCount, what)
    try Budget.requireWork(operations: 150 * taps + outCount * (taps / Double(u) + 1), what)
    let h = kaiserLowpass(halfLength: half, cutoff: 1 / Double(maxRate), gain: Double(u))
    let n = x.count
    let nOut = (n * u + d - 1) / d
    var y = [Double](repeating: 0, count: nOut)
    x.withUnsafeBufferPointer { xp in
        h.withUnsafeBufferPointer { hp in
            for m in 0..<nOut {
                let c = m * d + half   // h index for i = 0
                // 0 ≤ c − i·u ≤ 2·half  ⇔  (c − 2·half)/u ≤ i ≤ c/u
                let lo = max(0, c - 2 * half <= 0 ? 0 : (c - 2 * half + u - 1) / u)
                let hi = min(n - 1, c / u)
                if lo > hi { continue }
                var acc = 0.0
                for i in lo...hi { acc += xp[i] * hp[c - i * u] }
                y[m] = acc
            }
        }
    }
    return y
}

/// Resamples from `rate` to `target` Hz with `resamplePoly` (up = target/g, down = rate/g, g = gcd).
public func resample(_ x: [Double], from rate: Int, to target: Int = lavaSampleRate) throws -> [Double] {
    guard rate > 0, target > 0 else { throw ShapeError("resample", "sample rates must be positive, found \(rate) → \(target)") }
    let g = gcd(rate, target)
    return try resamplePoly(x, up: target / g, down: rate / g)
}

let resampleMethod = Method("lava.resample", properties: [
    Property("dc_gain_one") { rng in
        // Far from the edges, a constant signal stays constant (the filter has unit DC gain per polyphase branch).
        let rates = [8000, 11025, 22050, 24000, 44100, 48000]
        let rate = rates[rng.int(below: rates.count)]
        let c = rng.uniform(-1, 1)
        let n = 3 * rate / 10
        let y = try resample([Double](repeating: c, count: n), from: rate)
        let g = gcd(rate, lavaSampleRate), half = 10 * max(lavaSampleRate / g, rate / g)
        let margin = half / (rate / g) + 2   // output m reads x[(m·down ± half)/up]: all inside once m·down ≥ half
        for m in margin..<(y.count - margin) {
            try require(Swift.abs(y[m] - c) <= 3e-3 * Swift.abs(c) + 1e-12, "y[\(m)] = \(y[m]), expected ≈ \(c) (rate \(rate))")
        }
    },
    Property("linearity") { rng in
        let rate = [8000, 22050, 44100][rng.int(below: 3)]
        let n = 50 + rng.int(below: 400)
        let a = (0..<n).map { _ in rng.normal() }, b = (0..<n).map { _ in rng.normal() }
        let s = rng.uniform(-2, 2)
        let ya = try resample(a, from: rate), yb = try resample(b, from: rate)
        let yab = try resample(zip(a, b).map { $0 + s * $1 }, from: rate)
        try requireClose(Tensor(yab), Tensor(zip(ya, yb).map { $0 + s * $1 }), Tolerance(rtol: 1e-12, atol: 1e-13), "resample(a + s·b)")
    },
    Property("length") { rng in
        let rate = 1000 + rng.int(below: 60000), n = rng.int(below: 3000)
        let y = try resample([Double](repeating: 0.5, count: n), from: rate)
        let g = gcd(rate, lavaSampleRate)
        let (u, d) = (lavaSampleRate / g, rate / g)
        try require(y.count == (n * u + d - 1) / d, "length \(y.count) for N = \(n), \(rate) Hz, expected ⌈N·\(u)/\(d)⌉")
    },
]) { ctx in
    let x = try ctx.tensor("x")
    guard x.rank == 1 else { throw ShapeError("lava.resample", "x must be 1-D [N], found \(x.shape)") }
    let y = try resample(x.data, from: try ctx.int("orig_rate"), to: try ctx.int("target_rate", default: lavaSampleRate))
    return ["y": ctx.constant(Tensor(y))]
}
