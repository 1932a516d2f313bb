@testable import AlignerModel
import AlignerTensor
import XCTest

/// Generation reading Q8_0 weights (or float32 through the row kernels): logits near the float32 model's on every
/// family's fixture, losses untouched, and continuous batching still identical to generating each prompt alone.
final class InferenceWeightsTests: XCTestCase {
    static let families = ["llama3", "llama-bias-linear", "llama-yarn", "llama-dynamic", "mistral", "qwen2", "qwen3", "gemma", "phi3"]

    /// Largest |difference| of two logit tensors relative to the largest |logit| of the reference.
    func relativeDifference(_ a: Tensor, _ b: Tensor) -> Float {
        let scale = b.scalars.map(abs).max()!
        return zip(a.scalars, b.scalars).map { abs($0 - $1) }.max()! / scale
    }

    func testLogitsStayNearTheFloatModelOnEveryFamily() throws {
        for name in Self.families {
            let c = try ModelFamilyFixtureTests.Case(name)
            let reference = try withNoGrad { try c.model.forward(ids: c.ids, batch: 2, time: 8) }
            // Float32 through the row kernels: float rounding only.
            let rows = try c.model.withInferenceWeights { try c.model.forward(ids: c.ids, batch: 2, time: 8) }
            XCTAssertLessThan(relativeDifference(rows, reference), 1e-5, "\(name): f32 row kernels")
            c.model.setInferenceWeights(.q8_0)
            XCTAssertGreaterThan(c.model.quantized.count, 0, name)
            let q8 = try c.model.withInferenceWeights { try c.model.forward(ids: c.ids, batch: 2, time: 8) }
            let d = relativeDifference(q8, reference)
            // These models are the worst case for Q8_0: 32-wide rows (one block, one scale per row) of random weights.
            XCTAssertLessThan(d, 0.15, "\(name): Q8_0 logits (documented tolerance on the fixtures: 15% of the largest logit)")
            let v = c.config.vocabSize
            let agree = (0..<16).filter { t in
                let a = q8.scalars[(t * v)..<((t + 1) * v)], b = reference.scalars[(t * v)..<((t + 1) * v)]
                return a.firstIndex(of: a.max()!)! - t * v == b.firstIndex(of: b.max()!)! - t * v
            }.count
            XCTAssertGreaterThanOrEqual(agree, 12, "\(name): the most likely token at \(agree) of 16 positions")
            XCTAssertGreaterThan(d, 0, "\(name): the quantised weights were read")
            // The loss reads the float32 parameters whatever generation reads.
            let before = try ModelFamilyFixtureTests.Case(name)
            XCTAssertEqual(try c.model.loss(ids: c.ids, labels: c.labels, batch: 2, time: 8).item,
                           try before.model.loss(ids: before.ids, labels: before.labels, batch: 2, time: 8).item, name)
        }
    }

    func testContinuousBatchingOnQ8WeightsEqualsGeneratingAlone() throws {
        var config = LlamaModelTests.tinyConfig(vocab: 64)
        config.maxPositionEmbeddings = 128
        let model = try LlamaModel(config: config, seed: 9)
        model.setInferenceWeights(.q8_0)
        var rng = SeededGenerator(seed: 12)
        let prompts = [1, 40, 7, 22, 3, 65, 12].map { n in (0..<n).map { _ in 1 + Int(rng.next() % 60) } }
        let options = GenerationOptions(maxNewTokens: 20, eosTokenIds: [5, 9])
        let batched = try model.generateContinuously(prompts: prompts, options: options, slots: 3)
        for (i, p) in prompts.enumerated() {
            XCTAssertEqual(batched.tokens[i], try model.generate(prompts: [p], options: options).tokens[0], "prompt \(i) (\(p.count) tokens)")
        }
    }
}
