import Foundation
import HDF5
import Testing

func tempPath(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("certify-hdf5-tests-\(getpid())")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(name).path
}

/// Runs Debian's Python (with h5py) on a script; returns (status, stdout+stderr).
func python(_ script: String) throws -> (Int32, String) { try shell("/usr/bin/python3", ["-c", script]) }

func shell(_ cmd: String, _ args: [String]) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: cmd)
    p.arguments = args
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

@Suite struct RoundTrip {
    @Test func everyDTypeRoundTrips() throws {
        let path = tempPath("roundtrip.h5")
        do {
            let f = try File.create(path)
            try f.root.write("case0/inputs/x", .float64([1.5, -2, 3e-300, .infinity, .nan, 0]), shape: [2, 3])
            try f.root.write("a/f32", .float32([1.25, -3]), shape: [2])
            try f.root.write("a/i64", .int64([Int64.min, 0, Int64.max]), shape: [3])
            try f.root.write("a/i32", .int32([-7, 9]), shape: [1, 2])
            try f.root.write("a/u8", .uint8([0, 255]), shape: [2])
            try f.root.write("a/b", .bool([true, false, true]), shape: [3])
            try f.root.write("a/s", .string(["héllo", ""]), shape: [2])
            try f.root.write("a/scalar", .float64([42]), shape: [])
            try f.attributes.write("protocol", .string("core.test"))
            try f.attributes.write("seed", .int(7))
            try f.attributes.write("eps", .double(1e-5))
            try f.attributes.write("v", .doubles([1, 2]))
            try f.attributes.write("n", .ints([3, 4]))
        }
        let f = try File.open(path)
        #expect(try f.dataset("case0/inputs/x").shape == [2, 3])
        let x = try f.dataset("/case0/inputs/x").readDoubles()
        #expect(x[0] == 1.5 && x[2] == 3e-300 && x[3] == .infinity && x[4].isNaN)
        #expect(try f.dataset("a/f32").dtype == .float32)
        #expect(try f.dataset("a/f32").readDoubles() == [1.25, -3])
        #expect(try f.dataset("a/i64").readInt64s() == [Int64.min, 0, Int64.max])
        #expect(try f.dataset("a/i32").read() == .int32([-7, 9]))
        #expect(try f.dataset("a/u8").read() == .uint8([0, 255]))
        #expect(try f.dataset("a/b").dtype == .bool)
        #expect(try f.dataset("a/b").readBools() == [true, false, true])
        #expect(try f.dataset("a/s").readStrings() == ["héllo", ""])
        #expect(try f.dataset("a/scalar").shape == [])
        #expect(f.attributes["protocol"] == .string("core.test"))
        #expect(f.attributes["seed"] == .int(7))
        #expect(f.attributes["eps"] == .double(1e-5))
        #expect(f.attributes["v"] == .doubles([1, 2]))
        #expect(f.attributes["n"] == .ints([3, 4]))
        #expect(try f.attributes.names() == ["eps", "n", "protocol", "seed", "v"])
        #expect(try f.root.children() == ["a", "case0"])
        #expect(try f.group("a").children() == ["b", "f32", "i32", "i64", "s", "scalar", "u8"])
        #expect(try f.root.datasetPaths().contains("case0/inputs/x"))
        #expect(try f.dataset("case0/inputs/x").readDoubles(offset: [1, 1], count: [1, 2]).count == 2)
    }

    @Test func errorsNameFileAndObject() throws {
        let path = tempPath("errors.h5")
        do { _ = try File.create(path).root.write("g/x", .float64([1]), shape: [1]) }
        let f = try File.open(path)
        let e1 = #expect(throws: HDF5Error.self) { try f.dataset("g/missing") }
        #expect(e1?.description.contains(path) == true && e1?.description.contains("/g/missing") == true)
        #expect(throws: HDF5Error.self) { try f.dataset("g") }  // a group, not a dataset
        #expect(throws: HDF5Error.self) { try f.group("g/x") }  // a dataset, not a group
        #expect(throws: HDF5Error.self) { try f.dataset("g/x").readStrings() }
        #expect(throws: HDF5Error.self) { try f.dataset("g/x").readDoubles(offset: [0], count: [2]) }
        #expect(throws: HDF5Error.self) { try f.root.write("y", .float64([1, 2]), shape: [3]) }
        #expect(throws: HDF5Error.self) { try f.createGroup("new") }  // read-only
    }

