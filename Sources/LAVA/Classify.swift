// Classifying a WAV file with the released models, as pipeline.py::run_pipeline does for one waveform: ADA (dataset
// attribution) with confidence rejection, then ADMR (model recognition) per the cascade. Used by `certify lava classify`.
// Long waveforms are encoded in chunks of latent columns; this is exact because in eval mode latent column t depends only on
// x[16t − 60 … 16t + 60] (spec A.8.3), so each chunk is cut with a halo of 64 samples on both sides.

import Certification
import Foundation
import Ops
import Tensor

/// The thresholds of the official pipeline example (README / pipeline.py): τ_ADA 0.85, τ_ADMR 0.90.
public let defaultTauADA = 0.85, defaultTauADMR = 0.90

extension OfficialModel {
    /// Eval-mode logits of one waveform, encoding at most `chunkColumns` latent columns at a time (memory stays bounded
    /// for long files). Equal to `logits(_:)` on [1, 1, L] up to rounding.
    public func logits(waveform x: [Double], chunkColumns: Int = 2048) throws -> [Double] {
        guard !x.isEmpty else { throw ShapeError("lava", "empty waveform") }
        guard chunkColumns >= 1 else { throw ShapeError("lava", "chunkColumns must be ≥ 1, found \(chunkColumns)") }
        let l = x.count, t = latentLength(l)
        let c = kind.architecture.channels[4]
        var sums = [Double](repeating: 0, count: c)
        var t0 = 0
        while t0 < t {
            let t1 = min(t, t0 + chunkColumns)
            // Columns t0..<t1 read x[16·t0 − 60 … 16·(t1 − 1) + 60]; start on a multiple of 16 so the strides line up.
            let a = max(0, 16 * t0 - 64), b = min(l, 16 * (t1 - 1) + 61)
            let tape = Tape()
            let w = Weights.stateDict(state, tape: tape)
            let z = try lavaEncoder(tape.constant(Tensor(unchecked: [1, 1, b - a], Array(x[a..<b]))), w, training: false).z
            let gate = sigmoid(try conv1d(z, weight: try w.v("attention.0.weight"), bias: try w.v("attention.0.bias"))).value
            let tc = z.shape[2], off = t0 - a / 16
            for ch in 0..<c {
                var s = 0.0
                for j in off..<(off + t1 - t0) { s += z.value.data[ch * tc + j] * gate.data[ch * tc + j] }
                sums[ch] += s
            }
            t0 = t1
        }
        let tape = Tape()
        let w = Weights.stateDict(state, tape: tape)
        let pooled = tape.constant(Tensor(unchecked: [1, c], sums.map { $0 / Double(t) }))
        let h = relu(try linear(pooled, weight: try w.v("classifier.2.weight"), bias: try w.v("classifier.2.bias")))
        return try linear(h, weight: try w.v("classifier.4.weight"), bias: try w.v("classifier.4.bias")).value.data
    }
}

/// The result of classifying one file.
public struct LAVAClassification: Sendable {
    public var file: String
    public var sampleRate: Int
    public var channels: Int
    public var encoding: WavEncoding
    public var frames: Int
    /// Samples after resampling to 16 kHz.
    public var samples16k: Int
    public var tauADA: Double
    public var tauADMR: Double
    public var cascade: CascadeMode
    public var adaLogits: [Double]
    /// ADMR logits (computed for every file; reports omit them when the cascade did not use ADMR).
    public var admrLogits: [Double]
    public var adaConfidence: Double
    /// ADA class, or −1 (unknown).
    public var adaDecision: Int
    /// ADMR confidence (NaN when ADMR does not run).
    public var admrConfidence: Double
    /// ADMR class, −1 (unknown) or −2 (not run).
    public var admrDecision: Int
    /// Why the input is far from the training distribution (empty when no check fires; see `inputWarnings`).
    public var warnings: [InputWarning] = []

    func describe(_ kind: OfficialModelKind, logits: [Double], confidence: Double, decision: Int, tau: Double) -> String {
        let names = kind.classNames
        if decision == notRunLabel {
            // Logits the cascade did not use are not shown.
            return "not run (\(cascade == .paper ? "the paper's cascade runs ADMR only on accepted CodecFake" : "ADA rejected the sample"))"
        }
        let probs = try! Tensor(unchecked: [1, logits.count], logits).softmax(axis: 1).data
        let best = probs.indices.max { probs[$0] < probs[$1] }!
        let verdict: String
        switch decision {
        case notRunLabel:
            verdict = "not run (\(cascade == .paper ? "the paper's cascade runs ADMR only on accepted CodecFake" : "ADA rejected the sample"))"
        case rejectedLabel:
            verdict = "unknown: best \(names[best]) (class \(best)), confidence \(String(format: "%.4f", confidence)) < τ \(tau)"
        default:
            verdict = "\(names[decision]) (class \(decision)), confidence \(String(format: "%.4f", confidence)) ≥ τ \(tau)"
        }
        let l = logits.map { String(format: "%.5f", $0) }.joined(separator: ", ")
        let p = zip(names, probs).map { "\($0) \(String(format: "%.4f", $1))" }.joined(separator: ", ")
        return "\(verdict)\n          logits [\(l)]\n          softmax \(p)"
    }

