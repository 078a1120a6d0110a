// `certify show`: a divergence is printed with its measured consequence, not only its description.

import Testing

@Suite struct ShowDivergences {
    @Test func measuredConsequenceIsShown() throws {
        let r = try certify("show", "lava.rejection")
        #expect(r.status == 0)
        #expect(r.out.contains("measured: case paper_cascade vs official_cascade"))
    }
}
