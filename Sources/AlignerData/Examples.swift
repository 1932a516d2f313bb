import AlignerTokenizers
import Foundation

/// One training example: token ids and labels (-100 on every prompt token, so only the correction and EOS count).
public struct Example: Sendable, Equatable {
    public var ids: [Int]
    public var labels: [Int]
    public var count: Int { ids.count }
}

/// Builds examples from records: prompt prefix + prompt tokens + correction tokens + EOS. Prompt and correction are
/// tokenized separately so that the boundary is exact. The prefix is what transformers' `tokenizer(prompt)` starts
/// with: the tokenizer's post-processor tokens when its file has a post-processor (Hugging Face models), otherwise
/// the BOS token the recipe names (tokenizers AlignerKit trained).
public struct ExampleBuilder: Sendable {
    public let tokenizer: Tokenizer
    public let template: PromptTemplate
    public let bosId: Int?
    /// Ids before every prompt (see the type's description).
    public let promptPrefix: [Int]
    /// When set, the prompt is the template's user message rendered through this chat template (one user turn and
    /// the generation prompt, as `apply_chat_template(..., add_generation_prompt=True)`), encoded without the
    /// post-processor's tokens (the chat template writes them).
    public let chat: ChatPrompt?
    public let eosId: Int
    /// Longest example in tokens.
    public let maxLength: Int

    /// What happened to over-long records.
    public struct Report: Sendable, Equatable {
        public var built = 0
        public var answerShortened = 0
        public var questionShortened = 0
        public var dropped = 0
        public var summary: String {
            "\(built) examples; \(answerShortened) with the answer shortened, \(questionShortened) with the question shortened, \(dropped) dropped (correction alone too long)"
        }
    }

    public init(tokenizer: Tokenizer, template: PromptTemplate, specialTokens: SpecialTokens, maxLength: Int,
                chat: ChatPrompt? = nil) throws {
        self.tokenizer = tokenizer
        self.chat = chat
        self.template = template
        self.maxLength = maxLength
        bosId = specialTokens.bos.flatMap { tokenizer.id(of: $0) }
        promptPrefix = tokenizer.hasPostProcessor ? tokenizer.prefixIds : (bosId.map { [$0] } ?? [])
        guard let eos = specialTokens.eos, let eosId = tokenizer.id(of: eos) else {
            throw SettingError(setting: "tokenizer.eos", message: "the tokenizer has no EOS token (name one, e.g. </s>)")
        }
        self.eosId = eosId
    }

    /// The prompt's token ids (with the prompt prefix) for a question and answer, as used for generation too.
    public func promptIds(question: String, answer: String) -> [Int] {
        if let chat { return tokenizer.encode(chat.render(template.userMessage(question: question, answer: answer))) }
        return promptPrefix + tokenizer.encode(template.render(question: question, answer: answer))
    }

    /// Prompt ids for a question and answer within `budget` tokens: the answer is shortened first (unless
    /// `keepAnswer`), then the question. Returns nil when even an empty question (and answer) do not fit; the flags
    /// say what was shortened.
    public func fittingPrompt(question q: String, answer a: String, budget: Int, keepAnswer: Bool = false)
        -> (ids: [Int], answerShortened: Bool, questionShortened: Bool, question: String, answer: String)? {
        var question = q, answer = a
        var prompt = promptIds(question: question, answer: answer)
        var shortenedAnswer = false, shortenedQuestion = false
        // Each round cuts the excess (and a little more, for token-boundary effects) from the answer, then the question.
        var rounds = 0
        while prompt.count > budget && rounds < 16 {
            rounds += 1
            let excess = prompt.count - budget
            let answerIds = keepAnswer ? [] : tokenizer.encode(answer)
            if !answerIds.isEmpty {
                answer = tokenizer.decode(Array(answerIds.prefix(max(0, answerIds.count - excess - rounds))))
                shortenedAnswer = true
            } else {
                let questionIds = tokenizer.encode(question)
                if questionIds.isEmpty { break }
                question = tokenizer.decode(Array(questionIds.prefix(max(0, questionIds.count - excess - rounds))))
                shortenedQuestion = true
            }
            prompt = promptIds(question: question, answer: answer)
        }
        return prompt.count <= budget ? (prompt, shortenedAnswer, shortenedQuestion, question, answer) : nil
    }

    /// The prompt as text that a Hugging Face tokenizer built from the same tokenizer.json (with its post-processor)
    /// turns into `promptIds`: the chat template's rendering, or the template's with the BOS token's text in front when
    /// AlignerKit adds it itself (a tokenizer without a post-processor).
    public func promptText(question: String, answer: String) -> String {
        if let chat { return chat.render(template.userMessage(question: question, answer: answer)) }
        let bos = !tokenizer.hasPostProcessor && !promptPrefix.isEmpty ? promptPrefix.compactMap { tokenizer.token(of: $0) }.joined() : ""
        return bos + template.render(question: question, answer: answer)
    }

