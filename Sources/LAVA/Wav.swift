// Reading a WAV file into LAVA's input: RIFF/WAVE with PCM integer samples (8-bit unsigned, 16-, 24- or 32-bit signed)
// or IEEE float (32- or 64-bit), also inside WAVE_FORMAT_EXTENSIBLE; channels averaged to mono; resampled to 16 kHz with
// `resample` (scipy.signal.resample_poly's band-limited polyphase filter). Integer samples are scaled to [−1, 1) by
// 2^(bits−1) (torchaudio.load's normalisation); float samples are taken as stored. No peak normalisation is applied
// (the paper's normalisation of its .pt tensors is not in the released code, spec A.1).

import Certification
import Foundation
import Tensor

/// The sample encodings Certify reads.
public enum WavEncoding: String, Sendable {
    case pcmU8 = "8-bit unsigned PCM", pcm16 = "16-bit PCM", pcm24 = "24-bit PCM", pcm32 = "32-bit PCM"
    case float32 = "32-bit float", float64 = "64-bit float"
}

/// A decoded WAV file: mono samples (the mean of the channels) at the file's rate.
public struct WavAudio: Sendable {
    public var sampleRate: Int
    public var channels: Int
    public var encoding: WavEncoding
    /// Frames (samples per channel).
    public var frames: Int { samples.count }
    /// The channel mean of every frame, scaled to [−1, 1] for integer encodings.
    public var samples: [Double]
}

/// The shortest waveform LAVA classifies, after resampling to 16 kHz: 160 samples (10 ms; ten latent steps).
public let minimumClassifySamples = 160

/// Decodes WAV bytes. Errors name the file, the chunk and what was expected.
public func decodeWav(_ bytes: [UInt8], source: String) throws -> WavAudio {
    func fail(_ object: String, _ message: String) -> InputError { InputError(file: source, object: object, message) }
    func u16(_ o: Int) -> Int { Int(bytes[o]) | Int(bytes[o + 1]) << 8 }
    func u32(_ o: Int) -> Int { u16(o) | u16(o + 2) << 16 }
    func tag(_ o: Int) -> String { String(decoding: bytes[o..<o + 4], as: UTF8.self) }

    guard bytes.count >= 12 else {
        throw fail("RIFF header", "not a WAV file: \(bytes.count) bytes, expected at least a 12-byte RIFF/WAVE header")
    }
    guard tag(0) == "RIFF", tag(8) == "WAVE" else {
        let what = tag(0) == "RF64" ? "an RF64 file (64-bit WAV), which is not supported" : "no 'RIFF'…'WAVE' signature"
        throw fail("RIFF header", "not a WAV file: \(what); expected a RIFF/WAVE file")
    }
    var format: (code: Int, channels: Int, rate: Int, blockAlign: Int, bits: Int)?
    var dataRange: Range<Int>?
    var o = 12
    while o + 8 <= bytes.count {
        let id = tag(o), size = u32(o + 4)
        let body = o + 8
        if id == "fmt " {
            guard size >= 16, body + 16 <= bytes.count else {
                throw fail("fmt chunk", "truncated: \(min(size, bytes.count - body)) bytes, expected at least 16")
            }
            var code = u16(body)
            if code == 0xFFFE {   // WAVE_FORMAT_EXTENSIBLE: the format is the first two bytes of the sub-format GUID
                guard size >= 40, body + 40 <= bytes.count else {
                    throw fail("fmt chunk", "truncated WAVE_FORMAT_EXTENSIBLE header: expected 40 bytes")
                }
                code = u16(body + 24)
            }
            format = (code, u16(body + 2), u32(body + 4), u16(body + 12), u16(body + 14))
        } else if id == "data" {
            guard format != nil else { throw fail("data chunk", "comes before the fmt chunk; expected fmt first") }
            guard body + size <= bytes.count else {
                throw fail("data chunk", "truncated: the chunk declares \(size) bytes, only \(bytes.count - body) are present")
            }
            dataRange = body..<(body + size)
            break
        }
        o = body + size + (size & 1)   // chunks are padded to an even size
    }
    guard let f = format else { throw fail("fmt chunk", "missing; expected a 'fmt ' chunk describing the samples") }
    guard let data = dataRange else { throw fail("data chunk", "missing or truncated; expected a 'data' chunk with the samples") }
    guard f.channels >= 1 else { throw fail("fmt chunk", "0 channels; expected at least 1") }
    guard f.rate >= 1 else { throw fail("fmt chunk", "sample rate \(f.rate); expected a positive rate") }
    let encoding: WavEncoding
    switch (f.code, f.bits) {
    case (1, 8): encoding = .pcmU8
    case (1, 16): encoding = .pcm16
    case (1, 24): encoding = .pcm24
    case (1, 32): encoding = .pcm32
    case (3, 32): encoding = .float32
    case (3, 64): encoding = .float64
    default:
        let name = [1: "PCM", 3: "IEEE float", 6: "A-law", 7: "µ-law", 2: "ADPCM", 0x11: "IMA ADPCM", 0x55: "MP3"][f.code] ?? "format 0x\(String(f.code, radix: 16))"
        throw fail("fmt chunk", "unsupported encoding: \(name), \(f.bits) bits; expected PCM 8/16/24/32-bit or IEEE float 32/64-bit")
    }
    let width = f.bits / 8
    guard f.blockAlign == width * f.channels else {
        throw fail("fmt chunk", "block align \(f.blockAlign); expected \(width * f.channels) (\(f.channels) channel(s) × \(width) bytes)")
    }
    guard data.count % f.blockAlign == 0 else {
        throw fail("data chunk", "truncated: \(data.count) bytes is not a whole number of \(f.blockAlign)-byte frames")
    }
    let frames = data.count / f.blockAlign
    var out = [Double](repeating: 0, count: frames)
    bytes.withUnsafeBufferPointer { bp in
        let b = bp.baseAddress! + data.lowerBound
        for t in 0..<frames {
            var acc = 0.0
            for c in 0..<f.channels {
                let p = b + t * f.blockAlign + c * width
                let v: Double
                switch encoding {
                case .pcmU8: v = (Double(p[0]) - 128) / 128
                case .pcm16: v = Double(Int16(bitPattern: UInt16(p[0]) | UInt16(p[1]) << 8)) / 32768
                case .pcm24:
                    let raw = Int32(bitPattern: UInt32(p[0]) << 8 | UInt32(p[1]) << 16 | UInt32(p[2]) << 24) >> 8
                    v = Double(raw) / 8_388_608
                case .pcm32:
                    v = Double(Int32(bitPattern: UInt32(p[0]) | UInt32(p[1]) << 8 | UInt32(p[2]) << 16 | UInt32(p[3]) << 24)) / 2_147_483_648
                case .float32:
                    v = Double(Float(bitPattern: UInt32(p[0]) | UInt32(p[1]) << 8 | UInt32(p[2]) << 16 | UInt32(p[3]) << 24))
                case .float64:
                    var bits: UInt64 = 0
                    for k in 0..<8 { bits |= UInt64(p[k]) << (8 * UInt64(k)) }
                    v = Double(bitPattern: bits)
                }
                acc += v
            }
            out[t] = acc / Double(f.channels)
        }
    }
    if let i = out.firstIndex(where: { !$0.isFinite }) {
        throw fail("data chunk", "sample \(i) is \(out[i]); expected finite samples")
    }
    return WavAudio(sampleRate: f.rate, channels: f.channels, encoding: encoding, samples: out)
}

