import AlignerFiles
import AlignerTensor
import Foundation

/// A metadata value to write, with the exact GGUF value type llama.cpp expects for its key (it checks types: a
/// `block_count` must be a uint32, a `rope.freq_base` a float32, `token_type` an int32 array).
public enum GGUFMetadataValue: Equatable, Sendable {
    case uint32(UInt32)
    case int32(Int32)
    case float32(Float)
    case bool(Bool)
    case string(String)
    case uint64(UInt64)
    case float64(Double)
    case strings([String])
    case int32s([Int32])
    case float32s([Float])
}

/// One tensor to write: its name, Float32 values in row-major `shape` (a linear weight is (out, in); ggml's `ne` is the
/// shape reversed), and the ggml type to store it as.
public struct GGUFTensorSource {
    public let name: String
    public let values: Tensor
    public let type: GGMLType
    public init(name: String, values: Tensor, type: GGMLType) {
        self.name = name
        self.values = values
        self.type = type
    }
}

/// Writes GGUF version 3 files (little-endian, 32-byte alignment) with F32, F16, BF16 or Q8_0 tensors, quantised
/// exactly as the `gguf` Python package's `gguf.quants.quantize` (and ggml's reference `quantize_row_q8_0`) do.
public enum GGUFWriter {
    /// ggml types `write` can store.
    public static let writableTypes: [GGMLType] = [.f32, .f16, .bf16, .q8_0]
    static let alignment = 32

    /// Encodes `values` as `type` (F32, F16, BF16 or Q8_0; Q8_0 needs a multiple of 32 values).
    public static func encode(_ values: UnsafeBufferPointer<Float>, as type: GGMLType) throws -> [UInt8] {
        let n = values.count
        switch type {
        case .f32:
            return Array(UnsafeRawBufferPointer(values))  // little-endian hosts only (x86-64, arm64), as GGUF
        case .f16:
            var out = [UInt8](repeating: 0, count: 2 * n)
            for i in 0..<n { store(Float16(values[i]).bitPattern, 2, &out, 2 * i) }
            return out
        case .bf16:
            var out = [UInt8](repeating: 0, count: 2 * n)
            for i in 0..<n {
                var bits = values[i].bitPattern
                if bits & 0x7fff_ffff > 0x7f80_0000 { bits = (bits & 0xffff_0000) | (64 << 16) }  // NaN stays a quiet NaN
                let rounded = (UInt64(bits) + 0x7fff + UInt64((bits >> 16) & 1)) >> 16  // to nearest, ties to even
                store(UInt16(truncatingIfNeeded: rounded), 2, &out, 2 * i)
            }
            return out
        case .q8_0:
            guard n % 32 == 0 else { throw GGUFError(file: "<write>", message: "Q8_0 needs a multiple of 32 values, got \(n)") }
            // Per block of 32: d = max|x| / 127 (stored as f16), q = round(x / d) away from zero, as int8.
            var out = [UInt8](repeating: 0, count: n / 32 * 34)
            for b in 0..<(n / 32) {
                var amax: Float = 0
                for j in 0..<32 { amax = max(amax, abs(values[b * 32 + j])) }
                let d = amax / 127, id: Float = d == 0 ? 0 : 1 / d
                store(Float16(d).bitPattern, 2, &out, b * 34)
                for j in 0..<32 {
                    let q = (values[b * 32 + j] * id).rounded(.toNearestOrAwayFromZero)
                    out[b * 34 + 2 + j] = UInt8(bitPattern: Int8(max(-128, min(127, q))))
                }
            }
            return out
        default:
            throw GGUFError(file: "<write>", message: "writing \(type.name) tensors is not supported (F32, F16, BF16, Q8_0)")
        }
    }

    @inline(__always) static func store<T: FixedWidthInteger>(_ v: T, _ width: Int, _ out: inout [UInt8], _ at: Int) {
        for k in 0..<width { out[at + k] = UInt8(truncatingIfNeeded: v >> (8 * k)) }
    }

