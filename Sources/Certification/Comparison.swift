// The comparison engine shared by tests and the CLI.
//
//   |actual − expected| ≤ atol + rtol·|expected|      (the golden is always `expected`)
//
// NaN policy (explicit, default `.equalNaN`): NaN equals NaN; NaN against a number differs.
// Infinities must match exactly (same sign). Integer and Bool data compare exactly.
// A shape or dtype mismatch is a reported failure, never a crash.
// The report follows torch.testing.assert_close: mismatched count and percent, greatest absolute
// and relative difference with their indices, shapes and dtypes; plus the worst ULP distance.

import Foundation
import HDF5
import Tensor

public enum NaNPolicy: String, Sendable, Codable {
    /// NaN == NaN (numpy.assert_allclose, h5diff).
    case equalNaN
    /// NaN never equals anything (torch.assert_close's default).
    case nanNeverEqual
}

/// Distance in units in the last place between two doubles (0 for equal values, including ±0;
/// UInt64.max when either is NaN).
public func ulpDistance(_ a: Double, _ b: Double) -> UInt64 {
    if a.isNaN || b.isNaN { return .max }
    if a == b { return 0 }
    func ordered(_ x: Double) -> Int64 {
        let bits = Int64(bitPattern: x.bitPattern)
        return bits < 0 ? Int64.min &- bits : bits
    }
    let d = ordered(a).subtractingReportingOverflow(ordered(b))
    return d.overflow ? .max : d.partialValue.magnitude
}

/// The result of comparing one dataset.
public struct ComparisonReport: Sendable, CustomStringConvertible, Codable {
    public var name: String
    public var actualShape: [Int]
    public var expectedShape: [Int]
    public var actualDType: String
    public var expectedDType: String
    public var tolerance: Tolerance
    public var exact: Bool
    public var count = 0
    public var mismatched = 0
    public var maxAbs = 0.0
    public var maxAbsIndex: [Int] = []
    /// Greatest |a − e| / |e| (∞ where e = 0 and a ≠ 0), torch.testing's "relative difference".
    public var maxRel = 0.0
    public var maxRelIndex: [Int] = []
    /// Greatest |a − e| / max(|e|, atol/rtol): the relative error, with |expected| floored where
    /// the absolute tolerance governs. This is the "worst relative error" in reports and CHECKLIST.md.
    public var worstRelError = 0.0
    /// Worst distance in units in the last place of the compared dtype (Float32 units when either
    /// side is Float32); nil for integer and bool data.
    public var maxULP: UInt64? = 0
    /// Actual and golden values where the absolute difference is greatest.
    public var maxAbsValues: [Double] = []
    /// Elements where one side is NaN or infinite and the other is not the same (not counted in the
    /// differences above, which are between finite numbers).
    public var nonFiniteMismatched = 0
    public var firstNonFiniteIndex: [Int] = []
    public var firstNonFiniteValues: [Double] = []
    /// A structural problem (shape, dtype, missing data): the comparison failed without element checks.
    public var problem: String?

    public var passed: Bool { problem == nil && mismatched == 0 }

    public var description: String {
        var s = "\(name): "
        if let problem { return s + "FAILED: \(problem)" }
        s += passed ? "ok" : "NOT CLOSE"
        s += " — shape \(expectedShape), dtype \(actualDType) vs golden \(expectedDType)"
        if count == 0 { return s + ", empty" }
        if passed { return s + ", \(count) elements, worst relative error \(fmt(worstRelError))" }
        let pct = 100.0 * Double(mismatched) / Double(count)
        s += "\n    mismatched elements: \(mismatched) / \(count) (\(String(format: "%.1f", pct))%)"
        if nonFiniteMismatched > 0 {
            let (a, e) = (firstNonFiniteValues.first ?? .nan, firstNonFiniteValues.last ?? .nan)
            s += "\n    non-finite mismatches: \(nonFiniteMismatched) (first at index \(firstNonFiniteIndex): actual \(a), golden \(e))"
        }
        if mismatched > nonFiniteMismatched || maxAbs > 0 {
            s += "\n    greatest absolute difference: \(fmt(maxAbs)) at index \(maxAbsIndex) (up to \(fmt(tolerance.atol)) allowed)"
            if maxAbsValues.count == 2 { s += "; actual \(maxAbsValues[0]), golden \(maxAbsValues[1])" }
            s += "\n    greatest relative difference: \(fmt(maxRel)) at index \(maxRelIndex) (up to \(fmt(tolerance.rtol)) allowed)"
            s += "\n    worst relative error: \(fmt(worstRelError))"
            if let u = maxULP { s += "; worst ULP distance (\(ulpUnit)): \(u == .max ? "n/a" : String(u))" }
        }
        if exact { s += "\n    (integer/bool data: compared exactly)" }
        return s
    }
}

