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

    public init(name: String, source: String) {
        self.name = name
        self.source = source
    }

    func err(_ section: String, _ name: String, _ msg: String) -> InputError {
        InputError(file: source, object: "/\(self.name)/\(section)/\(name)", msg)
    }

    /// An input or param tensor by name (inputs first).
    public func tensor(_ name: String) throws -> Tensor {
        if let t = inputs[name] { return t }
        if let t = params[name] { return t }
        throw err("inputs", name, "missing dataset (the protocol lists it; see `certify show`)")
    }

    /// A tensor with a required rank.
    public func tensor(_ name: String, rank: Int) throws -> Tensor {
        let t = try tensor(name)
        guard t.rank == rank else {
            throw err(inputs[name] != nil ? "inputs" : "params", name, "expected rank \(rank), found shape \(t.shape)")
        }
        return t
    }

    public func has(_ name: String) -> Bool { inputs[name] != nil || params[name] != nil || strings[name] != nil }

    /// A scalar integer param.
    public func int(_ name: String) throws -> Int {
        let t = try tensor(name)
        guard t.count == 1, let v = t.data.first else {
            throw err("params", name, "expected an integer scalar, found shape \(t.shape)")
        }
        if let problem = integerProblem(v) { throw err("params", name, "\(problem) (an integer scalar)") }
        return Int(v)
    }
    public func int(_ name: String, default d: Int) throws -> Int { has(name) ? try int(name) : d }

    /// An integer list param (a scalar is a one-element list).
    public func ints(_ name: String) throws -> [Int] {
        let t = try tensor(name)
        guard t.rank <= 1 else {
            throw err("params", name, "expected a 1-D integer array, found shape \(t.shape)")
        }
        for (i, v) in t.data.enumerated() {
            if let problem = integerProblem(v) { throw err("params", name, "element \(i): \(problem) (a 1-D integer array)") }
        }
        return t.data.map { Int($0) }
    }

    public func double(_ name: String) throws -> Double {
        let t = try tensor(name)
        guard t.count == 1 else { throw err("params", name, "expected a scalar, found shape \(t.shape)") }
        return t.data[0]
    }
    public func double(_ name: String, default d: Double) throws -> Double { has(name) ? try double(name) : d }

    public func bool(_ name: String) throws -> Bool { try int(name) != 0 }
    public func bool(_ name: String, default d: Bool) throws -> Bool { has(name) ? try bool(name) : d }

    public func string(_ name: String) throws -> String {
        guard let s = strings[name] else { throw err("params", name, "missing string dataset") }
        return s
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
        for s in specs where !has(s.name) {
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
