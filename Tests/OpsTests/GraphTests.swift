// Graph group: bad arguments throw ShapeError naming the op and the shapes; optimizers train.
import Foundation
import Ops
import Tensor
import Testing

/// Runs `body`, expecting a ShapeError from `op` whose message contains every string in `mentions`.
private func expectShapeError(_ op: String, mentions: [String] = [], _ body: () throws -> Void,
                              sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        try body()
        Issue.record("expected a ShapeError from \(op), got none", sourceLocation: sourceLocation)
    } catch let e as ShapeError {
        #expect(e.op == op, "error \(e) names op \(e.op), expected \(op)", sourceLocation: sourceLocation)
        for m in mentions {
            #expect(e.message.contains(m), "message '\(e.message)' does not mention '\(m)'", sourceLocation: sourceLocation)
        }
    } catch {
        Issue.record("expected a ShapeError from \(op), got \(error)", sourceLocation: sourceLocation)
    }
}

@Suite struct GraphOpBadInputs {
    @Test func gatherRejectsBadIndices() throws {
        let t = Tape()
        let x = t.leaf(Tensor(zeros: [4, 3]))
        #expect(throws: ShapeError.self) { try gather(x, axis: 0, index: Tensor([4])) }
        expectShapeError("gather", mentions: ["out of range 0..<4", "[4, 3]"]) { _ = try gather(x, axis: 0, index: Tensor([0, 4])) }
        expectShapeError("gather", mentions: ["non-integer", "1.5"]) { _ = try gather(x, axis: 0, index: Tensor([1.5])) }
        expectShapeError("gather", mentions: ["axis 2", "[4, 3]"]) { _ = try gather(x, axis: 2, index: Tensor(zeros: [1, 1])) }
        expectShapeError("gather", mentions: ["axis 0", "[2]", "[4, 3]"]) { _ = try gather(x, axis: 1, index: Tensor([0, 1])) }
        expectShapeError("gather", mentions: ["[2, 2, 1]", "[4, 3]"]) { _ = try gather(x, axis: 0, index: Tensor(zeros: [2, 2, 1])) }
        expectShapeError("gather", mentions: ["[2, 5]", "[4, 3]", "axis 1"]) { _ = try gather(x, axis: 0, index: Tensor(zeros: [2, 5])) }
        expectShapeError("gather", mentions: ["-1"]) { _ = try gather(x, axis: 0, index: Tensor([-1])) }
    }

    @Test func scatterAddRejectsBadArguments() throws {
        let t = Tape()
        let src = t.leaf(Tensor(zeros: [5, 2]))
        expectShapeError("scatter_add", mentions: ["[5, 2]", "[4]"]) { _ = try scatterAdd(src, axis: 0, index: Tensor([0, 0, 0, 0]), dimSize: 3) }
        expectShapeError("scatter_add", mentions: ["out of range 0..<3"]) { _ = try scatterAdd(src, axis: 0, index: Tensor([0, 1, 2, 3, 0]), dimSize: 3) }
        expectShapeError("scatter_add", mentions: ["dim_size", "-1"]) { _ = try scatterAdd(src, axis: 0, index: Tensor([0, 0, 0, 0, 0]), dimSize: -1) }
        expectShapeError("scatter_add", mentions: ["axis 3", "[5, 2]"]) { _ = try scatterAdd(src, axis: 3, index: Tensor(zeros: [5, 2]), dimSize: 2) }
        expectShapeError("scatter_add", mentions: ["[5, 2]", "[5, 1]"]) { _ = try scatterAdd(src, axis: 1, index: Tensor(zeros: [5, 1]), dimSize: 2) }
        // a valid general-layout call along axis 1 works
        let y = try scatterAdd(src, axis: 1, index: Tensor(zeros: [5, 2]), dimSize: 4)
        #expect(y.shape == [5, 4])
    }

