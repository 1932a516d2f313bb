import AlignerData
import AlignerModel
import AlignerTensor
import AlignerTokenizers
import Foundation

/// A trained reward model used as a judge: it scores responses to questions (higher is better), read as it was
/// trained (its question template, BOS, the response, EOS).
public final class RewardJudge {
    public let model: RewardModel
    public let tokenizer: Tokenizer
    public let specialTokens: SpecialTokens
    /// The folder the reward model was read from.
    public let source: URL
    let builder: RewardExampleBuilder
    /// Keep every score by its (question, response) and score each pair once (a sweep judges the same answers and
    /// references for every run).
    public var memoize = false
    private var memo: [String: Double] = [:]

    /// Loads a reward model folder (an export, `aligner reward train`'s `<run>/model`, or one transformers wrote) or
    /// a reward run folder (its `model/`). Sequences longer than `maxLength` tokens are shortened as in training (the
    /// question loses its beginning first); by default the length the model was trained with (recorded in the folder,
    /// or the run's recipe), else the model's context up to 1024.
    public init(path: String, maxLength: Int? = nil) throws {
        var url = URL(fileURLWithPath: path)
        var trainedLength: Int?
        let inRun = url.appendingPathComponent(RewardTrainer.modelFolder)
        if FileManager.default.fileExists(atPath: inRun.appendingPathComponent("config.json").path) {
            trainedLength = (try? Recipe.load(path: url.appendingPathComponent("recipe.json").path))?.data.maxLength
            url = inRun
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw StoreError(file: path, message: "no such reward model folder", kind: .missing)
        }
        guard isDirectory.boolValue else { throw StoreError(file: path, message: "is a file; --judge takes a reward model folder or a reward run folder", kind: .badContent) }
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent("config.json").path) else {
            throw StoreError(file: path, message: "is not a reward model folder (no config.json, no model/): pass a reward model folder, or the run folder of `aligner reward train`", kind: .badContent)
        }
        let loaded = try RewardExport.load(path: url.path)
        (model, tokenizer, specialTokens, source) = (loaded.model, loaded.tokenizer, loaded.specialTokens, url)
        let settings = try RewardExport.settings(in: url)
        let length = maxLength ?? settings.maxLength ?? trainedLength ?? min(loaded.model.config.maxPositionEmbeddings, 1024)
        guard length >= 8 && length <= loaded.model.config.maxPositionEmbeddings else {
            throw SettingError(setting: "max_length", message: "\(length) is not within 8...\(loaded.model.config.maxPositionEmbeddings) (the judge's context)")
        }
        builder = try RewardExampleBuilder(tokenizer: tokenizer, specialTokens: specialTokens, maxLength: length,
                                           template: settings.template)
    }

    /// The score of each (question, response), in order; sequences are batched by length, `batchSize` at a time.
    public func scores(_ items: [(question: String, response: String)], batchSize: Int = 8) throws -> [Double] {
        guard batchSize >= 1 else { throw SettingError(setting: "batch_size", message: "must be at least 1, got \(batchSize)") }
        guard let pad = model.config.padTokenId else { throw SettingError(setting: "pad_token_id", message: "the reward model has none") }
        var out = [Double](repeating: .nan, count: items.count)
        let keys = memoize ? items.map { $0.question + "\u{0}" + $0.response } : []
        var todo = Array(items.indices)
        if memoize {
            todo = todo.filter { i in
                guard let s = memo[keys[i]] else { return true }
                out[i] = s
                return false
            }
        }
        var sequences = [[Int]](repeating: [], count: items.count)
        for i in todo { sequences[i] = builder.sequence(question: items[i].question, response: items[i].response) }
        let order = todo.sorted { sequences[$0].count < sequences[$1].count }
        for start in stride(from: 0, to: order.count, by: batchSize) {
            let rows = Array(order[start..<min(order.count, start + batchSize)])
            let time = rows.map { sequences[$0].count }.max()!
            var ids = [Int](repeating: pad, count: rows.count * time)
            for (r, i) in rows.enumerated() { for (t, id) in sequences[i].enumerated() { ids[r * time + t] = id } }
            let s = try withNoGrad { try model.scores(ids: ids, batch: rows.count, time: time) }.scalars
            for (r, i) in rows.enumerated() {
                out[i] = Double(s[r])
                if memoize { memo[keys[i]] = out[i] }
            }
        }
        return out
    }
}

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
        let mean = diffs.reduce(0, +) / Double(n)
        let sd = n > 1 ? (diffs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n - 1)).squareRoot() : .nan
        let half = 1.959964 * sd / Double(n).squareRoot()
        meanChange = mean
        meanChangeInterval = [mean - half, mean + half]
    }

    /// The 95% Wilson score interval of k successes in n trials.
    public static func wilson(_ k: Int, _ n: Int) -> [Double] {
        let z = 1.959964, p = Double(k) / Double(n), nn = Double(n)
        let centre = (p + z * z / (2 * nn)) / (1 + z * z / nn)
        let half = z / (1 + z * z / nn) * (p * (1 - p) / nn + z * z / (4 * nn * nn)).squareRoot()
        return [max(0, centre - half), min(1, centre + half)]
    }

    /// "win 0.412 [0.35, 0.48] · tie 0.100 · lose 0.488 [..]; mean change +0.123 [..]".
    public var line: String {
        func r(_ x: Double, _ i: [Double]) -> String { String(format: "%.3f [%.3f, %.3f]", x, i[0], i[1]) }
        return "win \(r(winRate, winInterval)), tie \(r(tieRate, tieInterval)), lose \(r(loseRate, loseInterval)); "
            + String(format: "mean score change %+.4f [%+.4f, %+.4f]", meanChange, meanChangeInterval[0], meanChangeInterval[1])
    }
}

