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
        let wide = Tensor.randomUniform([4, 5], low: -30, high: 30, generator: &g, requiresGrad: true)
        for x in [a, wide] {
            check.check("log_sigmoid", inputs: [x], op: { $0[0].logSigmoid() }, reference: { $0[0].map { -Foundation.log1p(Foundation.exp(-$0)) } })
        }
        // Far out it stays finite: log σ(−100) = −100, log σ(100) ≈ −3.7e-44.
        let far = Tensor([-100, 100], shape: [2]).logSigmoid().scalars
        XCTAssertEqual(far[0], -100, accuracy: 1e-5)
        XCTAssertEqual(far[1], 0, accuracy: 1e-30)
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
