// Certify's NRR-DD reproduction: a Fashion-MNIST teacher, three initial sets (random real images,
// RDED selection + stitching, CIDD + stitching + NRR), a seeded relabel plan (flip + RDED CutMix per
// step) whose teacher targets are stored as one-hot, DBR's 2 distances or full soft labels, and a
// student trained on each. Every random draw comes from Tensor's RNG, seeded.

import Foundation
import InputGradients
import Ops
import Tensor

/// The distilled-set construction.
public enum InitialSet: String, Sendable, CaseIterable {
    case random, rded, nrrdd
}

/// What the student learns from.
public enum LabelKind: String, Sendable, CaseIterable {
    /// CutMix hard labels (L_sce only): 0 numbers stored beyond the class.
    case onehot
    /// L_sce + α_dbr·L_dbr with the teacher's 2 distances per instance per epoch.
    case dbr
    /// RDED's KL(batchmean) at τ against the teacher's K probabilities per instance per epoch.
    case soft
}

public struct DistillConfig: Sendable, Equatable {
    public var ipc = 10
    public var factor = 2
    /// Candidate pool per class (RDED's mipc) and crops per candidate (num_crop).
    public var mipc = 60
    public var numCrops = 5
    public var epsilon = 0.5
    public var eta = 0.05
    public var nrrSteps = 30
    public var alphaBN = 0.01
    public var firstBNMultiplier = 10.0
    public var nrrOptimizer = RefinementOptimizer.adam
    public var alphaDBR = 1.0
    public var dbrTau = 1.0
    public var distance = DBRDistance.crossEntropy
    public var dbrLoss = DBRLoss.l1
    public var kdTau = 4.0
    public var studentEpochs = 150
    public var batchSize = 50
    public var studentLR = 2e-3
    public var studentWeightDecay = 0.01
    public var teacherEpochs = 3
    public var teacherTrain = 12000
    public var teacherBatch = 64
    public var teacherLR = 2e-3
    public var teacherWidths = [16, 32, 64]
    public var studentWidths = [8, 16, 32]
    public var testLimit = 10000

    public init() {}

    public static func == (a: DistillConfig, b: DistillConfig) -> Bool { a.summary == b.summary }

    /// Every setting, as provenance.
    public var summary: [String: String] {
        ["ipc": "\(ipc)", "factor": "\(factor)", "mipc": "\(mipc)", "num_crops": "\(numCrops)", "epsilon": "\(epsilon)", "eta": "\(eta)",
         "nrr_steps": "\(nrrSteps)", "alpha_bn": "\(alphaBN)", "first_bn_multiplier": "\(firstBNMultiplier)",
         "nrr_optimizer": nrrOptimizer == .adam ? "adam" : "gradient_descent", "alpha_dbr": "\(alphaDBR)", "dbr_tau": "\(dbrTau)",
         "distance": distance == .crossEntropy ? "cross_entropy" : "l2", "dbr_loss": dbrLoss == .l1 ? "l1" : "mse", "kd_tau": "\(kdTau)",
         "student_epochs": "\(studentEpochs)", "batch_size": "\(batchSize)", "student_lr": "\(studentLR)",
         "student_weight_decay": "\(studentWeightDecay)", "teacher_epochs": "\(teacherEpochs)", "teacher_train": "\(teacherTrain)",
         "teacher_batch": "\(teacherBatch)", "teacher_lr": "\(teacherLR)", "teacher_widths": teacherWidths.map(String.init).joined(separator: ","),
         "student_widths": studentWidths.map(String.init).joined(separator: ","), "test_limit": "\(testLimit)"]
    }

