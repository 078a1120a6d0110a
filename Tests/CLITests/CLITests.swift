// The `certify` executable end to end: exit codes (0 same, 1 different, 2 error), clear one-line
// errors, no partial output files, and no crash on corrupted input.

import Certification
import Foundation
import HDF5
import Testing

let root = packageRoot()

/// The `certify` of this test binary's own build (its sibling: same configuration and flags, so `make test` runs the
/// release build it tested); else .build/release or .build/debug.
func certifyBinary() -> String {
    let sibling = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("certify").path
    for p in [sibling, root + "/.build/release/certify", root + "/.build/debug/certify"] where FileManager.default.isExecutableFile(atPath: p) {
        return p
    }
    return root + "/.build/release/certify"
}

struct RunResult {
    var status: Int32
    var out: String
    var err: String
    var crashed: Bool
}

func certify(_ args: String...) throws -> RunResult { try certify(args) }

func certify(_ args: [String]) throws -> RunResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: certifyBinary())
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: root)
    let o = Pipe(), e = Pipe()
    p.standardOutput = o
    p.standardError = e
    try p.run()
    let od = o.fileHandleForReading.readDataToEndOfFile()
    let ed = e.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return RunResult(status: p.terminationStatus, out: String(decoding: od, as: UTF8.self), err: String(decoding: ed, as: UTF8.self),
                     crashed: p.terminationReason == .uncaughtSignal)
}

func tmp(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("certify-cli-\(getpid())")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(name).path
}

let softmaxGolden = root + "/golden/core/softmax.h5"

/// Copies a golden and applies `edit` to the copy.
func editedCopy(_ name: String, of golden: String = softmaxGolden, _ edit: (File) throws -> Void) throws -> String {
    let path = tmp(name)
    try? FileManager.default.removeItem(atPath: path)
    try FileManager.default.copyItem(atPath: golden, toPath: path)
    let f = try File.open(path, mode: .readWrite)
    try edit(f)
    try f.flush()
    return path
}

@Suite(.serialized) struct CLI {
    @Test func helpOnEveryCommand() throws {
        for cmd in [[], ["run"], ["diff"], ["eval"], ["list"], ["show"], ["checklist"]] {
            let r = try certify(cmd + ["--help"])
            #expect(r.status == 0 && r.out.contains("USAGE"), "\(cmd): \(r.err)")
        }
    }

    @Test func evalThenDiffReproducesEveryGolden() throws {
        let set = try ProtocolSet.load(root: root)
        for p in set.protocols {
            let out = tmp("eval-\(p.id).h5")
            let e = try certify("eval", p.id, "--input", set.goldenPath(p), "--output", out)
            if e.status == 2 && e.err.contains("skipped: fixtures not found") { continue }  // third-party data absent here
            #expect(e.status == 0, "\(p.id) eval: \(e.err)")
            let d = try certify("diff", out, set.goldenPath(p))
            #expect(d.status == 0, "\(p.id) diff: \(d.out)\(d.err)")
        }
    }

    @Test func perturbedOutputIsADifference() throws {
        let path = try editedCopy("perturbed.h5") { f in
            let ds = try f.dataset("rows/outputs/y")
            var y = try ds.readDoubles()
            y[3] *= 1 + 1e-6
            try f.root.write("rows/outputs/y", .float64(y), shape: try ds.shape)
        }
        let r = try certify("diff", path, softmaxGolden)
        #expect(r.status == 1)
        #expect(r.out.contains("mismatched elements: 1 / 28"), "\(r.out)")
        #expect(r.out.contains("at index [0, 3]"), "\(r.out)")
        // A looser tolerance accepts it.
        #expect(try certify("diff", path, softmaxGolden, "--rtol", "1e-5").status == 0)
    }

    @Test func missingGoldenDatasetIsADifference() throws {
        let path = try editedCopy("missing.h5") { f in try f.root.remove("rows/grads/x") }
        let r = try certify("diff", path, softmaxGolden)
        #expect(r.status == 1)
        #expect(r.out.contains("rows/grads/x: only in golden"), "\(r.out)")
    }

    @Test func float32ActualUsesFloat32Tolerances() throws {
        let path = try editedCopy("f32.h5") { f in
            for name in try f.root.datasetPaths() where name.contains("outputs") || name.contains("grads") {
                let ds = try f.dataset(name)
                let v = try ds.readDoubles()
                try f.root.write(name, .float32(v.map(Float.init)), shape: try ds.shape)
            }
        }
        let r = try certify("diff", path, softmaxGolden, "--verbose")
        #expect(r.status == 0, "\(r.out)")
        #expect(r.out.contains("float32 vs golden float64"), "\(r.out)")
    }

