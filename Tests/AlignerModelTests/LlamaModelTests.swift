import AlignerOptim
import AlignerTensor
import Foundation
import XCTest

@testable import AlignerModel

final class LlamaModelTests: XCTestCase {
    static func tinyConfig(tied: Bool = false, vocab: Int = 48) -> LlamaConfig {
        LlamaConfig(vocabSize: vocab, hiddenSize: 32, intermediateSize: 48, numHiddenLayers: 2, numAttentionHeads: 4,
                    numKeyValueHeads: 2, maxPositionEmbeddings: 64, tieWordEmbeddings: tied, bosTokenId: 1,
                    eosTokenIds: [2], padTokenId: 0, initializerRange: 0.2)
    }

    func testParameterNamesShapesAndDeterministicInit() throws {
        let config = Self.tinyConfig()
        let a = try LlamaModel(config: config, seed: 7), b = try LlamaModel(config: config, seed: 7)
        let c = try LlamaModel(config: config, seed: 8)
        XCTAssertEqual(a.parameterNames.first, "model.embed_tokens.weight")
        XCTAssertEqual(a.parameterNames.last, "lm_head.weight")
        XCTAssertEqual(a.parameters["model.layers.1.self_attn.k_proj.weight"]!.shape, [16, 32])
        XCTAssertEqual(a.parameters["model.layers.0.mlp.down_proj.weight"]!.shape, [32, 48])
        XCTAssertEqual(a.parameters["model.norm.weight"]!.scalars, [Float](repeating: 1, count: 32))
        XCTAssertEqual(a.parameters.values.reduce(0) { $0 + $1.count }, config.parameterCount)
        for name in a.parameterNames {
            XCTAssertEqual(a.parameters[name]!.scalars, b.parameters[name]!.scalars, name)
        }
        XCTAssertNotEqual(a.parameters["lm_head.weight"]!.scalars, c.parameters["lm_head.weight"]!.scalars)
        let std = a.parameters["model.embed_tokens.weight"]!.scalars
        let rms = (std.reduce(0) { $0 + $1 * $1 } / Float(std.count)).squareRoot()
        XCTAssertEqual(rms, 0.2, accuracy: 0.02)
        let tied = try LlamaModel(config: Self.tinyConfig(tied: true), seed: 1)
        XCTAssertNil(tied.parameters["lm_head.weight"])
    }

    func testWeightErrorsNameTheWeight() throws {
        let config = Self.tinyConfig()
        var weights = try LlamaModel(config: config, seed: 1).parameters
        weights["model.layers.0.mlp.up_proj.weight"] = Tensor.zeros([3, 3])
        XCTAssertThrowsError(try LlamaModel(config: config, weights: weights)) { e in
            XCTAssertEqual((e as? WeightError)?.name, "model.layers.0.mlp.up_proj.weight")
        }
        weights["model.layers.0.mlp.up_proj.weight"] = nil
        XCTAssertThrowsError(try LlamaModel(config: config, weights: weights)) { e in
            XCTAssertEqual((e as? WeightError)?.message, "missing")
        }
        var extra = try LlamaModel(config: config, seed: 1).parameters
        extra["model.layers.9.mlp.up_proj.weight"] = Tensor.zeros([1])
        XCTAssertThrowsError(try LlamaModel(config: config, weights: extra))
    }

    func testRightPaddingDoesNotChangeTheLossOfRealTokens() throws {
        let model = try LlamaModel(config: Self.tinyConfig(), seed: 3)
        let seq = [1, 5, 9, 13, 17, 21]
        let labels = [-100, -100, 9, 13, 17, 21]
        let plain = try model.loss(ids: seq, labels: labels, batch: 1, time: 6).item
        // Same sequence padded on the right to 9, next to another sequence.
        let other = [1, 7, 7, 7, 3, 4, 5, 6, 8]
        let ids = seq + [0, 0, 0] + other
        let padLabels = labels + [-100, -100, -100] + [Int](repeating: -100, count: 9)
        let mask = [Bool](repeating: true, count: 6) + [false, false, false] + [Bool](repeating: true, count: 9)
        let padded = try model.loss(ids: ids, labels: padLabels, batch: 2, time: 9, attentionMask: mask).item
        XCTAssertEqual(padded, plain, accuracy: 1e-6 * plain)
        // And the real tokens' logits are the same.
        let a = try model.forward(ids: seq, batch: 1, time: 6)
        let b = try model.forward(ids: ids, batch: 2, time: 9, attentionMask: mask)
        for t in 0..<6 { for v in 0..<48 { XCTAssertEqual(a.data[t * 48 + v], b.data[t * 48 + v], accuracy: 1e-5) } }
    }

