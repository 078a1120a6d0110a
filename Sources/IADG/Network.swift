// The IADG network and its training loss, IADG §3 (Fig. 2) and §3.4 (L_total = L_Cls + λ·L_Dep + L_AIAW).
//
// Official code: models/framework.py (Framework, FeatExtractor, FeatEmbedder = Classifier, DepthEstmator,
// Shader), models/base_block.py (Conv_block_gate = conv3x3(pad 1) + InstanceNorm2d + ReLU, Basic_block_gate =
// conv → DKG → conv → MaxPool2d(2)), train.py train() (L279–283):
//   catfeat = cat[adaptive_avg_pool2d(x1_1, s), adaptive_avg_pool2d(x1_2, s), x1_3]
//   L = CE(cls(catfeat), y) + 0.1·MSE(dep(catfeat), D)                               (org branch, no conv_final)
//     + CE(cls(fea_aug), y) + 0.1·MSE(dep(fea_aug), D)                               fea_aug = conv_final(CSA₂(CSA₁(catfeat)))
//     + AIAW(fea_org) + AIAW(fea_aug)                                                fea_org = conv_final(catfeat)
// conv_final = Conv2d(C, C, 3, padding 1, no bias) + BatchNorm2d (train mode: batch statistics, one call per view).
// Parameters are looked up by their PyTorch state_dict names (e.g. "FeatExtractor.down1.conv_block2_gate.conv.fuse.weight").

import Foundation
import Ops
import Tensor

/// Channel widths of the network (the code's are fixed; smaller ones make the certification cases small).
public struct IADGWidths: Sendable, Equatable {
    public var inc: Int, mid: Int, dkgOut: Int, blockOut: Int
    public var cls: [Int], dep: [Int]
    public static let officialCode = IADGWidths(inc: 64, mid: 128, dkgOut: 196, blockOut: 128, cls: [128, 256, 512], dep: [128, 64])
    public init(inc: Int, mid: Int, dkgOut: Int, blockOut: Int, cls: [Int], dep: [Int]) {
        (self.inc, self.mid, self.dkgOut, self.blockOut, self.cls, self.dep) = (inc, mid, dkgOut, blockOut, cls, dep)
    }
    public init(_ w: [Int]) throws {
        guard w.count == 9 else { throw ShapeError("iadg.network", "widths must list 9 values [inc, mid, dkg_out, block_out, cls1, cls2, cls3, dep1, dep2], got \(w)") }
        self.init(inc: w[0], mid: w[1], dkgOut: w[2], blockOut: w[3], cls: Array(w[4...6]), dep: Array(w[7...8]))
    }
    /// Channels of catfeat (three pooled block outputs).
    public var featureChannels: Int { 3 * blockOut }
}

/// One training step's forward of the Framework (train mode, apply_shade and apply_wt on).
public struct IADGNetwork {
    public var widths: IADGWidths
    public var param: (String) throws -> Var
    public var inEps = 1e-5, bnEps = 1e-5, bnMomentum = 0.1

    public init(widths: IADGWidths, param: @escaping (String) throws -> Var) {
        self.widths = widths
        self.param = param
    }

    /// Conv_block_gate without DKG: conv3x3 (padding 1, bias) → InstanceNorm2d (affine off) → ReLU.
    public func convBlock(_ x: Var, _ prefix: String) throws -> Var {
        let y = try conv2d(x, weight: param(prefix + ".conv.weight"), bias: param(prefix + ".conv.bias"), padding: [1, 1])
        return relu(try instanceNorm(y, weight: nil, bias: nil, eps: inEps))
    }

    /// Conv_block_gate with DKG (k 3, padding 1, stride 1) → InstanceNorm2d → ReLU.
    public func dkgBlock(_ x: Var, _ prefix: String) throws -> Var {
        let p = try DKGParameters { name in
            let torchName = ["conv_kernel_weight": "conv_kernel.weight", "conv_kernel_bias": "conv_kernel.bias",
                             "conv_k_weight": "conv_k.weight", "conv_k_bias": "conv_k.bias",
                             "conv_static_weight": "conv_static.weight", "conv_static_bias": "conv_static.bias",
                             "fuse_weight": "fuse.weight", "fuse_bias": "fuse.bias"][name]!
            return try param(prefix + ".conv." + torchName)
        }
        return relu(try instanceNorm(try DKG.forward(x, p).y, weight: nil, bias: nil, eps: inEps))
    }

