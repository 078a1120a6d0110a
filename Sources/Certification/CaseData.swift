// One golden case as read from (or written to) HDF5: /<case>/{inputs,params,cotangents,outputs,grads}/*.

import Foundation
import HDF5
import Tensor

/// Bad input data: the message names the file, the object and what was expected.
public struct InputError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var object: String
    public var message: String
    public init(file: String, object: String, _ message: String) {
        self.file = file
        self.object = object
        self.message = message
    }
    public var description: String { "\(file): \(object): \(message)" }
}

/// The names a protocol lets a method read, per section. A method that reads any other name is
/// an error (`Method.evaluate`), so a param the protocol does not list can never change a result.
public struct DeclaredNames: Sendable {
    public var protocolID: String
    public var file: String
    public var inputs: Set<String>
    public var params: Set<String>
    public init(_ p: CertProtocol) {
        protocolID = p.id
        file = p.file
        inputs = Set(p.inputs.map(\.name))
        params = Set(p.params.map(\.name))
    }
    public func contains(_ name: String) -> Bool { inputs.contains(name) || params.contains(name) }
}

/// Every input or param name a method read (or probed with `has`) while building, and the ones its
/// protocol does not declare. Shared by the copies of a `CaseData`; thread-safe.
public final class ReadLog: @unchecked Sendable {
    private let lock = NSLock()
    private var names: Set<String> = []
    private var undeclaredNames: Set<String> = []
    public init() {}
    func note(_ name: String, declared: Bool) {
        lock.lock()
        defer { lock.unlock() }
        names.insert(name)
        if !declared { undeclaredNames.insert(name) }
    }
    public var read: Set<String> { lock.lock(); defer { lock.unlock() }; return names }
    public var undeclared: Set<String> { lock.lock(); defer { lock.unlock() }; return undeclaredNames }
    func merge(_ other: ReadLog) {
        let (r, u) = (other.read, other.undeclared)
        lock.lock()
        defer { lock.unlock() }
        names.formUnion(r)
        undeclaredNames.formUnion(u)
    }
}

/// A method read a name its protocol does not declare (a bug in the method or the protocol file).
public struct UndeclaredReadError: Error, CustomStringConvertible, Sendable {
    public var method: String
    public var names: [String]
    public var file: String
    public var description: String {
        "the reference implementation of \(method) reads \(names.map { "'\($0)'" }.joined(separator: ", ")), "
            + "which \(file) does not declare (declare it under inputs or params, optional: true)"
    }
}

/// The data of one case. Numeric datasets are held as Float64 tensors with their stored dtype.
public struct CaseData: Sendable {
    public var name: String
    /// The file the case came from (for error messages).
    public var source: String
    public var inputs: [String: Tensor] = [:]
    public var params: [String: Tensor] = [:]
    public var strings: [String: String] = [:]
    public var cotangents: [String: Tensor] = [:]
    public var outputs: [String: Tensor] = [:]
    public var grads: [String: Tensor] = [:]
    /// Stored dtype of each dataset, keyed "section/name".
    public var dtypes: [String: DType] = [:]
    /// When set, only these names can be read: any other reads as absent and is logged as undeclared.
    public var declared: DeclaredNames?
    /// When set, records every name read (see `ReadLog`).
    public var log: ReadLog?

    public init(name: String, source: String) {
        self.name = name
        self.source = source
    }

    func err(_ section: String, _ name: String, _ msg: String) -> InputError {
        InputError(file: source, object: "/\(self.name)/\(section)/\(name)", msg)
    }

    /// Records a read; false when the name is not declared (it then reads as absent).
    private func note(_ name: String) -> Bool {
        let ok = declared?.contains(name) ?? true
        log?.note(name, declared: ok)
        return ok
    }

    /// The section a missing name belongs in: the protocol's, else `guess`.
    private func section(of name: String, guess: String) -> String {
        if let d = declared { return d.params.contains(name) ? "params" : d.inputs.contains(name) ? "inputs" : guess }
        return guess
    }

    private func undeclared(_ name: String) -> UndeclaredReadError {
        UndeclaredReadError(method: declared?.protocolID ?? "?", names: [name], file: declared?.file ?? "the protocol")
    }

    /// An input or param tensor by name (inputs first).
    public func tensor(_ name: String) throws -> Tensor { try lookup(name, guess: "inputs") }

    private func lookup(_ name: String, guess: String) throws -> Tensor {
        guard note(name) else { throw undeclared(name) }
        if let t = inputs[name] { return t }
        if let t = params[name] { return t }
        throw err(section(of: name, guess: guess), name, "missing dataset (the protocol lists it; see `certify show`)")
    }

    /// A tensor with a required rank.
    public func tensor(_ name: String, rank: Int) throws -> Tensor {
        let t = try tensor(name)
        guard t.rank == rank else {
            throw err(inputs[name] != nil ? "inputs" : "params", name, "expected rank \(rank), found shape \(t.shape)")
        }
        return t
    }

