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
        }
    }
}