    public func validate() throws {
        try check(ipc >= 1, "ipc", "≥ 1", ipc)
        try check(factor >= 1 && factor <= 4, "factor", "in [1, 4]", factor)
        try check(mipc >= 1, "mipc", "≥ 1", mipc)
        try check(ipc * factor * factor <= mipc, "ipc·factor²", "≤ the candidate pool mipc (\(mipc))", ipc * factor * factor)
        try check(numCrops >= 1, "num_crops", "≥ 1", numCrops)
        try RefinementConfig(epsilon: epsilon, eta: eta, steps: nrrSteps, alphaBN: alphaBN, firstBNMultiplier: firstBNMultiplier).validate()
        try check(alphaDBR.isFinite && alphaDBR >= 0, "alpha_dbr", "finite and ≥ 0", alphaDBR)
        try check(dbrTau.isFinite && dbrTau > 0, "dbr_tau", "finite and > 0", dbrTau)
        try check(kdTau.isFinite && kdTau > 0, "kd_tau", "finite and > 0", kdTau)
        try check(studentEpochs >= 1 && teacherEpochs >= 0, "epochs", "student ≥ 1, teacher ≥ 0", "\(studentEpochs), \(teacherEpochs)")
        try check(batchSize >= 2 && teacherBatch >= 2, "batch sizes", "≥ 2", "\(batchSize), \(teacherBatch)")
        try check(studentLR > 0 && teacherLR > 0, "learning rates", "> 0", "\(studentLR), \(teacherLR)")
        try check(teacherTrain >= 10 && testLimit >= 1, "teacher_train/test_limit", "≥ 10 and ≥ 1", "\(teacherTrain), \(testLimit)")
    }
}

/// Fashion-MNIST in the teacher's input space: (x/255 − 0.2860)/0.3530.
public enum FashionMNIST {
    public static let mean = 0.2860, std = 0.3530
    public static var pixelRange: ClosedRange<Double> { ((0 - mean) / std)...((1 - mean) / std) }

    public static func normalised(_ d: ImageDataset) -> Tensor {
        let (n, h, w) = (d.images.shape[0], d.images.shape[1], d.images.shape[2])
        return Tensor(unchecked: [n, 1, h, w], d.images.data.map { ($0 - mean) / std })
    }
}

/// One student step's augmentation: which images, their flips, the CutMix partners and box.
public struct RelabelStep: Sendable {
    public var indices: [Int]
    public var flips: [Bool]
    public var partners: [Int]
    public var box: CutMixBox
}

public enum Distillation {
    /// Rows `idx` of x.
    static func rows(_ x: Tensor, _ idx: [Int]) -> Tensor {
        let per = x.count / x.shape[0]
        var d = [Double]()
        d.reserveCapacity(idx.count * per)
        for i in idx { d += x.data[(i * per)..<((i + 1) * per)] }
        return Tensor(unchecked: [idx.count] + Array(x.shape.dropFirst()), d)
    }

    /// Trains a fresh teacher with Adam (lr, β 0.9/0.999) on cross-entropy; BN in training mode.
    public static func trainTeacher(x: Tensor, y: [Int], config: DistillConfig, rng: inout RNG, progress: (String) -> Void = { _ in }) throws -> NRRTeacher {
        let t = try NRRTeacher(channels: x.shape[1], widths: config.teacherWidths, classes: 10, rng: &rng)
        try train(t, epochs: config.teacherEpochs, batches: { rng in
            let p = rng.permutation(x.shape[0])
            return stride(from: 0, to: p.count - 1, by: config.teacherBatch).map { Array(p[$0..<Swift.min($0 + config.teacherBatch, p.count)]) }
        }, lr: config.teacherLR, weightDecay: 0, decoupled: false, rng: &rng, progress: progress) { tape, vars, idx, _ in
            let o = try t.forward(tape.constant(rows(x, idx)), vars, training: true)
            return (try crossEntropy(o.logits, target: Tensor(idx.map { Double(y[$0]) })), o.running)
        }
        return t
    }

    /// The generic loop: for each epoch, batches from `batches`, the loss from `loss`, an (AdamW or Adam)
    /// step with the learning rate times `schedule(epoch)`, and the running statistics taken over.
    static func train(_ model: NRRTeacher, epochs: Int, batches: (inout RNG) -> [[Int]], lr: Double, weightDecay: Double, decoupled: Bool,
                      schedule: (Int) throws -> Double = { _ in 1 }, rng: inout RNG, progress: (String) -> Void,
                      loss: (Tape, [Var], [Int], Int) throws -> (Var, [(Tensor, Tensor)])) throws {
        var opt: any Optimizer = decoupled ? try AdamW(model.parameters, lr: lr, weightDecay: weightDecay)
                                           : try Adam(model.parameters, lr: lr, weightDecay: weightDecay)
        var step = 0
        for epoch in 0..<epochs {
            let m = try schedule(epoch)
            for g in opt.groups.indices { opt.groups[g].lr = lr * m }
            var total = 0.0, count = 0
            for idx in batches(&rng) {
                let tape = Tape()
                let vars = model.parameters.map { $0.leaf(on: tape) }
                let (l, running) = try loss(tape, vars, idx, step)
                step += 1
                let grads = try tape.gradients(of: l, wrt: vars)
                try opt.step(grads: grads)
                for (i, r) in running.enumerated() {
                    model.runningMean[i] = r.0
                    model.runningVar[i] = r.1
                }
                total += l.value.data[0]
                count += 1
            }
            progress("epoch \(epoch + 1)/\(epochs): loss \(String(format: "%.4f", total / Double(Swift.max(count, 1))))")
        }
    }

