// Resizing to a given output size: torch.nn.functional.interpolate(x, size=..., mode='bilinear' | 'nearest').
// Index and weight rules follow ATen's CPU kernels (UpSample.h, UpSampleKernel.cpp), Float32 floors included.

import Tensor

/// For each output index along one axis: the two source indices and their weights, as ATen's
/// compute_source_index_and_lambda (linear modes, no scale_factor): a same-size axis is copied; otherwise
/// src = align_corners ? d·(in−1)/(out−1) : max((d + ½)·in/out − ½, 0), i0 = min(⌊Float32(src)⌋, in − 1),
/// λ1 = clamp(src − i0, 0, 1), i1 = i0 + 1 unless i0 is the last index.
private func linearTaps(input: Int, output: Int, alignCorners: Bool) -> [(i0: Int, i1: Int, l0: Double, l1: Double)] {
    if input == output { return (0..<output).map { ($0, $0, 1, 0) } }
    let scale: Double = alignCorners ? (output > 1 ? Double(input - 1) / Double(output - 1) : 0) : Double(input) / Double(output)
    return (0..<output).map { d in
        let src = alignCorners ? scale * Double(d) : Swift.max(scale * (Double(d) + 0.5) - 0.5, 0)
        let i0 = Swift.min(Int(Float(src).rounded(.down)), input - 1)
        let l1 = Swift.min(Swift.max(src - Double(i0), 0), 1)
        return (i0, i0 + (i0 < input - 1 ? 1 : 0), 1 - l1, l1)
    }
}

/// Nearest source indices along one axis (mode 'nearest', ATen's HelperInterpNearest):
/// src(d) = min(⌊Float32(d · in/out)⌋, in − 1), with in/out and the product in Float64.
private func nearestIndices(input: Int, output: Int) -> [Int] {
    let scale = Double(input) / Double(output)
    return (0..<output).map { d in Swift.min(Int(Float(scale * Double(d)).rounded(.down)), input - 1) }
}

/// Checks size against the spatial axes of x (the axes after N and C).
private func resizeCheck(_ op: String, _ x: [Int], _ size: [Int], spatial: [Int]) throws {
    guard spatial.contains(x.count - 2) else {
        let want = spatial.map { "\($0 + 2)" }.joined(separator: " or ")
        throw ShapeError(op, "x must have rank \(want) ([N, C, spatial…]), got shape \(x)")
    }
    guard size.count == x.count - 2 else {
        throw ShapeError(op, "size \(size) must have one entry per spatial axis of x (shape \(x))")
    }
    guard size.allSatisfy({ $0 > 0 }) else { throw ShapeError(op, "size must be positive, got \(size) (x shape \(x))") }
    guard x[2...].allSatisfy({ $0 > 0 }) else { throw ShapeError(op, "spatial axes of x must be non-empty, got shape \(x)") }
    try Budget.require(shape: Array(x[..<2]) + size, "\(op)'s output")
}

/// Bilinear resize, torch.nn.functional.interpolate(x, size, mode='bilinear', align_corners):
/// y[n, c, i, j] = λh0(λw0·x[h0, w0] + λw1·x[h0, w1]) + λh1(λw0·x[h1, w0] + λw1·x[h1, w1]) with per-axis taps
/// from ATen's rule (scale = in/out, no antialiasing). x is [N, C, H, W]. VJP: the same weights scatter the
/// cotangent back onto the four source pixels.
public func interpolateBilinear(_ x: Var, size: [Int], alignCorners: Bool = false) throws -> Var {
    let op = "interpolate_bilinear"
    try resizeCheck(op, x.shape, size, spatial: [2])
    let (h, w, ho, wo) = (x.shape[2], x.shape[3], size[0], size[1])
    let planes = x.shape[0] * x.shape[1]
    let th = linearTaps(input: h, output: ho, alignCorners: alignCorners)
    let tw = linearTaps(input: w, output: wo, alignCorners: alignCorners)
    var y = [Double](repeating: 0, count: planes * ho * wo)
    x.value.data.withUnsafeBufferPointer { px in
        for p in 0..<planes {
            let xb = p * h * w
            for (i, a) in th.enumerated() {
                let r0 = xb + a.i0 * w, r1 = xb + a.i1 * w
                for (j, b) in tw.enumerated() {
                    let t0 = b.l0 * px[r0 + b.i0] + b.l1 * px[r0 + b.i1]
                    let t1 = b.l0 * px[r1 + b.i0] + b.l1 * px[r1 + b.i1]
                    y[(p * ho + i) * wo + j] = a.l0 * t0 + a.l1 * t1
                }
            }
        }
    }
    let xs = x.shape
    return x.tape.record(Tensor(unchecked: [xs[0], xs[1], ho, wo], y), parents: [x]) { g in
        var gx = [Double](repeating: 0, count: planes * h * w)
        g.data.withUnsafeBufferPointer { pg in
            for p in 0..<planes {
                let xb = p * h * w
                for (i, a) in th.enumerated() {
                    let r0 = xb + a.i0 * w, r1 = xb + a.i1 * w
                    for (j, b) in tw.enumerated() {
                        let v = pg[(p * ho + i) * wo + j]
                        gx[r0 + b.i0] += a.l0 * b.l0 * v
                        gx[r0 + b.i1] += a.l0 * b.l1 * v
                        gx[r1 + b.i0] += a.l1 * b.l0 * v
                        gx[r1 + b.i1] += a.l1 * b.l1 * v
                    }
                }
            }
        }
        return [Tensor(unchecked: xs, gx)]
    }
}

/// Nearest-neighbour resize, torch.nn.functional.interpolate(x, size, mode='nearest') on [N, C, L] or
/// [N, C, H, W]: y[n, c, i, j] = x[n, c, src_h(i), src_w(j)], src(d) = min(⌊Float32(d·in/out)⌋, in − 1)
/// (PyTorch's generic CPU kernel rounds the Float64 product to Float32 before the floor).
/// VJP: each input receives the sum of the cotangents of the outputs that copy it.
public func interpolateNearest(_ x: Var, size: [Int]) throws -> Var {
    let op = "interpolate_nearest"
    try resizeCheck(op, x.shape, size, spatial: [1, 2])
    let xs = x.shape
    let oneD = xs.count == 3
    let (h, w) = oneD ? (1, xs[2]) : (xs[2], xs[3])
    let (ho, wo) = oneD ? (1, size[0]) : (size[0], size[1])
    let planes = xs[0] * xs[1]
    let ih = nearestIndices(input: h, output: ho), iw = nearestIndices(input: w, output: wo)
    var y = [Double](repeating: 0, count: planes * ho * wo)
    x.value.data.withUnsafeBufferPointer { px in
        for p in 0..<planes {
            for i in 0..<ho {
                let r = p * h * w + ih[i] * w, o = (p * ho + i) * wo
                for j in 0..<wo { y[o + j] = px[r + iw[j]] }
            }
        }
    }
    return x.tape.record(Tensor(unchecked: [xs[0], xs[1]] + size, y), parents: [x]) { g in
        var gx = [Double](repeating: 0, count: planes * h * w)
        g.data.withUnsafeBufferPointer { pg in
            for p in 0..<planes {
                for i in 0..<ho {
                    let r = p * h * w + ih[i] * w, o = (p * ho + i) * wo
                    for j in 0..<wo { gx[r + iw[j]] += pg[o + j] }
                }
            }
        }
        return [Tensor(unchecked: xs, gx)]
    }
}
