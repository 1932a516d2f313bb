import AlignerTokenizers
import Foundation
import XCTest

@testable import AlignerData

/// A tokenizer trained on a few sentences, with <pad>, <s>, </s>.
let smallTokenizer: Tokenizer = try! BPETrainer(vocabSize: 320, specialTokens: ["<pad>", "<s>", "</s>"]).train(
    ["How do I bake bread? Mix flour and water.", "BEGINNING OF CONVERSATION: USER: Edit the following Question-Answer pair",
     "to make it more helpful and harmless: ASSISTANT:", "I can't help with that."])

final class TemplateTests: XCTestCase {
    func testBuiltInTemplates() throws {
        XCTAssertEqual(PromptTemplate.v1.render(question: "Q?", answer: "A."),
                       "BEGINNING OF CONVERSATION: USER: Edit the following Question-Answer pair to make it more helpful and harmless: Q? | A. ASSISTANT:")
        XCTAssertEqual(try PromptTemplate.named("v2").render(question: "Q?", answer: "A."),
                       "BEGINNING OF CONVERSATION: USER: ##Question: Q?\n##Answer: A.\n##Correction:  ASSISTANT:")
        XCTAssertEqual(try PromptTemplate.named("empathy").render(question: "Q", answer: "A"),
                       "BEGINNING OF CONVERSATION: USER: Edit the following Question-Answer pair to make it more empathic and helpful: Q | A ASSISTANT:")
        XCTAssertThrowsError(try PromptTemplate.named("v9")) { XCTAssertTrue("\($0)".contains("v1, v2")) }
    }

    func testCustomTemplatesAndBracesInText() throws {
        let t = try PromptTemplate(text: "Q: {question}\nA: {answer}\nC:")
        XCTAssertEqual(t.render(question: "what is {answer}?", answer: "{question} {x"), "Q: what is {answer}?\nA: {question} {x\nC:")
        XCTAssertThrowsError(try PromptTemplate(text: "only {question}")) { XCTAssertTrue("\($0)".contains("{answer}")) }
    }
}

final class ExampleTests: XCTestCase {
    let specials = SpecialTokens(bos: "<s>", eos: "</s>", pad: "<pad>")

    func testPromptIsMaskedExactlyAndTargetEndsWithEOS() throws {
        let builder = try ExampleBuilder(tokenizer: smallTokenizer, template: .v1, specialTokens: specials, maxLength: 512)
        let r = QACRecord(question: "How do I bake bread?", answer: "Mix flour.", correction: "Mix flour and water.")
        var report = ExampleBuilder.Report()
        let e = try XCTUnwrap(builder.build(r, report: &report))
        let prompt = [1] + smallTokenizer.encode(PromptTemplate.v1.render(question: r.question, answer: r.answer))
        let target = smallTokenizer.encode(r.correction) + [2]
        XCTAssertEqual(e.ids, prompt + target)
        XCTAssertEqual(e.labels, [Int](repeating: -100, count: prompt.count) + target)
        XCTAssertEqual(e.ids.first, 1)
        XCTAssertEqual(e.ids.last, 2)
        // The correction follows "ASSISTANT:" with no space: decoding the whole example shows the exact boundary.
        XCTAssertTrue(smallTokenizer.decode(e.ids).hasSuffix("ASSISTANT:Mix flour and water.</s>"))
        XCTAssertEqual(report.built, 1)
        // Without a BOS token the example starts with the prompt.
        let noBos = try ExampleBuilder(tokenizer: smallTokenizer, template: .v1, specialTokens: SpecialTokens(eos: "</s>"), maxLength: 512)
        XCTAssertEqual(noBos.build(r, report: &report)?.ids, Array(prompt.dropFirst()) + target)
        XCTAssertThrowsError(try ExampleBuilder(tokenizer: smallTokenizer, template: .v1, specialTokens: SpecialTokens(), maxLength: 10))
    }

