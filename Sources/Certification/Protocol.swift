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
    /// The drift check (`make goldens-check`) allows a regenerated golden to differ from the committed
    /// one by this fraction of the protocol's tolerance: enough for another CPU's BLAS kernels
    /// (measured: up to 4e-12 relative against protocols at 1e-10), far too little for a changed formula.
    public static let driftFraction = 0.1
    /// ... with an absolute floor of this multiple of the dataset's largest |value|, so that a
    /// near-zero element of a large-valued dataset may carry the rounding of its neighbours.
    public static let driftFloor = 1e-12
    /// The drift tolerance for one dataset.
    public static func drift(from p: Tolerance, goldenMagnitude m: Double) -> Tolerance {
        Tolerance(rtol: p.rtol * driftFraction, atol: Swift.max(p.atol * driftFraction, driftFloor * m))
    }
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
    /// The value the method uses when the case omits this param (the param is then optional).
    public var `default`: ParamValue?
    /// The values of this param that the goldens certify; any other value is accepted but reported
    /// as not certified (`certify show`, eval's `uncertified` attribute). Absent: no restriction.
    public var certified: [ParamValue]?

    static let allowedKeys: Set<String> = ["name", "shape", "dtype", "description", "optional", "rtol", "atol", "default", "certified"]

    /// Whether a case may omit it.
    public var isOptional: Bool { (optional ?? false) || self.default != nil }

    /// Whether `value` is among the certified values (always true without a `certified` list).
    public func certifies(_ value: ParamValue) -> Bool { certified.map { $0.contains(value) } ?? true }

    /// "(declared, not certified: ceil_mode = true)" for `certify show`, or nil.
    public var uncertifiedSummary: String? {
        guard let c = certified else { return nil }
        if dtype == "bool", c.count == 1, case .bool(let b) = c[0] {
            return "declared, not certified: \(name) = \(!b)"
        }
        return "declared, not certified: \(name) other than \(c.map(\.description).joined(separator: ", "))"
    }
}

