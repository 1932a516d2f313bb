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
}
