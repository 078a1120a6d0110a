// Bad-input tests for the conv group (linear, convolutions, pooling, resizing): every bad argument
// throws a ShapeError naming the op and the shapes involved, never traps.
import Ops
import Tensor
import Testing

/// Runs `body` on a fresh tape and returns the ShapeError it throws (nil when it throws none).
private func shapeError(_ body: (Tape) throws -> Var) -> ShapeError? {
    do {
        _ = try body(Tape())
        return nil
    } catch let e as ShapeError {
        return e
    } catch {
        return nil
    }
}

/// Expects a ShapeError from `op` whose message mentions every string in `mentions`.
private func expectShapeError(_ op: String, mentions: [String], _ body: (Tape) throws -> Var,
                              sourceLocation: SourceLocation = #_sourceLocation) {
    guard let e = shapeError(body) else {
        Issue.record("expected a ShapeError from \(op)", sourceLocation: sourceLocation)
        return
    }
    #expect(e.op == op, "error names \(e.op), expected \(op)", sourceLocation: sourceLocation)
    for m in mentions {
        #expect(e.message.contains(m), "message '\(e.message)' does not mention \(m)", sourceLocation: sourceLocation)
    }
}

private func leaf(_ t: Tape, _ shape: [Int]) -> Var { t.leaf(Tensor(zeros: shape)) }

@Suite struct LinearBadInput {
    @Test func inFeaturesMismatch() {
        expectShapeError("linear", mentions: ["[3, 5]", "[2, 4]"]) { t in
            try linear(leaf(t, [2, 4]), weight: leaf(t, [3, 5]), bias: nil)
        }
        expectShapeError("linear", mentions: ["[3]"]) { t in try linear(leaf(t, [4]), weight: leaf(t, [3]), bias: nil) }
    }

    @Test func biasShape() {
        expectShapeError("linear", mentions: ["[4]", "[3]"]) { t in
            try linear(leaf(t, [2, 5]), weight: leaf(t, [3, 5]), bias: leaf(t, [4]))
        }
    }

    @Test func scalarInput() {
        expectShapeError("linear", mentions: ["[]"]) { t in try linear(leaf(t, []), weight: leaf(t, [3, 1]), bias: nil) }
    }
}

@Suite struct ConvBadInput {
    @Test func wrongRank() {
        expectShapeError("conv2d", mentions: ["[2, 3, 5]"]) { t in
            try conv2d(leaf(t, [2, 3, 5]), weight: leaf(t, [4, 3, 3, 3]), bias: nil)
        }
        expectShapeError("conv1d", mentions: ["[4, 3, 3, 3]"]) { t in
            try conv1d(leaf(t, [2, 3, 5]), weight: leaf(t, [4, 3, 3, 3]), bias: nil)
        }
    }

    @Test func channelMismatch() {
        expectShapeError("conv2d", mentions: ["[4, 2, 3, 3]", "[1, 3, 8, 8]"]) { t in
            try conv2d(leaf(t, [1, 3, 8, 8]), weight: leaf(t, [4, 2, 3, 3]), bias: nil)
        }
    }

    @Test func groupsNotDividing() {
        expectShapeError("conv2d", mentions: ["groups 2", "[1, 3, 8, 8]"]) { t in
            try conv2d(leaf(t, [1, 3, 8, 8]), weight: leaf(t, [4, 1, 3, 3]), bias: nil, groups: 2)
        }
        expectShapeError("conv1d", mentions: ["groups 2", "[3, 2, 3]"]) { t in
            try conv1d(leaf(t, [1, 4, 8]), weight: leaf(t, [3, 2, 3]), bias: nil, groups: 2)
        }
        expectShapeError("conv2d", mentions: ["groups"]) { t in
            try conv2d(leaf(t, [1, 3, 8, 8]), weight: leaf(t, [4, 3, 3, 3]), bias: nil, groups: 0)
        }
    }

    @Test func badStridePaddingDilation() {
        expectShapeError("conv2d", mentions: ["padding", "[-1, 0]"]) { t in
            try conv2d(leaf(t, [1, 1, 5, 5]), weight: leaf(t, [1, 1, 3, 3]), bias: nil, padding: [-1, 0])
        }
        expectShapeError("conv2d", mentions: ["stride", "[0, 1]"]) { t in
            try conv2d(leaf(t, [1, 1, 5, 5]), weight: leaf(t, [1, 1, 3, 3]), bias: nil, stride: [0, 1])
        }
        expectShapeError("conv1d", mentions: ["dilation"]) { t in
            try conv1d(leaf(t, [1, 1, 5]), weight: leaf(t, [1, 1, 3]), bias: nil, dilation: [0])
        }
        expectShapeError("conv2d", mentions: ["stride", "[1]"]) { t in
            try conv2d(leaf(t, [1, 1, 5, 5]), weight: leaf(t, [1, 1, 3, 3]), bias: nil, stride: [1])
        }
    }

