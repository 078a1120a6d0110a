// A protocol's id names its file (protocols/<paper>/<method>.yaml), so `certify eval` and `certify diff` read one
// protocol file, not all of them (issue 17 §4), and a full load refuses a protocol kept elsewhere.

import Certification
import Foundation
import Testing

@Suite struct ProtocolLoading {
    /// A package root in a temporary folder: the given protocol files, and golden/ linked to the real goldens.
    func scratchRoot(_ files: [String: String]) throws -> String {
        let dir = tempPath("protocol-load-\(UUID().uuidString)")
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir + "/protocols/core", withIntermediateDirectories: true)
        try fm.createSymbolicLink(atPath: dir + "/golden", withDestinationPath: protocolSet.root + "/golden")
        for (rel, text) in files { try text.write(toFile: dir + "/protocols/" + rel, atomically: true, encoding: .utf8) }
        return dir
    }

    @Test func oneProtocolIsReadFromItsOwnFile() throws {
        let softmax = try String(contentsOfFile: protocolSet.root + "/protocols/core/softmax.yaml", encoding: .utf8)
        let root = try scratchRoot(["core/softmax.yaml": softmax, "core/relu.yaml": "id: [not, a, protocol\n"])
        let one = try ProtocolSet.load(root: root, id: "core.softmax")
        #expect(one.protocols.map(\.id) == ["core.softmax"])
        let full = try protocolSet.protocolFor("core.softmax")
        #expect(one.protocols[0].title == full.title && one.protocols[0].cases.map(\.name) == full.cases.map(\.name)
                && one.protocols[0].outputs.map(\.name) == full.outputs.map(\.name) && one.protocols[0].tolerance == full.tolerance)
        // The broken file is another protocol's: only a full load reads it.
        let e = try #require(throws: Error.self) { _ = try ProtocolSet.load(root: root) }
        #expect("\(e)".contains("relu.yaml"), "\(e)")
    }

    @Test func anUnknownIdFallsBackToTheFullLoadAndItsSuggestions() throws {
        let softmax = try String(contentsOfFile: protocolSet.root + "/protocols/core/softmax.yaml", encoding: .utf8)
        let root = try scratchRoot(["core/softmax.yaml": softmax])
        for id in ["core.softmaxx", "core", "../core/softmax", "core..softmax", "core.softmax/../softmax", ""] {
            let set = try ProtocolSet.load(root: root, id: id)
            #expect(set.protocols.map(\.id) == ["core.softmax"], "\(id)")
            let e = try #require(throws: ProtocolError.self, "\(id)") { _ = try set.protocolFor(id) }
            #expect("\(e)".contains("unknown protocol id"), "\(e)")
        }
        let e = try #require(throws: ProtocolError.self) { _ = try ProtocolSet.load(root: root, id: "core.softmaxx").protocolFor("core.softmaxx") }
        #expect("\(e)".contains("did you mean core.softmax"), "\(e)")
    }

    @Test func aProtocolOutsideItsOwnFileIsRefused() throws {
        let softmax = try String(contentsOfFile: protocolSet.root + "/protocols/core/softmax.yaml", encoding: .utf8)
        // The same id in a second file (formerly "duplicate protocol id"), and a file named after another id.
        for rel in ["core/softmax2.yaml", "core/relu.yaml"] {
            let root = try scratchRoot(["core/softmax.yaml": softmax, rel: softmax])
            let e = try #require(throws: ProtocolError.self, "\(rel)") { _ = try ProtocolSet.load(root: root) }
            #expect("\(e)".contains(rel) && "\(e)".contains("must be in protocols/core/softmax.yaml"), "\(e)")
            // Asked for by id, the canonical file is read; the misplaced copy is not.
            #expect(try ProtocolSet.load(root: root, id: "core.softmax").protocols.map(\.file) == [root + "/protocols/core/softmax.yaml"])
        }
    }
}
