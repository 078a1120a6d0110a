// `certify diff ACTUAL GOLDEN`: compares every dataset the golden holds under outputs/ and grads/
// (or under a chosen path), streaming large datasets in hyperslab chunks so that memory stays
// bounded. Exit codes follow h5diff: 0 same within tolerance, 1 different, 2 error.

import Foundation
import HDF5

public struct DiffOptions: Sendable {
    /// Explicit tolerances: they apply as given, to every dataset, Float32 ones included.
    public var rtol: Double?
    public var atol: Double?
    /// Protocol id; defaults to the golden's `protocol` attribute.
    public var protocolID: String?
    /// Compare only datasets under these group paths (default: the whole file).
    public var paths: [String] = []
    /// Compare only outputs or gradients with these names (the last path component).
    public var only: [String] = []
    /// Compare only these cases (the first path component).
    public var cases: [String] = []
    /// A golden dataset missing from ACTUAL is listed as ignored instead of counted as a difference.
    public var ignoreMissing = false
    /// Compare every dataset (inputs, params and cotangents too), not only outputs/ and grads/.
    public var allDatasets = false
    /// Drift mode (`make goldens-check`): every dataset, with tolerances `Tolerance.drift` derives
    /// from the protocol's and from each golden dataset's magnitude.
    public var drift = false
    public var nanPolicy: NaNPolicy = .equalNaN
    /// Elements per chunk when streaming.
    public var chunkElements = 1 << 20
    public init() {}
}

/// Where the tolerances of a diff came from, for the summary line.
public enum ToleranceSource: Sendable, Equatable {
    case explicit, protocolFile(String), defaults, drift(String?)
}

public struct DiffResult: Sendable {
    public var reports: [ComparisonReport] = []
    public var onlyInActual: [String] = []
    public var onlyInGolden: [String] = []
    /// Golden datasets missing from ACTUAL that `--ignore-missing` set aside.
    public var ignored: [String] = []
    public var protocolID: String?
    /// Whether the protocol named by the golden's attribute (or --protocol) was found.
    public var protocolKnown = false
    public var toleranceSource: ToleranceSource = .defaults
    /// The base tolerance (before any Float32 widening) and whether any dataset was Float32.
    public var baseTolerance: Tolerance = .float64
    public var usedFloat32Defaults = false
    /// Whether the protocol declares per-output tolerances.
    public var perOutputOverrides = false
    public var identical: Bool { reports.allSatisfy(\.passed) && onlyInGolden.isEmpty }
    public var exitCode: Int32 { identical ? 0 : 1 }
    public var differences: Int { reports.filter { !$0.passed }.count + onlyInGolden.count }

    /// One line: the verdict, the counts, and the tolerances used with their source.
    public var summary: String {
        var s = "\(identical ? "same" : "DIFFERENT"): \(reports.count) dataset(s) compared, \(differences) difference(s)"
        if !ignored.isEmpty { s += ", \(ignored.count) missing dataset(s) ignored" }
        s += "; tolerances: "
        switch toleranceSource {
        case .explicit: s += "\(baseTolerance) (given on the command line, applied to every dataset)"
        case .protocolFile(let id): s += "protocol \(id) (\(baseTolerance)\(perOutputOverrides ? "; per-output overrides where it declares them" : ""))"
        case .defaults:
            s += "Float64 defaults (\(baseTolerance))"
            if let protocolID, !protocolKnown { s += " — the golden names protocol '\(protocolID)', which is unknown here" }
        case .drift(let id):
            s += "drift check: \(Tolerance.driftFraction)× those of \(id.map { "protocol \($0)" } ?? "the Float64 defaults"), floor \(Tolerance.driftFloor)·max|golden dataset|"
            if id == nil, let protocolID { s += " — the golden names protocol '\(protocolID)', which is unknown here" }
        }
        if usedFloat32Defaults { s += "; Float32 data judged with at least torch.testing's Float32 tolerances (\(Tolerance.float32))" }
        return s
    }
}

public enum Diff {
    static func components(_ path: String) -> [String] { path.split(separator: "/").map(String.init) }