/// A param value as a protocol states it (`default:`, `certified:`) or a case holds it.
/// Equality compares numerically: `true` = 1, a scalar = a one-element list.
public enum ParamValue: Codable, Sendable, Hashable, CustomStringConvertible {
    case bool(Bool), number(Double), list([Double]), string(String)

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let l = try? c.decode([Double].self) { self = .list(l) }
        else { self = .string(try c.decode(String.self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .bool(let b): try c.encode(b)
        case .number(let d): try c.encode(d)
        case .list(let l): try c.encode(l)
        case .string(let s): try c.encode(s)
        }
    }

    public var numbers: [Double]? {
        switch self {
        case .bool(let b): [b ? 1 : 0]
        case .number(let d): [d]
        case .list(let l): l
        case .string: nil
        }
    }

    public static func == (a: ParamValue, b: ParamValue) -> Bool {
        if case .string(let x) = a, case .string(let y) = b { return x == y }
        guard let x = a.numbers, let y = b.numbers else { return false }
        return x == y
    }

    public func hash(into h: inout Hasher) {
        if case .string(let s) = self { h.combine(s) } else { h.combine(numbers) }
    }

    public var description: String {
        func num(_ d: Double) -> String { d.rounded() == d && Swift.abs(d) < 1e15 ? String(Int(d)) : "\(d)" }
        switch self {
        case .bool(let b): return "\(b)"
        case .number(let d): return num(d)
        case .list(let l): return "[" + l.map(num).joined(separator: ", ") + "]"
        case .string(let s): return "'\(s)'"
        }
    }
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

/// One step of a generator that transcribes the official code: which official function (file, lines,
/// commit) it follows, which generator function holds the transcription, and the line-by-line mapping,
/// so that a reviewer can check the transcription against the official source. `transcribes:` in the YAML.
public struct Transcription: Codable, Sendable {
    /// "file.py:function (lines a–b, commit)" in the official repository.
    public var official: String
    /// "golden/generate/<paper>.py:function" (the generator's transcription).
    public var generator: String
    /// The mapping, official lines → generator lines/statements.
    public var steps: String
}

/// An architectural choice the paper leaves open (`unknowns:` in the YAML): what Certify assumes, and the param that changes it.
/// Listed as an assumption of Certify's, never as the paper's.
public struct Unknown: Codable, Sendable {
    public var id: String
    /// What the paper (or its abstract) says, or that it says nothing.
    public var paper: String
    /// Certify's default.
    public var assumed: String
    /// The param (or input) that selects another choice.
    public var option: String?
}

/// What a protocol's golden is evidence of.
public enum ReferenceKind: String, Codable, Sendable, CaseIterable {
    /// The golden comes from an independent library (PyTorch, SciPy, scikit-learn) or follows the
    /// official code with library operations: passing means "equals an independent reference".
    case independent
    /// The golden encodes a definition of Certify's own (a tie rule, a data-set composition, a metric
    /// or pooling written out in NumPy): passing means "consistent with its definition", nothing more.
    case definition

    /// The status cell of CHECKLIST.md for a certified protocol of this kind.
    public var certifiedLabel: String {
        switch self {
        case .independent: return "✅ certified"
        case .definition: return "✅ consistent with its definition"
        }
    }

    /// One line for `certify show`.
    public var explanation: String {
        switch self {
        case .independent: return "independent (certified against an independent reference)"
        case .definition: return "definition (the golden encodes Certify's own definition: passing means consistent with its definition, not certified against an independent reference)"
        }
    }
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
    /// `reference_kind:` in the YAML; `independent` when absent.
    public var referenceKind: ReferenceKind = .independent
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
    /// `transcribes:` — the official functions the generator transcribes (empty when the golden comes from a library call).
    public var transcribes: [Transcription] = []
    /// `unknowns:` — the paper's open choices and Certify's assumptions for them (empty when the paper fixes everything).
    public var unknowns: [Unknown] = []
    /// The YAML file it came from.
    public var file: String

    static let allowedKeys: Set<String> = [
        "id", "title", "paper", "equation", "reference", "golden", "generator", "inputs", "params", "outputs",
        "grads", "tolerance", "cases", "gradient_check", "properties", "divergences", "notes", "reference_kind",
        "transcribes", "unknowns",
    ]
    static let requiredKeys: [String] = ["id", "title", "paper", "equation", "reference", "golden", "generator", "outputs", "cases"]

    /// The names a case may hold in each section: inputs and params as declared, cotangents named
    /// after the outputs (only when the protocol certifies gradients).
    public func declaredNames(_ section: String) -> [String] {
        switch section {
        case "inputs": inputs.map(\.name)
        case "params": params.map(\.name)
        case "cotangents": grads.isEmpty ? [] : outputs.map(\.name)
        default: outputs.map(\.name)
        }
    }

    /// Tolerance for one output or gradient name.
    public func tolerance(for name: String) -> Tolerance {
        if let o = outputs.first(where: { $0.name == name }), o.rtol != nil || o.atol != nil {
            return Tolerance(rtol: o.rtol ?? tolerance.rtol, atol: o.atol ?? tolerance.atol)
        }
        return tolerance
    }

    /// Parses and validates one protocol file.
    public static func load(_ path: String) throws -> CertProtocol {
        let (dict, text) = try strictMappingAndText(path, what: "protocol file", allowed: allowedKeys, required: requiredKeys)
        for section in ["inputs", "params", "outputs"] {
            for entry in dict[section] as? [[String: Any]] ?? [] {
                let bad = Set(entry.keys).subtracting(TensorSpec.allowedKeys)
                if !bad.isEmpty {
                    throw ProtocolError(file: path, "\(section) entry '\(entry["name"] ?? "?")' has unknown key(s) \(bad.sorted()); allowed: \(TensorSpec.allowedKeys.sorted())")
                }
            }
        }
        func str(_ k: String) throws -> String {
            guard let s = dict[k] as? String else { throw ProtocolError(file: path, "'\(k)' must be a string") }
            return s
        }
        // Fast path: every typed section decoded in one pass over the file's text. Only when that fails is
        // each section re-decoded on its own (below), so the error names the malformed section.
        let fast = try? YAMLDecoder().decode(TypedSections.self, from: text)
        func decode<T: Decodable>(_ k: String, _ t: T.Type) throws -> T? {
            guard let v = dict[k] else { return nil }
            if let fast, let value = fast.value(k) as? T { return value }
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
        var kind = ReferenceKind.independent
        if let raw = dict["reference_kind"] {
            guard let s = raw as? String, let k = ReferenceKind(rawValue: s) else {
                throw ProtocolError(file: path, "'reference_kind' must be one of \(ReferenceKind.allCases.map(\.rawValue)), got '\(raw)'")
            }
            kind = k
        }
        let p = CertProtocol(
            id: try str("id"), title: try str("title"), paper: try str("paper"), equation: try str("equation"),
            reference: try str("reference"), golden: try str("golden"), generator: try str("generator"), referenceKind: kind,
            inputs: try decode("inputs", [TensorSpec].self) ?? [], params: try decode("params", [TensorSpec].self) ?? [],
            outputs: try decode("outputs", [TensorSpec].self) ?? [], grads: try decode("grads", [String].self) ?? [],
            tolerance: try decode("tolerance", Tolerance.self) ?? .float64, cases: cases,
            gradientCheck: try decode("gradient_check", GradientCheckSpec.self),
            properties: try decode("properties", [PropertySpec].self) ?? [],
            divergences: try decode("divergences", [Divergence].self) ?? [], notes: dict["notes"] as? String,
            transcribes: try decode("transcribes", [Transcription].self) ?? [],
            unknowns: try decode("unknowns", [Unknown].self) ?? [], file: path)
        let parts = p.id.split(separator: ".")
        guard parts.count >= 2 else { throw ProtocolError(file: path, "id '\(p.id)' must be '<paper>.<method>'") }
        for g in p.grads where !(p.inputs + p.params).contains(where: { $0.name == g }) {
            throw ProtocolError(file: path, "grads names '\(g)', which is not a declared input or param")
        }
        return p
    }
}

/// Reads a YAML file whose top level is a mapping with only `allowed` keys and every `required` one
/// (protocols and claims ledgers). Every problem is a `ProtocolError` naming the file.
func strictMapping(_ path: String, what: String, allowed: Set<String>, required: [String]) throws -> [String: Any] {
    try strictMappingAndText(path, what: what, allowed: allowed, required: required).0
}

/// The typed sections of a protocol file, decoded in one pass (`CertProtocol.load`'s fast path).
private struct TypedSections: Decodable {
    var inputs: [TensorSpec]?, params: [TensorSpec]?, outputs: [TensorSpec]?, grads: [String]?
    var tolerance: Tolerance?, gradient_check: GradientCheckSpec?, properties: [PropertySpec]?
    var divergences: [Divergence]?, transcribes: [Transcription]?, unknowns: [Unknown]?

    func value(_ key: String) -> Any? {
        switch key {
        case "inputs": inputs
        case "params": params
        case "outputs": outputs
        case "grads": grads
        case "tolerance": tolerance
        case "gradient_check": gradient_check
        case "properties": properties
        case "divergences": divergences
        case "transcribes": transcribes
        case "unknowns": unknowns
        default: nil
        }
    }
}

/// `strictMapping`, and the file's text.
func strictMappingAndText(_ path: String, what: String, allowed: Set<String>, required: [String]) throws -> ([String: Any], String) {
    let text: String
    do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
        throw ProtocolError(file: path, "cannot read \(what): \(readableError(error))")
    }
    let any: Any?
    do { any = try Yams.load(yaml: text) } catch { throw ProtocolError(file: path, "invalid YAML: \(error)") }
    guard let dict = any as? [String: Any] else { throw ProtocolError(file: path, "top level must be a mapping") }
    let unknown = Set(dict.keys).subtracting(allowed)
    if !unknown.isEmpty {
        throw ProtocolError(file: path, "unknown key(s) \(unknown.sorted()); allowed: \(allowed.sorted())")
    }
    for k in required where dict[k] == nil { throw ProtocolError(file: path, "missing required key '\(k)'") }
    return (dict, text)
}

/// A protocol's contract as `certify show --json` prints it, for tools that build on Certify (the
/// Python package among them): every name, shape, dtype and tolerance a user's file must follow.
public struct ProtocolContract: Encodable, Sendable {
    /// An output's spec with its effective tolerance, encoded flat: {name, shape, dtype, …, tolerance}.
    public struct Output: Encodable, Sendable {
        public var spec: TensorSpec
        public var tolerance: Tolerance
        enum Key: String, CodingKey { case tolerance }
        public func encode(to encoder: Encoder) throws {
            try spec.encode(to: encoder)
            var c = encoder.container(keyedBy: Key.self)
            try c.encode(tolerance, forKey: .tolerance)
        }
    }
    public var id: String
    public var title: String
    public var paper: String
    public var golden: String
    public var generator: String
    /// "independent" or "definition" (see `ReferenceKind`).
    public var reference_kind: ReferenceKind
    public var tolerance: Tolerance
    public var inputs: [TensorSpec]
    public var params: [TensorSpec]
    public var outputs: [Output]
    /// Inputs or params whose gradients are checked (/<case>/grads/<name>).
    public var grads: [String]
    /// Cotangents are named after the outputs (/<case>/cotangents/<output>).
    public var cotangents: [String]
    public var cases: [String]
    public var properties: [PropertySpec]
    public var divergences: [Divergence]
    public var notes: String?
    /// The official functions the generator transcribes, line by line (`transcribes:`; empty for library references).
    public var transcribes: [Transcription]

    public init(_ p: CertProtocol) {
        id = p.id
        title = p.title
        paper = p.paper
        golden = p.golden
        generator = p.generator
        reference_kind = p.referenceKind
        tolerance = p.tolerance
        inputs = p.inputs
        params = p.params
        outputs = p.outputs.map { Output(spec: $0, tolerance: p.tolerance(for: $0.name)) }
        grads = p.grads
        cotangents = p.grads.isEmpty ? [] : p.outputs.map(\.name)
        cases = p.cases.map(\.name)
        properties = p.properties
        divergences = p.divergences
        notes = p.notes
        transcribes = p.transcribes
    }
}

/// The set of protocols under a root folder, keyed by id.
public struct ProtocolSet: Sendable {
    public var root: String
    public var protocols: [CertProtocol]
    /// The papers' claims ledgers (protocols/<paper>/claims.yaml), sorted by path.
    public var ledgers: [ClaimsLedger] = []

    /// Loads every `protocols/**/*.yaml` under `root` (the package root), validating goldens exist,
    /// and the claims ledgers (`protocols/<paper>/claims.yaml`, which are not protocols).
    public static func load(root: String) throws -> ProtocolSet {
        let dir = (root as NSString).appendingPathComponent("protocols")
        guard let en = FileManager.default.enumerator(atPath: dir) else {
            throw ProtocolError(file: dir, "no protocols folder")
        }
        var out: [CertProtocol] = []
        // claims.yaml is a paper's claims ledger (ClaimsLedger), not a protocol.
        for case let rel as String in en where rel.hasSuffix(".yaml") && (rel as NSString).lastPathComponent != ClaimsLedger.fileName {
            let p = try loadChecked((dir as NSString).appendingPathComponent(rel), root: root)
            // A protocol's id names its file, so ids are unique and `load(root:id:)` can read one file alone.
            guard let canonical = canonicalPath(p.id), canonical == rel else {
                throw ProtocolError(file: p.file, "id '\(shown(p.id))' must be in protocols/\(canonicalPath(p.id) ?? "<paper>/<method>.yaml") (a protocol's id names its file)")
            }
            out.append(p)
        }
        let ledgers = try ClaimsLedger.loadAll(root: root)
        for l in ledgers where !out.contains(where: { $0.id.hasPrefix(l.protocols + ".") }) {
            throw ProtocolError(file: l.file, "'protocols: \(l.protocols)' names no protocol prefix")
        }
        return ProtocolSet(root: root, protocols: out.sorted { $0.id < $1.id }, ledgers: ledgers)
    }

    /// The protocol `id` alone, read from its own file (protocols/<paper>/<method>.yaml, which `load(root:)`
    /// requires), without parsing the other protocols: what `certify eval` and `certify diff` need, at a
    /// fraction of the start-up time. When that file is absent or holds another id, every protocol is loaded,
    /// so an unknown id gets the same error and suggestions as before. The set has no claims ledgers.
    public static func load(root: String, id: String) throws -> ProtocolSet {
        let dir = (root as NSString).appendingPathComponent("protocols")
        if let rel = canonicalPath(id) {
            let path = (dir as NSString).appendingPathComponent(rel)
            if FileManager.default.fileExists(atPath: path) {
                let p = try loadChecked(path, root: root)
                if p.id == id { return ProtocolSet(root: root, protocols: [p]) }
            }
        }
        return try load(root: root)
    }

    /// "<paper>/<method>.yaml" for an id "<paper>.<method>" made of letters, digits, '_' and '.'; nil otherwise.
    static func canonicalPath(_ id: String) -> String? {
        let parts = id.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty, !parts[1].hasSuffix("."), !parts[1].contains(".."),
              id.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "." })
        else { return nil }
        return "\(parts[0])/\(parts[1]).yaml"
    }

