import Foundation
import XCTest

@testable import AlignerTensor

final class AttentionTests: XCTestCase {
    let check = GradCheck()

    /// Double reference: per (batch, head), softmax(scale · q kᵀ + mask) v, with head h reading kv head h / (H/KV).
    private func reference(
        b: Int, h: Int, kv: Int, t: Int, d: Int, causal: Bool, padding: [Bool]?, scale: Double, window: Int? = nil
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
                            if let window, i - j >= window { continue }
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

    /// Mistral's sliding window: query i sees keys i − W + 1 … i (here W = 2 of 5 positions), with padding.
    func testSlidingWindow() {
        let (b, h, kv, t, d) = (2, 2, 1, 5, 3)
        let q = randomTensor([b, h, t, d], seed: 190), k = randomTensor([b, kv, t, d], seed: 191)
        let v = randomTensor([b, kv, t, d], seed: 192)
        let padding = [true, true, true, true, true, false, true, true, true, true]
        check.check("attention sliding window", inputs: [q, k, v],
                    op: { Tensor.attention(q: $0[0], k: $0[1], v: $0[2], causal: true, keyPadding: padding, window: 2) },
                    reference: reference(b: b, h: h, kv: kv, t: t, d: d, causal: true, padding: padding,
                                         scale: 1 / Double(d).squareRoot(), window: 2))
        // A window as long as the sequence changes nothing.
        let full = Tensor.attention(q: q, k: k, v: v, causal: true)
        XCTAssertEqual(Tensor.attention(q: q, k: k, v: v, causal: true, window: t).scalars, full.scalars)
        // The cached path applies the same window: the last query against a cache of all positions.
        let qLast = q.permute([0, 2, 1, 3]).slice(axis: 1, (t - 1)..<t)  // (B, 1, H, D)
        let kc = k.permute([0, 2, 1, 3]), vc = v.permute([0, 2, 1, 3])  // (B, T, KV, D)
        let cached = Tensor.cachedAttention(q: qLast, kCache: kc, vCache: vc, length: t, window: 2)
        let windowed = Tensor.attention(q: q, k: k, v: v, causal: true, window: 2).permute([0, 2, 1, 3]).slice(axis: 1, (t - 1)..<t)
        for (x, y) in zip(cached.scalars, windowed.scalars) { XCTAssertEqual(x, y, accuracy: 1e-6) }
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
        let out2 = ComputeContext(threads: 1).run {
            let o = Tensor.attention(q: q, k: k, v: v)
            o.sum().backward()
            return o
        }
        for (x, y) in zip(o1, out2.scalars) { XCTAssertEqual(x, y, accuracy: 1e-6) }
        for (x, y) in zip(g1, q.grad!.scalars) { XCTAssertEqual(x, y, accuracy: 1e-5) }
    }

    func testTimeMajorLayoutMatchesHeadMajor() {
        let (b, h, kv, t, d) = (2, 4, 2, 5, 3)
        let q = randomTensor([b, t, h, d], seed: 110), k = randomTensor([b, t, kv, d], seed: 111)
        let v = randomTensor([b, t, kv, d], seed: 112)
        let padding = [true, true, true, true, false, true, true, true, true, true]
        let ref = reference(b: b, h: h, kv: kv, t: t, d: d, causal: true, padding: padding, scale: 1 / Double(d).squareRoot())
        // The reference works on (B, H, T, D): permute inputs in, and the output back.
        func toHeadMajor(_ x: [Double], heads: Int) -> [Double] {
            var out = x
            for bi in 0..<b { for ti in 0..<t { for hi in 0..<heads { for e in 0..<d {
                out[((bi * heads + hi) * t + ti) * d + e] = x[((bi * t + ti) * heads + hi) * d + e]
            } } } }
            return out
        }
        check.check("attention bthd", inputs: [q, k, v],
                    op: { Tensor.attention(q: $0[0], k: $0[1], v: $0[2], keyPadding: padding, layout: .bthd) }) { x in
            let o = ref([toHeadMajor(x[0], heads: h), toHeadMajor(x[1], heads: kv), toHeadMajor(x[2], heads: kv)])
            var back = o
            for bi in 0..<b { for ti in 0..<t { for hi in 0..<h { for e in 0..<d {
                back[((bi * t + ti) * h + hi) * d + e] = o[((bi * h + hi) * t + ti) * d + e]
            } } } }
            return back
        }
    }

    func testFewerQueriesThanKeysAlignToTheEnd() {
        // Queries are the last Tq positions: their outputs equal the last rows of full self-attention.
        let (b, h, t, d) = (1, 2, 6, 4)
        let q = randomTensor([b, h, t, d], seed: 113, grad: false)
        let k = randomTensor([b, h, t, d], seed: 114, grad: false), v = randomTensor([b, h, t, d], seed: 115, grad: false)
        let full = Tensor.attention(q: q, k: k, v: v)
        let last = q.slice(axis: 2, 4..<6)
        let part = Tensor.attention(q: last, k: k, v: v)
        for hi in 0..<h { for i in 0..<2 { for e in 0..<d {
            XCTAssertEqual(part.data[(hi * 2 + i) * d + e], full.data[(hi * t + 4 + i) * d + e], accuracy: 1e-6)
        } } }
        let qp = randomTensor([b, h, 2, d], seed: 116), kp = randomTensor([b, h, 5, d], seed: 117)
        let vp = randomTensor([b, h, 5, d], seed: 118)
        check.check("attention Tq < Tk", inputs: [qp, kp, vp], op: { Tensor.attention(q: $0[0], k: $0[1], v: $0[2]) }) { x in
            // Pad q to Tk rows at the front, run the square reference, keep the last Tq rows.
            var qFull = [Double](repeating: 0, count: b * h * 5 * d)
            for hi in 0..<h { for i in 0..<2 { for e in 0..<d { qFull[(hi * 5 + 3 + i) * d + e] = x[0][(hi * 2 + i) * d + e] } } }
            let o = self.reference(b: b, h: h, kv: h, t: 5, d: d, causal: true, padding: nil, scale: 0.5)([qFull, x[1], x[2]])
            var out: [Double] = []
            for hi in 0..<h { for i in 0..<2 { for e in 0..<d { out.append(o[(hi * 5 + 3 + i) * d + e]) } } }
            return out
        }
    }

    func testCachedAttentionMatchesFullAttention() {
        let (b, h, kv, t, d, capacity) = (2, 4, 2, 7, 8, 10)
        let q = randomTensor([b, t, h, d], seed: 119, grad: false)
        let k = randomTensor([b, t, kv, d], seed: 120, grad: false), v = randomTensor([b, t, kv, d], seed: 121, grad: false)
        let full = Tensor.attention(q: q, k: k, v: v, layout: .bthd)
        // Cache (B, capacity, KV, D) holding the t positions.
        let kc = Tensor.zeros([b, capacity, kv, d]), vc = Tensor.zeros([b, capacity, kv, d])
        for bi in 0..<b {
            (kc.data + bi * capacity * kv * d).update(from: k.data + bi * t * kv * d, count: t * kv * d)
            (vc.data + bi * capacity * kv * d).update(from: v.data + bi * t * kv * d, count: t * kv * d)
        }
        let newest = q.slice(axis: 1, (t - 2)..<t)
        let out = Tensor.cachedAttention(q: newest, kCache: kc, vCache: vc, length: t)
        for bi in 0..<b { for i in 0..<2 { for j in 0..<(h * d) {
            XCTAssertEqual(out.data[(bi * 2 + i) * h * d + j], full.data[(bi * t + t - 2 + i) * h * d + j], accuracy: 1e-5)
        } } }
    }
}
