import Foundation
import AlignerErrors
import XCTest

@testable import AlignerData

/// The repository's data folder.
let dataDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("data")

/// A fresh temporary folder for a test.
func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("alignerkit-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

final class RecordsTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let path = dir.appendingPathComponent(name).path
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }
    func write(_ name: String, _ text: String) -> String { write(name, Array(text.utf8)) }

    func testReferenceImplementationFileLoadsAsItIs() throws {
        let load = try RecordReader.read(path: dataDirectory.appendingPathComponent("qac/raw/aligner-template-dataset.json").path)
        XCTAssertEqual(load.records.count, 2)
        XCTAssertEqual(load.records[0].question, "Who is the real life character in the Blind Side")
    }

    func testJSONLinesGzipAndCustomFieldNames() throws {
        let lines = [#"{"q": "A?", "a": "x", "c": "y"}"#, "", #"{"q": "B?", "a": "", "c": "z"}"#].joined(separator: "\r\n")
        let plain = write("r.jsonl", lines)
        let fields = FieldNames(question: "q", answer: "a", correction: "c")
        let load = try RecordReader.read(path: plain, fields: fields)
        XCTAssertEqual(load.records, [QACRecord(question: "A?", answer: "x", correction: "y"), QACRecord(question: "B?", answer: "", correction: "z")])
        // The same through gzip, written by our own writer.
        let gz = dir.appendingPathComponent("r.jsonl.gz").path
        try RecordReader.write(load.records, to: gz, fields: fields)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: gz)).prefix(2), Data([0x1F, 0x8B]))
        XCTAssertEqual(try RecordReader.read(path: gz, fields: fields).records, load.records)
    }

    func testDuplicatesAreRemovedAndCounted() throws {
        let r = #"{"question": "Q", "answer": "A", "correction": "C"}"#
        let load = try RecordReader.read(path: write("d.jsonl", [r, r, #"{"question": "Q", "answer": "A2", "correction": "C"}"#, r].joined(separator: "\n")))
        XCTAssertEqual(load.records.count, 2)
        XCTAssertEqual(load.duplicates, 2)
        XCTAssertEqual(load.read, 4)
    }

    func testEveryBadInputNamesFileLineAndField() throws {
        let good = #"{"question": "Q", "answer": "A", "correction": "C"}"#
        let cases: [(String, [UInt8], String)] = [
            ("json", Array((good + "\n{\"question\": \"Q\",").utf8), ":2: invalid JSON"),
            ("utf8", Array((good + "\n").utf8) + [0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x7D], ":2: invalid UTF-8"),
            ("missing", Array((good + "\n" + #"{"question": "Q", "correction": "C"}"#).utf8), ":2: field 'answer': missing"),
            ("type", Array(#"{"question": "Q", "answer": 3, "correction": "C"}"#.utf8), ":1: field 'answer': is a number or boolean, not a string"),
            ("null", Array(#"{"question": "Q", "answer": "A", "correction": null}"#.utf8), ":1: field 'correction': is null, not a string"),
            ("emptyq", Array(#"{"question": "  ", "answer": "A", "correction": "C"}"#.utf8), ":1: field 'question': is empty"),
            ("emptyc", Array(#"{"question": "Q", "answer": "A", "correction": ""}"#.utf8), ":1: field 'correction': is empty"),
            ("array", Array("[1, 2]\n".utf8), "[record 0]: not a JSON object"),
            ("notobject", Array("[1, 2]\n\"x\"".utf8), "invalid JSON"),
        ]
        for (name, bytes, expected) in cases {
            let path = write("\(name).jsonl", bytes)
            XCTAssertThrowsError(try RecordReader.read(path: path), name) { e in
                let text = "\(e)"
                XCTAssertTrue(text.hasPrefix(path), "\(name): \(text)")
                XCTAssertTrue(text.contains(expected), "\(name): '\(text)' lacks '\(expected)'")
            }
        }
        // A JSON array names the record index.
        let array = write("a.json", "[" + good + ", {\"question\": \"Q\", \"answer\": \"A\"}]")
        XCTAssertThrowsError(try RecordReader.read(path: array)) { e in
            XCTAssertEqual("\(e)", "\(array) [record 1]: field 'correction': missing")
            XCTAssertEqual((e as? AlignerError)?.kind, .badData)
            XCTAssertEqual((e as? AlignerError)?.subject, .file(array))
        }
        XCTAssertThrowsError(try RecordReader.read(path: dir.appendingPathComponent("nope.jsonl").path)) {
            XCTAssertTrue("\($0)".hasSuffix("no such file"))
            XCTAssertEqual(($0 as? AlignerError)?.kind, .missing)
        }
        // A truncated gzip file is an error, not silent data loss.
        let gz = dir.appendingPathComponent("t.jsonl.gz").path
        try RecordReader.write((0..<2000).map { QACRecord(question: "Q\($0)", answer: "A", correction: "C") }, to: gz)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: gz))
        let cut = write("cut.jsonl.gz", Array(bytes.prefix(bytes.count / 2)))
        XCTAssertThrowsError(try RecordReader.read(path: cut))
    }

    func testSkipPolicyCountsReasons() throws {
        let lines = [
            #"{"question": "Q1", "answer": "A", "correction": "C"}"#, "{broken", #"{"question": "Q2", "answer": "A"}"#,
            #"{"question": "", "answer": "A", "correction": "C"}"#, #"{"question": "Q3", "answer": "A", "correction": "C"}"#,
            "{also broken",
        ]
        let load = try RecordReader.read(path: write("s.jsonl", lines.joined(separator: "\n")), policy: .skip)
        XCTAssertEqual(load.records.map(\.question), ["Q1", "Q3"])
        XCTAssertEqual(load.skipped, ["invalid JSON": 2, "field 'correction' missing": 1, "field 'question' is empty": 1])
        XCTAssertEqual(load.examples.first?.line, 2)
    }

    func testStreamingReadsLongFilesLineByLine() throws {
        // More than one read chunk (1 MiB), with a line straddling the chunk boundary.
        let path = dir.appendingPathComponent("big.jsonl").path
        let long = String(repeating: "x", count: 700_000)
        try RecordReader.write([QACRecord(question: "Q0", answer: long, correction: "C"),
                                QACRecord(question: "Q1", answer: long, correction: "C"),
                                QACRecord(question: "Q2", answer: "short", correction: "C")], to: path)
        let load = try RecordReader.read(path: path)
        XCTAssertEqual(load.records.map(\.question), ["Q0", "Q1", "Q2"])
        XCTAssertEqual(load.records[1].answer.count, 700_000)
    }
}

final class ConversionTests: XCTestCase {
    func testHHRLHFSplitsAtTheLastAssistantTurn() {
        let chosen = "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Rob a bank?\n\nAssistant: I can't help with that."
        let rejected = "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Rob a bank?\n\nAssistant: Sure, first..."
        let r = try! PreferenceConversion.hhRLHF(chosen: chosen, rejected: rejected).get()
        XCTAssertEqual(r.question, "Human: Hi\n\nAssistant: Hello\n\nHuman: Rob a bank?")
        XCTAssertEqual(r.answer, "Sure, first...")
        XCTAssertEqual(r.correction, "I can't help with that.")
        XCTAssertThrowsError(try PreferenceConversion.hhRLHF(chosen: chosen, rejected: "\n\nHuman: Other\n\nAssistant: x").get())
        XCTAssertThrowsError(try PreferenceConversion.hhRLHF(chosen: "no turns", rejected: "none").get())
    }

    func testBundledPreferenceFilesConvertWithCounts() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let hh = try PreferenceConversion.convert(
            input: dataDirectory.appendingPathComponent("qac/raw/hh-rlhf-harmless-base-test.jsonl.gz").path,
            output: dir.appendingPathComponent("hh.jsonl").path, format: .hhRLHF, policy: .skip)
        print("hh-rlhf harmless-base test: \(hh.summary)")
        XCTAssertEqual(hh.skippedRecords.count, 9)
        XCTAssertEqual(hh.skippedRecords.first, "line 87: field 'correction' is empty")
        // Without .skip the first of them stops the conversion, naming its line, and nothing is written.
        XCTAssertThrowsError(try PreferenceConversion.convert(
            input: dataDirectory.appendingPathComponent("qac/raw/hh-rlhf-harmless-base-test.jsonl.gz").path,
            output: dir.appendingPathComponent("strict.jsonl").path, format: .hhRLHF)) { e in
            XCTAssertTrue("\(e)".hasSuffix("hh-rlhf-harmless-base-test.jsonl.gz:87: field 'correction': is empty (pass --skip-bad to skip such records and list them)"), "\(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("strict.jsonl").path))
        XCTAssertEqual(hh.read, 2312)
        XCTAssertEqual(hh.written + hh.duplicates + hh.skippedTotal, hh.read)
        XCTAssertEqual(HHCounts.written, hh.written)
        XCTAssertEqual(HHCounts.skipped, hh.skipped)
        // The bundled converted corpus is exactly this conversion.
        let bundled = try RecordReader.read(path: dataDirectory.appendingPathComponent("qac/hh-rlhf-harmless-base-test.qac.jsonl.gz").path)
        XCTAssertEqual(bundled.records, try RecordReader.read(path: dir.appendingPathComponent("hh.jsonl").path).records)

        let pku = try PreferenceConversion.convert(
            input: dataDirectory.appendingPathComponent("qac/raw/pku_saferlhf_realign_dpo_5k.json.gz").path,
            output: dir.appendingPathComponent("pku.jsonl").path, format: .pairwise, policy: .skip)
        print("PKU-SafeRLHF realign 5k: \(pku.summary)")
        XCTAssertEqual(pku.read, 5135)
        XCTAssertEqual(pku.written + pku.duplicates + pku.skippedTotal, pku.read)
        XCTAssertEqual(PKUCounts.written, pku.written)
        XCTAssertEqual(PKUCounts.duplicates, pku.duplicates)
        let first = try RecordReader.read(path: dir.appendingPathComponent("pku.jsonl").path).records[0]
        XCTAssertTrue(first.correction.hasPrefix("It's not advisable to try and get back at your bully"))
    }

    func testPairwiseWithBetterResponseIdField() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("p.jsonl").path
        try [#"{"prompt": "P1", "response_0": "bad", "response_1": "good", "safer_response_id": 1}"#,
             #"{"prompt": "P2", "response_0": "good", "response_1": "bad", "safer_response_id": 0}"#,
             #"{"prompt": "P3", "response_0": "a", "response_1": "b", "safer_response_id": 2}"#,
             #"{"prompt": "P4", "response_0": "", "response_1": "b", "safer_response_id": 0}"#]
            .joined(separator: "\n").write(toFile: input, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("o.jsonl").path
        let report = try PreferenceConversion.convert(input: input, output: out, format: .pairwise, betterField: "safer_response_id", policy: .skip)
        XCTAssertEqual(report.written, 2)
        XCTAssertEqual(report.skipped, ["field 'safer_response_id' is not 0 or 1": 1, "field 'correction' is empty": 1])
        XCTAssertEqual(report.skippedRecords, ["line 3: field 'safer_response_id' is not 0 or 1", "line 4: field 'correction' is empty"])
        let records = try RecordReader.read(path: out).records
        XCTAssertEqual(records.map(\.correction), ["good", "good"])
        XCTAssertEqual(records.map(\.answer), ["bad", "bad"])
    }
}

/// Counts the converters produce on the bundled files (also quoted in data/README.md).
enum HHCounts {
    static let written = 2303
    static let skipped = ["field 'correction' is empty": 4, "dialogue prefixes differ": 5]
}
enum PKUCounts {
    static let written = 3590
    static let duplicates = 1545
}
