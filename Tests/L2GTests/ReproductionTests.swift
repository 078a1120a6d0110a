// docs/l2g/REPRODUCTION.md's results table is generated from docs/l2g/experiment.json (docs/l2g/tables.py --check), and the
// check fails when a figure is typed by hand.
import Foundation
import Testing

func runPython(_ args: [String], in dir: String) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: dir)
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return (p.terminationStatus, text)
}

@Suite struct L2GReproduction {
    @Test func tableIsGenerated() throws {
        let (code, out) = try runPython([root + "/docs/l2g/tables.py", "--check"], in: root)
        #expect(code == 0, "\(out)")
    }

    @Test func handEditedFigureIsCaught() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("l2g-repro-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for f in ["tables.py", "experiment.json", "REPRODUCTION.md"] {
            try FileManager.default.copyItem(atPath: root + "/docs/l2g/" + f, toPath: dir + "/" + f)
        }
        var doc = try String(contentsOfFile: dir + "/REPRODUCTION.md", encoding: .utf8)
        doc = doc.replacingOccurrences(of: "| L2G-aligner | 3 | 0.5", with: "| L2G-aligner | 3 | 0.6")
        try doc.write(toFile: dir + "/REPRODUCTION.md", atomically: true, encoding: .utf8)
        let (code, out) = try runPython([dir + "/tables.py", "--check"], in: dir)
        #expect(code == 1, "tables.py --check missed a hand-edited AP: \(out)")
    }
}
