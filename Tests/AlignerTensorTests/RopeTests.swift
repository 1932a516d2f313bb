import Foundation
import XCTest

@testable import AlignerTensor

final class RopeTests: XCTestCase {
    let check = GradCheck()

    /// Double reference in Hugging Face's convention: inv_freq_i = theta^(-2i/D); rotate_half pairs i with i + D/2.
    private func reference(b: Int, h: Int, t: Int, d: Int, positions: [Int], theta: Double) -> ([[Double]]) -> [Double] {
        { v in
            var out = v[0]
            let half = d / 2
            for bi in 0..<b {
                for hi in 0..<h {
                    for ti in 0..<t {
                        let p = Double(positions.count == t ? positions[ti] : positions[bi * t + ti])
                        let base = ((bi * h + hi) * t + ti) * d
                        for i in 0..<half {
                            let f = p / Foundation.pow(theta, Double(2 * i) / Double(d))
                            let x1 = v[0][base + i], x2 = v[0][base + i + half]
                            out[base + i] = x1 * Foundation.cos(f) - x2 * Foundation.sin(f)
                            out[base + i + half] = x2 * Foundation.cos(f) + x1 * Foundation.sin(f)
                        }
                    }
                }
            }
            return out
        }
    }

    func testSharedPositions() {
        let (b, h, t, d) = (2, 3, 4, 8)
        let x = randomTensor([b, h, t, d], seed: 80)
        let table = RopeTable(headDim: d, theta: 10_000, positions: 16)
        let pos = [0, 1, 2, 3]
        check.check("rope", inputs: [x], op: { $0[0].rope(positions: pos, table: table) },
                    reference: reference(b: b, h: h, t: t, d: d, positions: pos, theta: 10_000))
    }

    func testPerSequencePositionsAndOtherTheta() {
        let (b, h, t, d) = (2, 2, 3, 4)
        let x = randomTensor([b, h, t, d], seed: 81)
        let table = RopeTable(headDim: d, theta: 500, positions: 64)
        let pos = [5, 6, 7, 40, 41, 63]
        check.check("rope per sequence", inputs: [x], op: { $0[0].rope(positions: pos, table: table) },
                    reference: reference(b: b, h: h, t: t, d: d, positions: pos, theta: 500))
    }

    /// Phi-3's partial rotary embedding (first R = 4 of D = 6 features rotated, given frequencies, times an
    /// attention scaling as YaRN's): rotation within the first R features, the rest passed through.
    func testPartialRotaryWithScaledTable() {
        let (b, h, t, d) = (1, 2, 3, 6)
        let inv: [Float] = [0.9, 0.05]
        let scaling: Float = 1.2
        let table = RopeTable(headDim: d, inverseFrequencies: inv, positions: 8, attentionScaling: scaling)
        XCTAssertEqual(table.rotaryDim, 4)
        let x = randomTensor([b, t, h, d], seed: 84)
        let pos = [2, 5, 7]
        check.check("rope partial", inputs: [x], op: { $0[0].rope(positions: pos, table: table, layout: .bthd) }) { v in
            var out = v[0]
            for ti in 0..<t {
                for hi in 0..<h {
                    let base = (ti * h + hi) * d
                    for i in 0..<2 {
                        let f = Double(Float(pos[ti]) * inv[i])
                        let (c, s) = (Double(Float(Foundation.cos(f)) * scaling), Double(Float(Foundation.sin(f)) * scaling))
                        let x1 = v[0][base + i], x2 = v[0][base + i + 2]
                        out[base + i] = x1 * c - x2 * s
                        out[base + i + 2] = x2 * c + x1 * s
                    }
                }
            }
            return out
        }
    }

    func testPositionZeroIsIdentity() {
        let x = randomTensor([1, 1, 1, 6], seed: 82, grad: false)
        let y = x.rope(positions: [0], table: RopeTable(headDim: 6, theta: 10_000, positions: 1))
        XCTAssertEqual(y.scalars, x.scalars)
    }

    func testTimeMajorLayout() {
        let (b, h, t, d) = (2, 3, 4, 6)
        let x = randomTensor([b, t, h, d], seed: 83)
        let table = RopeTable(headDim: d, theta: 10_000, positions: 32)
        let pos = [3, 4, 5, 6, 0, 1, 2, 3]
        let ref = reference(b: b, h: h, t: t, d: d, positions: pos, theta: 10_000)
        check.check("rope bthd", inputs: [x], op: { $0[0].rope(positions: pos, table: table, layout: .bthd) }) { v in
            var hm = v[0]
            for bi in 0..<b { for ti in 0..<t { for hi in 0..<h { for e in 0..<d {
                hm[((bi * h + hi) * t + ti) * d + e] = v[0][((bi * t + ti) * h + hi) * d + e]
            } } } }
            let o = ref([hm])
            var back = o
            for bi in 0..<b { for ti in 0..<t { for hi in 0..<h { for e in 0..<d {
                back[((bi * t + ti) * h + hi) * d + e] = o[((bi * h + hi) * t + ti) * d + e]
            } } } }
            return back
        }
    }
}
