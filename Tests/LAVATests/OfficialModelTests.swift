// The released models: the spec's reference logits, claims about the released checkpoints, classifying a WAV file
// (synthesised with espeak-ng) against the reference generator, the converter, and bad state dicts.
// Tests that need the released weights run only when ../shared/fixtures/lava (or $CERTIFY_LAVA_FIXTURES) exists.

import Certification
import Foundation
import HDF5
import Ops
import Tensor
import Testing
@testable import LAVA

let fixtures = lavaFixturesDirectory()
let haveFixtures = OfficialModels.available(directory: fixtures)
let python = "/usr/bin/python3"
let espeak = ["/usr/bin/espeak-ng", "/usr/local/bin/espeak-ng"].first { FileManager.default.isExecutableFile(atPath: $0) }
let root = packageRoot()

func scratch(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lava-tests-\(getpid())")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(name).path
}

@discardableResult
func run(_ exe: String, _ args: [String], env: [String: String] = [:]) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: root)
    p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
    let o = Pipe(), e = Pipe()
    p.standardOutput = o
    p.standardError = e
    try p.run()
    let od = o.fileHandleForReading.readDataToEndOfFile(), ed = e.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: od, as: UTF8.self), String(decoding: ed, as: UTF8.self))
}

func relClose(_ a: [Double], _ b: [Double], rtol: Double) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { Swift.abs($0 - $1) <= rtol * Swift.max(Swift.abs($1), 1e-3) }
}

/// The reference generator's logits for a WAV file: Python's wave module, scipy.signal.resample_poly, and the generator's
/// PyTorch model (golden/generate/lava.py) on the released weights.
let referenceScript = """
    import sys, json, wave, math
    import numpy as np
    sys.path.insert(0, sys.argv[1] + "/golden/generate")
    import lava
    from scipy.signal import resample_poly
    with wave.open(sys.argv[2]) as w:
        assert w.getsampwidth() == 2, "the reference reads 16-bit PCM"
        rate, ch = w.getframerate(), w.getnchannels()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768.0
    x = x.reshape(-1, ch).mean(axis=1)
    if rate != 16000:
        g = math.gcd(rate, 16000)
        x = resample_poly(x, 16000 // g, rate // g)
    torch = lava.deterministic_torch()
    out = {"samples_16k": len(x)}
    with torch.no_grad():
        for name, k in (("ADA", 3), ("ADMR", 6)):
            state = lava.load_state(lava.fixtures_dir() + "/" + name + "_model.h5")
            out["logits_" + name.lower()] = lava.official_logits(torch, state, k, x.reshape(1, 1, -1))[0].tolist()
    print(json.dumps(out))
    """

@Suite struct OfficialModelClaims {
    /// Spec A.7: the logits of the released models on 0.5·sin(2π·440·n/16000), L = 16000, and on zeros, L = 1600, as the
    /// spec's author computed them (numpy port and PyTorch agreeing to 5 decimals). The golden must agree.
    @Test func goldenMatchesSpecA7() throws {
        let f = try File.open(root + "/golden/lava/official_models.h5")
        let sine = try f.dataset("sine440_l16000/outputs/logits_ada").readDoubles()
        let sineR = try f.dataset("sine440_l16000/outputs/logits_admr").readDoubles()
        let zeros = try f.dataset("zeros_l1600/outputs/logits_ada").readDoubles()
        let zerosR = try f.dataset("zeros_l1600/outputs/logits_admr").readDoubles()
        for (got, spec) in [(sine, [1.46428, -23.30594, 14.55581]),
                            (sineR, [24.17094, -14.64526, -14.02079, -21.86404, -22.44093, -4.78582]),
                            (zeros, [-4.92809, 0.48774, 1.56589]),
                            (zerosR, [3.07325, -5.09894, -3.71335, -5.58004, -1.58886, -2.52412])] {
            #expect(zip(got, spec).allSatisfy { Swift.abs($0 - $1) <= 6e-6 }, "\(got) vs spec \(spec)")
        }
    }

