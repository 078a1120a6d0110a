// A small reverse-mode tape. Each certified op computes its forward value and records a
// vector–Jacobian product (VJP) closure; `gradients(of:wrt:)` runs them in reverse order.
//
//   let tape = Tape()
//   let x = tape.leaf(xTensor), w = tape.leaf(wTensor)
//   let y = try softmax(matmul(x, w), axis: -1)
//   let (gx, gw) = try tape.gradients(of: [(y, cotangent)], wrt: [x, w])

import Tensor

/// The reverse-mode tape. Not thread-safe: use one tape per computation.
public final class Tape: @unchecked Sendable {
    struct Node {
        let parents: [Int]
        /// The cotangent of the result, and which parents need a cotangent, to one cotangent per parent.
        let backward: ((Tensor, [Bool]) throws -> [Tensor?])?
        let shape: [Int]
    }
    private(set) var nodes: [Node] = []

    public init() {}

    /// A leaf variable (an input or parameter).
    public func leaf(_ value: Tensor) -> Var {
        nodes.append(Node(parents: [], backward: nil, shape: value.shape))
        return Var(id: nodes.count - 1, tape: self, value: value)
    }

    /// A constant: a leaf whose gradient is never requested.
    public func constant(_ value: Tensor) -> Var { leaf(value) }

    /// Records an op's result. `backward` maps the cotangent of the result to one cotangent per
    /// parent (nil where a parent receives none).
    public func record(_ value: Tensor, parents: [Var], backward: @escaping (Tensor) throws -> [Tensor?]) -> Var {
        record(value, parents: parents) { g, _ in try backward(g) }
    }

    /// Records an op's result whose VJP can skip work: `backward` also gets, per parent, whether any
    /// requested gradient depends on it (as torch skips `needs_input_grad`), and may return nil for the
    /// others, e.g. no ∂x = G·W for a network's input.
    public func record(_ value: Tensor, parents: [Var], backward: @escaping (Tensor, [Bool]) throws -> [Tensor?]) -> Var {
        for p in parents { precondition(p.tape === self, "Var from another tape") }
        nodes.append(Node(parents: parents.map(\.id), backward: backward, shape: value.shape))
        return Var(id: nodes.count - 1, tape: self, value: value)
    }

    /// Gradients of Σₖ ⟨outputₖ, cotangentₖ⟩ with respect to each of `wrt` (zeros where unreachable).
    public func gradients(of outputs: [(Var, Tensor)], wrt: [Var]) throws -> [Tensor] {
        var grads: [Int: Tensor] = [:]
        for (v, c) in outputs {
            guard c.shape == v.value.shape else {
                throw ShapeError("gradients", "cotangent shape \(c.shape) does not match output shape \(v.value.shape)")
            }
            grads[v.id] = try grads[v.id].map { try $0 + c } ?? c
        }
        let low = wrt.map(\.id).min() ?? 0
        guard let top = grads.keys.max() else { return wrt.map { Tensor(zeros: $0.value.shape) } }
        // needed[i]: some requested gradient depends on node i's cotangent (i is in wrt, or a parent of i is
        // needed). A node none of whose parents is needed is not run, and a VJP is told which parents to skip.
        let wrtIDs = Set(wrt.map(\.id))
        var needed = [Bool](repeating: false, count: top + 1)
        for v in wrt where v.id <= top { needed[v.id] = true }
        if low <= top {
            for i in low...top where !needed[i] { needed[i] = nodes[i].parents.contains { needed[$0] } }
        }
        var i = top
        while i >= low {
            defer { i -= 1 }
            guard let g = grads[i], let bw = nodes[i].backward else { continue }
            let needs = nodes[i].parents.map { needed[$0] }
            guard needs.contains(true) else {
                if !wrtIDs.contains(i) { grads[i] = nil }
                continue
            }
            let parentGrads = try bw(g, needs)
            for (p, pg) in zip(nodes[i].parents, parentGrads) {
                guard let pg else { continue }
                guard pg.shape == nodes[p].shape else {
                    throw ShapeError("backward", "gradient of shape \(pg.shape) for a value of shape \(nodes[p].shape)")
                }
                if var existing = grads.removeValue(forKey: p) {
                    // In place (no temporary) when the accumulator's storage is not shared.
                    existing.data.withUnsafeMutableBufferPointer { e in
                        pg.data.withUnsafeBufferPointer { d in for j in 0..<e.count { e[j] += d[j] } }
                    }
                    grads[p] = existing
                } else {
                    grads[p] = pg
                }
            }
            if !wrtIDs.contains(i) { grads[i] = nil }
        }
        return wrt.map { grads[$0.id] ?? Tensor(zeros: $0.value.shape) }
    }

    /// Convenience: gradient of a scalar output.
    public func gradients(of output: Var, wrt: [Var]) throws -> [Tensor] {
        try gradients(of: [(output, Tensor(ones: output.value.shape))], wrt: wrt)
    }
}

/// A value on a tape.
public struct Var: @unchecked Sendable {
    public let id: Int
    public unowned let tape: Tape
    public let value: Tensor
    public var shape: [Int] { value.shape }
}

/// Checks that all vars share a tape; returns it.
@inline(__always)
func sameTape(_ op: String, _ vs: Var...) throws -> Tape {
    let t = vs[0].tape
    for v in vs.dropFirst() where v.tape !== t {
        throw ShapeError(op, "operands come from different tapes")
    }
    return t
}
