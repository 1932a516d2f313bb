import AlignerFiles
import AlignerErrors
import AlignerTensor
import Foundation

/// A GGUF file that cannot be read: malformed, truncated, or using something AlignerKit does not support. `file` is
/// the path (or "<data>"), `message` says where and what.
public struct GGUFError: AlignerError, Equatable {
    public let file: String
    public let message: String
    /// `.badData`, or `.missing` when the file does not exist.
    public let kind: FailureKind
    public init(file: String, message: String, kind: FailureKind = .badData) {
        self.file = file
        self.message = message
        self.kind = kind
    }
    public var subject: FailureSubject { .file(file) }
    public var description: String { "\(file): \(message)" }
}

/// A metadata value of a GGUF file (integers of every width widen to `uint`/`int`, floats to `float`).
public indirect enum GGUFValue: Equatable, Sendable {
    case uint(UInt64)
    case int(Int64)
    case float(Double)
    case bool(Bool)
    case string(String)
    case array([GGUFValue])

    /// The value as a non-negative integer, when it is one.
    public var intValue: Int? {
        switch self {
        case .uint(let v): return v <= UInt64(Int.max) ? Int(v) : nil
        case .int(let v): return v >= 0 ? Int(v) : nil
        default: return nil
        }
    }
    public var doubleValue: Double? {
        switch self {
        case .float(let v): return v
        case .uint(let v): return Double(v)
        case .int(let v): return Double(v)
        default: return nil
        }
    }
    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
}

/// ggml's tensor element types that AlignerKit dequantises (`ggml_type` numbers).
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14
    case bf16 = 30

    /// Elements per block and bytes per block.
    public var block: (elements: Int, bytes: Int) {
        switch self {
        case .f32: (1, 4)
        case .f16, .bf16: (1, 2)
        case .q4_0: (32, 18)
        case .q4_1: (32, 20)
        case .q5_0: (32, 22)
        case .q5_1: (32, 24)
        case .q8_0: (32, 34)
        case .q2_K: (256, 84)
        case .q3_K: (256, 110)
        case .q4_K: (256, 144)
        case .q5_K: (256, 176)
        case .q6_K: (256, 210)
        }
    }

    /// ggml's name ("Q4_1").
    public var name: String {
        switch self {
        case .f32: "F32"
        case .f16: "F16"
        case .bf16: "BF16"
        case .q4_0: "Q4_0"
        case .q4_1: "Q4_1"
        case .q5_0: "Q5_0"
        case .q5_1: "Q5_1"
        case .q8_0: "Q8_0"
        case .q2_K: "Q2_K"
        case .q3_K: "Q3_K"
        case .q4_K: "Q4_K"
        case .q5_K: "Q5_K"
        case .q6_K: "Q6_K"
        }
    }

    /// Names of ggml types AlignerKit does not read (for error messages).
    static let otherNames: [UInt32: String] = [9: "Q8_1", 15: "Q8_K",
                                               16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S",
                                               22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M"]
}

/// One tensor's entry: name, shape (row-major, outermost first: ggml's ne reversed), type and byte range.
public struct GGUFTensorInfo: Equatable, Sendable {
    public let name: String
    /// Row-major shape, e.g. (out, in) for a linear weight whose ggml ne is [in, out].
    public let shape: [Int]
    public let type: GGMLType
    /// Offset from the start of the file.
    public let offset: Int
    public let byteCount: Int
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A GGUF file (versions 2 and 3, little-endian): metadata, tensor infos, and tensors dequantised to Float32 on
/// request. Every count, length, offset and size is checked against the file before anything is read, so a malformed
/// file gives a `GGUFError` naming the field, never an out-of-bounds read. The file is memory-mapped.
public final class GGUFFile {
    public let path: String
    public let version: UInt32
    /// Metadata by key, and the keys in file order.
    public let metadata: [String: GGUFValue]
    public let keys: [String]
    /// Tensors in file order.
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    private let data: Data
    private let byName: [String: Int]

