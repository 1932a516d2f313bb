import Foundation

/// Measures of a set of responses that a refusal or a degenerate text cannot pass: how many refuse, how many are
/// degenerate, how repetitive and how diverse they are, and (for generations) how many did not finish.
public struct TextMeasures: Codable, Equatable, Sendable {
    public var texts: Int
    /// Refusals by `RefusalDetector`, their share and its 95% Wilson interval.
    public var refusals: Int
    public var refusalRate: Double
    public var refusalInterval: [Double]
    /// Degenerate texts by `Degeneration.isDegenerate` (unfinished generations included), share and interval.
    public var degenerate: Int
    public var degenerateRate: Double
    public var degenerateInterval: [Double]
    /// Mean share of repeated word 4-grams within a text.
    public var repeated4: Double
    /// distinct-1 and distinct-2 over the whole set.
    public var distinct1: Double
    public var distinct2: Double
    /// Texts that are the same (after trimming) for at least `genericRepeats` texts of the set: a constant in
    /// disguise ("I’s a lot of the person." for every question), whatever the judge thinks of it.
    public var generic: Int
    public var genericRate: Double
    /// Mean words per text.
    public var meanWords: Double
    /// Generations that stopped at the token limit without their end token (nil for texts that were not generated).
    public var unfinished: Int?
    public var unfinishedRate: Double?
    /// Mean per-token loss (nats) of the texts under a reference language model, when one was given (lower reads
    /// more fluently to that model), and the model's name.
    public var fluencyLoss: Double?
    public var fluencyModel: String?

    /// How many texts of a set must share one text for it to count as generic.
    public static let genericRepeats = 3

    /// Whether each text is generic: non-empty and the same (after trimming) as at least `genericRepeats` − 1 other
    /// texts of the set.
    public static func genericFlags(_ texts: [String]) -> [Bool] {
        let trimmed = texts.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        var counts: [String: Int] = [:]
        for t in trimmed where !t.isEmpty { counts[t, default: 0] += 1 }
        return trimmed.map { !$0.isEmpty && counts[$0, default: 0] >= genericRepeats }
    }

    /// The measures of `texts`; `ended[i]` = false marks a generation that hit its token limit (nil: not generated).
    public init(texts: [String], ended: [Bool]? = nil) {
        precondition(ended == nil || ended!.count == texts.count, "one end flag per text")
        let n = texts.count
        self.texts = n
        let refusing = texts.map(RefusalDetector.isRefusal)
        refusals = refusing.filter { $0 }.count
        refusalRate = n == 0 ? 0 : Double(refusals) / Double(n)
        refusalInterval = Intervals.wilson(refusals, n)
        let flags = texts.indices.map { Degeneration.isDegenerate(texts[$0], ended: ended?[$0] ?? true) }
        degenerate = flags.filter { $0 }.count
        degenerateRate = n == 0 ? 0 : Double(degenerate) / Double(n)
        degenerateInterval = Intervals.wilson(degenerate, n)
        repeated4 = n == 0 ? 0 : texts.map { Degeneration.repeatedShare($0) }.reduce(0, +) / Double(n)
        distinct1 = Degeneration.distinct(texts, n: 1)
        distinct2 = Degeneration.distinct(texts, n: 2)
        meanWords = n == 0 ? 0 : Double(texts.map { Degeneration.words($0).count }.reduce(0, +)) / Double(n)
        generic = Self.genericFlags(texts).filter { $0 }.count
        genericRate = n == 0 ? 0 : Double(generic) / Double(n)
        if let ended {
            unfinished = ended.filter { !$0 }.count
            unfinishedRate = n == 0 ? 0 : Double(unfinished!) / Double(n)
        }
    }
}
