// DiffROAR (NeurIPS 2021 §3, Eq. 2): DiffROAR_M(A, k) = PredPower_M(A^top_k) − PredPower_M(A^bot_k),
// where PredPower is estimated by retraining a fresh model of class M on the unmasked train set and
// measuring its accuracy on the test set masked the same way. The official repository has no
// retraining script (the notebook's "Training models from scratch" section was a TODO); its pooling
// (01_fig_in_real_data.ipynb) takes the Cartesian product of the runs and reports mean and np.std.

import Certification
import Foundation
import Tensor

/// A model class M for DiffROAR: trains a fresh model on the train split and returns its test accuracy.
public protocol DiffROARLearner: Sendable {
    func fitAndScore(trainX: Tensor, trainY: [Int], testX: Tensor, testY: [Int], seed: UInt64) throws -> Double
}

/// Nearest class mean (squared Euclidean distance; ties to the lower class): a deterministic learner
/// for property checks (it ignores the seed).
public struct NearestClassMean: DiffROARLearner {
    public init() {}
    public func fitAndScore(trainX: Tensor, trainY: [Int], testX: Tensor, testY: [Int], seed: UInt64) throws -> Double {
        try NearestClassMean.fitAndScore(trainX: trainX, trainY: trainY, testX: testX, testY: testY)
    }

    public static func fitAndScore(trainX: Tensor, trainY: [Int], testX: Tensor, testY: [Int]) throws -> Double {
        let n = trainY.count, m = testY.count
        guard n > 0, m > 0, trainX.shape[0] == n, testX.shape[0] == m, trainX.count / n == testX.count / m else {
            throw ShapeError("NearestClassMean", "train \(trainX.shape) / \(n) labels, test \(testX.shape) / \(m) labels")
        }
        let d = trainX.count / n
        let classes = (trainY.max() ?? 0) + 1
        var means = [Double](repeating: 0, count: classes * d)
        var counts = [Int](repeating: 0, count: classes)
        for i in 0..<n {
            counts[trainY[i]] += 1
            for j in 0..<d { means[trainY[i] * d + j] += trainX.data[i * d + j] }
        }
        for c in 0..<classes where counts[c] > 0 { for j in 0..<d { means[c * d + j] /= Double(counts[c]) } }
        var correct = 0
        for i in 0..<m {
            var best = -1, bestDist = Double.infinity
            for c in 0..<classes where counts[c] > 0 {
                var s = 0.0
                for j in 0..<d { let t = testX.data[i * d + j] - means[c * d + j]; s += t * t }
                if s < bestDist { bestDist = s; best = c }
            }
            if best == testY[i] { correct += 1 }
        }
        return Double(correct) / Double(m)
    }
}

/// DiffROAR at one level k.
public struct DiffROARPoint: Sendable, Codable {
    public var k: Double
    /// Accuracies of the models retrained on top-k-kept data, one per seed.
    public var accTopKept: [Double]
    /// Accuracies of the models retrained on bottom-k-kept data, one per seed.
    public var accBottomKept: [Double]
    public var diffs: [Double]
    public var mean: Double
    public var std: Double
    /// Mask-only control: accuracies of the learner retrained on the kept indicator alone (top-k / bottom-k
    /// masks, one per seed). Well above `chance`, the mask's shape carries the label and the DiffROAR
    /// comparison is confounded unless the fill hides the mask.
    public var accMaskOnlyTop: [Double]? = nil
    public var accMaskOnlyBottom: [Double]? = nil
    /// The chance level of the test set (the majority-class rate).
    public var chance: Double? = nil
    /// Retraining runs on masked data that ended at chance (accuracy ≤ chance + 3 binomial standard
    /// errors): "top seed 2", "bottom seed 0". They stay in the mean and are listed here, never silently.
    public var chanceRuns: [String]? = nil

    public init(k: Double, accTopKept: [Double], accBottomKept: [Double], diffs: [Double], mean: Double, std: Double) {
        self.k = k
        self.accTopKept = accTopKept
        self.accBottomKept = accBottomKept
        self.diffs = diffs
        self.mean = mean
        self.std = std
    }
}