    /// The human-readable report.
    public func render() -> String {
        let secs = Double(frames) / Double(sampleRate)
        return """
            file      \(file): \(sampleRate) Hz, \(channels) channel\(channels == 1 ? "" : "s (averaged)"), \(encoding.rawValue), \
            \(String(format: "%.3f", secs)) s → \(samples16k) samples at 16 kHz
            ADA       \(describe(.ada, logits: adaLogits, confidence: adaConfidence, decision: adaDecision, tau: tauADA))
            ADMR      \(describe(.admr, logits: admrLogits, confidence: admrConfidence, decision: admrDecision, tau: tauADMR))
            cascade   \(cascade == .officialCode ? "official code (ADMR runs for any accepted ADA class)" : "paper (ADMR runs only for accepted CodecFake)")
            """ + (warnings.isEmpty ? "" : "\ncaveat    far from the training data (\(warnings.map(\.kind.rawValue).joined(separator: ", "))): the labels do not attribute this input")
    }

    /// A JSON object with every number at full precision.
    public func json() -> String {
        func num(_ x: Double) -> String { x.isNaN ? "null" : String(format: "%.17g", x) }
        func arr(_ xs: [Double]) -> String { "[" + xs.map(num).joined(separator: ", ") + "]" }
        func esc(_ s: String) -> String { s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") }
        let escaped = esc(file)
        let warn = "[" + warnings.map { "{\"check\": \"\($0.kind.rawValue)\", \"message\": \"\(esc($0.message))\"}" }.joined(separator: ", ") + "]"
        return """
            {"file": "\(escaped)", "sample_rate": \(sampleRate), "channels": \(channels), "encoding": "\(encoding.rawValue)", \
            "frames": \(frames), "samples_16k": \(samples16k), "tau_ada": \(num(tauADA)), "tau_admr": \(num(tauADMR)), \
            "cascade": "\(cascade == .officialCode ? "code" : "paper")", "logits_ada": \(arr(adaLogits)), "logits_admr": \(admrDecision == notRunLabel ? "null" : arr(admrLogits)), \
            "confidence_ada": \(num(adaConfidence)), "decision_ada": \(adaDecision), "confidence_admr": \(num(admrConfidence)), \
            "decision_admr": \(admrDecision), "warnings": \(warn)}
            """
    }
}

/// Reads, resamples and classifies a WAV file with the released models in `fixtures`.
public func classifyWav(path: String, fixtures: String = lavaFixturesDirectory(), tauADA: Double = defaultTauADA,
                        tauADMR: Double = defaultTauADMR, cascade mode: CascadeMode = .officialCode) throws -> LAVAClassification {
    for (name, tau) in [("tau-ada", tauADA), ("tau-admr", tauADMR)] where !(tau >= 0 && tau <= 1) {
        throw ShapeError("lava classify", "--\(name) must be in [0, 1], found \(tau)")
    }
    // Multiply-adds per 16 kHz sample of both models: four stride-2 k9 convolutions, then the 1×1 attention at T = L/16.
    let ch = LAVAArchitecture.officialChannels
    var perModel = Double(ch[4] * ch[4]) / 16
    for i in 1...4 {
        let macs = Double(ch[i - 1] * ch[i] * 9)
        perModel += macs / Double(1 << i)
    }
    let (audio, x) = try readWaveform16k(path: path, operationsPerSample: 2 * perModel)
    let ada = try OfficialModels.model(.ada, directory: fixtures), admr = try OfficialModels.model(.admr, directory: fixtures)
    let la = try ada.logits(waveform: x), lr = try admr.logits(waveform: x)
    let r = try cascade(adaLogits: Tensor(unchecked: [1, la.count], la), admrLogits: Tensor(unchecked: [1, lr.count], lr),
                        tauADA: tauADA, tauADMR: tauADMR, mode: mode)
    return LAVAClassification(file: path, sampleRate: audio.sampleRate, channels: audio.channels, encoding: audio.encoding,
                              frames: audio.frames, samples16k: x.count, tauADA: tauADA, tauADMR: tauADMR, cascade: mode,
                              adaLogits: la, admrLogits: lr, adaConfidence: r.adaConfidence[0], adaDecision: r.adaDecision[0],
                              admrConfidence: r.admrConfidence[0], admrDecision: r.admrDecision[0],
                              warnings: inputWarnings(samples: audio.samples, waveform16k: x))
}
