// `certify`: certify protocols, diff a user's outputs against goldens, evaluate the reference
// implementation on a user's inputs, list and show protocols, regenerate CHECKLIST.md.
// Exit codes follow h5diff: 0 same / all certified, 1 different / a check failed, 2 error.

import ArgumentParser
import Certification
import CertifyMethods
import Foundation
import HDF5
import Tensor

@main
struct Certify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certify",
        abstract: "Certify reference implementations of ML methods against independent goldens.",
        discussion: """
            `certify run` checks Certify's own implementations against the goldens; `certify eval` and \
            `certify diff` are for yours. Exit codes: 0 success / same, 1 a check failed / files differ, \
            2 error (bad input, unknown protocol, bad flag).
            """,
        version: "certify \(certifyVersion)",
        subcommands: [Run.self, Diff.self, Eval.self, List.self, Show.self, Checklist.self, Bench.self, Lava.self, Audit.self, BlockMNISTCommand.self, Validate.self,
                      PlanCommand.self, Work.self, Merge.self, Status.self, Slurm.self,
                      GraphAuditCommand.self, DARTSGTReproduce.self, VisEval.self, L2GCommand.self, Distill.self,
                      CertifyWorker.self])

    static func main() {
        // Reuse freed heap memory for the tape's temporaries instead of faulting fresh pages in every
        // step (bench/README.md, "Optimisations (issue 17)").
        Allocator.retainFreedMemory()
        registerAll()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)
        } catch {
            let exitCode = Certify.exitCode(for: error)
            if exitCode == .success {
                print(Certify.fullMessage(for: error))
                Foundation.exit(0)
            }
            // Our own errors print one clear line; argument errors print the parser's message and usage.
            if error is HDF5Error || error is InputError || error is ProtocolError || error is ShapeError || error is OutputError
                || error is UndeclaredReadError || error is PlanError {
                FileHandle.standardError.write(Data("certify: error: \(error)\n".utf8))
            } else if let ce = error as? CLIError {
                FileHandle.standardError.write(Data("certify: error: \(ce.message)\n".utf8))
            } else {
                let msg = Certify.fullMessage(for: error)
                FileHandle.standardError.write(Data("certify: \(msg.isEmpty ? "\(error)" : msg)\n".utf8))
            }
            Foundation.exit(2)
        }
    }
}

struct CLIError: Error { var message: String }

func protocolsOrFail() throws -> ProtocolSet {
    try ProtocolSet.load(root: packageRoot())
}

func stderr(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }

