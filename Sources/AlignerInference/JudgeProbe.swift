import AlignerData
import AlignerMeasures
import Foundation

/// How a judge ranks the references of held-out records against responses that answer nothing (`NonAnswers`): a
/// judge a constant cannot fool prefers the reference to every kind. One row per probe: the fixed refusal and the
/// garbled repetition (the same text for every record), each kind of non-answer (its texts in turn), an off-topic
/// answer (another record's reference), and the upstream answer (the data's own preference).
public struct JudgeProbe: Codable, Sendable {
    public struct Row: Codable, Equatable, Sendable {
        public var probe: String
        /// The reference against the probe's response: a win is the judge preferring the reference.
        public var referenceVsProbe: JudgeComparison
        /// Wins plus half the ties, over the pairs.
        public var accuracy: Double
        /// Records left out because the reference is itself a refusal (declining probes only).
        public var skipped: Int
    }
    public var judge: String
    public var records: Int
    public var tieMargin: Double
    public var rows: [Row]

    /// Probes `judge` on `records` (their references must be substantive answers for the declining probes to count).
    public static func run(_ judge: RewardJudge, records: [QACRecord], tieMargin: Double = JudgeSummary.defaultTieMargin,
                           batchSize: Int = 8) throws -> JudgeProbe {
        guard !records.isEmpty else { throw SettingError(setting: "records", message: "there are none to probe") }
        let refuses = records.map { RefusalDetector.isRefusal($0.correction) }
        var probes: [(name: String, declining: Bool, text: (Int, QACRecord) -> String)] = [
            ("fixed refusal \"\(NonAnswers.make("refusal", for: records[0], variant: 0))\"", true, { _, r in NonAnswers.make("refusal", for: r, variant: 0) }),
            ("garbled repetition (fixed)", false, { _, r in NonAnswers.make("repetition", for: r, variant: 0) }),
        ]
        for kind in NonAnswers.kinds {
            probes.append(("\(kind) (texts in turn)", NonAnswers.decliningKinds.contains(kind), { i, r in NonAnswers.make(kind, for: r, variant: i) }))
        }
        // A real, fluent answer to another question: what a judge that does not read the question cannot tell apart.
        probes.append(("off-topic (the next record's reference)", false, { i, _ in records[(i + 1) % records.count].correction }))
        probes.append(("upstream answer (the data's own preference)", false, { _, r in r.answer }))
        // Every (question, response) scored in one pass; the references once.
        var items = records.map { (question: $0.question, response: $0.correction) }
        var used: [[Int]] = []
        for p in probes {
            let keep = records.indices.filter { !(p.declining && refuses[$0]) }
            used.append(keep)
            items += keep.map { (question: records[$0].question, response: p.text($0, records[$0])) }
        }
        let scores = try judge.scores(items, batchSize: batchSize)
        let n = records.count
        var offset = n, rows: [Row] = []
        for (k, p) in probes.enumerated() {
            let keep = used[k]
            let probeScores = Array(scores[offset..<(offset + keep.count)])
            offset += keep.count
            guard !keep.isEmpty else { continue }
            let same = keep.map { CorrectionMetrics.isCopy(records[$0].correction, of: p.text($0, records[$0])) }
            let c = try JudgeComparison(new: keep.map { scores[$0] }, old: probeScores, same: same, tieMargin: tieMargin)
            rows.append(Row(probe: p.name, referenceVsProbe: c, accuracy: (Double(c.wins) + 0.5 * Double(c.ties)) / Double(c.records),
                            skipped: n - keep.count))
        }
        return JudgeProbe(judge: judge.source.path, records: n, tieMargin: tieMargin, rows: rows)
    }

    /// Markdown: one row per probe.
    public var table: String {
        var s = "| probe (same \(records) records) | pairs | judge prefers the reference [95%] | ties | prefers the probe | accuracy (ties half) | left out (reference refuses) |\n"
        s += "|---|---:|---:|---:|---:|---:|---:|\n"
        for r in rows {
            let c = r.referenceVsProbe
            s += String(format: "| %@ | %d | %.3f [%.3f, %.3f] | %.3f | %.3f | %.3f | %d |\n", r.probe, c.records, c.winRate, c.winInterval[0], c.winInterval[1],
                        c.tieRate, c.loseRate, r.accuracy, r.skipped)
        }
        return s
    }
}
