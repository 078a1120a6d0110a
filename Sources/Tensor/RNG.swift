// The one random number generator Certify uses for everything random.
//
// xoshiro256** 1.0 (Blackman & Vigna, 2018), seeded from a UInt64 through SplitMix64 exactly as the
// authors' reference code recommends. Integer arithmetic only, so the raw stream is identical on
// every platform. Derived draws:
//   uniform     (next() >> 11) · 2⁻⁵³, in [0, 1)
//   normal      Box–Muller on two uniforms (u1 mapped to (0, 1]); uses libm log/sin/cos, which are
//               correctly rounded or within 1 ulp on glibc and Apple's libm
//   bernoulli   uniform() < p
//   gamma       Marsaglia–Tsang (2000), with the α < 1 boost U^(1/α)
//   dirichlet   independent Gamma(αᵢ, 1) normalised to sum 1;  beta(a, b) = X/(X+Y)
//   permutation Fisher–Yates from the end, bounded integers by Lemire's multiply-and-reject
// A test pins the first values of each stream so that it can never change silently.

import Foundation

public struct RNG: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    /// Seeds the four state words from SplitMix64(seed).
    public init(seed: UInt64) {
        var z = seed
        func splitmix() -> UInt64 {
            z &+= 0x9E37_79B9_7F4A_7C15
            var x = z
            x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
            x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
            return x ^ (x >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    @inline(__always) private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// The next raw 64-bit output.
    public mutating func next() -> UInt64 {
        let result = RNG.rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = RNG.rotl(s.3, 45)
        return result
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform in [low, high).
    public mutating func uniform(_ low: Double, _ high: Double) -> Double { low + (high - low) * uniform() }

    /// Standard normal by Box–Muller (one value per call; the second is discarded for simplicity
    /// of the documented stream).
    public mutating func normal() -> Double {
        let u1 = 1.0 - uniform()  // (0, 1]
        let u2 = uniform()
        return (-2.0 * Foundation.log(u1)).squareRoot() * Foundation.cos(2.0 * Double.pi * u2)
    }

    public mutating func normal(mean: Double, std: Double) -> Double { mean + std * normal() }

    public mutating func bernoulli(_ p: Double) -> Bool { uniform() < p }

    /// Unbiased integer in 0..<n (Lemire).
    public mutating func int(below n: Int) -> Int {
        precondition(n > 0, "RNG.int(below:) needs n > 0")
        let bound = UInt64(n)
        var m = next().multipliedFullWidth(by: bound)
        if m.low < bound {
            let t = (0 &- bound) % bound
            while m.low < t { m = next().multipliedFullWidth(by: bound) }
        }
        return Int(m.high)
    }

    /// Gamma(shape α, scale 1), Marsaglia–Tsang.
    public mutating func gamma(_ alpha: Double) -> Double {
        precondition(alpha > 0, "gamma shape must be positive")
        if alpha < 1 {
            let u = 1.0 - uniform()
            return gamma(alpha + 1) * Foundation.pow(u, 1.0 / alpha)
        }
        let d = alpha - 1.0 / 3.0
        let c = 1.0 / (9.0 * d).squareRoot()
        while true {
            var x = 0.0, v = 0.0
            repeat {
                x = normal()
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = 1.0 - uniform()
            if u < 1 - 0.0331 * x * x * x * x { return d * v }
            if Foundation.log(u) < 0.5 * x * x + d * (1 - v + Foundation.log(v)) { return d * v }
        }
    }

    public mutating func beta(_ a: Double, _ b: Double) -> Double {
        let x = gamma(a), y = gamma(b)
        return x / (x + y)
    }

    public mutating func dirichlet(_ alpha: [Double]) -> [Double] {
        let g = alpha.map { gamma($0) }
        let s = g.reduce(0, +)
        return g.map { $0 / s }
    }

    /// A uniformly random permutation of 0..<n.
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n < 2 { return p }
        for i in stride(from: n - 1, to: 0, by: -1) {
            let j = int(below: i + 1)
            p.swapAt(i, j)
        }
        return p
    }

    /// A tensor of uniform draws in [low, high).
    public mutating func uniformTensor(_ shape: [Int], _ low: Double = 0, _ high: Double = 1) -> Tensor {
        Tensor(unchecked: shape, (0..<shape.reduce(1, *)).map { _ in uniform(low, high) })
    }

    /// A tensor of standard-normal draws.
    public mutating func normalTensor(_ shape: [Int]) -> Tensor {
        Tensor(unchecked: shape, (0..<shape.reduce(1, *)).map { _ in normal() })
    }
}
