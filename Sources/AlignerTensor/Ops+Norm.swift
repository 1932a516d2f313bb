/// Sums `rows` of `width` floats column-wise into `dst` (+=), where row r's value at column c is `f(r, c)`.
/// Threads own disjoint column ranges, so the reduction over rows never races.
@inline(__always)
func columnSums(rows: Int, width: Int, into dst: UnsafeMutablePointer<Float>, _ f: (Int, Range<Int>, UnsafeMutablePointer<Float>) -> Void) {
    parallelFor(width, grain: max(16, (1 << 15) / max(rows, 1))) { cols in
        let acc = UnsafeMutablePointer<Float>.allocate(capacity: cols.count)
        acc.update(repeating: 0, count: cols.count)
        for r in 0..<rows { f(r, cols, acc) }
        for (i, c) in cols.enumerated() { dst[c] += acc[i] }
        acc.deallocate()
    }
}

extension Tensor {
    /// RMSNorm over the last axis: `x / sqrt(mean(x²) + eps) * (weight + weightOffset)`, as Llama's (offset 0) and
    /// Gemma's (offset 1: weights are stored as a difference from 1). Fused; the forward saves the reciprocal RMS of
    /// each row for the backward.
    public static func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float, weightOffset: Float = 0) -> Tensor {
        let c = x.shape.last ?? 1
        precondition(weight.shape == [c], "rmsNorm: weight \(weight.shape) does not match last axis \(c)")
        let rows = x.count / max(c, 1)
        let out = Tensor(uninitialized: x.shape)
        let rstd = Storage(count: rows)
        let xp = x.data, wp = weight.data, yp = out.data, rp = rstd.pointer
        parallelFor(rows, grain: max(1, 8192 / c)) { r in
            for i in r {
                let xi = xp + i * c, yi = yp + i * c
                let ss = RowMath.dot(xi, xi, c)
                let inv = 1 / (ss / Float(c) + eps).squareRoot()
                rp[i] = inv
                for j in 0..<c { yi[j] = xi[j] * inv * (wp[j] + weightOffset) }
            }
        }
        return out.record("rms_norm", [x, weight]) { out in
            let g = out.grad!.data
            if x.requiresGrad {
                let d = x.gradBuffer().pointer
                parallelFor(rows, grain: max(1, 8192 / c)) { r in
                    for i in r {
                        let xi = xp + i * c, gi = g + i * c, di = d + i * c
                        let inv = rp[i]
                        var dot: Float = 0  // Σ (g w) · x̂
                        for j in 0..<c { dot += gi[j] * (wp[j] + weightOffset) * xi[j] }
                        let k = dot * inv * inv / Float(c)
                        for j in 0..<c { di[j] += inv * (gi[j] * (wp[j] + weightOffset) - xi[j] * k) }
                    }
                }
            }
            if weight.requiresGrad {
                columnSums(rows: rows, width: c, into: weight.gradBuffer().pointer) { i, cols, acc in
                    let xi = xp + i * c, gi = g + i * c
                    let inv = rp[i]
                    var a = 0
                    for j in cols { acc[a] += gi[j] * xi[j] * inv; a += 1 }
                }
            }
            _ = rstd
        }
    }

    /// LayerNorm over the last axis: `(x − mean) / sqrt(var + eps) * weight + bias` (biased variance, as PyTorch).
    /// Fused; the forward saves each row's mean and reciprocal standard deviation.
    public static func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) -> Tensor {
        let c = x.shape.last ?? 1
        if let weight { precondition(weight.shape == [c], "layerNorm: weight \(weight.shape) vs last axis \(c)") }
        if let bias { precondition(bias.shape == [c], "layerNorm: bias \(bias.shape) vs last axis \(c)") }
        let rows = x.count / max(c, 1)
        let out = Tensor(uninitialized: x.shape)
        let stats = Storage(count: 2 * rows)  // (mean, rstd) per row
        let xp = x.data, yp = out.data, sp = stats.pointer
        let wp = weight?.data, bp = bias?.data
        parallelFor(rows, grain: max(1, 8192 / c)) { r in
            for i in r {
                let xi = xp + i * c, yi = yp + i * c
                var s: Float = 0
                for j in 0..<c { s += xi[j] }
                let mu = s / Float(c)
                var v: Float = 0
                for j in 0..<c { let d = xi[j] - mu; v += d * d }
                let inv = 1 / (v / Float(c) + eps).squareRoot()
                sp[2 * i] = mu
                sp[2 * i + 1] = inv
                for j in 0..<c {
                    var y = (xi[j] - mu) * inv
                    if let wp { y *= wp[j] }
                    if let bp { y += bp[j] }
                    yi[j] = y
                }
            }
        }
        let inputs = [x] + [weight, bias].compactMap { $0 }
        return out.record("layer_norm", inputs) { out in
            let g = out.grad!.data
            if x.requiresGrad {
                let d = x.gradBuffer().pointer
                parallelFor(rows, grain: max(1, 8192 / c)) { r in
                    for i in r {
                        let xi = xp + i * c, gi = g + i * c, di = d + i * c
                        let mu = sp[2 * i], inv = sp[2 * i + 1]
                        var sumG: Float = 0
                        var sumGX: Float = 0
                        for j in 0..<c {
                            let gw = wp.map { gi[j] * $0[j] } ?? gi[j]
                            sumG += gw
                            sumGX += gw * (xi[j] - mu) * inv
                        }
                        let mG = sumG / Float(c), mGX = sumGX / Float(c)
                        for j in 0..<c {
                            let gw = wp.map { gi[j] * $0[j] } ?? gi[j]
                            di[j] += inv * (gw - mG - (xi[j] - mu) * inv * mGX)
                        }
                    }
                }
            }
            if let weight, weight.requiresGrad {
                columnSums(rows: rows, width: c, into: weight.gradBuffer().pointer) { i, cols, acc in
                    let xi = xp + i * c, gi = g + i * c
                    let mu = sp[2 * i], inv = sp[2 * i + 1]
                    var a = 0
                    for j in cols { acc[a] += gi[j] * (xi[j] - mu) * inv; a += 1 }
                }
            }
            if let bias, bias.requiresGrad {
                columnSums(rows: rows, width: c, into: bias.gradBuffer().pointer) { i, cols, acc in
                    let gi = g + i * c
                    var a = 0
                    for j in cols { acc[a] += gi[j]; a += 1 }
                }
            }
            _ = stats
        }
    }
}
