// Inputs far from LAVA's training distribution. The released models were trained on deepfake speech (CodecFake,
// ASVspoof2021, FakeOrReal); on silence, a pure tone, broadband noise, a clipped or a very short file they still return a
// softmax, often a confident one (the released ADA gives FakeOrReal with probability 0.999998 on a 440 Hz sine), which
// means nothing about attribution. `certify lava classify` reports such inputs with a one-line caveat instead of a label
// with no caveat. The checks and their thresholds are Certify's choice (the paper and the code define no input check),
// set with margin against espeak-ng speech, which triggers none of them (Tests/LAVATests/InputCheckTests.swift).

import Foundation

/// One reason an input is far from the training distribution.
public struct InputWarning: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case silence, tone = "pure_tone", noise = "broadband_noise", clipping, short = "too_short"
    }
    public var kind: Kind
    public var message: String
}

/// The thresholds of `inputWarnings` (Certify's choices, documented in `certify lava classify --help`).
public enum InputCheckThresholds {
    /// Silence: RMS of the 16 kHz waveform below −60 dBFS (1e-3 of full scale). espeak-ng speech is near −20 dBFS.
    public static let silenceRMS = 1e-3
    /// Pure tone: at least 80 % of the spectral energy within ±3 bins (±47 Hz) of the strongest bin of the averaged
    /// spectrum (Welch: 1024-sample periodic Hann frames, hop 512, at 16 kHz). A sine gives ≈ 1.0, two equal tones 0.5,
    /// espeak-ng speech 0.09–0.25.
    public static let toneEnergyFraction = 0.8
    /// Broadband noise: spectral flatness (geometric over arithmetic mean of the averaged power spectrum) of at least 0.5.
    /// White noise gives ≈ 0.98, espeak-ng speech 0.10–0.17, a sine ≈ 0.
    public static let noiseFlatness = 0.5
    /// Clipping: at least 0.1 % of the file's samples (and at least 3) at ≥ 99 % of full scale.
    public static let clippingLevel = 0.99, clippingFraction = 1e-3, clippingMinimumCount = 3
    /// Very short: under 0.5 s (8000 samples at 16 kHz). The training clip length is not in the released code.
    public static let shortSamples = 8_000
}

/// Averaged power spectrum (Welch) of `x` with 1024-sample periodic Hann frames and hop 512; a shorter `x` is one
/// zero-padded frame. Bins 0…512.
func welchPowerSpectrum(_ x: [Double], frame n: Int = 1024) -> [Double] {
    let hop = n / 2
    let window = (0..<n).map { 0.5 - 0.5 * Foundation.cos(2 * Double.pi * Double($0) / Double(n)) }
    var acc = [Double](repeating: 0, count: n / 2 + 1)
    var frames = 0
    var start = 0
    repeat {
        var re = [Double](repeating: 0, count: n), im = [Double](repeating: 0, count: n)
        for i in 0..<n where start + i < x.count { re[i] = x[start + i] * window[i] }
        fft(&re, &im)
        for k in 0...(n / 2) { acc[k] += re[k] * re[k] + im[k] * im[k] }
        frames += 1
        start += hop
    } while start + n <= x.count
    return acc.map { $0 / Double(frames) }
}

/// In-place iterative radix-2 FFT (n a power of two).
func fft(_ re: inout [Double], _ im: inout [Double]) {
    let n = re.count
    var j = 0
    for i in 1..<n {
        var bit = n >> 1
        while j & bit != 0 { j ^= bit; bit >>= 1 }
        j |= bit
        if i < j { re.swapAt(i, j); im.swapAt(i, j) }
    }
    var len = 2
    while len <= n {
        let ang = -2 * Double.pi / Double(len)
        for s in stride(from: 0, to: n, by: len) {
            for k in 0..<(len / 2) {
                let (wr, wi) = (Foundation.cos(ang * Double(k)), Foundation.sin(ang * Double(k)))
                let (a, b) = (s + k, s + k + len / 2)
                let tr = re[b] * wr - im[b] * wi, ti = re[b] * wi + im[b] * wr
                re[b] = re[a] - tr; im[b] = im[a] - ti
                re[a] += tr; im[a] += ti
            }
        }
        len <<= 1
    }
}

/// The checks of an input: `samples` as stored in the file (mono, full scale ±1), `waveform16k` the model's input.
public func inputWarnings(samples: [Double], waveform16k x: [Double]) -> [InputWarning] {
    typealias T = InputCheckThresholds
    var out: [InputWarning] = []
    func db(_ v: Double) -> String { v > 0 ? String(format: "%.1f dBFS", 20 * Foundation.log10(v)) : "−∞ dBFS" }
    if x.count < T.shortSamples {
        out.append(InputWarning(kind: .short, message: String(format: "very short input: %.3f s at 16 kHz (under %.1f s)",
                                                              Double(x.count) / 16_000, Double(T.shortSamples) / 16_000)))
    }
    let rms = x.isEmpty ? 0 : (x.reduce(0) { $0 + $1 * $1 } / Double(x.count)).squareRoot()
    if rms < T.silenceRMS {
        out.append(InputWarning(kind: .silence, message: "silence: RMS \(db(rms)) (below \(db(T.silenceRMS)))"))
    } else {
        let p = welchPowerSpectrum(x)
        let total = p.reduce(0, +)
        if total > 0 {
            let k = p.indices.max { p[$0] < p[$1] }!
            let near = p[Swift.max(0, k - 3)...Swift.min(p.count - 1, k + 3)].reduce(0, +) / total
            if near >= T.toneEnergyFraction {
                out.append(InputWarning(kind: .tone, message: String(format: "a single frequency (%.0f Hz) holds %.1f %% of the energy: a pure tone, not speech",
                                                                     Double(k) * 16_000 / 1024, 100 * near)))
            }
            let mean = total / Double(p.count)
            let logMean = p.reduce(0) { $0 + Foundation.log(Swift.max($1, mean * 1e-12)) } / Double(p.count)
            let flatness = Foundation.exp(logMean) / mean
            if flatness >= T.noiseFlatness {
                out.append(InputWarning(kind: .noise, message: String(format: "broadband noise: spectral flatness %.2f (speech is near 0.1)", flatness)))
            }
        }
    }
    let clipped = samples.filter { Swift.abs($0) >= T.clippingLevel }.count
    if clipped >= T.clippingMinimumCount && Double(clipped) >= T.clippingFraction * Double(samples.count) {
        out.append(InputWarning(kind: .clipping, message: String(format: "clipping: %d samples (%.2f %%) at full scale", clipped,
                                                                 100 * Double(clipped) / Double(samples.count))))
    }
    return out
}

/// The one-line caveat printed for each warning.
public func caveatLine(file: String, _ w: InputWarning) -> String {
    "warning: \(file): \(w.message); the input is far from LAVA's training data (deepfake speech), so the labels below do not attribute it"
}