    /// Basic_block_gate with DKG: conv → DKG → conv → MaxPool2d(2).
    public func basicBlock(_ x: Var, _ prefix: String) throws -> Var {
        let a = try convBlock(x, prefix + ".conv_block1_gate")
        let b = try dkgBlock(a, prefix + ".conv_block2_gate")
        return try maxPool2d(try convBlock(b, prefix + ".conv_block3_gate"), kernelSize: [2, 2])
    }

    /// FeatExtractor: inc → down1 → down2 → down3, catfeat = cat of the three block outputs pooled to
    /// x1_3's size (the code's hard-coded 32 is that size at 256×256 input).
    public func features(_ x: Var) throws -> Var {
        let x0 = try convBlock(x, "FeatExtractor.inc")
        let x1 = try basicBlock(x0, "FeatExtractor.down1")
        let x2 = try basicBlock(x1, "FeatExtractor.down2")
        let x3 = try basicBlock(x2, "FeatExtractor.down3")
        let s = [x3.shape[2], x3.shape[3]]
        return try concatenate([try adaptiveAvgPool2d(x1, outputSize: s), try adaptiveAvgPool2d(x2, outputSize: s), x3], axis: 1)
    }

    /// FeatEmbedder: conv → maxpool → conv → maxpool → conv → GAP → Linear(·, 2).
    public func classifier(_ f: Var) throws -> Var {
        var h = try maxPool2d(try convBlock(f, "Classifier.conv_block1"), kernelSize: [2, 2])
        h = try maxPool2d(try convBlock(h, "Classifier.conv_block2"), kernelSize: [2, 2])
        h = try adaptiveAvgPool2d(try convBlock(h, "Classifier.conv_block3"), outputSize: [1, 1])
        return try linear(try reshape(h, [h.shape[0], h.shape[1]]), weight: param("Classifier.fc.weight"), bias: param("Classifier.fc.bias"))
    }

    /// DepthEstmator: three conv blocks; the last is IN over one channel then ReLU.
    public func depth(_ f: Var) throws -> Var {
        try convBlock(try convBlock(try convBlock(f, "DepthEstmator.conv_block1"), "DepthEstmator.conv_block2"), "DepthEstmator.conv_block3")
    }

    /// conv_final: conv3x3 (no bias) + BatchNorm2d, in train mode (batch statistics; returns the updated
    /// running statistics) or eval mode (running statistics, as in the statistics pass).
    public func convFinal(_ f: Var, runningMean: Tensor, runningVar: Tensor, training: Bool = true) throws -> BatchNormOutput {
        let y = try conv2d(f, weight: param("Shader.conv_final.0.weight"), bias: nil, padding: [1, 1])
        return try batchNorm(y, runningMean: runningMean, runningVar: runningVar, weight: param("Shader.conv_final.1.weight"),
                             bias: param("Shader.conv_final.1.bias"), training: training, momentum: bnMomentum, eps: bnEps)
    }

    /// The statistics pass of one mixed batch (Shader.forward with cal_covstat, model.eval()): the org and
    /// aug views through conv_final with BN in EVAL mode (running statistics), no gradient needed.
    public func statisticsViews(x: Tensor, labels: [Int], csaWeights: [Tensor], prototypes: StylePrototypes,
                                runningMean: Tensor, runningVar: Tensor, csaForm: CSAForm = .officialCode) throws -> (org: Tensor, aug: Tensor) {
        let tape = try param("FeatExtractor.inc.conv.weight").tape
        let catfeat = try features(tape.constant(x))
        let org = try convFinal(catfeat, runningMean: runningMean, runningVar: runningVar, training: false).y
        let aug = try CSA.stack(catfeat, labels: labels, weights: csaWeights, prototypes: prototypes, form: csaForm).y
        return (org.value, try convFinal(aug, runningMean: runningMean, runningVar: runningVar, training: false).y.value)
    }

