import Foundation
import TestSupport
import XCTest

@testable import AlignerData

/// Gzip read strictly, and random mutations of JSON, JSON Lines and gzip record files: every mutant is read or
/// refused with `DataError`, never a trap or a hang.
final class ReaderFuzzTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("alignerkit-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// `text` gzip-compressed by LineWriter.
    func gzip(_ lines: [String]) throws -> Data {
        let path = dir.appendingPathComponent("g-\(UUID().uuidString).gz").path
        let w = try LineWriter(path: path)
        for l in lines { try w.write(line: l) }
        try w.close()
        return try Data(contentsOf: URL(fileURLWithPath: path))
    }

    func records(_ n: Int) -> [String] {
        (0..<n).map { #"{"question": "Q\#($0) ü?", "answer": "A\#($0).", "correction": "C\#($0)."}"# }
    }

    func testGzipMustEndProperly() throws {
        let gz = try gzip(records(50))
        let path = dir.appendingPathComponent("r.jsonl.gz").path
        func read(_ data: Data) throws -> Int {
            try data.write(to: URL(fileURLWithPath: path))
            return try RecordReader.read(path: path).records.count
        }
        XCTAssertEqual(try read(gz), 50)
        XCTAssertEqual(try read(gz + gz), 50, "a second member is read (its records are exact duplicates)")
        for (name, data, fragment) in [("truncated", gz.prefix(gz.count / 2), "ends early"), ("no trailer", gz.prefix(gz.count - 8), "ends early"),
                                        ("garbage", gz + Data("junk".utf8), "trailing garbage"), ("zeros", gz + Data(count: 4), "trailing garbage")] {
            XCTAssertThrowsError(try read(Data(name == "" ? Data() : data)), name) { error in
                XCTAssertTrue("\(error)".contains(fragment) && "\(error)".hasPrefix(path), "\(name): \(error)")
            }
        }
        var badCRC = gz
        badCRC[badCRC.count - 6] ^= 0x01
        XCTAssertThrowsError(try read(badCRC)) { XCTAssertTrue("\($0)".contains("incorrect data check"), "\($0)") }
        // A plain file that happens to be named .gz is read as it is.
        XCTAssertEqual(try read(Data((records(3).joined(separator: "\n") + "\n").utf8)), 3)
    }

    func testMutatedRecordFilesAreReadOrRefused() throws {
        let lines = records(6)
        let inputs: [(String, Data)] = [
            ("r.jsonl", Data((lines.joined(separator: "\n") + "\n").utf8)),
            ("r.json", Data(("[" + lines.joined(separator: ",") + "]").utf8)),
            ("r.jsonl.gz", try gzip(lines)),
        ]
        var m = Mutator(seed: 2)
        var refused = 0, read = 0
        for (name, valid) in inputs {
            let path = dir.appendingPathComponent(name).path
            for _ in 0..<400 {
                try Data(m.mutate(Array(valid))).write(to: URL(fileURLWithPath: path))
                for policy in [BadRecordPolicy.fail, .skip] {
                    do { _ = try RecordReader.read(path: path, policy: policy); read += 1 } catch is DataError { refused += 1 }
                }
            }
        }
        XCTAssertGreaterThan(refused, 100)
        XCTAssertGreaterThan(read, 100)
    }
}
