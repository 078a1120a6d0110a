// Issue 11: checked sizes and guarded conversions never trap; the budget refuses with the estimate.

import Testing
@testable import Tensor

@Suite(.serialized) struct BudgetTests {
    @Test func checkedArithmeticThrowsInsteadOfTrapping() {
        #expect(throws: ShapeError.self) { _ = try checkedCount([Int(UInt32.max), Int(UInt32.max), 3], "x") }
        #expect(throws: ShapeError.self) { _ = try checkedCount([3, -1], "x") }
        #expect(throws: ShapeError.self) { _ = try checkedMul(1 << 62, 4, "x") }
        #expect(throws: ShapeError.self) { _ = try checkedAdd(Int.max, 1, "x") }
        #expect((try? checkedCount([2, 3, 4], "x")) == 24)
    }

    @Test(arguments: [Double.nan, .infinity, -.infinity, 1e300, 9.1e15 * 2, 0.5, -3])
    func guardedIntConversion(_ v: Double) {
        #expect(throws: ShapeError.self) { _ = try checkedInt(v, in: 0...Int.max, "label") }
    }

    @Test func budgetRefusesWithTheEstimate() throws {
        Budget.maxBytes = 1 << 20
        defer { Budget.reset() }
        #expect(throws: Never.self) { try Budget.require(elements: 1000, "small") }
        do {
            try Budget.require(shape: [1_000_000, 1_000_000], "the output")
            Issue.record("expected a refusal")
        } catch let e as ShapeError {
            #expect(e.description.contains("8 TB") && e.description.contains("1.05 MB") && e.description.contains("--max-memory"), "\(e)")
        }
        #expect(throws: ShapeError.self) { try Budget.requireWork(operations: 1e12, "work") }
    }

    @Test func parsesSizes() {
        #expect(Budget.parse("2G") == 2 << 30)
        #expect(Budget.parse("512M") == 512 << 20)
        #expect(Budget.parse("1e9") == 1_000_000_000)
        #expect(Budget.parse("-1") == nil && Budget.parse("lots") == nil && Budget.parse("nan") == nil)
    }
}