/// Reads a WAV file.
public func readWav(path: String) throws -> WavAudio {
    guard let d = FileManager.default.contents(atPath: path) else {
        throw InputError(file: path, object: "file", "cannot read the file (missing or unreadable); expected a WAV file")
    }
    return try decodeWav([UInt8](d), source: path)
}

/// Reads a WAV file as LAVA's input: mono, 16 kHz, at least `minimumClassifySamples` samples.
/// `operationsPerSample`, when given, is the cost per 16 kHz sample of what follows (the models): the whole
/// computation is checked against the budget before resampling.
public func readWaveform16k(path: String, minimumSamples: Int = minimumClassifySamples,
                            operationsPerSample: Double = 0) throws -> (audio: WavAudio, waveform: [Double]) {
    let a = try readWav(path: path)
    guard a.frames > 0 else { throw InputError(file: path, object: "data chunk", "empty waveform: 0 samples; expected audio") }
    let n16 = (Double(a.frames) * Double(lavaSampleRate) / Double(a.sampleRate)).rounded(.up)
    do {
        try Budget.require(elements: n16, "the waveform resampled to 16 kHz (\(String(format: "%.0f", n16)) samples)")
        if operationsPerSample > 0 {
            try Budget.requireWork(operations: n16 * operationsPerSample,
                                   "classifying \(a.frames) samples at \(a.sampleRate) Hz (\(String(format: "%.0f", n16)) samples, " +
                                   "\(String(format: "%.0f", n16 / Double(lavaSampleRate))) s at 16 kHz)")
        }
    } catch let e as ShapeError {
        throw InputError(file: path, object: "fmt chunk", e.description)
    }
    let w: [Double]
    do { w = try resample(a.samples, from: a.sampleRate, to: lavaSampleRate) } catch let e as ShapeError {
        throw InputError(file: path, object: "fmt chunk", "sample rate \(a.sampleRate) Hz: \(e.description)")
    }
    guard w.count >= minimumSamples else {
        throw InputError(file: path, object: "data chunk",
                         "too short: \(w.count) samples at 16 kHz (\(a.frames) at \(a.sampleRate) Hz); expected at least \(minimumSamples) (\(minimumSamples * 1000 / lavaSampleRate) ms)")
    }
    return (a, w)
}
