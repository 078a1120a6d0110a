// `certify bench`: times forward + backward of the certified ops (best of N repetitions, one BLAS
// thread) and, given PyTorch's timings of the same cases (bench/torch_bench.py), prints the ratio.
// bench/run.sh runs both sides in one go.

import ArgumentParser
import Certification
import Foundation
import Ops
import Tensor

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time forward + backward of the certified ops (best of N); compare with PyTorch's timings.",
        discussion: "Every case builds its inputs once, then times one forward pass and the gradients of Σ outputs ⊙ cotangent with respect to every differentiable input: best of --repeats runs after one warm-up. End-to-end cases (e2e_*: the IADG training step, LAVA's released models, one DiffROAR retraining) are timed whole, best of --e2e-repeats runs without a warm-up. Use one BLAS thread (CERTIFY_BLAS_THREADS=1, the default) to compare with PyTorch under torch.set_num_threads(1); bench/run.sh runs both sides and sets OPENBLAS_CORETYPE from the CPU flags.")

    @Option(name: .shortAndLong, help: "Timed repetitions per case (the best is reported).")
    var repeats = 5

    @Option(name: .customLong("min-time"), help: "Keep repeating a case until this many seconds have been spent on it (at most 1000 runs).")
    var minTime = 1.0

    @Option(name: .customLong("torch-json"), help: "PyTorch timings from bench/torch_bench.py ({\"results\": {case: seconds}}).")
    var torchJSON: String?

    @Option(name: .customLong("json-out"), help: "Also write Certify's timings as JSON to this file.")
    var jsonOut: String?

    @Option(name: .customLong("e2e-repeats"), help: "Timed runs of each end-to-end case (e2e_*; the best is reported, no separate warm-up).")
    var e2eRepeats = 2

    @Option(help: "Only run cases whose name contains this string (several: separated by commas).")
    var only: String?

    /// A benchmark case: its name and a setup that builds the inputs and returns one timed run.
    typealias Case = (name: String, setup: () throws -> () throws -> Void)

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be ≥ 1, got \(repeats)") }
        guard minTime >= 0, minTime.isFinite else { throw ValidationError("--min-time must be ≥ 0, got \(minTime)") }
        guard e2eRepeats >= 1 else { throw ValidationError("--e2e-repeats must be ≥ 1, got \(e2eRepeats)") }
    }

    mutating func run() throws {
        var cases: [Case] = Bench.ownCases
        for (name, body) in try Bench.convolutionAndNormCases() { cases.append((name, { body })) }
        cases += Bench.paperOpCases
        let endToEnd = Bench.endToEndCases
        cases += endToEnd
        let e2eNames = Set(endToEnd.map(\.name))
        if let only {
            let parts = only.split(separator: ",").map(String.init)
            cases = cases.filter { c in parts.contains { c.name.contains($0) } }
        }
        guard !cases.isEmpty else { throw CLIError(message: "no benchmark case matches --only \(only ?? "")") }

        var torch: [String: Double] = [:]
        if let path = torchJSON { torch = try Bench.readTorchTimings(path) }
        if let jsonOut { try SafeOutput.prepare(jsonOut) }

        print("certify bench: best of ≥ \(repeats) runs and ≥ \(minTime) s per case (after 1 warm-up), BLAS threads \(BLAS.threads)")
        var results: [(String, Double)] = []
        for c in cases {
            let e2e = e2eNames.contains(c.name)
            let body = try c.setup()
            if !e2e { try body() }  // warm-up
            var best = Double.infinity, spent = 0.0, runs = 0
            while e2e ? runs < e2eRepeats : (runs < repeats || (spent < minTime && runs < 1000)) {
                let t0 = DispatchTime.now().uptimeNanoseconds
                try body()
                let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
                best = min(best, dt)
                spent += dt
                runs += 1
            }
            results.append((c.name, best))
            FileHandle.standardError.write(Data("  \(c.name): \(String(format: "%.4f", best)) s\n".utf8))
        }
        print(Bench.table(results, torch: torchJSON == nil ? nil : torch))
        if let jsonOut {
            let obj: [String: Any] = ["repeats": repeats, "blas_threads": Int(BLAS.threads),
                                      "results": Dictionary(uniqueKeysWithValues: results)]
            try SafeOutput.write(jsonOut, data: try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]))
        }
    }

    static func readTorchTimings(_ path: String) throws -> [String: Double] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError(message: "cannot read --torch-json file \(path)")
        }
        guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CLIError(message: "\(path): not a JSON object")
        }
        let results = (obj["results"] as? [String: Any]) ?? obj
        return results.compactMapValues { ($0 as? NSNumber)?.doubleValue }
    }

    static func table(_ rows: [(String, Double)], torch: [String: Double]?) -> String {
        var lines: [[String]] = [torch == nil ? ["case", "certify s"] : ["case", "certify s", "torch s", "ratio"]]
        for (name, t) in rows {
            var l = [name, String(format: "%.4f", t)]
            if let torch {
                if let pt = torch[name] { l += [String(format: "%.4f", pt), String(format: "%.2f×", t / pt)] } else { l += ["—", "—"] }
            }
            lines.append(l)
        }
        let widths = (0..<lines[0].count).map { j in lines.map { $0[j].count }.max()! }
        func fmt(_ l: [String]) -> String {
            l.enumerated().map { j, s in j == 0 ? s.padding(toLength: widths[j], withPad: " ", startingAt: 0)
                : String(repeating: " ", count: widths[j] - s.count) + s }.joined(separator: "  ")
        }
        return ([fmt(lines[0]), widths.map { String(repeating: "─", count: $0) }.joined(separator: "  ")] + lines.dropFirst().map(fmt))
            .joined(separator: "\n")
    }

    /// Forward + backward on a fresh tape: `forward` maps leaves to outputs; the gradients of
    /// Σ outputs ⊙ cotangents w.r.t. every leaf are taken.
    static func fwdBwd(_ inputs: [Tensor], _ forward: @escaping ([Var]) throws -> [Var]) throws -> () throws -> Void {
        var rng = RNG(seed: 1)
        let probe = Tape()
        let cot = try forward(inputs.map { probe.leaf($0) }).map { rng.normalTensor($0.shape) }
        return {
            let tape = Tape()
            let leaves = inputs.map { tape.leaf($0) }
            let outs = try forward(leaves)
            _ = try tape.gradients(of: Array(zip(outs, cot)), wrt: leaves)
        }
    }

    /// The cases whose ops are in this package today (case names match bench/torch_bench.py).
    static var ownCases: [Case] {
        [
            ("matmul_512x512x512", {
                var rng = RNG(seed: 2)
                return try fwdBwd([rng.normalTensor([512, 512]), rng.normalTensor([512, 512])]) { v in [try matmul(v[0], v[1])] }
            }),
            ("mha_L100_S100_E256_H8_N1", {
                var rng = RNG(seed: 3)
                let (l, s, n, e) = (100, 100, 1, 256)
                let w = 1 / Double(e).squareRoot()
                let inputs = [rng.normalTensor([l, n, e]), rng.normalTensor([s, n, e]), rng.normalTensor([s, n, e]),
                              rng.normalTensor([3 * e, e]) * w, rng.normalTensor([3 * e]) * 0.1,
                              rng.normalTensor([e, e]) * w, rng.normalTensor([e]) * 0.1]
                return try fwdBwd(inputs) { v in
                    [try multiheadAttention(query: v[0], key: v[1], value: v[2], numHeads: 8, inProjWeight: v[3], inProjBias: v[4],
                                            outProjWeight: v[5], outProjBias: v[6]).attnOutput]
                }
            }),
        ]
    }
}

