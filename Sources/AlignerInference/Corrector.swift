import AlignerData
import AlignerFormats
import AlignerMeasures
import AlignerModel
import AlignerTensor
import Foundation

/// Applying Aligners to upstream answers.
public enum Corrector {
    /// Corrects each (question, answer) with `aligners` in turn: the first corrects the upstream answer, each next one
    /// corrects the previous one's output (stacked Aligners). Returns the last corrections, in order. `progress`
    /// receives (Aligner pass, records done, total) as records finish. `slots` sequences are decoded together with
    /// continuous batching (`LlamaModel.generateContinuously`; nil: `LlamaModel.automaticSlots` for the threads, within
    /// memory): greedy corrections are those of each record alone.
    /// Prompts longer than the context allows (with room for `maxNewTokens`) are shortened, the answer first, then
    /// the question; `note` says how many, per pass.
    public static func correct(
        _ pairs: [(question: String, answer: String)], with aligners: [AlignerBundle], options: GenerationOptions,
        slots: Int? = nil, progress: (Int, Int, Int) -> Void = { _, _, _ in }, note: (String) -> Void = { _ in }
    ) throws -> [String] {
        try corrections(pairs, with: aligners, options: options, slots: slots, progress: progress, note: note).texts
    }

    /// The prompt ids of each (question, answer) for `aligner`, shortened (the answer first, then the question) to
    /// leave room for `maxNewTokens` in its context, and how many were shortened.
    public static func prompts(_ pairs: [(question: String, answer: String)], for aligner: AlignerBundle, maxNewTokens: Int) throws
        -> (ids: [[Int]], shortened: Int) {
        let builder = try aligner.exampleBuilder()
        let context = aligner.model.config.maxPositionEmbeddings
        let budget = context - maxNewTokens
        guard budget > 8 else {
            throw ModelInputError(field: "max_new_tokens", message: "\(maxNewTokens) leaves no room for a prompt in a context of \(context)")
        }
        var shortened = 0
        let ids = try pairs.map { pair -> [Int] in
            guard let fit = builder.fittingPrompt(question: pair.question, answer: pair.answer, budget: budget) else {
                throw ModelInputError(field: "max_new_tokens", message: "the prompt template alone does not fit a context of \(context) tokens with \(maxNewTokens) new tokens; lower --max-new-tokens")
            }
            if fit.answerShortened || fit.questionShortened { shortened += 1 }
            return fit.ids
        }
        return (ids, shortened)
    }

    /// As `correct`, with whether each last correction ended with an end token (false: it stopped at `maxNewTokens`).
    public static func corrections(
        _ pairs: [(question: String, answer: String)], with aligners: [AlignerBundle], options: GenerationOptions,
        slots: Int? = nil, progress: (Int, Int, Int) -> Void = { _, _, _ in }, note: (String) -> Void = { _ in }
    ) throws -> (texts: [String], ended: [Bool]) {
        if let slots, slots < 1 { throw SettingError(setting: "slots", message: "must be at least 1, got \(slots)") }
        try options.validate()
        var answers = pairs.map(\.answer)
        var ended = [Bool](repeating: true, count: pairs.count)
        for (k, aligner) in aligners.enumerated() {
            var opts = options
            opts.eosTokenIds = options.eosTokenIds ?? aligner.eosIds
            let (prompts, shortened) = try Self.prompts(pairs.indices.map { (pairs[$0].question, answers[$0]) }, for: aligner, maxNewTokens: opts.maxNewTokens)
            var out = [String](repeating: "", count: pairs.count)
            if !prompts.isEmpty {
                // Continuous batching: `slots` sequences decode together; each finished one makes room for the next.
                let result = try aligner.model.generateContinuously(prompts: prompts, options: opts, slots: slots) { progress(k, $0, pairs.count) }
                for i in pairs.indices {
                    out[i] = aligner.tokenizer.decode(result.tokens[i], skipSpecialTokens: true).trimmingCharacters(in: .whitespacesAndNewlines)
                    ended[i] = result.stoppedAtEOS[i]
                }
            }
            if shortened > 0 {
                note("Aligner \(k + 1): \(shortened) of \(pairs.count) prompts shortened to fit the context of \(aligner.model.config.maxPositionEmbeddings) tokens with \(opts.maxNewTokens) new tokens (answer first, then question)")
            }
            answers = out
        }
        return (answers, ended)
    }
}

extension CorrectionMetrics {
    /// The metrics of `outputs` for the records they correct (same order and count; throws for none).
    public init(outputs: [String], records: [QACRecord]) throws {
        guard let m = CorrectionMetrics(outputs: outputs, answers: records.map(\.answer), references: records.map(\.correction)) else {
            throw SettingError(setting: "records", message: "\(outputs.count) outputs for \(records.count) records")
        }
        self = m
    }
}
