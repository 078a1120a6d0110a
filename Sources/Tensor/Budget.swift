// The one place where sizes computed from user data are checked: overflow-checked arithmetic,
// guarded Double → Int conversions, and the memory budget.
//
// Every size that comes from a file, a param or a command-line option goes through these helpers
// before anything is allocated, so absurd values (1e12, 2⁶², NaN, −1) become a thrown error instead
// of a trap or an allocation the machine cannot hold.
//
// The budget (`Budget.maxBytes`) is the most one computation step may allocate from user-supplied
// sizes. Default: an eighth of physical memory; `CERTIFY_MAX_MEMORY` or `--max-memory` (e.g. 2G,
// 512M, 1e9) override it. The same budget bounds long computations: an estimated number of basic
// operations above `operationsPerByte` (256) per byte of budget is refused too (a few minutes of
// one core per GB of budget).

import Foundation

public enum Budget {
    /// Default share of physical memory.
    public static let defaultFraction = 0.125
    /// Environment variable that overrides the default.
    public static let environmentVariable = "CERTIFY_MAX_MEMORY"

    private static let lock = NSLock()
    nonisolated(unsafe) private static var explicitBytes: Int?

    /// The budget in bytes: an explicit setting, else `CERTIFY_MAX_MEMORY`, else a quarter of physical memory.
    public static var maxBytes: Int {
        get {
            lock.lock()
            defer { lock.unlock() }
            if let b = explicitBytes { return b }
            if let s = ProcessInfo.processInfo.environment[environmentVariable], let b = parse(s) { return b }
            return defaultBytes
        }
        set {
            lock.lock()
            defer { lock.unlock() }
            explicitBytes = newValue
        }
    }

    /// Operations allowed per byte of budget by `requireWork`.
    public static let operationsPerByte = 256.0

    /// An eighth of physical memory.
    public static var defaultBytes: Int {
        let phys = Double(ProcessInfo.processInfo.physicalMemory)
        return Swift.max(1 << 26, Int(exactly: (phys * defaultFraction).rounded(.down)) ?? Int.max / 2)
    }

    /// Resets an explicit setting (tests).
    public static func reset() {
        lock.lock()
        defer { lock.unlock() }
        explicitBytes = nil
    }

    /// Parses a size: a number of bytes with an optional K, M, G or T suffix (powers of 1024), e.g. `2G`, `512M`, `1e9`.
    public static func parse(_ text: String) -> Int? {
        var s = text.trimmingCharacters(in: .whitespaces).uppercased()
        if s.hasSuffix("IB") { s.removeLast(2) } else if s.hasSuffix("B") { s.removeLast() }
        var scale = 1.0
        if let last = s.last, let i = "KMGT".firstIndex(of: last) {
            scale = Foundation.pow(1024, Double("KMGT".distance(from: "KMGT".startIndex, to: i) + 1))
            s.removeLast()
        }
        guard let v = Double(s), v.isFinite, v > 0, let b = Int(exactly: (v * scale).rounded(.down)), b > 0 else { return nil }
        return b
    }

    /// A byte count in readable form: 687 GB, 5.3 GB, 120 MB.
    public static func format(_ bytes: Double) -> String {
        let units = ["bytes", "KB", "MB", "GB", "TB", "PB", "EB"]
        var v = bytes, u = 0
        while v >= 1000 && u < units.count - 1 { v /= 1000; u += 1 }
        if u == 0 { return "\(Int(v)) bytes" }
        return v >= 100 ? String(format: "%.0f %@", v, units[u]) : String(format: "%.3g %@", v, units[u])
    }

    static func overBudget(_ what: String, _ size: String) -> ShapeError {
        ShapeError("memory budget", "\(what) needs \(size), over the budget of \(format(Double(maxBytes))) " +
                   "(raise it with --max-memory or \(environmentVariable))")
    }

    /// Throws when `elements` × `bytesPerElement` bytes exceed the budget. The arithmetic is done in
    /// Double, so no product can overflow.
    public static func require(elements: Double, bytesPerElement: Int = 8, _ what: @autoclosure () -> String) throws {
        let bytes = elements * Double(bytesPerElement)
        guard bytes.isFinite, elements >= 0, bytes <= Double(maxBytes) else {
            throw overBudget(what(), bytes.isFinite ? format(bytes) : "an unrepresentable amount of memory")
        }
    }