    /// Per class: mipc random candidates of the class from (x, y).
    public static func pools(x: Tensor, y: [Int], mipc: Int, rng: inout RNG) throws -> [[Int]] {
        try (0..<10).map { c in
            let members = y.indices.filter { y[$0] == c }
            try check(members.count >= mipc, "mipc", "≤ the \(members.count) training images of class \(c)", mipc)
            let p = rng.permutation(members.count)
            return p.prefix(mipc).map { members[$0] }
        }
    }

    /// The distilled images of one construction: [10·ipc, 1, H, W] with labels (class-major).
    public static func initialSet(_ kind: InitialSet, x: Tensor, y: [Int], teacher: NRRTeacher, config: DistillConfig, rng: inout RNG,
                                  progress: (String) -> Void = { _ in }, nrrSeconds: ((Double) -> Void)? = nil) throws -> (images: Tensor, labels: [Int]) {
        try config.validate()
        let pools = try pools(x: x, y: y, mipc: config.mipc, rng: &rng)
        let (h, w) = (x.shape[2], x.shape[3])
        var parts: [Tensor] = [], labels: [Int] = []
        for c in 0..<10 {
            switch kind {
            case .random:
                parts.append(rows(x, Array(pools[c].prefix(config.ipc))))
            case .rded, .nrrdd:
                let pool = rows(x, pools[c])
                let sampler = RandomResizedCropBoxes()
                let boxes = try pools[c].map { _ in try (0..<config.numCrops).map { _ in try sampler.sample(height: h, width: w, rng: &rng) } }
                let sel = try InitialDataSelection.select(images: pool, labels: [Int](repeating: c, count: pools[c].count), boxes: boxes,
                                                          teacher: teacher, size: h, factor: config.factor, n: config.ipc * config.factor * config.factor,
                                                          ordering: kind == .rded ? .rded : .cidd)
                var images = try Stitching.mix(sel.crops, size: h, factor: config.factor, ipc: config.ipc)
                if kind == .nrrdd {
                    let cfg = RefinementConfig(epsilon: config.epsilon, eta: config.eta, steps: config.nrrSteps, alphaBN: config.alphaBN,
                                               firstBNMultiplier: config.firstBNMultiplier, optimizer: config.nrrOptimizer,
                                               clip: FashionMNIST.pixelRange)
                    let start = Date()
                    images = try NonCriticalRegionRefinement.refine(images, labels: [Int](repeating: c, count: config.ipc), teacher: teacher, config: cfg).refined
                    nrrSeconds?(Date().timeIntervalSince(start))
                }
                parts.append(images)
            }
            labels += [Int](repeating: c, count: config.ipc)
            progress("\(kind.rawValue): class \(c + 1)/10")
        }
        return (try Tensor.concatenate(parts, axis: 0), labels)
    }

    /// The seeded augmentation of every student step: shuffled batches, horizontal flips (p = ½), and
    /// RDED's CutMix (λ ~ Beta(1, 1), centre uniform, partners a permutation of the batch).
    public static func relabelPlan(count: Int, height: Int, width: Int, epochs: Int, batchSize: Int, rng: inout RNG) throws -> [[RelabelStep]] {
        try (0..<epochs).map { _ in
            let p = rng.permutation(count)
            return try stride(from: 0, to: count, by: batchSize).map { s in
                let idx = Array(p[s..<Swift.min(s + batchSize, count)])
                let flips = idx.map { _ in rng.bernoulli(0.5) }
                let partners = rng.permutation(idx.count)
                let box = try KnowledgeTransfer.cutmixBox(height: height, width: width, lam: rng.beta(1, 1),
                                                          cx: rng.int(below: height), cy: rng.int(below: width))
                return RelabelStep(indices: idx, flips: flips, partners: partners, box: box)
            }
        }
    }

