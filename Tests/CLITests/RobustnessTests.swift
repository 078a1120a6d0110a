// Issue 11: never trap on sizes, never hang, never leave processes behind, correct verdicts on valid
// files, one-line actionable messages. Each test is a reproduction recipe from the issue, run through
// the `certify` executable; the files are made with h5py (/usr/bin/python3), as a user would.

import Foundation
import HDF5
import Testing

/// Runs certify with extra environment and a wall-clock limit; `timedOut` when it had to be killed.
func certifyLimited(_ args: [String], env: [String: String] = [:], seconds: Double = 60) throws -> (RunResult, timedOut: Bool, wall: Double) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: certifyBinary())
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: root)
    var e = ProcessInfo.processInfo.environment
    e["SWIFT_BACKTRACE"] = "enable=no"
    e["CERTIFY_MAX_MEMORY"] = "2G"   // the same verdicts on every machine (the default depends on physical memory)
    for (k, v) in env { e[k] = v }
    p.environment = e
    let outFile = tmp("out-\(UUID().uuidString).txt"), errFile = tmp("err-\(UUID().uuidString).txt")
    FileManager.default.createFile(atPath: outFile, contents: nil)
    FileManager.default.createFile(atPath: errFile, contents: nil)
    p.standardOutput = FileHandle(forWritingAtPath: outFile)
    p.standardError = FileHandle(forWritingAtPath: errFile)
    let start = Date()
    try p.run()
    var timedOut = false
    while p.isRunning {
        if Date().timeIntervalSince(start) > seconds { kill(p.processIdentifier, SIGKILL); timedOut = true; break }
        usleep(20_000)
    }
    p.waitUntilExit()
    let out = (try? String(contentsOfFile: outFile, encoding: .utf8)) ?? ""
    let err = (try? String(contentsOfFile: errFile, encoding: .utf8)) ?? ""
    return (RunResult(status: p.terminationStatus, out: out, err: err, crashed: p.terminationReason == .uncaughtSignal),
            timedOut, Date().timeIntervalSince(start))
}

/// Runs a Python snippet with h5py and numpy imported; `OUT` is bound to `out`, `GOLDEN` to `golden`.
func python(_ code: String, out: String, golden: String = softmaxGolden) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    let prelude = "import h5py, numpy as np, shutil, struct\nOUT = \(quote(out))\nGOLDEN = \(quote(golden))\n"
    p.arguments = ["-c", prelude + code]
    let e = Pipe()
    p.standardError = e
    try p.run()
    let err = e.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw CLIRobustnessError(message: String(decoding: err, as: UTF8.self)) }
}

struct CLIRobustnessError: Error { var message: String }

func quote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "\\'") + "'" }

/// A copy of a golden with one param overwritten in every case that has it (dtype kept when integral).
func goldenWithParam(_ golden: String, _ name: String, _ value: String, tag: String) throws -> String {
    let out = tmp("param-\(tag).h5")
    try python("""
        shutil.copy(GOLDEN, OUT)
        with h5py.File(OUT, 'a') as f:
            for c in f:
                for sec in ('params', 'inputs'):
                    g = f[c]
                    if isinstance(g, h5py.Group) and sec in g and \(quote(name)) in g[sec]:
                        dt, shape = g[sec][\(quote(name))].dtype, g[sec][\(quote(name))].shape
                        del g[sec][\(quote(name))]
                        v = np.array(\(value))
                        g[sec][\(quote(name))] = v.astype(dt) if dt.kind in 'iu' and v.dtype.kind in 'iu' else v
        """, out: out, golden: root + "/golden/" + golden)
    return out
}

/// Process ids whose command line contains `needle` and whose parent is `parent` (or any parent when nil).
func processes(containing needle: String) -> [Int32] {
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
    return entries.compactMap(Int32.init).filter { pid in
        guard let d = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        return String(decoding: d.map { $0 == 0 ? 32 : $0 }, as: UTF8.self).contains(needle)
    }
}

@Suite(.serialized) struct CLIRobustness {
    // MARK: 2. sizes: checked arithmetic and the memory budget

