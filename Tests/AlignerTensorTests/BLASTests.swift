import CBLASRuntime
import XCTest

@testable import AlignerTensor

final class BLASTests: XCTestCase {
    func testRunsAFastCoreOnAVX512Machines() {
        let core = BLAS.coreName
        XCTAssertNotEqual(core, "unloaded")
        let fromEnvironment = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] != nil
        if ak_cpu_has_avx512() != 0 && !fromEnvironment {
            XCTAssertTrue(["SkylakeX", "Cooperlake", "SapphireRapids"].contains(core), "AVX-512 CPU runs \(core)")
        } else if ak_cpu_has_avx2_fma() != 0 && !fromEnvironment {
            XCTAssertNotEqual(core, "Prescott")
        }
        XCTAssertTrue(BLAS.summary.contains(core))
    }

    func testComputeContextsScopeThreadsAndPools() {
        let before = Int(ak_blas_get_threads())
        let pool = BufferPool(limitBytes: 1 << 20)
        ComputeContext(threads: 1, pool: pool).run {
            XCTAssertEqual(BLAS.threads, 1)
            XCTAssertEqual(Int(ak_blas_get_threads()), 1)
            ComputeContext(threads: 2).run { XCTAssertEqual(Int(ak_blas_get_threads()), 2) }
            XCTAssertEqual(Int(ak_blas_get_threads()), 1)
            // Tensors made here (also on parallelFor's worker threads) draw from and return to this pool.
            _ = Tensor.zeros([1000])
            parallelFor(4, grain: 1) { _ in _ = Tensor.zeros([3000]) }
        }
        XCTAssertGreaterThanOrEqual(pool.cachedBytes, 4000)
        XCTAssertEqual(Int(ak_blas_get_threads()), before)
        XCTAssertEqual(BLAS.threads, ComputeContext.standard.threads)
    }

    func testSgemmLeadingDimensionsAndBeta() {
        // C (2x3) inside a wider buffer (ldc 5), beta = 1 accumulates.
        let a: [Float] = [1, 2, 3, 4]  // 2x2
        let b: [Float] = [1, 0, 2, 0, 1, 3]  // 2x3
        var c = [Float](repeating: 1, count: 10)
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    BLAS.sgemm(transA: false, transB: false, m: 2, n: 3, k: 2, a: ap.baseAddress!, lda: 2,
                               b: bp.baseAddress!, ldb: 3, beta: 1, c: cp.baseAddress!, ldc: 5)
                }
            }
        }
        XCTAssertEqual(c, [2, 3, 9, 1, 1, 4, 5, 19, 1, 1])
    }
    /// A single row or column goes through GEMV: every transposition, strided operands (lda/ldb/ldc wider than the
    /// matrix), alpha, beta 1 accumulating and beta 0 overwriting a NaN, against a product in Double.
    func testVectorProductsMatchReferenceInEveryLayout() {
        var rng = SeededGenerator(seed: 7)
        for (m, n, k) in [(1, 37, 19), (23, 1, 17), (1, 1, 9)] {
            for transA in [false, true] {
                for transB in [false, true] {
                    for beta: Float in [0, 1] {
                        let (aRows, aCols) = transA ? (k, m) : (m, k)
                        let (bRows, bCols) = transB ? (n, k) : (k, n)
                        let (lda, ldb, ldc) = (aCols + 3, bCols + 2, n + 4)
                        let a = (0..<(aRows * lda)).map { _ in Float(rng.nextNormal()) }
                        let b = (0..<(bRows * ldb)).map { _ in Float(rng.nextNormal()) }
                        let start = (0..<(m * ldc)).map { _ in Float(rng.nextNormal()) }
                        var c = beta == 0 ? [Float](repeating: .nan, count: m * ldc) : start
                        let alpha: Float = 0.75
                        a.withUnsafeBufferPointer { ap in
                            b.withUnsafeBufferPointer { bp in
                                c.withUnsafeMutableBufferPointer { cp in
                                    BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: ap.baseAddress!, lda: lda,
                                               b: bp.baseAddress!, ldb: ldb, beta: beta, c: cp.baseAddress!, ldc: ldc)
                                }
                            }
                        }
                        for i in 0..<m {
                            for j in 0..<n {
                                var sum = 0.0
                                for p in 0..<k {
                                    let x = Double(transA ? a[p * lda + i] : a[i * lda + p])
                                    let y = Double(transB ? b[j * ldb + p] : b[p * ldb + j])
                                    sum += x * y
                                }
                                let expected = Double(alpha) * sum + (beta == 0 ? 0 : Double(start[i * ldc + j]))
                                XCTAssertEqual(Double(c[i * ldc + j]), expected, accuracy: 1e-5 * (1 + abs(expected)),
                                               "m \(m) n \(n) k \(k) transA \(transA) transB \(transB) beta \(beta) at (\(i), \(j))")
                            }
                        }
                    }
                }
            }
        }
    }
}

import Foundation
