import Foundation

/// Memory layout of a (batch, heads, time, head_dim) quantity.
public enum HeadLayout: Sendable {
    /// (B, H, T, D): heads outermost, each head's rows contiguous.
    case bhtd
    /// (B, T, H, D): a linear layer's output (B, T, H·D) seen per head, no transposition needed.
    case bthd
}

/// Where head `h` of batch entry `b` starts, and the distance between its consecutive time rows.
struct HeadsView {
    var base: UnsafeMutablePointer<Float>
    let batchStride: Int
    let headStride: Int
    let rowStride: Int

    init(_ base: UnsafeMutablePointer<Float>, layout: HeadLayout, heads: Int, time: Int, dim: Int) {
        self.base = base
        switch layout {
        case .bhtd: (batchStride, headStride, rowStride) = (heads * time * dim, time * dim, dim)
        case .bthd: (batchStride, headStride, rowStride) = (time * heads * dim, dim, heads * dim)
        }
    }

    init(_ base: UnsafeMutablePointer<Float>, batchStride: Int, headStride: Int, rowStride: Int) {
        (self.base, self.batchStride, self.headStride, self.rowStride) = (base, batchStride, headStride, rowStride)
    }

    @inline(__always) func at(_ b: Int, _ h: Int) -> UnsafeMutablePointer<Float> {
        base + b * batchStride + h * headStride
    }

    func rebased(_ p: UnsafeMutablePointer<Float>) -> HeadsView {
        HeadsView(p, batchStride: batchStride, headStride: headStride, rowStride: rowStride)
    }
}

/// The fused attention kernels. Query i (of Tq) sits at absolute position i + (Tk − Tq): with a causal mask it sees
/// keys 0…i + (Tk − Tq), so the same code serves training (Tq = Tk) and decoding against a cache (Tq < Tk).
enum AttentionKernel {
    struct Shape {
        let batch, heads, kvHeads, tq, tk, dim: Int
        let causal: Bool
        let scale: Float
        /// Sliding window (causal only): query at position p sees keys p − window + 1 … p. 0 = no window.
        var window = 0
        var rep: Int { heads / kvHeads }
        /// Number of keys query i can see before padding (keys 0..<visible).
        @inline(__always) func visible(_ i: Int) -> Int { causal ? min(tk, i + (tk - tq) + 1) : tk }
        /// First key query i can see (0 without a sliding window).
        @inline(__always) func first(_ i: Int) -> Int { window > 0 ? max(0, i + (tk - tq) - window + 1) : 0 }
    }

    /// Forward for one (batch, kv head) group: writes probabilities into `probs` (per query head Tq·Tk, indexed by
    /// `probsAt(h)`) and outputs into `o`.
    static func forward(
        _ s: Shape, group g: Int, q: HeadsView, k: HeadsView, v: HeadsView, o: HeadsView, mask: UnsafePointer<Bool>?,
        probsAt: (Int, Int) -> UnsafeMutablePointer<Float>
    ) {
        let bi = g / s.kvHeads, kvh = g % s.kvHeads
        let kg = k.at(bi, kvh), vg = v.at(bi, kvh)
        for r in 0..<s.rep {
            let hi = kvh * s.rep + r
            let ph = probsAt(bi, hi)
            // S = α Q Kᵀ  (Tq, Tk)
            BLAS.sgemm(transA: false, transB: true, m: s.tq, n: s.tk, k: s.dim, alpha: s.scale, a: q.at(bi, hi),
                       lda: q.rowStride, b: kg, ldb: k.rowStride, beta: 0, c: ph, ldc: s.tk)
            for i in 0..<s.tq {
                let row = ph + i * s.tk
                let n = s.visible(i), f = s.first(i)
                if let mask { for j in f..<n where !mask[bi * s.tk + j] { row[j] = -.infinity } }
                _ = SoftmaxKernels.softmaxRow(row + f, row + f, n - f)
                if f > 0 { row.update(repeating: 0, count: f) }
                if n < s.tk { (row + n).update(repeating: 0, count: s.tk - n) }
            }
            // O = P V  (Tq, D)
            BLAS.sgemm(transA: false, transB: false, m: s.tq, n: s.dim, k: s.tk, a: ph, lda: s.tk, b: vg,
                       ldb: v.rowStride, beta: 0, c: o.at(bi, hi), ldc: o.rowStride)
        }
    }

