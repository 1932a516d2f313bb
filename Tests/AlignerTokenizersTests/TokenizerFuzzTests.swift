import Foundation
import TestSupport
import XCTest

@testable import AlignerTokenizers

/// Random mutations of a valid tokenizer.json: every mutant loads or is refused with `TokenizerError`; those that load
/// encode and decode a text without trapping.
final class TokenizerFuzzTests: XCTestCase {
    func testMutatedTokenizerFilesLoadOrAreRefused() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/llama-metaspace.tokenizer.json")
        let valid = Array(try Data(contentsOf: url))
        var m = Mutator(seed: 3)
        var loaded = 0, refused = 0
        for _ in 0..<300 {
            do {
                let tok = try Tokenizer.load(json: Data(m.mutate(valid)))
                let ids = tok.encode("Hello wörld, 123 ✓ <s>", addSpecialTokens: true)
                _ = tok.decode(ids + [-1, 1 << 40], skipSpecialTokens: false)
                loaded += 1
            } catch is TokenizerError { refused += 1 }
        }
        XCTAssertGreaterThan(refused, 30)
        XCTAssertGreaterThan(loaded, 5)
    }

    /// Mutations of the normalizer, pre-tokenizer and post-processor sections of the Llama-3- and Falcon-style files
    /// (regexes, behaviours, flags): each mutant loads or is refused, and what loads encodes without trapping.
    func testMutatedPipelineSectionsLoadOrAreRefused() throws {
        var m = Mutator(seed: 11)
        var loaded = 0, refused = 0
        for name in ["llama3-style", "falcon-style", "wordpiece-style"] {
            let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(name).tokenizer.json")
            let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
            for section in ["normalizer", "pre_tokenizer", "post_processor", "decoder"] {
                guard let part = root[section], !(part is NSNull) else { continue }
                let bytes = Array(try JSONSerialization.data(withJSONObject: part))
                for _ in 0..<60 {
                    guard let mutant = try? JSONSerialization.jsonObject(with: Data(m.mutate(bytes))) else { continue }
                    var changed = root
                    changed[section] = mutant
                    do {
                        let tok = try Tokenizer.load(json: JSONSerialization.data(withJSONObject: changed))
                        let ids = tok.encode("Hello wörld, 1234567 ✓ I'm <|begin_of_text|> [X]  \r\n", addSpecialTokens: true)
                        _ = tok.decode(ids)
                        loaded += 1
                    } catch is TokenizerError { refused += 1 }
                }
            }
        }
        XCTAssertGreaterThan(refused, 10)
        XCTAssertGreaterThan(loaded, 10)
    }
}

/// tokenizer.json files whose ids and counts hold extreme integers (a negative id used to trap while loading).
final class TokenizerExtremeValueTests: XCTestCase {
    func testNegativeAndHugeIdsAreRefused() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/llama-metaspace.tokenizer.json")
        var root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        var model = try XCTUnwrap(root["model"] as? [String: Any])
        var vocab = try XCTUnwrap(model["vocab"] as? [String: Any])
        let token = vocab.keys.sorted()[5]
        for id in [-1, Int.min, 1 << 40] {
            vocab[token] = id
            model["vocab"] = vocab
            root["model"] = model
            XCTAssertThrowsError(try Tokenizer.load(json: JSONSerialization.data(withJSONObject: root))) { e in
                XCTAssertTrue("\(e)".contains("token id \(id) is outside"), "\(e)")
            }
        }
    }

    func testExtremeIntegersEverywhereLoadOrAreRefused() throws {
        var m = Mutator(seed: 29)
        var loaded = 0, refused = 0
        for name in ["llama-metaspace", "llama3-style", "falcon-style"] {
            let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(name).tokenizer.json")
            let root = try JSONSerialization.jsonObject(with: Data(contentsOf: url))
            for _ in 0..<60 {
                do {
                    let tok = try Tokenizer.load(json: JSONSerialization.data(withJSONObject: m.extremeNumbers(root)))
                    let ids = tok.encode("Hello wörld, 123 ✓ <s>  \r\n", addSpecialTokens: true)
                    _ = tok.decode(ids + [-1, 1 << 40], skipSpecialTokens: false)
                    loaded += 1
                } catch is TokenizerError { refused += 1 }
            }
        }
        XCTAssertGreaterThan(refused, 20)
        XCTAssertGreaterThan(loaded, 5)
    }
}