    /// Throws when an n-d array of `shape` (elements of `bytesPerElement`) would exceed the budget or
    /// its element count overflows; returns the count.
    @discardableResult
    public static func require(shape: [Int], bytesPerElement: Int = 8, _ what: @autoclosure () -> String) throws -> Int {
        let n = try checkedCount(shape, what())
        try require(elements: Double(n), bytesPerElement: bytesPerElement, "\(what()) (shape \(shape))")
        return n
    }

    /// Throws when an estimated number of basic operations exceeds the budget (`operationsPerByte` per byte).
    public static func requireWork(operations: Double, _ what: @autoclosure () -> String) throws {
        let limit = Double(maxBytes) * operationsPerByte
        guard operations.isFinite, operations <= limit else {
            throw ShapeError("memory budget", "\(what()) needs about \(String(format: "%.2g", operations)) operations, over the budget of " +
                             "\(String(format: "%.2g", limit)) (\(Int(operationsPerByte)) per byte of --max-memory / \(environmentVariable), " +
                             "now \(format(Double(maxBytes))))")
        }
    }
}

// MARK: - checked arithmetic and conversions

/// The product of `dims`, throwing on a negative entry or on overflow.
public func checkedCount(_ dims: [Int], _ what: @autoclosure () -> String) throws -> Int {
    var n = 1
    for d in dims {
        guard d >= 0 else { throw ShapeError(what(), "negative dimension in shape \(dims)") }
        let (p, o) = n.multipliedReportingOverflow(by: d)
        guard !o else { throw ShapeError(what(), "shape \(dims) has more elements than can be counted (overflow)") }
        n = p
    }
    return n
}

/// a × b, throwing on overflow.
public func checkedMul(_ a: Int, _ b: Int, _ what: @autoclosure () -> String) throws -> Int {
    let (p, o) = a.multipliedReportingOverflow(by: b)
    guard !o else { throw ShapeError(what(), "\(a) × \(b) overflows") }
    return p
}

/// a + b, throwing on overflow.
public func checkedAdd(_ a: Int, _ b: Int, _ what: @autoclosure () -> String) throws -> Int {
    let (s, o) = a.addingReportingOverflow(b)
    guard !o else { throw ShapeError(what(), "\(a) + \(b) overflows") }
    return s
}

/// a − b, throwing on overflow.
public func checkedSub(_ a: Int, _ b: Int, _ what: @autoclosure () -> String) throws -> Int {
    let (s, o) = a.subtractingReportingOverflow(b)
    guard !o else { throw ShapeError(what(), "\(a) − \(b) overflows") }
    return s
}

/// Largest magnitude an integer stored as Float64 may have and still be exact (2⁵³).
public let exactIntegerLimit = 9_007_199_254_740_992.0

/// The reason a Double is not an exact integer in range, or nil when `Int(exactly:)` succeeds within `range`.
public func integerProblem(_ v: Double, in range: ClosedRange<Int>? = nil) -> String? {
    if v.isNaN { return "found NaN, expected an integer" }
    if v.isInfinite { return "found \(v > 0 ? "+" : "−")infinity, expected an integer" }
    if v.rounded() != v { return "found \(v), expected an integer" }
    guard Swift.abs(v) <= exactIntegerLimit, let i = Int(exactly: v) else {
        return "found \(v), outside the exactly representable integers (|x| ≤ 2⁵³)"
    }
    if let r = range, !r.contains(i) {
        return "found \(i), expected \(r.upperBound == Int.max ? "an integer ≥ \(r.lowerBound)" : "an integer in \(r.lowerBound)…\(r.upperBound)")"
    }
    return nil
}

/// `Int(v)` for a Double from user data: NaN, infinities, fractions and out-of-range values throw.
public func checkedInt(_ v: Double, in range: ClosedRange<Int>? = nil, _ what: @autoclosure () -> String) throws -> Int {
    if let p = integerProblem(v, in: range) { throw ShapeError(what(), p) }
    return Int(v)
}
