// Issue 10 §2: a method reads only names its protocol declares, and every declared name is read;
// protocols state which param values the goldens certify.

import Certification
import CertifyMethods
import Foundation
import HDF5
import Ops
import Tensor
import Testing

/// Evaluates every golden case of `p` with a read log: (names read but undeclared, names declared
/// but never read), or nil when the protocol cannot run here.
func walk(_ p: CertProtocol, method: Method) throws -> (undeclared: [String], unread: [String])? {
    let file = try File.open(protocolSet.goldenPath(p))
    let log = ReadLog()
    for c in p.cases {
        var data = try p.read(file: file, case: c.name, sections: ["inputs", "params"])
        data.log = log
        do { _ = try method.evaluate(data, wrt: []) } catch let e as SkippableError {
            Issue.record("\(p.id) skipped: \(e.skipReason)", severity: .warning)
            return nil
        }
    }
    let declared = Set(p.inputs.map(\.name) + p.params.map(\.name))
    return (log.undeclared.sorted(), declared.subtracting(log.read).sorted())
}

@Suite struct Strictness {
    /// Instrumented evaluation of every golden case: the names read are exactly the declared ones.
    @Test("the method reads exactly the names its protocol declares", arguments: allProtocolIDs)
    func readsMatchDeclarations(_ id: String) throws {
        let p = try protocolSet.protocolFor(id)
        guard let (undeclared, unread) = try walk(p, method: try Registry.shared.method(id)) else { return }
        #expect(undeclared.isEmpty, "\(id) reads undeclared \(undeclared)")
        #expect(unread.isEmpty, "\(id) declares \(unread), which no golden case makes its method read")
    }