    @Test func kernelLargerThanPaddedInput() {
        expectShapeError("conv2d", mentions: ["[1, 1, 4, 4]", "[1, 1, 3, 6]"]) { t in
            try conv2d(leaf(t, [1, 1, 4, 4]), weight: leaf(t, [1, 1, 3, 6]), bias: nil)
        }
        expectShapeError("conv1d", mentions: ["[1, 1, 4]", "dilation"]) { t in
            try conv1d(leaf(t, [1, 1, 4]), weight: leaf(t, [1, 1, 3]), bias: nil, dilation: [2])
        }
    }

    @Test func biasShape() {
        expectShapeError("conv2d", mentions: ["[3]", "[4]"]) { t in
            try conv2d(leaf(t, [1, 3, 8, 8]), weight: leaf(t, [4, 3, 3, 3]), bias: leaf(t, [3]))
        }
    }

    @Test func transposedConv() {
        expectShapeError("conv_transpose1d", mentions: ["[4, 2, 3]", "[1, 3, 5]"]) { t in
            try convTranspose1d(leaf(t, [1, 3, 5]), weight: leaf(t, [4, 2, 3]), bias: nil)
        }
        expectShapeError("conv_transpose1d", mentions: ["output_padding", "[2]"]) { t in
            try convTranspose1d(leaf(t, [1, 3, 5]), weight: leaf(t, [3, 2, 3]), bias: nil, stride: [2], outputPadding: [2])
        }
        expectShapeError("conv_transpose1d", mentions: ["output size"]) { t in
            try convTranspose1d(leaf(t, [1, 3, 1]), weight: leaf(t, [3, 2, 1]), bias: nil, padding: [1])
        }
        expectShapeError("conv_transpose1d", mentions: ["[2]", "[4]"]) { t in
            try convTranspose1d(leaf(t, [1, 3, 5]), weight: leaf(t, [3, 2, 3]), bias: leaf(t, [4]))
        }
    }

    @Test func emptyBatchIsFine() throws {
        let t = Tape()
        let x = leaf(t, [0, 2, 5, 5]), w = t.leaf(Tensor(ones: [3, 2, 3, 3]))
        let y = try conv2d(x, weight: w, bias: nil, padding: [1, 1])
        #expect(y.shape == [0, 3, 5, 5])
        let g = try t.gradients(of: [(y, Tensor(zeros: y.shape))], wrt: [x, w])
        #expect(g[1].data.allSatisfy { $0 == 0 })
    }
}

@Suite struct PoolBadInput {
    @Test func maxPool() {
        expectShapeError("max_pool2d", mentions: ["[2, 2]", "[1, 1, 3, 3]"]) { t in
            try maxPool2d(leaf(t, [1, 1, 3, 3]), kernelSize: [2, 2], stride: [1, 1], padding: [2, 2])
        }
        expectShapeError("max_pool2d", mentions: ["[5, 1]", "[1, 1, 3, 3]"]) { t in
            try maxPool2d(leaf(t, [1, 1, 3, 3]), kernelSize: [5, 1], stride: [1, 1])
        }
        expectShapeError("max_pool2d", mentions: ["[4, 4]"]) { t in
            try maxPool2d(leaf(t, [4, 4]), kernelSize: [2, 2])
        }
        expectShapeError("max_pool2d", mentions: ["stride", "[0, 1]"]) { t in
            try maxPool2d(leaf(t, [1, 1, 4, 4]), kernelSize: [2, 2], stride: [0, 1])
        }
    }

    @Test func avgPool() {
        expectShapeError("avg_pool2d", mentions: ["kernel_size", "[2]"]) { t in
            try avgPool2d(leaf(t, [1, 1, 4, 4]), kernelSize: [2], stride: [1, 1])
        }
        expectShapeError("avg_pool2d", mentions: ["padding", "[-1, 0]"]) { t in
            try avgPool2d(leaf(t, [1, 1, 4, 4]), kernelSize: [2, 2], stride: [1, 1], padding: [-1, 0])
        }
    }

