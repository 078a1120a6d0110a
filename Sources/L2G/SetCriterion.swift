// l2g.losses — Mask2Former's set criterion (mask2former/modeling/criterion.py as the spec's C.3 describes it), used by L2G
// only as an assumption: per decoder layer, Hungarian matching, then cross-entropy over K + 1 classes with the no-object weight,
// BCE and Dice on points sampled from the matched masks; deep supervision sums the losses of every layer.

import Certification
import Foundation
import Ops
import Tensor

/// Loss weights and the no-object class weight.
public struct CriterionWeights: Sendable {
    public var weightClass = 2.0, weightMask = 5.0, weightDice = 5.0, eosCoef = 0.1
    public init(weightClass: Double = 2, weightMask: Double = 5, weightDice: Double = 5, eosCoef: Double = 0.1) {
        self.weightClass = weightClass; self.weightMask = weightMask; self.weightDice = weightDice; self.eosCoef = eosCoef
    }
}

/// The losses of one decoder layer.
public struct LayerLosses {
    public var ce: Var, mask: Var, dice: Var
    public var pairs: [(row: Int, column: Int)]
}

/// One layer: logits [Q, K+1] and mask logits [Q, H, W] (on a tape) against targets. matchPoints [P_m, 2] for the matcher;
/// lossPoints [G, P, 2], the points of each target's loss (Mask2Former draws them by importance sampling; inputs here).
/// CE = cross_entropy(logits, classes, weight = [1, …, 1, eos]) with unmatched queries labelled K (no-object);
/// BCE = Σ_pairs mean_p BCE(x̂, t̂)/num_masks; Dice = Σ_pairs (1 − (2Σσ(x̂)t̂ + 1)/(Σσ(x̂) + Σt̂ + 1))/num_masks, num_masks = max(G, 1).
public func setCriterionLayer(logits: Var, masks: Var, targetMasks: Tensor, labels: [Int], matchPoints: Tensor, lossPoints: Tensor,
                              matching: MatchingCost, weights: CriterionWeights) throws -> LayerLosses {
    let q = logits.shape[0], k1 = logits.shape[1], g = labels.count
    let m = try matchFrame(logits: logits.value, masks: masks.value, targetMasks: targetMasks, labels: labels,
                           points: try matchPoints.reshaped([1] + matchPoints.shape), weights: matching)
    var classes = [Double](repeating: Double(k1 - 1), count: q)
    for p in m.pairs { classes[p.row] = Double(labels[p.column]) }
    var w = [Double](repeating: 1, count: k1)
    w[k1 - 1] = weights.eosCoef
    let ce = try crossEntropy(logits, target: Tensor(classes), weight: Tensor(w))
    let numMasks = Double(Swift.max(g, 1))
    let tape = logits.tape
    guard !m.pairs.isEmpty else {
        let zero = tape.constant(Tensor(scalar: 0))
        return LayerLosses(ce: ce, mask: zero, dice: zero, pairs: [])
    }
    let (h, wd) = (masks.shape[1], masks.shape[2])
    let p = lossPoints.shape[1]
    let src = try concatenate(try m.pairs.map { try slice(masks, axis: 0, $0.row..<($0.row + 1)) }, axis: 0)   // [M, H, W]
    var tgt: [Double] = [], pts: [Double] = []
    for pr in m.pairs {
        tgt += targetMasks.data[(pr.column * h * wd)..<((pr.column + 1) * h * wd)]
        pts += lossPoints.data[(pr.column * p * 2)..<((pr.column + 1) * p * 2)]
    }
    let n = m.pairs.count
    let ptsT = Tensor(unchecked: [n, p, 2], pts)
    let xl = try pointSample(src, points: ptsT)
    let tl = try pointSample(tape.constant(Tensor(unchecked: [n, h, wd], tgt)), points: ptsT).value
    let bce = try bceWithLogits(xl, target: tl, reduction: .sum) * (1 / (Double(p) * numMasks))
    let dice = try diceLoss(xl, target: tl) * (Double(n) / numMasks)
    return LayerLosses(ce: ce, mask: bce, dice: dice, pairs: m.pairs)
}

func gradientOf(_ f: (Var) throws -> Var, at x: Tensor) throws -> Tensor {
    let tape = Tape()
    let v = tape.leaf(x)
    return try tape.gradients(of: try f(v), wrt: [v])[0]
}

