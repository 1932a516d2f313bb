import AlignerErrors
import Foundation
import XCTest

@testable import AlignerFiles

/// The one mapping of file-system failures to plain words (`FileSystemFailure`), the output guard (`OutputPaths`) and
/// the UTF-8 rule (`UTF8Text`), each case against the file system itself.
final class FileSystemErrorsTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("fs-errors-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func testEachErrnoHasPlainWordsAndAKind() {
        let cases: [(Int32, String, FailureKind)] = [
            (ENOENT, "a folder on the way does not exist and cannot be made there", .io), (EISDIR, "it is a folder, not a file", .io),
            (EROFS, "the file system is read-only", .io), (ENOSPC, "no space left on the device", .io),
            (EDQUOT, "the disk quota is used up", .io), (EACCES, "permission denied", .io), (EPERM, "permission denied", .io),
            (ENAMETOOLONG, "the name is too long", .io),
        ]
        for (code, words, kind) in cases {
            let e = FileSystemFailure.error(errno: code, path: dir.appendingPathComponent("x").path, action: "write")
            XCTAssertEqual(e.message, "cannot write: \(words)", "errno \(code)")
            XCTAssertEqual(e.kind, kind, "errno \(code)")
        }
        // Reading what does not exist is a missing input (66), not an I/O failure.
        let read = FileSystemFailure.error(errno: ENOENT, path: "/x", action: "read")
        XCTAssertEqual(read.message, "cannot read: no such file or folder")
        XCTAssertEqual(read.kind, .missing)
    }

    func testFoundationErrorsAreDiagnosedFromTheFileSystem() throws {
        let file = dir.appendingPathComponent("afile")
        try "x".write(to: file, atomically: true, encoding: .utf8)
        // What Foundation reports as Code=516 "file exists" (the path lies under a regular file).
        let under = file.appendingPathComponent("a/b").path
        XCTAssertThrowsError(try FileSystemFailure.createFolder(under)) { e in
            let f = e as? FileError
            XCTAssertEqual(f?.file, under)
            XCTAssertEqual(f?.message, "cannot create the folder: it lies under \(file.path), which is a file, not a folder")
            XCTAssertEqual(f?.kind, .io)
        }
        // A Foundation error that reached the command line: its path and plain words.
        do {
            try Data("y".utf8).write(to: URL(fileURLWithPath: under))
            XCTFail("wrote under a file")
        } catch {
            let plain = try XCTUnwrap(FileSystemFailure.plain(error))
            XCTAssertTrue(plain.message.contains("which is a file, not a folder"), plain.description)
            XCTAssertFalse(plain.description.contains("Error Domain"), plain.description)
        }
        XCTAssertNil(FileSystemFailure.plain(FileError(file: "f", message: "m")))
        // Reading what does not exist is `.missing`.
        do {
            _ = try Data(contentsOf: dir.appendingPathComponent("absent"))
        } catch {
            let e = FileSystemFailure.error(error, path: dir.appendingPathComponent("absent").path, action: "read")
            XCTAssertEqual(e.kind, .missing)
            XCTAssertEqual(e.message, "cannot read: no such file or folder")
        }
    }

    func testOutputsThatOverlapInputsAreRefused() throws {
        let input = dir.appendingPathComponent("in")
        try FileManager.default.createDirectory(at: input.appendingPathComponent("sub"), withIntermediateDirectories: true)
        let data = input.appendingPathComponent("data.jsonl")
        try "{}\n".write(to: data, atomically: true, encoding: .utf8)
        func refused(_ output: String, folder: Bool = false, saying needle: String, kind: FailureKind = .usage) {
            XCTAssertThrowsError(try OutputPaths.check(output, folder: folder, inputs: [input.path, data.path])) { e in
                XCTAssertTrue("\(e)".contains(needle), "\(output): \(e)")
                XCTAssertEqual((e as? FileError)?.kind, kind, output)
            }
        }
        refused(data.path, saying: "the output is the input \(data.path)")
        refused(input.path + "/sub/../data.jsonl", saying: "the output is the input")
        refused(input.appendingPathComponent("new.jsonl").path, saying: "lies inside the input folder \(input.path)")
        refused(dir.path, folder: true, saying: "contains the input")
        let link = dir.appendingPathComponent("link")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: input)
        refused(link.appendingPathComponent("x.jsonl").path, saying: "lies inside the input folder")
        // Beside the input, with a name that starts like it: allowed.
        XCTAssertNoThrow(try OutputPaths.check(dir.appendingPathComponent("in-export").path, folder: true, inputs: [input.path]))
        XCTAssertNoThrow(try OutputPaths.check(dir.appendingPathComponent("new/deeper/out.jsonl").path, folder: false, inputs: [data.path]))
        // Nothing may be in the way: a file above, a name no file system holds, a pipe that a rename would replace.
        refused(data.appendingPathComponent("x").path, saying: "which is a file, not a folder", kind: .io)
        refused(dir.appendingPathComponent(String(repeating: "n", count: 300)).path, saying: "300 bytes long", kind: .io)
        let fifo = dir.appendingPathComponent("fifo")
        XCTAssertEqual(mkfifo(fifo.path, 0o644), 0)
        refused(fifo.path, saying: "it is a device or other special file, not a regular file", kind: .io)
    }

    func testInvalidUTF8IsRefusedWithItsOffsetAndLine() {
        XCTAssertEqual(try UTF8Text.decode(Data("héllo\n✓".utf8), source: "s"), "héllo\n✓")
        XCTAssertThrowsError(try UTF8Text.decode(Data([0x61, 0x0A, 0x62, 0xC3, 0x28]), source: "corpus.txt")) { e in
            XCTAssertEqual("\(e)", "corpus.txt: not valid UTF-8: first bad byte at offset 3 (line 2)")
            XCTAssertEqual((e as? FileError)?.kind, .badData)
        }
        XCTAssertEqual(UTF8Text.firstInvalidOffset(Data([0xE2, 0x9C, 0x93, 0xFF])), 3)
        XCTAssertEqual(UTF8Text.firstInvalidOffset(Data([0xE2, 0x9C])), 0, "a sequence cut short is bad from its first byte")
    }
}
