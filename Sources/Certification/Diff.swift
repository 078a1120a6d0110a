// `certify diff ACTUAL GOLDEN`: compares every dataset the golden holds under outputs/ and grads/
// (or under a chosen path), streaming large datasets in hyperslab chunks so that memory stays
// bounded. Exit codes follow h5diff: 0 same within tolerance, 1 different, 2 error.

import Foundation
import HDF5

public struct DiffOptions: Sendable {
    /// Explicit tolerances (override the protocol's).
    public var rtol: Double?
    public var atol: Double?
    /// Protocol id; defaults to the golden's `protocol` attribute.
    public var protocolID: String?
    /// Compare only datasets under this group path (default: every outputs/ and grads/ group).
    public var path: String?
    public var nanPolicy: NaNPolicy = .equalNaN
    /// Elements per chunk when streaming.
    public var chunkElements = 1 << 20
    public init() {}
}

public struct DiffResult: Sendable {
    public var reports: [ComparisonReport] = []
    public var onlyInActual: [String] = []
    public var onlyInGolden: [String] = []
    public var protocolID: String?
    public var identical: Bool { reports.allSatisfy(\.passed) && onlyInGolden.isEmpty }
    public var exitCode: Int32 { identical ? 0 : 1 }
}

public enum Diff {
    public static func selected(_ paths: [String], under prefix: String?) -> [String] {
        if let prefix {
            let p = prefix.split(separator: "/").joined(separator: "/")
            if p.isEmpty { return paths }
            return paths.filter { $0 == p || $0.hasPrefix(p + "/") }
        }
        return paths.filter { path in
            let parts = path.split(separator: "/")
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
            throw ProtocolError(file: "protocols/", "unknown protocol id '\(pid)' (see `certify list`)")
        }
        // An id that names no protocol sets no tolerances: say so instead of showing it as if it applied.
        result.protocolID = proto == nil ? pid.map { "\($0): unknown, Float64 defaults apply" } : pid
        if let path = options.path, !g.contains(path) {
            throw HDF5Error(file: golden, object: path, "no such group in the golden")
        }
        let gPaths = selected(try g.root.datasetPaths(), under: options.path)
        let aPaths = selected(try a.root.datasetPaths(), under: options.path)
        if gPaths.isEmpty {
            throw HDF5Error(file: golden, object: options.path ?? "/", "holds no datasets to compare (wrong layout? expected /<case>/outputs/*)")
        }
        let aSet = Set(aPaths), gSet = Set(gPaths)
        result.onlyInGolden = gPaths.filter { !aSet.contains($0) }
        result.onlyInActual = aPaths.filter { !gSet.contains($0) }
        for path in gPaths where aSet.contains(path) {
            let name = String(path.split(separator: "/").last ?? "")
            var tol = proto?.tolerance(for: name) ?? .float64
            if let r = options.rtol { tol.rtol = r }
            if let at = options.atol { tol.atol = at }
            result.reports.append(try compareDataset(path: path, actual: try a.dataset(path), golden: try g.dataset(path),
                                                     tolerance: tol, options: options))
        }
        return result
    }

    /// Compares two datasets chunk by chunk along the first axis.
    public static func compareDataset(path: String, actual: Dataset, golden: Dataset, tolerance: Tolerance,
                                      options: DiffOptions) throws -> ComparisonReport {
        let ad = try actual.dtype, gd = try golden.dtype
        let ashape = try actual.shape, gshape = try golden.shape
        let exact = Compare.isExact(gd) || gd == .string
        var c = Comparator(name: path, actualShape: ashape, expectedShape: gshape, actualDType: ad.rawValue, expectedDType: gd.rawValue,
                           tolerance: Compare.tolerance(tolerance, actual: ad, expected: gd), exact: exact, nanPolicy: options.nanPolicy)
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