func fmt(_ x: Double) -> String { String(format: "%.3g", x) }

/// Distance in units in the last place between two Float32 values.
public func ulpDistance32(_ a: Float, _ b: Float) -> UInt64 {
    if a.isNaN || b.isNaN { return .max }
    if a == b { return 0 }
    func ordered(_ x: Float) -> Int64 {
        let bits = Int64(Int32(bitPattern: x.bitPattern))
        return bits < 0 ? Int64(Int32.min) - bits : bits
    }
    return (ordered(a) - ordered(b)).magnitude
}

extension ComparisonReport {
    /// The dtype whose units the ULP distance counts.
    var ulpUnit: String { actualDType == "float32" || expectedDType == "float32" ? "float32" : "float64" }
}

/// Accumulates a comparison over one dataset, chunk by chunk, so large files stream through it.
public struct Comparator: Sendable {
    public private(set) var report: ComparisonReport
    let policy: NaNPolicy
    let floor: Double
    let ulp32: Bool

    public init(name: String, actualShape: [Int], expectedShape: [Int], actualDType: String, expectedDType: String,
                tolerance: Tolerance, exact: Bool = false, nanPolicy: NaNPolicy = .equalNaN) {
        report = ComparisonReport(name: name, actualShape: actualShape, expectedShape: expectedShape,
                                  actualDType: actualDType, expectedDType: expectedDType,
                                  tolerance: exact ? Tolerance(rtol: 0, atol: 0) : tolerance, exact: exact)
        policy = nanPolicy
        floor = tolerance.rtol > 0 ? tolerance.atol / tolerance.rtol : Double.leastNormalMagnitude
        ulp32 = actualDType == "float32" || expectedDType == "float32"
        if exact { report.maxULP = nil }
        if actualShape != expectedShape {
            report.problem = "shape mismatch: actual \(actualShape), golden \(expectedShape)"
        }
    }

    /// Marks a structural failure.
    public mutating func fail(_ problem: String) { report.problem = problem }

