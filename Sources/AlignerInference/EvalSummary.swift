import AlignerData
import AlignerFormats
import AlignerMeasures
import AlignerModel
import AlignerTensor
import Foundation

/// Text measures of one set of responses, by name.
public struct NamedTextMeasures: Codable, Equatable, Sendable {
    public var name: String
    public var measures: TextMeasures
}

/// `aligner eval`'s results.
public struct EvalSummary: Codable, Sendable {
    public var source: String
    public var records: Int
    /// Records whose example fits the context (loss counts only these).
    public var scored: Int
    public var loss: Double
    public var perplexity: Double
    public var generated: Int
    public var copyRate: Double?
    public var nearCopyRate: Double?
    public var editDistanceToAnswer: Double?
    public var editDistanceToReference: Double?
    /// Refusal and degeneration measures of the answers, the references and the generated corrections (and of the
    /// control models' corrections), on the generated records.
    public var textMeasures: [NamedTextMeasures]?
    /// A reward model's verdict on the generated corrections (`--judge`), with its controls.
    public var judge: JudgeSummary?
    /// The first generated records with their texts (and, when judged, scores and whether the correction is useful):
    /// what the figures above stand for.
    public var samples: [Sample]?

    /// One generated record.
    public struct Sample: Codable, Sendable {
        public var question: String
        public var answer: String
        public var reference: String
        public var correction: String
        /// The correction ended with its end token.
        public var ended: Bool
        public var answerScore: Double?
        public var correctionScore: Double?
        public var useful: Bool?
    }

    /// Records shown as samples.
    public static let sampleCount = 5

    public var table: String {
        var s = "| metric | value |\n|---|---:|\n"
        s += "| records | \(records) (\(scored) scored) |\n"
        s += String(format: "| correction loss | %.4f |\n| perplexity | %.2f |\n", loss, perplexity)
        if let c = copyRate {
            s += "| generated | \(generated) |\n"
            s += String(format: "| copy rate (output = answer) | %.3f |\n", c)
            s += String(format: "| near-copy rate (edit distance to the answer ≤ %.2f) | %.3f |\n", CorrectionMetrics.nearCopyThreshold, nearCopyRate ?? .nan)
            s += String(format: "| mean normalised edit distance to the answer | %.3f |\n", editDistanceToAnswer ?? .nan)
            s += String(format: "| mean normalised edit distance to the reference | %.3f |\n", editDistanceToReference ?? .nan)
        }
        if let judge { s += judge.tableRows }
        if let samples, !samples.isEmpty {
            func clip(_ t: String, _ n: Int) -> String {
                let flat = t.split(whereSeparator: \.isNewline).joined(separator: " ⏎ ").replacingOccurrences(of: "|", with: "\\|")
                return flat.count > n ? String(flat.prefix(n)) + "…" : flat
            }
            s += "\nThe first \(samples.count) generated records (question's last 120 characters, texts up to 240):\n\n"
            for (i, x) in samples.enumerated() {
                s += "\(i + 1). question: …\(clip(String(x.question.suffix(120)), 120))\n"
                s += "   answer\(x.answerScore.map { String(format: " (score %.2f)", $0) } ?? ""): \(clip(x.answer, 240))\n"
                s += "   correction\(x.correctionScore.map { String(format: " (score %.2f)", $0) } ?? "")\(x.ended ? "" : " [unfinished]")\(x.useful.map { $0 ? " [useful]" : " [not useful]" } ?? ""): \(clip(x.correction, 240))\n"
                s += "   reference: \(clip(x.reference, 240))\n"
            }
        }
        if let judge {
            s += "\n" + judge.controlsTable
        } else if let measures = textMeasures {
            s += "\n| responses (\(generated) records) | refusal rate | degenerate | generic | repeated 4-grams | distinct-2 | unfinished | mean words | fluency (loss/token) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
            for m in measures {
                s += String(format: "| %@ | %.3f | %.3f | %.3f | %.3f | %.3f | ", m.name, m.measures.refusalRate, m.measures.degenerateRate, m.measures.genericRate, m.measures.repeated4, m.measures.distinct2)
                s += (m.measures.unfinishedRate.map { String(format: "%.3f", $0) } ?? "–") + String(format: " | %.1f | ", m.measures.meanWords)
                s += (m.measures.fluencyLoss.map { String(format: "%.3f", $0) } ?? "–") + " |\n"
            }
            if let model = measures.first?.measures.fluencyModel { s += "\nFluency: mean per-token loss of each text under \(model) (lower reads more fluently).\n" }
        }
        return s
    }

    /// Mean per-token loss under `fluency` for every set of responses measured (in `textMeasures` and, when judged,
    /// in the judge's rows, the fixed refusal included).
    mutating func addFluency(_ fluency: FluencyScorer, answers: [String], references: [String], controls: [[String]], corrections: [String]) throws {
        let sets = [answers, references] + controls + [corrections]
        let losses = try sets.map { try fluency.meanLoss($0) }
        if var measures = textMeasures, measures.count == sets.count {
            for k in measures.indices {
                measures[k].measures.fluencyLoss = losses[k]
                measures[k].measures.fluencyModel = fluency.name
            }
            textMeasures = measures
        }
        guard var judge else { return }
        // The judge's rows: the answers, the fixed refusal, the references, the controls, the corrections.
        let judged = [losses[0], try fluency.meanLoss([judge.refusalText])] + Array(losses[1...])
        if judge.responses.count == judged.count {
            for k in judge.responses.indices {
                judge.responses[k].measures.fluencyLoss = judged[k]
                judge.responses[k].measures.fluencyModel = fluency.name
            }
        }
        self.judge = judge
    }

