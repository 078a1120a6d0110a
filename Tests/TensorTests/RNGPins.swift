// The pinned first values of each RNG stream (see RNG.swift), ×1e12 and rounded where real-valued.
// The raw and uniform values were cross-checked against an independent Python transcription of
// xoshiro256** / SplitMix64. Changing these is a breaking change to every seeded result.
enum RNGPins {
    static let uniform42: [Double] = [83862971060, 378980250663, 680043411028]
    static let normal42: Double = -303263064679
    static let permutation5: [Int] = [0, 1, 5, 7, 6, 3, 4, 2]
    static let dirichlet9: [Double] = [114562636206, 734291750778, 151145613016]
    static let beta9: Double = 997981753762
    static let bernoulli3: [Bool] = [false, false, true, false, true, true, true, false]
}