    /// Whether the case holds the name (a declared name only, when `declared` is set).
    public func has(_ name: String) -> Bool { note(name) && holds(name) }

    /// Presence without recording a read.
    func holds(_ name: String) -> Bool { inputs[name] != nil || params[name] != nil || strings[name] != nil }

    /// A scalar integer param.
    public func int(_ name: String) throws -> Int {
        let t = try lookup(name, guess: "params")
        guard t.count == 1, let v = t.data.first else {
            throw err("params", name, "expected an integer scalar, found shape \(t.shape)")
        }
        if let problem = integerProblem(v) { throw err("params", name, "\(problem) (an integer scalar)") }
        return Int(v)
    }
    public func int(_ name: String, default d: Int) throws -> Int { has(name) ? try int(name) : d }

    /// An integer list param (a scalar is a one-element list).
    public func ints(_ name: String) throws -> [Int] {
        let t = try lookup(name, guess: "params")
        guard t.rank <= 1 else {
            throw err("params", name, "expected a 1-D integer array, found shape \(t.shape)")
        }
        for (i, v) in t.data.enumerated() {
            if let problem = integerProblem(v) { throw err("params", name, "element \(i): \(problem) (a 1-D integer array)") }
        }
        return t.data.map { Int($0) }
    }

    public func double(_ name: String) throws -> Double {
        let t = try lookup(name, guess: "params")
        guard t.count == 1 else { throw err("params", name, "expected a scalar, found shape \(t.shape)") }
        return t.data[0]
    }
    public func double(_ name: String, default d: Double) throws -> Double { has(name) ? try double(name) : d }

    public func bool(_ name: String) throws -> Bool { try int(name) != 0 }
    public func bool(_ name: String, default d: Bool) throws -> Bool { has(name) ? try bool(name) : d }

    public func string(_ name: String) throws -> String {
        guard note(name) else { throw undeclared(name) }
        guard let s = strings[name] else { throw err("params", name, "missing string dataset") }
        return s
    }

    /// A param's value as the protocol states values (nil when absent), without recording a read.
    public func paramValue(_ spec: TensorSpec) -> ParamValue? {
        if let s = strings[spec.name] { return .string(s) }
        guard let t = params[spec.name] ?? inputs[spec.name] else { return nil }
        if spec.dtype == "bool", t.count == 1 { return .bool(t.data[0] != 0) }
        return t.rank == 0 ? .number(t.data[0]) : .list(t.data)
    }

    /// Every input, param and cotangent dataset of the case as (section, name), sorted.
    public var datasetNames: [(section: String, name: String)] {
        dtypes.keys.compactMap { key -> (String, String)? in
            let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
            guard parts.count == 2, ["inputs", "params", "cotangents"].contains(parts[0]) else { return nil }
            return (parts[0], parts[1])
        }.sorted { ($0.0, $0.1) < ($1.0, $1.1) }
    }

    /// The case without one dataset.
    public mutating func remove(section: String, name: String) {
        switch section {
        case "inputs": inputs[name] = nil
        case "params": params[name] = nil
        case "cotangents": cotangents[name] = nil
        case "outputs": outputs[name] = nil
        default: grads[name] = nil
        }
        if dtypes["\(section)/\(name)"] == .string { strings[name] = nil }
        dtypes["\(section)/\(name)"] = nil
    }

    /// Reads a case group from a file. `sections` chooses which subgroups to read.
    public static func read(file: File, name: String,
                            sections: [String] = ["inputs", "params", "cotangents", "outputs", "grads"]) throws -> CaseData {
        var c = CaseData(name: name, source: file.path)
        guard file.root.isGroup(name) else {
            throw InputError(file: file.path, object: "/\(name)", "missing case group")
        }
        for section in sections {
            let path = "\(name)/\(section)"
            guard file.root.isGroup(path) else { continue }
            let g = try file.group(path)
            for child in try g.children() {
                let ds = try g.dataset(child)
                let dt = try ds.dtype
                c.dtypes["\(section)/\(child)"] = dt
                if dt == .string {
                    let s = try ds.readStrings()
                    c.strings[child] = s.first ?? ""
                    continue
                }
                try Budget.require(shape: try ds.shape, "reading \(file.path): /\(path)/\(child)")
                let t = try Tensor(shape: try ds.shape, data: try ds.readDoubles())
                switch section {
                case "inputs": c.inputs[child] = t
                case "params": c.params[child] = t
                case "cotangents": c.cotangents[child] = t
                case "outputs": c.outputs[child] = t
                default: c.grads[child] = t
                }
            }
        }
        return c
    }

    /// Requires finite values in every input, param and cotangent.
    public func requireFinite() throws {
        for (section, dict) in [("inputs", inputs), ("params", params), ("cotangents", cotangents)] {
            for (k, t) in dict.sorted(by: { $0.key < $1.key }) {
                if let i = t.data.firstIndex(where: { !$0.isFinite }) {
                    throw err(section, k, "contains \(t.data[i]) at index \(Tensor.unravel(i, shape: t.shape)); finite values are required")
                }
            }
        }
    }

