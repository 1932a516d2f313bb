import Foundation

extension Tensor {
    /// Fused causal scaled-dot-product attention with grouped key/value heads.
    ///
    /// - q: (B, H, T, D); k, v: (B, KV, T, D) with KV dividing H (query head h reads key/value head h / (H/KV)).
    /// - `causal`: query t attends to keys 0…t only.
    /// - `keyPadding`: B·T flags, true for real tokens; padded keys get no attention. A query with no visible key
    ///   outputs zeros.
    /// - `scale`: defaults to 1/√D.
    /// Returns (B, H, T, D). The forward keeps the attention probabilities (B, H, T, T) for the backward.
    public static func attention(
        q: Tensor, k: Tensor, v: Tensor, causal: Bool = true, keyPadding: [Bool]? = nil, scale: Float? = nil
    ) -> Tensor {
        precondition(q.rank == 4 && k.rank == 4 && v.rank == 4, "attention expects rank-4 q, k, v")
        let (b, h, t, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let kv = k.shape[1]
        precondition(k.shape == [b, kv, t, d] && v.shape == k.shape, "attention: k \(k.shape), v \(v.shape) vs q \(q.shape)")
        precondition(kv > 0 && h % kv == 0, "attention: \(kv) key/value heads do not divide \(h) query heads")
        if let keyPadding { precondition(keyPadding.count == b * t, "attention: key padding needs B·T = \(b * t) flags") }
        let rep = h / kv
        let alpha = scale ?? 1 / Float(d).squareRoot()
        let probs = Storage(count: b * h * t * t)  // (B, H, T, T)
        let out = Tensor(uninitialized: q.shape)
        let qp = q.data, kp = k.data, vp = v.data, op = out.data, pp = probs.pointer
        let mask: [Bool] = keyPadding ?? []
        let hasMask = keyPadding != nil
        let groups = b * kv
        let td = t * d, tt = t * t

        // Work item: one batch entry and one key/value head with its `rep` query heads. Items write disjoint memory.
        func forward(_ g: Int) {
            let bi = g / kv, kvh = g % kv
            let kg = kp + (bi * kv + kvh) * td, vg = vp + (bi * kv + kvh) * td
            for r in 0..<rep {
                let hi = kvh * rep + r
                let qh = qp + (bi * h + hi) * td, oh = op + (bi * h + hi) * td, ph = pp + (bi * h + hi) * tt
                // S = α Q Kᵀ  (T, T)
                BLAS.sgemm(transA: false, transB: true, m: t, n: t, k: d, alpha: alpha, a: qh, lda: d, b: kg, ldb: d,
                           beta: 0, c: ph, ldc: t)
                mask.withUnsafeBufferPointer { m in
                    for i in 0..<t {
                        let row = ph + i * t
                        if causal { for j in (i + 1)..<max(i + 1, t) { row[j] = -.infinity } }
                        if hasMask { for j in 0..<t where !m[bi * t + j] { row[j] = -.infinity } }
                        _ = SoftmaxKernels.softmaxRow(row, row, t)
                    }
                }
                // O = P V  (T, D)
                BLAS.sgemm(transA: false, transB: false, m: t, n: d, k: t, a: ph, lda: t, b: vg, ldb: d, beta: 0,
                           c: oh, ldc: d)
            }
        }
        runGroups(groups, forward)

        return out.record("attention", [q, k, v]) { out in
            let gp = out.grad!.data
            let dq = q.requiresGrad ? q.gradBuffer().pointer : nil
            let dk = k.requiresGrad ? k.gradBuffer().pointer : nil
            let dv = v.requiresGrad ? v.gradBuffer().pointer : nil
            func backward(_ g: Int) {
                let bi = g / kv, kvh = g % kv
                let kOff = (bi * kv + kvh) * td
                let kg = kp + kOff, vg = vp + kOff
                let dP = Storage(count: tt)
                let ds = dP.pointer
                for r in 0..<rep {
                    let hi = kvh * rep + r
                    let off = (bi * h + hi) * td
                    let ph = pp + (bi * h + hi) * tt, gh = gp + off, qh = qp + off
                    // dV += Pᵀ dO
                    if let dv {
                        BLAS.sgemm(transA: true, transB: false, m: t, n: d, k: t, a: ph, lda: t, b: gh, ldb: d,
                                   beta: 1, c: dv + kOff, ldc: d)
                    }
                    // dP = dO Vᵀ, then dS = P ⊙ (dP − rowsum(dP ⊙ P))
                    BLAS.sgemm(transA: false, transB: true, m: t, n: t, k: d, a: gh, lda: d, b: vg, ldb: d, beta: 0,
                               c: ds, ldc: t)
                    for i in 0..<t {
                        let p = ph + i * t, s = ds + i * t
                        let dot = RowMath.dot(p, s, t)
                        for j in 0..<t { s[j] = p[j] * (s[j] - dot) }
                    }
                    // dQ += α dS K;  dK += α dSᵀ Q
                    if let dq {
                        BLAS.sgemm(transA: false, transB: false, m: t, n: d, k: t, alpha: alpha, a: ds, lda: t, b: kg,
                                   ldb: d, beta: 1, c: dq + off, ldc: d)
                    }
                    if let dk {
                        BLAS.sgemm(transA: true, transB: false, m: t, n: d, k: t, alpha: alpha, a: ds, lda: t, b: qh,
                                   ldb: d, beta: 1, c: dk + kOff, ldc: d)
                    }
                }
            }
            runGroups(groups, backward)
            _ = probs
        }
    }

    /// Runs independent work items: across threads with single-threaded BLAS when there are enough of them,
    /// otherwise one after another with multi-threaded BLAS.
    private static func runGroups(_ groups: Int, _ body: (Int) -> Void) {
        if groups >= BLAS.threads && BLAS.threads > 1 {
            BLAS.singleThreaded {
                parallelFor(groups, grain: 1) { r in for g in r { body(g) } }
            }
        } else {
            for g in 0..<groups { body(g) }
        }
    }
}
