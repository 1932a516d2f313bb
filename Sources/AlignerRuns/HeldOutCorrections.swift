import AlignerData
import Foundation

/// Corrections of a run's first held-out records by its Aligner, with the records themselves: what the run's last
/// evaluation generated (`file` in the run folder, with `train.generate_eval`), or what a sweep's judge scored (kept in
/// its `judge.json`). Reports show them beside the answers and references.
public struct HeldOutCorrections: Codable, Sendable, Equatable {
    /// One held-out record and its correction.
    public struct Record: Codable, Sendable, Equatable {
        public var question: String
        public var answer: String
        public var reference: String
        public var correction: String
        /// The correction ended with its end token (false: it stopped at the token limit).
        public var ended: Bool
        public init(question: String, answer: String, reference: String, correction: String, ended: Bool) {
            (self.question, self.answer, self.reference, self.correction, self.ended) = (question, answer, reference, correction, ended)
        }
    }

    public var records: [Record]

    public init(records: [Record]) { self.records = records }

    /// `corrections[i]` of `records[i]`, with whether it `ended` with its end token.
    public init(_ records: [QACRecord], corrections: [String], ended: [Bool]) {
        self.records = zip(records, zip(corrections, ended)).map { r, c in
            Record(question: r.question, answer: r.answer, reference: r.correction, correction: c.0, ended: c.1)
        }
    }

    /// The last evaluation's corrections in a run folder.
    public static let file = "eval-corrections.json"
}
