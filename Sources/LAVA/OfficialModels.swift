// lava.official_models — the released ADA and ADMR models (models/ADA_model.pt, models/ADMR_model.pt of
// github.com/adipiz99/LAVA-framework at 90d889e, MIT), read at evaluation time from HDF5 conversions of their state dicts.
// Official code: pipeline.py::run_pipeline (eval mode, ADA then ADMR). Spec A.4, A.7.

import Certification
import Foundation
import Ops
import Tensor

/// The environment variable that overrides where the released weights are.
public let lavaFixturesEnvironment = "CERTIFY_LAVA_FIXTURES"
/// The default fixtures folder, relative to the package root.
public let lavaFixturesDefault = "../shared/fixtures/lava"

/// The folder holding ADA_model.h5 and ADMR_model.h5: $CERTIFY_LAVA_FIXTURES, else ../shared/fixtures/lava from the package root.
public func lavaFixturesDirectory() -> String {
    if let d = ProcessInfo.processInfo.environment[lavaFixturesEnvironment], !d.isEmpty { return d }
    let fromRoot = URL(fileURLWithPath: packageRoot()).appendingPathComponent(lavaFixturesDefault).standardizedFileURL.path
    if FileManager.default.fileExists(atPath: fromRoot) { return fromRoot }
    // A copy of the protocols and goldens elsewhere (CERTIFY_ROOT) still finds the fixtures beside the
    // checkout this binary was built from.
    let checkout = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let fromCheckout = checkout.appendingPathComponent(lavaFixturesDefault).standardizedFileURL.path
    return FileManager.default.fileExists(atPath: fromCheckout) ? fromCheckout : fromRoot
}

/// The released weights are not where they should be. Its description starts with "skipped: fixtures not found" so that a
/// certification report shows the case as skipped rather than as a numerical failure.
public struct LAVAFixturesNotFound: SkippableError, CustomStringConvertible, Sendable {
    public var path: String
    public var skipReason: String { description }
    public var description: String {
        "skipped: fixtures not found: \(path) does not exist (the released LAVA weights ADA_model.h5 and ADMR_model.h5; " +
            "set \(lavaFixturesEnvironment) to their folder, or convert the .pt checkpoints with golden/generate/lava_convert.py)"
    }
}

/// Which released model.
public enum OfficialModelKind: String, Sendable, CaseIterable {
    case ada = "ADA", admr = "ADMR"
    public var file: String { rawValue + "_model.h5" }
    public var architecture: LAVAArchitecture { self == .ada ? .ada : .admr }
    /// Class names: ADA's datasets (split_datasets.py); ADMR's CodecFake generators F01–F06 (fakeDataset.py; the codec behind
    /// each F0k is not in the repository).
    public var classNames: [String] {
        self == .ada ? ["CodecFake", "ASVspoof2021", "FakeOrReal"] : (1...6).map { "F0\($0)" }
    }
}

/// A released model: its validated state dict.
public struct OfficialModel: Sendable {
    public var kind: OfficialModelKind
    public var state: StateDict

    /// Loads and validates `<directory>/<ADA|ADMR>_model.h5` against the official architecture.
    public static func load(_ kind: OfficialModelKind, directory: String = lavaFixturesDirectory()) throws -> OfficialModel {
        let path = (directory as NSString).appendingPathComponent(kind.file)
        guard FileManager.default.fileExists(atPath: path) else { throw LAVAFixturesNotFound(path: path) }
        return try OfficialModel(kind: kind, state: StateDict.load(path))
    }

    /// Validates a state dict (every tensor present, official shapes, finite).
    public init(kind: OfficialModelKind, state: StateDict) throws {
        let a = kind.architecture
        try state.validate(a.encoderWeights + a.encoderStatistics + a.headWeights, what: "the released \(kind.rawValue) model")
        self.kind = kind
        self.state = state
    }

    /// Eval-mode logits [B, K] of waveforms [B, 1, L].
    public func logits(_ waveform: Tensor) throws -> Tensor {
        let tape = Tape()
        return try attributionModel(tape.constant(waveform), .stateDict(state, tape: tape)).output.logits.value
    }

    /// Eval-mode latent [B, 256, ⌈L/16⌉].
    public func latent(_ waveform: Tensor) throws -> Tensor {
        let tape = Tape()
        return try lavaEncoder(tape.constant(waveform), .stateDict(state, tape: tape), training: false).z.value
    }
}

/// The released models, loaded once per process and folder.
public enum OfficialModels {
    private final class Cache: @unchecked Sendable {
        let lock = NSLock()
        var models: [String: OfficialModel] = [:]
    }
    private static let cache = Cache()

    public static func model(_ kind: OfficialModelKind, directory: String = lavaFixturesDirectory()) throws -> OfficialModel {
        let key = directory + "/" + kind.file
        cache.lock.lock()
        defer { cache.lock.unlock() }
        if let m = cache.models[key] { return m }
        let m = try OfficialModel.load(kind, directory: directory)
        cache.models[key] = m
        return m
    }

    /// Whether the fixtures folder holds both released models.
    public static func available(directory: String = lavaFixturesDirectory()) -> Bool {
        OfficialModelKind.allCases.allSatisfy { FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent($0.file)) }
    }
}

let officialModelsMethod = Method("lava.official_models", properties: [
    Property("eval_batch_independence") { rng in
        let m = try OfficialModels.model(rng.bernoulli(0.5) ? .ada : .admr)
        let l = 200 + rng.int(below: 800)
        let x1 = randomWaveform(1, l, &rng), both = try Tensor.concatenate([x1, randomWaveform(1, l, &rng)], axis: 0)
        try requireClose(try m.logits(both).slice(axis: 0, 0..<1), try m.logits(x1), Tolerance(rtol: 1e-12, atol: 1e-12),
                         "\(m.kind.rawValue) logits of x1 inside a batch")
    },
    Property("latent_locality") { rng in
        let m = try OfficialModels.model(.ada)
        let l = 400 + rng.int(below: 1300), extra = 16 + rng.int(below: 100)
        let x = randomWaveform(1, l, &rng)
        let z1 = try m.latent(x), z2 = try m.latent(try Tensor.concatenate([x, randomWaveform(1, extra, &rng)], axis: 2))
        let t1 = z1.shape[2], t2 = z2.shape[2], c = z1.shape[1]
        var lastChanged = 0.0
        for ch in 0..<c {
            for t in 0..<t1 {
                let a = z1.data[ch * t1 + t], b = z2.data[ch * t2 + t]
                if 16 * t + 60 <= l - 1 {
                    try require(Swift.abs(a - b) <= 1e-12 * (1 + Swift.abs(a)), "L = \(l): column \(t) changed by appending samples")
                } else if t == t1 - 1 {
                    lastChanged = Swift.max(lastChanged, Swift.abs(a - b))
                }
            }
        }
        try require(lastChanged > 0, "L = \(l): the last column \(t1 - 1) (which sees the appended samples) did not change")
    },
]) { ctx in
    let x = try ctx.tensor("waveform")
    guard x.rank == 3, x.shape[1] == 1, x.shape[0] >= 1, x.shape[2] >= 1 else {
        throw InputError(file: ctx.data.source, object: "/\(ctx.data.name)/inputs/waveform", "expected [B, 1, L] waveforms, found \(x.shape)")
    }
    return ["logits_ada": ctx.constant(try OfficialModels.model(.ada).logits(x)),
            "logits_admr": ctx.constant(try OfficialModels.model(.admr).logits(x))]
}
