// Certifies one protocol: every golden case (outputs and gradients), the gradient checks, and the
// property checks, producing a `ProtocolReport`. Tests, `certify run` and CHECKLIST.md all use this.

import Foundation
import HDF5
import Tensor

/// An error meaning "this check cannot run here" (for example third-party fixtures that are absent):
/// the check is reported as skipped, with the reason, instead of failed.
public protocol SkippableError: Error {
    var skipReason: String { get }
}

public enum CheckKind: String, Codable, Sendable { case golden, gradcheck, property, structure }

public struct CheckResult: Codable, Sendable {
    public var kind: CheckKind
    public var name: String
    /// True when the check ran and passed, or was skipped (see `skipped`).
    public var passed: Bool
    public var worstRelError: Double?
    public var message: String
    public var skipped: Bool = false

    /// "passed", "failed" or "skipped".
    public var status: String { skipped ? "skipped" : passed ? "passed" : "failed" }

    enum CodingKeys: String, CodingKey { case kind, name, passed, worstRelError, message, skipped, status }

    public init(kind: CheckKind, name: String, passed: Bool, worstRelError: Double? = nil, message: String, skipped: Bool = false) {
        self.kind = kind
        self.name = name
        self.passed = passed
        self.worstRelError = worstRelError
        self.message = message
        self.skipped = skipped
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decode(CheckKind.self, forKey: .kind)
        name = try c.decode(String.self, forKey: .name)
        skipped = try c.decodeIfPresent(Bool.self, forKey: .skipped) ?? false
        passed = try c.decode(Bool.self, forKey: .passed) || skipped
        worstRelError = try c.decodeIfPresent(Double.self, forKey: .worstRelError)
        message = try c.decode(String.self, forKey: .message)
    }

    /// In reports a skipped check is never `"passed": true`: it has `"status": "skipped"`.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        try c.encode(name, forKey: .name)
        try c.encode(passed && !skipped, forKey: .passed)
        try c.encode(skipped, forKey: .skipped)
        try c.encode(status, forKey: .status)
        try c.encodeIfPresent(worstRelError, forKey: .worstRelError)
        try c.encode(message, forKey: .message)
    }
}

public struct ProtocolReport: Codable, Sendable {
    public var id: String
    public var title: String
    public var golden: String
    public var checks: [CheckResult] = []
    public var seconds: Double = 0
    /// The protocol's declared tolerance.
    public var tolerance: Tolerance?

    public init(id: String, title: String, golden: String, checks: [CheckResult] = [], seconds: Double = 0, tolerance: Tolerance? = nil) {
        self.id = id
        self.title = title
        self.golden = golden
        self.checks = checks
        self.seconds = seconds
        self.tolerance = tolerance
    }

    /// Every check ran and passed, or was skipped, and at least one ran.
    public var passed: Bool { checks.allSatisfy { $0.passed || $0.skipped } && checks.contains { !$0.skipped } }
    /// Nothing could run here (all checks skipped).
    public var skipped: Bool { !checks.isEmpty && checks.allSatisfy(\.skipped) }
    /// The status word used in tables and CHECKLIST.md.
    public var status: String { skipped ? "skipped" : passed ? "certified" : "FAILED" }
    public var worstRelError: Double { checks.filter { $0.kind == .golden }.compactMap(\.worstRelError).max() ?? 0 }
    public func count(_ k: CheckKind) -> (passed: Int, total: Int) {
        let c = checks.filter { $0.kind == k && !$0.skipped }
        return (c.filter(\.passed).count, c.count)
    }
    public var failures: [CheckResult] { checks.filter { !$0.passed && !$0.skipped } }

    enum CodingKeys: String, CodingKey { case id, title, golden, status, passed, checks, skippedChecks, seconds, tolerance, worstRelError }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(title, forKey: .title)
        try c.encode(golden, forKey: .golden)
        try c.encode(status.lowercased(), forKey: .status)
        try c.encode(passed && !skipped, forKey: .passed)
        try c.encode(checks.filter(\.skipped).count, forKey: .skippedChecks)
        try c.encode(seconds, forKey: .seconds)
        try c.encodeIfPresent(tolerance, forKey: .tolerance)
        try c.encode(worstRelError, forKey: .worstRelError)
        try c.encode(checks, forKey: .checks)
    }

    /// Reads what `encode(to:)` wrote (status, passed and worstRelError are derived, not read).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        title = try c.decode(String.self, forKey: .title)
        golden = try c.decode(String.self, forKey: .golden)
        checks = try c.decode([CheckResult].self, forKey: .checks)
        seconds = try c.decode(Double.self, forKey: .seconds)
        tolerance = try c.decodeIfPresent(Tolerance.self, forKey: .tolerance)
    }
}

