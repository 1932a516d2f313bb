import Foundation
import XCTest

@testable import AlignerTensor

final class ElementwiseTests: XCTestCase {
    let check = GradCheck()

    /// Pairs of shapes covering same-shape, row, column, scalar and two-sided broadcasting.
    let shapePairs: [([Int], [Int])] = [
        ([2, 3], [2, 3]), ([2, 3], [3]), ([2, 3], [2, 1]), ([3, 1, 4], [2, 4]), ([4], []), ([1, 3], [2, 1]),
        ([2, 1, 3], [1, 4, 1]),
    ]

    private func binaryReference(_ a: [Int], _ b: [Int], _ f: @escaping (Double, Double) -> Double) -> ([[Double]]) -> [Double] {
        let out = broadcastShape(a, b)!
        let n = out.reduce(1, *)
        return { x in
            (0..<n).map { i in f(x[0][broadcastIndex(i, out: out, in: a)], x[1][broadcastIndex(i, out: out, in: b)]) }
        }
    }

    /// Dropout zeroes about p of the elements, scales the rest by 1/(1 − p), is the same for the same generator state,
    /// and its gradient goes through the same mask.
    func testDropoutMaskScaleAndGradient() {
        let p: Float = 0.3
        let x = randomTensor([4, 50], seed: 5)
        var g1 = SeededGenerator(seed: 8), g2 = SeededGenerator(seed: 8)
        let y1 = x.dropout(p, generator: &g1).scalars, y2 = x.dropout(p, generator: &g2).scalars
        XCTAssertEqual(y1, y2)
        let zeros = y1.filter { $0 == 0 }.count
        XCTAssertTrue((40...80).contains(zeros), "\(zeros) of 200 dropped at p = 0.3")
        for (a, b) in zip(x.scalars, y1) where b != 0 { XCTAssertEqual(b, a / (1 - p), accuracy: 1e-6) }
        var g0 = SeededGenerator(seed: 8)
        XCTAssertTrue(x.dropout(0, generator: &g0) === x)
        // The mask as the reference sees it: the same draws.
        var gm = SeededGenerator(seed: 8)
        let threshold = UInt64((Double(p) * 16_777_216).rounded())
        let keep = (0..<x.count).map { _ in (gm.next() >> 40) < threshold ? 0.0 : 1 / (1 - Double(p)) }
        check.check("dropout", inputs: [x], op: { var g = SeededGenerator(seed: 8); return $0[0].dropout(p, generator: &g) },
                    reference: { xs in zip(xs[0], keep).map { $0 * $1 } })
    }

    func testBroadcastShape() {
        XCTAssertEqual(broadcastShape([3, 1, 4], [2, 4]), [3, 2, 4])
        XCTAssertEqual(broadcastShape([], [2, 3]), [2, 3])
        XCTAssertNil(broadcastShape([2, 3], [4]))
    }

    func testAddSubMulDivWithBroadcasting() {
        for (i, (sa, sb)) in shapePairs.enumerated() {
            let a = randomTensor(sa, seed: UInt64(10 + i))
            var g = SeededGenerator(seed: UInt64(40 + i))
            // Divisors kept away from zero.
            let b = Tensor.randomUniform(sb, low: 0.5, high: 2, generator: &g, requiresGrad: true)
            check.check("add \(sa)+\(sb)", inputs: [a, b], op: { $0[0] + $0[1] }, reference: binaryReference(sa, sb, +))
            check.check("sub \(sa)-\(sb)", inputs: [a, b], op: { $0[0] - $0[1] }, reference: binaryReference(sa, sb, -))
            check.check("mul \(sa)*\(sb)", inputs: [a, b], op: { $0[0] * $0[1] }, reference: binaryReference(sa, sb, *))
            check.check("div \(sa)/\(sb)", inputs: [a, b], op: { $0[0] / $0[1] }, reference: binaryReference(sa, sb, /))
            // Either side first.
            check.check("mul \(sb)*\(sa)", inputs: [b, a], op: { $0[0] * $0[1] }, reference: binaryReference(sb, sa, *))
        }
    }

