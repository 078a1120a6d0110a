// The CPU-sized reproduction of DARTS-GT's ablation (issue 14 §8): a seeded CLUSTER-like stochastic-block-model regression task,
// the first-order search (dartsgt.search's steps), discretisation, retraining of the discrete model from scratch, the paper's
// baselines (one uniform operator in every layer, a random operator per layer), test MAE, and the explainer's Specialization and
// Focus on each trained model.

import Certification
import Foundation
import Ops
import Tensor

/// The SBM task: each graph has 10–16 nodes in 2 or 3 communities (edge probability 0.5 inside, 0.08 across); node features are a
/// noisy one-hot of the community (channels 0–2) plus N(0, 0.25) noise; edge features carry a noisy same-community flag (channel 0);
/// the target is the share of intra-community edges. `d` ≥ 3 features.
public func sbmGraphs(count: Int, d: Int, rng: inout RNG) -> [AuditGraph] {
    (0..<count).map { _ in
        let n = 10 + rng.int(below: 7), k = 2 + rng.int(below: 2)
        let comm = (0..<n).map { _ in rng.int(below: k) }
        var s: [Int] = [], t: [Int] = []
        for i in 0..<n { for j in 0..<n where i != j && rng.uniform() < (comm[i] == comm[j] ? 0.5 : 0.08) { s.append(j); t.append(i) } }
        if s.isEmpty { s = [0]; t = [1] }
        var x = (0..<(n * d)).map { _ in 0.5 * rng.normal() }
        for i in 0..<n { x[i * d + comm[i]] += 1 }
        var ea = (0..<(s.count * d)).map { _ in 0.5 * rng.normal() }
        var same = 0.0
        for e in 0..<s.count where comm[s[e]] == comm[t[e]] { ea[e * d] += 1; same += 1 }
        return AuditGraph(x: Tensor(unchecked: [n, d], x), edges: EdgeList(nodes: n, src: s, dst: t),
                          edgeAttr: Tensor(unchecked: [s.count, d], ea), y: [same / Double(s.count)])
    }
}

/// Graphs concatenated into one batch.
public func batch(_ gs: [AuditGraph]) -> GraphBatch {
    var x: [Double] = [], ea: [Double] = [], s: [Int] = [], t: [Int] = [], groups: [[Int]] = [], y: [Double] = []
    var off = 0
    let d = gs[0].x.shape[1]
    for g in gs {
        x += g.x.data; ea += g.edgeAttr.data
        s += g.edges.src.map { $0 + off }; t += g.edges.dst.map { $0 + off }
        groups.append(Array(off..<(off + g.x.shape[0]))); y.append(g.y[0])
        off += g.x.shape[0]
    }
    return GraphBatch(x: Tensor(unchecked: [off, d], x), edges: EdgeList(nodes: off, src: s, dst: t),
                      edgeAttr: Tensor(unchecked: [s.count, d], ea), graphs: groups, y: Tensor(y))
}

/// Fresh weights (PyTorch-like scales) and BatchNorm buffers of an L-layer model with every operator present.
public func initialWeights(layers: Int, d: Int, heads: Int, edgeStream: Bool, rng: inout RNG) -> (weights: [String: Tensor], buffers: [String: Tensor]) {
    var w: [String: Tensor] = [:], b: [String: Tensor] = [:]
    for l in 0..<layers {
        for (name, shape) in GNNOperator.allCases.flatMap({ DiscreteModel.required(op: $0, d: d, heads: heads, edgeStream: edgeStream) }) {
            let key = "layers.\(l).\(name)"
            if w[key] != nil || b[key] != nil { continue }
            if name.hasSuffix("running_mean") { b[key] = Tensor(zeros: shape) } else if name.hasSuffix("running_var") { b[key] = Tensor(ones: shape) }
            else if name.hasSuffix("bn.weight") || name.hasSuffix("bn_kv.weight") || name.hasSuffix("norm1_attn.weight") || name.hasSuffix("norm2.weight") {
                w[key] = Tensor(ones: shape)
            } else if name == "edge_gate" { w[key] = Tensor(scalar: 0.1) }
            else {
                let fanIn = shape.count == 2 ? shape[1] : shape.count == 3 ? shape[2] : d
                let bound = 1 / Double(fanIn).squareRoot()
                w[key] = rng.uniformTensor(shape, -bound, bound)
            }
        }
    }
    let bound = 1 / Double(d).squareRoot()
    w["head.weight"] = rng.uniformTensor([1, d], -bound, bound); w["head.bias"] = rng.uniformTensor([1], -bound, bound)
    return (w, b)
}

