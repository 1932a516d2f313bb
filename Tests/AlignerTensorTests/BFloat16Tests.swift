import XCTest

@testable import AlignerTensor

/// bfloat16 rounding and bf16 matrix products through oneDNN (skipped where oneDNN is not installed).
final class BFloat16Tests: XCTestCase {
    func testRoundToNearestEven() {
        func bits(_ b: UInt32) -> Float { Float(bitPattern: b) }
        XCTAssertEqual(BFloat16.one(1), 0x3F80)
        XCTAssertEqual(BFloat16.one(bits(0x3F80_8000)), 0x3F80, "a tie goes to the even neighbour")
        XCTAssertEqual(BFloat16.one(bits(0x3F81_8000)), 0x3F82, "a tie goes to the even neighbour")
        XCTAssertEqual(BFloat16.one(bits(0x3F80_8001)), 0x3F81)
        XCTAssertEqual(BFloat16.one(-2.5), 0xC020)
        XCTAssertEqual(BFloat16.one(.infinity), 0x7F80)
        XCTAssertEqual(BFloat16.one(.nan), 0x7FC0)
        XCTAssertEqual(BFloat16.one(bits(0x7F7F_FFFF)), 0x7F80, "the largest float rounds up to infinity, as in PyTorch")
        // The vector path agrees with the scalar one.
        var g = SeededGenerator(seed: 4)
        let xs = (0..<1003).map { _ in Float(g.nextNormal() * 100) } + [.nan, -.infinity, 0, -0.0]
        var out = [UInt16](repeating: 0, count: xs.count)
        xs.withUnsafeBufferPointer { s in out.withUnsafeMutableBufferPointer { BFloat16.convert(s.baseAddress!, $0.baseAddress!, count: xs.count) } }
        XCTAssertEqual(out, xs.map(BFloat16.one))
        var rounded = [Float](repeating: 0, count: xs.count)
        xs.withUnsafeBufferPointer { s in rounded.withUnsafeMutableBufferPointer { BFloat16.round(s.baseAddress!, $0.baseAddress!, count: xs.count) } }
        XCTAssertEqual(rounded.map(\.bitPattern), xs.map { BFloat16.float(BFloat16.one($0)).bitPattern })
        for (x, h) in zip(xs, out) where x.isFinite { XCTAssertEqual(BFloat16.float(h), x, accuracy: abs(x) / 256) }
    }

    /// bf16 products equal float32 products of the bf16-rounded inputs (float32 accumulation), for every transposition,
    /// alpha and beta, with leading dimensions wider than the matrices: through oneDNN where this CPU has a bf16 matmul,
    /// emulated elsewhere (the test runs whichever this machine uses, and says which).
    func testBF16MatrixProducts() throws {
        print("bf16 products: \(MatmulPrecision.bf16Engine)")
        let (m, n, k) = (5, 7, 9)
        var g = SeededGenerator(seed: 1)
        for (ta, tb, alpha, beta) in [(false, false, Float(1), Float(0)), (true, false, 0.5, 1), (false, true, 1, 1), (true, true, 2, 0.25)] {
            let (aRows, aCols) = ta ? (k, m) : (m, k), (bRows, bCols) = tb ? (n, k) : (k, n)
            let lda = aCols + 3, ldb = bCols + 2, ldc = n + 1
            let a = (0..<(aRows * lda)).map { _ in Float(g.nextNormal()) }, b = (0..<(bRows * ldb)).map { _ in Float(g.nextNormal()) }
            let c0 = (0..<(m * ldc)).map { _ in Float(g.nextNormal()) }
            var c = c0
            ComputeContext(threads: 2, matmul: .bf16).run {
                BLAS.sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: &c, ldc: ldc)
            }
            func r(_ x: Float) -> Double { Double(BFloat16.float(BFloat16.one(x))) }
            for i in 0..<m {
                for j in 0..<n {
                    var s = 0.0
                    for p in 0..<k { s += r(ta ? a[p * lda + i] : a[i * lda + p]) * r(tb ? b[j * ldb + p] : b[p * ldb + j]) }
                    let want = Double(alpha) * s + Double(beta) * Double(c0[i * ldc + j])
                    XCTAssertEqual(Double(c[i * ldc + j]), want, accuracy: 1e-4 * max(1, abs(want)), "ta \(ta) tb \(tb) [\(i), \(j)]")
                }
                // Padding between rows is untouched.
                XCTAssertEqual(c[i * ldc + n], c0[i * ldc + n])
            }
        }
    }
}
