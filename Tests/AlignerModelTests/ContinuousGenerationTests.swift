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
        // A limit between what two and what four slots need (prompts of up to 24 tokens, 8 new).
        let two = model.continuousGenerationBytes(slots: 2, width: 24, newTokens: 8), four = model.continuousGenerationBytes(slots: 4, width: 24, newTokens: 8)
        XCTAssertLessThan(two, four)
        setenv("ALIGNERKIT_MEMORY_LIMIT", String(format: "%.0f", (two + four) / 2), 1)
        defer { unsetenv("ALIGNERKIT_MEMORY_LIMIT") }
        XCTAssertEqual(try model.continuousSlots(8, prompts: prompts, newTokens: 8), 2)
        XCTAssertEqual(try model.generateContinuously(prompts: prompts, options: options, slots: 8), expected)
        setenv("ALIGNERKIT_MEMORY_LIMIT", "1000", 1)
        XCTAssertThrowsError(try model.generateContinuously(prompts: prompts, options: options, slots: 8)) { XCTAssertTrue($0 is MemoryError, "\($0)") }
    }

    /// Left open, the slots come from the threads (8 per thread, 8 to 64), never more than the prompts, and are halved
    /// until they fit in half of memory (a number given may use all of it).
    func testAutomaticSlotsFollowThreadsAndMemory() throws {
        XCTAssertEqual([1, 2, 3, 8, 16].map { LlamaModel.automaticSlots(threads: $0) }, [8, 16, 24, 64, 64])
        let model = try LlamaModel(config: LlamaModelTests.tinyConfig(vocab: 64), seed: 5)
        let many = (1...40).map { n in Array(repeating: 3, count: 2 + n % 7) }
        let few = Array(many.prefix(5))
        try ComputeContext(threads: 2).run {
            XCTAssertEqual(try model.continuousSlots(nil, prompts: many, newTokens: 8), 16)
            XCTAssertEqual(try model.continuousSlots(nil, prompts: few, newTokens: 8), 5)
        }
        try ComputeContext(threads: 1).run { XCTAssertEqual(try model.continuousSlots(nil, prompts: many, newTokens: 8), 8) }
        // Memory for twice what 4 slots need (long sequences, so that the caches outweigh the weights): automatic takes
        // half of it (4 slots), a number given all of it (8 of 16).
        let bytes = { (slots: Int) in model.continuousGenerationBytes(slots: slots, width: 8, newTokens: 4000) }
        let limit = 2.001 * bytes(4)
        XCTAssertGreaterThan(bytes(8), limit / 2)
        XCTAssertLessThanOrEqual(bytes(8), limit)
        XCTAssertGreaterThan(bytes(16), limit)
        setenv("ALIGNERKIT_MEMORY_LIMIT", String(format: "%.0f", limit), 1)
        defer { unsetenv("ALIGNERKIT_MEMORY_LIMIT") }
        try ComputeContext(threads: 2).run {
            XCTAssertEqual(try model.continuousSlots(nil, prompts: many, newTokens: 4000), 4)
            XCTAssertEqual(try model.continuousSlots(16, prompts: many, newTokens: 4000), 8)
        }
        let options = GenerationOptions(maxNewTokens: 8, eosTokenIds: [])
        XCTAssertEqual(try model.generateContinuously(prompts: many, options: options), try model.generateContinuously(prompts: many, options: options, slots: 1))
    }
}
