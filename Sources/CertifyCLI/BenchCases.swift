// The op families and end-to-end workloads of issue 17 §1 for `certify bench` (case names, shapes and
// differentiated inputs match bench/torch_bench.py; bench/README.md lists them).

import Foundation
import IADG
import InputGradients
import LAVA
import Ops
import Tensor

extension Bench {
    /// A 4 s waveform at 16 kHz (LAVA).
    static let l16k = 64000
    static let (graphNodes, graphEdges) = (10000, 100000)

    /// Random edge targets in 0..<graphNodes, as the Float64 index tensor the graph ops take.
    static func edgeIndex(_ rng: inout RNG) -> Tensor {
        Tensor((0..<graphEdges).map { _ in Double(rng.int(below: graphNodes)) })
    }

    /// LAVA encoder block conv: Conv1d(cin → cout, k 9, stride 2, padding 4) on [1, cin, length].
    static func conv1dCase(_ cin: Int, _ cout: Int, _ length: Int) -> Case {
        ("conv1d_k9s2_1x\(cin)x\(length)_c\(cout)", {
            var rng = RNG(seed: 6)
            let inputs = [rng.normalTensor([1, cin, length]), rng.normalTensor([cout, cin, 9]) * (1 / Double(cin * 9).squareRoot()),
                          rng.normalTensor([cout]) * 0.1]
            return try fwdBwd(inputs) { v in [try conv1d(v[0], weight: v[1], bias: v[2], stride: [2], padding: [4])] }
        })
    }

    /// LAVA decoder block: ConvTranspose1d(cin → cout, k 9, stride 2, padding 4, output_padding 1) on [1, cin, length].
    static func convTranspose1dCase(_ cin: Int, _ cout: Int, _ length: Int) -> Case {
        ("conv_transpose1d_k9s2_1x\(cin)x\(length)_c\(cout)", {
            var rng = RNG(seed: 7)
            let inputs = [rng.normalTensor([1, cin, length]), rng.normalTensor([cin, cout, 9]) * (1 / Double(cin * 9).squareRoot()),
                          rng.normalTensor([cout]) * 0.1]
            return try fwdBwd(inputs) { v in
                [try convTranspose1d(v[0], weight: v[1], bias: v[2], stride: [2], padding: [4], outputPadding: [1])]
            }
        })
    }

    /// The op families the papers use, at their sizes (issue 17 §1).
    static var paperOpCases: [Case] {
        [
            conv1dCase(1, 32, l16k), conv1dCase(128, 256, l16k / 8),
            convTranspose1dCase(256, 128, l16k / 16), convTranspose1dCase(32, 1, l16k / 2),
            ("instance_norm_2x64x256x256", {
                var rng = RNG(seed: 8)
                return try fwdBwd([rng.normalTensor([2, 64, 256, 256])]) { v in [try instanceNorm(v[0], weight: nil, bias: nil, eps: 1e-5)] }
            }),
            ("layer_norm_16x128x256", {
                var rng = RNG(seed: 9)
                let inputs = [rng.normalTensor([16, 128, 256]), rng.normalTensor([256]) * 0.1 + 1, rng.normalTensor([256]) * 0.1]
                return try fwdBwd(inputs) { v in [try layerNorm(v[0], normalizedShape: [256], weight: v[1], bias: v[2], eps: 1e-5)] }
            }),
            ("adaptive_avg_pool2d_2x128x128x128_to32", {
                var rng = RNG(seed: 10)
                return try fwdBwd([rng.normalTensor([2, 128, 128, 128])]) { v in [try adaptiveAvgPool2d(v[0], outputSize: [32, 32])] }
            }),
            ("bilinear_2x64x64x64_to256", {
                var rng = RNG(seed: 11)
                return try fwdBwd([rng.normalTensor([2, 64, 64, 64])]) { v in [try interpolateBilinear(v[0], size: [256, 256])] }
            }),
            ("gather_rows_E100k_N10k_d64", {
                var rng = RNG(seed: 12)
                let x = rng.normalTensor([graphNodes, 64]), idx = edgeIndex(&rng)
                return try fwdBwd([x]) { v in [try gather(v[0], axis: 0, index: idx)] }
            }),
            ("scatter_add_E100k_N10k_d64", {
                var rng = RNG(seed: 13)
                let src = rng.normalTensor([graphEdges, 64]), idx = edgeIndex(&rng)
                return try fwdBwd([src]) { v in [try scatterAdd(v[0], axis: 0, index: idx, dimSize: graphNodes)] }
            }),
            ("segment_softmax_E100k_N10k_H8", {
                var rng = RNG(seed: 14)
                let scores = rng.normalTensor([graphEdges, 8]), idx = edgeIndex(&rng)
                return try fwdBwd([scores]) { v in [try segmentSoftmax(v[0], index: idx, numNodes: graphNodes)] }
            }),
            ("cross_entropy_4096x10", {
                var rng = RNG(seed: 15)
                let logits = rng.normalTensor([4096, 10]), target = Tensor((0..<4096).map { _ in Double(rng.int(below: 10)) })
                return try fwdBwd([logits]) { v in [try crossEntropy(v[0], target: target)] }
            }),
            ("adam_step_1M", {
                // One Adam step (lr 1e-3, defaults) on an MLP 1568-512-384-10 (1,004,170 parameters), gradients given.
                var rng = RNG(seed: 16)
                let shapes = [[512, 1568], [512], [384, 512], [384], [10, 384], [10]]
                let params = shapes.enumerated().map { i, s in Parameter("p\(i)", rng.normalTensor(s) * 0.05) }
                let grads = shapes.map { rng.normalTensor($0) * 0.01 }
                let opt = try Adam(params, lr: 1e-3)
                return { try opt.step(grads: grads) }
            }),
        ]
    }