/// Stable 64-bit FNV-1a of a string, for per-property seeds.
public func stableHash(_ s: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in s.utf8 {
        h ^= UInt64(b)
        h = h &* 0x100_0000_01b3
    }
    return h
}

public struct CertifyOptions: Sendable {
    /// Random instances per property.
    public var propertyTrials = 25
    /// Skip the full-Jacobian mode when a case has more input + output elements than this
    /// (the protocol's `gradient_check.full_max_elements` overrides).
    public var fullMaxElements = 2500
    public var gradientChecks = true
    public var properties = true
    public init() {}
}

public enum Certifier {
    /// Certifies one protocol. Never throws: every problem becomes a failed check with a message.
    /// `implementation` replaces the registered method (used to show that broken code fails).
    public static func certify(_ p: CertProtocol, in set: ProtocolSet, options: CertifyOptions = .init(),
                               implementation: Method? = nil, progress: (String) -> Void = { _ in }) -> ProtocolReport {
        let start = Date()
        var report = certifyChecks(p, in: set, options: options, implementation: implementation, progress: progress)
        report.seconds = Date().timeIntervalSince(start)
        return report
    }

    static func certifyChecks(_ p: CertProtocol, in set: ProtocolSet, options: CertifyOptions,
                              implementation: Method?, progress: (String) -> Void) -> ProtocolReport {
        var report = ProtocolReport(id: p.id, title: p.title, golden: p.golden)
        report.tolerance = p.tolerance
        let method: Method
        do { method = try implementation ?? Registry.shared.method(p.id) } catch {
            report.checks.append(CheckResult(kind: .structure, name: "registry", passed: false, message: "\(error)"))
            return report
        }
        let path = set.goldenPath(p)
        let file: File
        var cases: [CaseData] = []
        do {
            file = try File.open(path)
            if let attr = file.attributes["protocol"]?.stringValue, attr != p.id {
                throw InputError(file: path, object: "/ attribute 'protocol'", "names '\(attr)', expected '\(p.id)'")
            }
            let present = Set(try caseNames(in: file))
            for c in p.cases where !present.contains(c.name) {
                throw InputError(file: path, object: "/\(c.name)", "case listed in \(p.file) is missing from the golden (run `make goldens`)")
            }
            for extra in present.subtracting(p.cases.map(\.name)).sorted() {
                throw InputError(file: path, object: "/\(extra)", "case is not listed in \(p.file)")
            }
            for c in p.cases { cases.append(try p.read(file: file, case: c.name)) }
        } catch {
            report.checks.append(CheckResult(kind: .structure, name: "golden file", passed: false, message: "\(error)"))
            return report
        }

        // 1. Goldens.
        for data in cases {
            progress("\(p.id) · golden \(data.name)")
            report.checks += goldenChecks(method: method, protocol: p, data: data)
        }

        // 2. Gradient checks.
        if options.gradientChecks, let spec = p.gradientCheck, !p.grads.isEmpty {
            let modes = (spec.modes ?? ["full", "fast"]).compactMap(GradientCheckMode.init(rawValue:))
            let opts = GradientCheckOptions(eps: spec.eps ?? 1e-6, atol: spec.atol ?? 1e-5, rtol: spec.rtol ?? 1e-3)
            for data in cases where spec.cases?.contains(data.name) ?? true {
                guard !data.cotangents.isEmpty else { continue }
                let size = p.grads.compactMap { try? data.tensor($0).count }.reduce(0, +) + data.cotangents.values.reduce(0) { $0 + $1.count }
                for mode in modes {
                    let name = "\(data.name) \(mode.rawValue)"
                    if mode == .full && size > (spec.full_max_elements ?? options.fullMaxElements) {
                        report.checks.append(CheckResult(kind: .gradcheck, name: name, passed: true, worstRelError: nil,
                                                         message: "full mode skipped: \(size) elements (fast mode covers it)", skipped: true))
                        continue
                    }
                    progress("\(p.id) · gradcheck \(name)")
                    do {
                        let r = try GradientCheck.check(method: method, data: data, wrt: p.grads, mode: mode, options: opts,
                                                        seed: stableHash(p.id + "/" + data.name))
                        report.checks.append(CheckResult(kind: .gradcheck, name: name, passed: r.passed, worstRelError: nil, message: r.message))
                    } catch let e as SkippableError {
                        report.checks.append(CheckResult(kind: .gradcheck, name: name, passed: true, message: e.skipReason, skipped: true))
                    } catch {
                        report.checks.append(CheckResult(kind: .gradcheck, name: name, passed: false, message: "\(error)"))
                    }
                }
            }
        }

        // 3. Properties: every declared property must be implemented, and vice versa.
        if options.properties {
            let implemented = Dictionary(method.properties.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            for spec in p.properties {
                guard let prop = implemented[spec.id] else {
                    report.checks.append(CheckResult(kind: .property, name: spec.id, passed: false,
                                                     message: "declared in \(p.file) but not implemented"))
                    continue
                }
                progress("\(p.id) · property \(spec.id)")
                report.checks.append(runProperty(prop, protocolID: p.id, trials: options.propertyTrials))
            }
            for prop in method.properties where !p.properties.contains(where: { $0.id == prop.id }) {
                report.checks.append(CheckResult(kind: .property, name: prop.id, passed: false,
                                                 message: "implemented but not declared in \(p.file)"))
            }
        }
        return report
    }

    /// Runs a property on `trials` seeded instances.
    public static func runProperty(_ prop: Property, protocolID: String, trials: Int) -> CheckResult {
        for t in 0..<trials {
            let seed = stableHash("\(protocolID)/\(prop.id)") &+ UInt64(t)
            var rng = RNG(seed: seed)
            do { try prop.check(&rng) } catch let e as SkippableError {
                return CheckResult(kind: .property, name: prop.id, passed: true, message: e.skipReason, skipped: true)
            } catch {
                return CheckResult(kind: .property, name: prop.id, passed: false,
                                   message: "fails on trial \(t) (RNG seed \(seed)): \(error)")
            }
        }
        return CheckResult(kind: .property, name: prop.id, passed: true, message: "\(trials) instances")
    }

    /// Compares one case's outputs and gradients with the golden.
    public static func goldenChecks(method: Method, protocol p: CertProtocol, data: CaseData) -> [CheckResult] {
        var out: [CheckResult] = []
        let result: (outputs: [String: Tensor], grads: [String: Tensor])
        do {
            // A golden holds only what its protocol declares, and its method reads only that.
            if let u = p.undeclaredDatasets(in: data).first { throw u.error }
            try p.requireValid(data)
            result = try method.evaluate(data, wrt: p.grads)
        } catch let e as SkippableError {
            return [CheckResult(kind: .golden, name: data.name, passed: true, message: e.skipReason, skipped: true)]
        } catch {
            return [CheckResult(kind: .golden, name: data.name, passed: false, message: "evaluation failed: \(error)")]
        }
        let sections: [(String, [String: Tensor], [String: Tensor])] = [
            ("outputs", data.outputs, result.outputs), ("grads", data.grads, result.grads),
        ]
        for (section, expected, actual) in sections {
            for (name, e) in expected.sorted(by: { $0.key < $1.key }) {
                let label = "\(data.name)/\(section)/\(name)"
                guard let a = actual[name] else {
                    out.append(CheckResult(kind: .golden, name: label, passed: false, message: "reference implementation produced no '\(name)'"))
                    continue
                }
                let r = Compare.arrays(name: label, actual: a.data, actualShape: a.shape, expected: e.data, expectedShape: e.shape,
                                       expectedDType: data.dtypes["\(section)/\(name)"] ?? .float64, tolerance: p.tolerance(for: name))
                out.append(CheckResult(kind: .golden, name: label, passed: r.passed, worstRelError: r.worstRelError,
                                       message: r.passed ? "" : r.description))
            }
        }
        if data.outputs.isEmpty {
            out.append(CheckResult(kind: .golden, name: data.name, passed: false, message: "golden case has no outputs"))
        }
        return out
    }
}
