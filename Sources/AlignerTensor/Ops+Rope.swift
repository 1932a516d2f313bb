import Foundation

/// Cosine and sine tables of rotary position embedding for Hugging Face's Llama convention: frequency i of a head of
/// size D is `1 / theta^(2i/D)` for i < D/2, computed in Float32 as transformers does.
public struct RopeTable: Sendable {
    public let headDim: Int
    public let theta: Float
    /// (positions, D/2) cosines and sines.
    let cos: [Float]
    let sin: [Float]
    public let positions: Int

    public init(headDim: Int, theta: Float, positions: Int) {
        precondition(headDim % 2 == 0, "rotary embedding needs an even head size, got \(headDim)")
        self.headDim = headDim
        self.theta = theta
        self.positions = positions
        let half = headDim / 2
        let inv = (0..<half).map { i in 1 / Foundation.pow(theta, Float(2 * i) / Float(headDim)) }
        var c = [Float](repeating: 0, count: positions * half)
        var s = c
        for p in 0..<positions {
            for i in 0..<half {
                let f = Float(p) * inv[i]
                c[p * half + i] = Foundation.cos(f)
                s[p * half + i] = Foundation.sin(f)
            }
        }
        cos = c
        sin = s
    }
}

extension Tensor {
    /// Rotary position embedding, rotate-half convention: for i < D/2,
    /// `y[i] = x[i] cos − x[i+D/2] sin`, `y[i+D/2] = x[i+D/2] cos + x[i] sin`, with the angle of the token's position.
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
        let half = d / 2
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
                                } else {
                                    for i in 0..<half {
                                        let x1 = x[i], x2 = x[i + half]
                                        y[i] = x1 * c[i] - sign * x2 * s[i]
                                        y[i + half] = x2 * c[i] + sign * x1 * s[i]
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        apply(data, out.data, inverse: false, accumulate: false)
        return out.record("rope", [self]) { out in
            // The rotation is orthogonal: its gradient is the inverse rotation.
            apply(out.grad!.data, self.gradBuffer().pointer, inverse: true, accumulate: true)
        }
    }
}
