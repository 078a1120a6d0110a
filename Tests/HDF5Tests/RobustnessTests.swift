// Issue 11 in the HDF5 layer: a hard-link cycle is traversed once, dangling links are skipped, a dataset
// shared under two names is listed under both, bool datasets stream, and any shape splits into bounded blocks.

import Foundation
import HDF5
import Testing

@Suite struct HDF5Robustness {
    @Test func hardLinkCycleTerminates() throws {
        let p = tempPath("cycle.h5")
        let (st, out) = try python("""
            import h5py, numpy as np
            with h5py.File('\(p)', 'w') as f:
                f['a/outputs/y'] = np.arange(3.0)
                f['a/shared'] = f['a/outputs']          # a group under two names (not a cycle)
                f['loop'] = f['/']                      # a cycle back to the root
                f['a/outputs/up'] = f['a']              # a cycle to an ancestor
                f['nowhere'] = h5py.SoftLink('/no/such')
            """)
        #expect(st == 0, "\(out)")
        let f = try File.open(p)
        let paths = try f.root.datasetPaths()
        #expect(paths == ["a/outputs/y", "a/shared/y"], "\(paths)")
        #expect(try f.root.danglingLinks() == ["nowhere"])
    }

    @Test func expandingSharedGroupsHitTheLimit() throws {
        let p = tempPath("diamonds.h5")
        // 20 levels, each holding the next level twice: 2²⁰ paths.
        let (st, out) = try python("""
            import h5py, numpy as np
            with h5py.File('\(p)', 'w') as f:
                g = f.create_group('l20'); g['x'] = np.zeros(1)
                for i in range(19, -1, -1):
                    h = f.create_group('l%d' % i); h['a'] = f['l%d' % (i + 1)]; h['b'] = f['l%d' % (i + 1)]
            """)
        #expect(st == 0, "\(out)")
        let f = try File.open(p)
        #expect(throws: HDF5Error.self) { _ = try f.group("l0").datasetPaths(limit: 500) }
    }

    @Test func boolStreamsIntoDoubles() throws {
        let p = tempPath("bools.h5")
        let f = try File.create(p)
        let v = (0..<1000).map { $0 % 3 == 0 }
        try f.root.write("b", .bool(v), shape: [10, 100])
        let ds = try f.dataset("b")
        var buf = [Double](repeating: -1, count: 200)
        try buf.withUnsafeMutableBufferPointer { try ds.readDoubles(into: $0, offset: [3, 0], count: [2, 100]) }
        #expect(buf == (300..<500).map { $0 % 3 == 0 ? 1.0 : 0.0 })
    }

    @Test(arguments: [[], [0], [7], [5, 3], [3, 1_000_000], [2, 3, 4, 5], [1 << 20, 1 << 20]])
    func blocksCoverTheShape(_ shape: [Int]) {
        let cap = 7
        var covered = 0.0
        var blocks = 0
        Dataset.forEachBlock(shape: shape, maxElements: cap) { off, cnt in
            let m = cnt.reduce(1, *)
            #expect(m <= Swift.max(cap, 1) && off.count == shape.count)
            covered += Double(m)
            blocks += 1
            return blocks < 10_000   // the huge shapes: only the first blocks
        }
        let total = shape.reduce(1.0) { $0 * Double($1) }
        if total < 10_000 { #expect(covered == total, "\(shape): \(covered) of \(total)") }
    }
}