    @Test func badInputExitsTwoWithOneClearLine() throws {
        let dir = tmp("a-directory")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let empty = tmp("empty.h5")
        FileManager.default.createFile(atPath: empty, contents: Data())
        let text = tmp("text.h5")
        try "hello\n".write(toFile: text, atomically: true, encoding: .utf8)
        let data = try Data(contentsOf: URL(fileURLWithPath: softmaxGolden))
        let truncated = tmp("truncated.h5")
        try data.prefix(data.count / 3).write(to: URL(fileURLWithPath: truncated))
        let wrongLayout = tmp("layout.h5")
        do { _ = try File.create(wrongLayout).root.write("x", .float64([1]), shape: [1]) }
        let cases: [([String], String)] = [
            (["diff", tmp("nope.h5"), softmaxGolden], "no such file"),
            (["diff", dir, softmaxGolden], "directory"),
            (["diff", empty, softmaxGolden], "empty"),
            (["diff", text, softmaxGolden], "not an HDF5 file"),
            (["diff", softmaxGolden, wrongLayout], "no outputs or gradients"),
            (["eval", "core.softmax", "--input", truncated, "--output", tmp("o1.h5")], truncated),
            (["eval", "core.softmax", "--input", wrongLayout, "--output", tmp("o2.h5")], "no case groups"),
            (["eval", "core.nope", "--input", softmaxGolden, "--output", tmp("o3.h5")], "unknown protocol id"),
            (["run", "core.nope"], "unknown protocol id"),
            (["show", "core.nope"], "unknown protocol id"),
            (["diff", "--frobnicate", softmaxGolden, softmaxGolden], "frobnicate"),
            (["diff", softmaxGolden, softmaxGolden, "--rtol", "-1"], "rtol"),
        ]
        for (args, needle) in cases {
            let r = try certify(args)
            #expect(r.status == 2, "\(args): status \(r.status) \(r.err)")
            #expect(!r.crashed)
            #expect(r.err.contains(needle), "\(args): \(r.err)")
        }
        for o in ["o1.h5", "o2.h5", "o3.h5"] { #expect(!FileManager.default.fileExists(atPath: tmp(o)), "partial output \(o) left behind") }
    }

    @Test func badDataInEvalInputs() throws {
        let nan = try editedCopy("nan.h5") { f in
            var x = try f.dataset("rows/inputs/x").readDoubles()
            x[2] = .nan
            try f.root.write("rows/inputs/x", .float64(x), shape: [4, 7])
        }
        let wrongRank = try editedCopy("rank.h5") { f in try f.root.write("rows/params/axis", .int64([1, 2]), shape: [2]) }
        let wrongDType = try editedCopy("dtype.h5") { f in try f.root.write("rows/inputs/x", .string(["a"]), shape: [1]) }
        let float32 = try editedCopy("f32in.h5") { f in
            let x = try f.dataset("rows/inputs/x").readDoubles()
            try f.root.write("rows/inputs/x", .float32(x.map(Float.init)), shape: [4, 7])
        }
        let missing = try editedCopy("noinput.h5") { f in try f.root.remove("rows/inputs/x") }
        let badMatmul = try editedCopy("matmul.h5", of: root + "/golden/core/matmul.h5") { f in
            try f.root.write("square/inputs/b", .float64([1, 2, 3]), shape: [3, 1])
        }
        for (path, pid, needle) in [(nan, "core.softmax", "nan"), (wrongRank, "core.softmax", "integer scalar"),
                                    (wrongDType, "core.softmax", "/rows/inputs/x"), (missing, "core.softmax", "/rows/inputs/x"),
                                    (badMatmul, "core.matmul", "[4, 4]"),
                                    (float32, "core.softmax", "expected float64 (shape any shape of rank ≥ 1), found float32")] {
            let out = tmp("bad-out.h5")
            let r = try certify("eval", pid, "--input", path, "--output", out)
            #expect(r.status == 2, "\(path): \(r.out) \(r.err)")
            #expect(r.err.lowercased().contains(needle.lowercased()), "\(path): \(r.err)")
            #expect(!FileManager.default.fileExists(atPath: out))
        }
    }

    /// Hundreds of randomly corrupted copies of a real golden: diff and eval must exit 0, 1 or 2, never crash.
    @Test func fuzzedGoldensNeverCrash() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: softmaxGolden))
        var state: UInt64 = 0x5EED
        func next() -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(truncatingIfNeeded: state >> 33)
        }
        for i in 0..<150 {
            var bytes = [UInt8](data)
            switch i % 3 {
            case 0: for _ in 0..<(1 + next() % 8) { bytes[next() % bytes.count] ^= UInt8(1 << (next() % 8)) }
            case 1: bytes = Array(bytes.prefix(next() % bytes.count))
            default: for _ in 0..<(1 + next() % 64) { bytes[next() % bytes.count] = UInt8(next() % 256) }
            }
            let path = tmp("fuzz.h5")
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let d = try certify("diff", path, softmaxGolden)
            if d.crashed { try? FileManager.default.copyItem(atPath: path, toPath: tmp("crash-diff-\(i).h5")) }
            #expect(!d.crashed && [0, 1, 2].contains(d.status), "diff crashed on fuzz case \(i): \(d.err)")
            let e = try certify("eval", "core.softmax", "--input", path, "--output", tmp("fuzz-out.h5"))
            #expect(!e.crashed && [0, 1, 2].contains(e.status), "eval crashed on fuzz case \(i): \(e.err)")
        }
    }

    @Test func runListShowChecklist() throws {
        let r = try certify("run", "core.softmax", "--report", tmp("r.json"))
        #expect(r.status == 0 && r.out.contains("core.softmax") && r.out.contains("certified"), "\(r.out)\(r.err)")
        let json = try String(contentsOfFile: tmp("r.json"), encoding: .utf8)
        #expect(json.contains("\"passed\" : true"))
        #expect(try certify("run", "core.matmul", "--report", tmp("r.xml")).status == 0)
        #expect(try String(contentsOfFile: tmp("r.xml"), encoding: .utf8).contains("<testsuites"))
        let l = try certify("list")
        #expect(l.status == 0 && l.out.contains("core.matmul"))
        let s = try certify("show", "core.softmax")
        #expect(s.status == 0 && s.out.contains("/<case>/inputs/<name>") && s.out.contains("axis"), "\(s.out)")
    }
}
