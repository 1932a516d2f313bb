import AlignerTensor
import Foundation

/// Global-norm gradient clipping (`torch.nn.utils.clip_grad_norm_`): scales every gradient by
/// min(1, maxNorm / (norm + 1e-6)) and returns the norm before clipping. Parameters without a gradient are skipped.
@discardableResult
public func clipGradientNorm(_ parameters: [Tensor], maxNorm: Float) -> Float {
    var total = 0.0
    for p in parameters {
        guard let g = p.grad else { continue }
        total += Double(squaredSum(g.data, g.count))
    }
    let norm = Float(total.squareRoot())
    let coefficient = min(1, maxNorm / (norm + 1e-6))
    if coefficient < 1 {
        for p in parameters {
            guard let g = p.grad else { continue }
            let d = g.data
            parallelFor(g.count, grain: 1 << 15) { r in for i in r { d[i] *= coefficient } }
        }
    }
    return norm
}

/// Multiplies every gradient by `factor` (for averaging accumulated micro-batch gradients).
public func scaleGradients(_ parameters: [Tensor], by factor: Float) {
    for p in parameters {
        guard let g = p.grad else { continue }
        let d = g.data
        parallelFor(g.count, grain: 1 << 15) { r in for i in r { d[i] *= factor } }
    }
}

/// Σ x² in Double accumulation over chunks of Float SIMD sums.
func squaredSum(_ x: UnsafePointer<Float>, _ n: Int) -> Double {
    var total = 0.0
    var i = 0
    while i < n {
        let end = min(n, i + 4096)
        var acc = SIMD8<Float>()
        var j = i
        while j + 8 <= end {
            let v = UnsafeRawPointer(x + j).loadUnaligned(as: SIMD8<Float>.self)
            acc = acc.addingProduct(v, v)
            j += 8
        }
        var s = Double(acc.sum())
        while j < end { s += Double(x[j] * x[j]); j += 1 }
        total += s
        i = end
    }
    return total
}
