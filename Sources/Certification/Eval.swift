// `certify eval`: run the reference implementation on a user's inputs laid out like a golden case
// (/<case>/inputs, /<case>/params, /<case>/cotangents) and write /<case>/outputs and /<case>/grads.
// The output goes through SafeOutput: checked before any work, written to a temporary file, renamed.

import Foundation
import HDF5
import Tensor

/// A Float64 tensor as stored data of a declared dtype (integral values only for integer dtypes).
func typed(_ t: Tensor, as dtype: String?) -> ArrayData {
    let integral = t.data.allSatisfy { $0.rounded() == $0 && Swift.abs($0) < 9e15 }
    switch dtype.flatMap(DType.init(rawValue:)) {
    case .int64?, .int32?, .uint8?, .int8? where integral: return .int64(t.data.map { Int64($0) })
    case .bool? where integral: return .bool(t.data.map { $0 != 0 })
    default: return .float64(t.data)
    }
}

public enum Evaluator {
    /// Evaluates every case in `input`; returns the case names written.
    @discardableResult
    public static func run(protocol p: CertProtocol, input: String, output: String) throws -> [String] {
        try SafeOutput.prepare(output)
        let method = try Registry.shared.method(p.id)
        let inFile = try File.open(input)
        let names = try caseNames(in: inFile)
        guard !names.isEmpty else {
            throw InputError(file: input, object: "/", "no case groups; expected /<case>/inputs/... as `certify show \(p.id)` lists")
        }
        var results: [(String, [String: Tensor], [String: Tensor])] = []
        for name in names {
            guard inFile.root.isGroup("\(name)/inputs") || inFile.root.isGroup("\(name)/params") else {
                throw InputError(file: input, object: "/\(name)", "has no inputs/ or params/ group (wrong layout)")
            }
            let data = try CaseData.read(file: inFile, name: name, sections: ["inputs", "params", "cotangents"])
            try data.requirePresent(p.inputs.filter { !($0.optional ?? false) }, section: "inputs")
            try data.requireDeclaredDTypes(inputs: p.inputs, params: p.params)
            let r = try method.evaluate(data, wrt: p.grads)
            results.append((name, r.outputs, r.grads))
        }
        try SafeOutput.write(output) { tmp in
            let f = try File.create(tmp)
            try f.attributes.write("protocol", .string(p.id))
            try f.attributes.write("generator", .string("certify eval (Swift reference implementation)"))
            try f.attributes.write("source", .string(input))
            for (name, outs, grads) in results {
                for (k, t) in outs { try f.root.write("\(name)/outputs/\(k)", typed(t, as: p.outputs.first { $0.name == k }?.dtype), shape: t.shape) }
                for (k, t) in grads { try f.root.write("\(name)/grads/\(k)", .float64(t.data), shape: t.shape) }
            }
            try f.flush()
        }
        return names
    }
}