    /// Spec A.4: the heads were fine-tuned with every conv frozen but in train() mode, so the released ADA/ADMR encoders have
    /// the autoencoder's conv weights and BN 1/4/7 affine, but their own BN-10 affine and running statistics; and A.3's
    /// batch counters (ADA: 48 epochs × ⌈45,000/16⌉ batches after the autoencoder's 44 × 15,665).
    @Test(.enabled(if: haveFixtures && FileManager.default.fileExists(atPath: fixtures + "/autoencoder.h5"), "LAVA fixtures not found"))
    func releasedCheckpointsShowTheFreezingQuirk() throws {
        let ae = try StateDict.load(fixtures + "/autoencoder.h5")
        for kind in OfficialModelKind.allCases {
            let m = try StateDict.load(fixtures + "/" + kind.file)
            for c in [0, 3, 6, 9] {
                #expect(m.tensors["encoder.\(c).weight"] == ae.tensors["encoder.\(c).weight"], "\(kind) conv \(c) was trained")
            }
            for b in [1, 4, 7] { #expect(m.tensors["encoder.\(b).weight"] == ae.tensors["encoder.\(b).weight"], "\(kind) BN \(b) γ moved") }
            #expect(m.tensors["encoder.10.weight"] != ae.tensors["encoder.10.weight"], "\(kind) BN 10 γ did not train")
            for b in [1, 4, 7, 10] {
                #expect(m.tensors["encoder.\(b).running_mean"] != ae.tensors["encoder.\(b).running_mean"], "\(kind) BN \(b) statistics frozen")
            }
        }
        let count = { (file: String) throws -> Int64 in try File.open(fixtures + "/" + file).dataset("encoder.1.num_batches_tracked").readInt64s()[0] }
        #expect(try count("autoencoder.h5") == 44 * 15_665)
        #expect(try count("ADA_model.h5") - count("autoencoder.h5") == 48 * 2_813)
        #expect(try count("ADMR_model.h5") - count("autoencoder.h5") == 48 * 11_748)
    }

    /// A model left in train mode (batch statistics) gives different logits from the released eval-mode model.
    @Test(.enabled(if: haveFixtures, "LAVA fixtures not found"))
    func trainModeIsCaught() throws {
        let m = try OfficialModels.model(.ada, directory: fixtures)
        var rng = RNG(seed: 7)
        let x = rng.uniformTensor([2, 1, 3200], -0.5, 0.5)
        let tape = Tape()
        let train = try attributionModel(tape.constant(x), .stateDict(m.state, tape: tape), training: true).output.logits.value
        let eval = try m.logits(x)
        #expect(zip(train.data, eval.data).map { Swift.abs($0 - $1) }.max()! > 1e-3)
    }

    /// The chunked encoder of `classify` equals the whole-waveform model (latent locality makes chunking exact).
    @Test(.enabled(if: haveFixtures, "LAVA fixtures not found"))
    func chunkedLogitsEqualWholeWaveform() throws {
        var rng = RNG(seed: 11)
        for kind in OfficialModelKind.allCases {
            let m = try OfficialModels.model(kind, directory: fixtures)
            for l in [1, 17, 999, 5003] {
                let x = (0..<l).map { _ in rng.uniform(-0.6, 0.6) }
                let whole = try m.logits(Tensor(unchecked: [1, 1, l], x)).data
                for chunk in [1, 7, 64, 4096] {
                    #expect(relClose(try m.logits(waveform: x, chunkColumns: chunk), whole, rtol: 1e-11), "\(kind) L = \(l) chunk \(chunk)")
                }
            }
        }
    }

    @Test func stateDictErrorsNameTheTensor() throws {
        var rng = RNG(seed: 3)
        let sd = randomState(.ada, &rng, head: true)
        #expect(throws: Never.self) { try OfficialModel(kind: .ada, state: sd) }
        var missing = sd
        missing.tensors["classifier.2.bias"] = nil
        do { _ = try OfficialModel(kind: .ada, state: missing); Issue.record("accepted a missing tensor") } catch {
            #expect("\(error)".contains("/classifier.2.bias: missing tensor") && "\(error)".contains("[128]"), "\(error)")
        }
        var shaped = sd
        shaped.tensors["encoder.3.weight"] = Tensor(zeros: [64, 32, 7])
        do { _ = try OfficialModel(kind: .ada, state: shaped); Issue.record("accepted a wrong shape") } catch {
            #expect("\(error)".contains("/encoder.3.weight: wrong shape [64, 32, 7]") && "\(error)".contains("[64, 32, 9]"), "\(error)")
        }
        do { _ = try OfficialModel(kind: .admr, state: sd); Issue.record("ADMR accepted ADA's head") } catch {
            #expect("\(error)".contains("classifier.4.weight: wrong shape [3, 128]"), "\(error)")
        }
        do { _ = try OfficialModel.load(.ada, directory: "/nonexistent-lava"); Issue.record("no error") } catch {
            #expect("\(error)".hasPrefix("skipped: fixtures not found: /nonexistent-lava/ADA_model.h5"), "\(error)")
        }
    }
}

@Suite(.serialized) struct ClassifyingAFile {
    /// espeak-ng speech (22,050 Hz 16-bit PCM): Certify's logits equal the reference generator's (wave + scipy resample_poly +
    /// PyTorch) on the same file.
    @Test(.enabled(if: haveFixtures && espeak != nil && FileManager.default.isExecutableFile(atPath: python),
                   "needs the LAVA fixtures, espeak-ng and /usr/bin/python3"))
    func synthesisedSpeechMatchesTheReferenceGenerator() throws {
        let wav = scratch("speech.wav"), script = scratch("reference.py")
        try run(espeak!, ["-w", wav, "Certify checks the released LAVA models on a sentence of synthetic speech."])
        try referenceScript.write(toFile: script, atomically: true, encoding: .utf8)
        let ref = try run(python, [script, root, wav], env: [lavaFixturesEnvironment: fixtures])
        #expect(ref.status == 0, "reference generator failed: \(ref.err)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(ref.out.utf8)) as? [String: Any])
        let r = try classifyWav(path: wav, fixtures: fixtures)
        #expect(r.sampleRate == 22050 && r.encoding == .pcm16)
        #expect(r.samples16k == obj["samples_16k"] as? Int)
        let ada = try #require(obj["logits_ada"] as? [Double]), admr = try #require(obj["logits_admr"] as? [Double])
        #expect(relClose(r.adaLogits, ada, rtol: 1e-10), "ADA \(r.adaLogits) vs reference \(ada)")
        #expect(relClose(r.admrLogits, admr, rtol: 1e-10), "ADMR \(r.admrLogits) vs reference \(admr)")
        print(r.render())
    }

