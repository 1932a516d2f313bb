import AlignerTensor
import XCTest

/// Q8_0 products against a reference written here from the format's definition (ggml's quantize_row_q8_0 and the
/// meaning of a block), in double precision.
final class Q8MatrixTests: XCTestCase {
    func random(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        var rng = SeededGenerator(seed: seed)
        let n = shape.reduce(1, *)
        return Tensor((0..<n).map { _ in (Float(rng.next() % 20001) / 10000 - 1) * scale }, shape: shape)
    }

    /// One row quantised by the definition: per block, d = max|x|/127; quants round(x/d) (half away from zero for
    /// weights, whose d is then rounded to half precision; half to even for activations, d kept in float).
    func reference(_ row: [Float], weights: Bool) -> (q: [Int], d: [Double]) {
        var q: [Int] = [], d: [Double] = []
        for b in stride(from: 0, to: row.count, by: 32) {
            let block = row[b..<(b + 32)]
            let amax = block.map { abs($0) }.max()!
            let scale = amax / 127, inv: Float = scale == 0 ? 0 : 1 / scale
            d.append(weights ? Double(Float(Float16(scale))) : Double(scale))
            q += block.map { Int(($0 * inv).rounded(weights ? .toNearestOrAwayFromZero : .toNearestOrEven)) }
        }
        return (q, d)
    }

    func testQuantisationFollowsTheFormat() {
        let w = random([5, 96], seed: 1, scale: 3)
        w.data[7] = 0  // a zero inside a block
        for i in 64..<96 { w.data[96 + i] = 0 }  // an all-zero block: scale 0, quants 0
        let q = Q8Matrix(quantizing: w)
        for r in 0..<5 {
            let ref = reference(Array(w.scalars[(r * 96)..<((r + 1) * 96)]), weights: true)
            XCTAssertEqual(q.quants(row: r).map(Int.init), ref.q, "row \(r)")
            XCTAssertEqual(q.scales(row: r).map(Double.init), ref.d, "row \(r)")
        }
        // Quantising the dequantised values gives the same blocks (a Q8_0 file read as float and held as Q8_0 again).
        let again = Q8Matrix(quantizing: q.dequantized())
        for r in 0..<5 {
            XCTAssertEqual(again.quants(row: r), q.quants(row: r))
            XCTAssertEqual(again.scales(row: r), q.scales(row: r))
        }
    }

    func testProductEqualsTheBlockSumsOfTheDefinition() {
        let (m, k, n) = (6, 160, 37)
        let w = random([n, k], seed: 2, scale: 0.5), x = random([2, 3, k], seed: 3, scale: 4)
        let q = Q8Matrix(quantizing: w)
        let y = x.matmul(q8: q)
        XCTAssertEqual(y.shape, [2, 3, n])
        var worst = 0.0, worstFloat = 0.0
        for i in 0..<m {
            let xr = reference(Array(x.scalars[(i * k)..<((i + 1) * k)]), weights: false)
            for j in 0..<n {
                let wr = reference(Array(w.scalars[(j * k)..<((j + 1) * k)]), weights: true)
                var expected = 0.0, exact = 0.0
                for b in 0..<(k / 32) {
                    var dot = 0
                    for e in (b * 32)..<(b * 32 + 32) { dot += wr.q[e] * xr.q[e] }
                    expected += Double(dot) * wr.d[b] * xr.d[b]
                }
                for e in 0..<k { exact += Double(x.data[i * k + e]) * Double(w.data[j * k + e]) }
                worst = max(worst, abs(Double(y.data[i * n + j]) - expected) / max(1, abs(expected)))
                worstFloat = max(worstFloat, abs(Double(y.data[i * n + j]) - exact))
            }
        }
        XCTAssertLessThan(worst, 1e-5, "against the block sums of the definition")
        // And near the float32 product: 8-bit quantisation of both sides, about 1% of the typical |y| here (≈ 9).
        XCTAssertLessThan(worstFloat, 0.15)
    }

    /// A row's result does not depend on the other rows, the thread count or the kernel (AVX2 or portable): the same bits.
    func testRowsThreadsAndKernelsGiveTheSameBits() {
        let (k, n) = (256, 300)
        let w = random([n, k], seed: 4), x = random([9, k], seed: 5, scale: 2)
        let q = Q8Matrix(quantizing: w)
        let all = ComputeContext(threads: 2).run { x.matmul(q8: q) }
        for i in 0..<9 {
            let row = Tensor(Array(x.scalars[(i * k)..<((i + 1) * k)]), shape: [1, k])
            let alone = ComputeContext(threads: 1).run { row.matmul(q8: q) }
            XCTAssertEqual(alone.scalars, Array(all.scalars[(i * n)..<((i + 1) * n)]), "row \(i)")
        }
        let portable = Q8Matrix.withPortableKernel { ComputeContext(threads: 2).run { x.matmul(q8: q) } }
        XCTAssertEqual(portable.scalars, all.scalars, "portable kernel against \(Q8Matrix.kernelPath)")
        let avx2 = Q8Matrix.withoutVNNI { ComputeContext(threads: 2).run { x.matmul(q8: q) } }
        XCTAssertEqual(avx2.scalars, all.scalars, "AVX2 without VNNI against \(Q8Matrix.kernelPath)")
    }

    /// The float32 row kernel: the same bits for a row alone, among others, on one or two threads, AVX2 or portable;
    /// within float rounding of the GEMM (and of a double-precision sum).
    func testFloatRowKernelIsRowIndependentAndMatchesTheProduct() {
        for (k, n) in [(200, 70), (577, 33)] {  // inner sizes with a tail beyond the 8 lanes
            let w = random([n, k], seed: 6), x = random([13, k], seed: 7, scale: 3)
            let all = ComputeContext(threads: 2).run { x.matmul(rows: w) }
            let gemm = x.matmul(w, transposeOther: true)
            for i in 0..<13 {
                let row = Tensor(Array(x.scalars[(i * k)..<((i + 1) * k)]), shape: [1, k])
                XCTAssertEqual(ComputeContext(threads: 1).run { row.matmul(rows: w) }.scalars, Array(all.scalars[(i * n)..<((i + 1) * n)]), "row \(i)")
                for j in 0..<n {
                    var exact = 0.0
                    for e in 0..<k { exact += Double(x.data[i * k + e]) * Double(w.data[j * k + e]) }
                    XCTAssertEqual(Double(all.data[i * n + j]), exact, accuracy: 1e-4 * max(1, abs(exact)))
                    XCTAssertEqual(all.data[i * n + j], gemm.data[i * n + j], accuracy: 1e-4 * max(1, abs(gemm.data[i * n + j])))
                }
            }
            let portable = Q8Matrix.withPortableKernel { ComputeContext(threads: 2).run { x.matmul(rows: w) } }
            XCTAssertEqual(portable.scalars, all.scalars, "portable kernel against \(Q8Matrix.kernelPath)")
        }
    }
}