    /// An example with its texts: the prompt as `promptText` (the question and answer shortened as in the example) and
    /// the target text (the correction; for an identity record, the answer as the prompt shows it); nil when the
    /// correction alone does not fit.
    public func buildWithText(_ r: QACRecord) -> (example: Example, prompt: String, target: String)? {
        fitted(r).map { ($0.example, promptText(question: $0.fit.question, answer: $0.fit.answer), $0.target) }
    }

    /// The example of a record, shortening the answer inside the prompt first, then the question, never the
    /// correction; nil when the correction alone does not fit. `report` counts what happened.
    ///
    /// An identity record (correction equal to the answer: the Q-A-A examples of the warm-up stage) is the exception:
    /// its target is the answer *as the prompt shows it*, so when the answer must be shortened to fit, the target is
    /// shortened with it (the longest answer prefix whose prompt and copy fit together), and the model is never asked
    /// to write text it cannot see.
    public func build(_ r: QACRecord, report: inout Report) -> Example? {
        guard let (example, fit, _) = fitted(r) else { report.dropped += 1; return nil }
        report.built += 1
        if fit.answerShortened { report.answerShortened += 1 }
        if fit.questionShortened { report.questionShortened += 1 }
        return example
    }

    typealias Fit = (ids: [Int], answerShortened: Bool, questionShortened: Bool, question: String, answer: String)

    /// The example of a record, how its prompt was fitted and its target text (nil when the correction alone does
    /// not fit).
    private func fitted(_ r: QACRecord) -> (example: Example, fit: Fit, target: String)? {
        if r.correction == r.answer { return fittedIdentity(r) }
        let target = tokenizer.encode(r.correction) + [eosId]
        guard let fit = fittingPrompt(question: r.question, answer: r.answer, budget: maxLength - target.count) else { return nil }
        return (example(prompt: fit.ids, target: target), fit, r.correction)
    }

    /// Answer tokens an identity example keeps before its question is shortened instead.
    public static let identityAnswerFloor = 64

    /// An identity example: prompt(question, a′) + a′ + EOS within `maxLength`, with a′ the longest prefix (in
    /// tokens) of the answer that fits twice (once shown, once as the target) beside the whole question; when that is
    /// shorter than `identityAnswerFloor` tokens, a′ is that floor and the question is shortened instead (as in any
    /// example), if the template leaves room for it; when nothing else fits, the answer is empty and the target is EOS
    /// alone.
    private func fittedIdentity(_ r: QACRecord) -> (example: Example, fit: Fit, target: String)? {
        func attempt(_ answer: String) -> (example: Example, fit: Fit, target: String)? {
            let target = tokenizer.encode(answer) + [eosId]
            let prompt = promptIds(question: r.question, answer: answer)
            guard prompt.count + target.count <= maxLength else { return nil }
            return (example(prompt: prompt, target: target), (prompt, answer != r.answer, false, r.question, answer), answer)
        }
        if let whole = attempt(r.answer) { return whole }
        let answerIds = tokenizer.encode(r.answer)
        // Binary search for the most answer tokens that fit (the fitted length grows with the prefix).
        let floor = min(answerIds.count, Self.identityAnswerFloor)
        var lo = 0, hi = answerIds.count - 1, best: (example: Example, fit: Fit, target: String)?, bestCount = -1
        while lo <= hi {
            let mid = (lo + hi) / 2
            if let found = attempt(tokenizer.decode(Array(answerIds.prefix(mid)))) {
                (best, bestCount) = (found, mid)
                lo = mid + 1
            } else {
                hi = mid - 1
            }
        }
        if let best, bestCount >= floor { return best }
        // The floor beside a shortened question.
        let shown = tokenizer.decode(Array(answerIds.prefix(floor)))
        let target = tokenizer.encode(shown) + [eosId]
        if floor > 0, let fit = fittingPrompt(question: r.question, answer: shown, budget: maxLength - target.count, keepAnswer: true) {
            return (example(prompt: fit.ids, target: target), (fit.ids, shown != r.answer, fit.questionShortened, fit.question, shown), shown)
        }
        if let best { return best }
        // Not even that: shorten the question beside an empty answer, the target is EOS alone.
        guard let fit = fittingPrompt(question: r.question, answer: "", budget: maxLength - 1) else { return nil }
        return (example(prompt: fit.ids, target: [eosId]), (fit.ids, !r.answer.isEmpty, fit.questionShortened, fit.question, ""), "")
    }

    private func example(prompt: [Int], target: [Int]) -> Example {
        Example(ids: prompt + target, labels: [Int](repeating: -100, count: prompt.count) + target)
    }

    /// Examples of all records, in order, with the report.
    public func buildAll(_ records: [QACRecord]) -> (examples: [Example], report: Report) {
        var report = Report()
        let examples = records.compactMap { build($0, report: &report) }
        return (examples, report)
    }
}
