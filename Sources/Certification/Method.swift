// A certified method as the registry knows it: how to compute its outputs from a case on a tape,
// and which property checks it has. Every consumer (tests, `certify run`, `eval`) reaches a method
// through `Registry`, so there is exactly one path from inputs to outputs.

import Foundation
import Ops
import Tensor

/// What a method's `build` sees: the case data and a tape. Names listed under the protocol's
/// `grads` are leaves whose gradients are taken; every other tensor enters as a constant.
public final class Context: @unchecked Sendable {
    public let tape: Tape
    public internal(set) var data: CaseData
    public let differentiable: Set<String>
    private(set) var leaves: [String: Var] = [:]

    public init(data: CaseData, differentiable: Set<String>) {
        self.tape = Tape()
        self.data = data
        self.differentiable = differentiable
    }

    /// An input or param as a tape variable (a leaf when differentiable, else a constant).
    public func v(_ name: String) throws -> Var {
        if let l = leaves[name] { return l }
        let t = try data.tensor(name)
        let v = tape.leaf(t)
        if differentiable.contains(name) { leaves[name] = v }
        return v
    }

    /// Optional variant: nil when the case has no such dataset.
    public func optionalV(_ name: String) throws -> Var? { data.has(name) ? try v(name) : nil }

    /// A constant on this tape.
    public func constant(_ t: Tensor) -> Var { tape.constant(t) }

    public func int(_ n: String) throws -> Int { try data.int(n) }
    public func int(_ n: String, default d: Int) throws -> Int { try data.int(n, default: d) }
    public func ints(_ n: String) throws -> [Int] { try data.ints(n) }
    public func double(_ n: String) throws -> Double { try data.double(n) }
    public func double(_ n: String, default d: Double) throws -> Double { try data.double(n, default: d) }
    public func bool(_ n: String) throws -> Bool { try data.bool(n) }
    public func bool(_ n: String, default d: Bool) throws -> Bool { try data.bool(n, default: d) }
    public func tensor(_ n: String) throws -> Tensor { try data.tensor(n) }

    func leaf(_ name: String) throws -> Var { try v(name) }
}

/// A property of the mathematics, checked on random instances drawn from the suite's RNG.
/// `check` throws `PropertyFailure` (or any error) when the property does not hold.
public struct Property: Sendable {
    public var id: String
    public var check: @Sendable (inout RNG) throws -> Void
    public init(_ id: String, _ check: @escaping @Sendable (inout RNG) throws -> Void) {
        self.id = id
        self.check = check
    }
}

public struct PropertyFailure: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Asserts within a property: throws with the message when `cond` is false.
public func require(_ cond: @autoclosure () throws -> Bool, _ message: @autoclosure () -> String) throws {
    if try !cond() { throw PropertyFailure(message()) }
}

/// Asserts two tensors agree to a tolerance within a property.
public func requireClose(_ actual: Tensor, _ expected: Tensor, _ tol: Tolerance = Tolerance(rtol: 1e-10, atol: 1e-12),
                         _ what: String) throws {
    let r = Compare.arrays(name: what, actual: actual.data, actualShape: actual.shape,
                           expected: expected.data, expectedShape: expected.shape, tolerance: tol)
    if !r.passed { throw PropertyFailure(r.description) }
}

/// One registered method.
public struct Method: Sendable {
    public var id: String
    /// Computes the named outputs on the context's tape.
    public var build: @Sendable (Context) throws -> [String: Var]
    public var properties: [Property]
    /// Whether inputs may hold non-finite values (default: finite values required).
    public var allowsNonFinite: Bool

    public init(_ id: String, properties: [Property] = [], allowsNonFinite: Bool = false,
                build: @escaping @Sendable (Context) throws -> [String: Var]) {
        self.id = id
        self.build = build
        self.properties = properties
        self.allowsNonFinite = allowsNonFinite
    }

