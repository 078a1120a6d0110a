// The tape runs only the VJP work a requested gradient depends on (issue 17): each VJP learns which parents
// need a cotangent, nodes none of whose parents do are skipped, and the gradients asked for are unchanged.
import Ops
import Tensor
import Testing

@Suite struct NeededGradients {
    /// A network 2 → conv → linear → matmul, with its gradients w.r.t. `wrt` (indices into its six leaves).
    func network(_ wrt: [Int]) throws -> [[Double]] {
        var rng = RNG(seed: 31)
        let tape = Tape()
        let leaves = [rng.normalTensor([2, 3, 6, 6]), rng.normalTensor([4, 3, 3, 3]), rng.normalTensor([4]),
                      rng.normalTensor([5, 64]), rng.normalTensor([5]), rng.normalTensor([5, 3])].map { tape.leaf($0) }
        let c = try conv2d(leaves[0], weight: leaves[1], bias: leaves[2], padding: [0, 0])
        let h = try relu(linear(reshape(c, [2, 64]), weight: leaves[3], bias: leaves[4]))
        let y = try matmul(h, leaves[5])
        let cot = rng.normalTensor(y.shape)
        return try tape.gradients(of: [(y, cot)], wrt: wrt.map { leaves[$0] }).map(\.data)
    }

    @Test func aSubsetOfGradientsIsTheSameBits() throws {
        let all = try network(Array(0..<6))
        for subset in [[1, 2, 3, 4, 5], [5], [0], [3], [2, 4], [1]] {
            let some = try network(subset)
            for (k, i) in subset.enumerated() {
                #expect(some[k].map(\.bitPattern) == all[i].map(\.bitPattern), "leaf \(i) of \(subset)")
            }
        }
    }

    @Test func vjpsLearnWhichParentsNeedACotangentAndUnneededNodesAreSkipped() throws {
        let tape = Tape()
        let x = tape.leaf(Tensor([1, 2])), w = tape.leaf(Tensor([3, 4])), c = tape.constant(Tensor([5, 6]))
        var seen: [String: [Bool]] = [:]
        func op(_ name: String, _ a: Var, _ b: Var) -> Var {
            tape.record(a.value, parents: [a, b]) { g, needs in
                seen[name] = needs
                return [needs[0] ? g : nil, needs[1] ? g : nil]
            }
        }
        let side = op("constants only", c, c)  // no requested gradient depends on it
        let u = op("input and weight", x, w)
        let v = op("weight and constant", u, side)
        let g = try tape.gradients(of: [(v, Tensor([1, 1]))], wrt: [w])
        #expect(g[0].data == [1, 1])
        #expect(seen["weight and constant"] == [true, false])
        #expect(seen["input and weight"] == [false, true])
        #expect(seen["constants only"] == nil)
        // Asking for an intermediate keeps its cotangent even when nothing below it is needed.
        let gu = try tape.gradients(of: [(v, Tensor([2, 2]))], wrt: [u])
        #expect(gu[0].data == [2, 2])
    }
}