    /// Backward for one group; `scratch` holds Tq·Tk floats.
    static func backward(
        _ s: Shape, group g: Int, q: HeadsView, k: HeadsView, v: HeadsView, dout: HeadsView,
        dq: HeadsView?, dk: HeadsView?, dv: HeadsView?, probsAt: (Int, Int) -> UnsafeMutablePointer<Float>,
        scratch ds: UnsafeMutablePointer<Float>
    ) {
        let bi = g / s.kvHeads, kvh = g % s.kvHeads
        let kg = k.at(bi, kvh), vg = v.at(bi, kvh)
        for r in 0..<s.rep {
            let hi = kvh * s.rep + r
            let ph = probsAt(bi, hi), gh = dout.at(bi, hi)
            // dV += Pᵀ dO
            if let dv {
                BLAS.sgemm(transA: true, transB: false, m: s.tk, n: s.dim, k: s.tq, a: ph, lda: s.tk, b: gh,
                           ldb: dout.rowStride, beta: 1, c: dv.at(bi, kvh), ldc: dv.rowStride)
            }
            // dP = dO Vᵀ, then dS = P ⊙ (dP − rowsum(dP ⊙ P))
            BLAS.sgemm(transA: false, transB: true, m: s.tq, n: s.tk, k: s.dim, a: gh, lda: dout.rowStride, b: vg,
                       ldb: v.rowStride, beta: 0, c: ds, ldc: s.tk)
            for i in 0..<s.tq {
                let p = ph + i * s.tk, d = ds + i * s.tk
                let n = s.visible(i), f = s.first(i)
                let dot = RowMath.dot(p + f, d + f, n - f)
                for j in f..<n { d[j] = p[j] * (d[j] - dot) }
                if f > 0 { d.update(repeating: 0, count: f) }
                if n < s.tk { (d + n).update(repeating: 0, count: s.tk - n) }
            }
            // dQ += α dS K;  dK += α dSᵀ Q
            if let dq {
                BLAS.sgemm(transA: false, transB: false, m: s.tq, n: s.dim, k: s.tk, alpha: s.scale, a: ds, lda: s.tk,
                           b: kg, ldb: k.rowStride, beta: 1, c: dq.at(bi, hi), ldc: dq.rowStride)
            }
            if let dk {
                BLAS.sgemm(transA: true, transB: false, m: s.tk, n: s.dim, k: s.tq, alpha: s.scale, a: ds, lda: s.tk,
                           b: q.at(bi, hi), ldb: q.rowStride, beta: 1, c: dk.at(bi, kvh), ldc: dk.rowStride)
            }
        }
    }

    /// Runs independent groups: across threads with single-threaded BLAS when there are enough of them, otherwise
    /// one after another with multi-threaded BLAS. `body` gets the group and a per-thread scratch of `scratch` floats.
    static func runGroups(_ groups: Int, scratch: Int, _ body: (Int, UnsafeMutablePointer<Float>) -> Void) {
        let threads = BLAS.threads
        if groups >= threads && threads > 1 {
            BLAS.singleThreaded {
                parallelFor(groups, grain: 1) { r in
                    let buffer = Storage(count: max(scratch, 1))
                    for g in r { body(g, buffer.pointer) }
                }
            }
        } else {
            let buffer = Storage(count: max(scratch, 1))
            for g in 0..<groups { body(g, buffer.pointer) }
        }
    }
}