    public convenience init(contentsOf url: URL) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw GGUFError(file: url.path, message: "no such file", kind: .missing)
        }
        guard !isDir.boolValue else { throw GGUFError(file: url.path, message: "is a folder, not a GGUF file", kind: .usage) }
        try FileSystemFailure.checkInputFile(url.path)
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw FileSystemFailure.error(error, path: url.path, action: "read")
        }
        try self.init(data: data, path: url.path)
    }

    public init(data: Data, path: String = "<data>") throws {
        self.path = path
        self.data = data
        var r = Reader(data: data, path: path)
        guard data.count >= 4, try r.bytes(4) == Array("GGUF".utf8) else {
            throw GGUFError(file: path, message: "not a GGUF file (no 'GGUF' magic at the start)")
        }
        version = try r.u32("version")
        guard version == 2 || version == 3 else {
            throw GGUFError(file: path, message: "GGUF version \(version) is not supported (2 and 3 are; a big-endian file also reads as another version)")
        }
        let tensorCount = try r.count("tensor_count", minimumBytesEach: 24)
        let kvCount = try r.count("metadata_kv_count", minimumBytesEach: 12)
        var metadata: [String: GGUFValue] = [:], keys: [String] = []
        for i in 0..<kvCount {
            let key = try r.string("metadata key \(i)")
            guard metadata[key] == nil else { throw GGUFError(file: path, message: "metadata key '\(key)' appears twice") }
            let type = try r.u32("type of metadata '\(key)'")
            metadata[key] = try r.value(type: type, field: "metadata '\(key)'", depth: 0)
            keys.append(key)
        }
        self.metadata = metadata
        self.keys = keys
        var align = 32
        if let a = metadata["general.alignment"] {
            guard let v = a.intValue, v > 0, v <= 1 << 20, v & (v - 1) == 0 else {
                throw GGUFError(file: path, message: "general.alignment must be a power of two, got \(a)")
            }
            align = v
        }
        alignment = align
        var infos: [(name: String, ne: [Int], type: GGMLType, offset: UInt64)] = []
        for i in 0..<tensorCount {
            let name = try r.string("tensor \(i) name")
            let dims = Int(try r.u32("n_dims of tensor '\(name)'"))
            guard (1...4).contains(dims) else { throw GGUFError(file: path, message: "tensor '\(name)': \(dims) dimensions (1 to 4 allowed)") }
            var ne: [Int] = []
            for d in 0..<dims {
                let v = try r.u64("dimension \(d) of tensor '\(name)'")
                guard v >= 1, v <= 1 << 40 else { throw GGUFError(file: path, message: "tensor '\(name)': dimension \(d) is \(v)") }
                ne.append(Int(v))
            }
            let rawType = try r.u32("type of tensor '\(name)'")
            guard let type = GGMLType(rawValue: rawType) else {
                let known = GGMLType.otherNames[rawType].map { "\($0) (type \(rawType))" } ?? "type \(rawType)"
                throw GGUFError(file: path, message: "tensor '\(name)': \(known) is not supported (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)")
            }
            infos.append((name, ne, type, try r.u64("offset of tensor '\(name)'")))
        }
        let dataStart = (r.position + align - 1) / align * align
        guard dataStart <= data.count else { throw GGUFError(file: path, message: "the tensor data section starts beyond the end of the file") }
        var tensors: [GGUFTensorInfo] = [], byName: [String: Int] = [:]
        for t in infos {
            var elements = 1
            for n in t.ne {
                let (p, overflow) = elements.multipliedReportingOverflow(by: n)
                guard !overflow, p <= 1 << 40 else { throw GGUFError(file: path, message: "tensor '\(t.name)': too many elements") }
                elements = p
            }
            let (perBlock, blockBytes) = t.type.block
            guard t.ne[0] % perBlock == 0 else {
                throw GGUFError(file: path, message: "tensor '\(t.name)': \(t.type.name) needs rows of a multiple of \(perBlock) values, got \(t.ne[0])")
            }
            let bytes = elements / perBlock * blockBytes
            guard t.offset % UInt64(align) == 0 else {
                throw GGUFError(file: path, message: "tensor '\(t.name)': offset \(t.offset) is not a multiple of the alignment \(align)")
            }
            guard t.offset <= UInt64(data.count), dataStart + Int(t.offset) + bytes <= data.count else {
                throw GGUFError(file: path, message: "tensor '\(t.name)': its \(bytes) bytes at offset \(t.offset) run past the end of the file")
            }
            guard byName[t.name] == nil else { throw GGUFError(file: path, message: "tensor '\(t.name)' appears twice") }
            byName[t.name] = tensors.count
            tensors.append(GGUFTensorInfo(name: t.name, shape: t.ne.reversed(), type: t.type, offset: dataStart + Int(t.offset), byteCount: bytes))
        }
        self.tensors = tensors
        self.byName = byName
    }

    /// The info of tensor `name`.
    public func info(_ name: String) -> GGUFTensorInfo? { byName[name].map { tensors[$0] } }

    /// The stored bytes of tensor `name` (quantised blocks as in the file).
    public func rawBytes(_ name: String) -> Data? {
        info(name).map { t in data.subdata(in: t.offset..<(t.offset + t.byteCount)) }
    }

    /// Tensor `name` dequantised to Float32, in its row-major shape.
    public func tensor(_ name: String) throws -> Tensor {
        guard let t = info(name) else { throw GGUFError(file: path, message: "no tensor named '\(name)'") }
        let out = Tensor.zeros(t.shape)
        data.withUnsafeBytes { raw in
            GGUFDequantize.run(t.type, UnsafeRawBufferPointer(rebasing: raw[t.offset..<(t.offset + t.byteCount)]), into: out.data, count: t.elementCount)
        }
        return out
    }
}