    func testBroadcastingLargeEnoughToRunInParallel() {
        let a = randomTensor([64, 33, 40], seed: 1, grad: false)
        let b = randomTensor([33, 1], seed: 2, grad: false)
        let out = a * b
        let ref = binaryReference([64, 33, 40], [33, 1], *)([a.scalars.map(Double.init), b.scalars.map(Double.init)])
        for (x, y) in zip(out.scalars, ref) { XCTAssertEqual(Double(x), y, accuracy: 1e-5) }
    }

    func testScalarOperations() {
        let a = randomTensor([3, 4], seed: 3)
        check.check("x*2.5+1", inputs: [a], op: { $0[0] * 2.5 + 1 }, reference: { $0[0].map { $0 * 2.5 + 1 } })
        check.check("3-x", inputs: [a], op: { 3 - $0[0] }, reference: { $0[0].map { 3 - $0 } })
        check.check("x/4", inputs: [a], op: { $0[0] / 4 }, reference: { $0[0].map { $0 / 4 } })
        check.check("-x", inputs: [a], op: { -$0[0] }, reference: { $0[0].map { -$0 } })
    }

    func testUnaryOperations() {
        let a = randomTensor([4, 5], seed: 4)
        var g = SeededGenerator(seed: 5)
        let positive = Tensor.randomUniform([4, 5], low: 0.3, high: 3, generator: &g, requiresGrad: true)
        check.check("exp", inputs: [a], op: { $0[0].exp() }, reference: { $0[0].map { Foundation.exp($0) } })
        check.check("log", inputs: [positive], op: { $0[0].log() }, reference: { $0[0].map { Foundation.log($0) } })
        check.check("sqrt", inputs: [positive], op: { $0[0].sqrt() }, reference: { $0[0].map { $0.squareRoot() } })
        check.check("rsqrt", inputs: [positive], op: { $0[0].rsqrt() }, reference: { $0[0].map { 1 / $0.squareRoot() } })
        check.check("square", inputs: [a], op: { $0[0].square() }, reference: { $0[0].map { $0 * $0 } })
        check.check("reciprocal", inputs: [positive], op: { $0[0].reciprocal() }, reference: { $0[0].map { 1 / $0 } })
        check.check("silu", inputs: [a], op: { $0[0].silu() }, reference: { $0[0].map { $0 / (1 + Foundation.exp(-$0)) } })
        check.check("gelu tanh", inputs: [a], op: { $0[0].gelu(approximate: .tanh) }) { x in
            x[0].map { v in 0.5 * v * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (v + 0.044715 * v * v * v))) }
        }
        check.check("gelu erf", inputs: [a], op: { $0[0].gelu() }) { x in
            x[0].map { v in 0.5 * v * (1 + Foundation.erf(v / 2.0.squareRoot())) }
        }
    }

    func testGELUVariantsDiffer() {
        // The two GELU forms agree only approximately; a swap of them must be visible.
        let x = Tensor([1.5], shape: [1])
        XCTAssertNotEqual(x.gelu(approximate: .tanh).item, x.gelu().item)
        XCTAssertEqual(Double(x.gelu().item), 0.5 * 1.5 * (1 + Foundation.erf(1.5 / 2.0.squareRoot())), accuracy: 1e-6)
    }

    func testSwiGLU() {
        for n in [5, 16, 21] {
            let gate = randomTensor([n], seed: UInt64(60 + n), scale: 2), up = randomTensor([n], seed: UInt64(70 + n))
            check.check("swiglu \(n)", inputs: [gate, up], op: { Tensor.swiglu(gate: $0[0], up: $0[1]) }) { x in
                zip(x[0], x[1]).map { g, u in g / (1 + Foundation.exp(-g)) * u }
            }
        }
    }
}
