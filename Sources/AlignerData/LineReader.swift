import CZlib
import Foundation

/// Reads a file line by line in bounded memory, transparently decompressing gzip (zlib's gzread reads plain files
/// as they are). Lines are raw bytes without the trailing newline (a CR before it is dropped too).
public final class LineReader {
    public let path: String
    private let file: gzFile
    private var buffer: [UInt8] = []
    private var start = 0
    private var eof = false
    private let chunk = 1 << 20

    public init(path: String) throws {
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else { throw DataError(file: path, message: "no such file") }
        guard let f = gzopen(path, "rb") else { throw DataError(file: path, message: "cannot open: \(String(cString: strerror(errno)))") }
        file = f
        gzbuffer(f, 1 << 17)
    }

    deinit { gzclose(file) }

    /// The next line, or nil at the end of the file.
    public func next() throws -> ArraySlice<UInt8>? {
        while true {
            if let nl = buffer[start...].firstIndex(of: 0x0A) {
                var line = buffer[start..<nl]
                start = nl + 1
                if line.last == 0x0D { line = line.dropLast() }
                return line
            }
            if eof {
                guard start < buffer.count else { return nil }
                var line = buffer[start...]
                start = buffer.count
                if line.last == 0x0D { line = line.dropLast() }
                return line
            }
            // Compact, then read another chunk.
            if start > 0 { buffer.removeFirst(start); start = 0 }
            if try readChunk() == 0 { eof = true }
        }
    }

    /// Appends up to one chunk of (decompressed) bytes to the buffer; returns how many were read (0 at the end).
    private func readChunk() throws -> Int {
        let old = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: chunk))
        let n = buffer.withUnsafeMutableBytes { raw in gzread(file, raw.baseAddress! + old, UInt32(chunk)) }
        if n < 0 {
            var code: Int32 = 0
            let message = String(cString: gzerror(file, &code))
            throw DataError(file: path, message: "read error: \(message) (a truncated or corrupt gzip file?)")
        }
        buffer.removeLast(chunk - Int(n))
        return Int(n)
    }

    /// The whole (decompressed) content.
    public static func readAll(path: String) throws -> Data {
        let reader = try LineReader(path: path)
        while try reader.readChunk() > 0 {}
        return Data(reader.buffer)
    }
}

/// Writes lines to a file, gzip-compressed when the path ends in `.gz`; written to a temporary file and renamed
/// into place on `close()`, so an interrupted write leaves no partial output.
public final class LineWriter {
    public let path: String
    private let tmp: String
    private var plain: FileHandle?
    private var gz: gzFile?
    private var pending = Data()

    public init(path: String) throws {
        self.path = path
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())").path
        if path.hasSuffix(".gz") {
            guard let g = gzopen(tmp, "wb") else { throw DataError(file: path, message: "cannot create") }
            gz = g
        } else {
            guard FileManager.default.createFile(atPath: tmp, contents: nil), let h = FileHandle(forWritingAtPath: tmp) else {
                throw DataError(file: path, message: "cannot create")
            }
            plain = h
        }
    }

    public func write(line: String) throws {
        pending.append(contentsOf: line.utf8)
        pending.append(0x0A)
        if pending.count > 1 << 20 { try flush() }
    }

    private func flush() throws {
        guard !pending.isEmpty else { return }
        if let gz {
            let n = pending.withUnsafeBytes { gzwrite(gz, $0.baseAddress, UInt32($0.count)) }
            if n != Int32(pending.count) { throw DataError(file: path, message: "write failed") }
        } else {
            try plain?.write(contentsOf: pending)
        }
        pending.removeAll(keepingCapacity: true)
    }

    /// Flushes, closes and renames into place.
    public func close() throws {
        try flush()
        if let gz { if gzclose(gz) != Z_OK { throw DataError(file: path, message: "cannot finish gzip stream") } }
        if let plain { try plain.synchronize(); try plain.close() }
        if rename(tmp, path) != 0 { throw DataError(file: path, message: "cannot rename into place") }
    }
}
