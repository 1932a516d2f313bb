import XCTest

@testable import AlignerTensor

final class NormTests: XCTestCase {
    let check = GradCheck()

    func testRMSNorm() {
        let c = 6
        let x = randomTensor([2, 3, c], seed: 70)
        var g = SeededGenerator(seed: 71)
        let w = Tensor.randomUniform([c], low: 0.5, high: 1.5, generator: &g, requiresGrad: true)
        let eps: Float = 1e-5
        check.check("rms norm", inputs: [x, w], op: { Tensor.rmsNorm($0[0], weight: $0[1], eps: eps) }) { v in
            var out = v[0]
            for r in 0..<(v[0].count / c) {
                let row = v[0][(r * c)..<(r * c + c)]
                let inv = 1 / (row.reduce(0) { $0 + $1 * $1 } / Double(c) + Double(eps)).squareRoot()
                for j in 0..<c { out[r * c + j] = v[0][r * c + j] * inv * v[1][j] }
            }
            return out
        }
    }

    /// Gemma's RMSNorm: weights stored as a difference from 1, `x̂ · (1 + w)`.
    func testRMSNormWithWeightOffset() {
        let c = 5
        let x = randomTensor([3, c], seed: 170)
        let w = randomTensor([c], seed: 171, scale: 0.3)
        check.check("rms norm offset", inputs: [x, w], op: { Tensor.rmsNorm($0[0], weight: $0[1], eps: 1e-6, weightOffset: 1) }) { v in
            var out = v[0]
            for r in 0..<(v[0].count / c) {
                let row = v[0][(r * c)..<(r * c + c)]
                let inv = 1 / (row.reduce(0) { $0 + $1 * $1 } / Double(c) + 1e-6).squareRoot()
                for j in 0..<c { out[r * c + j] = v[0][r * c + j] * inv * (1 + v[1][j]) }
            }
            return out
        }
    }

    func testLayerNormWithAndWithoutAffine() {
        let c = 5
        let x = randomTensor([4, c], seed: 72, scale: 3)
        let w = randomTensor([c], seed: 73), b = randomTensor([c], seed: 74)
        let eps: Float = 1e-5
        func reference(_ v: [[Double]], affine: Bool) -> [Double] {
            var out = v[0]
            for r in 0..<(v[0].count / c) {
                let row = Array(v[0][(r * c)..<(r * c + c)])
                let mu = row.reduce(0, +) / Double(c)
                let variance = row.reduce(0) { $0 + ($1 - mu) * ($1 - mu) } / Double(c)
                let inv = 1 / (variance + Double(eps)).squareRoot()
                for j in 0..<c {
                    let y = (row[j] - mu) * inv
                    out[r * c + j] = affine ? y * v[1][j] + v[2][j] : y
                }
            }
            return out
        }
        check.check("layer norm", inputs: [x, w, b], op: { Tensor.layerNorm($0[0], weight: $0[1], bias: $0[2], eps: eps) },
                    reference: { reference($0, affine: true) })
        check.check("layer norm plain", inputs: [x], op: { Tensor.layerNorm($0[0], weight: nil, bias: nil, eps: eps) },
                    reference: { reference($0, affine: false) })
    }

    func testManyRowsWeightGradientAcrossThreads() {
        // Enough rows and columns for the column-split weight reduction to use several threads.
        let x = randomTensor([512, 256], seed: 75, grad: false)
        let w = Tensor.ones([256], requiresGrad: true)
        Tensor.rmsNorm(x, weight: w, eps: 1e-6).sum().backward()
        // d/dw_j Σ y = Σ_rows x̂_j
        for j in [0, 100, 255] {
            var ref = 0.0
            for r in 0..<512 {
                let row = (0..<256).map { Double(x.data[r * 256 + $0]) }
                let inv = 1 / (row.reduce(0) { $0 + $1 * $1 } / 256 + 1e-6).squareRoot()
                ref += row[j] * inv
            }
            XCTAssertEqual(Double(w.grad!.data[j]), ref, accuracy: 1e-3)
        }
    }
}