/// Where `certify run` records the last status per protocol (for `certify list`).
func lastRunPath(_ root: String) -> String { root + "/.certify/last-run.json" }

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Certify protocols: goldens, gradient checks and properties; print a table.",
        discussion: "Exit 0 when every check passes, 1 when any fails, 2 on error.")

    @Argument(help: "Protocol ids or prefixes (e.g. core.softmax, core, iadg). Default: all.")
    var protocols: [String] = []

    @Option(name: .long, help: "Also write the report to FILE (.json, .md, .xml for JUnit, or .html: one self-contained page).")
    var report: String?

    @Option(name: .long, help: "Random instances per property.")
    var trials: Int = 25

    @Flag(name: .long, help: "Skip gradient checks.")
    var noGradcheck = false

    @Flag(name: .long, help: "Print every failing check in full.")
    var verbose = false

    @Option(name: .long, help: "Protocols certified at once, each job in its own process (default: the core count, or $CERTIFY_JOBS). The reports are the same for any N.")
    var jobs: Int?

    func validate() throws {
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1, got \(jobs)") }
    }

    func run() throws {
        let set = try protocolsOrFail()
        let selected = try set.select(protocols)
        let format = try report.map { try ReportFormat(path: $0) }
        if let report { try SafeOutput.prepare(report) }  // before any work
        var options = CertifyOptions()
        options.propertyTrials = trials
        options.gradientChecks = !noGradcheck
        let tty = isatty(2) != 0
        let reports = certifyAll(selected, in: set, options: options, jobs: jobs ?? defaultJobs()) { k, r in
            let line = "[\(k)/\(selected.count)] \(r.id) \(r.status.lowercased())"
            stderr(tty ? "\r\u{1B}[K" + line : line + "\n")
        }
        if tty { stderr("\r\u{1B}[K") }
        print(table(reports))
        for r in reports where !r.passed && !r.skipped {
            print("\n\(r.id): \(r.failures.count) failing check(s)")
            for f in r.failures.prefix(verbose ? 1000 : 5) { print("  [\(f.kind.rawValue)] \(f.name): \(f.message)") }
        }
        let counts = RunCounts(reports)
        print("\n\(counts.certified) passed, \(counts.failed) failed" + (counts.skipped > 0 ? ", \(counts.skipped) skipped" : ""))
        for r in reports where r.skipped { print("skipped \(r.id): \(r.checks.first?.message ?? "")") }
        let failed = counts.failed
        if let report, let format {
            try SafeOutput.write(report, text: try Reports.render(reports, format: format, info: RunInfo(root: set.root), ledgers: set.ledgers, root: set.root))
            print("wrote \(report)")
        }
        saveLastRun(reports, root: set.root)
        if failed > 0 { throw ExitCode(1) }
    }

    func table(_ reports: [ProtocolReport]) -> String {
        var rows = [["protocol", "status", "checks", "worst rel. error", "time"]]
        for r in reports {
            let ok = r.checks.filter { $0.passed && !$0.skipped }.count
            let total = r.checks.filter { !$0.skipped }.count
            rows.append([r.id, r.status, "\(ok)/\(total)", formatError(r.worstRelError), String(format: "%.2fs", r.seconds)])
        }
        let widths = (0..<5).map { c in rows.map { $0[c].count }.max()! }
        return rows.enumerated().map { i, row in
            let line = row.enumerated().map { c, cell in cell.padding(toLength: widths[c], withPad: " ", startingAt: 0) }.joined(separator: "  ")
            return i == 0 ? line + "\n" + widths.map { String(repeating: "─", count: $0) }.joined(separator: "  ") : line
        }.joined(separator: "\n")
    }

    func saveLastRun(_ reports: [ProtocolReport], root: String) {
        var status: [String: String] = [:]
        if let d = try? Data(contentsOf: URL(fileURLWithPath: lastRunPath(root))),
           let old = try? JSONDecoder().decode([String: String].self, from: d) { status = old }
        for r in reports { status[r.id] = r.status.lowercased() }
        if let d = try? JSONEncoder().encode(status) { try? SafeOutput.write(lastRunPath(root), data: d) }
    }
}

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare your outputs with a golden: every dataset under outputs/ and grads/.",
        discussion: """
            Only outputs and gradients are compared; a golden's inputs, params and cotangents are context. \
            Tolerances: --rtol/--atol when given (applied as given to every dataset, Float32 ones included); \
            otherwise the protocol's (--protocol, or the golden's 'protocol' attribute); otherwise Float64 \
            defaults (rtol 1e-10, atol 1e-12); Float32 data is then judged with at least torch.testing's Float32 \
            tolerances. The summary line names the tolerances used and their source. A golden dataset missing \
            from ACTUAL is a difference unless --ignore-missing. By default only differences and the summary \
            are printed (--verbose: every dataset). Exit: 0 same within tolerance, 1 different, 2 error.
            """)

    @Argument(help: "Your HDF5 file.") var actual: String
    @Argument(help: "The golden HDF5 file.") var golden: String
    @Option(parsing: .unconditional, help: "Relative tolerance (applies to every dataset).") var rtol: Double?
    @Option(parsing: .unconditional, help: "Absolute tolerance (applies to every dataset).") var atol: Double?
    @Option(name: .customLong("protocol"), help: "Protocol id whose tolerances apply.") var protocolID: String?
    @Option(help: ArgumentHelp("Compare only datasets under this group (repeatable; e.g. case0).", valueName: "group"))
    var path: [String] = []
    @Option(parsing: .upToNextOption, help: ArgumentHelp("Compare only these output/gradient names.", valueName: "name"))
    var only: [String] = []
    @Option(parsing: .upToNextOption, help: ArgumentHelp("Compare only these cases.", valueName: "case"))
    var cases: [String] = []
    @Flag(help: "List golden datasets missing from ACTUAL as ignored instead of counting them as differences.")
    var ignoreMissing = false
    @Flag(help: "Compare every dataset, inputs, params and cotangents too.") var allDatasets = false
    @Flag(help: .hidden) var drift = false
    @Flag(help: "Treat NaN as different from NaN (torch.testing's default).") var nanNotEqual = false
    @Flag(name: .shortAndLong, help: "Print every compared dataset, not only the differences.") var verbose = false
    @Flag(name: .shortAndLong, help: "Print only the summary line.") var quiet = false

    func validate() throws {
        for (n, v) in [("rtol", rtol), ("atol", atol)] {
            if let v, !(v >= 0 && v.isFinite) { throw ValidationError("--\(n) must be a finite number ≥ 0, got \(v)") }
        }
        if verbose && quiet { throw ValidationError("--verbose and --quiet exclude each other") }
    }

    func run() throws {
        var o = DiffOptions()
        o.rtol = rtol
        o.atol = atol
        o.protocolID = protocolID
        o.paths = path
        o.only = only
        o.cases = cases
        o.ignoreMissing = ignoreMissing
        o.allDatasets = allDatasets
        o.drift = drift
        o.nanPolicy = nanNotEqual ? .nanNeverEqual : .equalNaN
        let selection = PreflightSelection.diff(paths: path, all: allDatasets || drift)
        try preflight(golden, selection)
        try preflight(actual, selection)
        let set: ProtocolSet?
        // Only the protocol the comparison uses is read (its tolerances): --protocol, else the golden's attribute.
        let pid = protocolID ?? { () -> String? in (try? File.open(golden))?.attributes["protocol"]?.stringValue }()
        do { set = try pid.map { try ProtocolSet.load(root: packageRoot(), id: $0) } ?? protocolsOrFail() } catch {
            if protocolID != nil || drift { throw CLIError(message: "cannot load the protocols: \(error)") }
            stderr("certify: warning: cannot load the protocols (\(error)); the golden's protocol tolerances are not available\n")
            set = nil
        }
        let r = try Certification.Diff.run(actual: actual, golden: golden, options: o, protocols: set)
        if !quiet {
            for rep in r.reports where verbose || !rep.passed { print(rep.description) }
            for p in r.onlyInGolden { print("\(p): only in golden \(golden) — missing from \(actual)") }
            for p in r.ignored { print("\(p): missing from \(actual) — ignored (--ignore-missing)") }
            if verbose || !r.identical {
                for p in r.onlyInActual { print("\(p): only in \(actual) (not in the golden; not compared)") }
            }
        }
        print(r.summary)
        throw ExitCode(r.exitCode)
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the reference implementation on inputs laid out like a golden case.",
        discussion: "Reads /<case>/inputs, /<case>/params and /<case>/cotangents; writes /<case>/outputs and /<case>/grads. See `certify show ID` for the names and shapes. A name the protocol does not declare is an error (exit 2) unless --allow-extra; a param value the goldens do not certify is a warning and the case's `uncertified` attribute.")

    @Argument(help: "Protocol id.") var protocolID: String
    @Option(name: .shortAndLong, help: "Input HDF5 file.") var input: String
    @Option(name: .shortAndLong, help: "Output HDF5 file (written atomically).") var output: String
    @Flag(help: "Ignore (with a warning) inputs, params and cotangents the protocol does not declare, instead of refusing them.")
    var allowExtra = false
    @OptionGroup var resources: ResourceOptions

    func run() throws {
        resources.apply()
        let set = try ProtocolSet.load(root: packageRoot(), id: protocolID)
        let p = try set.protocolFor(protocolID)
        try preflight(input, .eval)
        let cases = try Evaluator.run(protocol: p, input: input, output: output, allowExtra: allowExtra) { stderr("certify: warning: \($0)\n") }
        print("wrote \(output): \(cases.count) case(s) of \(p.id)")
    }
}

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List protocols: paper, method, last-run status, golden file.")
    func run() throws {
        let set = try protocolsOrFail()
        var status: [String: String] = [:]
        if let d = try? Data(contentsOf: URL(fileURLWithPath: lastRunPath(set.root))) {
            status = (try? JSONDecoder().decode([String: String].self, from: d)) ?? [:]
        }
        func row(_ a: String, _ b: String, _ c: String, _ d: String) -> String {
            "\(a.padding(toLength: 34, withPad: " ", startingAt: 0)) \(b.padding(toLength: 10, withPad: " ", startingAt: 0)) \(c.padding(toLength: 44, withPad: " ", startingAt: 0)) \(d)"
        }
        print(row("protocol", "last run", "golden", "method [paper]"))
        for p in set.protocols {
            print(row(p.id, status[p.id] ?? "not run", p.golden, "\(p.title) [\(p.paper)]"))
        }
    }
}

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show protocols in readable form, or as JSON (--json) for other tools.",
        discussion: "Takes ids or prefixes, as `certify run` does (e.g. core.softmax, core, iadg).")
    @Argument(help: "Protocol ids or prefixes.") var protocols: [String]
    @Flag(help: "Print the contracts as JSON: names, shapes, dtypes, declared params, tolerances, cases.") var json = false

    func validate() throws {
        if protocols.isEmpty { throw ValidationError("name at least one protocol id or prefix (see `certify list`)") }
    }

    func run() throws {
        let set = try protocolsOrFail()
        let selected = try set.select(protocols.map { String($0.prefix(200)) })
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let docs = selected.map { ProtocolContract($0) }
            let data = selected.count == 1 && protocols.count == 1 && protocols[0] == selected[0].id
                ? try enc.encode(docs[0]) : try enc.encode(docs)
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print(selected.map(describe).joined(separator: "\n" + String(repeating: "─", count: 60) + "\n\n"), terminator: "")
    }

    func describe(_ p: CertProtocol) -> String {
        var s = "\(p.id) — \(p.title)\n  paper:     \(p.paper)\n  equation:  \(p.equation)\n  reference: \(p.reference)\n"
        s += "  golden:    \(p.golden) (generator \(p.generator))\n  tolerance: \(p.tolerance)\n"
        s += "  reference kind: \(p.referenceKind.explanation)\n"
        func specs(_ title: String, _ xs: [TensorSpec], _ path: String) {
            guard !xs.isEmpty else { return }
            s += "\n\(title) (/<case>/\(path)/<name>):\n"
            for x in xs {
                let dtype = x.dtype ?? "float64"
                s += "  \(x.name): \(dtype)"
                if let shape = x.shape, shape != dtype { s += " \(shape)" }
                if x.isOptional { s += " (optional)" }
                if let d = x.default { s += " (default \(d))" }
                if let u = x.uncertifiedSummary { s += " (\(u))" }
                if x.rtol != nil || x.atol != nil { s += "  [\(p.tolerance(for: x.name))]" }
                if let d = x.description { s += " — \(d)" }
                s += "\n"
            }
        }
        specs("inputs", p.inputs, "inputs")
        specs("params", p.params, "params")
        specs("outputs", p.outputs, "outputs")
        if !p.grads.isEmpty { s += "\ngradients (/<case>/grads/<name>, of Σ outputs ⊙ /<case>/cotangents/<output>): \(p.grads.joined(separator: ", "))\n" }
        s += "\ncases: \(p.cases.map(\.name).joined(separator: ", "))\n"
        if !p.properties.isEmpty {
            s += "\nproperties:\n" + p.properties.map { "  \($0.id): \($0.statement)" }.joined(separator: "\n") + "\n"
        }
        s += "\ndivergences between paper and official code: \(p.divergences.isEmpty ? "none" : "")\n"
        for d in p.divergences {
            s += "  \(d.id): paper — \(d.paper); code — \(d.code); followed: \(d.followed)\(d.option.map { " (option \($0))" } ?? "")\n"
            if let m = d.measured { s += "    measured: \(m)\n" }
        }
        if !p.unknowns.isEmpty {
            s += "\nunknowns (the paper leaves these open; Certify's assumptions, not the paper's):\n"
            for u in p.unknowns { s += "  \(u.id): paper — \(u.paper); assumed: \(u.assumed)\(u.option.map { " (option \($0))" } ?? "")\n" }
        }
        if !p.transcribes.isEmpty {
            s += "\ntranscription of the official code (official → generator):\n"
            for t in p.transcribes { s += "  \(t.official) → \(t.generator)\n    \(t.steps)\n" }
        }
        if let n = p.notes { s += "\nnotes: \(n)\n" }
        return s
    }
}

struct Checklist: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Certify every protocol and regenerate CHECKLIST.md.")
    @Option(help: "Output path (default: CHECKLIST.md at the package root).") var output: String?
    @Option(help: "Protocols certified at once (default: the core count, or $CERTIFY_JOBS).") var jobs: Int?
    func validate() throws {
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1, got \(jobs)") }
    }
    func run() throws {
        let set = try protocolsOrFail()
        let out = output ?? set.root + "/CHECKLIST.md"
        try SafeOutput.prepare(out)
        let reports = certifyAll(set.protocols, in: set, options: CertifyOptions(), jobs: jobs ?? defaultJobs()) { k, r in
            stderr("checklist: [\(k)/\(set.protocols.count)] \(r.id)\n")
        }
        let text = Reports.checklist(protocols: set.protocols, reports: reports, ledgers: set.ledgers, root: set.root)
        try SafeOutput.write(out, text: text)
        print("wrote \(out): \(reports.filter(\.passed).count) of \(reports.count) certified")
    }
}