extension Tensor {
    /// Fused scaled-dot-product attention with grouped key/value heads.
    ///
    /// - q: (B, H, Tq, D); k, v: (B, KV, Tk, D) with KV dividing H (query head h reads kv head h / (H/KV)); with
    ///   `layout: .bthd` the same quantities are (B, Tq, H, D) and (B, Tk, KV, D).
    /// - `causal`: query i attends to keys 0…i + (Tk − Tq) (the queries are the last Tq positions).
    /// - `keyPadding`: B·Tk flags, true for real tokens; padded keys get no attention. A query with no visible key
    ///   outputs zeros.
    /// - `scale`: defaults to 1/√D.
    /// - `window`: a sliding window (with `causal`): the query at position p sees keys p − window + 1 … p, as
    ///   transformers' sliding-window mask (Mistral, Qwen2). nil: all earlier keys.
    /// Returns the layout of q. The forward keeps the probabilities (B, H, Tq, Tk) for the backward.
    public static func attention(
        q: Tensor, k: Tensor, v: Tensor, causal: Bool = true, keyPadding: [Bool]? = nil, scale: Float? = nil,
        window: Int? = nil, layout: HeadLayout = .bhtd
    ) -> Tensor {
        precondition(q.rank == 4 && k.rank == 4 && v.rank == 4, "attention expects rank-4 q, k, v")
        let (b, d) = (q.shape[0], q.shape[3])
        let (h, tq) = layout == .bhtd ? (q.shape[1], q.shape[2]) : (q.shape[2], q.shape[1])
        let (kv, tk) = layout == .bhtd ? (k.shape[1], k.shape[2]) : (k.shape[2], k.shape[1])
        precondition(k.shape[0] == b && k.shape[3] == d && v.shape == k.shape,
                     "attention: k \(k.shape), v \(v.shape) do not match q \(q.shape)")
        precondition(kv > 0 && h % kv == 0, "attention: \(kv) key/value heads do not divide \(h) query heads")
        precondition(tq <= tk, "attention: more queries (\(tq)) than keys (\(tk))")
        if let keyPadding { precondition(keyPadding.count == b * tk, "attention: key padding needs B·Tk = \(b * tk) flags") }
        if let window { precondition(causal && window >= 1, "attention: a sliding window (\(window)) needs causal attention and ≥ 1 key") }
        let shape = AttentionKernel.Shape(
            batch: b, heads: h, kvHeads: kv, tq: tq, tk: tk, dim: d, causal: causal,
            scale: scale ?? 1 / Float(d).squareRoot(), window: window ?? 0)
        let out = Tensor(uninitialized: q.shape)
        let qv = HeadsView(q.data, layout: layout, heads: h, time: tq, dim: d)
        let kvw = HeadsView(k.data, layout: layout, heads: kv, time: tk, dim: d)
        let vv = HeadsView(v.data, layout: layout, heads: kv, time: tk, dim: d)
        let ov = HeadsView(out.data, layout: layout, heads: h, time: tq, dim: d)
        let recording = needsGrad([q, k, v])
        let tt = tq * tk
        let probs = recording ? Storage(count: b * h * tt) : nil  // (B, H, Tq, Tk)
        let groups = b * kv
        let mask = keyPadding ?? []
        mask.withUnsafeBufferPointer { m in
            let maskPointer = keyPadding == nil ? nil : m.baseAddress
            AttentionKernel.runGroups(groups, scratch: recording ? 0 : h / kv * tt) { g, scratch in
                AttentionKernel.forward(shape, group: g, q: qv, k: kvw, v: vv, o: ov, mask: maskPointer) { bi, hi in
                    if let probs { return probs.pointer + (bi * h + hi) * tt }
                    return scratch + (hi % (h / kv)) * tt
                }
            }
        }
        guard recording, let probs else { return out }
        return out.record("attention", [q, k, v]) { out in
            let dout = ov.rebased(out.grad!.data)
            let dq = q.requiresGrad ? qv.rebased(q.gradBuffer().pointer) : nil
            let dk = k.requiresGrad ? kvw.rebased(k.gradBuffer().pointer) : nil
            let dv = v.requiresGrad ? vv.rebased(v.gradBuffer().pointer) : nil
            AttentionKernel.runGroups(groups, scratch: tt) { g, scratch in
                AttentionKernel.backward(shape, group: g, q: qv, k: kvw, v: vv, dout: dout, dq: dq, dk: dk, dv: dv,
                                         probsAt: { bi, hi in probs.pointer + (bi * h + hi) * tt }, scratch: scratch)
            }
        }
    }

