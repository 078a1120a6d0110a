// Gradient checks by central differences in Float64, with torch.autograd.gradcheck's defaults
// (eps 1e-6, atol 1e-5, rtol 1e-3) as the floor, in two modes:
//   full  — the whole numerical Jacobian against the analytical one, block by (output i, input j);
//   fast  — PyTorch's fast mode: vᵀ(J u) by one directional difference against (vᵀJ) u from one VJP,
//           u and v uniform in [0, 1) and unit-normalised, atol scaled by Σu·Σv.
// On failure the message names output i and input j, prints both Jacobian blocks and the worst element.

import Foundation
import Tensor

public struct GradientCheckOptions: Sendable {
    public var eps = 1e-6
    public var atol = 1e-5
    public var rtol = 1e-3
    public init(eps: Double = 1e-6, atol: Double = 1e-5, rtol: Double = 1e-3) {
        self.eps = eps
        self.atol = atol
        self.rtol = rtol
    }
}

public enum GradientCheckMode: String, Sendable, Codable, CaseIterable { case full, fast }

public struct GradientCheckResult: Sendable, CustomStringConvertible {
    public var mode: GradientCheckMode
    public var passed: Bool
    /// Greatest |analytical − numerical| seen.
    public var worstAbs: Double
    public var message: String
    public var description: String { "gradcheck(\(mode.rawValue)): \(passed ? "ok" : "FAILED") worst |Δ| \(fmt(worstAbs))\(passed ? "" : "\n" + message)" }
}

public enum GradientCheck {
    public typealias Forward = ([String: Tensor]) throws -> [String: Tensor]
    public typealias VJP = ([String: Tensor]) throws -> [String: Tensor]

    /// Runs one mode. `x` holds the differentiable inputs; `outputs` names the differentiated outputs.
    public static func check(mode: GradientCheckMode, f: Forward, vjp: VJP, x: [String: Tensor], outputs: [String],
                             options: GradientCheckOptions = .init(), seed: UInt64 = 0) throws -> GradientCheckResult {
        switch mode {
        case .full: return try full(f: f, vjp: vjp, x: x, outputs: outputs, options: options)
        case .fast: return try fast(f: f, vjp: vjp, x: x, outputs: outputs, options: options, seed: seed)
        }
    }

    static func perturbed(_ x: [String: Tensor], _ name: String, _ delta: Tensor) throws -> [String: Tensor] {
        var y = x
        y[name] = try x[name]! + delta
        return y
    }

    /// Full Jacobians: numerical by columns (2 evaluations per input element), analytical by rows
    /// (one VJP per output element).
    public static func full(f: Forward, vjp: VJP, x: [String: Tensor], outputs: [String],
                            options o: GradientCheckOptions = .init()) throws -> GradientCheckResult {
        let ins = x.keys.sorted()
        let base = try f(x)
        // numerical[i][j]: [n_out_i][n_in_j] row-major
        var numerical: [String: [String: [Double]]] = [:]
        for i in outputs { numerical[i] = [:] }
        for j in ins {
            let nj = x[j]!.count
            for i in outputs { numerical[i]![j] = [Double](repeating: 0, count: (base[i]?.count ?? 0) * nj) }
            for k in 0..<nj {
                var plus = x, minus = x
                plus[j]!.data[k] += o.eps
                minus[j]!.data[k] -= o.eps
                let fp = try f(plus), fm = try f(minus)
                for i in outputs {
                    guard let a = fp[i], let b = fm[i] else { continue }
                    for r in 0..<a.count { numerical[i]![j]![r * nj + k] = (a.data[r] - b.data[r]) / (2 * o.eps) }
                }
            }
        }
        var worst = 0.0
        for i in outputs {
            guard let out = base[i] else { throw ShapeError("gradcheck", "method produced no output '\(i)'") }
            var analytical: [String: [Double]] = [:]
            for j in ins { analytical[j] = [Double](repeating: 0, count: out.count * x[j]!.count) }
            for r in 0..<out.count {
                var cots: [String: Tensor] = [:]
                for other in outputs { cots[other] = Tensor(zeros: base[other]?.shape ?? []) }
                cots[i]!.data[r] = 1
                let g = try vjp(cots)
                for j in ins {
                    let nj = x[j]!.count
                    if let gj = g[j] { for k in 0..<nj { analytical[j]![r * nj + k] = gj.data[k] } }
                }
            }
            for j in ins {
                let a = analytical[j]!, n = numerical[i]![j]!
                var bad = -1
                var blockWorst = 0.0
                for e in 0..<a.count {
                    let d = Swift.abs(a[e] - n[e])
                    if d > blockWorst { blockWorst = d }
                    if !(d <= o.atol + o.rtol * Swift.abs(n[e])), bad < 0 || d > Swift.abs(a[bad] - n[bad]) { bad = e }
                }
                worst = Swift.max(worst, blockWorst)
                if bad >= 0 {
                    let nj = x[j]!.count
                    let msg = """
                        Jacobian mismatch for output '\(i)' with respect to input '\(j)' \
                        (eps \(o.eps), atol \(o.atol), rtol \(o.rtol)).
                        worst element: output index \(Tensor.unravel(bad / nj, shape: out.shape)), input index \
                        \(Tensor.unravel(bad % nj, shape: x[j]!.shape)): numerical \(n[bad]), analytical \(a[bad])
                        numerical (\(out.count)×\(nj)): \(matrixText(n, cols: nj))
                        analytical (\(out.count)×\(nj)): \(matrixText(a, cols: nj))
                        """
                    return GradientCheckResult(mode: .full, passed: false, worstAbs: worst, message: msg)
                }
            }
        }
        return GradientCheckResult(mode: .full, passed: true, worstAbs: worst, message: "")
    }