    /// The same speech in other encodings and rates classifies like the 16-bit original, up to quantisation.
    @Test(.enabled(if: haveFixtures && espeak != nil, "needs the LAVA fixtures and espeak-ng"))
    func encodingsAgree() throws {
        let wav = scratch("speech-enc.wav")
        try run(espeak!, ["-w", wav, "Attribution of synthetic speech."])
        let a = try readWav(path: wav)
        let base = try classifyWav(path: wav, fixtures: fixtures)
        // Float32 stereo copy with identical channels: the channel mean is the original signal.
        let f32 = scratch("speech-f32.wav")
        let bytes = a.samples.flatMap { v -> [UInt8] in
            let b = Float(v).bitPattern
            let one = (0..<4).map { UInt8((b >> (8 * $0)) & 0xff) }
            return one + one
        }
        FileManager.default.createFile(atPath: f32, contents: Data(wavBytes(format: 3, channels: 2, rate: a.sampleRate, bits: 32, data: bytes)))
        let r = try classifyWav(path: f32, fixtures: fixtures)
        #expect(r.channels == 2 && r.encoding == .float32)
        #expect(relClose(r.adaLogits, base.adaLogits, rtol: 1e-9) && relClose(r.admrLogits, base.admrLogits, rtol: 1e-9))
    }

    /// The `certify` of this test binary's own build (its sibling), else .build/release or .build/debug.
    static let certifyBinary: String? = [
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("certify").path,
        root + "/.build/release/certify", root + "/.build/debug/certify",
    ].first { FileManager.default.isExecutableFile(atPath: $0) }
    /// Whether `certify lava` is wired into the CLI (the lead adds `Lava.self` to Certify's subcommands).
    static let lavaCommandWired: Bool = {
        guard let b = certifyBinary else { return false }
        return (try? run(b, ["lava", "classify", "--help"]).status) == 0
    }()

    @Test(.enabled(if: lavaCommandWired && haveFixtures && espeak != nil, "needs `certify lava` wired, the LAVA fixtures and espeak-ng"))
    func commandLine() throws {
        let b = Self.certifyBinary!
        let wav = scratch("cli.wav")
        try run(espeak!, ["-w", wav, "Hello from Certify."])
        let ok = try run(b, ["lava", "classify", wav, "--tau-ada", "0.3", "--tau-admr", "0.5"], env: [lavaFixturesEnvironment: fixtures])
        #expect(ok.status == 0 && ok.out.contains("ADA ") && ok.out.contains("ADMR") && ok.out.contains("22050 Hz"), "\(ok.out + ok.err)")
        let js = try run(b, ["lava", "classify", wav, "--json"], env: [lavaFixturesEnvironment: fixtures])
        #expect(js.status == 0 && (try? JSONSerialization.jsonObject(with: Data(js.out.utf8))) != nil, "\(js.out + js.err)")
        // Bad input: exit 2 with one clear line.
        let text = scratch("not.wav")
        try "just text".write(toFile: text, atomically: true, encoding: .utf8)
        for (args, expected) in [([text], "not a WAV file"), ([scratch("absent.wav")], "cannot read"),
                                 ([wav, "--tau-ada", "1.5"], "--tau-ada must be in [0, 1]"), ([wav, "--cascade", "both"], "--cascade"),
                                 ([wav, "--fixtures", "/nonexistent-lava"], "weights were not found")] {
            let r = try run(b, ["lava", "classify"] + args)
            #expect(r.status == 2 && r.err.contains(expected), "\(args): \(r.status) \(r.err)")
        }
        // A state dict with a missing tensor, and one with a wrongly shaped tensor.
        for (what, edit) in [("missing", { (f: File) in try f.root.remove("classifier.2.bias") }),
                             ("shape", { (f: File) in
                                 try f.root.remove("attention.0.bias")
                                 _ = try f.root.write("attention.0.bias", doubles: [Double](repeating: 0, count: 255), shape: [255])
                             })] as [(String, (File) throws -> Void)] {
            let dir = scratch("bad-\(what)")
            try? FileManager.default.removeItem(atPath: dir)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for k in OfficialModelKind.allCases { try FileManager.default.copyItem(atPath: fixtures + "/" + k.file, toPath: dir + "/" + k.file) }
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: dir + "/ADA_model.h5")
            do {   // the file closes when `f` goes away, before certify opens it
                let f = try File.open(dir + "/ADA_model.h5", mode: .readWrite)
                try edit(f)
                try f.flush()
            }
            let r = try run(b, ["lava", "classify", wav, "--fixtures", dir])
            let expected = what == "missing" ? "/classifier.2.bias: missing tensor" : "/attention.0.bias: wrong shape [255]"
            #expect(r.status == 2 && r.err.contains(expected) && r.err.split(separator: "\n").count == 1, "\(what): \(r.status) \(r.err)")
        }
    }

