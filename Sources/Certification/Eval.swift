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
    ///
    /// An input, param or cotangent the protocol does not declare is an error naming it, unless
    /// `allowExtra`: then it is dropped (never seen by the method) and `warn` lists it. A param whose
    /// value the goldens do not certify is reported through `warn` and the case's `uncertified` attribute.
    @discardableResult
    public static func run(protocol p: CertProtocol, input: String, output: String, allowExtra: Bool = false,
                           warn: (String) -> Void = { _ in }) throws -> [String] {
        try SafeOutput.prepare(output)
        let method = try Registry.shared.method(p.id)
        let inFile = try File.open(input)
        let names = try caseNames(in: inFile)
        guard !names.isEmpty else {
            throw InputError(file: input, object: "/", "no case groups; expected /<case>/inputs/... as `certify show \(p.id)` lists")
        }
        var results: [(String, [String: Tensor], [String: Tensor], [String])] = []
        var ignored: [String] = []
        for name in names {
            guard inFile.root.isGroup("\(name)/inputs") || inFile.root.isGroup("\(name)/params") else {
                throw InputError(file: input, object: "/\(name)", "has no inputs/ or params/ group (wrong layout)")
            }
            var data = try p.read(file: inFile, case: name, sections: ["inputs", "params", "cotangents"])
            for (section, dataset, error) in p.undeclaredDatasets(in: data, remedy: "remove it or pass --allow-extra") {
                guard allowExtra else { throw error }
                ignored.append(error.object)
                data.remove(section: section, name: dataset)
            }
            try p.requireValid(data)
            let r = try method.evaluate(data, wrt: p.grads)
            let uncertified = p.uncertifiedParams(in: data)
            if !uncertified.isEmpty {
                warn("\(input): /\(name): \(uncertified.joined(separator: ", ")): declared by \(p.id) but not certified by its goldens")
            }
            results.append((name, r.outputs, r.grads, uncertified))
        }
        if !ignored.isEmpty {
            warn("\(input): ignored \(ignored.count) dataset(s) not declared by \(p.id) (--allow-extra): \(truncatedList(ignored, limit: 10))")
        }
        try SafeOutput.write(output) { tmp in
            let f = try File.create(tmp)
            try f.attributes.write("protocol", .string(p.id))
            try f.attributes.write("generator", .string("certify eval (Swift reference implementation)"))
            try f.attributes.write("source", .string(input))
            let flagged = results.filter { !$0.3.isEmpty }
            if !flagged.isEmpty {
                try f.attributes.write("uncertified", .string(flagged.map { "\($0.0): \($0.3.joined(separator: ", "))" }.joined(separator: "; ")))
            }
            for (name, outs, grads, uncertified) in results {
                let g = try f.root.createGroup(name)
                if !uncertified.isEmpty { try g.attributes.write("uncertified", .string(uncertified.joined(separator: ", "))) }
                for (k, t) in outs { try f.root.write("\(name)/outputs/\(k)", typed(t, as: p.outputs.first { $0.name == k }?.dtype), shape: t.shape) }
                for (k, t) in grads { try f.root.write("\(name)/grads/\(k)", .float64(t.data), shape: t.shape) }
            }
            try f.flush()
        }
        return names
    }
}