    /// A Hugging Face tokenizer.json decides the prompt's special tokens, as transformers' tokenizer(prompt) does:
    /// Llama-3 style adds its BOS by post-processor; Qwen2 style has a post-processor without BOS, so a bos_token
    /// named in tokenizer_config.json (here <|im_start|>) adds nothing.
    func testPromptPrefixFollowsTheTokenizersPostProcessor() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("AlignerTokenizersTests/Fixtures")
        let llama3 = try Tokenizer.load(from: fixtures.appendingPathComponent("llama3-style.tokenizer.json"))
        let b3 = try ExampleBuilder(tokenizer: llama3, template: .v1, specialTokens: SpecialTokens(bos: "<|begin_of_text|>", eos: "<|end_of_text|>"), maxLength: 512)
        let text = PromptTemplate.v1.render(question: "Hi?", answer: "No.")
        XCTAssertEqual(b3.promptIds(question: "Hi?", answer: "No."), llama3.encode(text, addSpecialTokens: true))
        XCTAssertEqual(b3.promptPrefix, [llama3.id(of: "<|begin_of_text|>")!])
        let qwen = try Tokenizer.load(from: fixtures.appendingPathComponent("qwen2-style.tokenizer.json"))
        let bq = try ExampleBuilder(tokenizer: qwen, template: .v1, specialTokens: SpecialTokens(bos: "<|im_start|>", eos: "<|endoftext|>"), maxLength: 512)
        XCTAssertEqual(bq.promptIds(question: "Hi?", answer: "No."), qwen.encode(text, addSpecialTokens: true))
        XCTAssertEqual(bq.promptPrefix, [])
    }

    func testOverLongExamplesShortenAnswerThenQuestionNeverCorrection() throws {
        let long = String(repeating: "flour water ", count: 60)
        let r = QACRecord(question: "How do I bake bread? " + long, answer: long, correction: "Mix flour and water.")
        let target = smallTokenizer.encode(r.correction).count + 1
        let templateOnly = 1 + smallTokenizer.encode(PromptTemplate.v1.render(question: "", answer: "")).count
        // Room for the template, the correction and a bit of question: the answer must go entirely, the question shrinks.
        let max = templateOnly + target + 20
        let builder = try ExampleBuilder(tokenizer: smallTokenizer, template: .v1, specialTokens: specials, maxLength: max)
        var report = ExampleBuilder.Report()
        let e = try XCTUnwrap(builder.build(r, report: &report))
        XCTAssertLessThanOrEqual(e.count, max)
        XCTAssertEqual(Array(e.labels.suffix(target)), smallTokenizer.encode(r.correction) + [2])
        XCTAssertEqual(report.answerShortened, 1)
        XCTAssertEqual(report.questionShortened, 1)
        // Room for a shortened answer only: the question is kept whole.
        let q = smallTokenizer.encode("How do I bake bread?").count
        let builder2 = try ExampleBuilder(tokenizer: smallTokenizer, template: .v1, specialTokens: specials,
                                          maxLength: templateOnly + target + q + 30)
        var report2 = ExampleBuilder.Report()
        let r2 = QACRecord(question: "How do I bake bread?", answer: long, correction: r.correction)
        let e2 = try XCTUnwrap(builder2.build(r2, report: &report2))
        XCTAssertTrue(smallTokenizer.decode(e2.ids).contains("How do I bake bread? | flour water"))
        XCTAssertEqual(report2.answerShortened, 1)
        XCTAssertEqual(report2.questionShortened, 0)
        // A correction that alone does not fit drops the record.
        let tight = try ExampleBuilder(tokenizer: smallTokenizer, template: .v1, specialTokens: specials, maxLength: target + 3)
        var report3 = ExampleBuilder.Report()
        XCTAssertNil(tight.build(r, report: &report3))
        XCTAssertEqual(report3.dropped, 1)
        XCTAssertEqual(tight.buildAll([r, r]).report.dropped, 2)
    }

    /// An identity (Q-A-A) example's target is the answer exactly as its prompt shows it: when the answer is shortened
    /// to fit, the target is shortened with it, and the example still uses the room it has.
    func testIdentityTargetIsTheAnswerAsThePromptShowsIt() throws {
        let long = String(repeating: "Mix flour and water. ", count: 40)
        let r = QACRecord(question: "How do I bake bread?", answer: long, correction: long)
        let templateOnly = 1 + smallTokenizer.encode(PromptTemplate.v1.render(question: r.question, answer: "")).count
        for maxLength in [templateOnly + 4, templateOnly + 20, templateOnly + 57, templateOnly + 110, 4096] {
            let builder = try ExampleBuilder(tokenizer: smallTokenizer, template: .v1, specialTokens: specials, maxLength: maxLength)
            var report = ExampleBuilder.Report()
            let e = try XCTUnwrap(builder.build(r, report: &report), "max_length \(maxLength)")
            XCTAssertLessThanOrEqual(e.count, maxLength)
            let targetIds = e.labels.filter { $0 != -100 }
            XCTAssertEqual(targetIds.last, 2)
            let promptIds = Array(e.ids.prefix(e.count - targetIds.count))
            // Read back from the token ids alone: the text between "| " and " ASSISTANT:" in the prompt is the target.
            let shown = smallTokenizer.decode(promptIds)
            let target = smallTokenizer.decode(Array(targetIds.dropLast()))
            XCTAssertTrue(shown.hasSuffix("How do I bake bread? | \(target) ASSISTANT:"), "max_length \(maxLength): \(shown) / \(target)")
            if maxLength == 4096 {
                XCTAssertEqual(target, long)
                XCTAssertEqual(report.answerShortened, 0)
            } else {
                XCTAssertTrue(long.hasPrefix(target) && target.count < long.count, "max_length \(maxLength)")
                XCTAssertEqual(report.answerShortened, 1)
                // The longest prefix that fits: one more answer token would not (prompt and target each grow).
                XCTAssertGreaterThan(e.count, maxLength - 2 * 3 - 2, "max_length \(maxLength): only \(e.count) tokens used")
            }
            // The text form (the TRL hand-off's completion) is the same target.
            let withText = try XCTUnwrap(builder.buildWithText(r))
            XCTAssertEqual(withText.target, target)
            XCTAssertEqual(withText.example, e)
        }
        // A question too long for any answer: the answer keeps its floor of tokens (shown and copied), the question
        // is shortened instead.
        let longQuestion = QACRecord(question: "How do I bake bread? " + long, answer: long, correction: long)
        let room = templateOnly + 2 * ExampleBuilder.identityAnswerFloor + 30
        let squeezed = try ExampleBuilder(tokenizer: smallTokenizer, template: .v1, specialTokens: specials, maxLength: room)
        var squeezedReport = ExampleBuilder.Report()
        let e = try XCTUnwrap(squeezed.build(longQuestion, report: &squeezedReport))
        XCTAssertLessThanOrEqual(e.count, room)
        let targetIds = e.labels.filter { $0 != -100 }
        let target = smallTokenizer.decode(Array(targetIds.dropLast()))
        XCTAssertEqual(smallTokenizer.encode(target).count, ExampleBuilder.identityAnswerFloor, accuracy: 2)
        XCTAssertTrue(smallTokenizer.decode(Array(e.ids.prefix(e.count - targetIds.count))).hasSuffix("| \(target) ASSISTANT:"))
        XCTAssertEqual(squeezedReport.questionShortened, 1)
        XCTAssertEqual(squeezedReport.answerShortened, 1)
        // A non-identity record keeps its whole correction while its answer is shortened.
        let builder = try ExampleBuilder(tokenizer: smallTokenizer, template: .v1, specialTokens: specials, maxLength: templateOnly + 40)
        let qac = QACRecord(question: r.question, answer: long, correction: "Mix flour and water.")
        XCTAssertEqual(builder.buildWithText(qac)?.target, "Mix flour and water.")
    }
}