/// A judge's verdict on corrections: correction against the answer it corrects, against the reference correction
/// (when records have one), and the reference against the answer (how the judge sees the data's own preference).
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

    /// The default tie margin: score differences this small are ties.
    public static let defaultTieMargin = 0.05

    /// Scores answers, corrections and (when `references` is given) reference corrections of `questions`.
    public static func judge(_ judge: RewardJudge, questions: [String], answers: [String], corrections: [String], references: [String]?,
                             tieMargin: Double = defaultTieMargin, batchSize: Int = 8) throws -> (summary: JudgeSummary, answer: [Double], correction: [Double], reference: [Double]?) {
        let n = questions.count
        guard n > 0, answers.count == n, corrections.count == n, references.map({ $0.count == n }) ?? true else {
            throw SettingError(setting: "records", message: "nothing to judge, or the lists differ in length")
        }
        var items = zip(questions, answers).map { (question: $0, response: $1) } + zip(questions, corrections).map { (question: $0, response: $1) }
        if let references { items += zip(questions, references).map { (question: $0, response: $1) } }
        let all = try judge.scores(items, batchSize: batchSize)
        let a = Array(all[0..<n]), c = Array(all[n..<(2 * n)])
        let r = references.map { _ in Array(all[(2 * n)..<(3 * n)]) }
        func same(_ x: [String], _ y: [String]) -> [Bool] { zip(x, y).map { CorrectionMetrics.isCopy($0, of: $1) } }
        let mean = { (v: [Double]) in v.reduce(0, +) / Double(v.count) }
        var summary = JudgeSummary(judge: judge.source.path, tieMargin: tieMargin, records: n, meanAnswerScore: mean(a), meanCorrectionScore: mean(c),
                                   correctionVsAnswer: try JudgeComparison(new: c, old: a, same: same(corrections, answers), tieMargin: tieMargin))
        if let references, let r {
            summary.meanReferenceScore = mean(r)
            summary.correctionVsReference = try JudgeComparison(new: c, old: r, same: same(corrections, references), tieMargin: tieMargin)
            summary.referenceVsAnswer = try JudgeComparison(new: r, old: a, same: same(references, answers), tieMargin: tieMargin)
        }
        return (summary, a, c, r)
    }

    /// Markdown rows for `aligner eval`'s table.
    public var tableRows: String {
        var s = "| judge | \(judge) (tie when the scores differ by ≤ \(tieMargin) or the texts are equal) |\n"
        s += "| judged records | \(records) |\n"
        s += String(format: "| mean score: answer / correction | %.4f / %.4f |\n", meanAnswerScore, meanCorrectionScore)
        s += "| correction vs answer | \(correctionVsAnswer.line) |\n"
        if let v = correctionVsReference { s += "| correction vs reference | \(v.line) |\n" }
        if let v = referenceVsAnswer, let m = meanReferenceScore {
            s += "| reference vs answer (the judge on the data's own preference) | \(v.line); mean reference score \(String(format: "%.4f", m)) |\n"
        }
        return s
    }
}
