/// ggml's block formats dequantised to Float32, as ggml's `dequantize_row_*` compute them (and the `gguf` Python
/// package's `gguf.quants.dequantize`). Blocks are read from a byte buffer the caller has bounds-checked.
enum GGUFDequantize {
    @inline(__always) static func half(_ p: UnsafeRawBufferPointer, _ at: Int) -> Float {
        Float(Float16(bitPattern: UInt16(p[at]) | UInt16(p[at + 1]) << 8))
    }

    /// Dequantises `count` values of `type` from `src` into `dst`.
    static func run(_ type: GGMLType, _ src: UnsafeRawBufferPointer, into dst: UnsafeMutablePointer<Float>, count: Int) {
        let (perBlock, blockBytes) = type.block
        let blocks = count / perBlock
        switch type {
        case .f32:
            for i in 0..<count {
                let b = i * 4
                dst[i] = Float(bitPattern: UInt32(src[b]) | UInt32(src[b + 1]) << 8 | UInt32(src[b + 2]) << 16 | UInt32(src[b + 3]) << 24)
            }
        case .f16:
            for i in 0..<count { dst[i] = half(src, 2 * i) }
        case .bf16:
            for i in 0..<count { dst[i] = Float(bitPattern: (UInt32(src[2 * i]) | UInt32(src[2 * i + 1]) << 8) << 16) }
        case .q8_0:
            // d (f16), 32 × int8.
            for b in 0..<blocks {
                let o = b * blockBytes, y = dst + b * 32
                let d = half(src, o)
                for j in 0..<32 { y[j] = Float(Int8(bitPattern: src[o + 2 + j])) * d }
            }
        case .q4_0:
            // d (f16), 16 bytes of nibbles: low nibbles are values 0…15, high nibbles 16…31, offset by 8.
            for b in 0..<blocks {
                let o = b * blockBytes, y = dst + b * 32
                let d = half(src, o)
                for j in 0..<16 {
                    let q = src[o + 2 + j]
                    y[j] = Float(Int(q & 0x0F) - 8) * d
                    y[j + 16] = Float(Int(q >> 4) - 8) * d
                }
            }
        case .q4_1:
            // d, m (f16), 16 bytes of nibbles: value = q · d + m.
            for b in 0..<blocks {
                let o = b * blockBytes, y = dst + b * 32
                let d = half(src, o), m = half(src, o + 2)
                for j in 0..<16 {
                    let q = src[o + 4 + j]
                    y[j] = Float(q & 0x0F) * d + m
                    y[j + 16] = Float(q >> 4) * d + m
                }
            }
        case .q5_0, .q5_1:
            // d (, m) (f16), 32 high bits (u32), 16 bytes of low nibbles: 5-bit values, offset by 16 for Q5_0.
            let hasMin = type == .q5_1
            for b in 0..<blocks {
                let o = b * blockBytes, y = dst + b * 32
                let d = half(src, o), m = hasMin ? half(src, o + 2) : 0
                let h = o + (hasMin ? 4 : 2)
                let qh = UInt32(src[h]) | UInt32(src[h + 1]) << 8 | UInt32(src[h + 2]) << 16 | UInt32(src[h + 3]) << 24
                let qs = h + 4
                for j in 0..<16 {
                    let high0 = ((qh >> UInt32(j)) << 4) & 0x10
                    let high1 = (qh >> UInt32(j + 12)) & 0x10
                    let x0 = Int(UInt32(src[qs + j] & 0x0F) | high0), x1 = Int(UInt32(src[qs + j] >> 4) | high1)
                    if hasMin {
                        y[j] = Float(x0) * d + m
                        y[j + 16] = Float(x1) * d + m
                    } else {
                        y[j] = Float(x0 - 16) * d
                        y[j + 16] = Float(x1 - 16) * d
                    }
                }
            }
        case .q2_K:
            // scales[16] (low nibble scale, high nibble min), qs[64] (2-bit), d, dmin (f16).
            for b in 0..<blocks {
                let o = b * blockBytes
                var y = dst + b * 256
                let d = half(src, o + 80), dmin = half(src, o + 82)
                var scale = 0
                for n in stride(from: 0, to: 256, by: 128) {
                    let q = o + 16 + n / 4
                    var shift: UInt8 = 0
                    for _ in 0..<4 {
                        for half16 in 0..<2 {
                            let sc = src[o + scale]
                            scale += 1
                            let dl = d * Float(sc & 0x0F), ml = dmin * Float(sc >> 4)
                            for l in 0..<16 { y[l] = dl * Float((src[q + half16 * 16 + l] >> shift) & 3) - ml }
                            y += 16
                        }
                        shift += 2
                    }
                }
            }
        case .q3_K:
            // hmask[32], qs[64] (low 2 bits), scales[12] (16 packed 6-bit scales), d (f16).
            for b in 0..<blocks {
                let o = b * blockBytes
                var y = dst + b * 256
                let d = half(src, o + 108)
                var aux = [UInt32](repeating: 0, count: 4)
                for i in 0..<12 { aux[i / 4] |= UInt32(src[o + 96 + i]) << (8 * UInt32(i % 4)) }
                let (k1, k2): (UInt32, UInt32) = (0x0303_0303, 0x0f0f_0f0f)
                let tmp = aux[2]
                aux[2] = ((aux[0] >> 4) & k2) | (((tmp >> 4) & k1) << 4)
                aux[3] = ((aux[1] >> 4) & k2) | (((tmp >> 6) & k1) << 4)
                aux[0] = (aux[0] & k2) | (((tmp >> 0) & k1) << 4)
                aux[1] = (aux[1] & k2) | (((tmp >> 2) & k1) << 4)
                let scales = (0..<16).map { Int(Int8(bitPattern: UInt8(truncatingIfNeeded: aux[$0 / 4] >> (8 * UInt32($0 % 4))))) }
                var scale = 0
                var mask: UInt8 = 1
                for n in stride(from: 0, to: 256, by: 128) {
                    let q = o + 32 + n / 4
                    var shift: UInt8 = 0
                    for _ in 0..<4 {
                        for half16 in 0..<2 {
                            let dl = d * Float(scales[scale] - 32)
                            scale += 1
                            for l in 0..<16 {
                                let low = Int((src[q + half16 * 16 + l] >> shift) & 3)
                                let high = src[o + half16 * 16 + l] & mask != 0 ? 0 : 4
                                y[l] = dl * Float(low - high)
                            }
                            y += 16
                        }
                        shift += 2
                        mask <<= 1
                    }
                }
            }
        case .q4_K, .q5_K:
            // d, dmin (f16), scales[12] (8 packed 6-bit scale/min pairs), (Q5_K: qh[32]), qs[128] (4-bit).
            let five = type == .q5_K
            for b in 0..<blocks {
                let o = b * blockBytes
                var y = dst + b * 256
                let d = half(src, o), dmin = half(src, o + 2)
                let sc = o + 4, qh = o + 16, qs = o + (five ? 48 : 16)
                func scaleMin(_ j: Int) -> (Float, Float) {
                    if j < 4 { return (Float(src[sc + j] & 63), Float(src[sc + j + 4] & 63)) }
                    return (Float((src[sc + j + 4] & 0x0F) | ((src[sc + j - 4] >> 6) << 4)),
                            Float((src[sc + j + 4] >> 4) | ((src[sc + j] >> 6) << 4)))
                }
                var u1: UInt8 = 1, u2: UInt8 = 2
                for (group, j) in stride(from: 0, to: 256, by: 64).enumerated() {
                    let (s1, m1) = scaleMin(2 * group), (s2, m2) = scaleMin(2 * group + 1)
                    let (d1, mm1, d2, mm2) = (d * s1, dmin * m1, d * s2, dmin * m2)
                    let q = qs + j / 2
                    for l in 0..<32 {
                        let high: Float = five && src[qh + l] & u1 != 0 ? 16 : 0
                        y[l] = d1 * (Float(src[q + l] & 0x0F) + high) - mm1
                    }
                    for l in 0..<32 {
                        let high: Float = five && src[qh + l] & u2 != 0 ? 16 : 0
                        y[32 + l] = d2 * (Float(src[q + l] >> 4) + high) - mm2
                    }
                    y += 64
                    u1 <<= 2
                    u2 <<= 2
                }
            }
        case .q6_K:
            // ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (int8), d (f16).
            for b in 0..<blocks {
                let o = b * blockBytes
                var y = dst + b * 256
                let d = half(src, o + 208)
                var ql = o, qh = o + 128, sc = o + 192
                for _ in stride(from: 0, to: 256, by: 128) {
                    for l in 0..<32 {
                        let s = l / 16
                        let q1 = Int((src[ql + l] & 0x0F) | (((src[qh + l] >> 0) & 3) << 4)) - 32
                        let q2 = Int((src[ql + l + 32] & 0x0F) | (((src[qh + l] >> 2) & 3) << 4)) - 32
                        let q3 = Int((src[ql + l] >> 4) | (((src[qh + l] >> 4) & 3) << 4)) - 32
                        let q4 = Int((src[ql + l + 32] >> 4) | (((src[qh + l] >> 6) & 3) << 4)) - 32
                        func scale(_ k: Int) -> Float { Float(Int8(bitPattern: src[sc + k])) }
                        y[l] = d * scale(s) * Float(q1)
                        y[l + 32] = d * scale(s + 2) * Float(q2)
                        y[l + 64] = d * scale(s + 4) * Float(q3)
                        y[l + 96] = d * scale(s + 6) * Float(q4)
                    }
                    y += 128
                    ql += 64
                    qh += 32
                    sc += 8
                }
            }
        }
    }
}