    /// Requires that the listed names are present (the protocol's declared inputs).
    public func requirePresent(_ specs: [TensorSpec], section: String) throws {
        for s in specs where !holds(s.name) {
            throw err(section, s.name, "missing dataset; expected \(s.dtype ?? "float64") of shape \(s.shape ?? "?")")
        }
    }

    /// Requires every present input and param to have the dtype its protocol entry declares.
    /// Float32 where Float64 is declared is an error: silently widening it would certify a
    /// different computation. Integer params may be stored with any integer width; bool flags as
    /// bool or integer.
    public func requireDeclaredDTypes(inputs: [TensorSpec], params: [TensorSpec]) throws {
        for (section, specs) in [("inputs", inputs), ("params", params)] {
            for s in specs {
                guard let declared = s.dtype.flatMap(DType.init(rawValue:)),
                      let found = dtypes["\(section)/\(s.name)"] ?? dtypes["inputs/\(s.name)"] ?? dtypes["params/\(s.name)"]
                else { continue }
                let ok: Bool
                switch declared {
                case .float64: ok = found == .float64
                case .float32: ok = found.isFloatingPoint
                case .bool: ok = found == .bool || found.isInteger
                case .int64, .int32, .int8, .uint8: ok = found.isInteger
                case .string: ok = found == .string
                }
                if !ok {
                    throw err(section, s.name, "expected \(declared) (shape \(s.shape ?? "?")), found \(found)")
                }
            }
        }
    }
}

/// Lists the case groups of a golden-layout file.
public func caseNames(in file: File) throws -> [String] {
    try file.root.children().filter { file.root.isGroup($0) }
}

extension CertProtocol {
    /// Reads a case whose method may read only the names this protocol declares.
    public func read(file: File, case name: String,
                     sections: [String] = ["inputs", "params", "cotangents", "outputs", "grads"]) throws -> CaseData {
        var data = try CaseData.read(file: file, name: name, sections: sections)
        data.declared = DeclaredNames(self)
        return data
    }

    /// Every required input and param is present, and each has its declared dtype.
    public func requireValid(_ data: CaseData) throws {
        try data.requirePresent(inputs.filter { !$0.isOptional }, section: "inputs")
        try data.requirePresent(params.filter { !$0.isOptional }, section: "params")
        try data.requireDeclaredDTypes(inputs: inputs, params: params)
    }

    /// Each input, param or cotangent of the case that this protocol does not declare, with the
    /// message saying so (the declared names, the nearest one when it looks like a misspelling, and `remedy`).
    public func undeclaredDatasets(in data: CaseData, remedy: String = "remove it")
        -> [(section: String, name: String, error: InputError)] {
        data.datasetNames.compactMap { section, name in
            let declared = declaredNames(section)
            guard !declared.contains(name) else { return nil }
            var why = "not declared by \(id) "
            let other = section == "inputs" ? "params" : section == "params" ? "inputs" : nil
            if let other, declaredNames(other).contains(name) {
                why += "as an \(section == "inputs" ? "input" : "param"): it is declared under \(other)/; move it to /\(data.name)/\(other)/\(name)"
            } else if section == "cotangents" && grads.isEmpty {
                why += "(it certifies no gradients, so it takes no cotangents); \(remedy)"
            } else {
                let kind = section == "cotangents" ? "outputs" : section
                let listed = truncatedList(declared, limit: 10)
                why += declared.isEmpty ? "(it declares no \(kind))" : "(declared \(kind): \(listed))"
                let near = declared.min { editDistance($0, name) < editDistance($1, name) }
                if let near, editDistance(near, name) <= Swift.max(1, Swift.min(2, name.count / 3)) {
                    why += "; did you mean '\(near)'? Otherwise \(remedy)"
                } else {
                    why += "; \(remedy)"
                }
            }
            return (section, name, InputError(file: data.source, object: "/\(data.name)/\(section)/\(name)", why))
        }
    }

    /// The params of the case whose value (given, or the declared default) lies outside the values
    /// the goldens certify, as "name = value".
    public func uncertifiedParams(in data: CaseData) -> [String] {
        params.compactMap { spec in
            guard spec.certified != nil, let v = data.paramValue(spec) ?? spec.default, !spec.certifies(v) else { return nil }
            return "\(spec.name) = \(v)"
        }
    }
}

/// Levenshtein distance (for "did you mean" hints).
func editDistance(_ a: String, _ b: String) -> Int {
    let (x, y) = (Array(a), Array(b))
    var row = Array(0...y.count)
    for i in 1...Swift.max(1, x.count) where !x.isEmpty {
        var prev = row[0]
        row[0] = i
        for j in 1...Swift.max(1, y.count) where !y.isEmpty {
            let cur = row[j]
            row[j] = Swift.min(row[j] + 1, row[j - 1] + 1, prev + (x[i - 1] == y[j - 1] ? 0 : 1))
            prev = cur
        }
    }
    return x.isEmpty ? y.count : row[y.count]
}
