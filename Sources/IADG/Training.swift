// The per-epoch procedure of IADG's training (train.py main loop, §4 of the spec): from epoch 2 on,
// prototype selection by FPS → mask statistics pass (reset, accumulate, top-k) → training steps.
// These helpers drive the certified pieces with the suite's RNG (Dirichlet draws, FPS start).

import Foundation
import Ops
import Tensor

public enum IADGTraining {
    /// validate_for_prototype: the style statistics of every real and every fake catfeat, then FPS of
    /// `count` styles per category from a start index drawn uniformly (np.random.randint(0, N) in the code).
    public static func selectPrototypes(realFeatures: Tensor, fakeFeatures: Tensor, count: Int, rng: inout RNG) throws -> StylePrototypes {
        func pick(_ f: Tensor) throws -> (Tensor, Tensor) {
            let styles = try FPS.styleStatistics(f)
            let r = try FPS.sample(points: styles, count: count, start: rng.int(below: styles.shape[0]))
            let p = try FPS.prototypes(styles: styles, indices: r.indices)
            return (p.mean, p.std)
        }
        let (mp, sp) = try pick(realFeatures), (mn, sn) = try pick(fakeFeatures)
        return try StylePrototypes(meanPos: mp, stdPos: sp, meanNeg: mn, stdNeg: sn)
    }

    /// Dirichlet(1/L) weights for the Shader's two CSA blocks.
    public static func drawCSAWeights(_ rng: inout RNG, batch: Int, styles: Int, blocks: Int = 2) -> [Tensor] {
        (0..<blocks).map { _ in CSA.drawWeights(&rng, batch: batch, styles: styles) }
    }

    /// validate_for_cov_stat + set_mask_matrix for one epoch: begins the epoch on both accumulators, adds
    /// each mixed batch's org/aug statistics (reals first in every batch), and sets the masks.
    public static func statisticsEpoch(network: IADGNetwork, batches: [(x: Tensor, labels: [Int])], prototypes: StylePrototypes,
                                       real: inout AIAW.CovarianceStatistics, fake: inout AIAW.CovarianceStatistics,
                                       runningMean: Tensor, runningVar: Tensor, rng: inout RNG) throws -> (real: Tensor, fake: Tensor) {
        real.beginEpoch()
        fake.beginEpoch()
        for (x, labels) in batches {
            let w = drawCSAWeights(&rng, batch: labels.count, styles: prototypes.count)
            let v = try network.statisticsViews(x: x, labels: labels, csaWeights: w, prototypes: prototypes,
                                                runningMean: runningMean, runningVar: runningVar)
            let half = labels.count / 2, b = labels.count
            try real.add(try AIAW.pairStatistic(org: v.org.slice(axis: 0, 0..<half), aug: v.aug.slice(axis: 0, 0..<half)))
            try fake.add(try AIAW.pairStatistic(org: v.org.slice(axis: 0, half..<b), aug: v.aug.slice(axis: 0, half..<b)))
        }
        return (try real.setMask(), try fake.setMask())
    }
}