    /// `loss` sends only counted positions through the head; scoring every position's logits (`forward`, then
    /// cross-entropy with -100 elsewhere) must give the same loss and the same gradient for every parameter.
    func testLossOverCountedPositionsEqualsScoringEveryPosition() throws {
        for (tied, reduction) in [(false, LossReduction.mean), (true, .sum)] {
            let ids = [1, 5, 9, 13, 17, 21, 0, 0, 1, 7, 7, 7, 3, 4, 5, 6]
            let labels = [-100, -100, -100, 13, 17, 21, -100, -100, -100, -100, 7, 7, 3, -100, 5, 6]
            let mask = [Bool](repeating: true, count: 6) + [false, false] + [Bool](repeating: true, count: 8)
            let a = try LlamaModel(config: Self.tinyConfig(tied: tied), seed: 5)
            let b = try LlamaModel(config: Self.tinyConfig(tied: tied), seed: 5)
            let counted = try a.loss(ids: ids, labels: labels, batch: 2, time: 8, attentionMask: mask, reduction: reduction)
            let logits = try b.forward(ids: ids, batch: 2, time: 8, attentionMask: mask)
            let full = Tensor.crossEntropy(logits, targets: LlamaModel.shiftedTargets(labels, batch: 2, time: 8), reduction: reduction)
            XCTAssertEqual(counted.item, full.item, accuracy: 1e-6 * abs(full.item))
            counted.backward()
            full.backward()
            for name in a.parameterNames {
                let ga = try XCTUnwrap(a.parameters[name]!.grad, name), gb = try XCTUnwrap(b.parameters[name]!.grad, name)
                let (d, s) = difference(ga, gb)
                XCTAssertLessThanOrEqual(d, 1e-5 * max(s, 1e-3), "\(name) (tied \(tied))")
            }
        }
        // No counted position: the mean is 0, as crossEntropy defines it, with zero gradients.
        let model = try LlamaModel(config: Self.tinyConfig(), seed: 5)
        let none = try model.loss(ids: [1, 2, 3], labels: [-100, -100, -100], batch: 1, time: 3)
        XCTAssertEqual(none.item, 0)
        none.backward()
        XCTAssertEqual(model.parameters["lm_head.weight"]!.grad?.scalars.allSatisfy { $0 == 0 } ?? true, true)
    }

    func testKVCacheGreedyEqualsFullRecomputation() throws {
        let model = try LlamaModel(config: Self.tinyConfig(), seed: 5)
        let prompts = [[1, 4, 8, 15, 16, 23, 42], [1, 30], [1, 11, 12, 13]]
        let options = GenerationOptions(maxNewTokens: 20, eosTokenIds: [])
        var noCache = options
        noCache.useCache = false
        let cached = try model.generate(prompts: prompts, options: options)
        let full = try model.generate(prompts: prompts, options: noCache)
        XCTAssertEqual(cached, full)
        XCTAssertEqual(cached.tokens.map(\.count), [20, 20, 20])
        // Batching does not change a row's continuation.
        for (i, p) in prompts.enumerated() {
            XCTAssertEqual(try model.generate(prompts: [p], options: options).tokens[0], cached.tokens[i])
        }
    }

    func testGenerationStopsAtEOSAndSamplingIsSeeded() throws {
        let model = try LlamaModel(config: Self.tinyConfig(), seed: 6)
        let prompt = [[1, 9, 10]]
        let greedy = try model.generate(prompts: prompt, options: GenerationOptions(maxNewTokens: 12, eosTokenIds: []))
        let eos = greedy.tokens[0][3]
        let stopped = try model.generate(prompts: prompt, options: GenerationOptions(maxNewTokens: 12, eosTokenIds: [eos]))
        XCTAssertEqual(stopped.tokens[0], Array(greedy.tokens[0].prefix(while: { $0 != eos })))
        XCTAssertEqual(stopped.stoppedAtEOS, [true])

        let sampled = GenerationOptions(maxNewTokens: 15, temperature: 1.5, seed: 42, eosTokenIds: [])
        let s1 = try model.generate(prompts: prompt, options: sampled), s2 = try model.generate(prompts: prompt, options: sampled)
        XCTAssertEqual(s1, s2)
        var other = sampled
        other.seed = 43
        XCTAssertNotEqual(try model.generate(prompts: prompt, options: other), s1)
        // top-k 1 is greedy whatever the temperature; a tiny top-p keeps only the most likely token too.
        XCTAssertEqual(try model.generate(prompts: prompt, options: GenerationOptions(maxNewTokens: 12, temperature: 2, topK: 1, eosTokenIds: [])), greedy)
        XCTAssertEqual(try model.generate(prompts: prompt, options: GenerationOptions(maxNewTokens: 12, temperature: 2, topP: 1e-6, eosTokenIds: [])), greedy)
        var noCache = sampled
        noCache.useCache = false
        XCTAssertEqual(try model.generate(prompts: prompt, options: noCache), s1)
    }

