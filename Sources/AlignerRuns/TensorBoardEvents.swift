import AlignerFiles
import Foundation

/// TensorBoard's event files, written directly (no protobuf library): a sequence of TFRecord records, each a
/// little-endian 64-bit length, the masked CRC-32C of those 8 bytes, the data, and the masked CRC-32C of the data; the
/// data is a serialised `tensorflow.Event` protobuf. The first event names the format (`file_version =
/// "brain.Event:2"`); each scalar is an event with `wall_time`, `step` and a `Summary` of one `Value {tag,
/// simple_value}`. Encoded as protobuf 3 does: fields at their default (a zero step or wall time, an empty tag) are
/// left out, except `simple_value`, a member of a oneof, which is always written. Checked byte for byte against a file
/// written by TensorBoard's own writer (`scripts/fixtures/make_tensorboard_fixture.py`).
public enum TensorBoardEvents {
    /// The Castagnoli CRC table (reflected polynomial 0x82F63B78).
    static let table: [UInt32] = (0..<256).map { i in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    /// CRC-32C of `bytes`.
    public static func crc32c<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    /// The CRC TFRecord stores: rotated right by 15 bits plus a constant, so that a CRC of CRCs does not look valid.
    public static func maskedCRC<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        let c = crc32c(bytes)
        return ((c >> 15) | (c << 17)) &+ 0xA282_EAD8
    }

    /// One framed record holding `data`.
    public static func record(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 16)
        let length = littleEndian(UInt64(data.count))
        out += length
        out += littleEndian(maskedCRC(length))
        out += data
        out += littleEndian(maskedCRC(data))
        return out
    }

    /// The first event of every file.
    public static func fileVersionEvent(wallTime: Double) -> [UInt8] {
        var e = wallTimeField(wallTime)
        e += lengthDelimited(field: 3, Array("brain.Event:2".utf8))
        return e
    }

    /// A scalar: `tag` = `value` at `step`.
    public static func scalarEvent(tag: String, value: Float, step: Int64, wallTime: Double) -> [UInt8] {
        var summaryValue: [UInt8] = tag.isEmpty ? [] : lengthDelimited(field: 1, Array(tag.utf8))
        summaryValue += [0x15] + littleEndian(value.bitPattern)  // simple_value (field 2, 32-bit)
        let summary = lengthDelimited(field: 1, summaryValue)  // Summary.value (repeated, one here)
        var e = wallTimeField(wallTime)
        if step != 0 { e += [0x10] + varint(UInt64(bitPattern: step)) }  // step (field 2, varint)
        e += lengthDelimited(field: 5, summary)  // summary (field 5)
        return e
    }

    static func wallTimeField(_ wallTime: Double) -> [UInt8] {
        wallTime == 0 ? [] : [0x09] + littleEndian(wallTime.bitPattern)  // wall_time (field 1, 64-bit)
    }

    static func lengthDelimited(field: UInt8, _ bytes: [UInt8]) -> [UInt8] {
        [field << 3 | 2] + varint(UInt64(bytes.count)) + bytes
    }

    static func varint(_ value: UInt64) -> [UInt8] {
        var v = value, out: [UInt8] = []
        repeat {
            let low = UInt8(v & 0x7F)
            v >>= 7
            out.append(v == 0 ? low : low | 0x80)
        } while v != 0
        return out
    }

    static func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }
}

/// Appends TensorBoard events to one file in a folder (`events.out.tfevents.<time>.<host>.<pid>.aligner`), the form
/// `tensorboard --logdir` reads while the file grows. Each `scalar` is written through at once (a reader sees it; a
/// killed process loses nothing already written); a record cut short by a crash is ignored by TensorBoard's reader.
public final class TensorBoardWriter {
    public let url: URL
    private let handle: FileHandle

    /// Creates the folder if needed and starts a new event file in it with the file-version event; `suffix` ends the
    /// file's name (TensorBoard reads every event file of a folder as one run).
    public init(folder: URL, suffix: String = "aligner", wallTime: Double = Date().timeIntervalSince1970) throws {
        try FileSystemFailure.createFolder(folder.path)
        let host = ProcessInfo.processInfo.hostName.replacingOccurrences(of: "/", with: "_")
        url = folder.appendingPathComponent("events.out.tfevents.\(Int(wallTime)).\(host).\(getpid()).\(suffix)")
        guard FileManager.default.createFile(atPath: url.path, contents: nil), let h = try? FileHandle(forWritingTo: url) else {
            throw FileSystemFailure.error(errno: errno, path: url.path, action: "write")
        }
        handle = h
        try write(TensorBoardEvents.fileVersionEvent(wallTime: wallTime))
    }

    deinit { try? handle.close() }

    /// The event files in `folder`: those whose names end with `.suffix`, or every one with nil.
    public static func eventFiles(in folder: URL, suffix: String? = nil) -> [URL] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [])
            .filter { name in name.hasPrefix("events.out.tfevents.") && (suffix.map { name.hasSuffix("." + $0) } ?? true) }
            .map { folder.appendingPathComponent($0) }
    }

    /// Removes the event files `eventFiles` lists (events about to be written afresh).
    public static func removeEvents(in folder: URL, suffix: String? = nil) {
        for url in eventFiles(in: folder, suffix: suffix) { try? FileManager.default.removeItem(at: url) }
    }

    /// Writes the scalar `tag` = `value` at `step`.
    public func scalar(_ tag: String, _ value: Double, step: Int, wallTime: Double = Date().timeIntervalSince1970) throws {
        try write(TensorBoardEvents.scalarEvent(tag: tag, value: Float(value), step: Int64(step), wallTime: wallTime))
    }

    private func write(_ event: [UInt8]) throws {
        do { try handle.write(contentsOf: TensorBoardEvents.record(event)) } catch {
            throw FileSystemFailure.error(error, path: url.path, action: "write")
        }
    }
}
