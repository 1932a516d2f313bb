/// What the evaluation flags in each of a set of responses, record by record: the same tests the measures and the
/// judge's useful rule apply (`CorrectionMetrics.isCopy`, `RefusalDetector`, `Degeneration`, `TextMeasures.genericFlags`).
public struct ResponseFlags: Equatable, Sendable {
    /// The response is the answer itself (after trimming).
    public var copy: Bool
    public var refusal: Bool
    /// A repetition, empty, or unfinished (`Degeneration.isDegenerate`).
    public var degenerate: Bool
    /// Generation stopped at its token limit without an end token.
    public var unfinished: Bool
    /// The same text as 3 or more of the set's records.
    public var generic: Bool
    /// The judge's useful rule (`JudgeSummary`), when the responses were judged.
    public var useful: Bool?

    /// The flags' names in the order reports list them (`names` uses these words).
    public static let vocabulary = ["copy", "refusal", "degenerate", "unfinished", "generic", "useful", "not-useful"]

    /// The flags a report offers to filter by: all of `vocabulary`, the useful pair only when the responses were judged.
    public static func offered(judged: Bool) -> [String] {
        vocabulary.filter { judged || ($0 != "useful" && $0 != "not-useful") }
    }

    /// What each flag means, in words, for the note above a report's gallery.
    public static func legend(judged: Bool) -> String {
        "Flags: copy = the answer itself; refusal; degenerate = repetition, empty or unfinished; unfinished = stopped at the token limit; generic = the same text for 3 or more records"
            + (judged ? "; useful / not-useful = the judge's useful rule (above)." : ".")
    }

    /// The names of the flags that are set (`useful` as "useful" or "not-useful" when judged).
    public var names: [String] {
        var n: [String] = []
        if copy { n.append("copy") }
        if refusal { n.append("refusal") }
        if degenerate { n.append("degenerate") }
        if unfinished { n.append("unfinished") }
        if generic { n.append("generic") }
        if let useful { n.append(useful ? "useful" : "not-useful") }
        return n
    }

    /// The flags of `texts`, answers to `answers` (same order); `ended[i]` = false for a generation that stopped at its
    /// token limit; `useful` from a judge.
    public static func of(_ texts: [String], answers: [String], ended: [Bool]? = nil, useful: [Bool]? = nil) -> [ResponseFlags] {
        let generic = TextMeasures.genericFlags(texts)
        return texts.indices.map { i in
            let finished = ended.map { i < $0.count ? $0[i] : true } ?? true
            return ResponseFlags(copy: i < answers.count && CorrectionMetrics.isCopy(texts[i], of: answers[i]),
                                 refusal: RefusalDetector.isRefusal(texts[i]),
                                 degenerate: Degeneration.isDegenerate(texts[i], ended: finished), unfinished: !finished,
                                 generic: generic[i], useful: useful.flatMap { i < $0.count ? $0[i] : nil })
        }
    }
}
