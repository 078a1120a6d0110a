// What users rely on first: the README's commands work on a fresh clone, every output path is checked
// before any work and never replaces anything but a regular file, and `diff` means exactly what it says.

import Certification
import Foundation
import HDF5
import Testing

/// A fresh scratch folder per test.
func scratchDir(_ name: String) -> String {
    let d = tmp("trust-\(name)")
    try? FileManager.default.removeItem(atPath: d)
    try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

@Suite(.serialized) struct OutputPaths {
    /// `make certify` writes .certify/report.md on a fresh clone: missing folders are created.
    @Test func reportFolderIsCreated() throws {
        let out = scratchDir("report") + "/new/sub/report.md"
        let r = try certify("run", "core.relu", "--report", out)
        #expect(r.status == 0, "\(r.out)\(r.err)")
        #expect(FileManager.default.fileExists(atPath: out))
    }

    /// A directory, FIFO or symbolic link at any output path is refused (exit 2, one line naming it)
    /// before any work, and left exactly as it was.
    @Test func nonRegularTargetsAreRefusedUntouched() throws {
        let d = scratchDir("targets")
        // .json names, so that every command (reports take their format from the extension) reaches the check.
        let dir = d + "/a-dir.json", fifo = d + "/a-fifo.json", link = d + "/a-link.json", linked = d + "/linked.txt"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "keep me".write(toFile: dir + "/inside.txt", atomically: true, encoding: .utf8)
        #expect(mkfifo(fifo, 0o644) == 0)
        try "linked".write(toFile: linked, atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: linked)
        let commands: [(String) -> [String]] = [
            { ["eval", "core.softmax", "--input", softmaxGolden, "--output", $0] },
            { ["run", "core.relu", "--report", $0] },
            { ["checklist", "--output", $0] },
            { ["blockmnist", "export", "--out", $0] },
            { ["audit", "--method", "gradient", "--json", $0] },
            { ["audit", "--method", "gradient", "--json", d + "/fine.json", "--svg", $0] },
            { ["audit", "--method", "gradient", "--json", d + "/fine.json", "--html", $0] },
            { ["bench", "--only", "matmul", "--json-out", $0] },
            { ["graph-audit", "--model", packageRoot() + "/docs/dartsgt/model.h5", "--data", packageRoot() + "/docs/dartsgt/data.h5", "--json", d + "/fine.json", "--svg", $0] },
        ]
        for target in [dir, fifo, link] {
            for make in commands {
                let args = make(target)
                let t0 = Date()
                let r = try certify(args)
                #expect(r.status == 2, "\(args): \(r.status) \(r.out) \(r.err)")
                #expect(r.err.contains(target), "\(args): \(r.err)")
                // An audit trains models for minutes: refusing within seconds means no work was done first.
                #expect(Date().timeIntervalSince(t0) < 60, "\(args) did work before refusing its output")
                #expect(!FileManager.default.fileExists(atPath: d + "/fine.json"), "\(args) wrote one output before refusing the other")
            }
        }
        var isDir: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) && isDir.boolValue)
        #expect(try String(contentsOfFile: dir + "/inside.txt", encoding: .utf8) == "keep me")
        var st = stat()
        #expect(lstat(fifo, &st) == 0 && (st.st_mode & S_IFMT) == S_IFIFO)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == linked)
        #expect(try String(contentsOfFile: linked, encoding: .utf8) == "linked")
    }

    /// Several outputs: when one cannot be written, none has changed.
    @Test func severalOutputsAreAllOrNothing() throws {
        let d = scratchDir("all-or-nothing")
        let a = d + "/a.json", b = d + "/b.svg"
        try "old a".write(toFile: a, atomically: true, encoding: .utf8)
        struct Boom: Error {}
        #expect(throws: (any Error).self) {
            try SafeOutput.writeAll([(a, { try Data("new a".utf8).write(to: URL(fileURLWithPath: $0)) }), (b, { _ in throw Boom() })])
        }
        #expect(try String(contentsOfFile: a, encoding: .utf8) == "old a")
        #expect(!FileManager.default.fileExists(atPath: b))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: d).filter { $0.hasSuffix(".tmp") }
        #expect(leftovers.isEmpty, "temporary files left behind: \(leftovers)")
        // A regular file is replaced.
        try SafeOutput.write(a, text: "new a")
        #expect(try String(contentsOfFile: a, encoding: .utf8) == "new a")
    }

    /// A folder that cannot be created (a file stands where a folder is needed) is refused before work.
    @Test func parentThatIsAFileIsRefused() throws {
        let d = scratchDir("parent-file")
        try "x".write(toFile: d + "/file", atomically: true, encoding: .utf8)
        let r = try certify("eval", "core.softmax", "--input", softmaxGolden, "--output", d + "/file/out.h5")
        #expect(r.status == 2 && r.err.contains(d + "/file/out.h5"), "\(r.err)")
        #expect(!r.err.contains("NSCocoaErrorDomain"), "\(r.err)")
    }
}