    /// The datasets that take part: under one of `paths`, within `cases`, named in `only`, and (unless
    /// every dataset is asked for) under an outputs/ or grads/ group. The rest of a golden is context.
    public static func selected(_ paths: [String], options o: DiffOptions) -> [String] {
        let prefixes = o.paths.map { components($0) }
        return paths.filter { path in
            let parts = components(path)
            if !prefixes.isEmpty && !prefixes.contains(where: { $0.isEmpty || Array(parts.prefix($0.count)) == $0 }) { return false }
            if !o.cases.isEmpty && !o.cases.contains(parts.first ?? "") { return false }
            if !o.only.isEmpty && !o.only.contains(parts.last ?? "") { return false }
            if o.allDatasets || o.drift { return true }
            return parts.dropLast().contains("outputs") || parts.dropLast().contains("grads")
        }
    }

    public static func run(actual: String, golden: String, options: DiffOptions = .init(), protocols: ProtocolSet? = nil) throws -> DiffResult {
        let g = try File.open(golden)
        let a = try File.open(actual)
        var result = DiffResult()
        let pid = options.protocolID ?? g.attributes["protocol"]?.stringValue
        var proto: CertProtocol?
        if let pid, let protocols { proto = try? protocols.protocolFor(pid) }
        if options.protocolID != nil && proto == nil, let pid {
            throw ProtocolError(file: "protocols/", "unknown protocol id '\(String(pid.prefix(80)))' (see `certify list`)")
        }
        result.protocolID = pid
        result.protocolKnown = proto != nil
        result.perOutputOverrides = proto?.outputs.contains { $0.rtol != nil || $0.atol != nil } ?? false
        let explicit = options.rtol != nil || options.atol != nil
        result.toleranceSource = options.drift ? .drift(proto?.id) : explicit ? .explicit : proto.map { .protocolFile($0.id) } ?? .defaults
        result.baseTolerance = Tolerance(rtol: options.rtol ?? proto?.tolerance.rtol ?? Tolerance.float64.rtol,
                                         atol: options.atol ?? proto?.tolerance.atol ?? Tolerance.float64.atol)
        for path in options.paths where !path.split(separator: "/").isEmpty && !g.contains(path) {
            throw HDF5Error(file: golden, object: path, "no such group in the golden (--path)")
        }
        for c in options.cases where !g.root.isGroup(c) {
            throw HDF5Error(file: golden, object: "/\(c)", "no such case in the golden (--cases); cases: \(truncatedList(try caseNames(in: g)))")
        }
        let gPaths = selected(try g.root.datasetPaths(), options: options)
        let aPaths = selected(try a.root.datasetPaths(), options: options)
        if gPaths.isEmpty {
            let what = options.only.isEmpty ? "" : " named \(options.only.joined(separator: ", "))"
            throw HDF5Error(file: golden, object: options.paths.isEmpty ? "/" : options.paths.joined(separator: ", "),
                            "holds no outputs or gradients\(what) to compare (wrong layout? expected /<case>/outputs/*)")
        }
        // Names are matched as the bytes HDF5 stores, never by Unicode canonical equivalence:
        // 'café' in NFC and in NFD are two different datasets.
        let aSet = Set(aPaths.map { Array($0.utf8) }), gSet = Set(gPaths.map { Array($0.utf8) })
        let missing = gPaths.filter { !aSet.contains(Array($0.utf8)) }
        if options.ignoreMissing { result.ignored = missing } else { result.onlyInGolden = missing }
        result.onlyInActual = aPaths.filter { !gSet.contains(Array($0.utf8)) }
        for path in gPaths where aSet.contains(Array(path.utf8)) {
            let name = components(path).last ?? ""
            let protoTol = proto?.tolerance(for: name) ?? .float64
            let gd = try g.dataset(path), ad = try a.dataset(path)
            var tol = Tolerance(rtol: options.rtol ?? protoTol.rtol, atol: options.atol ?? protoTol.atol)
            var widen = (rtol: options.rtol == nil, atol: options.atol == nil)
            if options.drift {
                tol = Tolerance.drift(from: protoTol, goldenMagnitude: try maxAbs(gd, chunkElements: options.chunkElements))
                widen = (false, false)
            }
            let (adt, gdt) = (try ad.dtype, try gd.dtype)
            if (adt == .float32 || gdt == .float32) && (widen.rtol || widen.atol) { result.usedFloat32Defaults = true }
            result.reports.append(try compareDataset(path: path, actual: ad, golden: gd, tolerance: tol, widen: widen, options: options))
        }
        return result
    }

