import AlignerTokenizers
import Foundation
import XCTest

@testable import AlignerData

/// Reward-model inputs built from preference records.
final class PreferencePairsTests: XCTestCase {
    let specials = SpecialTokens(bos: "<s>", eos: "</s>", pad: "<pad>")

    func testConversationWrapperAndPairLayout() throws {
        XCTAssertEqual(PromptTemplate.conversation(question: "What is {answer}?"),
                       "BEGINNING OF CONVERSATION: USER: What is {answer}? ASSISTANT:")
        let builder = try RewardExampleBuilder(tokenizer: smallTokenizer, specialTokens: specials, maxLength: 512)
        let r = QACRecord(question: "How do I bake bread?", answer: "I can't help with that.", correction: "Mix flour and water.")
        let pair = builder.pair(r)
        let prompt = [1] + smallTokenizer.encode("BEGINNING OF CONVERSATION: USER: How do I bake bread? ASSISTANT:")
        XCTAssertEqual(pair.better, prompt + smallTokenizer.encode("Mix flour and water.") + [2])
        XCTAssertEqual(pair.worse, prompt + smallTokenizer.encode("I can't help with that.") + [2])
        let b = RewardExampleBuilder.batch([pair, pair], padId: 0)
        XCTAssertEqual(b.batch, 4)
        XCTAssertEqual(b.time, max(pair.better.count, pair.worse.count))
        XCTAssertEqual(Array(b.ids[0..<pair.better.count]), pair.better)
        XCTAssertEqual(Array(b.ids[(2 * b.time)..<(2 * b.time + pair.worse.count)]), pair.worse)
        XCTAssertTrue(b.ids[(2 * b.time + pair.worse.count)..<(3 * b.time)].allSatisfy { $0 == 0 })
    }

    func testLongInputsAreShortenedQuestionFirstAndKeepEOS() throws {
        let builder = try RewardExampleBuilder(tokenizer: smallTokenizer, specialTokens: specials, maxLength: 64)
        let longQuestion = String(repeating: "How do I bake bread? ", count: 20)
        let s = builder.sequence(question: longQuestion, response: "Mix flour and water.")
        XCTAssertLessThanOrEqual(s.count, 64)
        XCTAssertEqual(s.last, 2)
        XCTAssertTrue(smallTokenizer.decode(s).hasSuffix("ASSISTANT:Mix flour and water.</s>"), smallTokenizer.decode(s))
        // The question keeps its end (a dialogue's last turn), not its beginning.
        let dialogue = "Human: " + String(repeating: "Tell me about flour. ", count: 20) + "Human: And the water?"
        let d = smallTokenizer.decode(builder.sequence(question: dialogue, response: "Warm."))
        XCTAssertTrue(d.contains("Human: And the water? ASSISTANT:Warm."), d)
        XCTAssertFalse(d.contains("USER: Human:"), d)
        // A response longer than the room: its end is cut, EOS kept.
        let long = builder.sequence(question: "Q?", response: String(repeating: "Mix flour and water. ", count: 40))
        XCTAssertEqual(long.count, 64)
        XCTAssertEqual(long.last, 2)
        XCTAssertThrowsError(try RewardExampleBuilder(tokenizer: smallTokenizer, specialTokens: SpecialTokens(bos: "<s>", eos: nil, pad: "<pad>"), maxLength: 64))
    }
}
