import Foundation

/// Row kernels for softmax-type operations over the last axis; a row is `n` contiguous floats.
enum SoftmaxKernels {
    /// y = exp(x − max) / Σ (y may alias x); returns log Σ exp(x). A row of −∞ gives zeros and −∞.
    @inline(__always)
    static func softmaxRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) -> Float {
        let m = RowMath.max(x, n)
        if m == -.infinity {
            y.update(repeating: 0, count: n)
            return -.infinity
        }
        let s = RowMath.expSum(x, n, shift: m, into: y)
        RowMath.scale(y, n, by: 1 / s)
        return m + Foundation.log(s)
    }

    /// log Σ exp(x) of a row, stable for large magnitudes.
    @inline(__always)
    static func logSumExp(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        let m = RowMath.max(x, n)
        if m == -.infinity { return -.infinity }
        return m + Foundation.log(RowMath.expSum(x, n, shift: m, into: nil))
    }

    /// d += scale · (exp(x − shift)) over a row, then d[target] −= scale when a target is given.
    @inline(__always)
    static func addScaledExp(
        _ x: UnsafePointer<Float>, _ n: Int, shift: Float, scale: Float, into d: UnsafeMutablePointer<Float>
    ) {
        let sv = Vec8(repeating: shift), gv = Vec8(repeating: scale)
        var j = 0
        while j + 8 <= n { d.store(d.vec8(j) + gv * vexp(x.vec8(j) - sv), at: j); j += 8 }
        if j < n {
            let e = vexp(loadPartial(x + j, n - j) - sv)
            for k in 0..<(n - j) { d[j + k] += scale * e[k] }
        }
    }
}

extension Tensor {
    /// Softmax over the last axis.
    public func softmax() -> Tensor {
        let n = shape.last ?? 1
        let rows = count / max(n, 1)
        let out = Tensor(uninitialized: shape)
        let x = data, y = out.data
        parallelFor(rows, grain: max(1, 4096 / max(n, 1))) { r in
            for i in r { _ = SoftmaxKernels.softmaxRow(x + i * n, y + i * n, n) }
        }
        return out.record("softmax", [self]) { out in
            // dx = y ⊙ (g − Σ g⊙y)
            let g = out.grad!.data, y = out.data
            let d = self.gradBuffer().pointer
            parallelFor(rows, grain: max(1, 4096 / max(n, 1))) { r in
                for i in r {
                    let gi = g + i * n, yi = y + i * n, di = d + i * n
                    let dot = RowMath.dot(gi, yi, n)
                    for j in 0..<n { di[j] += yi[j] * (gi[j] - dot) }
                }
            }
        }
    }

    /// Log-softmax over the last axis.
    public func logSoftmax() -> Tensor {
        let n = shape.last ?? 1
        let rows = count / max(n, 1)
        let out = Tensor(uninitialized: shape)
        let x = data, y = out.data
        parallelFor(rows, grain: max(1, 4096 / max(n, 1))) { r in
            for i in r {
                let lse = SoftmaxKernels.logSumExp(x + i * n, n)
                for j in 0..<n { y[i * n + j] = x[i * n + j] - lse }
            }
        }
        return out.record("log_softmax", [self]) { out in
            // dx = g − exp(y) Σ g
            let g = out.grad!.data, y = out.data
            let d = self.gradBuffer().pointer
            parallelFor(rows, grain: max(1, 4096 / max(n, 1))) { r in
                for i in r {
                    let gi = g + i * n, yi = y + i * n, di = d + i * n
                    var s: Float = 0
                    for j in 0..<n { s += gi[j] }
                    // dx = g − exp(y) Σg: first d += g, then d −= Σg · exp(y)
                    for j in 0..<n { di[j] += gi[j] }
                    SoftmaxKernels.addScaledExp(yi, n, shift: 0, scale: -s, into: di)
                }
            }
        }
    }
}

/// How a loss combines per-token values.
public enum LossReduction: Sendable { case mean, sum }

extension Tensor {
    /// Cross-entropy of `logits` (…, vocab) against integer `targets` (one per row), fused with log-softmax; no one-hot
    /// matrix and no probability matrix is stored (the backward recomputes softmax from the saved log-sum-exp).
    /// Rows whose target equals `ignoreIndex` count for nothing. `.mean` divides by the number of counted rows
    /// (0 when none is counted, with zero gradient); `.sum` does not divide.
    public static func crossEntropy(
        _ logits: Tensor, targets: [Int], ignoreIndex: Int = -100, reduction: LossReduction = .mean
    ) -> Tensor {
        let v = logits.shape.last ?? 1
        let rows = logits.count / max(v, 1)
        precondition(targets.count == rows, "crossEntropy: \(targets.count) targets for \(rows) rows of \(logits.shape)")
        for (i, t) in targets.enumerated() where t != ignoreIndex && (t < 0 || t >= v) {
            preconditionFailure("crossEntropy: target \(t) at row \(i) is outside 0..<\(v)")
        }
        let counted = targets.reduce(0) { $0 + ($1 == ignoreIndex ? 0 : 1) }
        let lse = [Float](unsafeUninitializedCapacity: rows) { buf, n in
            let x = logits.data
            let p = buf.baseAddress!
            parallelFor(rows, grain: max(1, 4096 / v)) { r in
                for i in r { p[i] = SoftmaxKernels.logSumExp(x + i * v, v) }
            }
            n = rows
        }
        var total: Double = 0
        for i in 0..<rows where targets[i] != ignoreIndex {
            total += Double(lse[i] - logits.data[i * v + targets[i]])
        }
        let scale: Float = reduction == .sum ? 1 : (counted == 0 ? 0 : 1 / Float(counted))
        let out = Tensor(scalar: Float(total) * scale)
        return out.record("cross_entropy", [logits]) { out in
            let g = out.grad!.item * scale
            let x = logits.data
            let d = logits.gradBuffer().pointer
            targets.withUnsafeBufferPointer { tg in
                lse.withUnsafeBufferPointer { l in
                    parallelFor(rows, grain: max(1, 4096 / v)) { r in
                        for i in r where tg[i] != ignoreIndex {
                            let di = d + i * v
                            SoftmaxKernels.addScaledExp(x + i * v, v, shift: l[i], scale: g, into: di)
                            di[tg[i]] -= g
                        }
                    }
                }
            }
        }
    }
}
