// Reading WAV files: every supported encoding decodes to the exact expected samples, channels are averaged, and every
// malformed or unsupported file is a clear InputError naming the chunk (never a trap).

import Certification
import Foundation
import Testing
@testable import LAVA

/// A RIFF/WAVE file from its parts. `fmtExtra` is appended to the 16-byte fmt body (cbSize and extensible fields).
func wavBytes(format: Int = 1, channels: Int = 1, rate: Int = 16000, bits: Int = 16, data: [UInt8],
              fmtExtra: [UInt8] = [], dataSize: Int? = nil, blockAlign: Int? = nil, extraChunk: Bool = false) -> [UInt8] {
    func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xff), UInt8((v >> 8) & 0xff)] }
    func le32(_ v: Int) -> [UInt8] { le16(v & 0xffff) + le16((v >> 16) & 0xffff) }
    let align = blockAlign ?? channels * bits / 8
    let fmt = le16(format) + le16(channels) + le32(rate) + le32(rate * align) + le16(align) + le16(bits) + fmtExtra
    var body = Array("WAVE".utf8) + Array("fmt ".utf8) + le32(fmt.count) + fmt
    if extraChunk { body += Array("LIST".utf8) + le32(3) + [1, 2, 3, 0] }   // odd size: padded to even
    body += Array("data".utf8) + le32(dataSize ?? data.count) + data
    return Array("RIFF".utf8) + le32(body.count) + body
}

func le16s(_ xs: [Int16]) -> [UInt8] { xs.flatMap { [UInt8(UInt16(bitPattern: $0) & 0xff), UInt8(UInt16(bitPattern: $0) >> 8)] } }

func decodeError(_ bytes: [UInt8]) -> String? {
    do {
        _ = try decodeWav(bytes, source: "test.wav")
        return nil
    } catch let e as InputError {
        return e.description
    } catch {
        return "unexpected error type: \(error)"
    }
}

@Suite struct WavReading {
    @Test func pcm16MonoIsScaledBy32768() throws {
        let a = try decodeWav(wavBytes(data: le16s([0, 16384, -32768, 32767, -1])), source: "t")
        #expect(a.sampleRate == 16000 && a.channels == 1 && a.encoding == .pcm16)
        #expect(a.samples == [0, 0.5, -1, 32767.0 / 32768, -1.0 / 32768])
    }

    @Test func pcm24And32AndU8() throws {
        // 24-bit: 0x400000 = 0.5, 0x800000 = −1, 0xFFFFFF = −1/2^23.
        let a = try decodeWav(wavBytes(bits: 24, data: [0, 0, 0x40, 0, 0, 0x80, 0xff, 0xff, 0xff]), source: "t")
        #expect(a.encoding == .pcm24 && a.samples == [0.5, -1, -1.0 / 8_388_608])
        let b = try decodeWav(wavBytes(bits: 32, data: [0, 0, 0, 0xc0, 0xff, 0xff, 0xff, 0x7f]), source: "t")
        #expect(b.encoding == .pcm32 && b.samples == [-0.5, 2_147_483_647.0 / 2_147_483_648])
        let c = try decodeWav(wavBytes(bits: 8, data: [128, 0, 255, 192]), source: "t")
        #expect(c.encoding == .pcmU8 && c.samples == [0, -1, 127.0 / 128, 0.5])
    }

    @Test func floatEncodings() throws {
        let f: [Float] = [0.25, -0.75, 1e-3]
        let a = try decodeWav(wavBytes(format: 3, bits: 32, data: f.flatMap { v in (0..<4).map { UInt8((v.bitPattern >> (8 * $0)) & 0xff) } }), source: "t")
        #expect(a.encoding == .float32 && a.samples == f.map(Double.init))
        let d: [Double] = [0.1, -0.3]
        let b = try decodeWav(wavBytes(format: 3, bits: 64, data: d.flatMap { v in (0..<8).map { UInt8((v.bitPattern >> (8 * UInt64($0))) & 0xff) } }), source: "t")
        #expect(b.encoding == .float64 && b.samples == d)
    }