    /// no_repeat_ngram_size over the generated tokens: a greedy loop is broken, no n-gram of the output repeats, and
    /// until the first would-be repeat the output is the plain greedy one.
    func testNoRepeatNgramBreaksGreedyLoops() throws {
        XCTAssertEqual(Sampler.repeatingTokens([5, 6, 7, 5, 6], n: 3), [7])
        XCTAssertEqual(Sampler.repeatingTokens([5, 6, 5, 6, 5], n: 2), [6])
        XCTAssertEqual(Sampler.repeatingTokens([5, 6], n: 3), [])
        XCTAssertEqual(Sampler.repeatingTokens([5, 6, 5], n: 1), [5, 6])
        let model = try LlamaModel(config: Self.tinyConfig(), seed: 6)
        let prompt = [[1, 9, 10]]
        let greedy = try model.generate(prompts: prompt, options: GenerationOptions(maxNewTokens: 40, eosTokenIds: [])).tokens[0]
        func ngrams(_ t: [Int], _ n: Int) -> [[Int]] { t.count < n ? [] : (0...(t.count - n)).map { Array(t[$0..<($0 + n)]) } }
        XCTAssertLessThan(Set(ngrams(greedy, 3)).count, ngrams(greedy, 3).count, "the tiny model's greedy output loops: \(greedy)")
        let free = try model.generate(prompts: prompt, options: GenerationOptions(maxNewTokens: 40, eosTokenIds: [], noRepeatNgramSize: 3)).tokens[0]
        XCTAssertEqual(Set(ngrams(free, 3)).count, ngrams(free, 3).count, "\(free)")
        // Identical to greedy up to the first token greedy would take to repeat a 3-gram.
        let firstRepeat = (2..<greedy.count).first { i in Sampler.repeatingTokens(Array(greedy[..<i]), n: 3).contains(greedy[i]) }!
        XCTAssertEqual(Array(free.prefix(firstRepeat)), Array(greedy.prefix(firstRepeat)))
        XCTAssertNotEqual(free[firstRepeat], greedy[firstRepeat])
        XCTAssertThrowsError(try GenerationOptions(noRepeatNgramSize: -1).validate())
    }

    func testSamplerFiltersHandComputed() {
        // logits → probabilities ∝ [1, 2, 4, 8] at temperature 1 (log-values).
        let logits: [Float] = [0, Float(Foundation.log(2.0)), Float(Foundation.log(4.0)), Float(Foundation.log(8.0))]
        var counts = [0, 0, 0, 0]
        var rng = SeededGenerator(seed: 9)
        let opts = GenerationOptions(temperature: 1, topP: 0.75)  // 8/15 < 0.75 ≤ 12/15: keeps tokens 3 and 2
        logits.withUnsafeBufferPointer { p in
            for _ in 0..<3000 { counts[Sampler.pick(p.baseAddress!, 4, opts, &rng)] += 1 }
        }
        XCTAssertEqual(counts[0] + counts[1], 0)
        XCTAssertEqual(Double(counts[3]) / 3000, 2.0 / 3, accuracy: 0.03)
        counts = [0, 0, 0, 0]
        let k2 = GenerationOptions(temperature: 1, topK: 3)
        logits.withUnsafeBufferPointer { p in
            for _ in 0..<3000 { counts[Sampler.pick(p.baseAddress!, 4, k2, &rng)] += 1 }
        }
        XCTAssertEqual(counts[0], 0)
        XCTAssertEqual(Double(counts[1]) / 3000, 2.0 / 14, accuracy: 0.03)
    }

    func testTiedEmbeddingsReceiveBothGradients() throws {
        let model = try LlamaModel(config: Self.tinyConfig(tied: true), seed: 2)
        let loss = try model.loss(ids: [1, 3, 5, 7], labels: [1, 3, 5, 7], batch: 1, time: 4)
        loss.backward()
        let g = model.parameters["model.embed_tokens.weight"]!.grad!
        // Rows never looked up still get the LM-head part of the gradient.
        XCTAssertTrue((0..<32).contains { g.data[40 * 32 + $0] != 0 })
    }