    /// Loss and perplexity of the corrections of `records` under `aligner` (masked as in training) and, when
    /// `generate` > 0, generation metrics and text measures on the first `generate` records. `batchSize` records are
    /// scored together; `slots` are generated together (nil: `LlamaModel.automaticSlots`, within memory).
    /// With `judge`, the generated corrections are judged beside their controls (the answers, a fixed refusal, the
    /// references, and the corrections of each of `controls`, e.g. the base model used zero-shot).
    public static func compute(_ aligner: AlignerBundle, records: [QACRecord], generate: Int, options: GenerationOptions,
                               batchSize: Int, slots: Int? = nil, judge: RewardJudge? = nil, tieMargin: Double = JudgeSummary.defaultTieMargin,
                               controls: [(name: String, aligner: AlignerBundle)] = [], fluency: FluencyScorer? = nil,
                               progress: (Int, Int, Int) -> Void = { _, _, _ in },
                               note: (String) -> Void = { _ in }) throws -> EvalSummary {
        guard batchSize >= 1 else { throw SettingError(setting: "batch_size", message: "must be at least 1, got \(batchSize)") }
        guard generate >= 0 else { throw SettingError(setting: "generate", message: "must be 0 or more, got \(generate)") }
        try options.validate()
        guard !records.isEmpty else { throw SettingError(setting: "records", message: "there are none to evaluate (the input holds no record)") }
        let builder = try aligner.exampleBuilder()
        let (examples, _) = builder.buildAll(records)
        guard !examples.isEmpty else { throw SettingError(setting: "records", message: "no record fits the model's context of \(aligner.model.config.maxPositionEmbeddings) tokens") }
        let padId = aligner.specialTokens.pad.flatMap { aligner.tokenizer.id(of: $0) } ?? aligner.eosIds[0]
        let loss = try Evaluation.loss(aligner.model, examples, batchSize: batchSize, padId: padId)
        var summary = EvalSummary(source: aligner.source.path, records: records.count, scored: examples.count, loss: loss,
                                  perplexity: Foundation.exp(loss), generated: 0)
        let n = min(generate, records.count)
        if n > 0 {
            let subset = Array(records.prefix(n))
            let pairs = subset.map { (question: $0.question, answer: $0.answer) }
            let outputs = try Corrector.corrections(pairs, with: [aligner], options: options, slots: slots, progress: progress, note: note)
            let m = try CorrectionMetrics(outputs: outputs.texts, records: subset)
            summary.generated = m.generated
            summary.copyRate = m.copyRate
            summary.nearCopyRate = m.nearCopyRate
            summary.editDistanceToAnswer = m.editToAnswer
            summary.editDistanceToReference = m.editToReference
            let controlOutputs = try controls.map { c in
                (c.name, try Corrector.corrections(pairs, with: [c.aligner], options: options, slots: slots, progress: progress, note: note))
            }
            summary.textMeasures = [NamedTextMeasures(name: "answers", measures: TextMeasures(texts: subset.map(\.answer))),
                                    NamedTextMeasures(name: "references", measures: TextMeasures(texts: subset.map(\.correction)))]
                + controlOutputs.map { NamedTextMeasures(name: $0.0, measures: TextMeasures(texts: $0.1.texts, ended: $0.1.ended)) }
                + [NamedTextMeasures(name: "corrections", measures: TextMeasures(texts: outputs.texts, ended: outputs.ended))]
            if let judge {
                summary.judge = try JudgeSummary.judge(judge, questions: subset.map(\.question), answers: subset.map(\.answer), corrections: outputs.texts,
                                                       references: subset.map(\.correction), ended: outputs.ended,
                                                       controls: controlOutputs.map { JudgeSummary.Control(name: $0.0, texts: $0.1.texts, ended: $0.1.ended) },
                                                       tieMargin: tieMargin, batchSize: batchSize).summary
            }
            let judgedAnswers = summary.judge?.responses.first, judgedCorrections = summary.judge?.responses.last
            summary.samples = subset.indices.prefix(sampleCount).map { i in
                Sample(question: subset[i].question, answer: subset[i].answer, reference: subset[i].correction, correction: outputs.texts[i],
                       ended: outputs.ended[i], answerScore: judgedAnswers?.scores[i], correctionScore: judgedCorrections?.scores[i],
                       useful: judgedCorrections?.usefulRecords[i])
            }
            if let fluency { try summary.addFluency(fluency, answers: subset.map(\.answer), references: subset.map(\.correction),
                                                    controls: controlOutputs.map(\.1.texts), corrections: outputs.texts) }
        }
        return summary
    }
}
