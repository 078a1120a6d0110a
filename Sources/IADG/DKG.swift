// Dynamic Kernel Generator (DKG), IADG §3.1: half of the channels go through instance-adaptive depthwise
// kernels generated from the instance's channel means, the other half through a static 3×3 conv; a 1×1
// conv fuses the two.
//
// Official code: models/dkg_module.py DKGModule.forward (L6–79), instantiated as DKGModule(3, 128, 196,
// m=16, padding=1, stride=1) in the middle block of each Basic_block_gate:
//   X_dyn = X[:, :C/2], X_sta = X[:, C/2:]
//   g = AdaptiveAvgPool2d(1)(X_dyn) → permute(0,2,1,3) → conv_kernel (Conv2d(1, k², 1)) → permute(0,3,2,1)
//   per sample n: K_n = conv_k(ker_n) (Conv2d(1, 1, 1)) reshaped to (C/2, 1, k, k);
//                 Z_dyn[n] = conv2d(pad(X_dyn[n], p), K_n, stride, groups = C/2)
//   Z_sta = conv_static(X_sta) (Conv2d(C/2, C/2, 3, padding 1)); F = fuse(cat[Z_dyn, Z_sta]) (Conv2d(C, P, 1))
// Closed form: K_{n,c} = g_{n,c}·u + v with u = a·w, v = a·β + b·1 (conv_kernel = (w, β), conv_k = (a, b)).
// `self.conv` (C → C/m, 1×1) is defined but never used in forward; it has no parameter here.

import Foundation
import Ops
import Tensor

/// The learnable tensors of one DKG module, as tape variables.
public struct DKGParameters {
    /// conv_kernel: Conv2d(1, k², 1): weight [k², 1, 1, 1], bias [k²].
    public var kernelWeight: Var, kernelBias: Var
    /// conv_k: Conv2d(1, 1, 1): weight [1, 1, 1, 1], bias [1].
    public var kWeight: Var, kBias: Var
    /// conv_static: Conv2d(C/2, C/2, 3, padding 1): weight [C/2, C/2, 3, 3], bias [C/2].
    public var staticWeight: Var, staticBias: Var
    /// fuse: Conv2d(C, P, 1): weight [P, C, 1, 1], bias [P].
    public var fuseWeight: Var, fuseBias: Var

    public init(kernelWeight: Var, kernelBias: Var, kWeight: Var, kBias: Var, staticWeight: Var, staticBias: Var,
                fuseWeight: Var, fuseBias: Var) {
        (self.kernelWeight, self.kernelBias, self.kWeight, self.kBias) = (kernelWeight, kernelBias, kWeight, kBias)
        (self.staticWeight, self.staticBias, self.fuseWeight, self.fuseBias) = (staticWeight, staticBias, fuseWeight, fuseBias)
    }

    /// The parameters under the names the protocols use (prefix + conv_kernel_weight, …).
    public static let names = ["conv_kernel_weight", "conv_kernel_bias", "conv_k_weight", "conv_k_bias",
                               "conv_static_weight", "conv_static_bias", "fuse_weight", "fuse_bias"]

    public init(_ lookup: (String) throws -> Var) throws {
        let v = try DKGParameters.names.map(lookup)
        self.init(kernelWeight: v[0], kernelBias: v[1], kWeight: v[2], kBias: v[3], staticWeight: v[4], staticBias: v[5],
                  fuseWeight: v[6], fuseBias: v[7])
    }
}

public enum DKG {
    /// The DKG forward. Returns the fused output F [N, P, H', W'], the dynamic branch Z_dyn and the
    /// per-instance kernels K [N, C/2, k, k].
    public static func forward(_ x: Var, _ p: DKGParameters, k: Int = 3, padding: Int = 1, stride: Int = 1) throws
        -> (y: Var, dynamic: Var, kernels: Var) {
        let op = "dkg"
        guard x.value.rank == 4 else { throw ShapeError(op, "x must be [N, C, H, W], found \(x.shape)") }
        let (n, c) = (x.shape[0], x.shape[1])
        guard c % 2 == 0, c > 0 else { throw ShapeError(op, "the channel count must be even (split into halves), found \(c)") }
        let half = c / 2
        guard k >= 1 else { throw ShapeError(op, "k must be ≥ 1, found \(k)") }
        let kk = try checkedMul(k, k, op)
        guard p.kernelWeight.shape == [kk, 1, 1, 1], p.kernelBias.shape == [kk] else {
            throw ShapeError(op, "conv_kernel must be weight [\(k * k), 1, 1, 1] and bias [\(k * k)] for k = \(k), found \(p.kernelWeight.shape), \(p.kernelBias.shape)")
        }
        guard p.kWeight.shape == [1, 1, 1, 1], p.kBias.shape == [1] else {
            throw ShapeError(op, "conv_k must be weight [1, 1, 1, 1] and bias [1], found \(p.kWeight.shape), \(p.kBias.shape)")
        }
        let xDyn = try slice(x, axis: 1, 0..<half), xSta = try slice(x, axis: 1, half..<c)
        let g = try adaptiveAvgPool2d(xDyn, outputSize: [1, 1])                                  // [N, C/2, 1, 1]
        let gPerm = try permute(g, [0, 2, 1, 3])                                                  // [N, 1, C/2, 1]
        let ker = try permute(try conv2d(gPerm, weight: p.kernelWeight, bias: p.kernelBias), [0, 3, 2, 1])  // [N, 1, C/2, k²]
        var outs: [Var] = [], kernels: [Var] = []
        for i in 0..<n {
            let gk = try conv2d(try slice(ker, axis: 0, i..<(i + 1)), weight: p.kWeight, bias: p.kBias)  // [1, 1, C/2, k²]
            let kn = try reshape(gk, [half, 1, k, k])
            kernels.append(try reshape(kn, [1, half, k, k]))
            outs.append(try conv2d(try slice(xDyn, axis: 0, i..<(i + 1)), weight: kn, bias: nil, stride: [stride, stride],
                                   padding: [padding, padding], groups: half))
        }
        let zDyn = try concatenate(outs, axis: 0)
        let zSta = try conv2d(xSta, weight: p.staticWeight, bias: p.staticBias, padding: [1, 1])
        let fused = try conv2d(try concatenate([zDyn, zSta], axis: 1), weight: p.fuseWeight, bias: p.fuseBias)
        return (fused, zDyn, try concatenate(kernels, axis: 0))
    }

    /// The closed form's (u, v): K_{n,c} = g_{n,c}·u + v with u = a·w, v = a·β + b.
    public static func affineKernel(kernelWeight w: Tensor, kernelBias beta: Tensor, kWeight a: Tensor, kBias b: Tensor) -> (u: [Double], v: [Double]) {
        let (av, bv) = (a.data[0], b.data[0])
        return (w.data.map { av * $0 }, beta.data.map { av * $0 + bv })
    }
}
