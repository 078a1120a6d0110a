// Base-style selection for CSA, IADG §3.2: per-image style statistics and farthest point sampling (FPS)
// of L base styles per category, refreshed every epoch.
//
// Official code: train.py validate_for_prototype (L473–585): per image of catfeat, μ = mean_HW,
// σ = √(var_HW (unbiased) + 1e-5), stacked as [μ(C), σ(C)] (N × 2C); utils/fps.py
// farthest_point_sample_tensor(points, L): start = np.random.randint(0, N), distance = 1e10·1;
// for each i < L: take `far`, d = Σ(P − P[far])², distance = min(distance, d) (strict <), far = argmax
// (first maximum). The result is reshaped to L × 2 × C → proto_mean (L × C), proto_std (L × C).

import Foundation
import Tensor

public enum FPS {
    /// The style statistics of features [N, C, H, W]: [N, 2C] = [μ, √(var_unbiased + eps)] per image.
    public static func styleStatistics(_ features: Tensor, eps: Double = 1e-5) throws -> Tensor {
        let st = try CSA.statistics(features)
        let (n, c) = (features.shape[0], features.shape[1])
        var out = [Double](repeating: 0, count: n * 2 * c)
        for i in 0..<n {
            for k in 0..<c {
                out[i * 2 * c + k] = st.mean.data[i * c + k]
                out[i * 2 * c + c + k] = (st.variance.data[i * c + k] + eps).squareRoot()
            }
        }
        return Tensor(unchecked: [n, 2 * c], out)
    }

    /// Farthest point sampling of `count` rows of points [N, D] from row `start` (utils/fps.py):
    /// returns the selected indices and the final min-distance array (initialised to 1e10, so a
    /// squared distance ≥ 1e10 never registers).
    public static func sample(points: Tensor, count: Int, start: Int, initialDistance: Double = 1e10) throws
        -> (indices: [Int], distance: [Double]) {
        guard points.rank == 2 else { throw ShapeError("fps", "points must be [N, D], found \(points.shape)") }
        let (n, d) = (points.shape[0], points.shape[1])
        guard n > 0, start >= 0, start < n else { throw ShapeError("fps", "start index \(start) outside 0..<\(n)") }
        guard count >= 0 else { throw ShapeError("fps", "count must be ≥ 0, got \(count)") }
        try Budget.require(elements: Double(count), "fps's \(count) sampled indices")
        try Budget.requireWork(operations: Double(count) * Double(n) * Double(Swift.max(d, 1)), "fps sampling \(count) of \(n) points")
        var distance = [Double](repeating: initialDistance, count: n)
        var far = start
        var idx: [Int] = []
        points.data.withUnsafeBufferPointer { p in
            for _ in 0..<count {
                idx.append(far)
                let base = far * d
                for j in 0..<n {
                    var s = 0.0
                    for k in 0..<d { let t = p[j * d + k] - p[base + k]; s += t * t }
                    if s < distance[j] { distance[j] = s }
                }
                var best = 0
                for j in 1..<n where distance[j] > distance[best] { best = j }
                far = best
            }
        }
        return (idx, distance)
    }

    /// proto_mean and proto_std of the selected styles (rows of [N, 2C] split into μ and σ halves).
    public static func prototypes(styles: Tensor, indices: [Int]) throws -> (mean: Tensor, std: Tensor) {
        let c2 = styles.shape[1]
        guard c2 % 2 == 0 else { throw ShapeError("fps", "styles must be [N, 2C], found \(styles.shape)") }
        let c = c2 / 2
        var m: [Double] = [], s: [Double] = []
        for i in indices {
            m += styles.data[(i * c2)..<(i * c2 + c)]
            s += styles.data[(i * c2 + c)..<((i + 1) * c2)]
        }
        return (Tensor(unchecked: [indices.count, c], m), Tensor(unchecked: [indices.count, c], s))
    }
}