    @Test func channelsAreAveraged() throws {
        let a = try decodeWav(wavBytes(channels: 2, data: le16s([16384, 0, -32768, 16384, 100, 300])), source: "t")
        #expect(a.channels == 2 && a.frames == 3)
        #expect(a.samples == [0.25, -0.25, 200.0 / 32768])
        let three = try decodeWav(wavBytes(channels: 3, data: le16s([3, 6, 9])), source: "t")
        #expect(three.samples == [6.0 / 32768])
    }

    @Test func extensibleFormatAndOtherChunks() throws {
        // WAVE_FORMAT_EXTENSIBLE: cbSize 22, valid bits, channel mask, sub-format GUID starting with the format code (3 = float).
        let ext: [UInt8] = [22, 0, 32, 0, 4, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xaa, 0, 0x38, 0x9b, 0x71]
        let v = Float(0.5).bitPattern
        let a = try decodeWav(wavBytes(format: 0xFFFE, bits: 32, data: (0..<4).map { UInt8((v >> (8 * $0)) & 0xff) }, fmtExtra: ext,
                                       extraChunk: true), source: "t")
        #expect(a.encoding == .float32 && a.samples == [0.5])
    }

    @Test func badFilesAreClearErrors() {
        let cases: [(String, [UInt8], String)] = [
            ("empty file", [], "not a WAV file"),
            ("text", Array("hello, this is not audio at all".utf8), "not a WAV file"),
            ("RF64", Array("RF64".utf8) + [0, 0, 0, 0] + Array("WAVE".utf8), "RF64"),
            ("truncated header", Array(wavBytes(data: le16s([1, 2])).prefix(30)), "fmt chunk"),
            ("truncated data", Array(wavBytes(data: le16s([1, 2, 3, 4])).dropLast(3)), "truncated"),
            ("partial frame", wavBytes(channels: 2, data: le16s([1, 2, 3])), "whole number"),
            ("A-law", wavBytes(format: 6, bits: 8, data: [1, 2]), "unsupported encoding: A-law"),
            ("12-bit PCM", wavBytes(bits: 12, data: [1, 2], blockAlign: 2), "unsupported encoding"),
            ("16-bit float", wavBytes(format: 3, bits: 16, data: [1, 2]), "unsupported encoding"),
            ("bad block align", wavBytes(bits: 16, data: [1, 2, 3, 4], blockAlign: 4), "block align"),
            ("zero channels", wavBytes(channels: 0, data: [], blockAlign: 2), "0 channels"),
            ("NaN float", wavBytes(format: 3, bits: 32, data: [0, 0, 0xc0, 0x7f]), "finite"),
        ]
        for (what, bytes, expected) in cases {
            let e = decodeError(bytes)
            #expect(e?.contains(expected) == true, "\(what): \(e ?? "no error")")
            #expect(e?.hasPrefix("test.wav: ") == true, "\(what): the error names the file: \(e ?? "")")
        }
        // No data chunk at all.
        let noData = Array(wavBytes(data: []).dropLast(8))
        #expect(decodeError(noData)?.contains("data chunk") == true)
    }

    @Test func emptyAndTooShortWaveforms() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lava-wav-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let empty = dir.appendingPathComponent("empty.wav").path, short = dir.appendingPathComponent("short.wav").path
        FileManager.default.createFile(atPath: empty, contents: Data(wavBytes(data: [])))
        FileManager.default.createFile(atPath: short, contents: Data(wavBytes(rate: 44100, data: le16s([Int16](repeating: 5, count: 400)))))
        #expect(throws: InputError.self) { try readWaveform16k(path: empty) }
        do { _ = try readWaveform16k(path: empty) } catch { #expect("\(error)".contains("empty waveform")) }
        do { _ = try readWaveform16k(path: short) } catch { #expect("\(error)".contains("too short: 146 samples at 16 kHz")) }
        do { _ = try readWav(path: dir.appendingPathComponent("missing.wav").path) } catch { #expect("\(error)".contains("cannot read")) }
    }

    @Test func sixteenKilohertzIsNotResampled() throws {
        let x = (0..<500).map { Foundation.sin(Double($0) * 0.1) }
        #expect(try resample(x, from: 16000) == x)
        #expect(try resample(x, from: 22050).count == (500 * 320 + 440) / 441)
    }
}
