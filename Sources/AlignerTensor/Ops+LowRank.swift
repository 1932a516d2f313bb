/// Dropout masks that are a pure function of (key, element index): the same key gives the same mask on any thread
/// count and machine, so a backward pass (or a recomputation) regenerates the forward's mask instead of storing it.
public enum DropoutMask {
    /// lowbias32 (Chris Wellons' integer hash), applied to 8 lanes at once.
    @inline(__always) static func mix(_ v: SIMD8<UInt32>) -> SIMD8<UInt32> {
        var x = v
        x ^= x &>> 16
        x &*= 0x7FEB_352D
        x ^= x &>> 15
        x &*= 0x846C_A68B
        x ^= x &>> 16
        return x
    }

    /// The 24-bit threshold below which an element is dropped with probability `p`.
    @inline(__always) static func threshold(_ p: Float) -> UInt32 { UInt32((Double(p) * 16_777_216).rounded()) }

    /// Writes `scale` (kept) or 0 (dropped) for elements `range` of the mask of `key` into `out[range]`; element i of
    /// `out` is element i + `offset` of the mask.
    static func fill(_ out: UnsafeMutablePointer<Float>, range: Range<Int>, p: Float, key: UInt64, scale: Float, offset: Int = 0) {
        let (k1, k2) = (SIMD8<UInt32>(repeating: UInt32(truncatingIfNeeded: key)), SIMD8<UInt32>(repeating: UInt32(truncatingIfNeeded: key >> 32)))
        let limit = SIMD8<UInt32>(repeating: threshold(p)), lanes = SIMD8<UInt32>(0, 1, 2, 3, 4, 5, 6, 7)
        let keep = SIMD8<Float>(repeating: scale), zero = SIMD8<Float>(repeating: 0)
        var i = range.lowerBound
        while i < range.upperBound {
            let idx = SIMD8<UInt32>(repeating: UInt32(truncatingIfNeeded: i &+ offset)) &+ lanes
            let h = mix(mix(idx ^ k1) ^ k2) &>> 8
            let v = zero.replacing(with: keep, where: h .>= limit)
            let n = min(8, range.upperBound - i)
            if n == 8 { UnsafeMutableRawPointer(out + i).storeBytes(of: v, as: SIMD8<Float>.self) } else { for j in 0..<n { out[i + j] = v[j] } }
            i += 8
        }
    }

    /// The mask (count values: 0 or 1/(1 − p)) of `key`.
    public static func values(count: Int, p: Float, key: UInt64) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { fill($0.baseAddress!, range: 0..<count, p: p, key: key, scale: 1 / (1 - p)) }
        return out
    }

    /// y = x ⊙ mask(key)[offset ..< offset + count], in parallel; `y` may be `x`.
    static func apply(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, p: Float, key: UInt64, offset: Int = 0) {
        let scale = 1 / (1 - p)
        parallelFor((count + 7) / 8, grain: 4096) { r in
            let range = (r.lowerBound * 8)..<min(count, r.upperBound * 8)
            // The mask of a chunk into a small buffer, then times x (in place when y is x).
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 2048) { chunk in
                let m = chunk.baseAddress!
                var start = range.lowerBound
                while start < range.upperBound {
                    let end = min(range.upperBound, start + 2048)
                    fill(m - start, range: start..<end, p: p, key: key, scale: scale, offset: offset)
                    for i in start..<end { y[i] = x[i] * m[i - start] }
                    start = end
                }
            }
        }
    }
}

extension Tensor {
    /// Inverted dropout (PyTorch's `nn.Dropout` in training mode): each element is zeroed with probability `p`, the
    /// rest scaled by 1/(1 − p). The mask is a function of `key` and the element index alone (`DropoutMask`).
    public func dropout(_ p: Float, key: UInt64) -> Tensor {
        precondition(p >= 0 && p < 1, "dropout probability \(p) is not in [0, 1)")
        if p == 0 { return self }
        let out = Tensor(uninitialized: shape)
        DropoutMask.apply(data, out.data, count: count, p: p, key: key)
        return out.record("dropout", [self]) { out in
            guard self.requiresGrad else { return }
            let masked = Tensor(uninitialized: self.shape)
            DropoutMask.apply(out.grad!.data, masked.data, count: self.count, p: p, key: key)
            Tensor.sendGrad(masked, to: self)
        }
    }