public enum DiffROAR {
    /// The notebook's pooling: diffs[i·r1 + j] = top[j] − bottom[i] over every pair of runs; mean and
    /// population standard deviation (np.std, ddof 0).
    public static func aggregate(topKept: [Double], bottomKept: [Double]) throws -> (diffs: [Double], mean: Double, std: Double) {
        guard !topKept.isEmpty, !bottomKept.isEmpty else { throw ShapeError("DiffROAR", "needs at least one run per arm") }
        var diffs: [Double] = []
        for b in bottomKept { for t in topKept { diffs.append(t - b) } }
        let mean = diffs.reduce(0, +) / Double(diffs.count)
        let v = diffs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(diffs.count)
        return (diffs, mean, v.squareRoot())
    }

    /// A labelled split with its attributions (same shape as x).
    public struct AttributedSplit: Sendable {
        public var x: Tensor
        public var y: [Int]
        public var attributions: Tensor
        public init(x: Tensor, y: [Int], attributions: Tensor) {
            self.x = x
            self.y = y
            self.attributions = attributions
        }
    }

    /// Retrains `learner` on top-k-kept and bottom-k-kept data for each k and seed, with masked coordinates
    /// set to the constant `fill` (the code: the mean of the whole training tensor).
    public static func evaluate(train: AttributedSplit, test: AttributedSplit, ks: [Double], seeds: [UInt64],
                                fill: Double, learner: some DiffROARLearner, jobs: Int = 1,
                                progress: @escaping @Sendable (String) -> Void = { _ in }) throws -> [DiffROARPoint] {
        try evaluate(train: train, test: test, ks: ks, seeds: seeds, masking: .constant(fill), learner: learner, jobs: jobs, progress: progress)
    }

    /// The chance level of labels y: the majority-class rate.
    public static func chanceLevel(_ y: [Int]) -> Double {
        guard !y.isEmpty else { return 0 }
        var counts: [Int: Int] = [:]
        for v in y { counts[v, default: 0] += 1 }
        return Double(counts.values.max()!) / Double(y.count)
    }

    /// Whether an accuracy on m test points is at chance: ≤ chance + 3·√(chance(1 − chance)/m).
    public static func atChance(_ acc: Double, chance: Double, m: Int) -> Bool {
        acc <= chance + 3 * (chance * (1 - chance) / Double(Swift.max(m, 1))).squareRoot()
    }

    /// Retrains `learner` on top-k-kept and bottom-k-kept data for each k and seed, filling removed
    /// coordinates by `masking`. With `maskOnly`, also retrains on the kept indicators alone (the mask-only
    /// control). The runs of one k run `jobs` at a time; each run's seed fixes its result, so the order of
    /// execution does not matter. `progress` is told each finished run (from any thread, serialised).
    public static func evaluate(train: AttributedSplit, test: AttributedSplit, ks: [Double], seeds: [UInt64],
                                masking: MaskingScheme, maskOnly: Bool = false, learner: some DiffROARLearner, jobs: Int = 1,
                                progress: @escaping @Sendable (String) -> Void = { _ in }) throws -> [DiffROARPoint] {
        let box = ParallelBox<Double>(runs(ks: ks, seeds: seeds, maskOnly: maskOnly).count)
        try compute(train: train, test: test, ks: ks, seeds: seeds, masking: masking, maskOnly: maskOnly, learner: learner, jobs: jobs,
                    progress: progress) { i, r, _ in
            box.lock.lock()
            defer { box.lock.unlock() }
            box.results[i] = r
        }
        return try assemble(ks: ks, seeds: seeds, maskOnly: maskOnly, accuracies: try box.results.map { try $0!.get() }, testY: test.y,
                            progress: progress)
    }

    /// One independent retraining of DiffROAR: level `k` (index `ki` into ks), the kept arm, image data
    /// (kind 0) or the kept indicators alone (kind 1, the mask-only control), and the seed.
    public struct Run: Sendable, Equatable {
        public var ki: Int
        public var kind: Int
        public var arm: Int
        public var seed: UInt64
    }

    /// Every retraining of an evaluation, in the order of its results: for each k, for each kind, for
    /// each arm (top, bottom), for each seed.
    public static func runs(ks: [Double], seeds: [UInt64], maskOnly: Bool) -> [Run] {
        ks.indices.flatMap { ki in (0..<(maskOnly ? 2 : 1)).flatMap { kind in KeptCoordinates.allCases.indices.flatMap { a in
            seeds.map { Run(ki: ki, kind: kind, arm: a, seed: $0) } } } }
    }

