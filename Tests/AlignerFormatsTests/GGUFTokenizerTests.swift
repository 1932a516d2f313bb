@testable import AlignerFormats
import AlignerGGUF
import AlignerTokenizers
import Foundation
import XCTest


/// Tokenizers from GGUF metadata against transformers' GGUF loader (`AutoTokenizer.from_pretrained(...,
/// gguf_file=...)`), on the fixtures scripts/fixtures/make_gguf_tokenizer_fixtures.py writes: sentencepiece
/// vocabularies (`llama`: merges recovered from scores, byte fallback, "▁"; the Phi-3 variant) and byte-level BPE
/// (`gpt2` with pre-tokenizers llama-bpe and qwen2): ids with and without special tokens, and decoding.
final class GGUFTokenizerTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    struct Case: Decodable {
        let text: String
        let ids: [Int]
        let ids_with_special: [Int]
        let decoded: String
        let decoded_skipping_special: String
    }

    func check(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let t = try GGUFTokenizer(file: GGUFFile(contentsOf: Self.fixtures.appendingPathComponent("\(name).gguf")))
        let cases = try JSONDecoder().decode([Case].self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("\(name).cases.json")))
        XCTAssertGreaterThan(cases.count, 9)
        for c in cases {
            XCTAssertEqual(t.tokenizer.encode(c.text), c.ids, "\(name): \(c.text.debugDescription)", file: file, line: line)
            XCTAssertEqual(t.tokenizer.encode(c.text, addSpecialTokens: true), c.ids_with_special, "\(name): \(c.text.debugDescription) with special tokens",
                           file: file, line: line)
            XCTAssertEqual(t.tokenizer.decode(c.ids), c.decoded, "\(name): decoding \(c.text.debugDescription)", file: file, line: line)
            XCTAssertEqual(t.tokenizer.decode(c.ids_with_special, skipSpecialTokens: true), c.decoded_skipping_special,
                           "\(name): decoding \(c.text.debugDescription) without special tokens", file: file, line: line)
        }
    }

    func testSentencepieceLlama() throws { try check("gguf-spm-llama") }
    func testSentencepiecePhi3() throws { try check("gguf-spm-phi3") }
    func testSentencepieceGemma() throws { try check("gguf-spm-gemma2") }
    func testByteLevelLlamaBPE() throws { try check("gguf-bpe-llama-bpe") }
    func testByteLevelQwen2() throws { try check("gguf-bpe-qwen2") }

    func testSentencepieceMergesFollowScores() {
        // "ab" scores above "bc": "abc" merges a+b first; a split whose pieces are not tokens is no merge.
        let tokens = ["a", "b", "c", "ab", "bc", "abc", "xyz"], scores: [Double] = [0, 0, 0, -1, -2, -3, -0.5]
        var vocab: [String: Int] = [:]
        for (i, t) in tokens.enumerated() { vocab[t] = i }
        let merges = GGUFTokenizer.mergesFromScores(tokens: tokens, scores: scores, vocab: vocab)
        XCTAssertEqual(merges.map { "\($0.0) \($0.1)" }, ["a b", "b c", "ab c", "a bc"])
    }

    func testSavedTokenizerKeepsTheBOSItAdds() throws {
        let t = try GGUFTokenizer(file: GGUFFile(contentsOf: Self.fixtures.appendingPathComponent("gguf-bpe-llama-bpe.gguf"))).tokenizer
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gguf-tok-\(getpid()).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try t.save(to: url)
        let back = try Tokenizer.load(from: url)
        XCTAssertEqual(back.encode("Hello world", addSpecialTokens: true), t.encode("Hello world", addSpecialTokens: true))
        XCTAssertEqual(back.prefixIds, [0])
    }
}
