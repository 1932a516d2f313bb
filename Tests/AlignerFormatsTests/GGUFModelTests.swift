@testable import AlignerFormats
@testable import AlignerRuns
import AlignerGGUF
import AlignerModel
import AlignerSafetensors
import AlignerTensor
import Foundation
import XCTest


/// The real SmolLM2-135M-Instruct Q4_1 GGUF (fetched by scripts/fetch-base-models; skipped when it is absent, as in
/// CI) loads as transformers' GGUF loader reads it: configuration from metadata, llama.cpp names mapped, Q/K rows
/// un-permuted; the logits match the reference that scripts/fixtures/make_smollm2_gguf_reference.py wrote.
final class GGUFModelTests: XCTestCase {
    func testSmolLM2LogitsMatchTransformersGGUFLoader() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let file = root.appendingPathComponent("models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
        guard FileManager.default.fileExists(atPath: file.path) else { throw XCTSkip("run scripts/fetch-base-models to fetch \(file.lastPathComponent)") }
        let gguf = try GGUFModel(file: GGUFFile(contentsOf: file))
        let c = gguf.config
        XCTAssertEqual([c.vocabSize, c.hiddenSize, c.intermediateSize, c.numHiddenLayers, c.numAttentionHeads, c.numKeyValueHeads, c.headDim],
                       [49152, 576, 1536, 30, 9, 3, 64])
        XCTAssertTrue(c.tieWordEmbeddings)
        XCTAssertEqual(c.ropeTheta, 100_000)
        let model = try LlamaModel(config: c, weights: gguf.weights)
        let reference = try SafetensorsFile(contentsOf: root.appendingPathComponent("Tests/AlignerFormatsTests/Fixtures/smollm2-gguf-reference.safetensors"))
        let ids = try reference.tensor("input_ids").scalars.map { Int($0) }
        let logits = try withNoGrad { try model.forward(ids: ids, batch: 1, time: ids.count) }  // (1, T, V)
        let head = try reference.tensor("logits_head"), argmax = try reference.tensor("argmax").scalars.map { Int($0) }
        let v = c.vocabSize
        var maxDiff: Float = 0, maxAbs: Float = 0
        for t in 0..<ids.count {
            for j in 0..<2048 {
                let ours = logits.data[t * v + j], theirs = head.data[t * 2048 + j]
                maxDiff = max(maxDiff, abs(ours - theirs))
                maxAbs = max(maxAbs, abs(theirs))
            }
            var best = 0
            for j in 1..<v where logits.data[t * v + j] > logits.data[t * v + best] { best = j }
            XCTAssertEqual(best, argmax[t], "argmax at position \(t)")
        }
        print(String(format: "SmolLM2 Q4_1 GGUF: max |logit difference| vs transformers %.3e (max |logit| %.2f)", maxDiff, maxAbs))
        // The tokenizer of the metadata gives transformers' ids, and the file loads as a bundle that continues
        // "The capital of France is" as transformers does (scripts/checks/check_gguf_generate.py).
        let bundle = try RunLocator.loadAligner(file.path)
        XCTAssertEqual(bundle.tokenizer.encode("The capital of France is", addSpecialTokens: true), [504, 3575, 282, 4649, 314])
        XCTAssertEqual(bundle.specialTokens.eos, "<|im_end|>")
        XCTAssertTrue(bundle.baseChatTemplate?.contains("<|im_start|>") == true)
        let text = try bundle.model.generate(prompts: [[504, 3575, 282, 4649, 314]], options: GenerationOptions(maxNewTokens: 4)).tokens[0]
        XCTAssertEqual(bundle.tokenizer.decode(text), " Paris.\n\n")
        XCTAssertLessThanOrEqual(maxDiff, 1e-4 * max(1, maxAbs))
    }
}