@Suite(.serialized) struct DiffMeaning {
    /// --path restricts to a case; inputs, params and cotangents are context, never "missing".
    @Test func pathComparesOnlyOutputsAndGrads() throws {
        let mine = try editedCopy("only-outputs.h5") { f in
            for p in try f.root.datasetPaths() where !p.contains("/outputs/") && !p.contains("/grads/") { try f.root.remove(p) }
        }
        let r = try certify("diff", mine, softmaxGolden, "--path", "rows")
        #expect(r.status == 0, "\(r.out)")
        #expect(r.out.contains("2 dataset(s) compared"), "\(r.out)")
        let two = try certify("diff", mine, softmaxGolden, "--path", "rows", "--path", "columns")
        #expect(two.status == 0 && two.out.contains("4 dataset(s) compared"), "\(two.out)")
    }

    /// Explicit tolerances apply to Float32 data too, and the summary names the tolerances and their source.
    @Test func explicitTolerancesApplyToFloat32() throws {
        let path = try editedCopy("f32-explicit.h5") { f in
            for name in try f.root.datasetPaths() where name.contains("outputs") || name.contains("grads") {
                let ds = try f.dataset(name)
                try f.root.write(name, .float32(try ds.readDoubles().map(Float.init)), shape: try ds.shape)
            }
        }
        let loose = try certify("diff", path, softmaxGolden)
        #expect(loose.status == 0 && loose.out.contains("torch.testing's Float32 tolerances"), "\(loose.out)")
        #expect(loose.out.contains("protocol core.softmax (rtol 1e-10, atol 1e-12"), "\(loose.out)")
        let tight = try certify("diff", path, softmaxGolden, "--rtol", "1e-12", "--atol", "0")
        #expect(tight.status == 1, "\(tight.out)")
        #expect(tight.out.contains("rtol 1e-12, atol 0.0 (given on the command line"), "\(tight.out)")
        #expect(tight.out.contains("ULP distance (float32)"), "\(tight.out)")
    }

    /// --only, --cases and --ignore-missing let a user certify the outputs they produce.
    @Test func onlyCasesIgnoreMissing() throws {
        let noGrads = try editedCopy("no-grads.h5") { f in
            for p in try f.root.datasetPaths() where p.contains("/grads/") { try f.root.remove(p) }
        }
        #expect(try certify("diff", noGrads, softmaxGolden).status == 1)
        let only = try certify("diff", noGrads, softmaxGolden, "--only", "y")
        #expect(only.status == 0, "\(only.out)")
        let ignore = try certify("diff", noGrads, softmaxGolden, "--ignore-missing")
        #expect(ignore.status == 0 && ignore.out.contains("rows/grads/x: missing from") && ignore.out.contains("ignored"), "\(ignore.out)")
        let cases = try certify("diff", softmaxGolden, softmaxGolden, "--cases", "rows", "columns")
        #expect(cases.status == 0 && cases.out.contains("4 dataset(s) compared"), "\(cases.out)")
        let badCase = try certify("diff", softmaxGolden, softmaxGolden, "--cases", "nope")
        #expect(badCase.status == 2 && badCase.err.contains("nope"), "\(badCase.err)")
    }

