import XCTest

@testable import AlignerTensor

final class ReduceTests: XCTestCase {
    let check = GradCheck()

    /// Double reference: sums `x` (shape) over `axes`, scaled.
    private func reference(_ shape: [Int], axes: Set<Int>, scale: Double) -> ([[Double]]) -> [Double] {
        let kept = shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
        let n = shape.reduce(1, *)
        return { x in
            var out = [Double](repeating: 0, count: kept.reduce(1, *))
            for i in 0..<n {
                // index into the kept shape
                var rem = i
                var idx = [Int](repeating: 0, count: shape.count)
                for d in stride(from: shape.count - 1, through: 0, by: -1) { idx[d] = rem % shape[d]; rem /= shape[d] }
                let st = refStrides(kept)
                var o = 0
                for d in 0..<shape.count where !axes.contains(d) { o += idx[d] * st[d] }
                out[o] += x[0][i]
            }
            return out.map { $0 * scale }
        }
    }

    func testSumAndMeanOverAxes() {
        let shape = [2, 3, 4]
        let x = randomTensor(shape, seed: 11)
        let cases: [[Int]] = [[0], [1], [2], [-1], [0, 2], [1, 2], [0, 1, 2]]
        for axes in cases {
            let resolved = Set(axes.map { $0 < 0 ? $0 + 3 : $0 })
            let n = resolved.reduce(1) { $0 * shape[$1] }
            for keep in [false, true] {
                check.check("sum \(axes) keep \(keep)", inputs: [x], op: { $0[0].sum(axes: axes, keepDims: keep) },
                            reference: reference(shape, axes: resolved, scale: 1))
                check.check("mean \(axes) keep \(keep)", inputs: [x], op: { $0[0].mean(axes: axes, keepDims: keep) },
                            reference: reference(shape, axes: resolved, scale: 1 / Double(n)))
            }
        }
    }

    func testShapes() {
        let x = Tensor.ones([2, 3, 4])
        XCTAssertEqual(x.sum(axes: [1]).shape, [2, 4])
        XCTAssertEqual(x.sum(axes: [1], keepDims: true).shape, [2, 1, 4])
        XCTAssertEqual(x.sum().shape, [])
        XCTAssertEqual(x.sum().item, 24)
        XCTAssertEqual(x.mean(axes: [0, 2]).scalars, [1, 1, 1])
    }

    func testLongRowsUseVectorPath() {
        let x = randomTensor([3, 1037], seed: 12, grad: false)
        let s = x.sum(axes: [1])
        for r in 0..<3 {
            let ref = (0..<1037).reduce(0.0) { $0 + Double(x.data[r * 1037 + $1]) }
            XCTAssertEqual(Double(s.data[r]), ref, accuracy: 1e-3)
        }
    }
}
