@testable import AlignerRecipes
@testable import AlignerTraining
import AlignerData
import AlignerModel
import AlignerTensor
import AlignerTokenizers
import Foundation
import XCTest


/// Bradley-Terry training on a preference that a tiny model can learn: better responses are polite, worse ones rude.
final class RewardTrainingTests: XCTestCase {
    static let tokenizer: Tokenizer = try! BPETrainer(vocabSize: 300, specialTokens: ["<pad>", "<s>", "</s>"]).train(
        ["Thank you, here is how: mix flour and water.", "No. Go away, idiot.", "Please ask again.", "BEGINNING OF CONVERSATION: USER: ASSISTANT:"])

    func pairs(_ n: Int, offset: Int = 0) throws -> [PreferencePair] {
        let builder = try RewardExampleBuilder(tokenizer: Self.tokenizer, specialTokens: SpecialTokens(bos: "<s>", eos: "</s>", pad: "<pad>"), maxLength: 64)
        let polite = ["Thank you, here is how: mix flour and water.", "Please ask again.", "Thank you, please ask again."]
        let rude = ["No. Go away, idiot.", "Go away.", "No, idiot."]
        return (0..<n).map { i in
            builder.pair(QACRecord(question: "Question \(i + offset)?", answer: rude[(i + offset) % 3], correction: polite[(i + offset / 2) % 3]))
        }
    }

    func model() throws -> RewardModel {
        let config = LlamaConfig(vocabSize: Self.tokenizer.vocabularySize, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2,
                                 numAttentionHeads: 4, numKeyValueHeads: 2, rmsNormEps: 1e-5, ropeTheta: 10_000, maxPositionEmbeddings: 64,
                                 tieWordEmbeddings: true, bosTokenId: 1, eosTokenIds: [2], padTokenId: 0, initializerRange: 0.02)
        return try RewardModel(config: config, seed: 3)
    }

    func testLearnsAPreferenceAndHeldOutAccuracyRises() throws {
        let model = try model()
        let heldOut = try pairs(12, offset: 100)
        let before = try RewardEvaluation.evaluate(model, heldOut, batchSize: 5)
        var settings = StageSettings()
        settings.steps = 40
        settings.lr = 3e-3
        settings.batchSize = 8
        settings.warmupSteps = 2
        var loop = try RewardTrainingLoop(model: model, pairs: try pairs(24), settings: settings, seed: 9)
        var first: StepStats?, last: StepStats?
        while loop.step < loop.totalSteps {
            let s = try loop.takeStep()
            XCTAssertTrue(s.isFinite)
            if first == nil { first = s }
            last = s
        }
        let after = try RewardEvaluation.evaluate(model, heldOut, batchSize: 5)
        print(String(format: "held-out pairs: accuracy %.3f → %.3f, margin %.3f → %.3f; train loss %.4f → %.4f",
                     before.accuracy, after.accuracy, before.meanMargin, after.meanMargin, first!.loss, last!.loss))
        XCTAssertEqual(first!.loss, Double(Foundation.log(2.0)), accuracy: 0.15, "an untrained head scores pairs about equally")
        XCTAssertLessThan(last!.loss, 0.2)
        XCTAssertGreaterThanOrEqual(after.accuracy, 0.9)
        XCTAssertGreaterThan(after.meanMargin, before.meanMargin + 2)
        XCTAssertLessThan(after.loss, before.loss)
        XCTAssertEqual(after.pairs, 12)
    }

    func testEqualSequencesHaveNoMarginAndTheLossIsLogTwo() throws {
        let model = try model()
        // Identical better and worse sequences: margin 0 and loss log 2 (to rounding: the two rows of a pair go through
        // different lanes of the matrix products, so exact ties are rare and accuracy is not asserted).
        let p = try pairs(3)
        let ties = p.map { PreferencePair(better: $0.better, worse: $0.better) }
        let e = try RewardEvaluation.evaluate(model, ties, batchSize: 2)
        XCTAssertEqual(e.meanMargin, 0, accuracy: 1e-5)
        XCTAssertEqual(e.loss, Foundation.log(2.0), accuracy: 1e-5)
        XCTAssertEqual(e.pairs, 3)
        XCTAssertThrowsError(try RewardEvaluation.evaluate(model, ties, batchSize: 0))
        XCTAssertThrowsError(try RewardTrainingLoop(model: model, pairs: [], settings: StageSettings(), seed: 1))
    }

    func testPairOrderIsAPermutationGroupedByLengthWithTheShortBatchLast() throws {
        let builder = try RewardExampleBuilder(tokenizer: Self.tokenizer, specialTokens: SpecialTokens(bos: "<s>", eos: "</s>", pad: "<pad>"), maxLength: 64)
        var g = SeededGenerator(seed: 5)
        let words = ["flour", "water", "salt", "yeast", "oven"]
        let pairs = (0..<203).map { i -> PreferencePair in
            let n = 1 + g.nextInt(below: 12)
            let text = { (k: Int) in (0..<k).map { _ in words[g.nextInt(below: words.count)] }.joined(separator: " ") }
            return builder.pair(QACRecord(question: "Q\(i)?", answer: text(max(1, n - g.nextInt(below: 2))), correction: text(n)))
        }
        var settings = StageSettings()
        settings.batchSize = 4
        let loop = try RewardTrainingLoop(model: try model(), pairs: pairs, settings: settings, seed: 9)
        let e0 = loop.order(epoch: 0), e1 = loop.order(epoch: 1)
        XCTAssertEqual(e0.sorted(), Array(pairs.indices))
        XCTAssertEqual(e1.sorted(), Array(pairs.indices))
        XCTAssertNotEqual(e0, e1)
        XCTAssertEqual(e0, loop.order(epoch: 0), "the same seed and epoch give the same order")
        func padding(_ order: [Int]) -> Int {
            stride(from: 0, to: order.count, by: 4).map { s -> Int in
                let rows = order[s..<min(order.count, s + 4)].flatMap { [pairs[$0].better.count, pairs[$0].worse.count] }
                return rows.count * rows.max()! - rows.reduce(0, +)
            }.reduce(0, +)
        }
        var r = SeededGenerator(seed: 1)
        let random = seededShuffle(Array(pairs.indices), &r)
        XCTAssertLessThan(Double(padding(e0)), 0.8 * Double(padding(random)), "length grouping saves padding")
        // 203 = 50 batches of 4 and one of 3, which comes last; the chunks' batches are not in length order.
        XCTAssertEqual(Set(e0.suffix(3)).count, 3)
        XCTAssertTrue(Set(e0.prefix(200)).isDisjoint(with: Set(e0.suffix(3))))
        let lengths = stride(from: 0, to: 64, by: 4).map { s in pairs[e0[s]].better.count }
        XCTAssertNotEqual(lengths, lengths.sorted())
    }
}
