// Class activation maps (Zhou et al., CVPR 2016; NRR-DD's ref. [34]) of a GAP + FC teacher, the
// normalised map C ∈ [0, 1] NRR-DD uses for CIDD and NRR, and the CAM ratio ρ(B) of a box.

import Foundation
import Ops
import Tensor

public enum ClassActivationMap {
    /// A_c(u, v) = Σ_k w_{c,k} F_k(u, v) for c = labels[n] (Zhou et al. eq. 2), on the tape: [N, h, w].
    public static func raw(features: Var, fcWeight: Var, labels: [Int]) throws -> Var {
        guard features.value.rank == 4, fcWeight.value.rank == 2, fcWeight.shape[1] == features.shape[1] else {
            throw NRRDDError.parameter("features/fc_weight", "[N, K, h, w] and [classes, K]", "\(features.shape) and \(fcWeight.shape)")
        }
        let (n, k) = (features.shape[0], features.shape[1])
        try check(labels.count == n, "labels", "one per map (\(n))", labels.count)
        let classes = fcWeight.shape[0]
        for y in labels { try check(y >= 0 && y < classes, "labels", "class indices in [0, \(classes))", y) }
        let rows = try matmul(features.tape.constant(oneHot(labels, classes: classes)), fcWeight)   // [N, K]
        return try sum(reshape(rows, [n, k, 1, 1]) * features, axes: [1])
    }

    /// C = ReLU(A); (C − min)/(max − min) per map (0 when constant); bilinear (align_corners = False) to H × W.
    public static func normalised(raw: Tensor, height: Int, width: Int) throws -> Tensor {
        try check(height >= 1 && width >= 1, "height/width", "≥ 1", "\(height) × \(width)")
        let (n, h, w) = (raw.shape[0], raw.shape[1], raw.shape[2])
        var d = raw.data.map { Swift.max($0, 0) }
        for i in 0..<n {
            let r = (i * h * w)..<((i + 1) * h * w)
            let lo = d[r].min() ?? 0, hi = d[r].max() ?? 0
            let span = hi - lo
            for j in r { d[j] = span > 0 ? (d[j] - lo) / span : 0 }
        }
        let tape = Tape()
        let up = try interpolateBilinear(tape.constant(Tensor(unchecked: [n, 1, h, w], d)), size: [height, width])
        return try up.value.reshaped([n, height, width])
    }

    /// C of the teacher for x's labels: [N, H, W].
    public static func of(_ x: Tensor, labels: [Int], teacher: NRRTeacher) throws -> Tensor {
        let (tape, o) = try teacher.forward(x)
        let a = try raw(features: o.features, fcWeight: tape.constant(teacher.fcWeight), labels: labels)
        return try normalised(raw: a.value, height: x.shape[2], width: x.shape[3])
    }

    /// ρ(B) = Σ_B C / Σ C for map `index` of C [N, H, W]; 0 when Σ C = 0.
    public static func ratio(_ c: Tensor, index: Int, box: CropBox) throws -> Double {
        let (h, w) = (c.shape[1], c.shape[2])
        try box.validate(height: h, width: w)
        let o = index * h * w
        var total = 0.0, inside = 0.0
        for u in 0..<h { for v in 0..<w { total += c.data[o + u * w + v] } }
        if total == 0 { return 0 }
        for u in box.top..<(box.top + box.height) {
            for v in box.left..<(box.left + box.width) { inside += c.data[o + u * w + v] }
        }
        return inside / total
    }
}
