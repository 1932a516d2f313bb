import Foundation
import XCTest

@testable import AlignerTokenizers

/// Tokenizers in the styles of the model families (Llama 3, Qwen2, Falcon, SmolLM, GPT with an end-of-word suffix,
/// WordPiece-like BPE with added-token options) and every pre-tokenizer and normalizer setting alone, against Python
/// `tokenizers` on edge-case texts (scripts/fixtures/make_tokenizer_fixtures.py): ids, tokens, ids with the
/// post-processor's special tokens and decoded text must be identical.
final class TokenizerConformanceTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    func check(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> Tokenizer {
        let tok = try Tokenizer.load(from: Self.fixtures.appendingPathComponent("\(name).tokenizer.json"))
        let cases = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent("\(name).cases.json"))) as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(cases.count, 16)
        let again = try Tokenizer.load(json: tok.jsonData())  // written back, read again: the same encoding
        for c in cases {
            let text = c["text"] as! String
            let ids = tok.encode(text)
            XCTAssertEqual(ids, c["ids"] as! [Int], "\(name): ids of \(String(reflecting: text))", file: file, line: line)
            // tokenizers reports an added token with lstrip/rstrip as the text it matched, stripped spaces included.
            let expectedTokens = zip(c["ids"] as! [Int], c["tokens"] as! [String]).map { id, t in
                tok.addedTokens.contains { $0.id == id && ($0.lstrip || $0.rstrip) } ? t.trimmingCharacters(in: .whitespacesAndNewlines) : t
            }
            XCTAssertEqual(ids.map { tok.token(of: $0) ?? "?" }, expectedTokens, "\(name): tokens of \(String(reflecting: text))", file: file, line: line)
            XCTAssertEqual(tok.encode(text, addSpecialTokens: true), c["ids_with_special"] as! [Int], "\(name): ids with special tokens of \(String(reflecting: text))", file: file, line: line)
            XCTAssertEqual(tok.decode(c["ids"] as! [Int]), c["decoded"] as! String, "\(name): decode of \(String(reflecting: text))", file: file, line: line)
            XCTAssertEqual(again.encode(text, addSpecialTokens: true), c["ids_with_special"] as! [Int], "\(name): after save and reload", file: file, line: line)
        }
        return tok
    }

    func testLlama3Style() throws {
        let tok = try check("llama3-style")
        XCTAssertTrue(tok.model.ignoreMerges)
        XCTAssertEqual(tok.prefixIds, [tok.id(of: "<|begin_of_text|>")!])
    }
    func testQwen2Style() throws { _ = try check("qwen2-style") }
    func testFalconStyle() throws { _ = try check("falcon-style") }
    func testSmolLMStyle() throws { _ = try check("smollm-style") }
    func testEndOfWordSuffixWhitespaceAndRobertaProcessing() throws { _ = try check("gpt-suffix-style") }
    func testContinuingSubwordPrefixAndAddedTokenOptions() throws { _ = try check("wordpiece-style") }

    /// Each pre-tokenizer and normalizer alone: pieces and normalized text equal `pre_tokenize_str` / `normalize_str`.
    func testEveryPreTokenizerAndNormalizerSetting() throws {
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent("pretokenizers.cases.json"))) as? [String: Any])
        let texts = root["texts"] as! [String]
        let components = root["components"] as! [[String: Any]]
        XCTAssertGreaterThan(components.count, 30)
        for c in components {
            let results = c["results"] as! [Any]
            if let json = c["pre_tokenizer"] {
                let pre = try XCTUnwrap(Tokenizer.parsePreTokenizer(json))
                for (text, expected) in zip(texts, results) {
                    XCTAssertEqual(pre.apply([text]), expected as! [String], "\(json) on \(String(reflecting: text))")
                }
            } else {
                let json = c["normalizer"]!
                let normalizer = try XCTUnwrap(Tokenizer.parseNormalizer(json))
                for (text, expected) in zip(texts, results) {
                    XCTAssertEqual(normalizer.apply(text), expected as! String, "\(json) on \(String(reflecting: text))")
                }
            }
        }
    }
}
