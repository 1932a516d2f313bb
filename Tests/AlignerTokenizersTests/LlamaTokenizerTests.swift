import Foundation
import XCTest

@testable import AlignerTokenizers

/// SentencePiece-style BPE tokenizers built with Python `tokenizers` (scripts/fixtures/make_tokenizer_fixtures.py).
final class LlamaTokenizerTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    func check(_ name: String) throws {
        let tok = try Tokenizer.load(from: Self.fixtures.appendingPathComponent("\(name).tokenizer.json"))
        let cases = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent("\(name).cases.json"))) as! [[String: Any]]
        XCTAssertEqual(cases.count, 10)
        for c in cases {
            let text = c["text"] as! String
            let ids = tok.encode(text)
            XCTAssertEqual(ids, c["ids"] as! [Int], "\(name): '\(text)'")
            XCTAssertEqual(ids.map { tok.token(of: $0) ?? "?" }, c["tokens"] as! [String], "\(name): '\(text)'")
            XCTAssertEqual(tok.encode(text, addSpecialTokens: true), c["ids_with_special"] as! [Int], "\(name): '\(text)' with <s>")
            XCTAssertEqual(tok.decode(ids), c["decoded"] as! String, "\(name): decode '\(text)'")
        }
        XCTAssertTrue(tok.model.byteFallback)
        XCTAssertEqual(tok.id(of: "<s>"), 1)
        XCTAssertEqual(tok.prefixIds, [1])
    }

    func testNormalizerForm() throws { try check("llama-normalizer") }
    func testMetaspaceForm() throws { try check("llama-metaspace") }

    func testSaveAndReloadKeepsEncoding() throws {
        let tok = try Tokenizer.load(from: Self.fixtures.appendingPathComponent("llama-normalizer.tokenizer.json"))
        let again = try Tokenizer.load(json: tok.jsonData())
        for text in ["Hello world", "東京 🙂 and  spaces", ""] {
            XCTAssertEqual(again.encode(text, addSpecialTokens: true), tok.encode(text, addSpecialTokens: true))
        }
    }

    func testInvalidFilesNameTheProblem() {
        XCTAssertThrowsError(try Tokenizer.load(json: Data("[]".utf8))) { XCTAssertEqual("\($0)", "not a JSON object") }
        XCTAssertThrowsError(try Tokenizer.load(json: Data(#"{"model": {"type": "Unigram", "vocab": []}}"#.utf8))) {
            XCTAssertTrue("\($0)".contains("Unigram"))
        }
        XCTAssertThrowsError(try Tokenizer.load(json: Data(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}"#.utf8))) {
            XCTAssertTrue("\($0)".contains("merge 0"))
        }
        // As in tokenizers, byte fallback without <0xNN> tokens falls back to the unknown token.
        let partial = try? Tokenizer.load(json: Data(#"{"model": {"type": "BPE", "vocab": {"a": 0, "<unk>": 1, "<0x62>": 2}, "unk_token": "<unk>", "byte_fallback": true}}"#.utf8))
        XCTAssertEqual(partial?.encode("abc"), [0, 2, 1])
        for (section, name) in [("pre_tokenizer", "BertPreTokenizer"), ("normalizer", "Precompiled"), ("decoder", "WordPiece"), ("post_processor", "Unknown")] {
            XCTAssertThrowsError(try Tokenizer.load(json: Data(#"{"model": {"type": "BPE", "vocab": {"a": 0}}, "\#(section)": {"type": "\#(name)"}}"#.utf8))) {
                XCTAssertTrue("\($0)".contains(name) && "\($0)".contains(section), "\($0)")
            }
        }
        XCTAssertThrowsError(try Tokenizer.load(json: Data(#"{"model": {"type": "BPE", "vocab": {"a": 0}}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(a"}, "behavior": "Isolated"}}"#.utf8))) {
            XCTAssertTrue("\($0)".contains("does not compile at offset"), "\($0)")
        }
        XCTAssertThrowsError(try Tokenizer.load(json: Data(#"{"model": {"type": "BPE", "vocab": {"a": 0}}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways"}}"#.utf8))) {
            XCTAssertTrue("\($0)".contains("Sideways"), "\($0)")
        }
    }
}

/// Streaming decode keeps what decoding the whole text gives, token by token.
final class StreamingDecoderTests: XCTestCase {
    func testSpaceAtThePromptBoundaryIsKept() throws {
        let tok = try Tokenizer.load(from: LlamaTokenizerTests.fixtures.appendingPathComponent("llama-metaspace.tokenizer.json"))
        let prompt = tok.encode("Lily wanted to", addSpecialTokens: true)
        let full = tok.encode("Lily wanted to go on a walk", addSpecialTokens: true)
        XCTAssertEqual(Array(full.prefix(prompt.count)), prompt)
        var stream = StreamingDecoder(tokenizer: tok, prompt: prompt)
        var out = ""
        for id in full.dropFirst(prompt.count) { out += stream.push(id) }
        XCTAssertEqual(out, " go on a walk")
        // Decoding the new tokens alone loses the boundary space (what `generate` printed before: "togo").
        XCTAssertEqual(tok.decode(Array(full.dropFirst(prompt.count))), "go on a walk")
    }

    func testMultiByteCharactersWaitUntilComplete() throws {
        // GPT-2's byte-level BPE splits "✓" (3 bytes) over tokens that decode to U+FFFD until the last one arrives.
        let tok = GPT2TokenizerTests.hf
        let prompt = tok.encode("Hi")
        let full = tok.encode("Hi ✓✓ ok")
        XCTAssertEqual(Array(full.prefix(prompt.count)), prompt)
        var stream = StreamingDecoder(tokenizer: tok, prompt: prompt)
        var pieces: [String] = []
        for id in full.dropFirst(prompt.count) { pieces.append(stream.push(id)) }
        XCTAssertEqual(pieces.joined(), " ✓✓ ok")
        XCTAssertFalse(pieces.contains { $0.contains("\u{FFFD}") }, "\(pieces)")
        XCTAssertTrue(pieces.contains(""), "some token completes no character: \(pieces)")
    }

    /// When generation stops inside a character, `finish` gives what a full decode shows (U+FFFD), so that the
    /// streamed text equals decode(all) minus decode(prompt).
    func testFinishFlushesAnIncompleteCharacter() throws {
        let tok = GPT2TokenizerTests.hf
        let prompt = tok.encode("Hi")
        let full = tok.encode("Hi ✓✓")
        let cut = Array(full.dropLast())  // the last "✓" loses its final byte token
        var stream = StreamingDecoder(tokenizer: tok, prompt: prompt)
        var out = ""
        for id in cut.dropFirst(prompt.count) { out += stream.push(id) }
        out += stream.finish()
        XCTAssertEqual(out, String(tok.decode(cut).dropFirst(tok.decode(prompt).count)))
        XCTAssertTrue(out.hasSuffix("\u{FFFD}"), out)
        XCTAssertEqual(stream.finish(), "")
    }
}