    @Test func segmentSoftmaxRejectsBadArguments() throws {
        let t = Tape()
        let s = t.leaf(Tensor(zeros: [4, 2]))
        expectShapeError("segment_softmax", mentions: ["[3]", "[4, 2]"]) { _ = try segmentSoftmax(s, index: Tensor([0, 1, 2]), numNodes: 3) }
        expectShapeError("segment_softmax", mentions: ["out of range 0..<3"]) { _ = try segmentSoftmax(s, index: Tensor([0, 1, 2, 3]), numNodes: 3) }
        expectShapeError("segment_softmax", mentions: ["num_nodes"]) { _ = try segmentSoftmax(s, index: Tensor([0, 0, 0, 0]), numNodes: -2) }
        expectShapeError("segment_softmax", mentions: ["rank"]) { _ = try segmentSoftmax(t.leaf(Tensor(scalar: 1)), index: Tensor([0]), numNodes: 1) }
        // a node without edges gets nothing; a single edge gets 1/(1 + 1e-16) = 1
        let y = try segmentSoftmax(t.leaf(Tensor([3, 1, 2])), index: Tensor([1, 2, 2]), numNodes: 3).value
        #expect(y.data[0] == 1)
        #expect(Swift.abs(y.data[1] + y.data[2] - 1) < 1e-15)
    }

    @Test func attentionRejectsBadShapes() throws {
        let t = Tape()
        let q = t.leaf(Tensor(zeros: [2, 3, 4])), k = t.leaf(Tensor(zeros: [2, 5, 4])), v = t.leaf(Tensor(zeros: [2, 5, 3]))
        let op = "scaled_dot_product_attention"
        expectShapeError(op, mentions: ["[2, 3, 4]", "[2, 4, 3]"]) { _ = try scaledDotProductAttention(q, k, k.tape.leaf(Tensor(zeros: [2, 4, 3]))) }
        expectShapeError(op, mentions: ["[2, 3, 4]"]) { _ = try scaledDotProductAttention(q, t.leaf(Tensor(zeros: [2, 5, 3])), v) }
        expectShapeError(op, mentions: ["[2, 4]", "[2, 5]"]) { _ = try scaledDotProductAttention(q, k, v, keyPaddingMask: Tensor(zeros: [2, 4])) }
        var full = Tensor(zeros: [2, 5])
        for j in 0..<5 { full.data[5 + j] = 1 }
        expectShapeError(op, mentions: ["row 1", "every key"]) { _ = try scaledDotProductAttention(q, k, v, keyPaddingMask: full) }
        expectShapeError(op, mentions: ["[3, 4]"]) { _ = try scaledDotProductAttention(t.leaf(Tensor(zeros: [3, 4])), k, v) }
        expectShapeError(op, mentions: ["empty", "[2, 0, 4]"]) { _ = try scaledDotProductAttention(t.leaf(Tensor(zeros: [2, 0, 4])), k, v) }
        #expect(try scaledDotProductAttention(q, k, v).shape == [2, 3, 3])
    }

    @Test func multiheadAttentionRejectsBadShapes() throws {
        let t = Tape()
        let (l, n, e, s) = (3, 2, 6, 4)
        let q = t.leaf(Tensor(zeros: [l, n, e])), kv = t.leaf(Tensor(zeros: [s, n, e]))
        let inW = t.leaf(Tensor(zeros: [3 * e, e])), inB = t.leaf(Tensor(zeros: [3 * e]))
        let outW = t.leaf(Tensor(zeros: [e, e])), outB = t.leaf(Tensor(zeros: [e]))
        let op = "multihead_attention"
        expectShapeError(op, mentions: ["num_heads 4", "6"]) {
            _ = try multiheadAttention(query: q, key: kv, value: kv, numHeads: 4, inProjWeight: inW, inProjBias: inB, outProjWeight: outW, outProjBias: outB)
        }
        expectShapeError(op, mentions: ["in_proj_weight", "[6, 6]", "[18, 6]"]) {
            _ = try multiheadAttention(query: q, key: kv, value: kv, numHeads: 2, inProjWeight: outW, inProjBias: inB, outProjWeight: outW, outProjBias: outB)
        }
        expectShapeError(op, mentions: ["out_proj_bias", "[18]"]) {
            _ = try multiheadAttention(query: q, key: kv, value: kv, numHeads: 2, inProjWeight: inW, inProjBias: inB, outProjWeight: outW, outProjBias: inB)
        }
        expectShapeError(op, mentions: ["[4, 2, 5]"]) {
            _ = try multiheadAttention(query: q, key: kv, value: t.leaf(Tensor(zeros: [4, 2, 5])), numHeads: 2, inProjWeight: inW,
                                       inProjBias: inB, outProjWeight: outW, outProjBias: outB)
        }
        expectShapeError(op, mentions: ["key_padding_mask", "[2, 3]", "[2, 4]"]) {
            _ = try multiheadAttention(query: q, key: kv, value: kv, numHeads: 2, inProjWeight: inW, inProjBias: inB, outProjWeight: outW,
                                       outProjBias: outB, keyPaddingMask: Tensor(zeros: [2, 3]))
        }
        expectShapeError(op, mentions: ["empty", "[0, 2, 6]"]) {
            _ = try multiheadAttention(query: t.leaf(Tensor(zeros: [0, 2, 6])), key: kv, value: kv, numHeads: 2, inProjWeight: inW,
                                       inProjBias: inB, outProjWeight: outW, outProjBias: outB)
        }
        let r = try multiheadAttention(query: q, key: kv, value: kv, numHeads: 3, inProjWeight: inW, inProjBias: nil, outProjWeight: outW, outProjBias: nil)
        #expect(r.attnOutput.shape == [l, n, e] && r.attnWeights.shape == [n, l, s])
    }

