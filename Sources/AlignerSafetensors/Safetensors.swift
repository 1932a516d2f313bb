import AlignerErrors
import AlignerFiles
import AlignerTensor
import Foundation

/// An error reading or writing a safetensors file; the message names the file and what is wrong.
public struct SafetensorsError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let message: String
    public var description: String { "\(file): \(message)" }
}

/// Element types of the safetensors format that AlignerKit reads (all are converted to Float32).
public enum SafetensorsDType: String, Sendable, CaseIterable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16"

    public var byteSize: Int { self == .f32 ? 4 : 2 }
}

/// A safetensors file (https://github.com/huggingface/safetensors): an 8-byte little-endian header length, a JSON
/// header mapping names to dtype, shape and byte range, then the tensor bytes.
///
/// Every header is validated before any tensor byte is read: bounded header size, well-formed JSON, known dtypes,
/// non-negative shapes, byte ranges inside the data that tile it exactly (no gap, no overlap), and dtype × shape equal
/// to each range's length. A malformed file raises `SafetensorsError`; it never traps or reads out of bounds.
public struct SafetensorsFile: Sendable {
    /// One tensor's header entry; `range` is relative to the start of the data section.
    public struct Entry: Sendable, Equatable {
        public let dtype: SafetensorsDType
        public let shape: [Int]
        public let range: Range<Int>
    }

    /// Largest header accepted (the format's own reference implementation uses the same bound).
    public static let maxHeaderBytes = 100_000_000

    public let name: String
    public let metadata: [String: String]
    public let entries: [String: Entry]
    private let bytes: Data
    private let dataStart: Int

    /// Tensor names, sorted.
    public var names: [String] { entries.keys.sorted() }

