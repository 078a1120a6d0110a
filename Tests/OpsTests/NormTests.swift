// Bad-input and API tests of the norm group's ops (normalisation, activations, dropout, losses).
import Ops
import Tensor
import Testing

/// Runs `body`, expecting a ShapeError for `op` whose message mentions every string in `mentions`.
private func expectShapeError(_ op: String, mentions: [String], _ body: () throws -> Void) {
    let e = #expect(throws: ShapeError.self) { try body() }
    guard let e else { return }
    #expect(e.op == op, "error names \(e.op), expected \(op)")
    for m in mentions { #expect(e.message.contains(m), "message '\(e.message)' does not mention \(m)") }
}

@Suite struct NormalizationBadInput {
    let tape = Tape()

    @Test func batchNormWeightShape() {
        let x = tape.leaf(Tensor(zeros: [4, 3, 2])), w = tape.leaf(Tensor(ones: [2]))
        expectShapeError("batch_norm", mentions: ["weight", "[2]", "[3]", "[4, 3, 2]"]) {
            _ = try batchNorm(x, runningMean: nil, runningVar: nil, weight: w, bias: nil, training: true)
        }
    }

    @Test func batchNormRunningStatShape() {
        let x = tape.leaf(Tensor(zeros: [4, 3]))
        expectShapeError("batch_norm", mentions: ["running_var", "[5]", "[4, 3]"]) {
            _ = try batchNorm(x, runningMean: Tensor(zeros: [3]), runningVar: Tensor(ones: [5]), weight: nil, bias: nil, training: true)
        }
    }

    @Test func batchNormSingleValuePerChannel() {
        let x = tape.leaf(Tensor(zeros: [1, 3]))
        expectShapeError("batch_norm", mentions: ["more than 1 value", "[1, 3]"]) {
            _ = try batchNorm(x, runningMean: nil, runningVar: nil, weight: nil, bias: nil, training: true)
        }
    }

    @Test func batchNormEvalNeedsRunningStats() {
        let x = tape.leaf(Tensor(zeros: [2, 3]))
        expectShapeError("batch_norm", mentions: ["running_mean", "[2, 3]"]) {
            _ = try batchNorm(x, runningMean: nil, runningVar: nil, weight: nil, bias: nil, training: false)
        }
    }

    @Test func batchNormRank1() {
        let x = tape.leaf(Tensor(zeros: [5]))
        expectShapeError("batch_norm", mentions: ["[5]"]) {
            _ = try batchNorm(x, runningMean: nil, runningVar: nil, weight: nil, bias: nil, training: true)
        }
    }

    @Test func instanceNormNeedsSpatialAxis() {
        let x = tape.leaf(Tensor(zeros: [2, 3]))
        expectShapeError("instance_norm", mentions: ["[2, 3]", "spatial"]) { _ = try instanceNorm(x, weight: nil, bias: nil) }
        let x1 = tape.leaf(Tensor(zeros: [2, 3, 1]))
        expectShapeError("instance_norm", mentions: ["[2, 3, 1]", "more than 1 spatial"]) { _ = try instanceNorm(x1, weight: nil, bias: nil) }
    }

    @Test func instanceNormBiasShape() {
        let x = tape.leaf(Tensor(zeros: [2, 3, 4])), b = tape.leaf(Tensor(zeros: [3, 1]))
        expectShapeError("instance_norm", mentions: ["bias", "[3, 1]", "[2, 3, 4]"]) { _ = try instanceNorm(x, weight: nil, bias: b) }
    }

    @Test func layerNormShapeMismatch() {
        let x = tape.leaf(Tensor(zeros: [2, 3, 4]))
        expectShapeError("layer_norm", mentions: ["[3, 5]", "[2, 3, 4]"]) {
            _ = try layerNorm(x, normalizedShape: [3, 5], weight: nil, bias: nil)
        }
        expectShapeError("layer_norm", mentions: ["[1, 2, 3, 4]", "[2, 3, 4]"]) {
            _ = try layerNorm(x, normalizedShape: [1, 2, 3, 4], weight: nil, bias: nil)
        }
        let w = tape.leaf(Tensor(ones: [4, 3]))
        expectShapeError("layer_norm", mentions: ["weight", "[4, 3]", "[3, 4]"]) {
            _ = try layerNorm(x, normalizedShape: [3, 4], weight: w, bias: nil)
        }
        expectShapeError("layer_norm", mentions: ["[]"]) { _ = try layerNorm(x, normalizedShape: [], weight: nil, bias: nil) }
    }

    @Test func differentTapes() {
        let other = Tape()
        let x = tape.leaf(Tensor(zeros: [2, 3, 4])), w = other.leaf(Tensor(ones: [3]))
        expectShapeError("instance_norm", mentions: ["tapes"]) { _ = try instanceNorm(x, weight: w, bias: nil) }
    }
}

@Suite struct ActivationAndDropoutBadInput {
    let tape = Tape()

    @Test func dropoutMaskShape() {
        let x = tape.leaf(Tensor(zeros: [2, 3]))
        expectShapeError("dropout", mentions: ["mask", "[3, 2]", "[2, 3]"]) { _ = try dropout(x, mask: Tensor(ones: [3, 2]), p: 0.5) }
    }

    @Test func dropoutProbability() {
        let x = tape.leaf(Tensor(zeros: [2]))
        expectShapeError("dropout", mentions: ["1.5"]) { _ = try dropout(x, mask: Tensor(ones: [2]), p: 1.5) }
        var rng = RNG(seed: 1)
        expectShapeError("dropout_mask", mentions: ["-0.1"]) { _ = try dropoutMask(shape: [2], p: -0.1, rng: &rng) }
    }

    @Test func dropoutMaskIsSeeded() throws {
        var a = RNG(seed: 42), b = RNG(seed: 42)
        let m1 = try dropoutMask(shape: [100], p: 0.3, rng: &a), m2 = try dropoutMask(shape: [100], p: 0.3, rng: &b)
        #expect(m1 == m2)
        #expect(m1.data.allSatisfy { $0 == 0 || $0 == 1 })
        #expect(m1.data.contains(0) && m1.data.contains(1))
    }

    @Test func softplusBeta() {
        let x = tape.leaf(Tensor(zeros: [2]))
        expectShapeError("softplus", mentions: ["beta"]) { _ = try softplus(x, beta: 0) }
    }

    @Test func kinkGradients() throws {
        // relu′(0) = 0 and leaky_relu′(0) = negative_slope, as PyTorch.
        let x = tape.leaf(Tensor([0, -1, 2]))
        let gr = try tape.gradients(of: try sum(relu(x)), wrt: [x])[0]
        #expect(gr.data == [0, 0, 1])
        let gl = try tape.gradients(of: try sum(leakyRelu(x, negativeSlope: 0.2)), wrt: [x])[0]
        #expect(gl.data == [0.2, 0.2, 1])
    }
}

@Suite struct LossBadInput {
    let tape = Tape()

    @Test func crossEntropyShapes() {
        let logits = tape.leaf(Tensor(zeros: [3, 4]))
        expectShapeError("cross_entropy", mentions: ["target", "[2]", "[3, 4]"]) { _ = try crossEntropy(logits, target: Tensor([0, 1])) }
        expectShapeError("cross_entropy", mentions: ["weight", "[3]", "[3, 4]"]) {
            _ = try crossEntropy(logits, target: Tensor([0, 1, 2]), weight: Tensor(ones: [3]))
        }
        let flat = tape.leaf(Tensor(zeros: [4]))
        expectShapeError("cross_entropy", mentions: ["[4]", "[N, C]"]) { _ = try crossEntropy(flat, target: Tensor([0])) }
    }

    @Test func crossEntropyTargetRange() {
        let logits = tape.leaf(Tensor(zeros: [2, 4]))
        expectShapeError("cross_entropy", mentions: ["target[1]", "4", "[2, 4]"]) { _ = try crossEntropy(logits, target: Tensor([0, 4])) }
        expectShapeError("cross_entropy", mentions: ["target[0]", "0.5"]) { _ = try crossEntropy(logits, target: Tensor([0.5, 1])) }
    }

    @Test func crossEntropyIgnoreIndex() throws {
        let logits = tape.leaf(Tensor(unchecked: [2, 3], [1, 2, 3, 0, 0, 0]))
        let full = try crossEntropy(logits, target: Tensor([2, 0])).value.data[0]
        let ignored = try crossEntropy(logits, target: Tensor([2, -100])).value.data[0]
        let first = try crossEntropy(tape.leaf(Tensor(unchecked: [1, 3], [1, 2, 3])), target: Tensor([2])).value.data[0]
        #expect(ignored == first)
        #expect(full != ignored)
    }

    @Test func elementwiseLossTargetShape() {
        let x = tape.leaf(Tensor(zeros: [2, 3]))
        let t = Tensor(zeros: [3, 2])
        expectShapeError("mse_loss", mentions: ["[3, 2]", "[2, 3]"]) { _ = try mseLoss(x, target: t) }
        expectShapeError("l1_loss", mentions: ["[3, 2]", "[2, 3]"]) { _ = try l1Loss(x, target: t) }
        expectShapeError("smooth_l1_loss", mentions: ["[3, 2]", "[2, 3]"]) { _ = try smoothL1Loss(x, target: t) }
        expectShapeError("binary_cross_entropy_with_logits", mentions: ["[3, 2]", "[2, 3]"]) { _ = try bceWithLogits(x, target: t) }
        expectShapeError("kl_div", mentions: ["[3, 2]", "[2, 3]"]) { _ = try klDiv(x, target: t) }
        expectShapeError("dice_loss", mentions: ["[3, 2]", "[2, 3]"]) { _ = try diceLoss(x, target: t) }
        expectShapeError("smooth_l1_loss", mentions: ["beta", "-1"]) { _ = try smoothL1Loss(x, target: Tensor(zeros: [2, 3]), beta: -1) }
    }

    @Test func diceNeedsBatchAxis() {
        let x = tape.leaf(Tensor(zeros: [5]))
        expectShapeError("dice_loss", mentions: ["[5]", "rank ≥ 2"]) { _ = try diceLoss(x, target: Tensor(zeros: [5])) }
    }
}
