import AlignerData
import AlignerFiles
import AlignerFormats
import AlignerMeasures
import AlignerModel
import AlignerRecipes
import AlignerReports
import AlignerRuns
import AlignerTensor
import AlignerTokenizers
import Foundation

/// How often one set of responses beats another under a judge: wins, ties (score difference within the margin,
/// or the same text) and losses with 95% Wilson intervals, and the mean score change with its 95% interval.
public struct JudgeComparison: Codable, Equatable, Sendable {
    public var records: Int
    public var wins: Int
    public var ties: Int
    public var losses: Int
    public var winRate: Double
    public var tieRate: Double
    public var loseRate: Double
    /// 95% Wilson score intervals of the three rates.
    public var winInterval: [Double]
    public var tieInterval: [Double]
    public var loseInterval: [Double]
    /// Mean of score(new) − score(old), with a 95% normal interval (mean ± 1.96 sd/√n).
    public var meanChange: Double
    public var meanChangeInterval: [Double]

    /// Share of records where the new response wins, ties counted half: the pairwise accuracy of "new is better".
    public var pairwiseAccuracy: Double { (Double(wins) + 0.5 * Double(ties)) / Double(max(records, 1)) }

    /// Compares `new[i]` with `old[i]`; `same[i]` (the two texts equal) counts as a tie whatever the scores.
    public init(new: [Double], old: [Double], same: [Bool], tieMargin: Double) throws {
        guard new.count == old.count, new.count == same.count, !new.isEmpty else {
            throw SettingError(setting: "records", message: "cannot compare \(new.count) scores with \(old.count)")
        }
        guard tieMargin >= 0 && tieMargin.isFinite else { throw SettingError(setting: "tie_margin", message: "must be a finite number ≥ 0, got \(tieMargin)") }
        var w = 0, t = 0, l = 0
        let diffs = zip(new, old).map { $0 - $1 }
        for (d, s) in zip(diffs, same) {
            if s || abs(d) <= tieMargin { t += 1 } else if d > 0 { w += 1 } else { l += 1 }
        }
        let n = new.count
        records = n
        (wins, ties, losses) = (w, t, l)
        (winRate, tieRate, loseRate) = (Double(w) / Double(n), Double(t) / Double(n), Double(l) / Double(n))
        (winInterval, tieInterval, loseInterval) = (Self.wilson(w, n), Self.wilson(t, n), Self.wilson(l, n))
        (meanChange, meanChangeInterval) = Intervals.mean(diffs)
    }

    /// The 95% Wilson score interval of k successes in n trials.
    public static func wilson(_ k: Int, _ n: Int) -> [Double] { Intervals.wilson(k, n) }

    /// "win 0.412 [0.35, 0.48] · tie 0.100 · lose 0.488 [..]; mean change +0.123 [..]".
    public var line: String {
        func r(_ x: Double, _ i: [Double]) -> String { String(format: "%.3f [%.3f, %.3f]", x, i[0], i[1]) }
        return "win \(r(winRate, winInterval)), tie \(r(tieRate, tieInterval)), lose \(r(loseRate, loseInterval)); "
            + String(format: "mean score change %+.4f [%+.4f, %+.4f]", meanChange, meanChangeInterval[0], meanChangeInterval[1])
    }
}

/// One set of responses to the judged records, scored by the judge: the answers themselves (the copy control), a
/// fixed refusal, the reference corrections, another model's corrections, or the Aligner's.
public struct JudgedResponses: Codable, Equatable, Sendable {
    public var name: String
    public var meanScore: Double
    /// These responses against the answers they replace.
    public var vsAnswer: JudgeComparison
    /// Useful responses (`JudgeSummary`'s rule), their share and its 95% Wilson interval.
    public var useful: Int
    public var usefulRate: Double
    public var usefulInterval: [Double]
    /// Which records' responses are useful, in order.
    public var usefulRecords: [Bool]
    /// The judge's score of each record's response, in order.
    public var scores: [Double]
    public var measures: TextMeasures
}

/// The corrections against one control, paired per record.
public struct ControlVerdict: Codable, Equatable, Sendable {
    public enum Outcome: String, Codable, Sendable {
        case beats, indistinguishable = "not_distinguishable", worse
    }
    public var control: String
    /// The judge's preference for the correction over the control's response, record by record.
    public var judged: JudgeComparison
    /// Useful rate of the corrections minus the control's, on the same records, with its 95% interval (Newcombe's
    /// paired square-and-add interval).
    public var usefulDifference: Double
    public var usefulDifferenceInterval: [Double]
    /// `beats` when the interval of the difference lies above 0, `worse` when below, else `not_distinguishable`.
    public var outcome: Outcome
    /// The verdict in words.
    public var sentence: String
}