    /// A linear layer with a low-rank adapter (LoRA) in one op:
    ///
    ///     y = x·Wᵀ + bias + scale · (dropout(x)·Aᵀ)·Bᵀ
    ///
    /// x (…, in), W (out, in), bias (out) or nil, A (r, in), B (out, r); y (…, out). The adapter's product is added
    /// into the base product by GEMM (no extra (…, out) buffer); only x·Aᵀ (…, r) is kept for the backward, and a dropout
    /// mask (`dropout` > 0) is regenerated from `dropoutKey` instead of stored. Gradients go to every input that
    /// requires them (a frozen W costs nothing). Row i of x takes row i + `dropoutRowOffset` of the mask (so that a
    /// batch cut into parts between processes draws the masks the whole batch would).
    public static func lowRankLinear(
        _ x: Tensor, weight w: Tensor, bias: Tensor?, a: Tensor, b: Tensor, scale: Float, dropout p: Float = 0, dropoutKey: UInt64 = 0,
        dropoutRowOffset: Int = 0
    ) -> Tensor {
        let inputs = w.shape[1], outputs = w.shape[0], r = a.shape[0]
        precondition(x.shape.last == inputs && a.shape == [r, inputs] && b.shape == [outputs, r] && (bias?.shape ?? [outputs]) == [outputs],
                     "lowRankLinear: x \(x.shape), W \(w.shape), A \(a.shape), B \(b.shape), bias \(bias?.shape ?? [])")
        precondition(p >= 0 && p < 1, "dropout probability \(p) is not in [0, 1)")
        let n = x.count / inputs
        let out = Tensor(uninitialized: Array(x.shape.dropLast()) + [outputs])  // (…, out)
        BLAS.sgemm(transA: false, transB: true, m: n, n: outputs, k: inputs, a: x.data, lda: inputs, b: w.data, ldb: inputs,
                   beta: 0, c: out.data, ldc: outputs)
        if let bias {
            let y = out.data, bb = bias.data
            parallelFor(n, grain: max(1, 32768 / outputs)) { rows in for i in rows { for j in 0..<outputs { y[i * outputs + j] += bb[j] } } }
        }
        // u = scale · dropout(x)·Aᵀ (n, r)
        let u = Tensor(uninitialized: [n, r])
        func dropped(_ body: (UnsafePointer<Float>) -> Void) {
            if p == 0 { body(x.data); return }
            let h = Tensor(uninitialized: [n, inputs])  // (n, in), freed after use
            DropoutMask.apply(x.data, h.data, count: n * inputs, p: p, key: dropoutKey, offset: dropoutRowOffset &* inputs)
            body(h.data)
        }
        dropped { h in
            BLAS.sgemm(transA: false, transB: true, m: n, n: r, k: inputs, alpha: scale, a: h, lda: inputs, b: a.data, ldb: inputs,
                       beta: 0, c: u.data, ldc: r)
        }
        BLAS.sgemm(transA: false, transB: true, m: n, n: outputs, k: r, a: u.data, lda: r, b: b.data, ldb: r, beta: 1, c: out.data, ldc: outputs)

        return out.record("lowRankLinear", [x, w, a, b] + (bias.map { [$0] } ?? [])) { out in
            let g = out.grad!.data  // (n, out)
            if w.requiresGrad {
                let (dw, fresh) = w.gradBuffer()
                BLAS.sgemm(transA: true, transB: false, m: outputs, n: inputs, k: n, a: g, lda: outputs, b: x.data, ldb: inputs,
                           beta: fresh ? 0 : 1, c: dw, ldc: inputs)
            }
            if let bias, bias.requiresGrad { Tensor.sendGrad(out.grad!, to: bias) }
            if b.requiresGrad {
                // dB (out, r) = gᵀ·u
                let (db, fresh) = b.gradBuffer()
                BLAS.sgemm(transA: true, transB: false, m: outputs, n: r, k: n, a: g, lda: outputs, b: u.data, ldb: r,
                           beta: fresh ? 0 : 1, c: db, ldc: r)
            }
            guard a.requiresGrad || x.requiresGrad else { return }
            // du = scale · g·B (n, r): the gradient at dropout(x)·Aᵀ.
            let du = Tensor(uninitialized: [n, r])
            BLAS.sgemm(transA: false, transB: false, m: n, n: r, k: outputs, alpha: scale, a: g, lda: outputs, b: b.data, ldb: r,
                       beta: 0, c: du.data, ldc: r)
            if a.requiresGrad {
                // dA (r, in) = duᵀ·dropout(x)
                let (da, fresh) = a.gradBuffer()
                dropped { h in
                    BLAS.sgemm(transA: true, transB: false, m: r, n: inputs, k: n, a: du.data, lda: r, b: h, ldb: inputs,
                               beta: fresh ? 0 : 1, c: da, ldc: inputs)
                }
            }
            if x.requiresGrad {
                let (dx, fresh) = x.gradBuffer()
                // dx = g·W + mask ⊙ (du·A)
                BLAS.sgemm(transA: false, transB: false, m: n, n: inputs, k: outputs, a: g, lda: outputs, b: w.data, ldb: inputs,
                           beta: fresh ? 0 : 1, c: dx, ldc: inputs)
                if p == 0 {
                    BLAS.sgemm(transA: false, transB: false, m: n, n: inputs, k: r, a: du.data, lda: r, b: a.data, ldb: inputs,
                               beta: 1, c: dx, ldc: inputs)
                } else {
                    let t = Tensor(uninitialized: [n, inputs])  // (n, in)
                    BLAS.sgemm(transA: false, transB: false, m: n, n: inputs, k: r, a: du.data, lda: r, b: a.data, ldb: inputs,
                               beta: 0, c: t.data, ldc: inputs)
                    DropoutMask.apply(t.data, t.data, count: n * inputs, p: p, key: dropoutKey, offset: dropoutRowOffset &* inputs)
                    let td = t.data
                    parallelFor(n * inputs, grain: 1 << 15) { range in for i in range { dx[i] += td[i] } }
                }
            }
        }
    }
}
