// Plans of independent work units (`certify plan`, `work`, `merge`, `status`, `slurm`): a long run —
// an audit's retrainings, a reproduction's arms × seeds, a graph audit's explanations — is written as a
// plan (the full configuration, its data sources with SHA-256, seeds, tool version and commit, and the
// list of units), each unit is run anywhere (one process, a Slurm job array, a Kubernetes Indexed Job,
// GNU parallel) into one result file next to the plan, and the merge checks every unit against the plan
// before it writes the report. Nothing here knows which command made the plan.
//
// Layout: PLAN.json, and next to it PLAN.units/ holding unit-00007.json (a finished unit),
// unit-00007.lock (a worker's claim: host, pid, start), unit-00007.error.json (the last failure),
// and the command's shared preparation (e.g. prepare.bin, made once by the first worker).

import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A plan, a unit file or a worker's request that is inconsistent: always exit 2, one clear line.
public struct PlanError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A data source of a plan: its path as given and its content's SHA-256.
public struct PlanInput: Codable, Sendable, Equatable {
    public var path: String
    public var sha256: String
    public var bytes: Int
    public init(path: String, sha256: String, bytes: Int) {
        self.path = path
        self.sha256 = sha256
        self.bytes = bytes
    }

    /// Hashes the file at `path` (relative paths against `directory`).
    public static func of(_ path: String, directory: String) throws -> PlanInput {
        let full = path.hasPrefix("/") ? path : directory + "/" + path
        let size = (try? FileManager.default.attributesOfItem(atPath: full)[.size] as? Int) ?? nil
        guard let size else { throw InputError(file: path, object: "data source", "missing file") }
        return PlanInput(path: path, sha256: try SHA256.hex(file: full), bytes: size)
    }
}

/// One independent unit of a plan.
public struct PlanUnit: Codable, Sendable, Equatable {
    public var index: Int
    public var name: String
    public init(index: Int, name: String) {
        self.index = index
        self.name = name
    }
}

public struct WorkPlan: Codable, Sendable {
    public static let formatTag = "certify-plan/1"
    public var format = WorkPlan.formatTag
    /// The planned command ("audit").
    public var command: String
    /// The command's own arguments, exactly as they would be given to `certify <command>`.
    public var arguments: [String]
    /// The equivalent single-machine command line (recorded in the report's provenance).
    public var commandLine: String
    /// The working directory the arguments are relative to; workers and the merge run there.
    public var directory: String
    /// Every option of the command with its effective value.
    public var config: [String: String]
    public var inputs: [PlanInput]
    public var seeds: [UInt64]
    public var units: [PlanUnit]
    public var version: String
    public var commit: String
    /// UTC date of the plan (the report's date).
    public var created: String
    /// SHA-256 of this plan with `configHash` empty: any edit of the plan changes it.
    public var configHash: String = ""

    public init(command: String, arguments: [String], commandLine: String, directory: String, config: [String: String],
                inputs: [PlanInput], seeds: [UInt64], units: [PlanUnit], info: RunInfo) {
        self.command = command
        self.arguments = arguments
        self.commandLine = commandLine
        self.directory = directory
        self.config = config
        self.inputs = inputs
        self.seeds = seeds
        self.units = units
        self.version = info.version
        self.commit = info.commit
        self.created = info.date
        self.configHash = computedHash
    }

    static func encoder() -> JSONEncoder {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // A unit's value may be NaN or ±∞ (a graph audit's correlation, say): written as a string; the
        // exact value is in `resultBits`.
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return enc
    }

    static func decoder() -> JSONDecoder {
        let dec = JSONDecoder()
        dec.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return dec
    }

    /// The hash of the plan's content (everything but `configHash`).
    public var computedHash: String {
        var copy = self
        copy.configHash = ""
        return SHA256.hex((try? WorkPlan.encoder().encode(copy)) ?? Data())
    }

    public func encoded() throws -> Data {
        var d = try WorkPlan.encoder().encode(self)
        d.append(0x0A)
        return d
    }