    @Test(arguments: [
        ("core/interpolate_bilinear.h5", "core.interpolate_bilinear", "size", "[1000000, 1000000]"),
        ("core/interpolate_nearest.h5", "core.interpolate_nearest", "size", "[1000000, 1000000]"),
        ("core/adaptive_avg_pool1d.h5", "core.adaptive_avg_pool1d", "output_size", "[1000000000]"),
        ("core/adaptive_avg_pool2d.h5", "core.adaptive_avg_pool2d", "output_size", "[1000000000, 3]"),
        ("core/conv2d.h5", "core.conv2d", "padding", "[1000000000, 1]"),
        ("core/conv2d.h5", "core.conv2d", "padding", "[2**62, 1]"),
        ("core/conv1d.h5", "core.conv1d", "padding", "[2**62]"),
        ("core/conv_transpose1d.h5", "core.conv_transpose1d", "stride", "[10**12]"),
        ("core/conv_transpose1d.h5", "core.conv_transpose1d", "dilation", "[10**12]"),
        ("core/scatter_add.h5", "core.scatter_add", "dim_size", "10**12"),
        ("core/segment_softmax.h5", "core.segment_softmax", "num_nodes", "10**12"),
        ("iadg/fps.h5", "iadg.fps", "num_styles", "10**12"),
        ("iadg/dkg.h5", "iadg.dkg", "k", "10**12"),
        ("core/clip_grad_norm.h5", "core.clip_grad_norm", "num_grads", "-1"),
        ("lava/resample.h5", "lava.resample", "orig_rate", "2**31"),
        // Found by tools/fuzz.py (seed 7, case 672): labels beyond Int's range trapped in Int(Double).
        ("lava/rejection.h5", "lava.rejection", "search_pred", "np.full(shape, 2**63 - 1)"),
        ("lava/metrics.h5", "lava.metrics", "y_true", "np.full(shape, np.nan)"),
    ])
    func absurdParamIsAClearErrorNotATrap(_ golden: String, _ id: String, _ param: String, _ value: String) throws {
        let input = try goldenWithParam(golden, param, value, tag: "\(id)-\(param)")
        let out = tmp("out-\(id).h5")
        try? FileManager.default.removeItem(atPath: out)
        let (r, timedOut, wall) = try certifyLimited(["eval", id, "--input", input, "--output", out], seconds: 60)
        #expect(!timedOut && !r.crashed, "\(id) \(param)=\(value): crashed or hung (\(wall) s): \(r.err.prefix(300))")
        #expect(r.status == 2, "\(id) \(param)=\(value): exit \(r.status): \(r.err.prefix(300))")
        #expect(wall < 20, "\(id) \(param)=\(value): \(wall) s before refusing")
        #expect(r.err.contains(input) && r.err.split(separator: "\n").count == 1, "\(r.err.prefix(400))")
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test func hugeIntegerParamNamesItsValue() throws {
        let input = try goldenWithParam("core/clip_grad_norm.h5", "num_grads", "np.int64(10**16)", tag: "1e16")
        let (r, _, _) = try certifyLimited(["eval", "core.clip_grad_norm", "--input", input, "--output", tmp("o-1e16.h5")])
        #expect(r.status == 2 && !r.crashed)
        #expect(!r.err.contains("found shape []") && r.err.contains("1e+16"), "\(r.err)")
    }

    @Test func wavHeaderWithAbsurdRateIsRefusedWithTheEstimate() throws {
        let wav = tmp("huge-rate.wav"), slow = tmp("one-hz.wav")
        try python("""
            def wav(path, rate, n):
                data = (np.random.default_rng(0).normal(0, .1, n) * 32767).astype('<i2').tobytes()
                hdr = b'RIFF' + struct.pack('<I', 36 + len(data)) + b'WAVE' + b'fmt ' + struct.pack('<IHHIIHH', 16, 1, 1, rate, (rate * 2) % 2**32, 2, 16) + b'data' + struct.pack('<I', len(data))
                open(path, 'wb').write(hdr + data)
            wav(OUT, 4294967291, 16000)
            wav(\(quote(slow)), 1, 1000)
            """, out: wav)
        for (file, what) in [(wav, "resampling"), (slow, "classifying")] {
            let (r, timedOut, wall) = try certifyLimited(["lava", "classify", file], seconds: 60)
            #expect(!timedOut && !r.crashed && r.status == 2, "\(file): \(r.err)")
            #expect(wall < 20 && r.err.contains("memory budget") && r.err.contains(what) && r.err.contains(file), "\(r.err)")
        }
    }

    @Test func absurdExperimentIsRefused() throws {
        let (r, timedOut, _) = try certifyLimited(["audit", "--theory", "--experiment", "d=1e8,width=1e8"], seconds: 60)
        #expect(!timedOut && !r.crashed && r.status == 2 && r.err.contains("memory budget"), "\(r.err)")
    }

    @Test func maxMemoryOptionAndEnvironment() throws {
        let input = try goldenWithParam("core/adaptive_avg_pool1d.h5", "output_size", "[100000]", tag: "pool-1e5")
        try python("with h5py.File(OUT, 'a') as f:\n    for c in f:\n        if 'cotangents' in f[c]: del f[c]['cotangents']", out: input)
        let ok = try certifyLimited(["eval", "core.adaptive_avg_pool1d", "--input", input, "--output", tmp("pool-ok.h5")]).0
        #expect(ok.status == 0, "\(ok.err)")
        let small = try certifyLimited(["eval", "core.adaptive_avg_pool1d", "--input", input, "--output", tmp("pool-no.h5"), "--max-memory", "1M"]).0
        #expect(small.status == 2 && small.err.contains("memory budget") && small.err.contains("1.05 MB"), "\(small.err)")
        let env = try certifyLimited(["eval", "core.adaptive_avg_pool1d", "--input", input, "--output", tmp("pool-no2.h5")],
                                     env: ["CERTIFY_MAX_MEMORY": "1M"]).0
        #expect(env.status == 2 && env.err.contains("memory budget"), "\(env.err)")
        let bad = try certifyLimited(["eval", "core.adaptive_avg_pool1d", "--input", input, "--output", tmp("pool-no3.h5"), "--max-memory", "lots"]).0
        #expect(bad.status == 2 && bad.err.contains("--max-memory"), "\(bad.err)")
    }

    // MARK: 3. never hang; never leave processes behind

    @Test func hardLinkCycleNeitherHangsDiffNorEval() throws {
        let cyc = tmp("cycle.h5")
        try python("shutil.copy(GOLDEN, OUT)\nwith h5py.File(OUT, 'a') as f: f['loop'] = f['/']", out: cyc)
        for args in [["diff", cyc, softmaxGolden], ["diff", softmaxGolden, cyc], ["diff", cyc, cyc, "--path", "/"]] {
            let (r, timedOut, _) = try certifyLimited(args, seconds: 60)
            #expect(!timedOut && !r.crashed && r.status == 0, "\(args): \(r.out)\(r.err)")
        }
        let (e, timedOut, _) = try certifyLimited(["eval", "core.softmax", "--input", cyc, "--output", tmp("cyc-out.h5")], seconds: 60)
        #expect(!timedOut && !e.crashed && e.status == 2 && e.err.contains("/loop"), "\(e.err)")
    }

    @Test func validationHasATimeLimitAndDiesWithItsParent() throws {
        // Groups shared 2 × 2 × … (20 levels) expand to 2²⁰ dataset paths: a valid file that takes minutes to walk.
        let big = tmp("slow-walk.h5")
        try python("""
            with h5py.File(OUT, 'w') as f:
                g = f.create_group('l20'); g['x'] = np.zeros(1)
                for i in range(19, -1, -1):
                    h = f.create_group('l%d' % i); h['a'] = f['l%d' % (i + 1)]; h['b'] = f['l%d' % (i + 1)]
                f['case0/outputs'] = f['l0']
            """, out: big)
        let (r, timedOut, wall) = try certifyLimited(["diff", big, big], env: ["CERTIFY_VALIDATE_SECONDS": "1"], seconds: 60)
        #expect(!timedOut && r.status == 2 && wall < 15, "\(wall) s: \(r.err)")
        #expect(r.err.contains("longer than 1 s") && !r.err.contains("corrupt"), "\(r.err)")
        // Killing the parent kills the validating child.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: certifyBinary())
        p.arguments = ["diff", big, big]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        var child: [Int32] = []
        for _ in 0..<200 where child.isEmpty {
            usleep(20_000)
            child = processes(containing: "_validate \(big)")
        }
        #expect(!child.isEmpty, "no validating child seen")
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        var left = child
        for _ in 0..<100 where !left.isEmpty {
            usleep(50_000)
            left = processes(containing: "_validate \(big)")
        }
        #expect(left.isEmpty, "validating child \(left) outlived its parent")
    }

    // MARK: 4. correct verdicts on valid files

    @Test func largeBoolDatasetsCompare() throws {
        let b = tmp("bool-big.h5")
        try python("""
            with h5py.File(OUT, 'w') as f:
                f.attrs['protocol'] = 'core.softmax'
                f['case0/outputs/mask'] = np.random.default_rng(0).random(3_000_000) > 0.5
            """, out: b)
        let (r, _, _) = try certifyLimited(["diff", b, b], seconds: 120)
        #expect(r.status == 0 && r.out.contains("same"), "\(r.out)\(r.err)")
    }

    @Test func uncomparedHugeDatasetsAreNotRead() throws {
        for (tag, n) in [("3e8", "300_000_000"), ("1e12", "10**12")] {
            let f = tmp("extra-\(tag).h5")
            try python("""
                shutil.copy(GOLDEN, OUT)
                with h5py.File(OUT, 'a') as f: f.create_dataset('extra/huge', shape=(\(n),), dtype='f8', chunks=(1 << 20,))
                """, out: f)
            let (r, timedOut, wall) = try certifyLimited(["diff", f, softmaxGolden], seconds: 60)
            #expect(!timedOut && r.status == 0 && wall < 10, "\(tag): \(wall) s, \(r.out)\(r.err)")
        }
        // Compared and absurd: a resource failure of Certify, not corruption.
        let f = tmp("outputs-1e12.h5")
        try python("""
            with h5py.File(OUT, 'w') as f:
                f.create_dataset('case0/outputs/y', shape=(10**12,), dtype='f8', chunks=(1 << 20,))
            """, out: f)
        let (r, timedOut, _) = try certifyLimited(["diff", f, f], seconds: 60)
        #expect(!timedOut && r.status == 2 && r.err.contains("memory budget") && !r.err.contains("corrupt"), "\(r.err)")
    }

    @Test func danglingSoftLinkOutsideComparedDatasets() throws {
        let d = tmp("dangling.h5")
        try python("shutil.copy(GOLDEN, OUT)\nwith h5py.File(OUT, 'a') as f:\n    f['nowhere'] = h5py.SoftLink('/no/such')\n    f['case_x/outputs'] = h5py.SoftLink('/gone')",
                   out: d)
        for args in [["diff", d, softmaxGolden], ["diff", softmaxGolden, d]] {
            let (r, _, _) = try certifyLimited(args)
            #expect(r.status == 0, "\(args): \(r.out)\(r.err)")
        }
    }

    // MARK: 5. messages a person can act on

    @Test func negativeToleranceIsRejectedByName() throws {
        for flag in ["--rtol", "--atol"] {
            let (r, _, _) = try certifyLimited(["diff", softmaxGolden, softmaxGolden, flag, "-1"])
            #expect(r.status == 2 && r.err.contains("\(flag) must be a finite number") && !r.err.contains("Missing value"), "\(r.err)")
        }
    }

    @Test func longIdIsNotEchoed() throws {
        let id = String(repeating: "x", count: 100_000)
        for args in [["show", id], ["run", id], ["eval", id, "--input", softmaxGolden, "--output", tmp("x.h5")]] {
            let (r, _, _) = try certifyLimited(args)
            #expect(r.status == 2 && r.err.count < 400, "\(args[0]): \(r.err.count) characters")
        }
    }

    @Test func errorsStayOneShortLine() throws {
        // An op error lists the case's inputs: at most 8, then a count.
        let input = try goldenWithParam("iadg/dkg.h5", "k", "10**12", tag: "dkg-list")
        let (r, _, _) = try certifyLimited(["eval", "iadg.dkg", "--input", input, "--output", tmp("dkg.h5")])
        #expect(r.status == 2 && r.err.contains(", … and ") && r.err.contains(" more") && r.err.count < 700, "\(r.err)")
    }

    @Test func csaAndNetworkErrorsNameTheirProtocol() throws {
        for (golden, id) in [("iadg/csa.h5", "iadg.csa"), ("iadg/network.h5", "iadg.network")] {
            let input = tmp("labels-\(id).h5")
            try python("""
                shutil.copy(GOLDEN, OUT)
                with h5py.File(OUT, 'a') as f:
                    for c in f:
                        for s in ('inputs', 'params'):
                            if s in f[c] and 'labels' in f[c][s]:
                                v = f[c][s]['labels'][()]; del f[c][s]['labels']; f[c][s]['labels'] = np.full(v.shape, 7, v.dtype)
                """, out: input, golden: root + "/golden/" + golden)
            let (r, _, _) = try certifyLimited(["eval", id, "--input", input, "--output", tmp("l.h5")])
            #expect(r.status == 2 && r.err.contains(id + ":") && !r.err.contains("iadg.metrics"), "\(r.err)")
        }
    }

    @Test func unknownProtocolAttributeIsNotShownAsApplied() throws {
        let f = tmp("unknown-protocol.h5")
        try python("shutil.copy(GOLDEN, OUT)\nwith h5py.File(OUT, 'a') as f: f.attrs['protocol'] = 'no.such'", out: f)
        let (r, _, _) = try certifyLimited(["diff", f, f])
        #expect(r.status == 0 && r.out.contains("Float64 defaults") && r.out.contains("'no.such', which is unknown here"), "\(r.out)")
    }
}