    /// Fast mode, one (output i, input j) pair at a time, as PyTorch does.
    public static func fast(f: Forward, vjp: VJP, x: [String: Tensor], outputs: [String],
                            options o: GradientCheckOptions = .init(), seed: UInt64 = 0) throws -> GradientCheckResult {
        var rng = RNG(seed: seed)
        let base = try f(x)
        var worst = 0.0
        for j in x.keys.sorted() {
            var u = rng.uniformTensor(x[j]!.shape)
            let un = u.data.reduce(0) { $0 + $1 * $1 }.squareRoot()
            if un > 0 { u = u * (1 / un) }
            let fp = try f(perturbed(x, j, u * o.eps)), fm = try f(perturbed(x, j, u * -o.eps))
            for i in outputs {
                guard let out = base[i] else { throw ShapeError("gradcheck", "method produced no output '\(i)'") }
                var v = rng.uniformTensor(out.shape)
                let vn = v.data.reduce(0) { $0 + $1 * $1 }.squareRoot()
                if vn > 0 { v = v * (1 / vn) }
                let jvp = (try fp[i]! - fm[i]!) * (1 / (2 * o.eps))
                let numerical = try jvp.dot(v)
                var cots: [String: Tensor] = [:]
                for other in outputs { cots[other] = Tensor(zeros: base[other]?.shape ?? []) }
                cots[i] = v
                let g = try vjp(cots)
                let analytical = try (g[j] ?? Tensor(zeros: x[j]!.shape)).dot(u)
                let d = Swift.abs(analytical - numerical)
                worst = Swift.max(worst, d)
                let allowed = o.atol * u.sumAll * v.sumAll + o.rtol * Swift.abs(numerical)
                if !(d <= allowed) {
                    let slow = try full(f: f, vjp: vjp, x: x, outputs: outputs, options: o)
                    let msg = """
                        Fast gradcheck failed for output '\(i)' with respect to input '\(j)': \
                        vᵀJu numerical \(numerical), analytical \(analytical), |Δ| \(d) > allowed \(allowed).
                        Recomputed in full mode: \(slow.passed ? "the element-wise differences are small: it might have passed in full mode." : slow.message)
                        """
                    return GradientCheckResult(mode: .fast, passed: false, worstAbs: worst, message: msg)
                }
            }
        }
        return GradientCheckResult(mode: .fast, passed: true, worstAbs: worst, message: "")
    }

    static func matrixText(_ m: [Double], cols: Int, maxRows: Int = 6, maxCols: Int = 8) -> String {
        let rows = cols == 0 ? 0 : m.count / cols
        var s = ""
        for r in 0..<Swift.min(rows, maxRows) {
            let row = (0..<Swift.min(cols, maxCols)).map { String(format: "% .4e", m[r * cols + $0]) }.joined(separator: " ")
            s += "\n  [\(row)\(cols > maxCols ? " …" : "")]"
        }
        if rows > maxRows { s += "\n  …" }
        return s
    }

    /// Gradient check of a registered method on one case: differentiable names from the protocol,
    /// differentiated outputs = the case's cotangent names.
    public static func check(method: Method, data: CaseData, wrt: [String], mode: GradientCheckMode,
                             options: GradientCheckOptions = .init(), seed: UInt64 = 0) throws -> GradientCheckResult {
        let names = wrt.filter { data.has($0) }
        let outputs = data.cotangents.keys.sorted()
        var x: [String: Tensor] = [:]
        for n in names { x[n] = try data.tensor(n) }
        func with(_ xs: [String: Tensor]) -> CaseData {
            var d = data
            for (k, t) in xs { if d.inputs[k] != nil { d.inputs[k] = t } else { d.params[k] = t } }
            return d
        }
        let f: Forward = { xs in
            var d = with(xs)
            d.cotangents = [:]
            return try method.evaluate(d, wrt: []).outputs.filter { outputs.contains($0.key) }
        }
        let vjp: VJP = { cots in
            var d = data
            d.cotangents = cots
            return try method.evaluate(d, wrt: names).grads
        }
        return try check(mode: mode, f: f, vjp: vjp, x: x, outputs: outputs, options: options, seed: seed)
    }
}