/// A judge's verdict on corrections, with the controls that make it readable: the same judge on the same records
/// scores the answer itself (copying), a fixed refusal, the reference correction (when records have one) and any
/// other controls given (e.g. the base model used zero-shot), and the corrections are compared with each, paired per
/// record.
///
/// A response is *useful* when the judge prefers it to the answer by more than the tie margin, it is not the answer
/// itself, it is not degenerate (`Degeneration`; an unfinished generation counts as degenerate), it is not a refusal
/// (`RefusalDetector`) unless the record's reference is one too (without references, a refusal is never useful),
/// and it is not generic (the same text for 3 or more of the records: `TextMeasures.genericFlags`), except a refusal
/// where the reference refuses too (refusals are formulaic).
/// `usefulRule` names this rule's version; saved verdicts of another version are judged again. The useful rate of the corrections, with its interval, is the headline.
public struct JudgeSummary: Codable, Equatable, Sendable {
    public var judge: String
    public var tieMargin: Double
    public var records: Int
    public var meanAnswerScore: Double
    public var meanCorrectionScore: Double
    public var meanReferenceScore: Double?
    public var correctionVsAnswer: JudgeComparison
    public var correctionVsReference: JudgeComparison?
    public var referenceVsAnswer: JudgeComparison?
    /// The fixed refusal used as a control.
    public var refusalText: String
    /// Every set judged, controls first, the corrections last.
    public var responses: [JudgedResponses]
    /// The corrections against each control.
    public var verdicts: [ControlVerdict]
    /// One line: the corrections' useful rate and whether they beat copying and refusing.
    public var headline: String

    /// The version of the useful-response rule (2: generic texts are not useful).
    public static let usefulRule = 2
    /// The default tie margin: score differences this small are ties.
    public static let defaultTieMargin = 0.05
    /// The fixed refusal control.
    public static let defaultRefusal = "I'm sorry, but I can't help with that."
    public static let copyName = "answer (copy control)", refusalName = "fixed refusal", referenceName = "reference", correctionName = "corrections"

    /// A set of other responses judged as a control beside the corrections (`ended` as for corrections).
    public struct Control {
        public var name: String
        public var texts: [String]
        public var ended: [Bool]?
        public init(name: String, texts: [String], ended: [Bool]? = nil) {
            self.name = name
            self.texts = texts
            self.ended = ended
        }
    }

    /// Scores answers, corrections, the fixed refusal, (when `references` is given) reference corrections and the
    /// `controls` of `questions`, and compares the corrections with each. `ended[i]` = false marks a correction that
    /// stopped at its token limit (nil: not generated here).
    public static func judge(_ judge: RewardJudge, questions: [String], answers: [String], corrections: [String], references: [String]?,
                             ended: [Bool]? = nil, controls: [Control] = [], refusal: String = defaultRefusal,
                             tieMargin: Double = defaultTieMargin, batchSize: Int = 8) throws -> (summary: JudgeSummary, answer: [Double], correction: [Double], reference: [Double]?) {
        let n = questions.count
        guard n > 0, answers.count == n, corrections.count == n, references.map({ $0.count == n }) ?? true, ended.map({ $0.count == n }) ?? true,
              controls.allSatisfy({ $0.texts.count == n && ($0.ended.map { $0.count == n } ?? true) }) else {
            throw SettingError(setting: "records", message: "nothing to judge, or the lists differ in length")
        }
        let refusals = [String](repeating: refusal, count: n)
        var sets: [Scored] = [Scored(name: copyName, texts: answers), Scored(name: refusalName, texts: refusals)]
        if let references { sets.append(Scored(name: referenceName, texts: references)) }
        sets += controls.map { Scored(name: $0.name, texts: $0.texts, ended: $0.ended) }
        sets.append(Scored(name: correctionName, texts: corrections, ended: ended))
        let all = try judge.scores(sets.flatMap { set in zip(questions, set.texts).map { (question: $0, response: $1) } }, batchSize: batchSize)
        for k in sets.indices { sets[k].scores = Array(all[(k * n)..<((k + 1) * n)]) }
        let summary = try summarize(judge: judge.source.path, sets: sets, hasReferences: references != nil, refusal: refusal, tieMargin: tieMargin)
        return (summary, sets[0].scores, sets[sets.count - 1].scores, references.map { _ in sets[2].scores })
    }