    @Test func optimizersRejectBadArguments() throws {
        let p = Parameter("w", Tensor(zeros: [2, 3]))
        expectShapeError("optimizer.step", mentions: ["[3, 2]", "'w'", "[2, 3]"]) { try SGD([p], lr: 0.1).step(grads: [Tensor(zeros: [3, 2])]) }
        expectShapeError("optimizer.step", mentions: ["2 gradients for 1 parameters"]) { try Adam([p]).step(grads: [Tensor(zeros: [2, 3]), Tensor(zeros: [1])]) }
        expectShapeError("optimizer.step", mentions: ["'b'"]) { try Adam([p]).step(grads: ["b": Tensor(zeros: [1])]) }
        expectShapeError("SGD", mentions: ["Nesterov", "dampening 0.5"]) { _ = try SGD([p], lr: 0.1, momentum: 0.9, dampening: 0.5, nesterov: true) }
        expectShapeError("SGD", mentions: ["learning rate -1"]) { _ = try SGD([p], lr: -1) }
        expectShapeError("Adam", mentions: ["beta1 1.0"]) { _ = try Adam([p], beta1: 1.0) }
        expectShapeError("AdamW", mentions: ["eps -1"]) { _ = try AdamW([p], eps: -1) }
        expectShapeError("Adam", mentions: ["step", "0"]) {
            _ = try adamStep(param: Tensor([1]), grad: Tensor([1]), expAvg: Tensor([0]), expAvgSq: Tensor([0]), step: 0,
                             lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0)
        }
        expectShapeError("AdamW", mentions: ["exp_avg", "[2]", "[1]"]) {
            _ = try adamwStep(param: Tensor([1]), grad: Tensor([1]), expAvg: Tensor([0, 0]), expAvgSq: Tensor([0]), step: 1,
                              lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0)
        }
        expectShapeError("SGD", mentions: ["momentum buffer", "[2]", "[1]"]) {
            _ = try sgdStep(param: Tensor([1]), grad: Tensor([1]), momentumBuffer: Tensor([0, 0]), lr: 0.1, momentum: 0.9,
                            dampening: 0, weightDecay: 0, nesterov: false)
        }
        expectShapeError("SGD", mentions: ["more than one"]) {
            _ = try SGD([ParameterGroup(params: [p], lr: 0.1), ParameterGroup(params: [p], lr: 0.2)])
        }
        expectShapeError("clip_grad_norm", mentions: ["norm_type", "0"]) { _ = try clipGradNorm([Tensor([1])], maxNorm: 1, normType: 0) }
        // a failed step leaves the parameter untouched
        #expect(p.value == Tensor(zeros: [2, 3]) && p.step == 0)
    }
}