/// Trains `model` (train mode, running statistics into its store) with Adam on mini-batches for `epochs`.
public func train(model: SearchModel, weights: [String: Tensor], batches: [GraphBatch], epochs: Int, lr: Double) throws -> [String: Tensor] {
    let names = weights.keys.sorted()
    let params = names.map { Parameter($0, weights[$0]!) }
    let adam = try Adam(params, lr: lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0)
    for _ in 0..<epochs {
        for b in batches {
            let tape = Tape()
            var w: [String: Var] = [:]
            for p in params { w[p.name] = tape.leaf(p.value) }
            let loss = try model.loss(w, alpha: nil, batch: b, tape: tape)
            try adam.step(grads: try tape.gradients(of: loss, wrt: names.map { w[$0]! }))
        }
    }
    return Dictionary(uniqueKeysWithValues: params.map { ($0.name, $0.value) })
}

/// One reproduction arm's result.
public struct ArmResult: Sendable {
    public var arm: String, ops: [Int], testMAE: Double, specializationMedian: Double, focusMedian: Double
    public init(arm: String, ops: [Int], testMAE: Double, specializationMedian: Double, focusMedian: Double) {
        (self.arm, self.ops, self.testMAE, self.specializationMedian, self.focusMedian) = (arm, ops, testMAE, specializationMedian, focusMedian)
    }
}

/// One seed of the reproduction, split into independent arms: everything drawn before the arms (the graphs, the search's
/// initial weights and α, the random arm's operators) and the random stream the arms re-initialise from. Arm `j` draws the
/// (j + 1)-th fresh initialisation of that stream, exactly as when the arms run one after another, so any arm can run alone
/// (a unit of `certify plan search`) and give the bits of the sequential run. Only the searched arm needs the search.
public struct Reproduction {
    public let seed: UInt64, layers: Int, d: Int, heads: Int, searchEpochs: Int, trainEpochs: Int, batchSize: Int
    let trainSet: [AuditGraph], test: [AuditGraph]
    let pairs: [(GraphBatch, GraphBatch)]
    let searchInit: (weights: [String: Tensor], buffers: [String: Tensor])
    let alpha0: Tensor
    /// The "random per layer" arm's operators (drawn after α₀; the search and discretisation draw nothing).
    public let randomOps: [Int]
    /// The stream right after `randomOps`: the arms' initialisations, in arm order.
    let armStream: RNG

    public init(seed: UInt64, layers: Int = 2, d: Int = 8, heads: Int = 2, searchEpochs: Int = 6, trainEpochs: Int = 25, batchSize: Int = 16) {
        (self.seed, self.layers, self.d, self.heads, self.searchEpochs, self.trainEpochs, self.batchSize) =
            (seed, layers, d, heads, searchEpochs, trainEpochs, batchSize)
        var rng = RNG(seed: 1000 + seed)
        let all = sbmGraphs(count: 120, d: d, rng: &rng)
        trainSet = Array(all[0..<80])
        test = Array(all[80..<120])
        // Search: the train split split 60/40 into D_tr / D_val; an epoch is zip(D_tr, D_val).
        let dTr = Reproduction.batches(Array(trainSet[0..<48]), size: batchSize), dVal = Reproduction.batches(Array(trainSet[48..<80]), size: batchSize)
        pairs = Array((0..<searchEpochs).map { _ in Array(zip(dTr, dVal)) }.joined())
        searchInit = initialWeights(layers: layers, d: d, heads: heads, edgeStream: true, rng: &rng)
        alpha0 = rng.normalTensor([layers, 3]) * 1e-3
        randomOps = (0..<layers).map { _ in rng.int(below: 3) }
        armStream = rng
    }

    /// The seed's 120 graphs: 80 training (48 D_tr, 32 D_val), 40 test.
    public var graphs: [AuditGraph] { trainSet + test }

    static func batches(_ gs: [AuditGraph], size: Int) -> [GraphBatch] {
        stride(from: 0, to: gs.count, by: size).map { batch(Array(gs[$0..<Swift.min($0 + size, gs.count)])) }
    }

    /// The arms, in order: the searched operators, one uniform operator in every layer per operator, a random operator per layer.
    public static let armNames: [String] = ["DARTS-GT (searched)"] + GNNOperator.allCases.map { "uniform \($0.name)" } + ["random per layer"]

    /// Arm `arm`'s operator per layer; the searched arm's come from the searched α (`alpha`).
    public func ops(arm: Int, alpha: Tensor?) throws -> [Int] {
        let uniform = GNNOperator.allCases
        switch arm {
        case 0:
            guard let alpha else { throw InputError(file: "reproduction", object: "arm 0", "the searched arm needs the search's α") }
            return try discretise(alpha, groups: Array(0..<layers))
        case 1...uniform.count: return Array(repeating: uniform[arm - 1].rawValue, count: layers)
        case uniform.count + 1: return randomOps
        default: throw InputError(file: "reproduction", object: "arm \(arm)", "there are \(Reproduction.armNames.count) arms")
        }
    }