    /// One set of responses with the judge's scores, for `summarize`.
    public struct Scored {
        public var name: String
        public var texts: [String]
        public var ended: [Bool]?
        public var scores: [Double]
        public init(name: String, texts: [String], ended: [Bool]? = nil, scores: [Double] = []) {
            (self.name, self.texts, self.ended, self.scores) = (name, texts, ended, scores)
        }
    }

    /// The verdict from scored sets: the answers first (the copy control), then the fixed refusal, the references when
    /// `hasReferences`, other controls, and the corrections last; every set scored on the same records.
    public static func summarize(judge: String, sets: [Scored], hasReferences: Bool, refusal: String, tieMargin: Double) throws -> JudgeSummary {
        let n = sets.first?.texts.count ?? 0
        guard sets.count >= 3, n > 0, sets.allSatisfy({ $0.texts.count == n && $0.scores.count == n && ($0.ended?.count ?? n) == n }) else {
            throw SettingError(setting: "records", message: "nothing to judge, or the lists differ in length")
        }
        let answers = sets[0].texts, a = sets[0].scores
        let last = sets.count - 1
        let corrections = sets[last].texts, c = sets[last].scores
        func same(_ x: [String], _ y: [String]) -> [Bool] { zip(x, y).map { CorrectionMetrics.isCopy($0, of: $1) } }
        let mean = { (v: [Double]) in v.reduce(0, +) / Double(v.count) }
        let referenceRefuses = hasReferences ? sets[2].texts.map(RefusalDetector.isRefusal) : [Bool](repeating: false, count: n)
        func useful(_ set: Scored) -> [Bool] {
            let generic = TextMeasures.genericFlags(set.texts)
            return (0..<n).map { i in
                let refuses = RefusalDetector.isRefusal(set.texts[i])
                return set.scores[i] - a[i] > tieMargin && !CorrectionMetrics.isCopy(set.texts[i], of: answers[i])
                    && !Degeneration.isDegenerate(set.texts[i], ended: set.ended?[i] ?? true)
                    && (!refuses || referenceRefuses[i])
                    && (!generic[i] || (refuses && referenceRefuses[i]))  // refusals are formulaic where refusing is right
            }
        }
        let usefulFlags = sets.map(useful)
        let responses = try sets.indices.map { k -> JudgedResponses in
            let u = usefulFlags[k].filter { $0 }.count
            return JudgedResponses(name: sets[k].name, meanScore: mean(sets[k].scores),
                                   vsAnswer: try JudgeComparison(new: sets[k].scores, old: a, same: same(sets[k].texts, answers), tieMargin: tieMargin),
                                   useful: u, usefulRate: Double(u) / Double(n), usefulInterval: Intervals.wilson(u, n),
                                   usefulRecords: usefulFlags[k], scores: sets[k].scores, measures: TextMeasures(texts: sets[k].texts, ended: sets[k].ended))
        }
        let verdicts = try (0..<last).map { k -> ControlVerdict in
            let judged = try JudgeComparison(new: c, old: sets[k].scores, same: same(corrections, sets[k].texts), tieMargin: tieMargin)
            let (d, interval) = Intervals.pairedDifference(usefulFlags[last], usefulFlags[k])
            let outcome: ControlVerdict.Outcome = interval[0] > 0 ? .beats : interval[1] < 0 ? .worse : .indistinguishable
            let words: String
            switch outcome {
            case .beats: words = "beat"
            case .worse: words = "are worse than"
            case .indistinguishable: words = "are NOT distinguishable from"
            }
            let sentence = String(format: "the corrections %@ the %@: useful %.3f vs %.3f, paired difference %+.3f [%+.3f, %+.3f]; the judge prefers the correction on %.3f of records, the control on %.3f",
                                  words, sets[k].name, responses[last].usefulRate, responses[k].usefulRate, d, interval[0], interval[1],
                                  judged.winRate, judged.loseRate)
            return ControlVerdict(control: sets[k].name, judged: judged, usefulDifference: d, usefulDifferenceInterval: interval,
                                  outcome: outcome, sentence: sentence)
        }
        let top = responses[last]
        func beats(_ name: String) -> String {
            switch verdicts.first(where: { $0.control == name })?.outcome {
            case .beats?: return "yes"
            case .worse?: return "NO (worse)"
            default: return "NO (not distinguishable)"
            }
        }
        let headline = String(format: "useful corrections %.3f [%.3f, %.3f] of %d records; beats copying the answer: %@; beats the fixed refusal: %@",
                              top.usefulRate, top.usefulInterval[0], top.usefulInterval[1], n, beats(copyName), beats(refusalName))
        var summary = JudgeSummary(judge: judge, tieMargin: tieMargin, records: n, meanAnswerScore: mean(a), meanCorrectionScore: mean(c),
                                   correctionVsAnswer: top.vsAnswer, refusalText: refusal, responses: responses, verdicts: verdicts,
                                   headline: headline)
        if hasReferences {
            let references = sets[2].texts, r = sets[2].scores
            summary.meanReferenceScore = mean(r)
            summary.correctionVsReference = try JudgeComparison(new: c, old: r, same: same(corrections, references), tieMargin: tieMargin)
            summary.referenceVsAnswer = try JudgeComparison(new: r, old: a, same: same(references, answers), tieMargin: tieMargin)
        }
        return summary
    }

