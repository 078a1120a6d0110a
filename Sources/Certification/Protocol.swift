// The protocol model: protocols/<paper>/<method>.yaml, the single source of truth for a method.
// The loader rejects unknown keys, missing goldens and malformed entries with a clear error.

import Foundation
import Yams

/// A protocol file problem. The message names the file and the offending key or case.
public struct ProtocolError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var message: String
    public init(file: String, _ message: String) {
        self.file = file
        self.message = message
    }
    public var description: String { "\(file): \(message)" }
}

/// Absolute and relative tolerance for `|actual − expected| ≤ atol + rtol·|expected|`.
public struct Tolerance: Codable, Sendable, Equatable, CustomStringConvertible {
    public var rtol: Double
    public var atol: Double
    public init(rtol: Double, atol: Double) {
        self.rtol = rtol
        self.atol = atol
    }
    /// Certify's default for Float64 goldens (far tighter than torch.testing's 1e-7).
    public static let float64 = Tolerance(rtol: 1e-10, atol: 1e-12)
    /// torch.testing's defaults for Float32, used when a Float32 result meets a Float64 golden.
    public static let float32 = Tolerance(rtol: 1.3e-6, atol: 1e-5)
    /// Regenerated goldens must match committed ones to this.
    public static let goldenDrift = Tolerance(rtol: 1e-12, atol: 1e-14)
    public var description: String { "rtol \(rtol), atol \(atol)" }
}

/// One named input, param or output as the protocol documents it.
public struct TensorSpec: Codable, Sendable {
    public var name: String
    public var shape: String?
    public var dtype: String?
    public var description: String?
    /// An input the method accepts but does not require (e.g. an optional bias).
    public var optional: Bool?
    /// Per-output tolerance overriding the protocol's.
    public var rtol: Double?
    public var atol: Double?
}

/// One golden case: its name, input shapes and parameter values (the generator draws the data).
public struct CaseSpec: @unchecked Sendable {
    public var name: String
    public var raw: [String: Any]
}

public struct GradientCheckSpec: Codable, Sendable {
    public var modes: [String]?
    public var eps: Double?
    public var atol: Double?
    public var rtol: Double?
    /// Cases to check (all when absent).
    public var cases: [String]?
    /// Full-Jacobian mode is skipped for a case with more input + output elements than this.
    public var full_max_elements: Int?
}

public struct PropertySpec: Codable, Sendable {
    public var id: String
    public var statement: String
}

public struct Divergence: Codable, Sendable {
    public var id: String
    public var paper: String
    public var code: String
    public var followed: String
    public var option: String?
    public var why: String?
    public var measured: String?
}

/// A parsed protocol.
public struct CertProtocol: @unchecked Sendable {
    public var id: String
    public var title: String
    public var paper: String
    public var equation: String
    public var reference: String
    public var golden: String
    public var generator: String
    public var inputs: [TensorSpec]
    public var params: [TensorSpec]
    public var outputs: [TensorSpec]
    public var grads: [String]
    public var tolerance: Tolerance
    public var cases: [CaseSpec]
    public var gradientCheck: GradientCheckSpec?
    public var properties: [PropertySpec]
    public var divergences: [Divergence]
    public var notes: String?
    /// The YAML file it came from.
    public var file: String

    static let allowedKeys: Set<String> = [
        "id", "title", "paper", "equation", "reference", "golden", "generator", "inputs", "params", "outputs",
        "grads", "tolerance", "cases", "gradient_check", "properties", "divergences", "notes",
    ]
    static let requiredKeys: [String] = ["id", "title", "paper", "equation", "reference", "golden", "generator", "outputs", "cases"]

    /// Tolerance for one output or gradient name.
    public func tolerance(for name: String) -> Tolerance {
        if let o = outputs.first(where: { $0.name == name }), o.rtol != nil || o.atol != nil {
            return Tolerance(rtol: o.rtol ?? tolerance.rtol, atol: o.atol ?? tolerance.atol)
        }
        return tolerance
    }