final class SplitTests: XCTestCase {
    func records(_ n: Int, questions: Int) -> [QACRecord] {
        (0..<n).map { QACRecord(question: "q\($0 % questions)", answer: "a\($0)", correction: "c\($0)") }
    }

    func testHoldOutIsByQuestionAndDeterministic() throws {
        let rs = records(300, questions: 100)
        let s = try DataSplits.make(rs, holdOut: .fraction(0.1), warmupPercent: 20, seed: 7)
        let evalQ = Set(s.eval.map(\.question)), trainQ = Set(s.train.map(\.question))
        XCTAssertTrue(evalQ.isDisjoint(with: trainQ))
        XCTAssertEqual(s.eval.count + s.train.count, 300)
        XCTAssertEqual(s.eval.count, 30)  // whole questions of 3 records each
        let again = try DataSplits.make(rs, holdOut: .fraction(0.1), warmupPercent: 20, seed: 7)
        XCTAssertEqual(again.eval, s.eval)
        XCTAssertEqual(again.warmup, s.warmup)
        XCTAssertNotEqual(try DataSplits.make(rs, holdOut: .fraction(0.1), warmupPercent: 20, seed: 8).eval, s.eval)
        XCTAssertEqual(try DataSplits.make(rs, holdOut: .count(50), warmupPercent: 0, seed: 7).eval.count, 51)
        XCTAssertThrowsError(try DataSplits.make(rs, holdOut: .fraction(1.5), warmupPercent: 0, seed: 1)) {
            XCTAssertEqual(($0 as? SettingError)?.setting, "data.eval_fraction")
        }
        XCTAssertThrowsError(try DataSplits.make(rs, holdOut: .count(0), warmupPercent: 101, seed: 1))
    }