    /// Attention of new queries against a key/value cache, for generation (records nothing).
    ///
    /// - q: (B, Tq, H, D), the newest Tq positions of each sequence.
    /// - kCache, vCache: (B, capacity, KV, D); the first `length` positions (which include the Tq new ones) are used.
    /// - keyPadding: B·length flags (true = real token), or nil.
    /// - window: a sliding window over cache positions, as in `attention`.
    /// Returns (B, Tq, H, D).
    /// Attention of one new query per row (q: (B, 1, H, D)) over the first `lengths[b]` cached keys and values of
    /// row b (caches (≥ B, capacity, KV, D); rows of the cache beyond B are not read), causal, no padding: each row
    /// computes exactly what it computes alone with a cache of its own length (continuous batching). No gradient.
    public static func cachedAttention(
        q: Tensor, kCache: Tensor, vCache: Tensor, lengths: [Int], scale: Float? = nil, window: Int? = nil
    ) -> Tensor {
        let (b, tq, h, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (capacity, kv) = (kCache.shape[1], kCache.shape[2])
        precondition(tq == 1 && lengths.count == b, "cachedAttention: one query per row and one length per row")
        precondition(kCache.shape[0] >= b && Array(kCache.shape.dropFirst()) == [capacity, kv, d] && vCache.shape == kCache.shape,
                     "cachedAttention: cache shape")
        precondition(lengths.allSatisfy { $0 >= 1 && $0 <= capacity }, "cachedAttention: lengths within 1...\(capacity)")
        if let window { precondition(window >= 1, "cachedAttention: window \(window) < 1") }
        let out = Tensor(uninitialized: q.shape)
        let qv = HeadsView(q.data, layout: .bthd, heads: h, time: 1, dim: d)
        let cacheStride = (capacity * kv * d, d, kv * d)
        let kvw = HeadsView(kCache.data, batchStride: cacheStride.0, headStride: cacheStride.1, rowStride: cacheStride.2)
        let vv = HeadsView(vCache.data, batchStride: cacheStride.0, headStride: cacheStride.1, rowStride: cacheStride.2)
        let ov = HeadsView(out.data, layout: .bthd, heads: h, time: 1, dim: d)
        let rep = h / kv, longest = lengths.max()!
        AttentionKernel.runGroups(b * kv, scratch: rep * longest) { g, scratch in
            let shape = AttentionKernel.Shape(batch: b, heads: h, kvHeads: kv, tq: 1, tk: lengths[g / kv], dim: d, causal: true,
                                              scale: scale ?? 1 / Float(d).squareRoot(), window: window ?? 0)
            AttentionKernel.forward(shape, group: g, q: qv, k: kvw, v: vv, o: ov, mask: nil) { _, hi in
                scratch + (hi % rep) * shape.tk
            }
        }
        return out
    }

    public static func cachedAttention(
        q: Tensor, kCache: Tensor, vCache: Tensor, length: Int, keyPadding: [Bool]? = nil, scale: Float? = nil,
        window: Int? = nil
    ) -> Tensor {
        let (b, tq, h, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (capacity, kv) = (kCache.shape[1], kCache.shape[2])
        precondition(kCache.shape == [b, capacity, kv, d] && vCache.shape == kCache.shape, "cachedAttention: cache shape")
        precondition(length <= capacity && tq <= length, "cachedAttention: length \(length), capacity \(capacity), Tq \(tq)")
        if let keyPadding { precondition(keyPadding.count == b * length, "cachedAttention: padding needs B·length flags") }
        if let window { precondition(window >= 1, "cachedAttention: window \(window) < 1") }
        let shape = AttentionKernel.Shape(batch: b, heads: h, kvHeads: kv, tq: tq, tk: length, dim: d, causal: true,
                                          scale: scale ?? 1 / Float(d).squareRoot(), window: window ?? 0)
        let out = Tensor(uninitialized: q.shape)
        let qv = HeadsView(q.data, layout: .bthd, heads: h, time: tq, dim: d)
        let cacheStride = (capacity * kv * d, d, kv * d)
        let kvw = HeadsView(kCache.data, batchStride: cacheStride.0, headStride: cacheStride.1, rowStride: cacheStride.2)
        let vv = HeadsView(vCache.data, batchStride: cacheStride.0, headStride: cacheStride.1, rowStride: cacheStride.2)
        let ov = HeadsView(out.data, layout: .bthd, heads: h, time: tq, dim: d)
        let rep = h / kv, tt = tq * length
        let mask = keyPadding ?? []
        mask.withUnsafeBufferPointer { m in
            let maskPointer = keyPadding == nil ? nil : m.baseAddress
            AttentionKernel.runGroups(b * kv, scratch: rep * tt) { g, scratch in
                AttentionKernel.forward(shape, group: g, q: qv, k: kvw, v: vv, o: ov, mask: maskPointer) { _, hi in
                    scratch + (hi % rep) * tt
                }
            }
        }
        return out
    }
}