    /// The augmented, CutMixed batch of one step.
    public static func batch(_ images: Tensor, _ step: RelabelStep) throws -> Tensor {
        var b = rows(images, step.indices)
        let (c, h, w) = (b.shape[1], b.shape[2], b.shape[3])
        for (i, f) in step.flips.enumerated() where f {
            for p in 0..<c { for u in 0..<h {
                let o = ((i * c + p) * h + u) * w
                let row = Array(b.data[o..<(o + w)])
                for v in 0..<w { b.data[o + v] = row[w - 1 - v] }
            } }
        }
        b = try KnowledgeTransfer.cutmix(b, randIndex: step.partners, box: step.box)
        return b
    }

    /// The teacher's stored targets for every step: DBR's (d_org, d_aug) [B, 2] or the soft labels [B, K] at τ.
    public static func teacherTargets(images: Tensor, labels: [Int], plan: [[RelabelStep]], teacher: NRRTeacher, kind: LabelKind,
                                      config: DistillConfig) throws -> [[Tensor]] {
        try plan.map { epoch in
            try epoch.map { step in
                guard kind != .onehot else { return Tensor(zeros: [0]) }
                let x = try batch(images, step)
                let (tape, o) = try teacher.forward(x)
                switch kind {
                case .soft: return try (o.logits.value * (1 / config.kdTau)).softmax(axis: 1)
                default:
                    let yo = step.indices.map { labels[$0] }, ya = step.partners.map { yo[$0] }
                    return try withExtendedLifetime(tape) {
                        try DistanceBasedRepresentative.pair(o.logits, yOrg: yo, yAug: ya, tau: config.dbrTau, kind: config.distance).value
                    }
                }
            }
        }
    }

    /// Trains a student (the teacher's architecture, fresh weights) from the stored targets: AdamW, RDED's
    /// cosine schedule that ends at 0.5.
    public static func trainStudent(images: Tensor, labels: [Int], plan: [[RelabelStep]], targets: [[Tensor]], kind: LabelKind,
                                    config: DistillConfig, rng: inout RNG, progress: (String) -> Void = { _ in }) throws -> NRRTeacher {
        let s = try NRRTeacher(channels: images.shape[1], widths: config.studentWidths, classes: 10, rng: &rng)
        let (h, w) = (images.shape[2], images.shape[3])
        var epoch = 0, inEpoch = 0
        let flat = plan.flatMap { $0 }, flatTargets = targets.flatMap { $0 }
        var cursor = 0
        try train(s, epochs: plan.count, batches: { _ in
            defer { epoch += 1 }
            inEpoch = 0
            return plan[epoch].map(\.indices)
        }, lr: config.studentLR, weightDecay: config.studentWeightDecay, decoupled: true,
                  schedule: { try KnowledgeTransfer.cosineMultiplier(epoch: $0, epochs: config.studentEpochs) }, rng: &rng, progress: progress) { tape, vars, _, _ in
            let step = flat[cursor], target = flatTargets[cursor]
            cursor += 1
            inEpoch += 1
            let x = try batch(images, step)
            let o = try s.forward(tape.constant(x), vars, training: true)
            let yo = step.indices.map { labels[$0] }, ya = step.partners.map { yo[$0] }
            let lam = KnowledgeTransfer.lambdaEffective(step.box, height: h, width: w)
            switch kind {
            case .onehot:
                return (try DistanceBasedRepresentative.sce(o.logits, yOrg: yo, yAug: ya, lamEff: lam), o.running)
            case .dbr:
                let dS = try DistanceBasedRepresentative.pair(o.logits, yOrg: yo, yAug: ya, tau: config.dbrTau, kind: config.distance)
                let l = try DistanceBasedRepresentative.sce(o.logits, yOrg: yo, yAug: ya, lamEff: lam)
                    + DistanceBasedRepresentative.loss(student: dS, teacher: target, kind: config.dbrLoss) * config.alphaDBR
                return (l, o.running)
            case .soft:
                return (try klDiv(logSoftmax(o.logits * (1 / config.kdTau), axis: 1), target: target), o.running)
            }
        }
        return s
    }

    /// Label storage of a set in numbers: one-hot 0 (the class is implied by the image), DBR 2 per
    /// instance per epoch, soft K per instance per epoch.
    public static func storedNumbers(_ kind: LabelKind, instances: Int, epochs: Int, classes: Int = 10) -> Int {
        switch kind {
        case .onehot: return 0
        case .dbr: return instances * epochs * 2
        case .soft: return instances * epochs * classes
        }
    }
}