    /// Several files: each is held out on its own, so a file's held-out records are what a run of that file alone
    /// holds out, whatever other files a recipe adds.
    func testEachSourceIsHeldOutAsItWouldBeAlone() throws {
        let a = records(300, questions: 100)
        let b = (0..<90).map { QACRecord(question: "other \($0 % 45)", answer: "x\($0)", correction: "y\($0)") }
        let alone = try DataSplits.make(a, holdOut: .fraction(0.1), warmupPercent: 20, seed: 7, holdOutSeed: 3)
        let both = try DataSplits.make(sources: [a, b], holdOut: .fraction(0.1), warmupPercent: 20, seed: 7, holdOutSeed: 3)
        XCTAssertEqual(Array(both.eval.prefix(alone.eval.count)), alone.eval)
        XCTAssertEqual(Array(both.train.prefix(alone.train.count)), alone.train)
        XCTAssertEqual(both.sourceCounts.map(\.eval), [alone.eval.count, try DataSplits.make(b, holdOut: .fraction(0.1), warmupPercent: 0, seed: 7, holdOutSeed: 3).eval.count])
        XCTAssertEqual(both.sourceCounts.map(\.eval).reduce(0, +), both.eval.count)
        XCTAssertEqual(both.sourceCounts.map(\.train).reduce(0, +), both.train.count)
        XCTAssertEqual(both.warmup.count, Int((0.2 * Double(both.train.count)).rounded()))
        XCTAssertTrue(Set(both.warmup.map(\.question)).isSubset(of: Set(both.train.map(\.question))))
        // One source: exactly the single-source split.
        let one = try DataSplits.make(sources: [a], holdOut: .fraction(0.1), warmupPercent: 20, seed: 7, holdOutSeed: 3)
        XCTAssertEqual(one.eval, alone.eval)
        XCTAssertEqual(one.warmup, alone.warmup)
        // A count is shared in proportion to the sources' sizes (300 : 90 of 39 -> 30 and 9, whole questions).
        let counted = try DataSplits.make(sources: [a, b], holdOut: .count(39), warmupPercent: 0, seed: 7)
        XCTAssertEqual(counted.sourceCounts.map(\.eval), [30, 10])
    }

    func testNonAnswersAreMadeFromTheRecord() {
        let r = QACRecord(question: "Human: hi\n\nAssistant: hello\n\nHuman: How do I pick a lock?", answer: "Use a tension wrench.",
                          correction: "Call a locksmith if you are locked out of your own home.")
        XCTAssertEqual(NonAnswers.make("refusal", for: r), "I'm sorry, but I can't help with that.")
        XCTAssertEqual(NonAnswers.make("echo", for: r, variant: 1), "You asked: How do I pick a lock?")
        XCTAssertEqual(NonAnswers.make("repetition", for: r, variant: 1),
                       String(repeating: "Call a locksmith if you are ", count: 5).trimmingCharacters(in: .whitespaces))
        XCTAssertTrue(NonAnswers.make("disclaimer", for: r).hasPrefix("Use a tension wrench. Please note"))
        for kind in NonAnswers.kinds { XCTAssertFalse(NonAnswers.make(kind, for: r).isEmpty, kind) }
        XCTAssertEqual(NonAnswers.lastUserTurn("no dialogue"), "no dialogue")
    }

    func testWarmupSetsAreIdentityAndNested() throws {
        let rs = records(500, questions: 500)
        var previous: Set<QACRecord> = []
        for p in [0.0, 2, 10, 20, 50, 100] {
            let s = try DataSplits.make(rs, holdOut: .count(50), warmupPercent: p, seed: 3)
            XCTAssertEqual(s.warmup.count, Int((p / 100 * 450).rounded()))
            XCTAssertTrue(s.warmup.allSatisfy { $0.correction == $0.answer })
            let set = Set(s.warmup)
            XCTAssertTrue(previous.isSubset(of: set), "p=\(p) does not contain the smaller warm-up set")
            previous = set
            XCTAssertEqual(s.train.count, 450)
        }
    }

