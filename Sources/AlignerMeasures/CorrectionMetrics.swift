import Foundation

/// How generated corrections relate to the answers they correct and to the references, over a set of records.
public struct CorrectionMetrics: Codable, Equatable, Sendable {
    /// Records generated.
    public var generated: Int
    /// Share of outputs equal to the answer (after trimming whitespace).
    public var copyRate: Double
    /// Share of outputs within a normalised edit distance of `nearCopyThreshold` of the answer (copies included):
    /// corrections that leave the answer nearly unchanged.
    public var nearCopyRate: Double
    /// Mean normalised edit distance to the answer.
    public var editToAnswer: Double
    /// Mean normalised edit distance to the reference correction.
    public var editToReference: Double

    /// Outputs this close to the answer count as near copies.
    public static let nearCopyThreshold = 0.1

    public init(generated: Int, copyRate: Double, nearCopyRate: Double, editToAnswer: Double, editToReference: Double) {
        (self.generated, self.copyRate, self.nearCopyRate, self.editToAnswer, self.editToReference) =
            (generated, copyRate, nearCopyRate, editToAnswer, editToReference)
    }

    /// The metrics of `outputs` against the answers they correct and the reference corrections (same order); nil when
    /// the counts differ or there is no output.
    public init?(outputs: [String], answers: [String], references: [String]) {
        guard outputs.count == answers.count, outputs.count == references.count, !outputs.isEmpty else { return nil }
        let n = Double(outputs.count)
        let toAnswer = zip(outputs, answers).map { EditDistance.normalized($0, $1) }
        generated = outputs.count
        copyRate = Double(zip(outputs, answers).filter { Self.isCopy($0, of: $1) }.count) / n
        nearCopyRate = Double(toAnswer.filter { $0 <= Self.nearCopyThreshold }.count) / n
        editToAnswer = toAnswer.reduce(0, +) / n
        editToReference = zip(outputs, references).map { EditDistance.normalized($0, $1) }.reduce(0, +) / n
    }

    /// Whether an output copies the answer (equal after trimming whitespace).
    public static func isCopy(_ output: String, of answer: String) -> Bool {
        output.trimmingCharacters(in: .whitespacesAndNewlines) == answer.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