    /// A run's readable name ("k = 0.05, keep top, seed 0").
    public static func name(_ r: Run, ks: [Double]) -> String {
        String(format: "k = %.2f, %@keep %@, seed %llu", ks[r.ki], r.kind == 0 ? "" : "mask only, ", KeptCoordinates.allCases[r.arm].rawValue, r.seed)
    }

    /// Runs the retrainings whose indices (into `runs`) are in `selected` (all when nil), `jobs` at a
    /// time, and tells `done(index, accuracy or error, start)` as each finishes (from any thread). `claim(index)`
    /// is asked right before a run starts; a run it declines is skipped (another worker has it). The masked
    /// data of a level and arm is made once for all its selected runs; each run's result depends only
    /// on its own level, arm, kind and seed, so any subset gives the same numbers as the whole.
    public static func compute(train: AttributedSplit, test: AttributedSplit, ks: [Double], seeds: [UInt64],
                               masking: MaskingScheme, maskOnly: Bool = false, learner: some DiffROARLearner, jobs: Int = 1,
                               selected: Set<Int>? = nil, progress: @escaping @Sendable (String) -> Void = { _ in },
                               claim: @escaping @Sendable (Int) throws -> Bool = { _ in true },
                               done: @escaping @Sendable (Int, Result<Double, Error>, Date) throws -> Void) throws {
        guard train.x.shape == train.attributions.shape else {
            throw ShapeError("DiffROAR", "train attributions \(train.attributions.shape) do not match the train data \(train.x.shape)")
        }
        guard test.x.shape == test.attributions.shape else {
            throw ShapeError("DiffROAR", "test attributions \(test.attributions.shape) do not match the test data \(test.x.shape)")
        }
        guard !seeds.isEmpty else { throw ShapeError("DiffROAR", "needs at least one seed") }
        for k in ks { _ = try AttributionMasking.maskedCount(k: k, dimension: 1) }
        let all = runs(ks: ks, seeds: seeds, maskOnly: maskOnly)
        let chosen = all.indices.filter { selected?.contains($0) ?? true }
        if chosen.isEmpty { return }
        let trainOrders = try AttributionMasking.priorityOrders(train.attributions)
        let testOrders = try AttributionMasking.priorityOrders(test.attributions)
        let arms = KeptCoordinates.allCases
        let total = chosen.count
        let counter = RunCounter()
        for (ki, k) in ks.enumerated() {
            let mine = chosen.filter { all[$0].ki == ki }
            if mine.isEmpty { continue }
            // per arm: (train input, test input) for the images and, with maskOnly, for the kept indicators
            var sets: [(Tensor, Tensor)?] = Array(repeating: nil, count: arms.count)
            var maskSets: [(Tensor, Tensor)?] = Array(repeating: nil, count: arms.count)
            for (a, keep) in arms.enumerated() where mine.contains(where: { all[$0].arm == a }) {
                let tr = try AttributionMasking.unmask(x: train.x, orders: trainOrders, k: k, keep: keep, fill: masking.constantValue)
                let te = try AttributionMasking.unmask(x: test.x, orders: testOrders, k: k, keep: keep, fill: masking.constantValue)
                let stream = UInt64(ki) &* 4 &+ UInt64(a) &* 2
                if mine.contains(where: { all[$0].arm == a && all[$0].kind == 0 }) {
                    if case .noisyLinear = masking { progress(String(format: "k = %.2f, keep %@: ROAD imputation of %d + %d images", k, keep.rawValue, train.y.count, test.y.count)) }
                    sets[a] = (try masking.apply(x: train.x, kept: tr.kept, constantMasked: tr.masked, stream: stream, jobs: jobs),
                               try masking.apply(x: test.x, kept: te.kept, constantMasked: te.masked, stream: stream &+ 1, jobs: jobs))
                }
                if maskOnly { maskSets[a] = (tr.kept, te.kept) }
            }
            let (imageSets, kepts) = (sets, maskSets)
            _ = try parallelMap(mine, jobs: jobs) { i in
                let run = all[i]
                guard try claim(i) else { return }
                let data = (run.kind == 0 ? imageSets[run.arm] : kepts[run.arm])!
                let started = Date()
                let result = Result { try learner.fitAndScore(trainX: data.0, trainY: train.y, testX: data.1, testY: test.y, seed: run.seed) }
                try done(i, result, started)
                let r = try result.get()
                let n = counter.increment()
                progress(String(format: "%@: accuracy %.4f  (%d/%d)", name(run, ks: ks), r, n, total))
            }
        }
    }