    /// Compares `actual[i]` with `expected[i]`, the elements starting at flat offset `offset`.
    public mutating func add(actual: UnsafeBufferPointer<Double>, expected: UnsafeBufferPointer<Double>, offset: Int) {
        guard report.problem == nil else { return }
        let tol = report.tolerance
        let shape = report.expectedShape
        var maxAbs = report.maxAbs, maxAbsAt = -1
        var maxRel = report.maxRel, maxRelAt = -1
        var worst = report.worstRelError
        var maxULP = report.maxULP ?? 0
        var mismatched = 0, nonFinite = 0, firstNonFinite = -1
        for i in 0..<min(actual.count, expected.count) {
            let a = actual[i], e = expected[i]
            if a == e { continue }  // the common case: identical values (never NaN) are close
            if !a.isFinite || !e.isFinite {
                // NaN or infinity on either side: equal only as NaN/NaN (by policy) or the same infinity.
                if a.isNaN && e.isNaN && policy == .equalNaN { continue }
                mismatched += 1
                nonFinite += 1
                if firstNonFinite < 0 { firstNonFinite = i }
                continue
            }
            let absd = Swift.abs(a - e)
            let close = absd <= tol.atol + tol.rtol * Swift.abs(e)
            if !close { mismatched += 1 }
            if absd > maxAbs || (maxAbsAt < 0 && !close && absd >= maxAbs) { maxAbs = absd; maxAbsAt = i }
            let rel = e == 0 ? Double.infinity : absd / Swift.abs(e)
            if rel > maxRel { maxRel = rel; maxRelAt = i }
            let w = absd / Swift.max(Swift.abs(e), floor)
            if w > worst { worst = w }
            let u = ulp32 ? ulpDistance32(Float(a), Float(e)) : ulpDistance(a, e)
            if u > maxULP { maxULP = u }
        }
        report.count += expected.count
        report.mismatched += mismatched
        if nonFinite > 0 {
            if report.nonFiniteMismatched == 0 {
                report.firstNonFiniteIndex = Tensor.unravel(offset + firstNonFinite, shape: shape)
                report.firstNonFiniteValues = [actual[firstNonFinite], expected[firstNonFinite]]
            }
            report.nonFiniteMismatched += nonFinite
            worst = .infinity
        }
        if maxAbsAt >= 0 {
            report.maxAbs = maxAbs
            report.maxAbsIndex = Tensor.unravel(offset + maxAbsAt, shape: shape)
            report.maxAbsValues = [actual[maxAbsAt], expected[maxAbsAt]]
        }
        if maxRelAt >= 0 { report.maxRel = maxRel; report.maxRelIndex = Tensor.unravel(offset + maxRelAt, shape: shape) }
        report.worstRelError = worst
        if report.maxULP != nil { report.maxULP = maxULP }
    }

    public mutating func add(actual: [Double], expected: [Double], offset: Int = 0) {
        actual.withUnsafeBufferPointer { a in expected.withUnsafeBufferPointer { e in add(actual: a, expected: e, offset: offset) } }
    }
}

public enum Compare {
    /// Whether a pair of dtypes compares exactly (integers and bools).
    public static func isExact(_ d: DType) -> Bool { d.isInteger || d == .bool }

    /// The tolerance to use: Float32 actual data against a Float64 golden is judged by Float32 tolerances
    /// (never tighter than the protocol's).
    /// `widen` says which of the two may be raised (an explicit user tolerance never is).
    public static func tolerance(_ base: Tolerance, actual: DType, expected: DType,
                                 widen: (rtol: Bool, atol: Bool) = (true, true)) -> Tolerance {
        if actual == .float32 || expected == .float32 {
            return Tolerance(rtol: widen.rtol ? Swift.max(base.rtol, Tolerance.float32.rtol) : base.rtol,
                             atol: widen.atol ? Swift.max(base.atol, Tolerance.float32.atol) : base.atol)
        }
        return base
    }

    /// Compares whole in-memory arrays.
    public static func arrays(name: String, actual: [Double], actualShape: [Int], actualDType: DType = .float64,
                              expected: [Double], expectedShape: [Int], expectedDType: DType = .float64,
                              tolerance: Tolerance = .float64, nanPolicy: NaNPolicy = .equalNaN) -> ComparisonReport {
        let exact = isExact(expectedDType)
        var c = Comparator(name: name, actualShape: actualShape, expectedShape: expectedShape,
                           actualDType: actualDType.rawValue, expectedDType: expectedDType.rawValue,
                           tolerance: Compare.tolerance(tolerance, actual: actualDType, expected: expectedDType),
                           exact: exact, nanPolicy: nanPolicy)
        if exact && actualDType.isFloatingPoint && !expectedDType.isFloatingPoint {
            // A float result for integer golden data is allowed only if every value is integral.
            if actual.contains(where: { $0.rounded() != $0 }) {
                c.fail("dtype mismatch: golden is \(expectedDType) but actual holds non-integral \(actualDType) values")
            }
        }
        if !exact && !actualDType.isFloatingPoint && expectedDType.isFloatingPoint && actualDType != .bool && !actualDType.isInteger {
            c.fail("dtype mismatch: actual \(actualDType), golden \(expectedDType)")
        }
        if actualShape == expectedShape && actual.count == expected.count { c.add(actual: actual, expected: expected) }
        return c.report
    }
}
