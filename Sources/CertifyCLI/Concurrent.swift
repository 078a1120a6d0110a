// `certify run` and `certify checklist` on every core: independent protocols are certified in worker
// processes (`--jobs N`, one process per job), each taking the next protocol as soon as it is free.
// Every check of a protocol is seeded from the protocol's own id (Certifier's stableHash), and BLAS
// runs with a fixed thread count, so a report does not depend on which worker computed it or when:
// the reports are those of the sequential run, bit for bit, returned in the selection's order.
// Processes rather than threads: the HDF5 library Debian ships is not thread-safe.

import ArgumentParser
import Certification
import Foundation
import Tensor

/// The default number of jobs: $CERTIFY_JOBS, else the machine's active cores.
func defaultJobs() -> Int {
    if let s = ProcessInfo.processInfo.environment["CERTIFY_JOBS"], let n = Int(s), n >= 1 { return n }
    return max(1, ProcessInfo.processInfo.activeProcessorCount)
}

/// A report line from a worker starts with this tag; anything else the worker prints is ignored.
private let reportTag = "REPORT "

private func reportCoders() -> (JSONEncoder, JSONDecoder) {
    let enc = JSONEncoder()
    enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    let dec = JSONDecoder()
    dec.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return (enc, dec)
}

/// Certifies `selected`, on `jobs` worker processes when there is more than one protocol and more
/// than one job, else in this process. `finished(k, report)` is called as each protocol finishes
/// (k = how many have finished), one call at a time. Returns the reports in the order of `selected`.
func certifyAll(_ selected: [CertProtocol], in set: ProtocolSet, options: CertifyOptions, jobs: Int,
                finished: @escaping @Sendable (Int, ProtocolReport) -> Void) -> [ProtocolReport] {
    if jobs <= 1 || selected.count <= 1 {
        var reports: [ProtocolReport] = []
        for p in selected {
            reports.append(Certifier.certify(p, in: set, options: options))
            finished(reports.count, reports[reports.count - 1])
        }
        return reports
    }
    final class Shared: @unchecked Sendable {
        let lock = NSLock()
        var next = 0
        var done = 0
        var reports: [ProtocolReport?]
        init(_ n: Int) { reports = Array(repeating: nil, count: n) }
    }
    let shared = Shared(selected.count)
    let workers = min(jobs, selected.count)
    let group = DispatchGroup()
    var args = ["_certify-worker", "--parent", "\(getpid())", "--trials", "\(options.propertyTrials)"]
    if !options.gradientChecks { args.append("--no-gradcheck") }
    if !options.properties { args.append("--no-properties") }
    let workerArgs = args
    for _ in 0..<workers {
        group.enter()
        Thread.detachNewThread {
            defer { group.leave() }
            var worker: Worker?
            while true {
                shared.lock.lock()
                let i = shared.next
                shared.next += 1
                shared.lock.unlock()
                if i >= selected.count { break }
                let p = selected[i]
                if worker == nil { worker = Worker(arguments: workerArgs) }
                let report: ProtocolReport
                if let w = worker, let r = w.certify(p.id) {
                    report = r
                } else {
                    // The worker died (or could not start): this protocol fails with the reason, the next gets a new worker.
                    let why = worker?.exitDescription() ?? "the worker process could not be started"
                    report = ProtocolReport(id: p.id, title: p.title, golden: p.golden, checks: [
                        CheckResult(kind: .structure, name: "certification", passed: false,
                                    message: "certification of \(p.id) did not finish: \(why); rerun `certify run \(p.id) --jobs 1` to see it in-process")])
                    worker = nil
                }
                shared.lock.lock()
                shared.reports[i] = report
                shared.done += 1
                finished(shared.done, report)
                shared.lock.unlock()
            }
            worker?.finish()
        }
    }
    group.wait()
    return shared.reports.map { $0! }
}

/// One worker process: protocol ids in on stdin, one report line per id out on stdout.
private final class Worker {
    let process = Process()
    let input = Pipe()
    let output = Pipe()
    var buffer = Data()
    let decoder = reportCoders().1

    init?(arguments: [String]) {
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe")
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["SWIFT_BACKTRACE"] = "enable=no"
        env[Budget.environmentVariable] = "\(Budget.maxBytes)"   // the worker keeps the parent's budget
        process.environment = env
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
    }

    /// Sends `id`, waits for its report; nil when the worker ended first.
    func certify(_ id: String) -> ProtocolReport? {
        do { try input.fileHandleForWriting.write(contentsOf: Data((id + "\n").utf8)) } catch { return nil }
        while true {
            if let nl = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
                buffer = Data(buffer[(nl + 1)...])
                guard line.hasPrefix(reportTag) else { continue }
                return try? decoder.decode(ProtocolReport.self, from: Data(line.dropFirst(reportTag.count).utf8))
            }
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { return nil }   // EOF: the worker is gone
            buffer.append(chunk)
        }
    }

    func exitDescription() -> String {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
        return process.terminationReason == .uncaughtSignal
            ? "the worker process was killed by signal \(process.terminationStatus)"
            : "the worker process exited with status \(process.terminationStatus)"
    }

    func finish() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}

/// Hidden command run by `certifyAll`: certifies each protocol id read from stdin and writes its report.
struct CertifyWorker: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "_certify-worker", abstract: "Certify protocols named on stdin (internal).",
                                                    shouldDisplay: false)
    @Option var parent: Int32?
    @Option var trials: Int = 25
    @Flag var noGradcheck = false
    @Flag var noProperties = false

    func run() throws {
        #if os(Linux)
        setParentDeathSignal(SIGKILL)   // an interrupted `certify run` leaves no worker behind
        if let parent, getppid() != parent { Foundation.exit(3) }
        #endif
        let set = try protocolsOrFail()
        var options = CertifyOptions()
        options.propertyTrials = trials
        options.gradientChecks = !noGradcheck
        options.properties = !noProperties
        let encoder = reportCoders().0
        while let line = readLine() {
            let id = line.trimmingCharacters(in: .whitespaces)
            guard let p = set.protocols.first(where: { $0.id == id }) else { throw CLIError(message: "no protocol \(id)") }
            var data = Data(reportTag.utf8)
            data.append(try encoder.encode(Certifier.certify(p, in: set, options: options)))
            data.append(10)
            FileHandle.standardOutput.write(data)
        }
    }
}