    @Test func adaptive() {
        expectShapeError("adaptive_avg_pool1d", mentions: ["0", "[1, 2, 5]"]) { t in
            try adaptiveAvgPool1d(leaf(t, [1, 2, 5]), outputSize: 0)
        }
        expectShapeError("adaptive_avg_pool1d", mentions: ["[5]"]) { t in try adaptiveAvgPool1d(leaf(t, [5]), outputSize: 2) }
        expectShapeError("adaptive_avg_pool2d", mentions: ["[3]", "[1, 2, 5, 5]"]) { t in
            try adaptiveAvgPool2d(leaf(t, [1, 2, 5, 5]), outputSize: [3])
        }
        expectShapeError("adaptive_avg_pool2d", mentions: ["[1, 2, 0, 5]"]) { t in
            try adaptiveAvgPool2d(leaf(t, [1, 2, 0, 5]), outputSize: [2, 2])
        }
    }
}

@Suite struct InterpolateBadInput {
    @Test func bilinear() {
        expectShapeError("interpolate_bilinear", mentions: ["[1, 2, 5]"]) { t in
            try interpolateBilinear(leaf(t, [1, 2, 5]), size: [3])
        }
        expectShapeError("interpolate_bilinear", mentions: ["[3]", "[1, 2, 5, 5]"]) { t in
            try interpolateBilinear(leaf(t, [1, 2, 5, 5]), size: [3])
        }
        expectShapeError("interpolate_bilinear", mentions: ["[0, 3]"]) { t in
            try interpolateBilinear(leaf(t, [1, 2, 5, 5]), size: [0, 3])
        }
    }

    @Test func nearest() {
        expectShapeError("interpolate_nearest", mentions: ["[4, 4]", "[1, 2, 5]"]) { t in
            try interpolateNearest(leaf(t, [1, 2, 5]), size: [4, 4])
        }
        expectShapeError("interpolate_nearest", mentions: ["[5, 5]"]) { t in
            try interpolateNearest(leaf(t, [5, 5]), size: [3, 3])
        }
    }
}

@Suite struct ConvSemantics {
    /// conv_transpose1d with a kernel shorter than the stride leaves untouched positions equal to the bias.
    @Test func transposedGapsEqualBias() throws {
        let t = Tape()
        let x = t.leaf(Tensor(ones: [1, 1, 3])), w = t.leaf(Tensor(ones: [1, 1, 1])), b = t.leaf(Tensor([0.5]))
        let y = try convTranspose1d(x, weight: w, bias: b, stride: [3])
        #expect(y.shape == [1, 1, 7])
        #expect(y.value.data == [1.5, 0.5, 0.5, 1.5, 0.5, 0.5, 1.5])
    }

