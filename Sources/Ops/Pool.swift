// Pooling: torch.nn.functional.max_pool2d, avg_pool2d, adaptive_avg_pool1d, adaptive_avg_pool2d.
// All operate on "planes": every leading axis (N, C) is flattened, the last one or two axes are
// spatial.

import Tensor

/// Checks a [N, C, H, W] or [C, H, W] input and returns (planes, H, W).
private func poolPlanes2d(_ op: String, _ shape: [Int]) throws -> (Int, Int, Int) {
    guard shape.count == 3 || shape.count == 4 else {
        throw ShapeError(op, "x must have rank 3 or 4 ([C, H, W] or [N, C, H, W]), got shape \(shape)")
    }
    let h = shape[shape.count - 2], w = shape[shape.count - 1]
    guard h > 0, w > 0 else { throw ShapeError(op, "spatial size must be non-empty, got x shape \(shape)") }
    return (shape.dropLast(2).reduce(1, *), h, w)
}

/// PyTorch's pooling_output_shape: ⌊(in + 2p − d(k−1) − 1 [+ s − 1 with ceil_mode])/s⌋ + 1, and with
/// ceil_mode the last window must start inside the input or its left padding.
private func pooledSize(_ input: Int, kernel: Int, stride: Int, pad: Int, dilation: Int, ceil: Bool) -> Int {
    let num = input + 2 * pad - dilation * (kernel - 1) - 1 + (ceil ? stride - 1 : 0)
    var out = (num >= 0 ? num / stride : -((-num + stride - 1) / stride)) + 1
    if ceil && (out - 1) * stride >= input + pad { out -= 1 }
    return out
}

/// Checks kernel/stride/padding/dilation lists of length 2 (PyTorch's pool2d_shape_check) and returns
/// the output size.
private func poolGeometry(_ op: String, x: [Int], h: Int, w: Int, kernel: [Int], stride: [Int], padding: [Int],
                          dilation: [Int], ceil: Bool) throws -> (Int, Int) {
    for (name, v) in [("kernel_size", kernel), ("stride", stride), ("padding", padding), ("dilation", dilation)] {
        guard v.count == 2 else { throw ShapeError(op, "\(name) must have 2 entries, got \(v)") }
    }
    guard kernel.allSatisfy({ $0 > 0 }) else { throw ShapeError(op, "kernel_size must be positive, got \(kernel)") }
    guard stride.allSatisfy({ $0 > 0 }) else { throw ShapeError(op, "stride must be positive, got \(stride)") }
    guard dilation.allSatisfy({ $0 > 0 }) else { throw ShapeError(op, "dilation must be positive, got \(dilation)") }
    guard padding.allSatisfy({ $0 >= 0 }), padding[0] <= kernel[0] / 2, padding[1] <= kernel[1] / 2 else {
        throw ShapeError(op, "padding \(padding) must be non-negative and at most half of kernel_size \(kernel) (x shape \(x))")
    }
    let ho = pooledSize(h, kernel: kernel[0], stride: stride[0], pad: padding[0], dilation: dilation[0], ceil: ceil)
    let wo = pooledSize(w, kernel: kernel[1], stride: stride[1], pad: padding[1], dilation: dilation[1], ceil: ceil)
    guard ho >= 1, wo >= 1 else {
        throw ShapeError(op, "kernel_size \(kernel) (dilation \(dilation)) is larger than the padded input (x shape \(x), padding \(padding)): output would be \(ho)×\(wo)")
    }
    return (ho, wo)
}