    /// The walk catches both directions: a declaration nothing reads, and a read nothing declares.
    @Test func walkCatchesUnreadDeclarationsAndUndeclaredReads() throws {
        var p = try protocolSet.protocolFor("core.softmax")
        let method = try Registry.shared.method("core.softmax")
        var extra = p
        extra.params.append(try #require(p.params.first))
        extra.params[extra.params.count - 1].name = "temperature"
        #expect(try walk(extra, method: method)?.unread == ["temperature"])
        let sneaky = Method("core.softmax") { ctx in
            ["y": try softmax(ctx.v("x"), axis: ctx.int("axis")) * ctx.double("temperature", default: 1)]
        }
        p.cases = Array(p.cases.prefix(1))
        #expect(throws: UndeclaredReadError.self) { _ = try walk(p, method: sneaky) }
        // Certification fails on it too, naming the name, even though no golden holds it.
        let r = Certifier.certify(try protocolSet.protocolFor("core.softmax"), in: protocolSet, implementation: sneaky)
        #expect(r.failures.contains { $0.kind == .golden && $0.message.contains("reads 'temperature'") }, "\(r.failures)")
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

extension Strictness {
    /// `certified:` lists exactly the values the goldens hold (a case without the param holds its
    /// default), and a small param with one value across all goldens says so with `certified:`.
    @Test("certified values are the golden values", arguments: allProtocolIDs)
    func certifiedValuesAreGoldenValues(_ id: String) throws {
        let p = try protocolSet.protocolFor(id)
        let file = try File.open(protocolSet.goldenPath(p))
        let cases = try p.cases.map { try p.read(file: file, case: $0.name, sections: ["params"]) }
        for spec in p.params {
            let values = cases.compactMap { $0.paramValue(spec) ?? spec.default }
            guard values.count == cases.count else { continue }  // absent without a default: not a value param
            let distinct = Set(values)
            if let certified = spec.certified {
                #expect(distinct == Set(certified), "\(id).\(spec.name): certified \(certified), goldens hold \(distinct.map(\.description).sorted())")
            } else if distinct.count == 1, let v = distinct.first, (v.numbers?.count ?? 1) <= 4 {
                Issue.record("\(id).\(spec.name) is \(v) in every golden case: declare certified: [\(v)] so other values are reported")
            }
        }
    }

    /// Every name a method's source reads literally (ctx.int("..."), data.has("..."), enumParam(ctx, "...")) is
    /// declared by a protocol registered in the same file, or by one of the same paper for helper files.
    @Test func sourcesReadOnlyDeclaredNames() throws {
        let root = protocolSet.root + "/Sources"
        let modules = ["CertifyMethods": "core", "IADG": "iadg", "InputGradients": "input_gradients", "LAVA": "lava", "DARTSGT": "dartsgt"]
        let read = try NSRegularExpression(pattern: #"(?:ctx|data)\.(?:v|optionalV|tensor|int|ints|double|bool|string|has)\("([^"\\]+)""#)
        let enumRead = try NSRegularExpression(pattern: #"enumParam\(ctx, "([^"\\]+)""#)
        let registered = try NSRegularExpression(pattern: #"Method\("([a-z_0-9]+\.[a-z_0-9]+)""#)
        func matches(_ re: NSRegularExpression, _ text: String) -> [String] {
            re.matches(in: text, range: NSRange(text.startIndex..., in: text)).map { String(text[Range($0.range(at: 1), in: text)!]) }
        }
        func declared(_ ids: [String]) -> Set<String> {
            Set(protocolSet.protocols.filter { ids.contains($0.id) }.flatMap { $0.inputs.map(\.name) + $0.params.map(\.name) })
        }
        var checked = 0
        for (module, paper) in modules {
            let dir = root + "/" + module
            for case let rel as String in FileManager.default.enumerator(atPath: dir)! where rel.hasSuffix(".swift") {
                let text = try String(contentsOfFile: dir + "/" + rel, encoding: .utf8)
                let names = matches(read, text) + matches(enumRead, text)
                guard !names.isEmpty else { continue }
                let ids = matches(registered, text)
                let scope = ids.isEmpty ? protocolSet.protocols.map(\.id).filter { $0.hasPrefix(paper + ".") } : ids
                let known = declared(scope)
                for n in Set(names) {
                    checked += 1
                    #expect(known.contains(n), "\(module)/\(rel) reads '\(n)', which none of \(scope) declares")
                }
            }
        }
        #expect(checked > 100, "the scan found only \(checked) names: has the accessor syntax changed?")
    }

    /// A missing param is reported under params/, a missing input under inputs/.
    @Test func missingNamesAreReportedInTheirSection() throws {
        let p = try protocolSet.protocolFor("core.softmax")
        let file = try File.open(protocolSet.goldenPath(p))
        var data = try p.read(file: file, case: "rows", sections: ["inputs", "params"])
        data.params["axis"] = nil
        let method = try Registry.shared.method(p.id)
        let e = try #require(throws: InputError.self) { _ = try method.evaluate(data, wrt: []) }
        #expect(e.object == "/rows/params/axis", "\(e)")
        // Without a protocol, a param accessor still says params/.
        var bare = CaseData(name: "c", source: "mine.h5")
        bare.inputs["x"] = Tensor(unchecked: [2], [1, 2])
        let e2 = try #require(throws: InputError.self) { _ = try method.evaluate(bare, wrt: []) }
        #expect(e2.object == "/c/params/axis", "\(e2)")
        #expect(throws: InputError.self) { try p.requireValid(data) }
        data.inputs["x"] = nil
        let e3 = try #require(throws: InputError.self) { try p.requireValid(data) }
        #expect(e3.object == "/rows/inputs/x", "\(e3)")
    }

    /// The loader knows the new keys and still refuses unknown ones inside an input/param/output entry.
    @Test func loaderParsesDefaultAndCertifiedAndRejectsUnknownKeys() throws {
        let text = try String(contentsOfFile: protocolSet.root + "/protocols/core/max_pool2d.yaml", encoding: .utf8)
        let p = try protocolSet.protocolFor("core.max_pool2d")
        let ceil = try #require(p.params.first { $0.name == "ceil_mode" })
        #expect(ceil.default == .bool(false) && ceil.certified == [.bool(false)] && ceil.isOptional)
        #expect(ceil.uncertifiedSummary == "declared, not certified: ceil_mode = true")
        #expect(ceil.certifies(.number(0)) && !ceil.certifies(.bool(true)) && !ceil.certifies(.number(1)))
        let dil = try #require(try protocolSet.protocolFor("core.conv_transpose1d").params.first { $0.name == "dilation" })
        #expect(dil.certifies(.list([1])) && dil.certifies(.number(1)) && !dil.certifies(.list([2])))
        let bad = tempPath("misspelled.yaml")
        try text.replacingOccurrences(of: "certified: [false]", with: "certifed: [false]").write(toFile: bad, atomically: true, encoding: .utf8)
        let e = try #require(throws: ProtocolError.self) { _ = try CertProtocol.load(bad) }
        #expect("\(e)".contains("ceil_mode") && "\(e)".contains("certifed"), "\(e)")
    }
}