    /// A NaN against a finite golden value is reported as NaN with its index; the worst finite
    /// difference shows both values; by default only differences are printed.
    @Test func reportsNaNAndValues() throws {
        let path = try editedCopy("nan-out.h5") { f in
            var y = try f.dataset("rows/outputs/y").readDoubles()
            y[2] = .nan
            y[5] += 1e-3
            try f.root.write("rows/outputs/y", .float64(y), shape: [4, 7])
        }
        let r = try certify("diff", path, softmaxGolden)
        #expect(r.status == 1)
        #expect(r.out.contains("non-finite mismatches: 1 (first at index [0, 2]: actual nan"), "\(r.out)")
        #expect(!r.out.contains("greatest absolute difference: inf"), "\(r.out)")
        #expect(r.out.contains("at index [0, 5]") && r.out.contains("; actual "), "\(r.out)")
        #expect(!r.out.contains(": ok"), "passing datasets printed without --verbose: \(r.out)")
        #expect(try certify("diff", path, softmaxGolden, "--verbose").out.contains(": ok"))
    }

    /// Names are compared as stored bytes: NFC 'café' and NFD 'café' are different datasets (exit 1, both listed).
    @Test func unicodeNamesAreBytes() throws {
        let nfc = "caf\u{E9}", nfd = "cafe\u{301}"
        let g = tmp("nfc.h5"), a = tmp("nfd.h5")
        for (p, name) in [(g, nfc), (a, nfd)] {
            try? FileManager.default.removeItem(atPath: p)
            let f = try File.create(p)
            try f.root.write("c/outputs/\(name)", .float64([1, 2]), shape: [2])
            try f.flush()
        }
        let r = try certify("diff", a, g)
        #expect(r.status == 1, "\(r.out)\(r.err)")
        #expect(r.out.contains("only in golden") && r.out.contains("only in \(a)"), "\(r.out)")
    }

    /// The drift check of `make goldens-check` derives its tolerance from the protocol's: a
    /// regenerated golden that moved by a CPU's rounding passes; a 1e-9 change is caught.
    @Test func driftToleranceFollowsTheProtocol() throws {
        let rounding = try editedCopy("drift-small.h5") { f in
            var y = try f.dataset("rows/outputs/y").readDoubles()
            y[1] *= 1 + 4e-12
            try f.root.write("rows/outputs/y", .float64(y), shape: [4, 7])
        }
        #expect(try certify("diff", rounding, softmaxGolden, "--drift").status == 0)
        let changed = try editedCopy("drift-big.h5") { f in
            var x = try f.dataset("rows/inputs/x").readDoubles()
            x[1] *= 1 + 1e-9
            try f.root.write("rows/inputs/x", .float64(x), shape: [4, 7])
        }
        let r = try certify("diff", changed, softmaxGolden, "--drift")
        #expect(r.status == 1 && r.out.contains("rows/inputs/x"), "\(r.out)")
    }
}

@Suite(.serialized) struct FirstHour {
    @Test func version() throws {
        let r = try certify("--version")
        #expect(r.status == 0 && r.out.hasPrefix("certify \(certifyVersion)"), "\(r.out)")
    }

    @Test func listHasAHeaderAndShowTakesPrefixes() throws {
        let l = try certify("list")
        #expect(l.out.split(separator: "\n").first?.hasPrefix("protocol") == true, "\(l.out.prefix(200))")
        let s = try certify("show", "iadg")
        #expect(s.status == 0 && s.out.contains("iadg.dkg —") && s.out.contains("iadg.metrics —"), "\(s.err)")
        let pgd = try certify("show", "input_gradients.pgd", "input_gradients.attributions")
        #expect(!pgd.out.contains("string string"), "\(pgd.out)")
        let long = try certify("show", String(repeating: "x", count: 100_000))
        #expect(long.status == 2 && long.err.count < 400, "\(long.err.count) characters")
        let typo = try certify("show", "core.softmx")
        #expect(typo.status == 2 && typo.err.contains("did you mean core.softmax"), "\(typo.err)")
    }