    func testTinyModelOverfitsOneBatch() throws {
        let config = LlamaConfig(vocabSize: 32, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2,
                                 numAttentionHeads: 4, numKeyValueHeads: 2, maxPositionEmbeddings: 32, padTokenId: 0)
        let model = try LlamaModel(config: config, seed: 11)
        var rng = SeededGenerator(seed: 12)
        let (b, t) = (4, 16)
        let ids = (0..<(b * t)).map { _ in 1 + rng.nextInt(below: 31) }
        let optimizer = AdamW(groups: [ParameterGroup(names: model.parameterNames, weightDecay: 0)], beta1: 0.9, beta2: 0.95)
        var last: Float = .infinity
        for step in 0..<150 {
            model.releaseGradients()
            let loss = try model.loss(ids: ids, labels: ids, batch: b, time: t)
            loss.backward()
            clipGradientNorm(model.orderedParameters, maxNorm: 1)
            optimizer.update(model.parameters, lr: LearningRateSchedule.constant(warmupSteps: 10).rate(at: step, base: 1e-2))
            last = loss.item
            if last < 0.05 { break }
        }
        XCTAssertLessThan(last, 0.05)
    }

    func testInputsOutsideTheModelAreThrownNotTrapped() throws {
        let model = try LlamaModel(config: Self.tinyConfig(), seed: 1)
        func expect(_ field: String, _ fragment: String, line: UInt = #line, _ body: () throws -> Void) {
            XCTAssertThrowsError(try body(), line: line) { error in
                guard let e = error as? ModelInputError else { return XCTFail("\(error)", line: line) }
                XCTAssertEqual(e.field, field, line: line)
                XCTAssertTrue(e.message.contains(fragment), e.message, line: line)
            }
        }
        let context = model.config.maxPositionEmbeddings
        expect("ids", "token id 48 at position 1") { _ = try model.forward(ids: [1, 48], batch: 1, time: 2) }
        expect("ids", "token id -1") { _ = try model.forward(ids: [-1, 2], batch: 1, time: 2) }
        expect("ids", "3 ids for batch 1 × time 2") { _ = try model.forward(ids: [1, 2, 3], batch: 1, time: 2) }
        expect("ids", "exceeds the model's context") { _ = try model.forward(ids: [Int](repeating: 1, count: context + 1), batch: 1, time: context + 1) }
        expect("labels", "label 99") { _ = try model.loss(ids: [1, 2], labels: [-100, 99], batch: 1, time: 2) }
        expect("attention_mask", "1 entries") { _ = try model.forward(ids: [1, 2], batch: 1, time: 2, attentionMask: [true]) }
        expect("positions", "position \(context)") { _ = try model.forward(ids: [1, 2], batch: 1, time: 2, positions: [0, context]) }
        let few = GenerationOptions(maxNewTokens: 4)
        expect("prompts", "prompt 1 has no tokens") { _ = try model.generate(prompts: [[1], []], options: few) }
        expect("prompts", "outside the vocabulary") { _ = try model.generate(prompts: [[1, 500]], options: few) }
        expect("max_new_tokens", "exceeds the model's context") { _ = try model.generate(prompts: [[1, 2]], options: GenerationOptions(maxNewTokens: context)) }
        expect("max_new_tokens", "0 or more") { _ = try model.generate(prompts: [[1]], options: GenerationOptions(maxNewTokens: -1)) }
        expect("temperature", "finite") { _ = try model.generate(prompts: [[1]], options: GenerationOptions(temperature: .nan)) }
        expect("top_k", "at least 1") { _ = try model.generate(prompts: [[1]], options: GenerationOptions(temperature: 1, topK: 0)) }
        expect("top_p", "(0, 1]") { _ = try model.generate(prompts: [[1]], options: GenerationOptions(temperature: 1, topP: 1.5)) }
        // The longest prompt that fits, with room for exactly one new token.
        XCTAssertEqual(try model.generate(prompts: [[Int](repeating: 3, count: context - 1)], options: GenerationOptions(maxNewTokens: 1)).tokens[0].count, 1)
    }

    func testSizesAreBoundedAndWeightsMustBeFinite() throws {
        var c = Self.tinyConfig()
        c.numHiddenLayers = 1_000_000_000
        XCTAssertThrowsError(try c.validate()) { XCTAssertEqual(($0 as? ConfigError)?.field, "num_hidden_layers") }
        c = Self.tinyConfig()
        c.hiddenSize = 32768
        c.numAttentionHeads = 256
        c.numKeyValueHeads = 256
        c.vocabSize = 4_000_000
        XCTAssertThrowsError(try LlamaModel(config: c, seed: 0)) { XCTAssertTrue($0 is MemoryError, "\($0)") }
        let model = try LlamaModel(config: Self.tinyConfig(), seed: 1)
        var weights = model.parameters
        let w = weights["model.norm.weight"]!.scalars
        weights["model.norm.weight"] = Tensor(w.map { _ in Float.nan }, shape: [w.count])
        XCTAssertThrowsError(try LlamaModel(config: model.config, weights: weights)) {
            XCTAssertEqual("\($0)", "weight 'model.norm.weight': 32 of its 32 values are NaN or infinite")
        }
    }
}
