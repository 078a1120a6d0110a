// Face anti-spoofing metrics of IADG's evaluation (§4.1 of the paper: HTER and AUC).
//
// Official code: utils/metric.py `cal_metrics(y, s, threshold='auto')` and test.py `test`:
//   fpr, tpr, thr = sklearn.metrics.roc_curve(y, s, pos_label=0)         (real = label 0 is positive)
//   AUC  = sklearn.metrics.auc(fpr, tpr)                                   (trapezoid rule, np.trapz)
//   EER  = scipy.optimize.brentq(x ↦ 1 − x − interp1d(fpr, tpr)(x), 0, 1)  (np.interp underneath)
//   Thre = interp1d(fpr, thr)(EER)
//   pred = 1 − (s > Thre);  APCER = FP/(FP+TN), BPCER = FN/(FN+TP), HTER := ACER = (APCER+BPCER)/2
// Video level (test.py): frames grouped by video (first-appearance order), score and label averaged.
//
// Every step reproduces the library's floating-point operations in the same order (scikit-learn's
// drop_intermediate point set, NumPy's interp with its NaN fallbacks, NumPy's 8192-chunked pairwise
// summation in np.trapz, SciPy's C brentq), so the results agree with SciPy/scikit-learn bit for bit
// on the goldens, not merely to a tolerance.

import Foundation
import Tensor

/// What `roc_curve` puts in front of the curve as the threshold of the (0, 0) point.
public enum ROCFirstThreshold: Int, Sendable, CaseIterable {
    /// scikit-learn ≥ 1.3 (the official requirement.txt pins 1.3.0): `+inf`.
    case officialCode = 0
    /// scikit-learn < 1.3 (Debian bookworm ships 1.2.1): `max(score) + 1`.
    case sklearn12 = 1
}

/// A ROC curve as scikit-learn returns it: fpr and tpr non-decreasing, thresholds decreasing.
public struct ROCCurve: Sendable, Equatable {
    public var fpr: [Double]
    public var tpr: [Double]
    public var thresholds: [Double]
}

/// The outcome of SciPy's brentq.
public struct BrentResult: Sendable, Equatable {
    public var root: Double
    public var iterations: Int
    public var functionCalls: Int
}

public enum BrentError: Error, CustomStringConvertible, Equatable {
    case signError(fa: Double, fb: Double)
    case notConverged(iterations: Int, last: Double)
    case nanValue(x: Double)
    public var description: String {
        switch self {
        case let .signError(fa, fb): return "brentq: f(a) = \(fa) and f(b) = \(fb) must have different signs"
        case let .notConverged(n, x): return "brentq: failed to converge after \(n) iterations, value is \(x)"
        case let .nanValue(x): return "brentq: the function returned NaN at x = \(x)"
        }
    }
}

public struct FASMetrics: Sendable, Equatable {
    public var roc: ROCCurve
    public var auc: Double
    public var eer: Double
    public var threshold: Double
    public var brent: BrentResult
    /// TP = real→real, FN = real→fake, FP = fake→real, TN = fake→fake (real = label 0 is positive).
    public var tp: Int, fn: Int, fp: Int, tn: Int
    public var apcer: Double
    public var bpcer: Double
    /// HTER as the code reports it: ACER = (APCER + BPCER)/2.
    public var hter: Double
    public var accuracy: Double
}

public enum FASMetric {
    // MARK: NumPy building blocks

    /// NumPy's float64 `add.reduce` of a contiguous 1-D array: the ufunc sees buffers of 8192
    /// elements, each summed pairwise (blocks ≤ 128 with 8 accumulators), the partial sums added in order.
    public static func numpySum(_ a: [Double]) -> Double {
        a.withUnsafeBufferPointer { p in
            var total = 0.0
            var start = 0
            while start < p.count {
                let n = Swift.min(8192, p.count - start)
                total += pairwise(p.baseAddress! + start, n)
                start += n
            }
            return total
        }
    }

