// RDED's mix_images (synthesize/utils.py), reused by NRR-DD for its β = factor² patches.

import Foundation
import Ops
import Tensor

public enum Stitching {
    /// Row (= column) sizes: s + 1 for the first size % factor rows, s = size // factor for the rest.
    public static func cellSizes(size: Int, factor: Int) throws -> [Int] {
        try check(factor >= 1, "factor", "≥ 1", factor)
        try check(size >= factor, "size", "≥ factor (\(factor))", size)
        let s = size / factor, r = size % factor
        return (0..<factor).map { $0 < r ? s + 1 : s }
    }

    /// Image t's cell k = i·factor + j holds crops[k·ipc + t] resized (nearest) to the cell: [ipc, C, size, size].
    public static func mix(_ crops: Var, size: Int, factor: Int, ipc: Int) throws -> Var {
        try check(ipc >= 1, "ipc", "≥ 1", ipc)
        let cells = try cellSizes(size: size, factor: factor)
        guard crops.value.rank == 4 else { throw NRRDDError.parameter("crops", "shape [factor²·ipc, C, h, w]", crops.shape) }
        try check(crops.shape[0] == factor * factor * ipc, "crops", "factor²·ipc = \(factor * factor * ipc) crops", crops.shape[0])
        var rows: [Var] = []
        var k = 0
        for i in 0..<factor {
            var row: [Var] = []
            for j in 0..<factor {
                let part = try slice(crops, axis: 0, (k * ipc)..<((k + 1) * ipc))
                row.append(try interpolateNearest(part, size: [cells[i], cells[j]]))
                k += 1
            }
            rows.append(try factor == 1 ? row[0] : concatenate(row, axis: 3))
        }
        return try factor == 1 ? rows[0] : concatenate(rows, axis: 2)
    }

    public static func mix(_ crops: Tensor, size: Int, factor: Int, ipc: Int) throws -> Tensor {
        let tape = Tape()
        return try withExtendedLifetime(tape) { try mix(tape.constant(crops), size: size, factor: factor, ipc: ipc).value }
    }
}