/// Bounds-checked little-endian reading of the header.
struct Reader {
    let data: Data
    let path: String
    var position = 0

    func fail(_ m: String) -> GGUFError { GGUFError(file: path, message: m) }

    mutating func bytes(_ n: Int) throws -> [UInt8] {
        guard n >= 0, position + n <= data.count else { throw fail("truncated at byte \(position) (needed \(n) more)") }
        defer { position += n }
        return [UInt8](data[data.startIndex + position..<data.startIndex + position + n])
    }
    mutating func little<T: FixedWidthInteger>(_: T.Type, _ field: String) throws -> T {
        let size = MemoryLayout<T>.size
        guard position + size <= data.count else { throw fail("truncated in \(field) at byte \(position)") }
        var v: UInt64 = 0
        for i in 0..<size { v |= UInt64(data[data.startIndex + position + i]) << (8 * i) }
        position += size
        return T(truncatingIfNeeded: v)
    }
    mutating func u32(_ field: String) throws -> UInt32 { try little(UInt32.self, field) }
    mutating func u64(_ field: String) throws -> UInt64 { try little(UInt64.self, field) }
    /// A count of items that each take at least `minimumBytesEach` bytes: more than the rest of the file holds is refused.
    mutating func count(_ field: String, minimumBytesEach: Int) throws -> Int {
        let v = try u64(field)
        guard v <= UInt64((data.count - position) / max(minimumBytesEach, 1)) else {
            throw fail("\(field) \(v) is more than the file can hold")
        }
        return Int(v)
    }
    mutating func string(_ field: String) throws -> String {
        let n = try u64("length of \(field)")
        guard n <= UInt64(data.count - position) else { throw fail("\(field): length \(n) runs past the end of the file") }
        let b = try bytes(Int(n))
        guard let s = String(validating: b, as: UTF8.self) else { throw fail("\(field) is not UTF-8") }
        return s
    }
    mutating func value(type: UInt32, field: String, depth: Int) throws -> GGUFValue {
        switch type {
        case 0: return .uint(UInt64(try little(UInt8.self, field)))
        case 1: return .int(Int64(try little(Int8.self, field)))
        case 2: return .uint(UInt64(try little(UInt16.self, field)))
        case 3: return .int(Int64(try little(Int16.self, field)))
        case 4: return .uint(UInt64(try u32(field)))
        case 5: return .int(Int64(try little(Int32.self, field)))
        case 6: return .float(Double(Float(bitPattern: try u32(field))))
        case 7:
            let b = try little(UInt8.self, field)
            guard b <= 1 else { throw fail("\(field): a bool of value \(b)") }
            return .bool(b == 1)
        case 8: return .string(try string(field))
        case 9:
            guard depth < 4 else { throw fail("\(field): arrays nested too deeply") }
            let elementType = try u32("element type of \(field)")
            let n = try count("length of \(field)", minimumBytesEach: elementType == 8 ? 8 : 1)
            var items: [GGUFValue] = []
            items.reserveCapacity(n)
            for i in 0..<n { items.append(try value(type: elementType, field: "\(field)[\(i)]", depth: depth + 1)) }
            return .array(items)
        case 10: return .uint(try u64(field))
        case 11: return .int(try little(Int64.self, field))
        case 12: return .float(Double(bitPattern: try u64(field)))
        default: throw fail("\(field): unknown value type \(type)")
        }
    }
}
