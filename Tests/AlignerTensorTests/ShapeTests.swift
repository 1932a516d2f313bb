import XCTest

@testable import AlignerTensor

final class ShapeTests: XCTestCase {
    let check = GradCheck()

    /// Double reference permute.
    private func permuteReference(_ shape: [Int], _ order: [Int]) -> ([[Double]]) -> [Double] {
        let outShape = order.map { shape[$0] }
        let inStrides = refStrides(shape)
        return { x in
            (0..<x[0].count).map { i in
                var rem = i
                var off = 0
                for d in stride(from: outShape.count - 1, through: 0, by: -1) {
                    off += (rem % outShape[d]) * inStrides[order[d]]
                    rem /= outShape[d]
                }
                return x[0][off]
            }
        }
    }

    func testReshapeIsAViewWithGradient() {
        let x = randomTensor([2, 6], seed: 20)
        let y = x.reshape([3, -1])
        XCTAssertEqual(y.shape, [3, 4])
        XCTAssertEqual(y.scalars, x.scalars)
        check.check("reshape", inputs: [x], op: { $0[0].reshape([4, 3]) * 2 }, reference: { $0[0].map { $0 * 2 } })
    }

    func testPermuteAndTranspose() {
        let x = randomTensor([2, 3, 4], seed: 21)
        for order in [[0, 2, 1], [2, 0, 1], [1, 2, 0], [2, 1, 0]] {
            check.check("permute \(order)", inputs: [x], op: { $0[0].permute(order) },
                        reference: permuteReference([2, 3, 4], order))
        }
        let y = randomTensor([2, 3, 4, 5], seed: 22)
        check.check("transpose 1,2 of 4-d", inputs: [y], op: { $0[0].transposed(1, 2) },
                    reference: permuteReference([2, 3, 4, 5], [0, 2, 1, 3]))
        XCTAssertEqual(randomTensor([3, 5], seed: 1).transposed().shape, [5, 3])
    }

    func testSliceAndConcat() {
        let x = randomTensor([3, 5, 2], seed: 23)
        check.check("slice axis 1", inputs: [x], op: { $0[0].slice(axis: 1, 1..<4) }) { v in
            var out: [Double] = []
            for a in 0..<3 { for b in 1..<4 { for c in 0..<2 { out.append(v[0][(a * 5 + b) * 2 + c]) } } }
            return out
        }
        let a = randomTensor([2, 3], seed: 24), b = randomTensor([2, 1], seed: 25), c = randomTensor([2, 2], seed: 26)
        check.check("concat axis 1", inputs: [a, b, c], op: { Tensor.concat($0, axis: 1) }) { v in
            var out: [Double] = []
            for r in 0..<2 {
                out += v[0][(r * 3)..<(r * 3 + 3)]
                out += [v[1][r]]
                out += v[2][(r * 2)..<(r * 2 + 2)]
            }
            return out
        }
        let d = randomTensor([1, 3], seed: 27)
        check.check("concat axis 0", inputs: [a, d], op: { Tensor.concat($0, axis: 0) }) { $0[0] + $0[1] }
    }

    func testGatherRowsWithRepeatedIndices() {
        let table = randomTensor([5, 3], seed: 28)
        let ids = [4, 1, 1, 0, 4, 4]
        check.check("gather rows", inputs: [table], op: { $0[0].gatherRows(ids) }) { v in
            ids.flatMap { Array(v[0][($0 * 3)..<($0 * 3 + 3)]) }
        }
        // The scatter-add gives a row picked three times three contributions.
        table.releaseGrad()
        table.gatherRows(ids).sum().backward()
        XCTAssertEqual(table.grad!.scalars, [1, 1, 1, 2, 2, 2, 0, 0, 0, 0, 0, 0, 3, 3, 3])
    }

    func testEmbeddingShape() {
        let table = randomTensor([7, 4], seed: 29)
        let ids = [1, 2, 3, 1, 6, 0]
        let e = Tensor.embedding(table, ids: ids, shape: [2, 3])
        XCTAssertEqual(e.shape, [2, 3, 4])
        check.check("embedding", inputs: [table], op: { Tensor.embedding($0[0], ids: ids, shape: [2, 3]) }) { v in
            ids.flatMap { Array(v[0][($0 * 4)..<($0 * 4 + 4)]) }
        }
        // Wide enough that the backward splits columns across threads.
        let wide = randomTensor([6, 4096], seed: 30)
        wide.gatherRows([5, 5, 2, 5]).sum().backward()
        XCTAssertEqual(wide.grad!.data[5 * 4096 + 4095], 3)
        XCTAssertEqual(wide.grad!.data[2 * 4096], 1)
        XCTAssertEqual(wide.grad!.data[0], 0)
    }

    func testEmbeddingPaddingRowGetsNoGradient() {
        let table = randomTensor([4, 3], seed: 31)
        Tensor.embedding(table, ids: [0, 2, 0, 3], shape: [4], paddingIndex: 0).sum().backward()
        XCTAssertEqual(table.grad!.scalars, [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    }
}
