import AlignerFiles
import CZlib
import Foundation

/// Reads a file line by line in bounded memory, decompressing gzip when the file starts with gzip's magic bytes.
/// Gzip is read strictly, as `gzip -d` does: every member's CRC-32 and length trailer is checked, further members
/// are read in turn, and a stream that ends early or is followed by anything but another member is an error (zlib's
/// `gzread` treats both as a normal end of file). Lines are raw bytes without the trailing newline (a CR before it
/// is dropped too).
public final class LineReader {
    public let path: String
    private let handle: UnsafeMutablePointer<FILE>
    private var buffer: [UInt8] = []
    private var start = 0
    private var eof = false
    private let chunk = 1 << 20
    /// Gzip state: nil for a plain file.
    private var inflater: GzipInflater?

    public init(path: String) throws {
        self.path = path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw DataError(file: path, message: "no such file", kind: .missing) }
        guard !isDir.boolValue else { throw DataError(file: path, message: "is a folder, not a file", kind: .usage) }
        try FileSystemFailure.checkInputFile(path)  // (a device or pipe would never end)
        guard let f = fopen(path, "rb") else { throw DataError(file: path, message: "cannot open: \(String(cString: strerror(errno)))") }
        handle = f
        var magic = [UInt8](repeating: 0, count: 2)
        let n = fread(&magic, 1, 2, f)
        rewind(f)
        if n == 2 && magic == [0x1F, 0x8B] { inflater = try GzipInflater(path: path) }
    }

    deinit { fclose(handle) }

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
        if let inflater { return try inflater.read(from: handle, appendingTo: &buffer, max: chunk) }
        let old = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: chunk))
        let n = buffer.withUnsafeMutableBytes { raw in fread(raw.baseAddress! + old, 1, chunk, handle) }
        buffer.removeLast(chunk - n)
        if n == 0 && ferror(handle) != 0 { throw DataError(file: path, message: "read error: \(String(cString: strerror(errno)))") }
        return n
    }

    /// The whole (decompressed) content.
    public static func readAll(path: String) throws -> Data {
        let reader = try LineReader(path: path)
        while try reader.readChunk() > 0 {}
        return Data(reader.buffer)
    }
}

/// Strict gzip decompression with zlib's `inflate` (RFC 1952 members, one after another).
final class GzipInflater {
    let path: String
    private var stream = z_stream()
    private var input = [UInt8](repeating: 0, count: 1 << 17)
    /// Bytes of `input` not yet given to zlib start at `inputStart` and end at `inputEnd`.
    private var inputStart = 0, inputEnd = 0
    private var fileEnded = false
    /// Between members: the previous one ended, the next has not started.
    private var betweenMembers = false
    private var finished = false
    private var members = 0
    /// Compressed bytes consumed before the current member (for messages).
    private var consumed = 0

    init(path: String) throws {
        self.path = path
        guard inflateInit2_(&stream, 16 + MAX_WBITS, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DataError(file: path, message: "cannot start gzip decompression")
        }
    }

    deinit { inflateEnd(&stream) }

    /// Refills the input buffer when empty; returns false at the end of the file.
    private func fill(_ file: UnsafeMutablePointer<FILE>) throws -> Bool {
        if inputStart < inputEnd { return true }
        if fileEnded { return false }
        let n = input.withUnsafeMutableBytes { fread($0.baseAddress!, 1, $0.count, file) }
        if n == 0 {
            if ferror(file) != 0 { throw DataError(file: path, message: "read error: \(String(cString: strerror(errno)))") }
            fileEnded = true
            return false
        }
        inputStart = 0
        inputEnd = n
        return true
    }