    /// Reads and checks a plan: parseable, a known format, its hash matching its content, this
    /// tool's version. Throws `PlanError`.
    public static func load(_ path: String, requireSameVersion: Bool = true) throws -> WorkPlan {
        guard let data = FileManager.default.contents(atPath: path) else { throw PlanError("\(path): cannot read the plan (no such file?)") }
        let plan: WorkPlan
        do { plan = try JSONDecoder().decode(WorkPlan.self, from: data) } catch {
            throw PlanError("\(path): not a Certify plan (\(readableError(error)))")
        }
        guard plan.format == formatTag else { throw PlanError("\(path): plan format '\(plan.format)', this certify reads '\(formatTag)'") }
        guard plan.computedHash == plan.configHash else {
            throw PlanError("\(path): the plan was edited after it was made (its content hash is \(plan.computedHash.prefix(12)), it records \(plan.configHash.prefix(12))); make a new plan with `certify plan`")
        }
        guard plan.units.enumerated().allSatisfy({ $0.offset == $0.element.index }) else {
            throw PlanError("\(path): unit indices are not 0..<\(plan.units.count)")
        }
        if requireSameVersion && plan.version != certifyVersion {
            throw PlanError("\(path): the plan was made by certify \(plan.version); this is certify \(certifyVersion) (units of different versions are never mixed)")
        }
        return plan
    }
}

/// One finished unit: its result and provenance, with a checksum over the rest of the record.
public struct UnitRecord: Codable, Sendable {
    public static let formatTag = "certify-unit/1"
    public var format = UnitRecord.formatTag
    public var planHash: String
    public var version: String
    public var commit: String
    public var unit: Int
    public var name: String
    public var host: String
    public var pid: Int32
    public var started: String
    public var finished: String
    public var seconds: Double
    /// SHA-256 of the shared preparation the unit used (when the command has one).
    public var preparation: String?
    /// The unit's numbers; `resultBits` holds the same values as IEEE-754 bit patterns (hex), the
    /// exact values the merge uses.
    public var result: [String: Double]
    public var resultBits: [String: String]
    public var checksum: String = ""

    public init(plan: WorkPlan, unit: Int, started: Date, preparation: String?, result: [String: Double]) {
        planHash = plan.configHash
        version = certifyVersion
        commit = RunInfo(root: packageRoot()).commit
        self.unit = unit
        name = plan.units[unit].name
        host = WorkStore.hostName
        pid = getpid()
        self.started = WorkStore.isoDate(started)
        finished = WorkStore.isoDate(Date())
        seconds = Date().timeIntervalSince(started)
        self.preparation = preparation
        self.result = result
        resultBits = result.mapValues { String($0.bitPattern, radix: 16) }
        checksum = computedChecksum
    }

    public var computedChecksum: String {
        var copy = self
        copy.checksum = ""
        return SHA256.hex((try? WorkPlan.encoder().encode(copy)) ?? Data())
    }

    /// The exact value of result `key`.
    public func value(_ key: String) -> Double? { resultBits[key].flatMap { UInt64($0, radix: 16) }.map(Double.init(bitPattern:)) }
}

/// A lock file's content: who claimed the unit.
public struct UnitLock: Codable, Sendable, Equatable {
    public var host: String
    public var pid: Int32
    public var started: String
}

/// The files of a plan's units and the rules for reading them.
/// What a worker did with the units it was given.
public struct WorkSummary: Sendable {
    public var ran = 0, alreadyDone = 0, heldElsewhere = 0, redone = 0
    public init() {}
}

public struct WorkStore: Sendable {
    public let planPath: String
    public let plan: WorkPlan
    /// PLAN.units next to the plan.
    public let directory: String

    public init(planPath: String, plan: WorkPlan) {
        self.planPath = planPath
        self.plan = plan
        let base = planPath.hasSuffix(".json") ? String(planPath.dropLast(5)) : planPath
        directory = base + ".units"
    }

    public static var hostName: String { ProcessInfo.processInfo.hostName }