    /// The frame score of the evaluation: softmax(logits)[:, 0] + mean(depth map).
    public static func scores(logits: Tensor, depth: Tensor) throws -> Tensor {
        let p = try logits.softmax(axis: 1)
        let n = logits.shape[0]
        let m = try depth.reshaped([n, -1]).mean(axes: [1])
        return Tensor(unchecked: [n], (0..<n).map { p.data[$0 * logits.shape[1]] + m.data[$0] })
    }
}

/// The loss weights of train.py (args.loss_2 … loss_6 weights in the configs).
public struct IADGLossWeights: Sendable {
    public var depth = 0.1, clsAug = 1.0, depthAug = 0.1, aiawOrg = 1.0, aiawAug = 1.0
    public init() {}
}

/// Everything one training step computes before backward.
public struct IADGTrainingStep {
    public var loss: Var
    public var components: [String: Var]
    public var catfeat: Var, feaOrg: Var, feaAug: Var
    public var logitsOrg: Var, depthOrg: Var, logitsAug: Var, depthAug: Var
    public var runningMean: Tensor, runningVar: Tensor
}

extension IADGNetwork {
    /// train.py's loss for one mixed batch (reals first): the org branch on catfeat, the aug branch on
    /// conv_final(CSA₂(CSA₁(catfeat))), AIAW on conv_final(catfeat) and on fea_aug with the given masks.
    /// conv_final runs on the aug view first, then on the org view (the Shader's order), each updating
    /// the BN running statistics.
    public func trainingStep(x: Var, labels: [Int], depthTarget: Tensor, csaWeights: [Tensor], prototypes: StylePrototypes,
                             maskReal: Tensor, maskFake: Tensor, runningMean: Tensor, runningVar: Tensor,
                             weights w: IADGLossWeights = .init(), csaForm: CSAForm = .officialCode,
                             divisor: HalfBatchDivisor = .officialCode) throws -> IADGTrainingStep {
        let catfeat = try features(x)
        let target = Tensor(labels.map(Double.init))
        let logitsOrg = try classifier(catfeat), depthOrg = try depth(catfeat)
        let squeeze: (Var) throws -> Var = { d in try reshape(d, [d.shape[0], d.shape[2], d.shape[3]]) }
        let aug = try CSA.stack(catfeat, labels: labels, weights: csaWeights, prototypes: prototypes, form: csaForm).y
        let bnAug = try convFinal(aug, runningMean: runningMean, runningVar: runningVar)
        let bnOrg = try convFinal(catfeat, runningMean: bnAug.runningMean!, runningVar: bnAug.runningVar!)
        let feaAug = bnAug.y, feaOrg = bnOrg.y
        let logitsAug = try classifier(feaAug), depthAug = try depth(feaAug)
        let c: [String: Var] = [
            "loss_cls": try crossEntropy(logitsOrg, target: target),
            "loss_depth": try mseLoss(try squeeze(depthOrg), target: depthTarget),
            "loss_cls_aug": try crossEntropy(logitsAug, target: target),
            "loss_depth_aug": try mseLoss(try squeeze(depthAug), target: depthTarget),
            "loss_aiaw_org": try AIAW.loss(feaOrg, maskReal: maskReal, maskFake: maskFake, divisor: divisor),
            "loss_aiaw_aug": try AIAW.loss(feaAug, maskReal: maskReal, maskFake: maskFake, divisor: divisor),
        ]
        var loss = try c["loss_cls"]! + c["loss_depth"]! * w.depth
        loss = try loss + c["loss_cls_aug"]! * w.clsAug + c["loss_depth_aug"]! * w.depthAug
        loss = try loss + c["loss_aiaw_org"]! * w.aiawOrg + c["loss_aiaw_aug"]! * w.aiawAug
        return IADGTrainingStep(loss: loss, components: c, catfeat: catfeat, feaOrg: feaOrg, feaAug: feaAug, logitsOrg: logitsOrg,
                                depthOrg: depthOrg, logitsAug: logitsAug, depthAug: depthAug,
                                runningMean: bnOrg.runningMean!, runningVar: bnOrg.runningVar!)
    }
}