    /// Decompresses up to `max` bytes onto `out`; returns how many (0 once the last member has ended cleanly).
    func read(from file: UnsafeMutablePointer<FILE>, appendingTo out: inout [UInt8], max: Int) throws -> Int {
        if finished { return 0 }
        let old = out.count
        out.append(contentsOf: repeatElement(0, count: max))
        var produced = 0
        defer { out.removeLast(max - produced) }
        while produced < max {
            if betweenMembers {
                // Another member, or the end of the file; anything else is an error (as gzip reports it).
                guard try fill(file) else { finished = true; return produced }
                guard input[inputStart] == 0x1F else {
                    throw DataError(file: path, message: "unexpected data after the end of gzip member \(members) (byte \(consumed)): trailing garbage")
                }
                guard inflateReset(&stream) == Z_OK else { throw DataError(file: path, message: "cannot restart gzip decompression") }
                betweenMembers = false
            }
            if inputStart == inputEnd, !(try fill(file)) {
                throw DataError(file: path, message: "the gzip stream ends early (truncated file: member \(members + 1) has no end or no CRC/length trailer)")
            }
            let available = inputEnd - inputStart
            let status: Int32 = input.withUnsafeMutableBytes { inRaw in
                out.withUnsafeMutableBytes { outRaw in
                    stream.next_in = inRaw.baseAddress!.assumingMemoryBound(to: Bytef.self) + inputStart
                    stream.avail_in = UInt32(available)
                    stream.next_out = outRaw.baseAddress!.assumingMemoryBound(to: Bytef.self) + old + produced
                    stream.avail_out = UInt32(max - produced)
                    return inflate(&stream, Z_NO_FLUSH)
                }
            }
            let usedIn = available - Int(stream.avail_in)
            inputStart += usedIn
            consumed += usedIn
            produced = max - Int(stream.avail_out)
            switch status {
            case Z_OK: continue
            case Z_STREAM_END:
                members += 1
                betweenMembers = true
            case Z_BUF_ERROR:
                // No progress possible: needs more input (loop refills or reports truncation) or more output room.
                if produced == max { return produced }
                continue
            default:
                let message = stream.msg.map { String(cString: $0) } ?? "error \(status)"
                throw DataError(file: path, message: "corrupt gzip data near compressed byte \(consumed): \(message)")
            }
        }
        return produced
    }
}

/// Writes lines to a file, gzip-compressed when the path ends in `.gz`; written to a temporary file and renamed
/// into place on `close()`, so an interrupted write leaves no partial output. A writer dropped without `close()` (an
/// error on the way) removes its temporary file, and temporary files of processes that no longer exist are removed
/// when a new writer starts in the same folder.
public final class LineWriter {
    public let path: String
    private let tmp: String
    private var plain: FileHandle?
    private var gz: gzFile?
    private var pending = Data()
    private var closed = false

    public init(path: String) throws {
        self.path = path
        let url = URL(fileURLWithPath: path)
        try FileSystemFailure.createFolder(url.deletingLastPathComponent().path)
        TemporaryFiles.removeStale(in: url.deletingLastPathComponent(), prefix: AtomicFile.temporaryPrefix(for: url))
        tmp = AtomicFile.temporaryURL(for: url).path
        if path.hasSuffix(".gz") {
            guard let g = gzopen(tmp, "wb") else { throw FileSystemFailure.error(errno: errno, path: path, action: "write") }
            gz = g
        } else {
            guard FileManager.default.createFile(atPath: tmp, contents: nil), let h = FileHandle(forWritingAtPath: tmp) else {
                throw FileSystemFailure.error(errno: errno, path: path, action: "write")
            }
            plain = h
        }
    }

    deinit {
        guard !closed else { return }
        if let gz { gzclose(gz) }
        try? plain?.close()
        unlink(tmp)
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
            if n != Int32(pending.count) {
                let savedErrno = errno
                var code: Int32 = 0
                let zmessage = String(cString: gzerror(gz, &code))
                let message = code == Z_ERRNO ? String(cString: strerror(savedErrno)) : zmessage
                throw code == Z_ERRNO ? FileSystemFailure.error(errno: savedErrno, path: path, action: "write")
                    : DataError(file: path, message: "write failed: \(message)", kind: .io)
            }
        } else {
            do { try plain?.write(contentsOf: pending) } catch {
                throw FileSystemFailure.error(error, path: path, action: "write")
            }
        }
        pending.removeAll(keepingCapacity: true)
    }

    /// Flushes, closes and renames into place.
    public func close() throws {
        try flush()
        closed = true
        var failure: String?
        if let gz, gzclose(gz) != Z_OK { failure = "cannot finish the gzip stream: \(String(cString: strerror(errno)))" }
        if let plain {
            do { try plain.synchronize(); try plain.close() } catch { failure = FileSystemFailure.error(error, path: path, action: "finish writing").message }
        }
        if let failure {
            unlink(tmp)
            throw DataError(file: path, message: failure, kind: .io)
        }
        try AtomicFile.install(URL(fileURLWithPath: tmp), at: URL(fileURLWithPath: path))
    }
}