    @Test func showJSONIsTheContract() throws {
        let r = try certify("show", "core.softmax", "--json")
        #expect(r.status == 0)
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        #expect(obj["id"] as? String == "core.softmax")
        let inputs = try #require(obj["inputs"] as? [[String: Any]])
        #expect(inputs.first?["name"] as? String == "x" && inputs.first?["dtype"] as? String == "float64")
        let outputs = try #require(obj["outputs"] as? [[String: Any]])
        let tol = try #require(outputs.first?["tolerance"] as? [String: Double])
        #expect(tol["rtol"] == 1e-10)
        #expect((obj["params"] as? [[String: Any]])?.contains { $0["name"] as? String == "axis" } == true)
        #expect(obj["cotangents"] as? [String] == ["y"] && obj["grads"] as? [String] == ["x"])
        let many = try certify("show", "core", "--json")
        #expect(((try JSONSerialization.jsonObject(with: Data(many.out.utf8))) as? [Any])?.count ?? 0 > 10)
    }

    /// Reports carry status, counts, tolerances, date, commit and version; JSON keeps '/' as it is.
    @Test func reportsCarryProvenance() throws {
        let json = tmp("prov.json"), xml = tmp("prov.xml"), md = tmp("prov.md")
        for out in [json, xml, md] { #expect(try certify("run", "core.relu", "--report", out).status == 0) }
        let text = try String(contentsOfFile: json, encoding: .utf8)
        #expect(!text.contains("\\/"), "JSON escapes slashes")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(obj["status"] as? String == "certified")
        let run = try #require(obj["run"] as? [String: String])
        #expect(run["version"] == certifyVersion && run["commit"]?.count == 40 && run["date"]?.hasSuffix("Z") == true, "\(run)")
        let counts = try #require(obj["counts"] as? [String: Int])
        #expect(counts["certified"] == 1 && counts["skipped"] == 0)
        let p = try #require((obj["protocols"] as? [[String: Any]])?.first)
        #expect(p["tolerance"] != nil && p["skippedChecks"] != nil && p["status"] as? String == "certified")
        let x = try String(contentsOfFile: xml, encoding: .utf8)
        #expect(x.contains("name=\"commit\"") && x.contains("skipped=\"") && x.contains("name=\"rtol\""))
        #expect(try String(contentsOfFile: md, encoding: .utf8).contains("certify \(certifyVersion), commit"))
    }

    /// The README lists every package the Makefile installs.
    @Test func readmeListsEveryInstalledPackage() throws {
        let makefile = try String(contentsOfFile: root + "/Makefile", encoding: .utf8)
        let readme = try String(contentsOfFile: root + "/README.md", encoding: .utf8)
        let start = try #require(makefile.range(of: "APT_PACKAGES :="))
        let block = makefile[start.upperBound...].prefix { $0 != "#" }
        var packages: [String] = []
        for line in block.split(separator: "\n") {
            let words = line.replacingOccurrences(of: "\\", with: " ").split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if line.contains(":=") && !line.contains("APT_PACKAGES") { break }
            packages += words
        }
        #expect(packages.count > 8, "\(packages)")
        for p in packages { #expect(readme.contains("`\(p)`"), "README does not list \(p)") }
    }

    /// Every paper module and the core are library products, so Swift users can depend on them.
    @Test func modulesAreLibraryProducts() throws {
        let manifest = try String(contentsOfFile: root + "/Package.swift", encoding: .utf8)
        for m in ["Certification", "CertifyMethods", "IADG", "InputGradients", "LAVA", "Ops", "Tensor", "HDF5"] {
            #expect(manifest.contains(".library(name: \"\(m)\", targets: [\"\(m)\"])"), "\(m) is not a library product")
        }
    }
}
