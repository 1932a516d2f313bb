import AlignerSafetensors
import AlignerTensor
import Foundation
import XCTest

@testable import AlignerModel

/// The reward model against transformers' LlamaForSequenceClassification: the fixture that
/// `scripts/fixtures/make_reward_fixture.py` writes holds scores, the Bradley-Terry loss of 3 pairs and every gradient.
final class RewardModelTests: XCTestCase {
    static let fixtureURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/tiny_reward.safetensors")
    static let config = LlamaConfig(
        vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2, numAttentionHeads: 4,
        numKeyValueHeads: 2, rmsNormEps: 1e-5, ropeTheta: 10_000, maxPositionEmbeddings: 64, tieWordEmbeddings: false,
        bosTokenId: 1, eosTokenIds: [2], padTokenId: 0, initializerRange: 0.02)

    func load() throws -> (SafetensorsFile, RewardModel, [Int]) {
        let file = try SafetensorsFile(contentsOf: Self.fixtureURL)
        var weights: [String: Tensor] = [:]
        for name in file.names where name.hasPrefix("weights.") { weights[String(name.dropFirst("weights.".count))] = try file.tensor(name) }
        XCTAssertNil(weights["lm_head.weight"], "a sequence classifier has no language-model head")
        let model = try RewardModel(config: Self.config, weights: weights)
        return (file, model, try file.tensor("input_ids").scalars.map { Int($0) })
    }

    func testScoresLossAndEveryGradientMatchTransformers() throws {
        let (file, model, ids) = try load()
        XCTAssertEqual(model.lastTokens(ids: ids, batch: 6, time: 8), [7, 8 + 4, 16 + 6, 24 + 2, 32 + 7, 40 + 5])
        let scores = try model.scores(ids: ids, batch: 6, time: 8)
        let reference = try file.tensor("scores").scalars
        for (a, b) in zip(scores.scalars, reference) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b))) }
        let loss = RewardModel.pairwiseLoss(better: scores.slice(axis: 0, 0..<3), worse: scores.slice(axis: 0, 3..<6))
        let refLoss = try file.tensor("loss").scalars[0]
        XCTAssertEqual(loss.item, refLoss, accuracy: 1e-5 * refLoss)
        loss.backward()
        XCTAssertEqual(Set(model.parameters.keys), Set(model.parameterNames))
        XCTAssertFalse(model.parameterNames.contains("lm_head.weight"))
        for name in model.parameterNames {
            let g = try XCTUnwrap(model.parameters[name]!.grad, "no gradient for \(name)")
            let r = try file.tensor("grad." + name)
            XCTAssertEqual(g.shape, r.shape, name)
            let scale = r.scalars.map { abs($0) }.max()!
            let diff = zip(g.scalars, r.scalars).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(diff, 1e-4 * scale + 1e-7, name)
        }
    }

    func testPairwiseLossIsStableAndHandComputed() {
        let better = Tensor([0, 50, -50], shape: [3]), worse = Tensor([0, -50, 50], shape: [3])
        // −log σ(0) = log 2; −log σ(100) ≈ 0; −log σ(−100) = 100.
        XCTAssertEqual(RewardModel.pairwiseLoss(better: better, worse: worse).item, Float((log(2.0) + 0 + 100) / 3), accuracy: 1e-5)
    }

    func testHeadAndPadTokenAreChecked() throws {
        let (file, _, _) = try load()
        var weights: [String: Tensor] = [:]
        for name in file.names where name.hasPrefix("weights.") { weights[String(name.dropFirst("weights.".count))] = try file.tensor(name) }
        var missing = weights
        missing[RewardModel.scoreName] = nil
        XCTAssertThrowsError(try RewardModel(config: Self.config, weights: missing)) { XCTAssertTrue("\($0)".contains("score.weight")) }
        var wide = weights
        wide[RewardModel.scoreName] = Tensor.zeros([2, 32])
        XCTAssertThrowsError(try RewardModel(config: Self.config, weights: wide)) { XCTAssertTrue("\($0)".contains("num_labels 1")) }
        var noPad = Self.config
        noPad.padTokenId = nil
        XCTAssertThrowsError(try RewardModel(config: noPad, seed: 1)) { XCTAssertTrue("\($0)".contains("pad_token_id")) }
        // A fresh one: the decoder as LlamaModel draws it, a small head.
        let fresh = try RewardModel(config: Self.config, seed: 7)
        XCTAssertEqual(fresh.decoder.parameters["model.norm.weight"]!.scalars, try LlamaModel(config: Self.config, seed: 7).parameters["model.norm.weight"]!.scalars)
        XCTAssertLessThan(fresh.score.scalars.map(abs).max()!, 0.2)
    }
}
