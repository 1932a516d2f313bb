import Foundation
import XCTest

@testable import AlignerFiles

final class AtomicFileTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("alignerkit-files-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: dir)
    }

    func contents() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() }

    func testWritesAndReplacesWithoutLeavingTemporaries() throws {
        let url = dir.appendingPathComponent("a.json")
        try AtomicFile.write(Data("first".utf8), to: url)
        try AtomicFile.write(Data("second, longer".utf8), to: url)
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), "second, longer")
        try AtomicFile.write(to: dir.appendingPathComponent("b.bin")) { handle in
            for part in ["x", "y", "z"] { try handle.write(contentsOf: Data(part.utf8)) }
        }
        XCTAssertEqual(try String(contentsOf: dir.appendingPathComponent("b.bin"), encoding: .utf8), "xyz")
        XCTAssertEqual(try contents(), ["a.json", "b.bin"])
        XCTAssertEqual(AtomicFile.temporaryURL(for: url).lastPathComponent, ".a.json.tmp-\(getpid())")
    }

    func testAFullDiskNamesTheFileAndTheReason() {
        // /dev/full is a character device, not a folder: the temporary file cannot be created beside it.
        XCTAssertThrowsError(try AtomicFile.write(Data("x".utf8), to: URL(fileURLWithPath: "/dev/full/x"))) { error in
            let e = error as? FileError
            XCTAssertEqual(e?.file, "/dev/full/x")
            XCTAssertEqual(e?.message, "cannot write: it lies under /dev/full, which is a device or other special file, not a folder")
        }
    }

    func testAFailedRenameKeepsTheOldContentAndRemovesTheTemporary() throws {
        // A non-empty folder in the final place: rename(2) refuses to replace it.
        let target = dir.appendingPathComponent("taken")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: target.appendingPathComponent("inside"))
        XCTAssertThrowsError(try AtomicFile.write(Data("new".utf8), to: target)) { error in
            XCTAssertEqual("\(error)", "\(target.path): cannot write: it is a folder, not a file")
        }
        XCTAssertEqual(try contents(), ["taken"])
        XCTAssertEqual(try String(contentsOf: target.appendingPathComponent("inside"), encoding: .utf8), "keep")
    }

    func testAnErrorWhileWritingLeavesTheOldFile() throws {
        struct Stop: Error {}
        let url = dir.appendingPathComponent("model.gguf")
        try AtomicFile.write(Data("old".utf8), to: url)
        XCTAssertThrowsError(try AtomicFile.write(to: url) { handle in
            try handle.write(contentsOf: Data("half".utf8))
            throw Stop()
        }) { XCTAssertTrue($0 is Stop, "the body's own error is passed on: \($0)") }
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), "old")
        XCTAssertEqual(try contents(), ["model.gguf"])
    }

    func testAFolderIsReplacedWhole() throws {
        let fm = FileManager.default
        let target = dir.appendingPathComponent("export"), staging = dir.appendingPathComponent(".export.export-1")
        try AtomicFile.replaceFolder(target, with: { try fm.createDirectory(at: staging, withIntermediateDirectories: true); return staging }())
        XCTAssertEqual(try contents(), ["export"], "a folder that did not exist is moved in")
        try Data("old".utf8).write(to: target.appendingPathComponent("stale.json"))
        try fm.createDirectory(at: staging, withIntermediateDirectories: true)
        try Data("new".utf8).write(to: staging.appendingPathComponent("config.json"))
        try AtomicFile.replaceFolder(target, with: staging)
        XCTAssertEqual(try contents(), ["export"], "no staging or old folder is left beside it")
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: target.path), ["config.json"], "nothing of the old folder survives")
    }

    func testStaleTemporariesOfDeadProcessesAreRemoved() throws {
        let fm = FileManager.default
        // PID 999999 is above Linux's default pid_max (4194304 is the ceiling; 999999 is not running in a test VM).
        for name in [".tmp-ckpt-s1-0000002-999999", ".train.jsonl.tmp-999999", ".out.export-999999", ".tmp-ckpt-s1-0000003-\(getpid())", "keep.json"] {
            try fm.createDirectory(at: dir.appendingPathComponent(name), withIntermediateDirectories: true)
        }
        let removed = TemporaryFiles.removeStale(in: dir).sorted()
        XCTAssertEqual(removed, [".out.export-999999", ".tmp-ckpt-s1-0000002-999999", ".train.jsonl.tmp-999999"])
        XCTAssertEqual(TemporaryFiles.removeStale(in: dir, lockHeld: true), [".tmp-ckpt-s1-0000003-\(getpid())"])
        XCTAssertEqual(try contents(), ["keep.json"])
    }
}

final class ChecksumTests: XCTestCase {
    func testCRC32MatchesTheStandardCheckValues() throws {
        // The CRC-32 check value of "123456789" (ISO-HDLC, as zlib and gzip compute it).
        XCTAssertEqual(Checksum.crc32(Data("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(Checksum.crc32(Data()), 0)
        // A file of more than one 1 MiB chunk: bytes i % 251 for 3 MiB + 5 bytes; Python's zlib.crc32 gives 0x454448a1.
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("alignerkit-crc-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        let n = (3 << 20) + 5
        try Data((0..<n).map { UInt8($0 % 251) }).write(to: url)
        let sum = try Checksum.crc32(of: url)
        XCTAssertEqual(sum.bytes, n)
        XCTAssertEqual(sum.crc32, 0x4544_48A1)
        XCTAssertThrowsError(try Checksum.crc32(of: url.appendingPathExtension("missing"))) { XCTAssertTrue("\($0)".contains("cannot open"), "\($0)") }
    }
}