    /// Outputs and (when the case has cotangents) gradients of Σ outputs ⊙ cotangents w.r.t. `wrt`.
    /// When `data.declared` is set, reading any other name is an `UndeclaredReadError`.
    public func evaluate(_ data: CaseData, wrt: [String]) throws -> (outputs: [String: Tensor], grads: [String: Tensor]) {
        if !allowsNonFinite { try data.requireFinite() }
        // A fresh log for this build, attached after the gradient leaves are taken: the names it
        // records are the ones the method itself reads.
        let outer = data.log, log = ReadLog()
        var plain = data
        plain.log = nil
        let ctx = Context(data: plain, differentiable: Set(wrt))
        let leaves = try wrt.filter { plain.holds($0) && (plain.declared?.contains($0) ?? true) }.map { ($0, try ctx.leaf($0)) }
        ctx.data.log = log
        func undeclared() -> UndeclaredReadError? {
            outer?.merge(log)
            guard !log.undeclared.isEmpty else { return nil }
            return UndeclaredReadError(method: id, names: log.undeclared.sorted(), file: data.declared?.file ?? "the protocol")
        }
        let outs: [String: Var]
        do { outs = try build(ctx) } catch {
            if let u = undeclared() { throw u }
            // An op rejected the case's data: name the file and case as well as the op and shapes.
            if let e = error as? ShapeError { throw InputError(file: data.source, object: "/\(data.name)", "\(e) (inputs: \(shapeSummary(data)))") }
            throw error
        }
        if let u = undeclared() { throw u }
        let values = outs.mapValues(\.value)
        guard !data.cotangents.isEmpty, !leaves.isEmpty else { return (values, [:]) }
        var pairs: [(Var, Tensor)] = []
        for (name, cot) in data.cotangents.sorted(by: { $0.key < $1.key }) {
            guard let out = outs[name] else {
                throw InputError(file: data.source, object: "/\(data.name)/cotangents/\(name)",
                                 "cotangent for '\(name)', which is not an output of \(id) (outputs: \(outs.keys.sorted()))")
            }
            guard out.shape == cot.shape else {
                throw InputError(file: data.source, object: "/\(data.name)/cotangents/\(name)",
                                 "expected shape \(out.shape) (the output's), found \(cot.shape)")
            }
            pairs.append((out, cot))
        }
        let g = try ctx.tape.gradients(of: pairs, wrt: leaves.map(\.1))
        var grads: [String: Tensor] = [:]
        for ((name, _), t) in zip(leaves, g) { grads[name] = t }
        return (values, grads)
    }
}

func shapeSummary(_ d: CaseData) -> String {
    truncatedList((d.inputs.merging(d.params) { a, _ in a }).sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.shape)" })
}

/// At most `limit` items (each cut to 80 characters), then "… and N more": one-line messages stay short.
public func truncatedList(_ items: [String], limit: Int = 8) -> String {
    let shown = items.prefix(limit).map { $0.count > 80 ? String($0.prefix(79)) + "…" : $0 }
    return shown.joined(separator: ", ") + (items.count > limit ? ", … and \(items.count - limit) more" : "")
}

/// Every method the suite certifies, by protocol id. Paper modules add theirs at start-up
/// through `Registry.register`; `CertifyMethods.registerAll()` does it for all of them.
public final class Registry: @unchecked Sendable {
    public static let shared = Registry()
    private var methods: [String: Method] = [:]
    private let lock = NSLock()

    public func register(_ m: Method) {
        lock.lock()
        defer { lock.unlock() }
        methods[m.id] = m
    }

    public func method(_ id: String) throws -> Method {
        lock.lock()
        defer { lock.unlock() }
        guard let m = methods[id] else { throw ProtocolError(file: "registry", "no reference implementation registered for '\(id)'") }
        return m
    }

    public var ids: [String] {
        lock.lock()
        defer { lock.unlock() }
        return methods.keys.sorted()
    }
}
