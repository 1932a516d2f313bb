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
}

import Foundation