@Suite struct OptimizerTraining {
    /// XOR-like two-class problem in 2-D: label = (x₀·x₁ > 0).
    static func data(_ n: Int, seed: UInt64) -> (Tensor, Tensor) {
        var rng = RNG(seed: seed)
        var x = [Double](), y = [Double]()
        for _ in 0..<n {
            let (a, b) = (rng.uniform(-1, 1), rng.uniform(-1, 1))
            x += [a, b]
            y += a * b > 0 ? [1, 0] : [0, 1]
        }
        return (Tensor(unchecked: [n, 2], x), Tensor(unchecked: [n, 2], y))
    }

    @Test func adamTrainsATwoLayerMLP() throws {
        let (x, onehot) = Self.data(64, seed: 7)
        var rng = RNG(seed: 11)
        let hidden = 16
        let w1 = Parameter("w1", rng.normalTensor([2, hidden]) * (1 / 2.0.squareRoot()))
        let b1 = Parameter("b1", Tensor(zeros: [hidden]))
        let w2 = Parameter("w2", rng.normalTensor([hidden, 2]) * (1 / Double(hidden).squareRoot()))
        let b2 = Parameter("b2", Tensor(zeros: [2]))
        // two groups: biases without weight decay
        let opt = try Adam([ParameterGroup(params: [w1, w2], lr: 0.03, weightDecay: 1e-5),
                            ParameterGroup(params: [b1, b2], lr: 0.03)])
        func loss() throws -> (Var, [Var], Tape) {
            let tape = Tape()
            let ps = opt.parameters.map { $0.leaf(on: tape) }  // w1, w2, b1, b2
            let h = unary(try matmul(tape.constant(x), ps[0]) + ps[2], { Swift.max($0, 0) }, derivative: { x, _ in x > 0 ? 1 : 0 })
            let logits = try matmul(h, ps[1]) + ps[3]
            let nll = try mean(sum(logSoftmax(logits, axis: 1) * tape.constant(onehot), axes: [1])) * -1
            return (nll, ps, tape)
        }
        let first = try loss().0.value.scalar!
        var last = first
        for _ in 0..<400 {
            let (l, ps, tape) = try loss()
            last = l.value.scalar!
            var grads = try tape.gradients(of: l, wrt: ps)
            try clipGradNorm(&grads, maxNorm: 10)
            try opt.step(grads: grads)
        }
        last = try loss().0.value.scalar!
        #expect(last < first / 10, "loss \(first) → \(last)")
        #expect(w1.step == 400 && b2.step == 400)
    }

    @Test func optimizersMatchTheProtocolStepFunctions() throws {
        // Two steps through the optimizer equal two calls of the one-step functions.
        var rng = RNG(seed: 3)
        let p0 = rng.normalTensor([3, 2]), g1 = rng.normalTensor([3, 2]), g2 = rng.normalTensor([3, 2])
        let p = Parameter("p", p0)
        let opt = try AdamW([p], lr: 0.01, weightDecay: 0.1)
        try opt.step(grads: [g1])
        try opt.step(grads: ["p": g2])
        let s1 = try adamwStep(param: p0, grad: g1, expAvg: Tensor(zeros: [3, 2]), expAvgSq: Tensor(zeros: [3, 2]), step: 1,
                               lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1)
        let s2 = try adamwStep(param: s1.param, grad: g2, expAvg: s1.expAvg, expAvgSq: s1.expAvgSq, step: 2,
                               lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1)
        #expect(p.value == s2.param && p.expAvg == s2.expAvg && p.expAvgSq == s2.expAvgSq)

        let q = Parameter("q", p0)
        let sgd = try SGD([q], lr: 0.1, momentum: 0.9, dampening: 0.2, weightDecay: 0.01)
        try sgd.step(grads: [g1])
        try sgd.step(grads: [g2])
        let t1 = try sgdStep(param: p0, grad: g1, momentumBuffer: nil, lr: 0.1, momentum: 0.9, dampening: 0.2, weightDecay: 0.01, nesterov: false)
        let t2 = try sgdStep(param: t1.param, grad: g2, momentumBuffer: t1.momentumBuffer, lr: 0.1, momentum: 0.9, dampening: 0.2,
                             weightDecay: 0.01, nesterov: false)
        #expect(q.value == t2.param && q.momentumBuffer == t2.momentumBuffer)
    }
}
