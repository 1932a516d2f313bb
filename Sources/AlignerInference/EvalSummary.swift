import AlignerData
import AlignerFormats
import AlignerMeasures
import AlignerModel
import AlignerReports
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
    /// Every generated record with its texts (and, when judged, scores and whether the correction is useful): what the
    /// figures above stand for. The Markdown table shows the first `sampleCount`; report.html all of them.
    public var samples: [Sample]?
    /// The names of the control models whose corrections each sample holds (`Sample.controlCorrections`), in order.
    public var controlNames: [String]?

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
        /// The control models' corrections of this record (`controlNames`) and whether each ended with its end token.
        public var controlCorrections: [String]?
        public var controlEnded: [Bool]?
    }

    /// Records shown in the Markdown table.
    public static let sampleCount = 5

    public var table: String {
        var s = metricsTable().markdown()
        if let samples, !samples.isEmpty {
            func clip(_ t: String, _ n: Int) -> String {
                let flat = t.split(whereSeparator: \.isNewline).joined(separator: " ⏎ ").replacingOccurrences(of: "|", with: "\\|")
                return flat.count > n ? String(flat.prefix(n)) + "…" : flat
            }
            let shown = samples.prefix(Self.sampleCount)
            s += "\nThe first \(shown.count) generated records (question's last 120 characters, texts up to 240):\n\n"
            for (i, x) in shown.enumerated() {
                s += "\(i + 1). question: …\(clip(String(x.question.suffix(120)), 120))\n"
                s += "   answer\(x.answerScore.map { String(format: " (score %.2f)", $0) } ?? ""): \(clip(x.answer, 240))\n"
                s += "   correction\(x.correctionScore.map { String(format: " (score %.2f)", $0) } ?? "")\(x.ended ? "" : " [unfinished]")\(x.useful.map { $0 ? " [useful]" : " [not useful]" } ?? ""): \(clip(x.correction, 240))\n"
                s += "   reference: \(clip(x.reference, 240))\n"
            }
        }
        if let judge {
            s += "\n" + judge.controlsTable
        } else if let measures = measuresTable() {
            s += "\n" + measures.markdown()
            if let model = textMeasures?.first?.measures.fluencyModel { s += "\nFluency: mean per-token loss of each text under \(model) (lower reads more fluently).\n" }
        }
        return s
    }

    /// The headline figures, one row each (keys as in the JSON summary); with a judge, its verdict rows.
    public func metricsTable() -> ReportTable {
        typealias Cell = ReportTable.Cell
        var rows: [[Cell]] = [[Cell("records"), Cell("\(records) (\(scored) scored)", value: Double(records))],
                              [Cell("correction loss"), .number(loss)], [Cell("perplexity"), .number(perplexity, "%.2f")]]
        if let c = copyRate {
            rows.append([Cell("generated"), Cell("\(generated)", value: Double(generated))])
            rows.append([Cell("copy rate (output = answer)"), .number(c, "%.3f")])
            rows.append([Cell(String(format: "near-copy rate (edit distance to the answer ≤ %.2f)", CorrectionMetrics.nearCopyThreshold)), .number(nearCopyRate ?? .nan, "%.3f")])
            rows.append([Cell("mean normalised edit distance to the answer"), .number(editDistanceToAnswer ?? .nan, "%.3f")])
            rows.append([Cell("mean normalised edit distance to the reference"), .number(editDistanceToReference ?? .nan, "%.3f")])
        }
        if let judge { rows += judge.verdictRows.map { [Cell($0.0, strong: $0.0 == "verdict"), Cell($0.1)] } }
        return ReportTable(id: "metrics", columns: [.init("metric", "metric", numeric: false), .init("value", "value")], rows: rows)
    }

    /// Refusal and degeneration measures of every set of responses (when generated without a judge; the judge's
    /// controls table has them otherwise).
    public func measuresTable() -> ReportTable? {
        guard let measures = textMeasures else { return nil }
        typealias Cell = ReportTable.Cell
        let columns: [ReportTable.Column] = [.init("name", "responses (\(generated) records)", numeric: false), .init("refusal_rate", "refusal rate"),
                                             .init("degenerate_rate", "degenerate"), .init("generic_rate", "generic"), .init("repeated4", "repeated 4-grams"),
                                             .init("distinct2", "distinct-2"), .init("unfinished_rate", "unfinished"), .init("mean_words", "mean words"),
                                             .init("fluency_loss", "fluency (loss/token)")]
        let rows = measures.map { m -> [Cell] in
            [Cell(m.name), .number(m.measures.refusalRate, "%.3f"), .number(m.measures.degenerateRate, "%.3f"), .number(m.measures.genericRate, "%.3f"),
             .number(m.measures.repeated4, "%.3f"), .number(m.measures.distinct2, "%.3f"), .number(m.measures.unfinishedRate, "%.3f"),
             .number(m.measures.meanWords, "%.1f"), .number(m.measures.fluencyLoss, "%.3f")]
        }
        return ReportTable(id: "measures", columns: columns, rows: rows)
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
            summary.samples = subset.indices.map { i in
                Sample(question: subset[i].question, answer: subset[i].answer, reference: subset[i].correction, correction: outputs.texts[i],
                       ended: outputs.ended[i], answerScore: judgedAnswers?.scores[i], correctionScore: judgedCorrections?.scores[i],
                       useful: judgedCorrections?.usefulRecords[i],
                       controlCorrections: controlOutputs.isEmpty ? nil : controlOutputs.map { $0.1.texts[i] },
                       controlEnded: controlOutputs.isEmpty ? nil : controlOutputs.map { $0.1.ended[i] })
            }
            if !controlOutputs.isEmpty { summary.controlNames = controlOutputs.map(\.0) }
            if let fluency { try summary.addFluency(fluency, answers: subset.map(\.answer), references: subset.map(\.correction),
                                                    controls: controlOutputs.map(\.1.texts), corrections: outputs.texts) }
        }
        return summary
    }
}