    /// Parses and validates one protocol file.
    public static func load(_ path: String) throws -> CertProtocol {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ProtocolError(file: path, "cannot read protocol file: \(readableError(error))")
        }
        let any: Any?
        do { any = try Yams.load(yaml: text) } catch { throw ProtocolError(file: path, "invalid YAML: \(error)") }
        guard let dict = any as? [String: Any] else { throw ProtocolError(file: path, "top level must be a mapping") }
        let unknown = Set(dict.keys).subtracting(allowedKeys)
        if !unknown.isEmpty {
            throw ProtocolError(file: path, "unknown key(s) \(unknown.sorted()); allowed: \(allowedKeys.sorted())")
        }
        for k in requiredKeys where dict[k] == nil { throw ProtocolError(file: path, "missing required key '\(k)'") }
        func str(_ k: String) throws -> String {
            guard let s = dict[k] as? String else { throw ProtocolError(file: path, "'\(k)' must be a string") }
            return s
        }
        func decode<T: Decodable>(_ k: String, _ t: T.Type) throws -> T? {
            guard let v = dict[k] else { return nil }
            do {
                let node = try Yams.dump(object: v)
                return try YAMLDecoder().decode(T.self, from: node)
            } catch {
                throw ProtocolError(file: path, "'\(k)' is malformed: \(readableError(error))")
            }
        }
        guard let rawCases = dict["cases"] as? [[String: Any]], !rawCases.isEmpty else {
            throw ProtocolError(file: path, "'cases' must be a non-empty list of mappings")
        }
        var cases: [CaseSpec] = []
        for (i, c) in rawCases.enumerated() {
            guard let name = c["name"] as? String, !name.isEmpty else { throw ProtocolError(file: path, "case \(i) has no 'name'") }
            if cases.contains(where: { $0.name == name }) { throw ProtocolError(file: path, "duplicate case '\(name)'") }
            cases.append(CaseSpec(name: name, raw: c))
        }
        let p = CertProtocol(
            id: try str("id"), title: try str("title"), paper: try str("paper"), equation: try str("equation"),
            reference: try str("reference"), golden: try str("golden"), generator: try str("generator"),
            inputs: try decode("inputs", [TensorSpec].self) ?? [], params: try decode("params", [TensorSpec].self) ?? [],
            outputs: try decode("outputs", [TensorSpec].self) ?? [], grads: try decode("grads", [String].self) ?? [],
            tolerance: try decode("tolerance", Tolerance.self) ?? .float64, cases: cases,
            gradientCheck: try decode("gradient_check", GradientCheckSpec.self),
            properties: try decode("properties", [PropertySpec].self) ?? [],
            divergences: try decode("divergences", [Divergence].self) ?? [], notes: dict["notes"] as? String, file: path)
        let parts = p.id.split(separator: ".")
        guard parts.count >= 2 else { throw ProtocolError(file: path, "id '\(p.id)' must be '<paper>.<method>'") }
        for g in p.grads where !(p.inputs + p.params).contains(where: { $0.name == g }) {
            throw ProtocolError(file: path, "grads names '\(g)', which is not a declared input or param")
        }
        return p
    }
}

/// The set of protocols under a root folder, keyed by id.
public struct ProtocolSet: Sendable {
    public var root: String
    public var protocols: [CertProtocol]

    /// Loads every `protocols/**/*.yaml` under `root` (the package root), validating goldens exist.
    public static func load(root: String) throws -> ProtocolSet {
        let dir = (root as NSString).appendingPathComponent("protocols")
        guard let en = FileManager.default.enumerator(atPath: dir) else {
            throw ProtocolError(file: dir, "no protocols folder")
        }
        var out: [CertProtocol] = []
        for case let rel as String in en where rel.hasSuffix(".yaml") {
            let p = try CertProtocol.load((dir as NSString).appendingPathComponent(rel))
            let golden = (root as NSString).appendingPathComponent(p.golden)
            guard FileManager.default.fileExists(atPath: golden) else {
                throw ProtocolError(file: p.file, "golden file '\(p.golden)' does not exist (run `make goldens`)")
            }
            if out.contains(where: { $0.id == p.id }) { throw ProtocolError(file: p.file, "duplicate protocol id '\(p.id)'") }
            out.append(p)
        }
        return ProtocolSet(root: root, protocols: out.sorted { $0.id < $1.id })
    }

    public func protocolFor(_ id: String) throws -> CertProtocol {
        guard let p = protocols.first(where: { $0.id == id }) else {
            let shown = id.count > 80 ? "\(id.prefix(60))… (\(id.count) characters)" : id
            throw ProtocolError(file: "protocols/", "unknown protocol id '\(shown)' (see `certify list`)")
        }
        return p
    }

    /// Protocols selected by ids or id prefixes ("iadg" selects every iadg.* protocol). Empty selects all.
    public func select(_ patterns: [String]) throws -> [CertProtocol] {
        if patterns.isEmpty { return protocols }
        var out: [CertProtocol] = []
        for pat in patterns {
            let m = protocols.filter { $0.id == pat || $0.id.hasPrefix(pat.hasSuffix(".") ? pat : pat + ".") }
            if m.isEmpty { throw ProtocolError(file: "protocols/", "unknown protocol id or prefix '\(pat.count > 80 ? "\(pat.prefix(60))… (\(pat.count) characters)" : pat)' (see `certify list`)") }
            for p in m where !out.contains(where: { $0.id == p.id }) { out.append(p) }
        }
        return out
    }

    /// Absolute path of a protocol's golden.
    public func goldenPath(_ p: CertProtocol) -> String { (root as NSString).appendingPathComponent(p.golden) }
}

/// Locates the package root: $CERTIFY_ROOT, else the nearest ancestor of the working directory
/// (or of this source file) holding both `protocols/` and `golden/`.
public func packageRoot() -> String {
    if let r = ProcessInfo.processInfo.environment["CERTIFY_ROOT"], !r.isEmpty { return r }
    let fm = FileManager.default
    func search(from start: String) -> String? {
        var dir = start
        while true {
            if fm.fileExists(atPath: dir + "/protocols") && fm.fileExists(atPath: dir + "/golden") { return dir }
            let parent = (dir as NSString).deletingLastPathComponent
            if parent == dir || parent.isEmpty { return nil }
            dir = parent
        }
    }
    return search(from: fm.currentDirectoryPath) ?? search(from: (#filePath as NSString).deletingLastPathComponent) ?? fm.currentDirectoryPath
}
