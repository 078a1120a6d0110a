// Untrusted HDF5 files are first read in a child process. A corrupt file can make the HDF5 C
// library itself crash (for example unbounded recursion on a cyclic B-tree); the child absorbs
// that, and the parent reports a clear error with exit code 2 instead of dying.
//
// The child reads only what the command will read (the datasets `diff` compares, the sections
// `eval` reads), in blocks of bounded size, within the memory budget. It dies with its parent
// (PR_SET_PDEATHSIG) and has a time limit, so it can never outlive the command or hang it.

import ArgumentParser
import Certification
import Foundation
import HDF5
import Tensor

#if canImport(Glibc)
import Glibc
#endif

/// Which datasets of a file the command will read.
enum PreflightSelection {
    /// `diff`: the datasets it compares (outputs/ and grads/, or every dataset), under `paths` when given.
    case diff(paths: [String], all: Bool)
    /// `eval`: the datasets of every case's inputs/, params/ and cotangents/.
    case eval

    var arguments: [String] {
        switch self {
        case .diff(let paths, let all): ["--select", "diff"] + paths.flatMap { ["--path", $0] } + (all ? ["--all-datasets"] : [])
        case .eval: ["--select", "eval"]
        }
    }
}

/// Seconds the validating child may take: `CERTIFY_VALIDATE_SECONDS`, default 300.
var preflightTimeLimit: Double {
    ProcessInfo.processInfo.environment["CERTIFY_VALIDATE_SECONDS"].flatMap(Double.init).flatMap { $0 > 0 ? $0 : nil } ?? 300
}

/// Reads the metadata and, in bounded blocks, the data of what the command will read of `path`, in a child process.
func preflight(_ path: String, _ selection: PreflightSelection = .diff(paths: [], all: false)) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/proc/self/exe")
    p.arguments = ["_validate", path, "--parent", "\(getpid())"] + selection.arguments
    var env = ProcessInfo.processInfo.environment
    env["SWIFT_BACKTRACE"] = "enable=no"
    env[Budget.environmentVariable] = "\(Budget.maxBytes)"   // the child keeps the parent's budget
    p.environment = env
    let err = Pipe()
    p.standardError = err
    p.standardOutput = FileHandle.nullDevice
    let done = DispatchSemaphore(value: 0)
    p.terminationHandler = { _ in done.signal() }
    do { try p.run() } catch { return }  // cannot spawn: fall back to reading in-process
    // Read stderr on another thread so that a child that fills the pipe cannot block, and one that hangs cannot block us.
    final class Box: @unchecked Sendable { var data = Data() }
    let box = Box()
    let reader = DispatchSemaphore(value: 0)
    let handle = err.fileHandleForReading
    Thread.detachNewThread {
        box.data = handle.readDataToEndOfFile()
        reader.signal()
    }
    let limit = preflightTimeLimit
    if done.wait(timeout: .now() + limit) == .timedOut {
        kill(p.processIdentifier, SIGKILL)
        done.wait()
        _ = reader.wait(timeout: .now() + 5)
        throw CLIError(message: "\(path): validating the file took longer than \(Int(limit)) s and was stopped " +
                       "(a resource limit of Certify, not a verdict on the file; set CERTIFY_VALIDATE_SECONDS to allow more)")
    }
    _ = reader.wait(timeout: .now() + 5)
    let msg = String(decoding: box.data, as: UTF8.self)
    if p.terminationReason == .uncaughtSignal {
        if p.terminationStatus == SIGKILL {
            throw CLIError(message: "\(path): the validating process was killed (out of memory?) — a resource failure of Certify, " +
                           "not a verdict on the file; lower --max-memory / \(Budget.environmentVariable) or free memory")
        }
        throw HDF5Error(file: path, object: "", "corrupt HDF5 file (the HDF5 library crashed while reading it)")
    }
    if p.terminationStatus != 0 {
        let line = msg.split(separator: "\n").first.map(String.init) ?? "unreadable HDF5 file"
        throw CLIError(message: line.replacingOccurrences(of: "certify: error: ", with: ""))
    }
}

/// prctl(PR_SET_PDEATHSIG, signal): the kernel sends `signal` to this process when its parent dies.
/// (prctl is variadic in C, so Swift reaches it through its symbol with a fixed signature.)
func setParentDeathSignal(_ signal: Int32) {
    #if os(Linux)
    typealias Prctl = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
    guard let sym = dlsym(nil, "prctl") else { return }   // RTLD_DEFAULT
    let prctl = unsafeBitCast(sym, to: Prctl.self)
    _ = prctl(1 /* PR_SET_PDEATHSIG */, UInt(signal), 0, 0, 0)
    #endif
}

/// Hidden helper command run by `preflight`.
struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "_validate", abstract: "Read a file (internal).",
                                                    shouldDisplay: false)
    @Argument var path: String
    @Option var parent: Int32?
    @Option var select: String = "all"
    @Option(name: .customLong("path")) var groupPaths: [String] = []
    @Flag var allDatasets = false

    /// Elements per block when reading data.
    static let blockElements = 1 << 20

    func run() throws {
        #if os(Linux)
        // Die with the parent: a killed or interrupted `certify` never leaves this process behind.
        setParentDeathSignal(SIGKILL)
        if let parent, getppid() != parent { Foundation.exit(3) }   // the parent is already gone
        #endif
        let f = try File.open(path)
        _ = try f.attributes.names().map { try f.attributes.read($0) }
        let all = try f.root.datasetPaths()
        let chosen: [String]
        switch select {
        case "diff":
            var o = DiffOptions()
            o.paths = groupPaths
            o.allDatasets = allDatasets
            chosen = Certification.Diff.selected(all, options: o)
        case "eval":
            chosen = all.filter { p in
                let parts = p.split(separator: "/")
                return parts.count >= 3 && ["inputs", "params", "cotangents"].contains(String(parts[parts.count - 2]))
            }
        default: chosen = all
        }
        for d in chosen {
            let ds = try f.dataset(d)
            let shape = try ds.shape
            let dt = try ds.dtype
            _ = try ds.attributes.names()
            let n = try checkedCount(shape, "\(path): /\(d)")
            // Reading costs time in proportion to the elements: the same budget bounds it.
            try Budget.requireWork(operations: Double(n), "reading \(path): /\(d) (shape \(shape), \(n) elements)")
            if dt == .string {
                try Budget.require(elements: Double(n), bytesPerElement: 64, "reading the strings of \(path): /\(d)")
                _ = try ds.readStrings()
                continue
            }
            if shape.isEmpty { _ = try ds.readDoubles(); continue }
            var buffer = [Double](repeating: 0, count: Swift.min(Swift.max(n, 1), Validate.blockElements))
            try Dataset.forEachBlock(shape: shape, maxElements: Validate.blockElements) { off, cnt in
                let m = cnt.reduce(1, *)
                try buffer.withUnsafeMutableBufferPointer { b in
                    try ds.readDoubles(into: UnsafeMutableBufferPointer(rebasing: b[0..<m]), offset: off, count: cnt)
                }
                return true
            }
        }
    }
}
