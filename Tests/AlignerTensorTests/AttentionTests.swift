import Foundation
import XCTest

@testable import AlignerTensor

final class AttentionTests: XCTestCase {
    let check = GradCheck()

    /// Double reference: per (batch, head), softmax(scale · q kᵀ + mask) v, with head h reading kv head h / (H/KV).
    private func reference(
        b: Int, h: Int, kv: Int, t: Int, d: Int, causal: Bool, padding: [Bool]?, scale: Double
    ) -> ([[Double]]) -> [Double] {
        { x in
            let (q, k, v) = (x[0], x[1], x[2])
            var out = [Double](repeating: 0, count: b * h * t * d)
            for bi in 0..<b {
                for hi in 0..<h {
                    let kh = hi / (h / kv)
                    for i in 0..<t {
                        var s = [Double](repeating: -.infinity, count: t)
                        for j in 0..<t {
                            if causal && j > i { continue }
                            if let padding, !padding[bi * t + j] { continue }
                            var dot = 0.0
                            for e in 0..<d { dot += q[((bi * h + hi) * t + i) * d + e] * k[((bi * kv + kh) * t + j) * d + e] }
                            s[j] = scale * dot
                        }
                        let m = s.max()!
                        if m == -.infinity { continue }
                        let p = s.map { Foundation.exp($0 - m) }
                        let z = p.reduce(0, +)
                        for e in 0..<d {
                            var acc = 0.0
                            for j in 0..<t { acc += p[j] / z * v[((bi * kv + kh) * t + j) * d + e] }
                            out[((bi * h + hi) * t + i) * d + e] = acc
                        }
                    }
                }
            }
            return out
        }
    }

    func testCausalWithGroupedKeyValueHeads() {
        let (b, h, kv, t, d) = (2, 4, 2, 5, 3)
        let q = randomTensor([b, h, t, d], seed: 90), k = randomTensor([b, kv, t, d], seed: 91)
        let v = randomTensor([b, kv, t, d], seed: 92)
        check.check("attention causal gqa", inputs: [q, k, v],
                    op: { Tensor.attention(q: $0[0], k: $0[1], v: $0[2], causal: true) },
                    reference: reference(b: b, h: h, kv: kv, t: t, d: d, causal: true, padding: nil,
                                         scale: 1 / Double(d).squareRoot()))
    }

    func testPaddingMaskAndCustomScale() {
        let (b, h, kv, t, d) = (2, 2, 1, 4, 2)
        let q = randomTensor([b, h, t, d], seed: 93), k = randomTensor([b, kv, t, d], seed: 94)
        let v = randomTensor([b, kv, t, d], seed: 95)
        // Right padding in sequence 0, left padding in sequence 1 (its first query sees no key: zeros).
        let padding = [true, true, true, false, false, true, true, true]
        check.check("attention padded", inputs: [q, k, v],
                    op: { Tensor.attention(q: $0[0], k: $0[1], v: $0[2], causal: true, keyPadding: padding, scale: 0.7) },
                    reference: reference(b: b, h: h, kv: kv, t: t, d: d, causal: true, padding: padding, scale: 0.7))
        let out = Tensor.attention(q: q, k: k, v: v, causal: true, keyPadding: padding)
        XCTAssertEqual(Array(out.scalars[(4 * d * 2)..<(4 * d * 2 + d)]), [0, 0])
    }

    func testNonCausal() {
        let (b, h, kv, t, d) = (1, 3, 3, 4, 4)
        let q = randomTensor([b, h, t, d], seed: 96), k = randomTensor([b, kv, t, d], seed: 97)
        let v = randomTensor([b, kv, t, d], seed: 98)
        check.check("attention full", inputs: [q, k, v],
                    op: { Tensor.attention(q: $0[0], k: $0[1], v: $0[2], causal: false) },
                    reference: reference(b: b, h: h, kv: kv, t: t, d: d, causal: false, padding: nil,
                                         scale: 0.5))
    }

    func testFutureTokensDoNotLeak() {
        // Changing the last token's key and value must not change any earlier output.
        let (b, h, t, d) = (1, 2, 6, 4)
        let q = randomTensor([b, h, t, d], seed: 99, grad: false)
        let k = randomTensor([b, h, t, d], seed: 100, grad: false), v = randomTensor([b, h, t, d], seed: 101, grad: false)
        let before = Tensor.attention(q: q, k: k, v: v).scalars
        for hi in 0..<h { for e in 0..<d { k.data[(hi * t + t - 1) * d + e] += 5; v.data[(hi * t + t - 1) * d + e] -= 3 } }
        let after = Tensor.attention(q: q, k: k, v: v).scalars
        for hi in 0..<h {
            for i in 0..<(t - 1) {
                for e in 0..<d { XCTAssertEqual(before[(hi * t + i) * d + e], after[(hi * t + i) * d + e]) }
            }
            XCTAssertNotEqual(before[(hi * t + t - 1) * d], after[(hi * t + t - 1) * d])
        }
    }

    func testManyGroupsRunInParallelAndMatchSerial() {
        // 8 groups: the parallel path with single-threaded BLAS; compare with one thread overall.
        let (b, h, t, d) = (4, 4, 16, 8)
        let q = randomTensor([b, h, t, d], seed: 102), k = randomTensor([b, 2, t, d], seed: 103)
        let v = randomTensor([b, 2, t, d], seed: 104)
        let out = Tensor.attention(q: q, k: k, v: v)
        out.sum().backward()
        let (o1, g1) = (out.scalars, q.grad!.scalars)
        q.releaseGrad(); k.releaseGrad(); v.releaseGrad()
        let saved = BLAS.threads
        BLAS.threads = 1
        defer { BLAS.threads = saved }
        let out2 = Tensor.attention(q: q, k: k, v: v)
        out2.sum().backward()
        for (x, y) in zip(o1, out2.scalars) { XCTAssertEqual(x, y, accuracy: 1e-6) }
        for (x, y) in zip(g1, q.grad!.scalars) { XCTAssertEqual(x, y, accuracy: 1e-5) }
    }
}
