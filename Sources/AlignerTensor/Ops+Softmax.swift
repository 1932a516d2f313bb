import Foundation

/// Row kernels for softmax-type operations over the last axis; a row is `n` contiguous floats.
enum SoftmaxKernels {
    /// max over a row.
    @inline(__always)
    static func rowMax(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var m = -Float.infinity
        for j in 0..<n { m = Swift.max(m, x[j]) }
        return m
    }

    /// y = exp(x - max) / Σ; returns log Σ exp(x) (the log-sum-exp). A row of -inf gives zeros and -inf.
    @inline(__always)
    static func softmaxRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) -> Float {
        let m = rowMax(x, n)
        if m == -.infinity {
            y.update(repeating: 0, count: n)
            return -.infinity
        }
        var s: Float = 0
        for j in 0..<n {
            let e = Foundation.exp(x[j] - m)
            y[j] = e
            s += e
        }
        let inv = 1 / s
        for j in 0..<n { y[j] *= inv }
        return m + Foundation.log(s)
    }

    /// log Σ exp(x) of a row, stable for large magnitudes.
    @inline(__always)
    static func logSumExp(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        let m = rowMax(x, n)
        if m == -.infinity { return -.infinity }
        var s: Float = 0
        for j in 0..<n { s += Foundation.exp(x[j] - m) }
        return m + Foundation.log(s)
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
                    var dot: Float = 0
                    for j in 0..<n { dot += gi[j] * yi[j] }
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
                    for j in 0..<n { di[j] += gi[j] - Foundation.exp(yi[j]) * s }
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
                            let xi = x + i * v, di = d + i * v
                            let li = l[i]
                            for j in 0..<v { di[j] += g * Foundation.exp(xi[j] - li) }
                            di[tg[i]] -= g
                        }
                    }
                }
            }
        }
    }
}
