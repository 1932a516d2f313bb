import Foundation
import XCTest

@testable import AlignerTensor

final class VectorMathTests: XCTestCase {
    func testExpAccuracyOverTheFloatRange() {
        var worst = 0.0
        var x: Float = -87
        while x < 88 {
            let v = vexp(Vec8((0..<8).map { x + Float($0) * 0.0137 }))
            for k in 0..<8 {
                let arg = Double(x + Float(k) * 0.0137)
                let ref = Foundation.exp(Double(Float(arg)))
                worst = max(worst, abs(Double(v[k]) - ref) / ref)
            }
            x += 0.173
        }
        XCTAssertLessThan(worst, 3e-7)
    }

    func testExpLimits() {
        let v = vexp(Vec8([-.infinity, -200, -87.5, 0, 1, 89, .infinity, -1e-9]))
        XCTAssertEqual(v[0], 0)
        XCTAssertEqual(v[1], 0)
        XCTAssertEqual(v[2], 0)
        XCTAssertEqual(v[3], 1)
        XCTAssertEqual(v[4], Float(M_E), accuracy: 1e-6)
        XCTAssertEqual(v[5], .infinity)
        XCTAssertEqual(v[6], .infinity)
        XCTAssertEqual(v[7], 1, accuracy: 1e-7)
    }

    func testTanhAndSigmoid() {
        let xs: [Float] = [-9, -2, -0.5, -1e-3, 0, 0.3, 1.7, 12]
        let t = vtanh(Vec8(xs)), s = vsigmoid(Vec8(xs))
        for (k, x) in xs.enumerated() {
            XCTAssertEqual(Double(t[k]), Foundation.tanh(Double(x)), accuracy: 2e-7)
            XCTAssertEqual(Double(s[k]), 1 / (1 + Foundation.exp(-Double(x))), accuracy: 2e-7)
        }
    }

    func testRowHelpersHandleTails() {
        for n in [1, 7, 8, 9, 23] {
            let x = (0..<n).map { Float($0) * 0.37 - 2 }
            x.withUnsafeBufferPointer { p in
                let base = p.baseAddress!
                XCTAssertEqual(RowMath.max(base, n), x.max()!)
                XCTAssertEqual(Double(RowMath.dot(base, base, n)), x.reduce(0.0) { $0 + Double($1 * $1) }, accuracy: 1e-4)
                let m = x.max()!
                let ref = x.reduce(0.0) { $0 + Foundation.exp(Double($1 - m)) }
                XCTAssertEqual(Double(RowMath.expSum(base, n, shift: m, into: nil)), ref, accuracy: 1e-5 * ref)
            }
        }
    }
}