    func testSplitsAreWrittenInReferenceFieldNames() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let s = try DataSplits.make(records(40, questions: 40), holdOut: .count(4), warmupPercent: 25, seed: 1)
        try s.write(to: dir)
        XCTAssertEqual(try RecordReader.read(path: dir.appendingPathComponent("warmup.jsonl").path).records, s.warmup)
        XCTAssertEqual(try RecordReader.read(path: dir.appendingPathComponent("eval.jsonl").path).records, s.eval)
        let line = try String(contentsOf: dir.appendingPathComponent("train.jsonl"), encoding: .utf8).split(separator: "\n")[0]
        XCTAssertTrue(line.hasPrefix(#"{"answer":"#) && line.contains(#""correction":"#) && line.contains(#""question":"#))
    }
}

final class BatchTests: XCTestCase {
    func examples(_ n: Int) -> [Example] {
        (0..<n).map { i in
            let len = 3 + (i * 7) % 23
            return Example(ids: (0..<len).map { 10 + $0 + i }, labels: (0..<len).map { $0 < 2 ? -100 : 10 + $0 + i })
        }
    }

    func testEveryExampleOncePerEpochAndNewOrderEachEpoch() throws {
        let stream = try BatchStream(examples: examples(97), size: .examples(8), seed: 5, padId: 0)
        let e0 = stream.plan(epoch: 0), e1 = stream.plan(epoch: 1)
        XCTAssertEqual(e0.flatMap { $0 }.sorted(), Array(0..<97))
        XCTAssertEqual(e1.flatMap { $0 }.sorted(), Array(0..<97))
        XCTAssertNotEqual(e0, e1)
        XCTAssertEqual(stream.plan(epoch: 1), e1)
    }

    func testLengthGroupingCutsPadding() throws {
        let ex = examples(400)
        func padding(_ s: BatchStream) -> Int {
            s.plan(epoch: 0).reduce(0) { total, b in
                let l = b.map { ex[$0].count }.max()!
                return total + b.reduce(0) { $0 + l - ex[$1].count }
            }
        }
        let grouped = try BatchStream(examples: ex, size: .examples(8), seed: 1, padId: 0, groupWindow: 50)
        let random = try BatchStream(examples: ex, size: .examples(8), seed: 1, padId: 0, groupWindow: 1)
        XCTAssertLessThan(padding(grouped) * 4, padding(random))
    }

    func testPaddingMasksAndTokenBudget() throws {
        let ex = examples(30)
        var stream = try BatchStream(examples: ex, size: .tokens(64), seed: 2, padId: 0)
        for _ in 0..<10 {
            let b = stream.next()
            XCTAssertLessThanOrEqual(b.batch * b.time, 64)
            for (row, i) in b.examples.enumerated() {
                let e = ex[i]
                XCTAssertEqual(Array(b.ids[(row * b.time)..<(row * b.time + e.count)]), e.ids)
                XCTAssertEqual(Array(b.labels[(row * b.time)..<(row * b.time + e.count)]), e.labels)
                XCTAssertTrue(b.ids[(row * b.time + e.count)..<((row + 1) * b.time)].allSatisfy { $0 == 0 })
                XCTAssertTrue(b.labels[(row * b.time + e.count)..<((row + 1) * b.time)].allSatisfy { $0 == -100 })
                XCTAssertEqual(b.mask[(row * b.time)..<((row + 1) * b.time)].filter { $0 }.count, e.count)
            }
        }
        XCTAssertThrowsError(try BatchStream(examples: ex, size: .tokens(10), seed: 2, padId: 0)) {
            XCTAssertEqual(($0 as? SettingError)?.setting, "batch_tokens")
        }
    }

    func testResumedStreamMatchesUninterrupted() throws {
        var straight = try BatchStream(examples: examples(50), size: .examples(6), seed: 9, padId: 0)
        let all = (0..<25).map { _ in straight.next() }  // crosses into epochs 1, 2 and 3
        var first = try BatchStream(examples: examples(50), size: .examples(6), seed: 9, padId: 0)
        let head = (0..<11).map { _ in first.next() }
        let saved = try JSONEncoder().encode(first.position)
        var resumed = try BatchStream(examples: examples(50), size: .examples(6), seed: 9, padId: 0)
        resumed.position = try JSONDecoder().decode(BatchPosition.self, from: saved)
        let tail = (0..<14).map { _ in resumed.next() }
        XCTAssertEqual(head + tail, all)
        XCTAssertGreaterThan(resumed.position.epoch, 1)
    }
}