    /// Writes a GGUF file to `url`: metadata in the given order, then the tensors in the given order. The file is
    /// written beside `url` under a temporary name, flushed and renamed into place, so `url` never holds a part.
    public static func write(metadata: [(String, GGUFMetadataValue)], tensors: [GGUFTensorSource], to url: URL) throws {
        func fail(_ m: String) -> GGUFError { GGUFError(file: url.path, message: m) }
        var seenKeys = Set<String>(), seenTensors = Set<String>()
        for (k, _) in metadata where !seenKeys.insert(k).inserted { throw fail("metadata key '\(k)' given twice") }
        var header = Bytes()
        header.raw([0x47, 0x47, 0x55, 0x46])  // "GGUF"
        header.int(UInt32(3))
        header.int(UInt64(tensors.count))
        header.int(UInt64(metadata.count))
        for (key, value) in metadata {
            header.string(key)
            header.value(value)
        }
        var offset = 0
        var sizes: [Int] = []
        for t in tensors {
            guard seenTensors.insert(t.name).inserted else { throw fail("tensor '\(t.name)' given twice") }
            guard writableTypes.contains(t.type) else { throw fail("tensor '\(t.name)': writing \(t.type.name) is not supported (F32, F16, BF16, Q8_0)") }
            let shape = t.values.shape
            let (perBlock, blockBytes) = t.type.block
            guard let inner = shape.last, inner % perBlock == 0 else {
                throw fail("tensor '\(t.name)' of shape \(shape): rows of \(shape.last ?? 0) values cannot be stored as \(t.type.name) (blocks of \(perBlock))")
            }
            header.string(t.name)
            header.int(UInt32(shape.count))
            for d in shape.reversed() { header.int(UInt64(d)) }
            header.int(t.type.rawValue)
            header.int(UInt64(offset))
            let size = t.values.count / perBlock * blockBytes
            sizes.append(size)
            offset += (size + alignment - 1) / alignment * alignment
        }
        header.pad(to: alignment)

        do {
            try AtomicFile.write(to: url) { handle in
                try handle.write(contentsOf: header.data)
                for (t, size) in zip(tensors, sizes) {
                    var bytes = try encode(UnsafeBufferPointer(start: t.values.data, count: t.values.count), as: t.type)
                    precondition(bytes.count == size)
                    bytes.append(contentsOf: [UInt8](repeating: 0, count: (alignment - size % alignment) % alignment))
                    try handle.write(contentsOf: bytes)
                }
            }
        } catch let e as FileError {
            throw e
        } catch {
            throw error is GGUFError ? error : FileSystemFailure.error(error, path: url.path, action: "write")
        }
    }

    /// A little-endian byte buffer for the header.
    struct Bytes {
        var data = Data()
        mutating func raw(_ b: [UInt8]) { data.append(contentsOf: b) }
        mutating func int<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        mutating func string(_ s: String) {
            let utf8 = Array(s.utf8)
            int(UInt64(utf8.count))
            raw(utf8)
        }
        mutating func pad(to alignment: Int) {
            let rest = (alignment - data.count % alignment) % alignment
            raw([UInt8](repeating: 0, count: rest))
        }
        /// GGUF value types: uint32 4, int32 5, float32 6, bool 7, string 8, array 9, uint64 10, float64 12.
        mutating func value(_ v: GGUFMetadataValue) {
            switch v {
            case .uint32(let x): int(UInt32(4)); int(x)
            case .int32(let x): int(UInt32(5)); int(x)
            case .float32(let x): int(UInt32(6)); int(x.bitPattern)
            case .bool(let x): int(UInt32(7)); raw([x ? 1 : 0])
            case .string(let x): int(UInt32(8)); string(x)
            case .uint64(let x): int(UInt32(10)); int(x)
            case .float64(let x): int(UInt32(12)); int(x.bitPattern)
            case .strings(let xs):
                int(UInt32(9)); int(UInt32(8)); int(UInt64(xs.count))
                for x in xs { string(x) }
            case .int32s(let xs):
                int(UInt32(9)); int(UInt32(5)); int(UInt64(xs.count))
                for x in xs { int(x) }
            case .float32s(let xs):
                int(UInt32(9)); int(UInt32(6)); int(UInt64(xs.count))
                for x in xs { int(x.bitPattern) }
            }
        }
    }
}
