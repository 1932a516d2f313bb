import AlignerTokenizers
import Foundation

/// A preference pair as a reward model reads it: the same question followed by the better and by the worse
/// response, each as token ids ending in EOS.
public struct PreferencePair: Sendable, Equatable {
    /// Token ids of the question and the better response, EOS last.
    public var better: [Int]
    /// Token ids of the question and the worse response, EOS last.
    public var worse: [Int]

    public init(better: [Int], worse: [Int]) {
        self.better = better
        self.worse = worse
    }
}

/// Reward-model inputs: the question in a question template (by default the conversation wrapper,
/// `PromptTemplate.conversation`), the response right after it (as an Aligner's correction follows its prompt), then EOS; the prompt prefix (BOS) in front as for
/// Aligner examples. Too long: the question loses its beginning first (a dialogue keeps its last turns), then the
/// response its end (EOS kept).
public struct RewardExampleBuilder {
    public let tokenizer: Tokenizer
    public let maxLength: Int
    public let eosId: Int
    /// "conversation" or a text with a {question} placeholder (`PromptTemplate.question(_:in:)`).
    public let template: String
    let promptPrefix: [Int]

    public init(tokenizer: Tokenizer, specialTokens: SpecialTokens, maxLength: Int, template: String = "conversation") throws {
        guard template == "conversation" || template.contains("{question}") else {
            throw SettingError(setting: "reward.template", message: "must be \"conversation\" or a text with a {question} placeholder")
        }
        self.template = template
        guard maxLength >= 8 else { throw SettingError(setting: "data.max_length", message: "must be at least 8 for reward examples, got \(maxLength)") }
        guard let eos = specialTokens.eos, let eosId = tokenizer.id(of: eos) else {
            throw SettingError(setting: "tokenizer.eos", message: "the tokenizer has no EOS token (name one, e.g. </s>)")
        }
        self.tokenizer = tokenizer
        self.maxLength = maxLength
        self.eosId = eosId
        let bos = specialTokens.bos.flatMap { tokenizer.id(of: $0) }
        promptPrefix = tokenizer.hasPostProcessor ? tokenizer.prefixIds : (bos.map { [$0] } ?? [])
    }

    func promptIds(_ question: String) -> [Int] { promptPrefix + tokenizer.encode(PromptTemplate.question(question, in: template)) }

    /// The ids of `question` answered by `response` within `maxLength`.
    public func sequence(question: String, response: String) -> [Int] {
        var responseIds = tokenizer.encode(response) + [eosId]
        var prompt = promptIds(question)
        var q = question
        var rounds = 0
        // Shorten the question (by tokens, a little more each round for token-boundary effects).
        while prompt.count + responseIds.count > maxLength && rounds < 16 {
            rounds += 1
            let ids = tokenizer.encode(q)
            if ids.isEmpty { break }
            // The end of the question is kept: in a dialogue it is the last turn, the one the response answers.
            q = tokenizer.decode(Array(ids.suffix(max(0, ids.count - (prompt.count + responseIds.count - maxLength) - rounds))))
            prompt = promptIds(q)
        }
        if prompt.count + responseIds.count > maxLength {
            // Even the bare wrapper leaves too little room: cut the response's end, keeping EOS.
            let room = max(1, maxLength - prompt.count)
            responseIds = Array(responseIds.prefix(room - 1)) + [eosId]
            if prompt.count + responseIds.count > maxLength { prompt = Array(prompt.prefix(maxLength - responseIds.count)) }
        }
        return prompt + responseIds
    }

    /// The pair of a Q-A-C record read as a preference: the correction is the better response, the answer the worse
    /// (as `data convert` writes hh-rlhf and pairwise preference data).
    public func pair(_ r: QACRecord) -> PreferencePair {
        PreferencePair(better: sequence(question: r.question, response: r.correction), worse: sequence(question: r.question, response: r.answer))
    }

    /// Pairs `pairs` as one right-padded batch for `RewardModel.scores`: rows 0..<P the better sequences, rows P..<2P
    /// the worse ones; (ids (2P·T), batch 2P, time T).
    public static func batch(_ pairs: [PreferencePair], padId: Int) -> (ids: [Int], batch: Int, time: Int) {
        let rows = pairs.map(\.better) + pairs.map(\.worse)
        let time = max(1, rows.map(\.count).max() ?? 1)
        var ids = [Int](repeating: padId, count: rows.count * time)
        for (r, row) in rows.enumerated() { for (t, id) in row.enumerated() { ids[r * time + t] = id } }
        return (ids, rows.count, time)
    }
}