/// 2-D max pooling, torch.nn.functional.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode):
/// y[n, c, i, j] = max_{a<kH, b<kW} xpad[n, c, i·s_h − p_h + a·d_h, j·s_w − p_w + b·d_w], padding is −∞.
/// `stride` nil means stride = kernel_size. VJP: each output's cotangent goes to the first arg-max of its window
/// (a NaN wins, the last one in a window, as in PyTorch).
public func maxPool2d(_ x: Var, kernelSize: [Int], stride: [Int]? = nil, padding: [Int] = [0, 0],
                      dilation: [Int] = [1, 1], ceilMode: Bool = false) throws -> Var {
    let op = "max_pool2d"
    let (planes, h, w) = try poolPlanes2d(op, x.shape)
    let st = stride ?? kernelSize
    let (ho, wo) = try poolGeometry(op, x: x.shape, h: h, w: w, kernel: kernelSize, stride: st, padding: padding,
                                    dilation: dilation, ceil: ceilMode)
    let (kh, kw, sh, sw, ph, pw, dh, dw) = (kernelSize[0], kernelSize[1], st[0], st[1], padding[0], padding[1], dilation[0], dilation[1])
    var y = [Double](repeating: 0, count: planes * ho * wo)
    var arg = [Int](repeating: -1, count: planes * ho * wo)
    x.value.data.withUnsafeBufferPointer { px in
        for p in 0..<planes {
            let xb = p * h * w
            for i in 0..<ho {
                for j in 0..<wo {
                    var best = -Double.infinity, bi = -1
                    for a in 0..<kh {
                        let ih = i * sh - ph + a * dh
                        if ih < 0 || ih >= h { continue }
                        for b in 0..<kw {
                            let iw = j * sw - pw + b * dw
                            if iw < 0 || iw >= w { continue }
                            let v = px[xb + ih * w + iw]
                            // PyTorch: (val > maxval) || isnan(val), starting at the first valid cell.
                            if bi < 0 || v > best || v.isNaN {
                                best = v
                                bi = ih * w + iw
                            }
                        }
                    }
                    y[(p * ho + i) * wo + j] = best
                    arg[(p * ho + i) * wo + j] = bi
                }
            }
        }
    }
    var outShape = x.shape
    outShape[outShape.count - 2] = ho
    outShape[outShape.count - 1] = wo
    let xs = x.shape
    return x.tape.record(Tensor(unchecked: outShape, y), parents: [x]) { g in
        var gx = [Double](repeating: 0, count: planes * h * w)
        g.data.withUnsafeBufferPointer { pg in
            for p in 0..<planes {
                for k in 0..<(ho * wo) where arg[p * ho * wo + k] >= 0 {
                    gx[p * h * w + arg[p * ho * wo + k]] += pg[p * ho * wo + k]
                }
            }
        }
        return [Tensor(unchecked: xs, gx)]
    }
}

/// 2-D average pooling, torch.nn.functional.avg_pool2d(x, kernel_size, stride, padding, ceil_mode,
/// count_include_pad, divisor_override): y = Σ_window xpad / D with zero padding; the window is clipped to
/// [−p, in + p) and D is its size (count_include_pad), the number of its cells inside the input (not
/// count_include_pad), or divisor_override. `stride` nil means stride = kernel_size. VJP: ∂x[window] += g / D.
public func avgPool2d(_ x: Var, kernelSize: [Int], stride: [Int]? = nil, padding: [Int] = [0, 0],
                      ceilMode: Bool = false, countIncludePad: Bool = true, divisorOverride: Int? = nil) throws -> Var {
    let op = "avg_pool2d"
    let (planes, h, w) = try poolPlanes2d(op, x.shape)
    let st = stride ?? kernelSize
    if let d = divisorOverride, d == 0 { throw ShapeError(op, "divisor_override must be non-zero") }
    let (ho, wo) = try poolGeometry(op, x: x.shape, h: h, w: w, kernel: kernelSize, stride: st, padding: padding,
                                    dilation: [1, 1], ceil: ceilMode)
    let (kh, kw, sh, sw, ph, pw) = (kernelSize[0], kernelSize[1], st[0], st[1], padding[0], padding[1])
    // Per output row / column: the clipped index range and the padded extent.
    struct Win { var lo, hi, padded: Int }
    func windows(_ n: Int, _ input: Int, _ k: Int, _ s: Int, _ p: Int) -> [Win] {
        (0..<n).map { i in
            let start = i * s - p
            let end = Swift.min(start + k, input + p)
            return Win(lo: Swift.max(start, 0), hi: Swift.min(end, input), padded: end - start)
        }
    }
    let rows = windows(ho, h, kh, sh, ph), cols = windows(wo, w, kw, sw, pw)
    func divisor(_ r: Win, _ c: Win) -> Double {
        if let d = divisorOverride { return Double(d) }
        return Double(countIncludePad ? r.padded * c.padded : (r.hi - r.lo) * (c.hi - c.lo))
    }
    // The divisor of each window, once (not per plane).
    let divisors = rows.map { r in cols.map { c in divisor(r, c) } }
    var y = [Double](repeating: 0, count: planes * ho * wo)
    x.value.data.withUnsafeBufferPointer { px in
        y.withUnsafeMutableBufferPointer { py in
            for p in 0..<planes {
                let xb = p * h * w
                for (i, r) in rows.enumerated() {
                    for (j, c) in cols.enumerated() {
                        if r.lo >= r.hi || c.lo >= c.hi { continue }
                        var s = 0.0
                        for ih in r.lo..<r.hi { for iw in c.lo..<c.hi { s += px[xb + ih * w + iw] } }
                        py[(p * ho + i) * wo + j] = s / divisors[i][j]
                    }
                }
            }
        }
    }
    var outShape = x.shape
    outShape[outShape.count - 2] = ho
    outShape[outShape.count - 1] = wo
    let xs = x.shape
    return x.tape.record(Tensor(unchecked: outShape, y), parents: [x]) { g in
        var gx = [Double](repeating: 0, count: planes * h * w)
        g.data.withUnsafeBufferPointer { pg in
            gx.withUnsafeMutableBufferPointer { pgx in
                for p in 0..<planes {
                    let xb = p * h * w
                    for (i, r) in rows.enumerated() {
                        for (j, c) in cols.enumerated() {
                            if r.lo >= r.hi || c.lo >= c.hi { continue }
                            let v = pg[(p * ho + i) * wo + j] / divisors[i][j]
                            for ih in r.lo..<r.hi { for iw in c.lo..<c.hi { pgx[xb + ih * w + iw] += v } }
                        }
                    }
                }
            }
        }
        return [Tensor(unchecked: xs, gx)]
    }
}

