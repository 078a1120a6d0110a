// `certify lava classify FILE.wav`: the released LAVA models on a WAV file (ADA dataset attribution, then ADMR model
// recognition), with confidence rejection. The weights are read from ../shared/fixtures/lava (or $CERTIFY_LAVA_FIXTURES,
// or --fixtures); golden/generate/lava_convert.py converts the .pt checkpoints.

import ArgumentParser
import Certification
import Foundation
import LAVA

struct Lava: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lava",
        abstract: "LAVA (audio deepfake attribution): run the released models.",
        subcommands: [LavaClassify.self])
}

struct LavaClassify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classify",
        abstract: "Attribute a WAV file with the released ADA and ADMR models.",
        discussion: """
            Reads PCM WAV (8-bit unsigned, 16/24/32-bit integer, 32/64-bit float; channels are averaged), resamples to \
            16 kHz with scipy.signal.resample_poly's band-limited filter (Kaiser β = 5), and runs the released models in eval \
            mode. ADA decides among CodecFake, ASVspoof2021 and FakeOrReal, and answers "unknown" when its max softmax \
            probability is below --tau-ada; ADMR then names the CodecFake generator (F01–F06) with --tau-admr. \
            Weights: --fixtures DIR, else $CERTIFY_LAVA_FIXTURES, else ../shared/fixtures/lava from the package root \
            (DIR/ADA_model.h5 and DIR/ADMR_model.h5; golden/generate/lava_convert.py converts the .pt checkpoints). \
            Exit 0 on success, 2 on bad input (not a WAV file, truncated, unsupported encoding, too short, missing weights).

            16 kHz is Certify's assumption, not a documented fact: the released code reads pre-resampled .pt tensors and the \
            sample rate is in neither the repository nor the retrievable paper text (protocols/lava/resample.yaml). A file at \
            another rate is resampled to 16 kHz before the models see it.

            Inputs far from the training data (deepfake speech) get a one-line caveat on stderr (and a "warnings" array in \
            --json) instead of a label with no caveat. The checks and thresholds are Certify's choice: silence (RMS below \
            −60 dBFS), a pure tone (≥ 80 % of the energy within ±3 bins of one frequency of the averaged 1024-point spectrum), \
            broadband noise (spectral flatness ≥ 0.5), clipping (≥ 0.1 % of the samples at ≥ 99 % of full scale) and very \
            short input (under 0.5 s). The labels are still printed: the caveat says they do not attribute such an input.
            """)

    @Argument(help: "The WAV file.") var file: String
    @Option(name: .customLong("tau-ada"), help: "ADA acceptance threshold on the max softmax probability (pipeline example: 0.85).")
    var tauADA: Double = defaultTauADA
    @Option(name: .customLong("tau-admr"), help: "ADMR acceptance threshold (pipeline example: 0.90).")
    var tauADMR: Double = defaultTauADMR
    @Option(help: "Which samples reach ADMR: 'code' (pipeline.py: any accepted ADA class) or 'paper' (only accepted CodecFake).")
    var cascade: String = "code"
    @Option(help: "Folder holding ADA_model.h5 and ADMR_model.h5.") var fixtures: String?
    @Flag(help: "Print one JSON object with every number at full precision.") var json = false
    @OptionGroup var resources: ResourceOptions

    func validate() throws {
        for (name, tau) in [("tau-ada", tauADA), ("tau-admr", tauADMR)] where !(tau >= 0 && tau <= 1) {
            throw ValidationError("--\(name) must be in [0, 1], found \(tau)")
        }
        guard ["code", "paper"].contains(cascade) else { throw ValidationError("--cascade must be 'code' or 'paper', found '\(cascade)'") }
    }

    func run() throws {
        resources.apply()
        let r: LAVAClassification
        do {
            r = try classifyWav(path: file, fixtures: fixtures ?? lavaFixturesDirectory(), tauADA: tauADA, tauADMR: tauADMR,
                                cascade: cascade == "paper" ? .paper : .officialCode)
        } catch let e as LAVAFixturesNotFound {
            throw CLIError(message: "the released LAVA weights were not found: \(e.path) does not exist; pass --fixtures DIR or set " +
                           "\(lavaFixturesEnvironment) (golden/generate/lava_convert.py converts the .pt checkpoints)")
        }
        for w in r.warnings { stderr(caveatLine(file: file, w) + "\n") }
        print(json ? r.json() : r.render())
    }
}
