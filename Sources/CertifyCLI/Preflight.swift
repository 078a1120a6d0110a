// Untrusted HDF5 files are first read in a child process. A corrupt file can make the HDF5 C
// library itself crash (for example unbounded recursion on a cyclic B-tree); the child absorbs
// that, and the parent reports a clear error with exit code 2 instead of dying.

import ArgumentParser
import Certification
import Foundation
import HDF5

/// Reads every object's metadata (and the data of files up to 64 MiB) of `path` in a child process.
func preflight(_ path: String) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/proc/self/exe")
    p.arguments = ["_validate", path]
    var env = ProcessInfo.processInfo.environment
    env["SWIFT_BACKTRACE"] = "enable=no"
    p.environment = env
    let err = Pipe()
    p.standardError = err
    p.standardOutput = FileHandle.nullDevice
    do { try p.run() } catch { return }  // cannot spawn: fall back to reading in-process
    let msg = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    if p.terminationReason == .uncaughtSignal {
        throw HDF5Error(file: path, object: "", "corrupt HDF5 file (the HDF5 library crashed while reading it)")
    }
    if p.terminationStatus != 0 {
        let line = msg.split(separator: "\n").first.map(String.init) ?? "unreadable HDF5 file"
        throw CLIError(message: line.replacingOccurrences(of: "certify: error: ", with: ""))
    }
}

/// Hidden helper command run by `preflight`.
struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "_validate", abstract: "Read a file fully (internal).",
                                                    shouldDisplay: false)
    @Argument var path: String

    func run() throws {
        let f = try File.open(path)
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        _ = try f.attributes.names().map { try f.attributes.read($0) }
        for d in try f.root.datasetPaths() {
            let ds = try f.dataset(d)
            _ = try ds.shape
            let dt = try ds.dtype
            _ = try ds.attributes.names()
            if size <= 64 << 20 {
                if dt == .string { _ = try ds.readStrings() } else { _ = try ds.readDoubles() }
            }
        }
    }
}
