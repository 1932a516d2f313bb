import AlignerInference
import AlignerMeasures
import AlignerReports
import AlignerRuns
import Foundation

extension SweepReport {
    /// `report.html`: the report's text, tables and chart, then every arm's corrections of the same held-out records
    /// (each arm's best seed, or every seed) beside the question, the answer and the reference, with the judge's scores
    /// and the evaluation's flags.
    public func html() -> HTMLReport {
        var blocks: [HTMLReport.Block] = introduction().map { .paragraph($0) }
        if winner != nil { blocks.append(.paragraph(winnerSummary().trimmingCharacters(in: .whitespacesAndNewlines))) }
        blocks.append(.heading("Final eval loss (after stage 2) by arm"))
        blocks += columnNotes().map { .paragraph($0) }
        blocks.append(.table(armTable()))
        if let b = budgetNote() { blocks.append(.paragraph(b)) }
        blocks.append(.heading("Eval loss"))
        blocks.append(.chart(svg: svg(), caption: "eval-loss.svg: " + Self.chartCaption))
        blocks.append(.heading("Every run"))
        blocks.append(.table(runTable()))
        blocks.append(.heading("Corrections of held-out records"))
        blocks.append(.gallery(gallery()))
        return HTMLReport(title: "Identity warm-up sweep: \(recipe.name)", blocks: blocks)
    }

    /// The held-out records the runs corrected, each arm's (each seed's) correction of each, in the order the records
    /// were first met.
    func gallery() -> HTMLReport.Gallery {
        let groups = self.groups
        var records: [HTMLReport.Gallery.Record] = []
        var index: [String: Int] = [:]
        var judged = false, evaluated = false
        for (armIndex, g) in groups.enumerated() {
            let best = bestRun(of: g)?.result.runDirectory ?? g.runs.first?.result.runDirectory
            for run in g.runs {
                guard let kept = run.corrections else { continue }
                let responses = run.judgement?.corrected != nil ? run.judgement?.summary.responses : nil
                if responses != nil { judged = true } else { evaluated = true }
                let scores = responses?.last?.scores, answerScores = responses?.first?.scores
                let referenceScores = responses?.first { $0.name == JudgeSummary.referenceName }?.scores
                let texts = kept.records.map(\.correction)
                let flags = ResponseFlags.of(texts, answers: kept.records.map(\.answer), ended: kept.records.map(\.ended),
                                             useful: responses?.last?.usefulRecords)
                for (i, r) in kept.records.enumerated() {
                    let key = r.question + "\u{0}" + r.answer
                    if index[key] == nil {
                        index[key] = records.count
                        records.append(.init(question: r.question, answer: r.answer, reference: r.reference))
                    }
                    let k = index[key]!
                    if records[k].answerScore == nil, let a = answerScores, i < a.count { records[k].answerScore = a[i] }
                    if records[k].referenceScore == nil, let a = referenceScores, i < a.count { records[k].referenceScore = a[i] }
                    let score = scores.flatMap { i < $0.count ? $0[i] : nil }
                    records[k].entries.append(.init(arm: armIndex, seed: recipe.sweep.seeds.isEmpty ? nil : run.arm.seed,
                                                    isBest: g.runs.count == 1 || run.result.runDirectory == best,
                                                    text: r.correction, score: score, flags: flags[i].names))
                }
            }
        }
        var note: String
        if records.isEmpty {
            note = "No run kept corrections of held-out records: set sweep.judge (a reward model) or train.generate_eval (corrections at each evaluation) to see them here."
        } else {
            note = "\(records.count) held-out records (the same questions for every seed). "
            if let j = results.compactMap(\.judgement).first, judged {
                note += "Each run's Aligner (its best checkpoint, else its newest) corrected them greedily (at most \(j.maxNewTokens) new tokens) and \(j.judge) scored answer, correction and reference. "
            }
            if evaluated { note += (judged ? "Runs without a judgement show " : "Shown: ") + "the corrections of each run's last evaluation during training (train.generate_eval; the final weights). " }
            if groups.contains(where: { $0.runs.count > 1 }) {
                note += "Each arm shows its best seed (\(judgedBest.map { $0 == .usefulRate ? "highest useful rate" : "highest win rate" } ?? "lowest final eval loss")); tick \"every seed\" to see all. "
            }
            note += ResponseFlags.legend(judged: judged)
        }
        return HTMLReport.Gallery(arms: groups.map(\.label), flags: ResponseFlags.offered(judged: judged), records: records, note: note,
                                  hasSeeds: groups.contains { $0.runs.count > 1 })
    }
}
