// Issue 10 §2: a method reads only names its protocol declares, and every declared name is read;
// protocols state which param values the goldens certify.

import Certification
import CertifyMethods
import Foundation
import HDF5
import Ops
import Tensor
import Testing

@Suite struct Strictness {
    /// Instrumented evaluation of every golden case: the names read are exactly the declared ones.
    @Test("the method reads exactly the names its protocol declares", arguments: allProtocolIDs)
    func readsMatchDeclarations(_ id: String) throws {
        let p = try protocolSet.protocolFor(id)
        let method = try Registry.shared.method(id)
        let file = try File.open(protocolSet.goldenPath(p))
        let log = ReadLog()
        for c in p.cases {
            var data = try p.read(file: file, case: c.name, sections: ["inputs", "params"])
            data.log = log
            do { _ = try method.evaluate(data, wrt: []) } catch let e as SkippableError {
                Issue.record("\(id) skipped: \(e.skipReason)", severity: .warning)
                return
            }
        }
        #expect(log.undeclared.isEmpty, "\(id) reads undeclared \(log.undeclared.sorted())")
        let declared = Set(p.inputs.map(\.name) + p.params.map(\.name))
        let unread = declared.subtracting(log.read)
        #expect(unread.isEmpty, "\(id) declares \(unread.sorted()), which no golden case makes its method read")
    }

    /// A param the method can do without (it reads it with a default) is declared optional or with its
    /// default, so eval does not demand it; a required one really is required.
    @Test("params the method defaults are declared optional", arguments: allProtocolIDs)
    func optionalParamsAreDeclaredOptional(_ id: String) throws {
        let p = try protocolSet.protocolFor(id)
        let method = try Registry.shared.method(id)
        let file = try File.open(protocolSet.goldenPath(p))
        for c in p.cases {
            let data = try p.read(file: file, case: c.name, sections: ["inputs", "params"])
            for spec in p.params where !spec.isOptional && data.has(spec.name) {
                var without = data
                without.remove(section: data.params[spec.name] != nil || data.dtypes["params/\(spec.name)"] != nil ? "params" : "inputs", name: spec.name)
                do {
                    _ = try method.evaluate(without, wrt: [])
                    Issue.record("\(id): case \(c.name) evaluates without required param '\(spec.name)'; declare its default (or optional: true)")
                } catch let e as SkippableError {
                    Issue.record("\(id) skipped: \(e.skipReason)", severity: .warning)
                    return
                } catch {}
            }
        }
    }
}