    /// The greatest finite |value| of a numeric dataset, streamed in chunks (0 for strings or empty data).
    static func maxAbs(_ d: Dataset, chunkElements: Int) throws -> Double {
        let dt = try d.dtype, shape = try d.shape
        guard dt != .string, let rows = shape.first, rows > 0 else { return 0 }
        let rowElems = Swift.max(1, shape.dropFirst().reduce(1, *))
        let rowsPerChunk = Swift.max(1, chunkElements / rowElems)
        var m = 0.0, row = 0
        while row < rows {
            let n = Swift.min(rowsPerChunk, rows - row)
            var off = [Int](repeating: 0, count: shape.count), cnt = shape
            off[0] = row
            cnt[0] = n
            let xs = try shape.isEmpty ? d.readDoubles() : d.readDoubles(offset: off, count: cnt)
            for x in xs where x.isFinite { m = Swift.max(m, Swift.abs(x)) }
            row += n
        }
        return m
    }

    /// Compares two datasets chunk by chunk along the first axis.
    /// `widen`: which of the two tolerances may be raised to the Float32 defaults when either side is
    /// Float32 (never an explicit one).
    public static func compareDataset(path: String, actual: Dataset, golden: Dataset, tolerance: Tolerance,
                                      widen: (rtol: Bool, atol: Bool) = (true, true), options: DiffOptions) throws -> ComparisonReport {
        let ad = try actual.dtype, gd = try golden.dtype
        let ashape = try actual.shape, gshape = try golden.shape
        let exact = Compare.isExact(gd) || gd == .string
        var c = Comparator(name: path, actualShape: ashape, expectedShape: gshape, actualDType: ad.rawValue, expectedDType: gd.rawValue,
                           tolerance: Compare.tolerance(tolerance, actual: ad, expected: gd, widen: widen), exact: exact, nanPolicy: options.nanPolicy)
        if (ad == .string) != (gd == .string) {
            c.fail("dtype mismatch: actual \(ad), golden \(gd)")
            return c.report
        }
        guard ashape == gshape else { return c.report }
        if gd == .string {
            let x = try actual.readStrings(), y = try golden.readStrings()
            let m = zip(x, y).filter { $0 != $1 }.count
            c.add(actual: x.map { _ in 0 }, expected: y.map { _ in 0 })
            if m > 0 { c.fail("\(m) of \(y.count) strings differ") }
            return c.report
        }
        if exact && ad.isFloatingPoint {
            c.fail("dtype mismatch: golden holds \(gd) (compared exactly), actual holds \(ad)")
            return c.report
        }
        if gshape.isEmpty || gshape[0] == 0 || gshape.reduce(1, *) <= options.chunkElements {
            c.add(actual: try actual.readDoubles(), expected: try golden.readDoubles())
            return c.report
        }
        // Rows of the first axis per chunk; for a rank-1 dataset a row is one element.
        let rowElems = Swift.max(1, gshape.dropFirst().reduce(1, *))
        let rowsPerChunk = Swift.max(1, options.chunkElements / rowElems)
        // Double buffering: while one pair of buffers is compared on a worker thread, the next chunk
        // is read into the other pair. Memory stays at 4 chunks; buffers are reused, so no fresh pages.
        let capacity = rowsPerChunk * rowElems
        let buffers = (0..<4).map { _ in UnsafeMutableBufferPointer<Double>.allocate(capacity: capacity) }
        defer { buffers.forEach { $0.deallocate() } }
        final class Box: @unchecked Sendable { var c: Comparator; init(_ c: Comparator) { self.c = c } }
        let box = Box(c)
        let queue = DispatchQueue(label: "certify.diff.compare")
        var row = 0, slot = 0
        while row < gshape[0] {
            let n = Swift.min(rowsPerChunk, gshape[0] - row)
            var off = [Int](repeating: 0, count: gshape.count)
            off[0] = row
            var cnt = gshape
            cnt[0] = n
            let x = UnsafeMutableBufferPointer(rebasing: buffers[2 * slot][0..<(n * rowElems)])
            let y = UnsafeMutableBufferPointer(rebasing: buffers[2 * slot + 1][0..<(n * rowElems)])
            do {
                try actual.readDoubles(into: x, offset: off, count: cnt)
                try golden.readDoubles(into: y, offset: off, count: cnt)
            } catch {
                queue.sync {}
                throw error
            }
            queue.sync {}  // the previous comparison has finished with the other pair
            let start = row * rowElems
            let (xa, ya) = (UnsafeBufferPointer(x), UnsafeBufferPointer(y))
            nonisolated(unsafe) let (xs, ys) = (xa, ya)
            queue.async { box.c.add(actual: xs, expected: ys, offset: start) }
            row += n
            slot ^= 1
        }
        queue.sync {}
        c = box.c
        return c.report
    }
}

