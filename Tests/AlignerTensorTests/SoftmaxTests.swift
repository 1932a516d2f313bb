import Foundation
import XCTest

@testable import AlignerTensor

/// Double reference: softmax of each row of length n.
func softmaxReference(_ x: [Double], n: Int) -> [Double] {
    var out = x
    for r in 0..<(x.count / n) {
        let row = x[(r * n)..<(r * n + n)]
        let m = row.max()!
        let e = row.map { Foundation.exp($0 - m) }
        let s = e.reduce(0, +)
        for (j, v) in e.enumerated() { out[r * n + j] = v / s }
    }
    return out
}

final class SoftmaxTests: XCTestCase {
    let check = GradCheck()

    func testSoftmaxAndLogSoftmax() {
        let x = randomTensor([3, 7], seed: 50, scale: 2)
        check.check("softmax", inputs: [x], op: { $0[0].softmax() }, reference: { softmaxReference($0[0], n: 7) })
        check.check("log softmax", inputs: [x], op: { $0[0].logSoftmax() }) { v in
            softmaxReference(v[0], n: 7).map { Foundation.log($0) }
        }
        let y = randomTensor([2, 2, 5], seed: 51)
        check.check("softmax 3-d", inputs: [y], op: { $0[0].softmax() }, reference: { softmaxReference($0[0], n: 5) })
    }

    func testLargeLogitsStayFinite() {
        let x = Tensor([1e4, -1e4, 5e3, 1e4, 0, -3e3], shape: [2, 3], requiresGrad: true)
        let s = x.softmax()
        XCTAssertTrue(s.scalars.allSatisfy { $0.isFinite })
        XCTAssertEqual(s.data[0], 1, accuracy: 1e-6)
        let l = x.logSoftmax()
        XCTAssertTrue(l.scalars.allSatisfy { $0.isFinite })
        XCTAssertEqual(l.data[1], -2e4, accuracy: 1)
        (l * Tensor.ones([2, 3])).sum().backward()
        XCTAssertTrue(x.grad!.scalars.allSatisfy { $0.isFinite })
    }
}

final class CrossEntropyTests: XCTestCase {
    let check = GradCheck()

    private func reference(_ targets: [Int], v: Int, ignore: Int = -100, mean: Bool = true) -> ([[Double]]) -> [Double] {
        { x in
            var total = 0.0
            var counted = 0
            for (r, t) in targets.enumerated() where t != ignore {
                let row = Array(x[0][(r * v)..<(r * v + v)])
                let m = row.max()!
                let lse = m + Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - m) })
                total += lse - row[t]
                counted += 1
            }
            return [mean ? (counted == 0 ? 0 : total / Double(counted)) : total]
        }
    }

    func testMeanWithIgnoredTargets() {
        let logits = randomTensor([6, 5], seed: 60, scale: 2)
        let targets = [0, -100, 4, 2, -100, 2]
        check.check("cross entropy", inputs: [logits], op: { Tensor.crossEntropy($0[0], targets: targets) },
                    reference: reference(targets, v: 5))
        // Ignored rows get exactly zero gradient.
        XCTAssertTrue(logits.grad!.scalars[5..<10].allSatisfy { $0 == 0 })
    }

    func testSumReductionAndThreeDimensionalLogits() {
        let logits = randomTensor([2, 3, 4], seed: 61)
        let targets = [3, 0, 1, -100, 2, 2]
        check.check("cross entropy sum", inputs: [logits],
                    op: { Tensor.crossEntropy($0[0], targets: targets, reduction: .sum) },
                    reference: reference(targets, v: 4, mean: false))
    }

    func testCustomIgnoreIndexAndAllIgnored() {
        let logits = randomTensor([3, 4], seed: 62)
        check.check("ignore 1", inputs: [logits], op: { Tensor.crossEntropy($0[0], targets: [1, 0, 3], ignoreIndex: 1) },
                    reference: reference([1, 0, 3], v: 4, ignore: 1))
        logits.releaseGrad()
        let loss = Tensor.crossEntropy(logits, targets: [-100, -100, -100])
        XCTAssertEqual(loss.item, 0)
        loss.backward()
        XCTAssertTrue(logits.grad!.scalars.allSatisfy { $0 == 0 })
    }

    func testLargeLogitsStayFinite() {
        let logits = Tensor([1e4, -1e4, 0, 3e3, 1e4, 1e4], shape: [2, 3], requiresGrad: true)
        let loss = Tensor.crossEntropy(logits, targets: [1, 2])
        XCTAssertTrue(loss.item.isFinite)
        // Row 0: lse = 1e4, loss 2e4. Row 1: lse = 1e4 + log 2, loss log 2.
        XCTAssertEqual(Double(loss.item), (2e4 + Foundation.log(2.0)) / 2, accuracy: 1)
        loss.backward()
        XCTAssertTrue(logits.grad!.scalars.allSatisfy { $0.isFinite })
        XCTAssertEqual(logits.grad!.data[0], 0.5, accuracy: 1e-6)
    }

    func testManyRowsInParallelMatchReference() {
        let v = 97
        let logits = randomTensor([300, v], seed: 63, grad: false)
        let targets = (0..<300).map { $0 % 5 == 0 ? -100 : ($0 * 13) % v }
        let loss = Tensor.crossEntropy(logits, targets: targets)
        let ref = reference(targets, v: v)([logits.scalars.map(Double.init)])[0]
        XCTAssertEqual(Double(loss.item), ref, accuracy: 1e-5 * ref)
    }
}