    /// End-to-end workloads: each timed whole, best of --e2e-repeats runs (the first included, no separate warm-up).
    static var endToEndCases: [Case] {
        [
            ("e2e_iadg_train_step_b2_256", {
                // IADG's training step (IADGNetwork.trainingStep: train.py's whole loss) at the code's widths, one real and
                // one fake 256×256 image, then the gradients w.r.t. every parameter.
                var rng = RNG(seed: 17)
                let widths = IADGWidths.officialCode, feat = widths.featureChannels
                let (b, s, styles) = (2, 256, 4)
                let params = randomIADGParameters(&rng, widths).sorted { $0.key < $1.key }
                let x = rng.uniformTensor([b, 3, s, s], -1, 1)
                let depth = rng.uniformTensor([b, s / 8, s / 8])
                let csa = (0..<2).map { _ -> Tensor in
                    let w = rng.uniformTensor([b, styles])
                    let rows = (0..<b).flatMap { i -> [Double] in
                        let r = Array(w.data[(i * styles)..<((i + 1) * styles)]), t = r.reduce(0, +)
                        return r.map { $0 / t }
                    }
                    return Tensor(unchecked: [b, styles], rows)
                }
                let protos = try StylePrototypes(meanPos: rng.uniformTensor([styles, feat]), stdPos: rng.uniformTensor([styles, feat], 0.05, 0.55),
                                                 meanNeg: rng.uniformTensor([styles, feat]), stdNeg: rng.uniformTensor([styles, feat], 0.05, 0.55))
                var upper: [Int] = []
                for i in 0..<feat { for j in (i + 1)..<feat { upper.append(i * feat + j) } }
                func mask(_ k: Int) -> Tensor {
                    var m = [Double](repeating: 0, count: feat * feat)
                    for p in rng.permutation(upper.count).prefix(k) { m[upper[p]] = 1 }
                    return Tensor(unchecked: [feat, feat], m)
                }
                let (mr, mf) = (mask(1000), mask(200))
                return {
                    let tape = Tape()
                    var leaves: [String: Var] = [:]
                    for (name, t) in params { leaves[name] = tape.leaf(t) }
                    let net = IADGNetwork(widths: widths) { leaves[$0]! }
                    let step = try net.trainingStep(x: tape.constant(x), labels: [0, 1], depthTarget: depth, csaWeights: csa,
                                                    prototypes: protos, maskReal: mr, maskFake: mf, runningMean: Tensor(zeros: [feat]),
                                                    runningVar: Tensor(ones: [feat]))
                    _ = try tape.gradients(of: step.loss, wrt: params.map { leaves[$0.key]! })
                }
            }),
            ("e2e_lava_ada_admr_4.5s", {
                // The released ADA and ADMR models (eval mode, read in place from the fixtures folder) on one 4.5 s waveform.
                let models = try [OfficialModel.load(.ada), OfficialModel.load(.admr)]
                var rng = RNG(seed: 18)
                let n = 72000
                let noise = rng.normalTensor([n])
                let x = Tensor(unchecked: [1, 1, n], (0..<n).map { 0.4 * sin(2 * Double.pi * 440 * Double($0) / 16000) + 0.05 * noise.data[$0] })
                return { for m in models { _ = try m.logits(x) } }
            }),
            ("e2e_diffroar_retrain_mlp", {
                // One DiffROAR retraining (MLPLearner: MLP 1568-128-128-2, SGD lr 0.05 momentum 0.9, batch 128, 4 epochs,
                // cosine) on 12,000 images of BlockMNIST's shape (56×28; random pixels, random labels).
                var rng = RNG(seed: 19)
                let x = rng.uniformTensor([12000, 1, 56, 28])
                let y = (0..<12000).map { _ in rng.int(below: 2) }
                return {
                    var r = RNG(seed: 19)
                    let model = try MLP(sizes: [56 * 28, 128, 128, 2], rng: &r)
                    try Trainer.train(model, x: x, y: y, config: MLPLearner.defaultTraining, rng: &r)
                }
            }),
        ]
    }
}
