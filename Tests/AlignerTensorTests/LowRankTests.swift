import XCTest

@testable import AlignerTensor

/// Dropout with key-derived masks and the fused low-rank (LoRA) linear layer, against Double references.
final class LowRankTests: XCTestCase {
    let check = GradCheck()

    func testDropoutMaskIsAFunctionOfKeyAndIndex() {
        let p: Float = 0.3
        let mask = DropoutMask.values(count: 10_000, p: p, key: 42)
        XCTAssertEqual(mask, DropoutMask.values(count: 10_000, p: p, key: 42))
        XCTAssertEqual(Array(mask.prefix(37)), DropoutMask.values(count: 37, p: p, key: 42), "a prefix does not depend on the length")
        XCTAssertNotEqual(mask, DropoutMask.values(count: 10_000, p: p, key: 43))
        let dropped = Double(mask.filter { $0 == 0 }.count) / 10_000
        XCTAssertEqual(dropped, 0.3, accuracy: 0.02)
        XCTAssertTrue(mask.allSatisfy { $0 == 0 || $0 == 1 / (1 - p) })
        // The same mask whatever the thread count.
        let x = randomTensor([64, 300], seed: 3, grad: false)
        let one = ComputeContext(threads: 1).run { x.dropout(p, key: 9).scalars }
        let two = ComputeContext(threads: 2).run { x.dropout(p, key: 9).scalars }
        XCTAssertEqual(one, two)
        XCTAssertTrue(x.dropout(0, key: 9) === x)
    }

    func testDropoutGradient() {
        let x = randomTensor([3, 11], seed: 5)
        let mask = DropoutMask.values(count: 33, p: 0.4, key: 7).map(Double.init)
        check.check("dropout", inputs: [x], op: { $0[0].dropout(0.4, key: 7) }, reference: { xs in zip(xs[0], mask).map { $0 * $1 } })
    }

    /// y = x·Wᵀ + bias + scale·(mask ⊙ x)·Aᵀ·Bᵀ in Double.
    func reference(n: Int, inputs: Int, outputs: Int, r: Int, scale: Double, mask: [Double]?) -> ([[Double]]) -> [Double] {
        { v in
            let (x, w, a, b) = (v[0], v[1], v[2], v[3])
            let bias = v.count > 4 ? v[4] : [Double](repeating: 0, count: outputs)
            var y = [Double](repeating: 0, count: n * outputs)
            for i in 0..<n {
                var u = [Double](repeating: 0, count: r)
                for k in 0..<r { for j in 0..<inputs { u[k] += x[i * inputs + j] * (mask?[i * inputs + j] ?? 1) * a[k * inputs + j] } }
                for o in 0..<outputs {
                    var s = bias[o]
                    for j in 0..<inputs { s += x[i * inputs + j] * w[o * inputs + j] }
                    for k in 0..<r { s += scale * u[k] * b[o * r + k] }
                    y[i * outputs + o] = s
                }
            }
            return y
        }
    }

    func testLowRankLinearForwardAndEveryGradient() {
        let (n, inputs, outputs, r) = (6, 5, 7, 3)
        for (p, withBias) in [(Float(0), false), (0, true), (0.3, true)] {
            let x = randomTensor([2, 3, inputs], seed: 11), w = randomTensor([outputs, inputs], seed: 12)
            let a = randomTensor([r, inputs], seed: 13), b = randomTensor([outputs, r], seed: 14), bias = randomTensor([outputs], seed: 15)
            let mask = p == 0 ? nil : DropoutMask.values(count: n * inputs, p: p, key: 99).map(Double.init)
            check.check("lowRankLinear p \(p) bias \(withBias)", inputs: [x, w, a, b] + (withBias ? [bias] : []), op: { t in
                Tensor.lowRankLinear(t[0], weight: t[1], bias: withBias ? t[4] : nil, a: t[2], b: t[3], scale: 1.7, dropout: p, dropoutKey: 99)
            }, reference: reference(n: n, inputs: inputs, outputs: outputs, r: r, scale: 1.7, mask: mask))
        }
        // A frozen W gets no gradient buffer; the rest still do.
        let x = randomTensor([4, 5], seed: 1), w = randomTensor([7, 5], seed: 2, grad: false)
        let a = randomTensor([3, 5], seed: 3), b = randomTensor([7, 3], seed: 4)
        Tensor.lowRankLinear(x, weight: w, bias: nil, a: a, b: b, scale: 2, dropout: 0.2, dropoutKey: 5).sum().backward()
        XCTAssertNil(w.grad)
        XCTAssertNotNil(a.grad)
        XCTAssertNotNil(b.grad)
        XCTAssertNotNil(x.grad)
    }
}
