import AlignerFiles
import AlignerMeasures
import AlignerReports
import AlignerRuns
import Foundation

extension EvalSummary {
    /// The report page beside a summary file: `x.json` → `x.html` (any other name gets ".html" added).
    public static func reportURL(forSummary url: URL) -> URL {
        url.pathExtension.lowercased() == "json" ? url.deletingPathExtension().appendingPathExtension("html") : URL(fileURLWithPath: url.path + ".html")
    }

    /// Writes the JSON summary to `url` and its HTML report beside it (`reportURL`), each atomically; returns the report.
    @discardableResult
    public func write(to url: URL, input: String) throws -> URL {
        let page = Self.reportURL(forSummary: url)
        try AtomicFile.write(ResultJSON.encode(self), to: url)
        try AtomicFile.write(Data(html(input: input).render().utf8), to: page)
        return page
    }

    /// `aligner eval`'s report: the figures, the controls beside the corrections (with a judge), and every generated
    /// record with the Aligner's correction and each control model's, their scores and flags.
    public func html(input: String) -> HTMLReport {
        var blocks: [HTMLReport.Block] = [.paragraph("Aligner: \(source). Records: \(input).")]
        blocks.append(.table(metricsTable()))
        if let judge {
            blocks.append(.heading("Controls beside the corrections"))
            blocks.append(.table(judge.responsesTable()))
            blocks.append(.paragraph("Verdict: \(judge.headline)."))
            blocks += judge.verdicts.map { .paragraph($0.sentence) }
            blocks.append(.paragraph(judge.usefulRuleText))
        } else if let measures = measuresTable() {
            blocks.append(.heading("Refusal and degeneration measures"))
            blocks.append(.table(measures))
        }
        blocks.append(.heading("Generated corrections"))
        blocks.append(.gallery(gallery()))
        return HTMLReport(title: "Evaluation of \(source)", blocks: blocks)
    }

    func gallery() -> HTMLReport.Gallery {
        let samples = self.samples ?? []
        let names = controlNames ?? []
        let arms = ["corrections by the Aligner"] + names.map { "control: \($0)" }
        let answers = samples.map(\.answer)
        let responses = judge?.responses ?? []
        // Texts, ended flags and the judge's set of each arm: the Aligner's corrections, then each control model's.
        var sets: [(texts: [String], ended: [Bool], judged: JudgedResponses?)] = [(samples.map(\.correction), samples.map(\.ended), responses.last)]
        for (k, name) in names.enumerated() {
            sets.append((samples.map { $0.controlCorrections.map { k < $0.count ? $0[k] : "" } ?? "" },
                         samples.map { $0.controlEnded.map { k < $0.count ? $0[k] : true } ?? true },
                         responses.first { $0.name == name }))
        }
        let flags = sets.map { ResponseFlags.of($0.texts, answers: answers, ended: $0.ended, useful: $0.judged?.usefulRecords) }
        let referenceScores = responses.first { $0.name == JudgeSummary.referenceName }?.scores
        let records = samples.enumerated().map { i, x -> HTMLReport.Gallery.Record in
            var r = HTMLReport.Gallery.Record(question: x.question, answer: x.answer, answerScore: x.answerScore, reference: x.reference,
                                              referenceScore: referenceScores.flatMap { i < $0.count ? $0[i] : nil })
            r.entries = sets.indices.map { k in
                .init(arm: k, seed: nil, isBest: true, text: sets[k].texts[i], score: sets[k].judged.flatMap { i < $0.scores.count ? $0.scores[i] : nil },
                      flags: flags[k][i].names)
            }
            return r
        }
        var note = "The \(samples.count) generated records, greedy unless sampling was asked for. "
        if let judge { note += "Scores: \(judge.judge) on each text. " }
        note += ResponseFlags.legend(judged: judge != nil)
        return HTMLReport.Gallery(arms: arms, flags: ResponseFlags.offered(judged: judge != nil), records: records, note: note, hasSeeds: false)
    }
}
