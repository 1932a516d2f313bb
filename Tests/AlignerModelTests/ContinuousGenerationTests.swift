@testable import AlignerModel
import AlignerTensor
import XCTest

/// Continuous batching gives, token for token, what generating each prompt alone gives.
final class ContinuousGenerationTests: XCTestCase {
    /// Prompts of 1 to 60 tokens, sequences that end early at one of several end tokens and others that run to the
    /// limit, fewer and more prompts than slots; greedy with and without no_repeat_ngram_size, and a sliding window.
    func testGreedyResultsEqualGeneratingEachPromptAlone() throws {
        var config = LlamaModelTests.tinyConfig(vocab: 64)
        config.maxPositionEmbeddings = 128
        var rng = SeededGenerator(seed: 11)
        let lengths = [1, 60, 3, 17, 42, 2, 9, 33, 5, 25, 1, 50]
        let prompts = lengths.map { n in (0..<n).map { _ in 1 + Int(rng.next() % 60) } }
        for window in [nil, 7] as [Int?] {
            var c = config
            c.slidingWindow = window
            let model = try LlamaModel(config: c, seed: 3)
            for (base, slots) in [(GenerationOptions(maxNewTokens: 20), 4), (GenerationOptions(maxNewTokens: 24, noRepeatNgramSize: 2), 3),
                                  (GenerationOptions(maxNewTokens: 16), 32)] {
                // End tokens: the fourth token the first three prompts produce without any, so those end early.
                var free = base
                free.eosTokenIds = []
                var options = base
                options.eosTokenIds = try (0..<3).map { try model.generate(prompts: [prompts[$0]], options: free).tokens[0][3] }
                var progress: [Int] = []
                let batched = try model.generateContinuously(prompts: prompts, options: options, slots: slots) { progress.append($0) }
                XCTAssertEqual(progress, Array(1...prompts.count))
                var ends = 0
                for (i, p) in prompts.enumerated() {
                    let alone = try model.generate(prompts: [p], options: options)
                    XCTAssertEqual(batched.tokens[i], alone.tokens[0], "prompt \(i) (\(p.count) tokens), window \(String(describing: window)), slots \(slots)")
                    XCTAssertEqual(batched.stoppedAtEOS[i], alone.stoppedAtEOS[0], "prompt \(i)")
                    if alone.stoppedAtEOS[0] { ends += 1 }
                }
                XCTAssertGreaterThan(ends, 0, "some sequences end early")
                XCTAssertLessThan(ends, prompts.count, "some run to the limit")
            }
        }
    }

    /// Sampling draws from each prompt's own generator: the slots and the other prompts do not change a result.
    func testSampledResultsDoNotDependOnTheSlots() throws {
        let model = try LlamaModel(config: LlamaModelTests.tinyConfig(vocab: 64), seed: 5)
        let prompts = [[1, 2, 3], [5], [7, 8, 9, 10, 11, 12, 13], [2, 2]]
        let options = GenerationOptions(maxNewTokens: 10, temperature: 1.3, topP: 0.9, seed: 77, eosTokenIds: [3])
        let one = try model.generateContinuously(prompts: prompts, options: options, slots: 1)
        XCTAssertEqual(try model.generateContinuously(prompts: prompts, options: options, slots: 3), one)
        XCTAssertEqual(try model.generateContinuously(prompts: Array(prompts.prefix(2)), options: options, slots: 2).tokens,
                       Array(one.tokens.prefix(2)))
        XCTAssertThrowsError(try model.generateContinuously(prompts: prompts, options: options, slots: 0))
    }

    /// More slots than fit in memory: fewer decode together, with the same results; not even one slot: refused.
    func testSlotsThatDoNotFitAreHalved() throws {
        let model = try LlamaModel(config: LlamaModelTests.tinyConfig(vocab: 64), seed: 5)
        let prompts = (1...8).map { n in Array(repeating: 3, count: n * 3) }
        let options = GenerationOptions(maxNewTokens: 8, eosTokenIds: [])
        let expected = try model.generateContinuously(prompts: prompts, options: options, slots: 1)
        func fits(_ slots: Int) -> Bool { (try? model.checkGenerationMemory(prompts: slots, width: 24, newTokens: 8)) != nil }
        // A limit between what two and what four slots need.
        var low = 1.0, high = 1e12
        for _ in 0..<200 { let mid = (low + high) / 2; setenv("ALIGNERKIT_MEMORY_LIMIT", String(format: "%.0f", mid), 1); if fits(4) { high = mid } else { low = mid } }
        setenv("ALIGNERKIT_MEMORY_LIMIT", String(format: "%.0f", low), 1)
        defer { unsetenv("ALIGNERKIT_MEMORY_LIMIT") }
        XCTAssertFalse(fits(4))
        XCTAssertTrue(fits(2) || fits(1))
        XCTAssertEqual(try model.generateContinuously(prompts: prompts, options: options, slots: 8), expected)
        setenv("ALIGNERKIT_MEMORY_LIMIT", "1000", 1)
        XCTAssertThrowsError(try model.generateContinuously(prompts: prompts, options: options, slots: 8)) { XCTAssertTrue($0 is MemoryError, "\($0)") }
    }
}
