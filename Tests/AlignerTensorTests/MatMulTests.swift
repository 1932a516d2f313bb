import XCTest

@testable import AlignerTensor

final class MatMulTests: XCTestCase {
    let check = GradCheck()

    /// Double reference of a (batched) product; `bShared` means b has no batch axes.
    private func reference(batch: Int, m: Int, n: Int, k: Int, tA: Bool, tB: Bool, bShared: Bool) -> ([[Double]]) -> [Double] {
        { x in
            var out = [Double](repeating: 0, count: batch * m * n)
            for z in 0..<batch {
                let a = z * m * k, b = bShared ? 0 : z * k * n
                for i in 0..<m {
                    for j in 0..<n {
                        var s = 0.0
                        for p in 0..<k {
                            let av = tA ? x[0][a + p * m + i] : x[0][a + i * k + p]
                            let bv = tB ? x[1][b + j * k + p] : x[1][b + p * n + j]
                            s += av * bv
                        }
                        out[z * m * n + i * n + j] = s
                    }
                }
            }
            return out
        }
    }

    func test2DAllTranspositions() {
        let (m, n, k) = (3, 5, 4)
        for tA in [false, true] {
            for tB in [false, true] {
                let a = randomTensor(tA ? [k, m] : [m, k], seed: 31)
                let b = randomTensor(tB ? [n, k] : [k, n], seed: 32)
                check.check("matmul tA=\(tA) tB=\(tB)", inputs: [a, b],
                            op: { $0[0].matmul($0[1], transposeSelf: tA, transposeOther: tB) },
                            reference: reference(batch: 1, m: m, n: n, k: k, tA: tA, tB: tB, bShared: true))
            }
        }
    }

    func testBatchedAllTranspositions() {
        let (batch, m, n, k) = (3, 2, 4, 5)
        for tA in [false, true] {
            for tB in [false, true] {
                let a = randomTensor([batch] + (tA ? [k, m] : [m, k]), seed: 33)
                let b = randomTensor([batch] + (tB ? [n, k] : [k, n]), seed: 34)
                check.check("bmm tA=\(tA) tB=\(tB)", inputs: [a, b],
                            op: { $0[0].matmul($0[1], transposeSelf: tA, transposeOther: tB) },
                            reference: reference(batch: batch, m: m, n: n, k: k, tA: tA, tB: tB, bShared: false))
            }
        }
    }

    func testSharedRightOperand() {
        // A linear layer: x (2, 3, in 4) · Wᵀ with W (out 5, in 4); and the same with a transposed left operand.
        let (m, n, k) = (3, 5, 4)
        for tA in [false, true] {
            for tB in [false, true] {
                let x = randomTensor([2] + (tA ? [k, m] : [m, k]), seed: 35)
                let w = randomTensor(tB ? [n, k] : [k, n], seed: 36)
                check.check("shared B tA=\(tA) tB=\(tB)", inputs: [x, w],
                            op: { $0[0].matmul($0[1], transposeSelf: tA, transposeOther: tB) },
                            reference: reference(batch: 2, m: m, n: n, k: k, tA: tA, tB: tB, bShared: true))
            }
        }
    }

    func testFourDimensionalBatch() {
        let a = randomTensor([2, 2, 3, 4], seed: 37)
        let b = randomTensor([2, 2, 3, 4], seed: 38)
        let c = a.matmul(b, transposeOther: true)
        XCTAssertEqual(c.shape, [2, 2, 3, 3])
        check.check("4-d q·kᵀ", inputs: [a, b], op: { $0[0].matmul($0[1], transposeOther: true) },
                    reference: reference(batch: 4, m: 3, n: 3, k: 4, tA: false, tB: true, bShared: false))
    }

    func testLargeProductMatchesReference() {
        // Big enough for multi-threaded BLAS, odd sizes to catch leading-dimension mistakes.
        let (m, n, k) = (67, 131, 95)
        let a = randomTensor([m, k], seed: 39, grad: false), b = randomTensor([n, k], seed: 40, grad: false)
        let c = a.matmul(b, transposeOther: true)
        let ref = reference(batch: 1, m: m, n: n, k: k, tA: false, tB: true, bShared: true)(
            [a.scalars.map(Double.init), b.scalars.map(Double.init)])
        for (x, y) in zip(c.scalars, ref) { XCTAssertEqual(Double(x), y, accuracy: 1e-4 * max(1, abs(y))) }
    }
}
