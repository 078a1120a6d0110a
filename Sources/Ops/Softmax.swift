// Softmax and log-softmax over one axis, as torch.softmax / torch.log_softmax.

import Foundation
import Tensor

extension Tensor {
    /// softmax(x)ᵢ = exp(xᵢ − max x) / Σⱼ exp(xⱼ − max x) along `axis`.
    public func softmax(axis: Int) throws -> Tensor {
        let a = try Tensor.axis(axis, rank: rank, op: "softmax")
        let m = try self.max(axes: [a], keepDims: true)
        let e = try (self - m).map { Foundation.exp($0) }
        return try e / e.sum(axes: [a], keepDims: true)
    }
}

/// softmax along `axis`. VJP: ∂x = y ⊙ (g − Σ g ⊙ y).
public func softmax(_ x: Var, axis: Int) throws -> Var {
    let a = try Tensor.axis(axis, rank: x.value.rank, op: "softmax")
    let y = try x.value.softmax(axis: a)
    return x.tape.record(y, parents: [x]) { g in
        let s = try (g * y).sum(axes: [a], keepDims: true)
        return [try y * (g - s)]
    }
}

/// log_softmax along `axis`: x − max − log Σ exp(x − max). VJP: ∂x = g − softmax(x)·Σ g.
public func logSoftmax(_ x: Var, axis: Int) throws -> Var {
    let a = try Tensor.axis(axis, rank: x.value.rank, op: "log_softmax")
    let m = try x.value.max(axes: [a], keepDims: true)
    let shifted = try x.value - m
    let lse = try shifted.map { Foundation.exp($0) }.sum(axes: [a], keepDims: true).map { Foundation.log($0) }
    let y = try shifted - lse
    return x.tape.record(y, parents: [x]) { g in
        let p = y.map { Foundation.exp($0) }
        return [try g - p * g.sum(axes: [a], keepDims: true)]
    }
}
