@testable import AlignerFormats
import AlignerData
import AlignerModel
import AlignerSafetensors
import AlignerTensor
import AlignerTokenizers
import Foundation
import XCTest


/// Reward models out to a Hugging Face sequence-classification folder and back. The model is transformers' own
/// (the fixture `scripts/fixtures/make_reward_fixture.py` writes); `scripts/checks/check_reward_export.py` loads the
/// exported folder with transformers and compares its scores with the fixture's (set ALIGNERKIT_REWARD_EXPORT_DIR to
/// keep the folder for it).
final class RewardExportTests: XCTestCase {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("AlignerModelTests/Fixtures/tiny_reward.safetensors")

    func testExportedRewardModelReadsBackWithTheSameScores() throws {
        let file = try SafetensorsFile(contentsOf: Self.fixture)
        var weights: [String: Tensor] = [:]
        for name in file.names where name.hasPrefix("weights.") { weights[String(name.dropFirst("weights.".count))] = try file.tensor(name) }
        let config = LlamaConfig(vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2, numAttentionHeads: 4,
                                 numKeyValueHeads: 2, rmsNormEps: 1e-5, ropeTheta: 10_000, maxPositionEmbeddings: 64, tieWordEmbeddings: false,
                                 bosTokenId: 1, eosTokenIds: [2], padTokenId: 0, initializerRange: 0.02)
        let model = try RewardModel(config: config, weights: weights)
        let ids = try file.tensor("input_ids").scalars.map { Int($0) }
        let scores = try withNoGrad { try model.scores(ids: ids, batch: 6, time: 8) }.scalars

        let keep = ProcessInfo.processInfo.environment["ALIGNERKIT_REWARD_EXPORT_DIR"]
        let dir = keep.map { URL(fileURLWithPath: $0) } ?? FileManager.default.temporaryDirectory.appendingPathComponent("reward-export-\(UUID().uuidString)")
        defer { if keep == nil { try? FileManager.default.removeItem(at: dir) } }
        try RewardExport.export(model, tokenizer: try GGUFExportTests.tokenizer(), specialTokens: SpecialTokens(bos: "<s>", eos: "</s>", pad: "<pad>"),
                                questionTemplate: "Q: {question}\nA:", to: dir)
        XCTAssertEqual(try RewardExport.questionTemplate(in: dir), "Q: {question}\nA:")
        // The tokenizer files are a reward model's own: no Aligner prompt, no chat template.
        let tokenizerConfig = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("tokenizer_config.json"))) as? [String: Any])
        XCTAssertEqual(tokenizerConfig.keys.filter { $0.hasPrefix("aligner") || $0 == "chat_template" }, [])
        XCTAssertEqual(tokenizerConfig["pad_token"] as? String, "<pad>")

        let config2 = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("config.json"))) as? [String: Any])
        XCTAssertEqual(config2["architectures"] as? [String], ["LlamaForSequenceClassification"])
        XCTAssertEqual((config2["id2label"] as? [String: String])?.count, 1)
        XCTAssertEqual(config2["pad_token_id"] as? Int, 0)
        let saved = try SafetensorsFile(contentsOf: dir.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(Set(saved.names), Set(weights.keys), "the same tensor names as transformers' LlamaForSequenceClassification")

        let (back, _, _) = try RewardExport.load(path: dir.path)
        XCTAssertEqual(try withNoGrad { try back.scores(ids: ids, batch: 6, time: 8) }.scalars, scores)
        for (a, b) in zip(scores, try file.tensor("scores").scalars) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b))) }
        // A language model's folder is not a reward model.
        XCTAssertThrowsError(try RewardModel(config: config, weights: weights.filter { $0.key != RewardModel.scoreName }))
    }
}
