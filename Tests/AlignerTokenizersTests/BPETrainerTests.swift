import Foundation
import XCTest

@testable import AlignerTokenizers

final class BPETrainerTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// The 83 multilingual texts of the GPT-2 conformance set, a small but varied corpus.
    static var corpus: [String] {
        let inputs = try! JSONSerialization.jsonObject(with: Data(contentsOf: gpt2Directory.appendingPathComponent("swift-transformers-multilingual-inputs.json"))) as! [[String: Any]]
        return inputs.map { $0["text"] as! String }
    }

    static func trained() throws -> Tokenizer {
        try BPETrainer(vocabSize: 600, specialTokens: ["<pad>", "<s>", "</s>", "<|endoftext|>"], minFrequency: 2).train(corpus)
    }

    func testTrainingIsDeterministicAndRoundTrips() throws {
        let a = try Self.trained(), b = try Self.trained()
        XCTAssertEqual(try a.jsonData(), try b.jsonData())
        XCTAssertEqual(a.vocabularySize, 600)
        XCTAssertEqual(a.id(of: "<pad>"), 0)
        XCTAssertEqual(a.id(of: "</s>"), 2)
        for text in Self.corpus + ["never seen: ꙮ 🦜 \u{0}"] {
            XCTAssertEqual(a.decode(a.encode(text)), text)
        }
        // Merges shorten the corpus well below one token per byte.
        let bytes = Self.corpus.reduce(0) { $0 + $1.utf8.count }
        let tokens = Self.corpus.reduce(0) { $0 + a.encode($1).count }
        XCTAssertLessThan(Double(tokens), 0.6 * Double(bytes))
        let reloaded = try Tokenizer.load(json: a.jsonData())
        XCTAssertEqual(reloaded.encode("Hello <s> world</s>"), a.encode("Hello <s> world</s>"))
        XCTAssertEqual(SpecialTokens.guess(for: a), SpecialTokens(bos: "<s>", eos: "</s>", pad: "<pad>", unk: nil))
    }

    func testMatchesCommittedFixtureAndPythonTokenizers() throws {
        let tok = try Self.trained()
        let url = Self.fixtures.appendingPathComponent("trained-bpe.tokenizer.json")
        if ProcessInfo.processInfo.environment["ALIGNERKIT_RECORD_FIXTURES"] != nil {
            try tok.save(to: url)
            print("recorded \(url.path); now run scripts/fixtures/make_tokenizer_fixtures.py --check-trained \(url.path)")
            return
        }
        // The same corpus and settings give the committed file, byte for byte.
        XCTAssertEqual(try tok.jsonData(), try Data(contentsOf: url))
        // Python `tokenizers` loaded that file and encoded these texts; we must give the same ids.
        let python = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent("trained-bpe-python-ids.json"))) as! [String: Any]
        let cases = python["cases"] as! [[String: Any]]
        XCTAssertEqual(cases.count, 15)
        for c in cases {
            let text = c["text"] as! String
            XCTAssertEqual(tok.encode(text), c["ids"] as! [Int], text)
            XCTAssertEqual(tok.decode(tok.encode(text)), c["decoded"] as! String, text)
        }
    }

    func testRejectsImpossibleSettings() {
        XCTAssertThrowsError(try BPETrainer(vocabSize: 100).train(["a"]))
        XCTAssertThrowsError(try BPETrainer(vocabSize: 300, specialTokens: ["<s>", "<s>"]).train(["a"]))
    }
}