    private static func pairwise(_ a: UnsafePointer<Double>, _ n: Int) -> Double {
        if n < 8 {
            var r = 0.0
            for i in 0..<n { r += a[i] }
            return r
        }
        if n <= 128 {
            var r0 = a[0], r1 = a[1], r2 = a[2], r3 = a[3], r4 = a[4], r5 = a[5], r6 = a[6], r7 = a[7]
            var i = 8
            let end = n - n % 8
            while i < end {
                r0 += a[i]; r1 += a[i + 1]; r2 += a[i + 2]; r3 += a[i + 3]
                r4 += a[i + 4]; r5 += a[i + 5]; r6 += a[i + 6]; r7 += a[i + 7]
                i += 8
            }
            var res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
            while i < n { res += a[i]; i += 1 }
            return res
        }
        var n2 = n / 2
        n2 -= n2 % 8
        return pairwise(a, n2) + pairwise(a + n2, n - n2)
    }

    /// `np.interp(x, xp, fp)` for one query on sorted `xp` (NumPy ≥ 1.17 semantics): the segment j
    /// with xp[j] ≤ x < xp[j+1] (so the last of duplicated xp values), fp[j] when x == xp[j], and the
    /// other endpoint when the slope form gives NaN (infinite fp values).
    public static func interp(_ x: Double, _ xp: [Double], _ fp: [Double]) -> Double {
        let n = xp.count
        precondition(n == fp.count && n > 0, "interp: xp and fp must be non-empty and of equal size")
        if x.isNaN { return x }
        if n == 1 { return fp[0] }
        if x > xp[n - 1] { return fp[n - 1] }
        if x < xp[0] { return fp[0] }
        if x == xp[n - 1] { return fp[n - 1] }
        // upper bound: first index with xp[i] > x, minus one.
        var lo = 0, hi = n
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            if x >= xp[mid] { lo = mid + 1 } else { hi = mid }
        }
        let j = lo - 1
        if j == n - 1 { return fp[j] }
        if xp[j] == x { return fp[j] }
        let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
        var r = slope * (x - xp[j]) + fp[j]
        if r.isNaN {
            r = slope * (x - xp[j + 1]) + fp[j + 1]
            if r.isNaN && fp[j] == fp[j + 1] { r = fp[j] }
        }
        return r
    }

    /// `scipy.interpolate.interp1d(x, y)` (kind linear, bounds_error) evaluated at one point: it sorts x
    /// stably and delegates to np.interp. Throws for a point outside [x₀, x_last] as SciPy does.
    public static func interp1d(_ x: Double, _ xs: [Double], _ ys: [Double]) throws -> Double {
        let order = xs.indices.sorted { xs[$0] < xs[$1] || (xs[$0] == xs[$1] && $0 < $1) }
        let sx = order.map { xs[$0] }, sy = order.map { ys[$0] }
        if x < sx[0] || x > sx[sx.count - 1] {
            throw ShapeError("interp1d", "A value (\(x)) in x_new is outside the interpolation range [\(sx[0]), \(sx[sx.count - 1])]")
        }
        return interp(x, sx, sy)
    }

    // MARK: SciPy brentq

    /// SciPy's `optimize.brentq` (scipy/optimize/Zeros/brentq.c, Charles Harris's variant of Brent's
    /// method): defaults xtol = 2e-12, rtol = 4·eps, maxiter = 100. Returns the bracket end where f is
    /// exactly 0 at once; throws where f(a)·f(b) > 0 or after maxiter iterations (disp=True).
    public static func brentq(_ f: (Double) throws -> Double, _ a: Double, _ b: Double, xtol: Double = 2e-12,
                              rtol: Double = 4 * Double.ulpOfOne, maxiter: Int = 100) throws -> BrentResult {
        guard xtol > 0 else { throw ShapeError("brentq", "xtol too small (\(xtol) <= 0)") }
        guard rtol >= 4 * Double.ulpOfOne else { throw ShapeError("brentq", "rtol too small (\(rtol) < \(4 * Double.ulpOfOne))") }
        func call(_ x: Double) throws -> Double {
            let v = try f(x)
            if v.isNaN { throw BrentError.nanValue(x: x) }
            return v
        }
        var xpre = a, xcur = b
        var xblk = 0.0, fblk = 0.0, spre = 0.0, scur = 0.0
        var fpre = try call(xpre)
        var fcur = try call(xcur)
        var calls = 2
        if fpre * fcur > 0 { throw BrentError.signError(fa: fpre, fb: fcur) }
        if fpre == 0 { return BrentResult(root: xpre, iterations: 0, functionCalls: calls) }
        if fcur == 0 { return BrentResult(root: xcur, iterations: 0, functionCalls: calls) }
        var iterations = 0
        for _ in 0..<maxiter {
            iterations += 1
            if fpre * fcur < 0 {
                xblk = xpre
                fblk = fpre
                spre = xcur - xpre
                scur = spre
            }
            if Swift.abs(fblk) < Swift.abs(fcur) {
                xpre = xcur; xcur = xblk; xblk = xpre
                fpre = fcur; fcur = fblk; fblk = fpre
            }
            let delta = (xtol + rtol * Swift.abs(xcur)) / 2
            let sbis = (xblk - xcur) / 2
            if fcur == 0 || Swift.abs(sbis) < delta {
                return BrentResult(root: xcur, iterations: iterations, functionCalls: calls)
            }
            if Swift.abs(spre) > delta && Swift.abs(fcur) < Swift.abs(fpre) {
                let stry: Double
                if xpre == xblk {
                    stry = -fcur * (xcur - xpre) / (fcur - fpre)  // secant
                } else {
                    let dpre = (fpre - fcur) / (xpre - xcur)      // inverse quadratic
                    let dblk = (fblk - fcur) / (xblk - xcur)
                    stry = -fcur * (fblk * dblk - fpre * dpre) / (dblk * dpre * (fblk - fpre))
                }
                if 2 * Swift.abs(stry) < Swift.min(Swift.abs(spre), 3 * Swift.abs(sbis) - delta) {
                    spre = scur
                    scur = stry
                } else {
                    spre = sbis
                    scur = sbis
                }
            } else {
                spre = sbis
                scur = sbis
            }
            xpre = xcur
            fpre = fcur
            if Swift.abs(scur) > delta { xcur += scur } else { xcur += (sbis > 0 ? delta : -delta) }
            fcur = try call(xcur)
            calls += 1
        }
        throw BrentError.notConverged(iterations: iterations, last: xcur)
    }

    // MARK: scikit-learn

    /// `sklearn.metrics.roc_curve(labels, scores, pos_label=posLabel, drop_intermediate=…)`.
    public static func rocCurve(labels: [Int], scores: [Double], posLabel: Int = 0, dropIntermediate: Bool = true,
                                firstThreshold: ROCFirstThreshold = .officialCode) throws -> ROCCurve {
        guard labels.count == scores.count else {
            throw ShapeError("roc_curve", "labels (\(labels.count)) and scores (\(scores.count)) differ in length")
        }
        guard !scores.isEmpty else { throw ShapeError("roc_curve", "no samples") }
        if let i = scores.firstIndex(where: { !$0.isFinite }) {
            throw ShapeError("roc_curve", "score \(i) is \(scores[i]); scores must be finite")
        }
        let n = scores.count
        // Descending scores; the order inside a tie does not matter (only tie-group ends are kept).
        let order = (0..<n).sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 > $1) }
        var tps: [Double] = [], fps: [Double] = [], thr: [Double] = []
        var cum = 0.0
        for k in 0..<n {
            let i = order[k]
            if labels[i] == posLabel { cum += 1 }
            if k == n - 1 || scores[order[k + 1]] != scores[i] {
                tps.append(cum)
                fps.append(Double(1 + k) - cum)
                thr.append(scores[i])
            }
        }
        if dropIntermediate && fps.count > 2 {
            var keep = [0]
            for k in 1..<(fps.count - 1) {
                let d2f = (fps[k + 1] - fps[k]) - (fps[k] - fps[k - 1])
                let d2t = (tps[k + 1] - tps[k]) - (tps[k] - tps[k - 1])
                if d2f != 0 || d2t != 0 { keep.append(k) }
            }
            keep.append(fps.count - 1)
            tps = keep.map { tps[$0] }
            fps = keep.map { fps[$0] }
            thr = keep.map { thr[$0] }
        }
        tps.insert(0, at: 0)
        fps.insert(0, at: 0)
        thr.insert(firstThreshold == .officialCode ? Double.infinity : thr[0] + 1, at: 0)
        let fLast = fps[fps.count - 1], tLast = tps[tps.count - 1]
        let fpr = fLast <= 0 ? [Double](repeating: .nan, count: fps.count) : fps.map { $0 / fLast }
        let tpr = tLast <= 0 ? [Double](repeating: .nan, count: tps.count) : tps.map { $0 / tLast }
        return ROCCurve(fpr: fpr, tpr: tpr, thresholds: thr)
    }

    /// `sklearn.metrics.auc(x, y)`: np.trapz(y, x), negated for a non-increasing x; throws when x is
    /// neither non-decreasing nor non-increasing.
    public static func auc(x: [Double], y: [Double]) throws -> Double {
        guard x.count == y.count, x.count >= 2 else {
            throw ShapeError("auc", "needs at least 2 points of equal length, got \(x.count) and \(y.count)")
        }
        var dx = [Double](repeating: 0, count: x.count - 1)
        for i in 0..<dx.count { dx[i] = x[i + 1] - x[i] }
        var direction = 1.0
        if dx.contains(where: { $0 < 0 }) {
            guard dx.allSatisfy({ $0 <= 0 }) else { throw ShapeError("auc", "x is neither increasing nor decreasing") }
            direction = -1
        }
        var terms = [Double](repeating: 0, count: dx.count)
        for i in 0..<dx.count { terms[i] = dx[i] * (y[i + 1] + y[i]) / 2.0 }
        return direction * numpySum(terms)
    }

    // MARK: cal_metrics

    /// `cal_metrics(labels, scores, threshold='auto')` of the official code: ROC, AUC, EER by brentq,
    /// the threshold at the EER, and the confusion counts with `real ⇔ score > threshold`.
    public static func evaluate(labels: [Int], scores: [Double], firstThreshold: ROCFirstThreshold = .officialCode) throws -> FASMetrics {
        guard labels.allSatisfy({ $0 == 0 || $0 == 1 }) else {
            throw ShapeError("cal_metrics", "labels must be 0 (real) or 1 (fake)")
        }
        let nReal = labels.filter { $0 == 0 }.count
        guard nReal > 0 && nReal < labels.count else {
            throw ShapeError("cal_metrics", "needs both real (0) and fake (1) samples; found \(nReal) real of \(labels.count)")
        }
        let roc = try rocCurve(labels: labels, scores: scores, posLabel: 0, firstThreshold: firstThreshold)
        let area = try auc(x: roc.fpr, y: roc.tpr)
        let brent = try brentq({ x in 1.0 - x - (try interp1d(x, roc.fpr, roc.tpr)) }, 0.0, 1.0)
        let thre = try interp1d(brent.root, roc.fpr, roc.thresholds)
        var tp = 0, fn = 0, fp = 0, tn = 0
        for (y, s) in zip(labels, scores) {
            let predictedReal = s > thre
            switch (y == 0, predictedReal) {
            case (true, true): tp += 1
            case (true, false): fn += 1
            case (false, true): fp += 1
            case (false, false): tn += 1
            }
        }
        let apcer = Double(fp) / Double(tn + fp)
        let bpcer = Double(fn) / Double(fn + tp)
        return FASMetrics(roc: roc, auc: area, eer: brent.root, threshold: thre, brent: brent, tp: tp, fn: fn, fp: fp, tn: tn,
                          apcer: apcer, bpcer: bpcer, hter: (apcer + bpcer) / 2, accuracy: Double(tp + tn) / Double(labels.count))
    }

    // MARK: video level

    /// test.py's video-level scores: frames grouped by video id in order of first appearance; the
    /// score is Python's `sum(frames)/len(frames)` (left to right, from 0). The code's frame scores are
    /// float32 NumPy scalars, but NumPy 1.x promotes `0 + float32` to float64, so its sums and divisions
    /// are float64, as here. A video whose frames disagree on the label is an error (the code would
    /// pass a label of 0.5 on, which scikit-learn counts as fake and confusion_matrix as a third class).
    public static func videoLevel(scores: [Double], labels: [Int], videos: [Int]) throws
        -> (scores: [Double], labels: [Int], videos: [Int]) {
        guard scores.count == labels.count, scores.count == videos.count else {
            throw ShapeError("video_level", "scores (\(scores.count)), labels (\(labels.count)) and videos (\(videos.count)) differ in length")
        }
        var order: [Int] = []
        var members: [Int: [Int]] = [:]
        for (i, v) in videos.enumerated() {
            if members[v] == nil { order.append(v); members[v] = [] }
            members[v]!.append(i)
        }
        var outS: [Double] = [], outL: [Int] = []
        for v in order {
            let idx = members[v]!
            let l = labels[idx[0]]
            guard idx.allSatisfy({ labels[$0] == l }) else {
                throw ShapeError("video_level", "video \(v) has frames with different labels")
            }
            var s = 0.0
            for i in idx { s += scores[i] }
            outS.append(s / Double(idx.count))
            outL.append(l)
        }
        return (outS, outL, order)
    }
}