    /// The points of an evaluation from the accuracies of all its runs (in the order of `runs`).
    public static func assemble(ks: [Double], seeds: [UInt64], maskOnly: Bool, accuracies acc: [Double], testY: [Int],
                                progress: (String) -> Void = { _ in }) throws -> [DiffROARPoint] {
        let per = seeds.count * 2 * (maskOnly ? 2 : 1)
        guard acc.count == ks.count * per else { throw ShapeError("DiffROAR", "\(acc.count) accuracies for \(ks.count * per) runs") }
        let arms = KeptCoordinates.allCases
        let chance = chanceLevel(testY)
        var points: [DiffROARPoint] = []
        for (ki, k) in ks.enumerated() {
            let n = seeds.count, base = ki * per
            let top = Array(acc[base..<(base + n)]), bottom = Array(acc[(base + n)..<(base + 2 * n)])
            let agg = try aggregate(topKept: top, bottomKept: bottom)
            var point = DiffROARPoint(k: k, accTopKept: top, accBottomKept: bottom, diffs: agg.diffs, mean: agg.mean, std: agg.std)
            if maskOnly {
                point.accMaskOnlyTop = Array(acc[(base + 2 * n)..<(base + 3 * n)])
                point.accMaskOnlyBottom = Array(acc[(base + 3 * n)..<(base + 4 * n)])
            }
            point.chance = chance
            var flagged: [String] = []
            for (a, arm) in [top, bottom].enumerated() {
                for (i, v) in arm.enumerated() where atChance(v, chance: chance, m: testY.count) {
                    flagged.append("\(arms[a].rawValue) seed \(seeds[i])")
                }
            }
            point.chanceRuns = flagged
            if !flagged.isEmpty { progress(String(format: "k = %.2f: runs at chance (%.3f): %@", k, chance, flagged.joined(separator: ", "))) }
            points.append(point)
        }
        return points
    }
}

/// A thread-safe counter for progress messages.
final class RunCounter: @unchecked Sendable {
    private var n = 0
    private let lock = NSLock()
    func increment() -> Int {
        lock.lock()
        defer { lock.unlock() }
        n += 1
        return n
    }
}

final class ParallelBox<R>: @unchecked Sendable {
    var results: [Result<R, Error>?]
    var next = 0
    let lock = NSLock()
    init(_ n: Int) { results = Array(repeating: nil, count: n) }
}

/// Maps `f` over `items` with at most `jobs` concurrent calls; results in input order; the first
/// error (in input order) is rethrown.
public func parallelMap<T: Sendable, R: Sendable>(_ items: [T], jobs: Int, _ f: @escaping @Sendable (T) throws -> R) throws -> [R] {
    if jobs <= 1 || items.count <= 1 { return try items.map(f) }
    let box = ParallelBox<R>(items.count)
    DispatchQueue.concurrentPerform(iterations: Swift.min(jobs, items.count)) { _ in
        while true {
            box.lock.lock()
            let i = box.next
            box.next += 1
            box.lock.unlock()
            if i >= items.count { return }
            let r = Result { try f(items[i]) }
            box.lock.lock()
            box.results[i] = r
            box.lock.unlock()
        }
    }
    return try box.results.map { try $0!.get() }
}

// MARK: - Protocol entry

/// Synthetic data for DiffROAR properties: d coordinates, the label is carried by `signal` coordinates
/// (value ±1 plus noise), the rest is Gaussian noise.
func diffROARToyData(n: Int, d: Int, signal: Int, rng: inout RNG) -> (x: Tensor, y: [Int], signalMask: Tensor) {
    var x = [Double](repeating: 0, count: n * d), m = [Double](repeating: 0, count: n * d)
    var y: [Int] = []
    for i in 0..<n {
        let label = rng.int(below: 2)
        y.append(label)
        for j in 0..<d {
            if j < signal {
                x[i * d + j] = (label == 1 ? 1.0 : -1.0) + 0.5 * rng.normal()
                m[i * d + j] = 1
            } else {
                x[i * d + j] = rng.normal()
            }
        }
    }
    return (Tensor(unchecked: [n, d], x), y, Tensor(unchecked: [n, d], m))
}

