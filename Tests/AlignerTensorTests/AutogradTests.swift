import XCTest

@testable import AlignerTensor

final class AutogradTests: XCTestCase {
    func testTensorUsedTwiceGetsBothContributions() {
        let x = Tensor([1, 2, 3], shape: [3], requiresGrad: true)
        // y = x·x + 3x → dy/dx = 2x + 3
        let y = (x * x + x * 3).sum()
        y.backward()
        XCTAssertEqual(x.grad!.scalars, [5, 7, 9])
    }

    func testDiamondGraph() {
        let x = Tensor([0.5, -1], shape: [2], requiresGrad: true)
        let a = x.exp()
        let b = a * a  // a used twice
        let c = a + b  // and a third time
        c.sum().backward()
        // d/dx (e^x + e^2x) = e^x + 2 e^2x
        for i in 0..<2 {
            let v = Double(x.data[i])
            XCTAssertEqual(Double(x.grad!.data[i]), Foundation.exp(v) + 2 * Foundation.exp(2 * v), accuracy: 1e-5)
        }
    }

    func testGradientsAccumulateAcrossBackwardCalls() {
        let x = Tensor([2], shape: [1], requiresGrad: true)
        (x * 3).sum().backward()
        (x * 4).sum().backward()
        XCTAssertEqual(x.grad!.scalars, [7])
    }

    func testNoGradRecordsNothing() {
        let x = Tensor([1, 2], shape: [2], requiresGrad: true)
        let y = withNoGrad { (x * x).exp().sum() }
        XCTAssertFalse(y.requiresGrad)
        XCTAssertTrue(y.isLeaf)
        XCTAssertNil(y.node)
        // Recording resumes after the scope.
        XCTAssertTrue((x * x).requiresGrad)
    }

    func testInputsWithoutGradRecordNothing() {
        let a = Tensor([1], shape: [1]), b = Tensor([2], shape: [1])
        let c = a * b
        XCTAssertFalse(c.requiresGrad)
        XCTAssertNil(c.node)
    }

    func testLongChainRunsBackward() {
        let x = Tensor([1], shape: [1], requiresGrad: true)
        var y = x
        for _ in 0..<2_000 { y = y * 1.001 + 0.0001 }
        y.sum().backward()
        XCTAssertEqual(Double(x.grad!.item), Foundation.pow(1.001, 2_000), accuracy: 1e-3)
        // A very deep graph too: the walk is iterative.
        let z = Tensor([1], shape: [1], requiresGrad: true)
        var w = z
        for _ in 0..<50_000 { w = w + 0 }
        w.backward()
        XCTAssertEqual(z.grad!.item, 1)
    }

    func testDroppingAVeryDeepGraphWithoutBackward() {
        // Released iteratively: this must not overflow the stack.
        for n in [1_000, 150_000] {
            let x = Tensor([1], shape: [1], requiresGrad: true)
            var y = x * 1
            for _ in 0..<n { y = y + 0 }
            XCTAssertTrue(y.requiresGrad)
        }
        // Intermediate results still held by the user keep their graph.
        let x = Tensor([2], shape: [1], requiresGrad: true)
        var kept: Tensor? = nil
        do {
            let a = x * 3
            kept = a * a
            _ = kept! + 1  // dropped at once
        }
        kept!.backward()
        XCTAssertEqual(x.grad!.scalars, [36])
    }

    func testZeroAndReleaseGradKeepParameters() {
        let p = Tensor([1, 2, 3], shape: [3], requiresGrad: true)
        let storage = p.data
        (p * p).sum().backward()
        let gradBuffer = p.grad!.data
        p.zeroGrad()
        XCTAssertEqual(p.grad!.scalars, [0, 0, 0])
        XCTAssertEqual(p.grad!.data, gradBuffer)  // same buffer
        (p * 2).sum().backward()
        XCTAssertEqual(p.grad!.scalars, [2, 2, 2])
        p.releaseGrad()
        XCTAssertNil(p.grad)
        XCTAssertEqual(p.data, storage)  // parameters untouched
        XCTAssertEqual(p.scalars, [1, 2, 3])
    }

    func testIntermediateGradientsAreReleasedUnlessRetained() {
        let x = Tensor([1, 2], shape: [2], requiresGrad: true)
        let h = x * 2
        let kept = x * 3
        kept.retainGrad()
        (h + kept).sum().backward()
        XCTAssertNil(h.grad)
        XCTAssertEqual(kept.grad!.scalars, [1, 1])
        XCTAssertEqual(x.grad!.scalars, [5, 5])
    }

    func testRetainGraphAllowsSecondBackward() {
        let x = Tensor([3], shape: [1], requiresGrad: true)
        let y = (x * x).sum()
        y.backward(retainGraph: true)
        y.backward()
        XCTAssertEqual(x.grad!.scalars, [12])
    }

    func testNonScalarBackwardNeedsGradient() {
        let x = Tensor([1, 2], shape: [2], requiresGrad: true)
        let y = x * x
        y.backward(gradient: Tensor([1, 0.5], shape: [2]))
        XCTAssertEqual(x.grad!.scalars, [2, 2])
    }
}

import Foundation
