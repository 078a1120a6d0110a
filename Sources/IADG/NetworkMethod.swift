// iadg.network — the protocol entry of the network and training loss (Network.swift) and its properties.

import Certification
import Foundation
import Ops
import Tensor

let networkMethod = Method("iadg.network", properties: networkProperties) { ctx in
    let widths = try IADGWidths(try ctx.ints("widths"))
    let net = IADGNetwork(widths: widths) { try ctx.v($0) }
    let labels = try labelArray(try ctx.tensor("labels"), name: "labels", op: "iadg.network")
    var lw = IADGLossWeights()
    lw.depth = try ctx.double("w_depth", default: 0.1)
    lw.clsAug = try ctx.double("w_cls_aug", default: 1)
    lw.depthAug = try ctx.double("w_depth_aug", default: 0.1)
    lw.aiawOrg = try ctx.double("w_aiaw_org", default: 1)
    lw.aiawAug = try ctx.double("w_aiaw_aug", default: 1)
    let step = try net.trainingStep(x: try ctx.v("x"), labels: labels, depthTarget: try ctx.tensor("depth_gt"),
                                    csaWeights: try weightList(try ctx.tensor("csa_weights")), prototypes: try prototypes(ctx),
                                    maskReal: try ctx.tensor("mask_real"), maskFake: try ctx.tensor("mask_fake"),
                                    runningMean: try ctx.tensor("bn_running_mean"), runningVar: try ctx.tensor("bn_running_var"),
                                    weights: lw, csaForm: try enumParam(ctx, "csa_form", CSAForm.self))
    var out = step.components
    out["loss"] = step.loss
    out["logits_org"] = step.logitsOrg
    out["depth_org"] = step.depthOrg
    out["logits_aug"] = step.logitsAug
    out["depth_aug"] = step.depthAug
    out["catfeat"] = step.catfeat
    out["scores"] = ctx.constant(try IADGNetwork.scores(logits: step.logitsOrg.value, depth: step.depthOrg.value))
    out["bn_running_mean"] = ctx.constant(step.runningMean)
    out["bn_running_var"] = ctx.constant(step.runningVar)
    return out
}

/// Parameter shapes by state_dict name for the given widths (the generator's network_param_shapes).
public func iadgParameterShapes(_ w: IADGWidths, inChannels: Int = 3) -> [(String, [Int])] {
    var s: [(String, [Int])] = []
    func conv(_ p: String, _ cin: Int, _ cout: Int) { s += [(p + ".conv.weight", [cout, cin, 3, 3]), (p + ".conv.bias", [cout])] }
    func dkg(_ p: String, _ cin: Int, _ cout: Int) {
        s += [(p + ".conv_kernel.weight", [9, 1, 1, 1]), (p + ".conv_kernel.bias", [9]), (p + ".conv_k.weight", [1, 1, 1, 1]),
              (p + ".conv_k.bias", [1]), (p + ".conv_static.weight", [cin / 2, cin / 2, 3, 3]), (p + ".conv_static.bias", [cin / 2]),
              (p + ".fuse.weight", [cout, cin, 1, 1]), (p + ".fuse.bias", [cout])]
    }
    conv("FeatExtractor.inc", inChannels, w.inc)
    var cin = w.inc
    for d in 1...3 {
        let p = "FeatExtractor.down\(d)"
        conv(p + ".conv_block1_gate", cin, w.mid)
        dkg(p + ".conv_block2_gate.conv", w.mid, w.dkgOut)
        conv(p + ".conv_block3_gate", w.dkgOut, w.blockOut)
        cin = w.blockOut
    }
    let f = w.featureChannels
    conv("Classifier.conv_block1", f, w.cls[0])
    conv("Classifier.conv_block2", w.cls[0], w.cls[1])
    conv("Classifier.conv_block3", w.cls[1], w.cls[2])
    s += [("Classifier.fc.weight", [2, w.cls[2]]), ("Classifier.fc.bias", [2])]
    conv("DepthEstmator.conv_block1", f, w.dep[0])
    conv("DepthEstmator.conv_block2", w.dep[0], w.dep[1])
    conv("DepthEstmator.conv_block3", w.dep[1], 1)
    s += [("Shader.conv_final.0.weight", [f, f, 3, 3]), ("Shader.conv_final.1.weight", [f]), ("Shader.conv_final.1.bias", [f])]
    return s
}