    public static func isoDate(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: d)
    }

    public func unitPath(_ i: Int) -> String { directory + String(format: "/unit-%05d.json", i) }
    public func lockPath(_ i: Int) -> String { directory + String(format: "/unit-%05d.lock", i) }
    public func errorPath(_ i: Int) -> String { directory + String(format: "/unit-%05d.error.json", i) }
    public func file(_ name: String) -> String { directory + "/" + name }

    public func ensureDirectory() throws {
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw PlanError("\(directory): cannot create the units folder (\(readableError(error)))")
        }
    }

    /// The state of one unit's result file.
    public enum UnitState: Sendable {
        case missing
        case done(UnitRecord)
        /// Present but unusable: truncated, corrupt, another plan, another version.
        case invalid(String)
    }

    /// Of `units`, those still to run. A done unit is counted in `summary.alreadyDone`; a damaged file
    /// (truncated, corrupt, holding another unit) is redone and counted in `summary.redone`; a unit of
    /// another plan or version is an error, never silently replaced.
    public func pending(_ units: [Int], summary: inout WorkSummary, log: (String) -> Void) throws -> [Int] {
        var todo: [Int] = []
        for i in units {
            switch state(i) {
            case .done: summary.alreadyDone += 1
            case .missing: todo.append(i)
            case .invalid(let why):
                if why.contains("another plan") || why.contains("written by certify") { throw PlanError(why) }
                log("\(why); redoing it")
                summary.redone += 1
                todo.append(i)
            }
        }
        return todo
    }

    /// Reads unit `i`'s file and checks it against the plan.
    public func state(_ i: Int) -> UnitState {
        let path = unitPath(i)
        guard let data = FileManager.default.contents(atPath: path) else { return .missing }
        let r: UnitRecord
        do { r = try WorkPlan.decoder().decode(UnitRecord.self, from: data) } catch {
            return .invalid("\(path): truncated or corrupt (\(readableError(error)))")
        }
        guard r.format == UnitRecord.formatTag else { return .invalid("\(path): unit format '\(r.format)', expected '\(UnitRecord.formatTag)'") }
        guard r.checksum == r.computedChecksum else { return .invalid("\(path): corrupt (its checksum does not match its content)") }
        guard r.planHash == plan.configHash else {
            return .invalid("\(path): written for another plan (config hash \(r.planHash.prefix(12)), the plan's is \(plan.configHash.prefix(12))): the plan changed after this unit was written")
        }
        guard r.version == plan.version, r.commit == plan.commit else {
            return .invalid("\(path): written by certify \(r.version) (commit \(r.commit.prefix(12))), the plan by certify \(plan.version) (commit \(plan.commit.prefix(12)))")
        }
        guard r.unit == i, r.name == plan.units[i].name else { return .invalid("\(path): holds unit \(r.unit) '\(r.name)', expected unit \(i) '\(plan.units[i].name)'") }
        guard r.result.allSatisfy({ entry in r.value(entry.key).map { $0.bitPattern == entry.value.bitPattern || ($0.isNaN && entry.value.isNaN) } ?? false }) else {
            return .invalid("\(path): corrupt (its values and their bit patterns disagree)")
        }
        return .done(r)
    }

    /// Every unit's record, or a `PlanError` naming each missing or invalid unit.
    public func allRecords() throws -> [UnitRecord] {
        var records: [UnitRecord] = []
        var problems: [String] = []
        var missing: [Int] = []
        for i in plan.units.indices {
            switch state(i) {
            case .done(let r): records.append(r)
            case .missing:
                missing.append(i)
            case .invalid(let why): problems.append(why)
            }
        }
        if !missing.isEmpty {
            let locks = missing.compactMap { readLock($0) }
            let stale = missing.filter { i in readLock(i).map { WorkStore.isStale($0, path: lockPath(i)) } ?? false }.count
            let running = locks.count - stale
            problems.insert("\(missing.count) of \(plan.units.count) units are not done: \(truncatedList(missing.map(String.init), limit: 20))"
                            + (running == 0 ? "" : " (\(running) running)") + (stale == 0 ? "" : " (\(stale) left by a worker that is gone)")
                            + "; run `certify work \(planPath) --all` or resubmit them", at: 0)
        }
        if !problems.isEmpty { throw PlanError("\(planPath): cannot merge: " + problems.joined(separator: "; ")) }
        let preps = Set(records.map { $0.preparation ?? "" })
        guard preps.count <= 1 else { throw PlanError("\(planPath): cannot merge: the units used \(preps.count) different preparations") }
        return records
    }

    // MARK: Locks

    public func readLock(_ i: Int) -> UnitLock? { readLock(path: lockPath(i)) }

    func readLock(path: String) -> UnitLock? {
        guard let d = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(UnitLock.self, from: d)
    }

    /// Seconds without a heartbeat after which a lock of another host is stale: a live worker touches
    /// its locks every `heartbeatSeconds` (CERTIFY_LOCK_STALE_SECONDS, default 600).
    public static var staleSeconds: Double {
        ProcessInfo.processInfo.environment["CERTIFY_LOCK_STALE_SECONDS"].flatMap(Double.init).flatMap { $0 > 0 ? $0 : nil } ?? 600
    }
    public static let heartbeatSeconds = 30.0

    /// Whether a lock is stale: taken on this host by a process that no longer exists, or taken on
    /// another host and not touched for `staleSeconds` (a worker whose node died or was preempted).
    public static func isStale(_ lock: UnitLock, path: String? = nil) -> Bool {
        if lock.host == hostName { return kill(lock.pid, 0) != 0 && errno == ESRCH }
        guard let path, let m = (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate]) as? Date else { return false }
        return Date().timeIntervalSince(m) > staleSeconds
    }

    /// Touches the locks this process holds every `heartbeatSeconds`, so that other hosts see them alive.
    public final class Heartbeat: @unchecked Sendable {
        private var paths = Set<String>()
        private let lock = NSLock()
        private var timer: DispatchSourceTimer?
        public init() {}
        func add(_ p: String) { lock.lock(); paths.insert(p); lock.unlock(); start() }
        func remove(_ p: String) { lock.lock(); paths.remove(p); lock.unlock() }
        private func start() {
            lock.lock(); defer { lock.unlock() }
            guard timer == nil else { return }
            let t = DispatchSource.makeTimerSource(queue: .global())
            t.schedule(deadline: .now() + WorkStore.heartbeatSeconds, repeating: WorkStore.heartbeatSeconds)
            t.setEventHandler { [weak self] in
                guard let self else { return }
                self.lock.lock(); let held = self.paths; self.lock.unlock()
                for p in held { utimes(p, nil) }
            }
            t.resume()
            timer = t
        }
    }
    public let heartbeat = Heartbeat()

    public enum Claim: Sendable {
        case acquired
        /// Another live worker holds it.
        case heldBy(UnitLock)
    }

    /// Claims the lock at `path` (O_CREAT|O_EXCL). A stale lock (a dead process of this host, or another
    /// host's lock without heartbeat for `staleSeconds`) is taken over: under an exclusive flock on
    /// PLAN.units/.takeover, re-read, removed only when unchanged.
    /// An unreadable lock (a worker that died while writing it) older than a minute is taken over too.
    public func claim(path: String) throws -> Claim {
        for _ in 0..<5 {
            let fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0o644)
            if fd >= 0 {
                let me = UnitLock(host: WorkStore.hostName, pid: getpid(), started: WorkStore.isoDate(Date()))
                let bytes = Array((try? JSONEncoder().encode(me)) ?? Data())
                _ = bytes.withUnsafeBufferPointer { Glibc.write(fd, $0.baseAddress, $0.count) }
                fsync(fd)
                close(fd)
                heartbeat.add(path)
                return .acquired
            }
            guard errno == EEXIST else { throw PlanError("\(path): cannot create the lock (\(String(cString: strerror(errno))))") }
            let current = FileManager.default.contents(atPath: path)
            let lock = current.flatMap { try? JSONDecoder().decode(UnitLock.self, from: $0) }
            if let lock, !WorkStore.isStale(lock, path: path) { return .heldBy(lock) }
            if lock == nil {
                let age = (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date).map { Date().timeIntervalSince($0) } ?? 0
                if current != nil && age < 60 { return .heldBy(UnitLock(host: "?", pid: 0, started: "just now")) }
            }
            // Take the stale lock over, once, under the take-over flock.
            let t = open(file(".takeover"), O_CREAT | O_RDWR, 0o644)
            guard t >= 0 else { throw PlanError("\(file(".takeover")): cannot open (\(String(cString: strerror(errno))))") }
            flock(t, LOCK_EX)
            if FileManager.default.contents(atPath: path) == current { unlink(path) }
            flock(t, LOCK_UN)
            close(t)
        }
        throw PlanError("\(path): could not claim the lock (it keeps changing)")
    }

    public func release(path: String) {
        heartbeat.remove(path)
        if let l = readLock(path: path), l.host == WorkStore.hostName, l.pid == getpid() { unlink(path) }
    }

    /// Runs unit `i` in this worker: skipped when another live worker holds its lock (logged, counted in
    /// `summary.heldElsewhere`) or when it is already done; otherwise `body` computes its result, written as the
    /// unit's record (counted in `summary.ran`). An error is recorded as the unit's failure and rethrown.
    public func runUnit(_ i: Int, preparation: String?, summary: inout WorkSummary, log: (String) -> Void,
                        _ body: () throws -> [String: Double]) throws {
        switch try claim(path: lockPath(i)) {
        case .heldBy(let l):
            log("unit \(i) is being run by \(l.host) pid \(l.pid) (since \(l.started)); skipped")
            summary.heldElsewhere += 1
            return
        case .acquired: break
        }
        defer { release(path: lockPath(i)) }
        if case .done = state(i) { return }
        let started = Date()
        do {
            try write(UnitRecord(plan: plan, unit: i, started: started, preparation: preparation, result: try body()))
            summary.ran += 1
        } catch {
            recordFailure(i, error: "\(error)")
            throw error
        }
    }

    /// Records a unit's failure (kept until the unit succeeds).
    public func recordFailure(_ i: Int, error: String) {
        let body: [String: String] = ["unit": "\(i)", "name": plan.units[i].name, "host": WorkStore.hostName, "pid": "\(getpid())",
                                      "date": WorkStore.isoDate(Date()), "error": error]
        if let d = try? WorkPlan.encoder().encode(body) { try? SafeOutput.write(errorPath(i), data: d) }
    }

    public func readFailure(_ i: Int) -> [String: String]? {
        FileManager.default.contents(atPath: errorPath(i)).flatMap { try? JSONDecoder().decode([String: String].self, from: $0) }
    }

    /// Writes a finished unit atomically and clears its failure record.
    public func write(_ record: UnitRecord) throws {
        let d = try WorkPlan.encoder().encode(record)
        try SafeOutput.write(unitPath(record.unit), data: d + Data([0x0A]))
        unlink(errorPath(record.unit))
    }

    // MARK: Selecting units

    /// Parses `--shard i/n` (0-based i): the units i, i + n, i + 2n, ….
    public static func shard(_ spec: String, count: Int) throws -> [Int] {
        let p = spec.split(separator: "/").map { Int($0) }
        guard p.count == 2, let i = p[0], let n = p[1], n >= 1, i >= 0, i < n else {
            throw PlanError("--shard must be i/n with 0 ≤ i < n, got '\(spec)'")
        }
        return Array(stride(from: i, to: count, by: n))
    }

    /// The unit index from the environment of an array job: SLURM_ARRAY_TASK_ID, then JOB_COMPLETION_INDEX.
    public static func indexFromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws -> (Int, String)? {
        for key in ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"] {
            if let v = env[key] {
                guard let i = Int(v.trimmingCharacters(in: .whitespaces)) else { throw PlanError("\(key)='\(v)' is not a unit index") }
                return (i, key)
            }
        }
        return nil
    }
}
