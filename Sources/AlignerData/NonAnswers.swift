import Foundation

/// Responses that answer nothing, by kind, made from a record: refusals, knowledge disclaimers, lectures, echoes of the
/// question, repetitions, and the upstream answer with a disclaimer appended. Their texts are data
/// (`Resources/non-answers.json`). A judge should prefer a substantive reference to every one of them; they serve to
/// probe a judge (`aligner reward probe`) and, on training records only, as extra preference pairs for it
/// (`reward.non_answers`).
public enum NonAnswers {
    /// The kinds, in the file's order.
    public static let kinds = ["refusal", "dont_know", "lecture", "echo", "repetition", "disclaimer"]
    /// Kinds that decline to engage: a reference that is itself a refusal is no better than them.
    public static let decliningKinds: Set<String> = ["refusal", "dont_know", "lecture"]

    static let texts: [String: [String]] = {
        guard let url = Bundle.module.url(forResource: "non-answers", withExtension: "json"),
              let data = try? Data(contentsOf: url),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let kinds = object["kinds"] as? [String: [String]], NonAnswers.kinds.allSatisfy({ !(kinds[$0] ?? []).isEmpty })
        else { fatalError("AlignerData: the non-answers.json resource is missing or malformed") }
        return kinds
    }()

    /// The non-answer of `kind` for a record; `variant` picks one of the kind's texts (modulo their number).
    public static func make(_ kind: String, for r: QACRecord, variant: Int = 0) -> String {
        let options = texts[kind] ?? texts["refusal"]!
        let template = options[((variant % options.count) + options.count) % options.count]
        let referenceStart = r.correction.split(whereSeparator: { $0.isWhitespace }).prefix(6).joined(separator: " ")
        return template.replacingOccurrences(of: "{question}", with: lastUserTurn(r.question))
            .replacingOccurrences(of: "{answer}", with: r.answer)
            .replacingOccurrences(of: "{reference_start}", with: referenceStart.isEmpty ? "I know" : referenceStart)
            .replacingOccurrences(of: "{reference}", with: r.correction)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The last user turn of a dialogue-shaped question ("Human: ... Assistant: ... Human: last"), else the question.
    public static func lastUserTurn(_ question: String) -> String {
        guard let range = question.range(of: "Human:", options: .backwards) else { return question.trimmingCharacters(in: .whitespacesAndNewlines) }
        return String(question[range.upperBound...]).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
