// Op-level tests beyond the protocol goldens live here.
import Ops
import Tensor
import Testing

@Suite struct TapeBasics {
    @Test func gradientsAccumulateOverReuse() throws {
        let tape = Tape()
        let x = tape.leaf(Tensor([1, 2, 3]))
        let y = try x * x + x  // y = x² + x, dy/dx = 2x + 1
        let g = try tape.gradients(of: try sum(y), wrt: [x])
        #expect(g[0].data == [3, 5, 7])
    }

    @Test func cotangentShapeMismatchIsAnError() throws {
        let tape = Tape()
        let x = tape.leaf(Tensor([1, 2, 3]))
        #expect(throws: ShapeError.self) { try tape.gradients(of: [(x, Tensor([1, 2]))], wrt: [x]) }
    }
}