    /// The first-order search from α₀: the final α and the search's wall time.
    public func search(progress: (String) -> Void = { _ in }) throws -> (alpha: Tensor, seconds: Double) {
        let searchModel = SearchModel(layers: layers, groups: Array(0..<layers), heads: heads, edgeStream: true, buffers: searchInit.buffers,
                                      store: BufferStore(searchInit.buffers))
        progress("seed \(seed): search (\(pairs.count) steps)")
        let t0 = Date()
        let trace = try DARTSGT.search(model: searchModel, weights: searchInit.weights, alpha: alpha0, pairs: pairs)
        let seconds = Date().timeIntervalSince(t0)
        progress(String(format: "seed %d: search of %d epochs (%d steps) took %.2f s, %.3f s per epoch", Int(seed), searchEpochs, pairs.count,
                        seconds, seconds / Double(Swift.max(searchEpochs, 1))))
        return (trace.alphas.last ?? alpha0, seconds)
    }

    /// Arm `arm` with operators `ops`: re-initialised (B.8), trained, test MAE, the explainer's medians (k = 2) on the test graphs.
    public func train(arm: Int, ops: [Int], progress: (String) -> Void = { _ in }) throws -> ArmResult {
        guard Reproduction.armNames.indices.contains(arm) else {
            throw InputError(file: "reproduction", object: "arm \(arm)", "there are \(Reproduction.armNames.count) arms")
        }
        let name = Reproduction.armNames[arm]
        progress("seed \(seed): train \(name) \(ops)")
        var rng = armStream
        var init0 = initialWeights(layers: layers, d: d, heads: heads, edgeStream: true, rng: &rng)
        for _ in 0..<arm { init0 = initialWeights(layers: layers, d: d, heads: heads, edgeStream: true, rng: &rng) }
        let groups = Array(0..<layers)
        let testBatch = batch(test), trainBatches = Reproduction.batches(trainSet, size: batchSize)
        let store = BufferStore(init0.buffers)
        var model = SearchModel(layers: layers, groups: groups, heads: heads, edgeStream: true, buffers: init0.buffers,
                                discrete: ops.map { GNNOperator(rawValue: $0)! }, store: store)
        let w = try DARTSGT.train(model: model, weights: init0.weights, batches: trainBatches, epochs: trainEpochs, lr: 0.005)
        model.training = false
        let tape = Tape()
        let pred = try model.predict(w.mapValues { tape.constant($0) }, alpha: nil, batch: testBatch, tape: tape).value
        let mae = zip(pred.data, testBatch.y.data).map { Swift.abs($0 - $1) }.reduce(0, +) / Double(test.count)
        var layerDicts: [[String: Tensor]] = []
        for l in 0..<layers {
            var dct: [String: Tensor] = [:]
            for (k, v) in w where k.hasPrefix("layers.\(l).") { dct[String(k.dropFirst("layers.\(l).".count))] = v }
            for (k, v) in store.t where k.hasPrefix("layers.\(l).") { dct[String(k.dropFirst("layers.\(l).".count))] = v }
            layerDicts.append(dct)
        }
        let dm = DiscreteModel(ops: model.discrete!, heads: heads, edgeStream: true, addPooling: false, task: .regression,
                               layers: layerDicts, head: [(w["head.weight"]!, w["head.bias"]!)], d: d)
        let reports = try graphAudit(model: dm, graphs: test, k: 2)
        return ArmResult(arm: name, ops: ops, testMAE: mae, specializationMedian: summary(reports.map(\.specialization)).median,
                         focusMedian: summary(reports.map(\.focus)).median)
    }
}

/// One seed: search → discretise → retrain, the uniform and random baselines, test MAE and the explainer medians (k = 2).
public func reproduceSeed(seed: UInt64, layers: Int = 2, d: Int = 8, heads: Int = 2, searchEpochs: Int = 6, trainEpochs: Int = 25,
                          batchSize: Int = 16, searchOnly: Bool = false,
                          progress: (String) -> Void = { _ in }) throws -> (alpha: Tensor, arms: [ArmResult], searchSeconds: Double) {
    let r = Reproduction(seed: seed, layers: layers, d: d, heads: heads, searchEpochs: searchEpochs, trainEpochs: trainEpochs, batchSize: batchSize)
    let (alpha, searchSeconds) = try r.search(progress: progress)
    if searchOnly { return (alpha, [], searchSeconds) }
    let arms = try Reproduction.armNames.indices.map { try r.train(arm: $0, ops: try r.ops(arm: $0, alpha: alpha), progress: progress) }
    return (alpha, arms, searchSeconds)
}