/// Adaptive pooling bins, as ATen's start_index / end_index: bin i covers [⌊i·in/out⌋, ⌈(i+1)·in/out⌉).
private func adaptiveBins(_ input: Int, _ output: Int) -> [(Int, Int)] {
    (0..<output).map { i in ((i * input) / output, ((i + 1) * input + output - 1) / output) }
}

/// Shared adaptive average pooling over the last two axes (h = 1 for the 1-D op).
private func adaptiveAvgPool(_ x: Var, planes: Int, h: Int, w: Int, ho: Int, wo: Int, outShape: [Int]) -> Var {
    let rb = adaptiveBins(h, ho), cb = adaptiveBins(w, wo)
    var y = [Double](repeating: 0, count: planes * ho * wo)
    x.value.data.withUnsafeBufferPointer { px in
        for p in 0..<planes {
            let xb = p * h * w
            for (i, r) in rb.enumerated() {
                for (j, c) in cb.enumerated() {
                    var s = 0.0
                    for ih in r.0..<r.1 { for iw in c.0..<c.1 { s += px[xb + ih * w + iw] } }
                    y[(p * ho + i) * wo + j] = s / Double((r.1 - r.0) * (c.1 - c.0))
                }
            }
        }
    }
    let xs = x.shape
    return x.tape.record(Tensor(unchecked: outShape, y), parents: [x]) { g in
        var gx = [Double](repeating: 0, count: planes * h * w)
        g.data.withUnsafeBufferPointer { pg in
            for p in 0..<planes {
                let xb = p * h * w
                for (i, r) in rb.enumerated() {
                    for (j, c) in cb.enumerated() {
                        let v = pg[(p * ho + i) * wo + j] / Double((r.1 - r.0) * (c.1 - c.0))
                        for ih in r.0..<r.1 { for iw in c.0..<c.1 { gx[xb + ih * w + iw] += v } }
                    }
                }
            }
        }
        return [Tensor(unchecked: xs, gx)]
    }
}

/// 1-D adaptive average pooling, torch.nn.functional.adaptive_avg_pool1d(x, output_size):
/// y[n, c, i] = mean(x[n, c, ⌊i·L/L_out⌋ ..< ⌈(i+1)·L/L_out⌉]); x is [N, C, L] or [C, L].
/// VJP: each output's cotangent is spread evenly over its bin.
public func adaptiveAvgPool1d(_ x: Var, outputSize: Int) throws -> Var {
    let op = "adaptive_avg_pool1d"
    let s = x.shape
    guard s.count == 2 || s.count == 3 else {
        throw ShapeError(op, "x must have rank 2 or 3 ([C, L] or [N, C, L]), got shape \(s)")
    }
    guard let l = s.last, l > 0 else { throw ShapeError(op, "the length axis must be non-empty, got x shape \(s)") }
    guard outputSize > 0 else { throw ShapeError(op, "output_size must be positive, got \(outputSize) (x shape \(s))") }
    let planes = s.dropLast().reduce(1, *)
    try Budget.require(shape: s.dropLast() + [outputSize], "\(op)'s output")
    return adaptiveAvgPool(x, planes: planes, h: 1, w: l, ho: 1, wo: outputSize, outShape: s.dropLast() + [outputSize])
}

/// 2-D adaptive average pooling, torch.nn.functional.adaptive_avg_pool2d(x, output_size):
/// y[n, c, i, j] = mean(x[n, c, ⌊iH/H_out⌋ ..< ⌈(i+1)H/H_out⌉, ⌊jW/W_out⌋ ..< ⌈(j+1)W/W_out⌉]);
/// x is [N, C, H, W] or [C, H, W]. VJP: each output's cotangent is spread evenly over its bin.
public func adaptiveAvgPool2d(_ x: Var, outputSize: [Int]) throws -> Var {
    let op = "adaptive_avg_pool2d"
    let (planes, h, w) = try poolPlanes2d(op, x.shape)
    guard outputSize.count == 2, outputSize.allSatisfy({ $0 > 0 }) else {
        throw ShapeError(op, "output_size must be two positive sizes, got \(outputSize) (x shape \(x.shape))")
    }
    try Budget.require(shape: x.shape.dropLast(2) + outputSize, "\(op)'s output")
    return adaptiveAvgPool(x, planes: planes, h: h, w: w, ho: outputSize[0], wo: outputSize[1],
                           outShape: x.shape.dropLast(2) + outputSize)
}