    @Test func badFilesAreClearErrors() throws {
        let missing = tempPath("does-not-exist.h5")
        #expect(throws: HDF5Error(file: missing, object: "", "no such file")) { try File.open(missing) }
        let dir = tempPath("adir")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        #expect(throws: HDF5Error.self) { try File.open(dir) }
        let empty = tempPath("empty.h5")
        FileManager.default.createFile(atPath: empty, contents: Data())
        let e = #expect(throws: HDF5Error.self) { try File.open(empty) }
        #expect(e?.message.contains("empty") == true)
        let text = tempPath("text.h5")
        try "not hdf5\n".write(toFile: text, atomically: true, encoding: .utf8)
        #expect(throws: HDF5Error.self) { try File.open(text) }
        // Truncated: a real file cut in half.
        let full = tempPath("full.h5")
        do { _ = try File.create(full).root.write("x", .float64(Array(repeating: 1, count: 4000)), shape: [4000]) }
        let data = try Data(contentsOf: URL(fileURLWithPath: full))
        let cut = tempPath("truncated.h5")
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: cut))
        #expect(throws: (any Error).self) {
            let f = try File.open(cut)
            _ = try f.dataset("x").readDoubles()
        }
    }
}

@Suite struct Interop {
    @Test func readsFilesWrittenByH5py() throws {
        let path = tempPath("from-h5py.h5")
        let (st, out) = try python("""
            import h5py, numpy as np
            with h5py.File('\(path)', 'w') as f:
                f['g/x'] = np.arange(6, dtype=np.float64).reshape(2, 3)
                f['g/f'] = np.array([0.5, 1.5], dtype=np.float32)
                f['g/i'] = np.array([1, -2], dtype=np.int64)
                f['g/b'] = np.array([True, False])
                f['g/s'] = 'text'
                f.attrs['protocol'] = 'core.x'
                f.attrs['seed'] = np.int64(3)
            """)
        #expect(st == 0, "\(out)")
        let f = try File.open(path)
        #expect(try f.dataset("g/x").readDoubles() == [0, 1, 2, 3, 4, 5])
        #expect(try f.dataset("g/x").shape == [2, 3])
        #expect(try f.dataset("g/f").dtype == .float32)
        #expect(try f.dataset("g/f").readDoubles() == [0.5, 1.5])
        #expect(try f.dataset("g/i").readInt64s() == [1, -2])
        #expect(try f.dataset("g/b").readBools() == [true, false])
        #expect(try f.dataset("g/s").readStrings() == ["text"])
        #expect(f.attributes["protocol"] == .string("core.x"))
        #expect(f.attributes["seed"] == .int(3))
    }

    @Test func h5pyAndH5dumpReadOurFiles() throws {
        let path = tempPath("for-h5py.h5")
        do {
            let f = try File.create(path)
            try f.root.write("c/outputs/y", .float64([1, 2, 3, 4]), shape: [2, 2])
            try f.root.write("c/mask", .bool([true, false]), shape: [2])
            try f.root.write("c/name", .string(["abc"]), shape: [1])
            try f.attributes.write("protocol", .string("core.softmax"))
        }
        let (st, out) = try python("""
            import h5py, numpy as np
            with h5py.File('\(path)', 'r') as f:
                assert f['c/outputs/y'][()].tolist() == [[1, 2], [3, 4]], f['c/outputs/y'][()]
                assert f['c/mask'].dtype == np.bool_ and f['c/mask'][()].tolist() == [True, False]
                assert f['c/name'].asstr()[0] == 'abc'
                assert f.attrs['protocol'] == 'core.softmax'
            print('ok')
            """)
        #expect(st == 0 && out.contains("ok"), "\(out)")
        let (st2, dump) = try shell("/usr/bin/h5dump", ["-d", "/c/outputs/y", path])
        #expect(st2 == 0 && dump.contains("(0,0): 1, 2"), "\(dump)")
    }
}