/// Random parameters (Kaiming-like scales) for the given widths.
public func randomIADGParameters(_ rng: inout RNG, _ w: IADGWidths) -> [String: Tensor] {
    var p: [String: Tensor] = [:]
    for (name, shape) in iadgParameterShapes(w) {
        let fan = shape.count == 4 ? Double(shape[1] * shape[2] * shape[3]) : Double(shape.last ?? 1)
        p[name] = rng.normalTensor(shape) * (2 / fan).squareRoot()
    }
    return p
}

private let tinyWidths = IADGWidths(inc: 2, mid: 4, dkgOut: 4, blockOut: 2, cls: [2, 2, 2], dep: [2, 2])

/// The extractor and both heads on a fresh tape (constants).
private func heads(_ p: [String: Tensor], _ x: Tensor) throws -> (feat: Tensor, logits: Tensor, depth: Tensor) {
    let t = Tape()
    let net = IADGNetwork(widths: tinyWidths) { name in
        guard let v = p[name] else { throw ShapeError("iadg.network", "no parameter \(name)") }
        return t.constant(v)
    }
    let f = try net.features(t.constant(x))
    return (f.value, try net.classifier(f).value, try net.depth(f).value)
}

let networkProperties: [Property] = [
    Property("batch_permutation_equivariance") { rng in
        let p = randomIADGParameters(&rng, tinyWidths)
        let b = 2 + rng.int(below: 2)
        let x = rng.uniformTensor([b, 3, 64, 64], -1, 1)
        let perm = rng.permutation(b)
        let a = try heads(p, x), c = try heads(p, try permuteBatch(x, perm))
        for (name, u, v) in [("catfeat", a.feat, c.feat), ("logits", a.logits, c.logits), ("depth", a.depth, c.depth)] {
            try requireClose(v, try permuteBatch(u, perm), Tolerance(rtol: 1e-12, atol: 1e-13), "\(name) of the permuted batch")
        }
    },
    Property("depth_head_range") { rng in
        let p = randomIADGParameters(&rng, tinyWidths)
        let x = try rng.uniformTensor([2, 3, 64, 64], -1, 1) * rng.uniform(0.1, 10)
        let h = try heads(p, x)
        let s = try IADGNetwork.scores(logits: h.logits, depth: h.depth)
        let m = try h.depth.reshaped([2, -1]).mean(axes: [1])
        try require(m.data.allSatisfy { $0 >= 0 && $0 < 0.5 }, "mean depth outside [0, 0.5): \(m.data)")
        try require(s.data.allSatisfy { $0 >= 0 && $0 < 1.5 }, "score outside [0, 1.5): \(s.data)")
    },
    Property("fd_gradient_downstream_of_csa") { rng in
        let w = tinyWidths, f = w.featureChannels
        var p = randomIADGParameters(&rng, w)
        p["Shader.conv_final.1.weight"] = rng.uniformTensor([f], 0.2, 1)
        let b = 2 + rng.int(below: 2)
        let x = rng.uniformTensor([b, 3, 64, 64], -1, 1)
        let labels = (0..<b).map { $0 < b / 2 ? 0 : 1 }
        let l = 1 + rng.int(below: 3)
        let protos = try StylePrototypes(meanPos: rng.uniformTensor([l, f]), stdPos: rng.uniformTensor([l, f], 0.1, 0.6),
                                         meanNeg: rng.uniformTensor([l, f]), stdNeg: rng.uniformTensor([l, f], 0.1, 0.6))
        let cw = [CSA.drawWeights(&rng, batch: b, styles: l), CSA.drawWeights(&rng, batch: b, styles: l)]
        let mask = AIAW.upperTriangle(f)
        let depthT = rng.uniformTensor([b, 8, 8])
        let names = ["Shader.conv_final.0.weight", "Shader.conv_final.1.weight", "Classifier.fc.weight", "DepthEstmator.conv_block2.conv.weight"]
        let name = names[rng.int(below: names.count)]
        func loss(_ q: [String: Tensor], _ t: Tape, _ leaf: Var? = nil) throws -> Var {
            let net = IADGNetwork(widths: w) { n in n == name && leaf != nil ? leaf! : t.constant(q[n]!) }
            return try net.trainingStep(x: t.constant(x), labels: labels, depthTarget: depthT, csaWeights: cw, prototypes: protos,
                                        maskReal: mask, maskFake: mask, runningMean: Tensor(zeros: [f]), runningVar: Tensor(ones: [f])).loss
        }
        let t = Tape()
        let leaf = t.leaf(p[name]!)
        let g = try t.gradients(of: try loss(p, t, leaf), wrt: [leaf])[0]
        var u = rng.normalTensor(p[name]!.shape)
        u = u * (1 / (try u.dot(u)).squareRoot())
        func fd(_ h: Double) throws -> Double {
            var pp = p, pm = p
            pp[name] = try p[name]! + u * h
            pm[name] = try p[name]! + u * (-h)
            return (try loss(pp, Tape()).value.data[0] - loss(pm, Tape()).value.data[0]) / (2 * h)
        }
        let (f1, f2) = (try fd(1e-6), try fd(2.5e-7))
        let an = try g.dot(u)
        // a ReLU / max-pool kink inside the step shows as disagreeing step sizes: that draw says nothing
        guard Swift.abs(f1 - f2) <= 1e-6 * Swift.max(1, Swift.abs(an)) else { return }
        try require(Swift.abs(f1 - an) <= 1e-6 + 1e-5 * Swift.abs(an), "\(name): FD \(f1) vs tape \(an)")
    },
    Property("instance_norm_invariance") { rng in
        // a conv block's output: IN(α·y + β) = IN(y)·r with r = α√((σ²+ε)/(α²σ²+ε)); the gradient of a bias before IN is ~0
        let c = 1 + rng.int(below: 3)
        let y = try rng.normalTensor([2, c, 3 + rng.int(below: 3), 4]) * rng.uniform(0.5, 3)
        let alpha = rng.uniform(0.2, 5), beta = rng.normal() * 3
        let t = Tape()
        let a = try instanceNorm(t.leaf(y), weight: nil, bias: nil).value
        let b = try instanceNorm(t.leaf(try y * alpha + Tensor(repeating: beta, shape: y.shape)), weight: nil, bias: nil).value
        let st = try y.reshaped([2 * c, -1])
        let n = Double(st.shape[1])
        let mu = try st.mean(axes: [1], keepDims: true)
        let v = try (try (st - mu) * (st - mu)).sum(axes: [1]).map { $0 / n }
        let r = v.map { alpha * (($0 + 1e-5) / (alpha * alpha * $0 + 1e-5)).squareRoot() }
        try requireClose(try b.reshaped([2 * c, -1]), try a.reshaped([2 * c, -1]) * r.reshaped([2 * c, 1]), Tolerance(rtol: 1e-10, atol: 1e-12),
                         "IN(αy + β) vs IN(y)·r")
        let p = randomIADGParameters(&rng, tinyWidths)
        let t2 = Tape()
        let bias = t2.leaf(p["FeatExtractor.inc.conv.bias"]!)
        let net = IADGNetwork(widths: tinyWidths) { name in name == "FeatExtractor.inc.conv.bias" ? bias : t2.constant(p[name]!) }
        let out = try net.convBlock(t2.constant(rng.uniformTensor([2, 3, 5, 5], -1, 1)), "FeatExtractor.inc")
        let g = try t2.gradients(of: [(out, rng.normalTensor(out.shape))], wrt: [bias])[0]
        try require(g.data.allSatisfy { Swift.abs($0) < 1e-10 }, "bias before IN has gradient \(g.data)")
    },
]