// MARK: - Cases for the convolution and normalisation ops

extension Bench {
    /// Each closure runs ONE forward + backward on inputs built beforehand.
    static func convolutionAndNormCases() throws -> [(String, () throws -> Void)] {
        var rng = RNG(seed: 4)
        let x = rng.normalTensor([8, 128, 64, 64])
        let conv = try fwdBwd([x, rng.normalTensor([128, 128, 3, 3]) * (1 / 34.0), rng.normalTensor([128]) * 0.1]) { v in
            [try conv2d(v[0], weight: v[1], bias: v[2], stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1)]
        }
        let depthwise = try fwdBwd([x, rng.normalTensor([128, 1, 3, 3]) * (1 / 3.0), rng.normalTensor([128]) * 0.1]) { v in
            [try conv2d(v[0], weight: v[1], bias: v[2], stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 128)]
        }
        let bn = try fwdBwd([x, rng.normalTensor([128]) * 0.1 + 1, rng.normalTensor([128]) * 0.1]) { v in
            [try batchNorm(v[0], runningMean: Tensor(zeros: [128]), runningVar: Tensor(ones: [128]), weight: v[1], bias: v[2],
                           training: true, momentum: 0.1, eps: 1e-5).y]
        }
        return [("conv2d_3x3_8x128x64x64_c128", conv), ("depthwise_3x3_8x128x64x64", depthwise),
                ("batch_norm_train_8x128x64x64", bn)]
    }
}
