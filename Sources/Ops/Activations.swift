// Elementwise activations as torch: relu, leaky_relu, sigmoid, tanh, gelu (erf and tanh forms),
// softplus. Each forward and VJP follows the formula of PyTorch's CPU kernel, including its
// choices at the kinks (relu′(0) = 0, leaky_relu′(0) = negative_slope, strict softplus threshold).

import Foundation
import Tensor

/// Records y = f(x) elementwise with the VJP ∂x = g·df(x, y), over unsafe buffers.
@inline(__always)
func activationRecord(_ x: Var, _ f: (Double) -> Double, _ df: @escaping (Double, Double) -> Double) -> Var {
    let xd = x.value.data
    let n = xd.count
    let y = [Double](unsafeUninitializedCapacity: n) { buf, count in
        xd.withUnsafeBufferPointer { xb in
            for i in 0..<n { buf[i] = f(xb[i]) }
        }
        count = n
    }
    let shape = x.shape
    return x.tape.record(Tensor(unchecked: shape, y), parents: [x]) { g in
        let gd = g.data
        let dx = [Double](unsafeUninitializedCapacity: n) { buf, count in
            gd.withUnsafeBufferPointer { gb in
                xd.withUnsafeBufferPointer { xb in
                    y.withUnsafeBufferPointer { yb in
                        for i in 0..<n { buf[i] = gb[i] * df(xb[i], yb[i]) }
                    }
                }
            }
            count = n
        }
        return [Tensor(unchecked: shape, dx)]
    }
}

/// torch.nn.functional.relu: y = max(x, 0); the gradient passes only where x > 0 (0 at x = 0,
/// PyTorch's threshold_backward).
public func relu(_ x: Var) -> Var {
    activationRecord(x, { $0 > 0 ? $0 : 0 }, { x, _ in x > 0 ? 1 : 0 })
}

/// torch.nn.functional.leaky_relu(x, negative_slope): y = x if x > 0 else negative_slope·x;
/// dy/dx = 1 if x > 0 else negative_slope (negative_slope at x = 0, as leaky_relu_backward).
public func leakyRelu(_ x: Var, negativeSlope: Double = 0.01) throws -> Var {
    guard negativeSlope.isFinite else { throw ShapeError("leaky_relu", "negative_slope must be finite, got \(negativeSlope)") }
    return activationRecord(x, { $0 > 0 ? $0 : $0 * negativeSlope }, { x, _ in x > 0 ? 1 : negativeSlope })
}

/// σ(x) = 1/(1 + exp(−x)) (torch.sigmoid's formula).
@inline(__always)
public func sigmoidValue(_ x: Double) -> Double { 1.0 / (1.0 + Foundation.exp(-x)) }

/// torch.sigmoid: y = 1/(1 + exp(−x)); dy/dx = (1 − y)·y from the rounded output y (PyTorch's
/// sigmoid_backward), so it is exactly 0 where y rounds to 1.
public func sigmoid(_ x: Var) -> Var {
    activationRecord(x, sigmoidValue, { _, y in (1 - y) * y })
}

/// torch.tanh: y = tanh(x) (libm, relatively accurate near 0); dy/dx = 1 − y².
public func tanh(_ x: Var) -> Var {
    activationRecord(x, { Foundation.tanh($0) }, { _, y in 1 - y * y })
}

/// torch.nn.functional.gelu(x, approximate=):
///   exact (default): y = x·Φ(x) = 0.5·x·(1 + erf(x/√2)); dy/dx = Φ(x) + x·φ(x);
///   tanhApproximation: y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), derivative as PyTorch's
///   GeluBackward (tanh) kernel.
public func gelu(_ x: Var, tanhApproximation: Bool = false) -> Var {
    let sqrt1_2 = 0.70710678118654752440  // M_SQRT1_2
    if !tanhApproximation {
        let kAlpha = 0.5 * 1.12837916709551257390 * sqrt1_2  // M_2_SQRTPI·M_SQRT1_2·0.5 = 1/√(2π)
        return activationRecord(x, { x in x * 0.5 * (1 + Foundation.erf(x * sqrt1_2)) }, { x, _ in
            let cdf = 0.5 * (1 + Foundation.erf(x * sqrt1_2))
            let pdf = Foundation.exp(-0.5 * x * x) * kAlpha
            return cdf + x * pdf
        })
    }
    let kBeta = 1.41421356237309504880 * 1.12837916709551257390 * 0.5  // M_SQRT2·M_2_SQRTPI·0.5 = √(2/π)
    let kKappa = 0.044715
    return activationRecord(x, { x in
        let inner = kBeta * (x + kKappa * (x * x * x))
        return 0.5 * x * (1 + Foundation.tanh(inner))
    }, { x, _ in
        let xSq = x * x
        let inner = kBeta * (x + kKappa * (xSq * x))
        let t = Foundation.tanh(inner)
        let left = 0.5 * x, right = 1 + t
        let rightDerivative = 1 - t * t
        let innerDerivative = kBeta * (1 + 3 * kKappa * xSq)
        return 0.5 * right + left * rightDerivative * innerDerivative
    })
}

/// torch.nn.functional.softplus(x, beta, threshold): y = x if beta·x > threshold (strict) else
/// log1p(exp(beta·x))/beta; dy/dx = 1 above the threshold else z/(z + 1), z = exp(beta·x).
public func softplus(_ x: Var, beta: Double = 1, threshold: Double = 20) throws -> Var {
    guard beta.isFinite, beta != 0 else { throw ShapeError("softplus", "beta must be finite and non-zero, got \(beta)") }
    guard !threshold.isNaN else { throw ShapeError("softplus", "threshold is NaN") }
    return activationRecord(x, { x in
        x * beta > threshold ? x : Foundation.log1p(Foundation.exp(x * beta)) / beta
    }, { x, _ in
        if x * beta > threshold { return 1 }
        let z = Foundation.exp(x * beta)
        return z / (z + 1)
    })
}