    /// The first key that occurs twice at the top level of a well-formed JSON object, if any.
    static func firstRepeatedTopLevelKey(_ bytes: [UInt8]) -> String? {
        var depth = 0, i = 0
        var seen = Set<[UInt8]>()
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                // A string: find its end, honouring escapes.
                let start = i + 1
                i += 1
                while i < bytes.count && bytes[i] != UInt8(ascii: "\"") { i += bytes[i] == UInt8(ascii: "\\") ? 2 : 1 }
                let raw = Array(bytes[start..<min(i, bytes.count)])
                i += 1
                if depth == 1 {
                    var j = i
                    while j < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[j]) { j += 1 }
                    if j < bytes.count && bytes[j] == UInt8(ascii: ":") && !seen.insert(raw).inserted {
                        let literal = Data([UInt8(ascii: "[")] + [UInt8(ascii: "\"")] + raw + [UInt8(ascii: "\""), UInt8(ascii: "]")])
                        return ((try? JSONSerialization.jsonObject(with: literal)) as? [String])?.first ?? String(decoding: raw, as: UTF8.self)
                    }
                }
                continue
            }
            if c == UInt8(ascii: "{") || c == UInt8(ascii: "[") { depth += 1 }
            if c == UInt8(ascii: "}") || c == UInt8(ascii: "]") { depth -= 1 }
            i += 1
        }
        return nil
    }

    /// Opens and validates a file (memory-mapped).
    public init(contentsOf url: URL) throws {
        try FileSystemFailure.checkInputFile(url.path)
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw FileSystemFailure.error(error, path: url.path, action: "read")
        }
        try self.init(data: data, name: url.path)
    }

    /// Validates an in-memory file; `name` is used in error messages.
    public init(data: Data, name: String = "<memory>") throws {
        func fail(_ m: String) -> SafetensorsError { SafetensorsError(file: name, message: m) }
        guard data.count >= 8 else { throw fail("file is \(data.count) bytes, shorter than the 8-byte header length") }
        let headerLength = data.withUnsafeBytes { raw in
            UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        }
        guard headerLength <= UInt64(Self.maxHeaderBytes) else {
            throw fail("header length \(headerLength) exceeds the \(Self.maxHeaderBytes)-byte limit")
        }
        guard headerLength <= UInt64(data.count - 8) else {
            throw fail("header length \(headerLength) runs past the end of the \(data.count)-byte file")
        }
        let start = data.startIndex
        let headerBytes = data[(start + 8)..<(start + 8 + Int(headerLength))]
        guard let headerText = String(data: headerBytes, encoding: .utf8) else { throw fail("header is not valid UTF-8") }
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: Data(headerText.utf8)) } catch {
            throw fail("header is not well-formed JSON: \(error.localizedDescription)")
        }
        guard let object = json as? [String: Any] else { throw fail("header is not a JSON object") }
        // JSON objects with a repeated key parse silently (the last one wins); the format has one entry per name.
        if let duplicate = Self.firstRepeatedTopLevelKey(Array(headerBytes)) { throw fail("header names tensor '\(duplicate)' more than once") }

        var metadata: [String: String] = [:]
        var entries: [String: Entry] = [:]
        let dataLength = data.count - 8 - Int(headerLength)
        for (key, value) in object {
            if key == "__metadata__" {
                guard let m = value as? [String: Any] else { throw fail("__metadata__ is not an object") }
                for (mk, mv) in m {
                    guard let s = mv as? String else { throw fail("__metadata__[\(mk)] is not a string") }
                    metadata[mk] = s
                }
                continue
            }
            guard let e = value as? [String: Any] else { throw fail("tensor '\(key)': entry is not an object") }
            guard let dt = e["dtype"] as? String else { throw fail("tensor '\(key)': missing dtype") }
            guard let dtype = SafetensorsDType(rawValue: dt) else {
                throw fail("tensor '\(key)': dtype \(dt) is not supported (F32, F16, BF16)")
            }
            guard let shapeAny = e["shape"] as? [Any] else { throw fail("tensor '\(key)': missing shape") }
            var shape: [Int] = []
            for s in shapeAny {
                guard let n = Self.integer(s), n >= 0 else { throw fail("tensor '\(key)': shape \(shapeAny) is not a list of non-negative integers") }
                shape.append(n)
            }
            guard let offsets = e["data_offsets"] as? [Any], offsets.count == 2,
                  let begin = Self.integer(offsets[0]), let end = Self.integer(offsets[1])
            else { throw fail("tensor '\(key)': data_offsets must be two integers") }
            guard begin >= 0, begin <= end, end <= dataLength else {
                throw fail("tensor '\(key)': byte range [\(begin), \(end)) is outside the \(dataLength)-byte data section")
            }
            var elements = 1
            for n in shape {
                let (product, overflow) = elements.multipliedReportingOverflow(by: n)
                guard !overflow else { throw fail("tensor '\(key)': shape \(shape) overflows") }
                elements = product
            }
            let (bytes, overflow) = elements.multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow else { throw fail("tensor '\(key)': \(dtype.rawValue) \(shape) is too large to address") }
            guard bytes == end - begin else {
                throw fail("tensor '\(key)': \(dtype.rawValue) \(shape) needs \(bytes) bytes but its range holds \(end - begin)")
            }
            entries[key] = Entry(dtype: dtype, shape: shape, range: begin..<end)
        }
        // The ranges must tile the data section exactly.
        var cursor = 0
        for (key, e) in entries.sorted(by: { ($0.value.range.lowerBound, $0.value.range.upperBound) < ($1.value.range.lowerBound, $1.value.range.upperBound) }) {
            guard e.range.lowerBound == cursor else {
                throw fail(e.range.lowerBound > cursor
                    ? "bytes [\(cursor), \(e.range.lowerBound)) before tensor '\(key)' belong to no tensor"
                    : "tensor '\(key)' overlaps the previous tensor at byte \(e.range.lowerBound)")
            }
            cursor = e.range.upperBound
        }
        guard cursor == dataLength else {
            throw fail("data section has \(dataLength - cursor) trailing bytes that belong to no tensor")
        }
        self.name = name
        self.metadata = metadata
        self.entries = entries
        self.bytes = data
        self.dataStart = 8 + Int(headerLength)
    }

    private static func integer(_ any: Any) -> Int? {
        if let i = any as? Int { return i }
        return nil
    }

    /// The tensor `name` as Float32 (F16 and BF16 are widened exactly).
    public func tensor(_ key: String) throws -> Tensor {
        guard let e = entries[key] else { throw SafetensorsError(file: name, message: "no tensor named '\(key)'") }
        let count = e.shape.reduce(1, *)
        var values = [Float](repeating: 0, count: count)
        bytes.withUnsafeBytes { raw in
            let base = raw.baseAddress! + dataStart + e.range.lowerBound
            values.withUnsafeMutableBufferPointer { out in
                switch e.dtype {
                case .f32:
                    for i in 0..<count {
                        out[i] = Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                    }
                case .f16:
                    for i in 0..<count {
                        out[i] = Float(Float16(bitPattern: UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))))
                    }
                case .bf16:
                    for i in 0..<count {
                        let b = UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                        out[i] = Float(bitPattern: UInt32(b) << 16)
                    }
                }
            }
        }
        return Tensor(values, shape: e.shape)
    }

    /// Every tensor, by name.
    public func allTensors() throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for k in entries.keys { out[k] = try tensor(k) }
        return out
    }
}

/// Writes safetensors files (F32).
public enum SafetensorsWriter {
    /// The bytes of a safetensors file holding `tensors` as F32 (sorted by name) and string `metadata`.
    public static func encode(_ tensors: [String: Tensor], metadata: [String: String] = [:]) throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let names = tensors.keys.sorted()
        for n in names {
            let t = tensors[n]!
            header[n] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + 4 * t.count]] as [String: Any]
            offset += 4 * t.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad with spaces so the data section starts 8-byte aligned.
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var out = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for n in names {
            let t = tensors[n]!
            let le = t.scalars.map { $0.bitPattern.littleEndian }
            le.withUnsafeBytes { out.append(contentsOf: $0) }
        }
        return out
    }

    /// Writes a file atomically: to a temporary file beside `url`, flushed to disk, then renamed into place.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to url: URL) throws {
        let data = try encode(tensors, metadata: metadata)
        try AtomicFile.write(data, to: url)
    }
}

extension SafetensorsError: AlignerError {
    public var subject: FailureSubject { .file(file) }
    public var kind: FailureKind { .badData }
}