    /// lava_convert.py turns a .pt state dict into the fixtures' layout: a checkpoint re-saved from the fixture converts back
    /// to the same tensors, and a checkpoint of the wrong kind is refused with the tensor named.
    @Test(.enabled(if: haveFixtures && FileManager.default.isExecutableFile(atPath: python), "needs the LAVA fixtures and /usr/bin/python3"))
    func converterRoundTrip() throws {
        let pt = scratch("ADA_model.pt"), out = scratch("ADA_model.h5")
        let save = "import sys, h5py, torch, numpy as np\nf = h5py.File(sys.argv[1])\ntorch.save({k: torch.from_numpy(np.asarray(f[k][()])) for k in f}, sys.argv[2])\n"
        let s = try run(python, ["-c", save, fixtures + "/ADA_model.h5", pt])
        #expect(s.status == 0, "\(s.err)")
        let c = try run(python, [root + "/golden/generate/lava_convert.py", pt, out, "--kind", "ada"])
        #expect(c.status == 0, "\(c.err)")
        let a = try StateDict.load(out), b = try StateDict.load(fixtures + "/ADA_model.h5")
        #expect(a.tensors == b.tensors)
        let wrong = try run(python, [root + "/golden/generate/lava_convert.py", pt, scratch("x.h5"), "--kind", "admr"])
        #expect(wrong.status != 0 && wrong.err.contains("classifier.4.weight"), "\(wrong.err)")
    }
}

@Suite struct PaperClaims {
    /// The cascade divergence: the paper gates ADMR on an accepted CodecFake; the released pipeline runs it for any accepted class.
    @Test func cascadeGateDiffersOnlyForAcceptedNonCodecFake() throws {
        // Rows: ADA accepts CodecFake; accepts ASVspoof2021; rejects.
        let ada = Tensor(unchecked: [3, 3], [9, 0, 0, 0, 9, 0, 1, 1, 1])
        let admr = Tensor(unchecked: [3, 6], [0, 8, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        let code = try cascade(adaLogits: ada, admrLogits: admr, tauADA: 0.85, tauADMR: 0.9, mode: .officialCode)
        let paper = try cascade(adaLogits: ada, admrLogits: admr, tauADA: 0.85, tauADMR: 0.9, mode: .paper)
        #expect(code.adaDecision == [0, 1, -1] && paper.adaDecision == [0, 1, -1])
        #expect(code.admrDecision == [1, 0, -2])
        #expect(paper.admrDecision == [1, -2, -2])
    }

    /// The τ search picks the FIRST grid point reaching the best qualifying accuracy, and returns 0 when nothing qualifies.
    @Test func thresholdSearchTiesAndFallback() throws {
        // Accuracy is 1 on {c ≥ t} for every t ≥ 0.6, and coverage stays ≥ 0.8 up to t = 0.7: τ is the grid point just ≥ 0.6.
        let conf = [0.5] + [Double](repeating: 0.7, count: 9)
        let s = try findConfidenceThreshold(confidence: conf, predicted: [1] + [Int](repeating: 0, count: 9),
                                            truth: [Int](repeating: 0, count: 10))
        #expect(s.tau == thresholdGrid(points: 500).first { $0 > 0.5 })
        let none = try findConfidenceThreshold(confidence: [0.9, 0.9], predicted: [1, 1], truth: [0, 0])
        #expect(none.tau == 0)
    }
}