    /// One protocol file, parsed and validated, whose golden exists.
    static func loadChecked(_ path: String, root: String) throws -> CertProtocol {
        let p = try CertProtocol.load(path)
        let golden = (root as NSString).appendingPathComponent(p.golden)
        guard FileManager.default.fileExists(atPath: golden) else {
            throw ProtocolError(file: p.file, "golden file '\(p.golden)' does not exist (run `make goldens`)")
        }
        return p
    }

    public func protocolFor(_ id: String) throws -> CertProtocol {
        guard let p = protocols.first(where: { $0.id == id }) else {
            throw ProtocolError(file: "protocols/", "unknown protocol id '\(ProtocolSet.shown(id))'\(suggestion(id)) (see `certify list`)")
        }
        return p
    }

    /// A user-given id as it is echoed in a message: at most 80 characters.
    static func shown(_ id: String) -> String { id.count <= 80 ? id : id.prefix(80) + "… (\(id.count) characters)" }

    /// "; did you mean core.softmax?" for the closest ids by edit distance, or "".
    func suggestion(_ id: String) -> String {
        guard id.count <= 200 else { return "" }
        let scored = protocols.map { ($0.id, editDistance(id, $0.id)) }.filter { $0.1 <= Swift.max(2, id.count / 3) }
        let best = scored.sorted { $0.1 < $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }.prefix(3).map(\.0)
        return best.isEmpty ? "" : "; did you mean \(best.joined(separator: ", "))?"
    }

    /// Protocols selected by ids or id prefixes ("iadg" selects every iadg.* protocol). Empty selects all.
    public func select(_ patterns: [String]) throws -> [CertProtocol] {
        if patterns.isEmpty { return protocols }
        var out: [CertProtocol] = []
        for pat in patterns {
            let m = protocols.filter { $0.id == pat || $0.id.hasPrefix(pat.hasSuffix(".") ? pat : pat + ".") }
            if m.isEmpty { throw ProtocolError(file: "protocols/", "unknown protocol id or prefix '\(ProtocolSet.shown(pat))'\(suggestion(pat)) (see `certify list`)") }
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
