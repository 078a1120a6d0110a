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
        discussion: "Exit codes: 0 success / same, 1 a check failed / files differ, 2 error (bad input, unknown protocol, bad flag).",
        subcommands: [Run.self, Diff.self, Eval.self, List.self, Show.self, Checklist.self, Bench.self, Lava.self, Audit.self, BlockMNISTCommand.self, Validate.self])

    static func main() {
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
            if error is HDF5Error || error is InputError || error is ProtocolError || error is ShapeError {
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

    @Option(name: .long, help: "Also write the report to FILE (.json, .md or .xml for JUnit).")
    var report: String?

    @Option(name: .long, help: "Random instances per property.")
    var trials: Int = 25

    @Flag(name: .long, help: "Skip gradient checks.")
    var noGradcheck = false

    @Flag(name: .long, help: "Print every failing check in full.")
    var verbose = false

    func run() throws {
        let set = try protocolsOrFail()
        let selected = try set.select(protocols)
        let format = try report.map { try ReportFormat(path: $0) }
        var options = CertifyOptions()
        options.propertyTrials = trials
        options.gradientChecks = !noGradcheck
        let tty = isatty(2) != 0
        var reports: [ProtocolReport] = []
        for (i, p) in selected.enumerated() {
            let prefix = "[\(i + 1)/\(selected.count)] "
            if !tty { stderr(prefix + p.id + "\n") }
            let r = Certifier.certify(p, in: set, options: options) { line in
                if tty { stderr("\r\u{1B}[K" + prefix + line) }
            }
            reports.append(r)
        }
        if tty { stderr("\r\u{1B}[K") }
        print(table(reports))
        for r in reports where !r.passed && !r.skipped {
            print("\n\(r.id): \(r.failures.count) failing check(s)")
            for f in r.failures.prefix(verbose ? 1000 : 5) { print("  [\(f.kind.rawValue)] \(f.name): \(f.message)") }
        }
        let skipped = reports.filter(\.skipped).count
        let passed = reports.filter(\.passed).count
        let failed = reports.count - passed - skipped
        print("\n\(passed) passed, \(failed) failed" + (skipped > 0 ? ", \(skipped) skipped" : ""))
        for r in reports where r.skipped { print("skipped \(r.id): \(r.checks.first?.message ?? "")") }
        if let report, let format {
            try Reports.render(reports, format: format).write(toFile: report, atomically: true, encoding: .utf8)
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
        try? FileManager.default.createDirectory(atPath: root + "/.certify", withIntermediateDirectories: true)
        if let d = try? JSONEncoder().encode(status) { try? d.write(to: URL(fileURLWithPath: lastRunPath(root))) }
    }
}

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare your outputs with a golden: every dataset under outputs/ and grads/ (or --path).",
        discussion: """
            Tolerances: --rtol/--atol when given; otherwise the protocol's (--protocol, or the golden's \
            'protocol' attribute); otherwise Float64 defaults (rtol 1e-10, atol 1e-12). Float32 data is judged \
            with Float32 tolerances. A golden dataset missing from ACTUAL is a difference. \
            Exit: 0 same within tolerance, 1 different, 2 error.
            """)

    @Argument(help: "Your HDF5 file.") var actual: String
    @Argument(help: "The golden HDF5 file.") var golden: String
    @Option(parsing: .unconditional, help: "Relative tolerance.") var rtol: Double?
    @Option(parsing: .unconditional, help: "Absolute tolerance.") var atol: Double?
    @Option(name: .customLong("protocol"), help: "Protocol id whose tolerances apply.") var protocolID: String?
    @Option(help: "Compare only datasets under this group (e.g. case0, or / for every dataset).") var path: String?
    @Flag(help: "Treat NaN as different from NaN (torch.testing's default).") var nanNotEqual = false
    @Flag(name: .shortAndLong, help: "Print only the summary line.") var quiet = false

    func validate() throws {
        for (n, v) in [("rtol", rtol), ("atol", atol)] {
            if let v, !(v >= 0 && v.isFinite) { throw ValidationError("--\(n) must be a finite number ≥ 0") }
        }
    }

    func run() throws {
        var o = DiffOptions()
        o.rtol = rtol
        o.atol = atol
        o.protocolID = protocolID
        o.path = path
        o.nanPolicy = nanNotEqual ? .nanNeverEqual : .equalNaN
        try preflight(golden, .diff(path: path))
        try preflight(actual, .diff(path: path))
        let set = try? protocolsOrFail()
        if protocolID != nil && set == nil { throw CLIError(message: "cannot load protocols to resolve --protocol") }
        let r = try Certification.Diff.run(actual: actual, golden: golden, options: o, protocols: set)
        if !quiet {
            for rep in r.reports { print(rep.description) }
            for p in r.onlyInGolden { print("\(p): only in golden \(golden) — missing from \(actual)") }
            for p in r.onlyInActual { print("\(p): only in \(actual) (not in the golden; not compared)") }
        }
        let bad = r.reports.filter { !$0.passed }.count + r.onlyInGolden.count
        print("\(r.identical ? "same" : "DIFFERENT"): \(r.reports.count) dataset(s) compared, \(bad) difference(s)" +
              (r.protocolID.map { " [protocol \($0)]" } ?? ""))
        throw ExitCode(r.exitCode)
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the reference implementation on inputs laid out like a golden case.",
        discussion: "Reads /<case>/inputs, /<case>/params and /<case>/cotangents; writes /<case>/outputs and /<case>/grads. See `certify show ID` for the names and shapes.")

    @Argument(help: "Protocol id.") var protocolID: String
    @Option(name: .shortAndLong, help: "Input HDF5 file.") var input: String
    @Option(name: .shortAndLong, help: "Output HDF5 file (written atomically).") var output: String
    @OptionGroup var resources: ResourceOptions

    func run() throws {
        resources.apply()
        let set = try protocolsOrFail()
        let p = try set.protocolFor(protocolID)
        try preflight(input, .eval)
        let cases = try Evaluator.run(protocol: p, input: input, output: output)
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
        for p in set.protocols {
            let st = status[p.id] ?? "not run"
            print("\(p.id.padding(toLength: 34, withPad: " ", startingAt: 0)) \(st.padding(toLength: 10, withPad: " ", startingAt: 0)) \(p.golden)  — \(p.title) [\(p.paper)]")
        }
    }
}

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a protocol in readable form.")
    @Argument(help: "Protocol id.") var protocolID: String
    func run() throws {
        let p = try protocolsOrFail().protocolFor(protocolID)
        var s = "\(p.id) — \(p.title)\n  paper:     \(p.paper)\n  equation:  \(p.equation)\n  reference: \(p.reference)\n"
        s += "  golden:    \(p.golden) (generator \(p.generator))\n  tolerance: \(p.tolerance)\n"
        func specs(_ title: String, _ xs: [TensorSpec], _ path: String) {
            guard !xs.isEmpty else { return }
            s += "\n\(title) (/<case>/\(path)/<name>):\n"
            for x in xs {
                s += "  \(x.name): \(x.dtype ?? "float64") \(x.shape ?? "")\((x.optional ?? false) ? " (optional)" : "")"
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
        }
        if let n = p.notes { s += "\nnotes: \(n)\n" }
        print(s, terminator: "")
    }
}

struct Checklist: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Certify every protocol and regenerate CHECKLIST.md.")
    @Option(help: "Output path (default: CHECKLIST.md at the package root).") var output: String?
    func run() throws {
        let set = try protocolsOrFail()
        var reports: [ProtocolReport] = []
        for p in set.protocols {
            stderr("checklist: \(p.id)\n")
            reports.append(Certifier.certify(p, in: set))
        }
        let text = Reports.checklist(protocols: set.protocols, reports: reports)
        let out = output ?? set.root + "/CHECKLIST.md"
        try text.write(toFile: out, atomically: true, encoding: .utf8)
        print("wrote \(out): \(reports.filter(\.passed).count) of \(reports.count) certified")
    }
}
