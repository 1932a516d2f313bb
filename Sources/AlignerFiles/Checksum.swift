import CZlib
import Foundation

/// CRC-32 (zlib's, the checksum of gzip and zip) of bytes and of files: the checksums of checkpoint manifests and of
/// a run's recorded inputs.
public enum Checksum {
    /// CRC-32 of `data`.
    public static func crc32(_ data: Data) -> UInt32 {
        data.withUnsafeBytes { raw in
            UInt32(CZlib.crc32_z(0, raw.bindMemory(to: UInt8.self).baseAddress, raw.count))
        }
    }

    /// Size and CRC-32 of the file at `url`, read in chunks of 1 MiB (bounded memory); `FileError` when it cannot be
    /// opened or read.
    public static func crc32(of url: URL) throws -> (bytes: Int, crc32: UInt32) {
        guard let f = fopen(url.path, "rb") else { throw FileError(file: url.path, message: "cannot open: \(String(cString: strerror(errno)))") }
        defer { fclose(f) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)  // [1 MiB] one chunk of the file
        var crc: UInt = 0, total = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { fread($0.baseAddress!, 1, $0.count, f) }
            if n == 0 { break }
            crc = buffer.withUnsafeBytes { CZlib.crc32_z(crc, $0.bindMemory(to: UInt8.self).baseAddress, n) }
            total += n
        }
        if ferror(f) != 0 { throw FileError(file: url.path, message: "read error: \(String(cString: strerror(errno)))") }
        return (total, UInt32(crc))
    }
}