let lossesMethod = Method("l2g.losses", properties: [
    Property("dice_closed_form_gradient") { rng in
        let p = 1 + rng.int(below: 30)
        let x = rng.normalTensor([1, p]) * 2, t = Tensor(unchecked: [1, p], (0..<p).map { _ in rng.bernoulli(0.5) ? 1 : 0 })
        let g = try gradientOf({ try diceLoss($0, target: t) }, at: x)
        let s = x.data.map(sigmoidValue)
        let i = zip(s, t.data).reduce(0) { $0 + $1.0 * $1.1 }, u = s.reduce(0, +) + t.data.reduce(0, +)
        let expect = (0..<p).map { k in -(2 * t.data[k] * (u + 1) - (2 * i + 1)) * s[k] * (1 - s[k]) / ((u + 1) * (u + 1)) }
        try requireClose(g, Tensor(unchecked: [1, p], expect), Tolerance(rtol: 1e-12, atol: 1e-15), "∂Dice/∂x vs −[2t(U+1) − (2I+1)]σ(1−σ)/(U+1)²")
    },
    Property("bce_closed_form_gradient") { rng in
        let n = 1 + rng.int(below: 4), p = 1 + rng.int(below: 20)
        let x = rng.normalTensor([n, p]) * 3, t = rng.uniformTensor([n, p]).map { $0 < 0.5 ? 0 : 1 }
        let g = try gradientOf({ try bceWithLogits($0, target: t) }, at: x)
        let expect = Tensor(unchecked: [n, p], zip(x.data, t.data).map { (sigmoidValue($0) - $1) / Double(n * p) })
        try requireClose(g, expect, Tolerance(rtol: 1e-12, atol: 1e-15), "∂BCE/∂x vs (σ(x) − t)/numel")
    },
    Property("weighted_ce_closed_form_gradient") { rng in
        let q = 2 + rng.int(below: 6), k1 = 2 + rng.int(below: 4)
        let z = rng.normalTensor([q, k1])
        let y = (0..<q).map { _ in rng.int(below: k1) }
        var w = [Double](repeating: 1, count: k1)
        w[k1 - 1] = 0.1
        let g = try gradientOf({ try crossEntropy($0, target: Tensor(y.map(Double.init)), weight: Tensor(w)) }, at: z)
        let sm = try z.softmax(axis: 1), wsum = y.reduce(0) { $0 + w[$1] }
        var expect = [Double](repeating: 0, count: q * k1)
        for i in 0..<q { for c in 0..<k1 { expect[i * k1 + c] = w[y[i]] * (sm.data[i * k1 + c] - (c == y[i] ? 1 : 0)) / wsum } }
        try requireClose(g, Tensor(unchecked: [q, k1], expect), Tolerance(rtol: 1e-11, atol: 1e-15), "∂CE/∂z vs w_y(softmax − onehot)/Σw_y")
    },
    Property("deep_supervision_sum") { rng in
        // Two identical layers give twice the single-layer loss; the total is the weighted sum of the per-layer terms.
        let q = 3 + rng.int(below: 3), g = 1 + rng.int(below: 3), k = 3, h = 5, w = 5, p = 6
        let logits = rng.normalTensor([q, k + 1]), masks = rng.normalTensor([q, h, w])
        let tm = Tensor(unchecked: [g, h, w], (0..<(g * h * w)).map { _ in rng.bernoulli(0.4) ? 1 : 0 })
        let labels = (0..<g).map { _ in rng.int(below: k) }
        let mp = rng.uniformTensor([8, 2]), lp = rng.uniformTensor([g, p, 2])
        let tape = Tape()
        let l = try setCriterionLayer(logits: tape.constant(logits), masks: tape.constant(masks), targetMasks: tm, labels: labels,
                                      matchPoints: mp, lossPoints: lp, matching: MatchingCost(), weights: CriterionWeights())
        let both = try setCriterion(logits: tape.constant(try Tensor.concatenate([logits, logits].map { try $0.reshaped([1, q, k + 1]) }, axis: 0)),
                                    masks: tape.constant(try Tensor.concatenate([masks, masks].map { try $0.reshaped([1, q, h, w]) }, axis: 0)),
                                    targetMasks: tm, labels: labels,
                                    matchPoints: try Tensor.concatenate([mp, mp].map { try $0.reshaped([1, 8, 2]) }, axis: 0),
                                    lossPoints: try Tensor.concatenate([lp, lp].map { try $0.reshaped([1, g, p, 2]) }, axis: 0),
                                    matching: MatchingCost(), weights: CriterionWeights())
        let one = 2 * l.ce.value.data[0] + 5 * l.mask.value.data[0] + 5 * l.dice.value.data[0]
        try require(Swift.abs(both.total.value.data[0] - 2 * one) <= 1e-12 * Swift.abs(one), "total \(both.total.value.data[0]) ≠ 2 × \(one)")
    },
]) { ctx in
    let logits = try ctx.v("pred_logits"), masks = try ctx.v("pred_masks")
    let labels = try labelList(try ctx.tensor("tgt_labels"), "tgt_labels")
    let r = try setCriterion(logits: logits, masks: masks, targetMasks: try ctx.data.tensor("tgt_masks", rank: 3), labels: labels,
                             matchPoints: try ctx.data.tensor("match_points", rank: 3), lossPoints: try ctx.data.tensor("loss_points", rank: 4),
                             matching: MatchingCost(costClass: try ctx.double("cost_class", default: 2), costMask: try ctx.double("cost_mask", default: 5),
                                                    costDice: try ctx.double("cost_dice", default: 5)),
                             weights: CriterionWeights(weightClass: try ctx.double("weight_class", default: 2), weightMask: try ctx.double("weight_mask", default: 5),
                                                       weightDice: try ctx.double("weight_dice", default: 5), eosCoef: try ctx.double("eos_coef", default: 0.1)))
    return ["loss_ce": try concatenate(r.ce, axis: 0), "loss_mask": try concatenate(r.mask, axis: 0),
            "loss_dice": try concatenate(r.dice, axis: 0), "loss_total": r.total]
}