    /// `aligner eval`'s metric table rows: (metric, text); the verdict's row is the one to show in bold.
    public var verdictRows: [(String, String)] {
        var rows = [("judge", "\(judge) (tie when the scores differ by ≤ \(tieMargin) or the texts are equal)"), ("judged records", "\(records)"),
                    ("verdict", headline), ("mean score: answer / correction", String(format: "%.4f / %.4f", meanAnswerScore, meanCorrectionScore)),
                    ("correction vs answer", correctionVsAnswer.line)]
        if let v = correctionVsReference { rows.append(("correction vs reference", v.line)) }
        if let v = referenceVsAnswer, let m = meanReferenceScore {
            rows.append(("reference vs answer (the judge on the data's own preference)", "\(v.line); mean reference score \(String(format: "%.4f", m))"))
        }
        return rows
    }

    /// The controls and the corrections side by side (same records, same judge): one row per set of responses.
    public func responsesTable() -> ReportTable {
        typealias Cell = ReportTable.Cell
        let columns: [ReportTable.Column] = [
            .init("name", "responses (same \(records) records, same judge)", numeric: false), .init("mean_score", "mean score"),
            .init("win_rate", "judge prefers it to the answer"), .init("useful_rate", "useful rate [95%]"), .init("refusal_rate", "refusal rate"),
            .init("degenerate_rate", "degenerate"), .init("generic_rate", "generic"), .init("repeated4", "repeated 4-grams"), .init("distinct2", "distinct-2"),
            .init("unfinished_rate", "unfinished"), .init("fluency_loss", "fluency (loss/token)")]
        let rows = responses.map { x -> [Cell] in
            [Cell(x.name == Self.refusalName ? "fixed refusal \"\(refusalText)\"" : x.name), .number(x.meanScore), .number(x.vsAnswer.winRate, "%.3f"),
             Cell(String(format: "%.3f [%.3f, %.3f]", x.usefulRate, x.usefulInterval[0], x.usefulInterval[1]), value: x.usefulRate),
             .number(x.measures.refusalRate, "%.3f"), .number(x.measures.degenerateRate, "%.3f"), .number(x.measures.genericRate, "%.3f"),
             .number(x.measures.repeated4, "%.3f"), .number(x.measures.distinct2, "%.3f"), .number(x.measures.unfinishedRate, "%.3f"),
             .number(x.measures.fluencyLoss, "%.3f")]
        }
        return ReportTable(id: "responses", columns: columns, rows: rows)
    }

    /// The useful rule in words, with this verdict's tie margin.
    public var usefulRuleText: String { Self.usefulRuleText(tieMargin: tieMargin) }
    public static func usefulRuleText(tieMargin: Double) -> String {
        "Useful = preferred by the judge to the answer by more than \(tieMargin), not the answer itself, not degenerate (a repetition, empty, or unfinished at the token limit), not generic (the same text for 3 or more records), and not a refusal unless the reference is one."
    }

    /// The controls and the corrections side by side, then the verdicts in words (Markdown).
    public var controlsTable: String {
        var s = responsesTable().markdown()
        s += "\nVerdict: \(headline).\n"
        for v in verdicts { s += "- \(v.sentence)\n" }
        if let model = responses.first?.measures.fluencyModel { s += "\nFluency: mean per-token loss of each text under \(model) (lower reads more fluently).\n" }
        s += "\n" + usefulRuleText + "\n"
        return s
    }
}
