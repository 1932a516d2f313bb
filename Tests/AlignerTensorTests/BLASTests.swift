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

    func testThreadCountIsSettable() {
        let saved = BLAS.threads
        defer { BLAS.threads = saved }
        BLAS.threads = 1
        XCTAssertEqual(BLAS.threads, 1)
        XCTAssertEqual(Int(ak_blas_get_threads()), 1)
        BLAS.threads = 2
        XCTAssertEqual(BLAS.threads, 2)
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