    /// Depthwise (direct loops) and the general im2col path agree: a grouped conv equals separate convs per group.
    @Test func groupedEqualsPerGroup() throws {
        var rng = RNG(seed: 7)
        let x = rng.normalTensor([2, 4, 6, 5]), w = rng.normalTensor([4, 1, 3, 2])
        let t = Tape()
        let y = try conv2d(t.leaf(x), weight: t.leaf(w), bias: nil, stride: [2, 1], padding: [1, 1], dilation: [1, 2], groups: 4)
        for g in 0..<4 {
            let yg = try conv2d(t.leaf(try x.slice(axis: 1, g..<(g + 1))), weight: t.leaf(try w.slice(axis: 0, g..<(g + 1))),
                                bias: nil, stride: [2, 1], padding: [1, 1], dilation: [1, 2])
            let expected = try y.value.slice(axis: 1, g..<(g + 1))
            for (a, e) in zip(yg.value.data, expected.data) { #expect(abs(a - e) <= 1e-12 * (1 + abs(e))) }
        }
    }

    /// Naive conv1d for one sample: y[o, t] = b[o] + Σ_{c,k} w[o, c, k]·x[c, t·s + k − p], and its three gradients for
    /// the cotangent gy; the reference for the im2col + gemm path of a single group with one channel.
    private static func naiveConv1d(x: [Double], c: Int, l: Int, w: [Double], o: Int, k: Int, s: Int, p: Int, gy: [Double])
        -> (y: [Double], gx: [Double], gw: [Double], lo: Int) {
        let lo = (l + 2 * p - k) / s + 1
        var y = [Double](repeating: 0, count: o * lo), gx = [Double](repeating: 0, count: c * l), gw = [Double](repeating: 0, count: o * c * k)
        for oc in 0..<o { for t in 0..<lo { for ic in 0..<c { for kk in 0..<k {
            let j = t * s + kk - p
            guard j >= 0, j < l else { continue }
            y[oc * lo + t] += w[(oc * c + ic) * k + kk] * x[ic * l + j]
            if !gy.isEmpty {
                gx[ic * l + j] += w[(oc * c + ic) * k + kk] * gy[oc * lo + t]
                gw[(oc * c + ic) * k + kk] += x[ic * l + j] * gy[oc * lo + t]
            }
        } } } }
        return (y, gx, gw, lo)
    }

    private static func close(_ a: [Double], _ e: [Double]) -> Bool {
        a.count == e.count && zip(a, e).allSatisfy { abs($0 - $1) <= 1e-12 * (1 + abs($1)) }
    }

    /// LAVA's first encoder conv (1 → o channels, k 9, stride 2, padding 4; one group with one input channel) and
    /// its output layer (conv_transpose1d o → 1, output_padding 1): outputs and all gradients against naive loops.
    @Test func oneChannelStride2MatchesNaive() throws {
        var rng = RNG(seed: 11)
        let (o, k, s, p) = (5, 9, 2, 4)
        for l in [1, 2, 9, 23, 40] {
            // conv1d 1 → o on [1, 1, l].
            let x = rng.normalTensor([1, 1, l]), w = rng.normalTensor([o, 1, k]), b = rng.normalTensor([o])
            let lo = (l + 2 * p - k) / s + 1
            let gy = rng.normalTensor([1, o, lo])
            let ref = Self.naiveConv1d(x: x.data, c: 1, l: l, w: w.data, o: o, k: k, s: s, p: p, gy: gy.data)
            let t = Tape()
            let (xv, wv, bv) = (t.leaf(x), t.leaf(w), t.leaf(b))
            let y = try conv1d(xv, weight: wv, bias: bv, stride: [s], padding: [p])
            #expect(y.shape == [1, o, lo])
            let yExp = (0..<(o * lo)).map { ref.y[$0] + b.data[$0 / lo] }
            #expect(Self.close(y.value.data, yExp), "conv1d forward, l = \(l)")
            let g = try t.gradients(of: [(y, gy)], wrt: [xv, wv, bv])
            #expect(Self.close(g[0].data, ref.gx), "conv1d ∂x, l = \(l)")
            #expect(Self.close(g[1].data, ref.gw), "conv1d ∂w, l = \(l)")
            #expect(Self.close(g[2].data, (0..<o).map { oc in (0..<lo).reduce(0.0) { $0 + gy.data[oc * lo + $1] } }), "conv1d ∂b")

            // conv_transpose1d o → 1 on [1, o, lo] with output_padding 1: the adjoint of the conv1d above on a length
            // lt = (lo − 1)·s − 2p + k + 1 signal; y_t = conv1dᵀ(x_t), ∂x_t = conv1d(gy_t), ∂w_t[c, 0, k] = Σ x_t·gy_t.
            let lt = (lo - 1) * s - 2 * p + k + 1
            let xt = rng.normalTensor([1, o, lo]), wt = rng.normalTensor([o, 1, k]), bt = rng.normalTensor([1])
            let gyt = rng.normalTensor([1, 1, lt])
            let fwd = Self.naiveConv1d(x: gyt.data, c: 1, l: lt, w: wt.data, o: o, k: k, s: s, p: p, gy: xt.data)
            let t2 = Tape()
            let (xtv, wtv, btv) = (t2.leaf(xt), t2.leaf(wt), t2.leaf(bt))
            let yt = try convTranspose1d(xtv, weight: wtv, bias: btv, stride: [s], padding: [p], outputPadding: [1])
            #expect(yt.shape == [1, 1, lt])
            #expect(Self.close(yt.value.data, fwd.gx.map { $0 + bt.data[0] }), "conv_transpose1d forward, l = \(lo)")
            let gt = try t2.gradients(of: [(yt, gyt)], wrt: [xtv, wtv, btv])
            #expect(Self.close(gt[0].data, fwd.y), "conv_transpose1d ∂x, l = \(lo)")
            #expect(Self.close(gt[1].data, fwd.gw), "conv_transpose1d ∂w, l = \(lo)")
            #expect(Self.close(gt[2].data, [gyt.data.reduce(0, +)]), "conv_transpose1d ∂b")
        }
    }
}