/// Deep supervision: the criterion on every decoder layer. logits [L, Q, K+1], masks [L, Q, H, W], matchPoints [L, P_m, 2],
/// lossPoints [L, G, P, 2]. total = Σ_l (w_cls·CE_l + w_mask·BCE_l + w_dice·Dice_l).
public func setCriterion(logits: Var, masks: Var, targetMasks: Tensor, labels: [Int], matchPoints: Tensor, lossPoints: Tensor,
                         matching: MatchingCost, weights: CriterionWeights) throws -> (ce: [Var], mask: [Var], dice: [Var], total: Var) {
    guard logits.value.rank == 3, masks.value.rank == 4, masks.shape[0] == logits.shape[0], masks.shape[1] == logits.shape[1] else {
        throw ShapeError("l2g.losses", "pred_logits [L, Q, K+1] and pred_masks [L, Q, H, W] disagree: \(logits.shape), \(masks.shape)")
    }
    let (layers, q, k1) = (logits.shape[0], logits.shape[1], logits.shape[2])
    let (h, w) = (masks.shape[2], masks.shape[3])
    let g = labels.count
    guard targetMasks.shape == [g, h, w] else { throw ShapeError("l2g.losses", "tgt_masks \(targetMasks.shape) must be [G, H, W] = [\(g), \(h), \(w)]") }
    guard matchPoints.rank == 3, matchPoints.shape[0] == layers, matchPoints.shape[2] == 2 else {
        throw ShapeError("l2g.losses", "match_points must be [L, P, 2] with L = \(layers), found \(matchPoints.shape)")
    }
    guard lossPoints.rank == 4, lossPoints.shape[0] == layers, lossPoints.shape[1] == g, lossPoints.shape[3] == 2 else {
        throw ShapeError("l2g.losses", "loss_points must be [L, G, P, 2] with L = \(layers), G = \(g), found \(lossPoints.shape)")
    }
    var ce: [Var] = [], mk: [Var] = [], dc: [Var] = []
    var total: Var? = nil
    for l in 0..<layers {
        let lg = try reshape(try slice(logits, axis: 0, l..<(l + 1)), [q, k1])
        let ms = try reshape(try slice(masks, axis: 0, l..<(l + 1)), [q, h, w])
        let r = try setCriterionLayer(logits: lg, masks: ms, targetMasks: targetMasks, labels: labels,
                                      matchPoints: try matchPoints.slice(axis: 0, l..<(l + 1)).reshaped(Array(matchPoints.shape.dropFirst())),
                                      lossPoints: try lossPoints.slice(axis: 0, l..<(l + 1)).reshaped(Array(lossPoints.shape.dropFirst())),
                                      matching: matching, weights: weights)
        ce.append(try reshape(r.ce, [1])); mk.append(try reshape(r.mask, [1])); dc.append(try reshape(r.dice, [1]))
        let term = try (r.ce * weights.weightClass + r.mask * weights.weightMask) + r.dice * weights.weightDice
        total = try total.map { try $0 + term } ?? term
    }
    return (ce, mk, dc, total!)
}
