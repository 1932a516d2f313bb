import Foundation

/// Cosine and sine tables of rotary position embedding for Hugging Face's Llama convention: frequency i of a head of
/// size D is `1 / theta^(2i/D)` for i < D/2, computed in Float32 as transformers does. Scaled variants (linear,
/// Llama 3, YaRN, ...) pass their own inverse frequencies; a partial rotary embedding (Phi-3's
/// `partial_rotary_factor`) rotates only the first `rotaryDim` features of each head and passes the rest through.
public struct RopeTable: Sendable {
    public let headDim: Int
    /// Features rotated at the start of each head (2 × the number of frequencies); the rest pass through.
    public let rotaryDim: Int
    /// (positions, rotaryDim/2) cosines and sines, times the attention scaling.
    let cos: [Float]
    let sin: [Float]
    public let positions: Int

    /// Hugging Face's default frequencies `1 / theta^(2i/D)` over the whole head.
    public init(headDim: Int, theta: Float, positions: Int) {
        precondition(headDim % 2 == 0, "rotary embedding needs an even head size, got \(headDim)")
        self.init(headDim: headDim, inverseFrequencies: Self.defaultInverseFrequencies(rotaryDim: headDim, theta: theta),
                  positions: positions)
    }

    /// `1 / theta^(2i/dim)` for i < dim/2, in Float32 as transformers computes `inv_freq`.
    public static func defaultInverseFrequencies(rotaryDim dim: Int, theta: Float) -> [Float] {
        (0..<(dim / 2)).map { i in 1 / Foundation.pow(theta, Float(2 * i) / Float(dim)) }
    }

    /// A table for the given inverse frequencies (rotaryDim/2 of them); cosines and sines are multiplied by
    /// `attentionScaling` (YaRN's attention factor; 1 otherwise), as transformers' rotary embedding does.
    public init(headDim: Int, inverseFrequencies inv: [Float], positions: Int, attentionScaling: Float = 1) {
        precondition(!inv.isEmpty && 2 * inv.count <= headDim, "rope: \(inv.count) frequencies for head size \(headDim)")
        self.headDim = headDim
        self.rotaryDim = 2 * inv.count
        self.positions = positions
        let half = inv.count
        var c = [Float](repeating: 0, count: positions * half)
        var s = c
        for p in 0..<positions {
            for i in 0..<half {
                let f = Float(p) * inv[i]
                c[p * half + i] = Foundation.cos(f) * attentionScaling
                s[p * half + i] = Foundation.sin(f) * attentionScaling
            }
        }
        cos = c
        sin = s
    }
}

extension Tensor {
    /// Rotary position embedding, rotate-half convention: for i < R/2 (R = the table's rotary size, D by default),
    /// `y[i] = x[i] cos − x[i+R/2] sin`, `y[i+R/2] = x[i+R/2] cos + x[i] sin`, with the angle of the token's position;
    /// features R..<D pass through unchanged.
    /// x is (B, H, T, D), or (B, T, H, D) with `layout: .bthd`. `positions` holds T positions shared by the batch, or
    /// B·T (one row per sequence).
    public func rope(positions: [Int], table: RopeTable, layout: HeadLayout = .bhtd) -> Tensor {
        precondition(rank == 4, "rope expects a rank-4 tensor, got \(shape)")
        let (b, d) = (shape[0], shape[3])
        let (h, t) = layout == .bhtd ? (shape[1], shape[2]) : (shape[2], shape[1])
        precondition(d == table.headDim, "rope: head size \(d) but table built for \(table.headDim)")
        precondition(positions.count == t || positions.count == b * t, "rope: \(positions.count) positions for B=\(b), T=\(t)")
        for p in positions where p < 0 || p >= table.positions {
            preconditionFailure("rope: position \(p) outside the table's 0..<\(table.positions)")
        }
        let half = table.rotaryDim / 2, rotary = table.rotaryDim
        let out = Tensor(uninitialized: shape)
        let shared = positions.count == t
        let rows = b * h * t
        // The position index of a row of D values.
        @inline(__always) func positionIndex(_ row: Int) -> Int {
            let (bi, ti) = layout == .bhtd ? (row / (h * t), row % t) : (row / (t * h), (row / h) % t)
            return shared ? ti : bi * t + ti
        }
        func apply(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, inverse: Bool, accumulate: Bool) {
            let sign: Float = inverse ? -1 : 1
            table.cos.withUnsafeBufferPointer { cosT in
                table.sin.withUnsafeBufferPointer { sinT in
                    positions.withUnsafeBufferPointer { pos in
                        parallelFor(rows, grain: max(1, 8192 / d)) { r in
                            for row in r {
                                let p = pos[positionIndex(row)]
                                let c = cosT.baseAddress! + p * half
                                let s = sinT.baseAddress! + p * half
                                let x = src + row * d, y = dst + row * d
                                if accumulate {
                                    for i in 0..<half {
                                        let x1 = x[i], x2 = x[i + half]
                                        y[i] += x1 * c[i] - sign * x2 * s[i]
                                        y[i + half] += x2 * c[i] + sign * x1 * s[i]
                                    }
                                    for i in rotary..<d { y[i] += x[i] }
                                } else {
                                    for i in 0..<half {
                                        let x1 = x[i], x2 = x[i + half]
                                        y[i] = x1 * c[i] - sign * x2 * s[i]
                                        y[i + half] = x2 * c[i] + sign * x1 * s[i]
                                    }
                                    for i in rotary..<d { y[i] = x[i] }
                                }
                            }
                        }
                    }
                }
            }
        }
        apply(data, out.data, inverse: false, accumulate: false)
        return out.record("rope", [self]) { out in
            // A rotation (times the table's scaling s) is s·R; its gradient is s·Rᵀ, the inverse rotation with the same
            // scaled table. Pass-through features pass their gradient through.
            apply(out.grad!.data, self.gradBuffer().pointer, inverse: true, accumulate: true)
        }
    }
}
