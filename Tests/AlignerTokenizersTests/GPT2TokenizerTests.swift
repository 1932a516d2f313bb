import Foundation
import XCTest

@testable import AlignerTokenizers

/// Files under data/tokenizers/gpt2 (copied there with their licences).
let gpt2Directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("data/tokenizers/gpt2")

final class GPT2TokenizerTests: XCTestCase {
    struct Case { let id: String; let text: String; let ids: [Int]; let tokens: [String]; let decoded: String }

    static let cases: [Case] = {
        let inputs = try! JSONSerialization.jsonObject(with: Data(contentsOf: gpt2Directory.appendingPathComponent("swift-transformers-multilingual-inputs.json"))) as! [[String: Any]]
        let baseline = try! JSONSerialization.jsonObject(with: Data(contentsOf: gpt2Directory.appendingPathComponent("swift-transformers-gpt2-multilingual-baseline.json"))) as! [String: Any]
        let texts = Dictionary(uniqueKeysWithValues: inputs.map { ($0["id"] as! String, $0["text"] as! String) })
        return (baseline["entries"] as! [[String: Any]]).map { e in
            let id = e["id"] as! String
            return Case(id: id, text: texts[id]!, ids: e["input_ids"] as! [Int], tokens: e["tokens"] as! [String],
                        decoded: e["decoded_with_special"] as! String)
        }
    }()

    static let hf = try! Tokenizer.load(from: gpt2Directory.appendingPathComponent("hf-gpt2-tokenizer.json"))

    func testAll83BaselineCasesFromTokenizerJSON() {
        XCTAssertEqual(Self.cases.count, 83)
        var failures = 0
        for c in Self.cases {
            let ids = Self.hf.encode(c.text)
            if ids != c.ids { failures += 1; XCTFail("\(c.id): ids \(ids) expected \(c.ids)"); continue }
            XCTAssertEqual(ids.map { Self.hf.token(of: $0)! }, c.tokens, c.id)
            XCTAssertEqual(Self.hf.decode(ids), c.decoded, c.id)
        }
        XCTAssertEqual(failures, 0)
    }

    func testOpenAIFilesGiveTheSameIds() throws {
        let t = try Tokenizer.gpt2(encoderJSON: gpt2Directory.appendingPathComponent("gpt2-encoder.json"),
                                   vocabBPE: gpt2Directory.appendingPathComponent("gpt2-vocab.bpe"))
        for c in Self.cases { XCTAssertEqual(t.encode(c.text), c.ids, c.id) }
        XCTAssertEqual(t.vocabularySize, 50257)
    }

    func testSpecialTokensAreNeverSplit() {
        let ids = Self.hf.encode("Hello<|endoftext|> world<|endoftext|>")
        XCTAssertEqual(ids.filter { $0 == 50256 }.count, 2)
        XCTAssertEqual(Self.hf.decode(ids), "Hello<|endoftext|> world<|endoftext|>")
        XCTAssertEqual(Self.hf.decode(ids, skipSpecialTokens: true), "Hello world")
        XCTAssertTrue(Self.hf.isSpecial(50256))
    }

    func testSplitMatchesTheGPT2Pattern() {
        let pieces = GPT2Split.split("I'm  here:\n\n  x's 3.14\tend  ").map(String.init)
        XCTAssertEqual(pieces, ["I", "'m", " ", " here", ":", "\n\n ", " x", "'s", " 3", ".", "14", "\t", "end", "  "])
    }

    func testByteLevelAlphabet() {
        XCTAssertEqual(ByteLevel.byteToChar[32], "Ġ")
        XCTAssertEqual(ByteLevel.byteToChar[65], "A")
        XCTAssertEqual(Set(ByteLevel.byteToChar).count, 256)
        let bytes: [UInt8] = Array(0...255)
        XCTAssertEqual(ByteLevel.decode(ByteLevel.encode(bytes)), bytes)
    }
}
