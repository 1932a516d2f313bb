import XCTest

@testable import AlignerTensor

/// Test support: a Double-precision reference for an op, checked against the Float32 op's forward and, by central
/// finite differences in Double, against its backward.
///
/// The scalar probed is L = Σ r_i · y_i with fixed random weights r, so every output element's gradient path is
/// exercised. Finite differences are taken on the Double reference (not on the Float32 op), which makes the numerical
/// gradient accurate to ~1e-9 and lets the tolerance be tight: a wrong sign, a missing term or an off-by-one fails.
struct GradCheck {
    var forwardTolerance: Double = 1e-5
    var gradientTolerance: Double = 1e-4
    var step: Double = 1e-6

    /// - inputs: Float tensors (those with `requiresGrad` are checked).
    /// - op: the operation under test.
    /// - reference: the same function on Double arrays (row-major, inputs in order), returning the output flat.
    func check(
        _ name: String, inputs: [Tensor], op: ([Tensor]) -> Tensor, reference: ([[Double]]) -> [Double],
        file: StaticString = #filePath, line: UInt = #line
    ) {
        for x in inputs { x.releaseGrad() }
        let out = op(inputs)
        let xs = inputs.map { $0.scalars.map(Double.init) }
        let ref = reference(xs)
        XCTAssertEqual(out.count, ref.count, "\(name): output size", file: file, line: line)
        guard out.count == ref.count else { return }
        let refScale = max(1, ref.map(abs).max() ?? 1)
        var worst = 0.0
        for (i, (a, b)) in zip(out.scalars, ref).enumerated() {
            let err = abs(Double(a) - b)
            worst = max(worst, err)
            if !(err <= forwardTolerance * refScale) {
                XCTFail("\(name): forward[\(i)] = \(a), reference \(b)", file: file, line: line)
                return
            }
        }

        var gen = SeededGenerator(seed: 977)
        let weights = (0..<out.count).map { _ in gen.nextDouble() * 2 - 1 }
        guard out.requiresGrad else {
            XCTAssertTrue(inputs.allSatisfy { !$0.requiresGrad }, "\(name): output does not require grad", file: file, line: line)
            return
        }
        out.backward(gradient: Tensor(weights.map(Float.init), shape: out.shape))

        func loss(_ values: [[Double]]) -> Double {
            zip(reference(values), weights).reduce(0) { $0 + $1.0 * $1.1 }
        }
        for (k, x) in inputs.enumerated() where x.requiresGrad {
            guard let g = x.grad else {
                XCTFail("\(name): input \(k) got no gradient", file: file, line: line)
                continue
            }
            XCTAssertEqual(g.shape, x.shape, "\(name): gradient shape of input \(k)", file: file, line: line)
            var numeric = [Double](repeating: 0, count: x.count)
            var probe = xs
            for j in 0..<x.count {
                let orig = probe[k][j]
                let h = step * max(1, abs(orig))
                probe[k][j] = orig + h
                let up = loss(probe)
                probe[k][j] = orig - h
                let down = loss(probe)
                probe[k][j] = orig
                numeric[j] = (up - down) / (2 * h)
            }
            let scale = max(1e-3, numeric.map(abs).max() ?? 0)
            let analytic = g.scalars
            for j in 0..<x.count {
                let err = abs(Double(analytic[j]) - numeric[j])
                if !(err <= gradientTolerance * scale) {
                    XCTFail(
                        "\(name): d/d input\(k)[\(j)] analytic \(analytic[j]) vs numeric \(numeric[j]) (scale \(scale))",
                        file: file, line: line)
                    break
                }
            }
        }
    }
}

/// Random Float tensor for tests.
func randomTensor(_ shape: [Int], seed: UInt64, scale: Float = 1, grad: Bool = true) -> Tensor {
    var g = SeededGenerator(seed: seed)
    return Tensor.randomNormal(shape, std: scale, generator: &g, requiresGrad: grad)
}

/// Row-major strides for Double reference code.
func refStrides(_ shape: [Int]) -> [Int] { Tensor.strides(of: shape) }

/// Maps a flat index of `outShape` to the flat index of a tensor of shape `inShape` broadcast into it.
func broadcastIndex(_ flat: Int, out outShape: [Int], in inShape: [Int]) -> Int {
    var rem = flat
    var idx = [Int](repeating: 0, count: outShape.count)
    for d in stride(from: outShape.count - 1, through: 0, by: -1) {
        idx[d] = rem % outShape[d]
        rem /= outShape[d]
    }
    let pad = outShape.count - inShape.count
    let st = refStrides(inShape)
    var off = 0
    for d in 0..<inShape.count where inShape[d] != 1 { off += idx[d + pad] * st[d] }
    return off
}