let diffROARMethod = Method("input_gradients.diffroar", properties: [
    Property("k_one_is_zero") { rng in
        let tr = diffROARToyData(n: 60, d: 12, signal: 3, rng: &rng), te = diffROARToyData(n: 40, d: 12, signal: 3, rng: &rng)
        let r = try DiffROAR.evaluate(train: .init(x: tr.x, y: tr.y, attributions: rng.normalTensor(tr.x.shape)),
                                      test: .init(x: te.x, y: te.y, attributions: rng.normalTensor(te.x.shape)),
                                      ks: [1.0], seeds: [1, 2], fill: 0, learner: NearestClassMean())
        try require(r[0].mean == 0 && r[0].diffs.allSatisfy { $0 == 0 }, "DiffROAR(k = 1) = \(r[0].mean)")
    },
    Property("swap_negates") { rng in
        let tr = diffROARToyData(n: 60, d: 12, signal: 3, rng: &rng), te = diffROARToyData(n: 40, d: 12, signal: 3, rng: &rng)
        let (atr, ate) = (rng.normalTensor(tr.x.shape), rng.normalTensor(te.x.shape))
        func reversed(_ a: Tensor) -> Tensor { a.map { 100 - Swift.abs($0) } }
        let k = [0.1, 0.25, 0.5][rng.int(below: 3)]
        let r1 = try DiffROAR.evaluate(train: .init(x: tr.x, y: tr.y, attributions: atr), test: .init(x: te.x, y: te.y, attributions: ate),
                                       ks: [k], seeds: [0], fill: 0, learner: NearestClassMean())
        let r2 = try DiffROAR.evaluate(train: .init(x: tr.x, y: tr.y, attributions: reversed(atr)),
                                       test: .init(x: te.x, y: te.y, attributions: reversed(ate)),
                                       ks: [k], seeds: [0], fill: 0, learner: NearestClassMean())
        try require(r1[0].mean == -r2[0].mean, "DiffROAR \(r1[0].mean) vs reversed order \(r2[0].mean)")
    },
    Property("random_attribution_zero_mean") { rng in
        let tr = diffROARToyData(n: 80, d: 20, signal: 4, rng: &rng), te = diffROARToyData(n: 80, d: 20, signal: 4, rng: &rng)
        var values: [Double] = []
        for _ in 0..<24 {
            let r = try DiffROAR.evaluate(train: .init(x: tr.x, y: tr.y, attributions: rng.normalTensor(tr.x.shape)),
                                          test: .init(x: te.x, y: te.y, attributions: rng.normalTensor(te.x.shape)),
                                          ks: [0.2], seeds: [0], fill: 0, learner: NearestClassMean())
            values.append(r[0].mean)
        }
        let mean = values.reduce(0, +) / Double(values.count)
        let sd = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)).squareRoot()
        let se = sd / Double(values.count).squareRoot()
        // A statistical check run on many random seeds by the test suite: at 6 standard errors a
        // correct implementation fails about once in 10⁵ draws (t with 23 degrees of freedom).
        try require(Swift.abs(mean) < 6 * se + 1e-12, "random attribution: mean DiffROAR \(mean), standard error \(se)")
    },
    Property("oracle_positive") { rng in
        let tr = diffROARToyData(n: 80, d: 20, signal: 4, rng: &rng), te = diffROARToyData(n: 80, d: 20, signal: 4, rng: &rng)
        let jitter = { (m: Tensor, rng: inout RNG) in Tensor(unchecked: m.shape, m.data.map { $0 + 0.01 * rng.uniform() }) }
        let r = try DiffROAR.evaluate(train: .init(x: tr.x, y: tr.y, attributions: jitter(tr.signalMask, &rng)),
                                      test: .init(x: te.x, y: te.y, attributions: jitter(te.signalMask, &rng)),
                                      ks: [0.2], seeds: [0], fill: 0, learner: NearestClassMean())
        try require(r[0].mean > 0.2, "oracle attribution: DiffROAR(0.2) = \(r[0].mean)")
    },
]) { ctx in
    let agg = try DiffROAR.aggregate(topKept: ctx.tensor("acc_top_kept").data, bottomKept: ctx.tensor("acc_bottom_kept").data)
    return ["diffs": ctx.constant(Tensor(agg.diffs)), "mean": ctx.constant(Tensor(scalar: agg.mean)),
            "std": ctx.constant(Tensor(scalar: agg.std))]
}
