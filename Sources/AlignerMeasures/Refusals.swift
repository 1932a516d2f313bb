import Foundation

/// Tells whether a response declines to answer: a refusal ("I'm sorry, but I can't help with that."), a disclaimer of
/// knowledge ("I don't know."), a deflection that answers nothing ("I'm not sure what you mean.") or an AI disclaimer
/// ("As an AI, ...").
///
/// The rule, documented so that its numbers can be read: the text is lower-cased, curly apostrophes become straight
/// ones and runs of white space one space; its *opening* is its first sentence (up to the first `.`, `!` or `?`
/// followed by a space or the end; the first two when the first has at most four words), at most 160 characters.
/// The text is a refusal when its opening contains one of `phrases` (first person declining, being unable, not
/// knowing, not understanding, or an AI disclaimer) or when the whole text, without its final punctuation, is one of
/// `shortNonAnswers` (e.g. "no.", "i'd rather not say."). A long answer
/// that starts by declining ("I can't help with that. Instead, here is ...") is a refusal by this rule: the upstream
/// request was declined, whatever follows. Tested on labelled examples (Tests/AlignerMeasuresTests).
public enum RefusalDetector {
    /// Phrases that make an opening a refusal.
    public static let phrases: [String] = [
        // declining
        "i can't help", "i cannot help", "i can't assist", "i cannot assist", "i can't provide", "i cannot provide",
        "i can't do that", "i cannot do that", "i can't answer", "i cannot answer", "i can't tell you", "i cannot tell you",
        "i can't give", "i cannot give", "i can't recommend", "i cannot recommend", "i can't support", "i cannot support",
        "i can't share", "i cannot share", "i can't comply", "i cannot comply", "i can't engage", "i cannot engage",
        "i can't discuss", "i cannot discuss", "i can't talk about", "i won't", "i will not", "i'm not going to",
        "i am not going to", "i must decline", "i have to decline", "i refuse", "i'd rather not", "i would rather not",
        "i'm not comfortable", "i am not comfortable", "i don't feel comfortable", "i do not feel comfortable",
        "i'm not able to", "i am not able to", "i'm unable to", "i am unable to", "i'm not allowed", "i am not allowed",
        "i can't do this", "i cannot do this", "i can't be part", "i can't be involved", "i'm afraid i can't",
        "i'm sorry, but i", "i am sorry, but i", "sorry, but i can't", "sorry, i can't", "sorry, i cannot",
        "that's not something i can", "this is not something i can", "not something i can help",
        // not knowing, not understanding
        "i don't know", "i do not know", "i'm not sure what you mean", "i am not sure what you mean",
        "i don't understand", "i do not understand", "i'm not sure i understand", "i have no idea", "i have no information",
        "i don't have any information", "i don't have information", "i'm not sure how to answer", "i'm not sure how to respond",
        // AI disclaimers
        "as an ai", "as a language model", "as an assistant, i can't", "i'm just an ai", "i am just an ai", "i'm only an ai",
        "i'm an ai and", "i am an ai and",
    ]

    /// Whole texts (after normalisation, without the final punctuation) that answer nothing.
    public static let shortNonAnswers: Set<String> = [
        "no", "nope", "i'd rather not say", "i would rather not say", "no comment", "pass", "i can't", "i cannot", "sorry",
        "i'm sorry", "i am sorry", "i don't think so", "not sure", "i'm not sure", "i am not sure", "no idea",
    ]

    /// Whether `text` is a refusal by the rule above.
    public static func isRefusal(_ text: String) -> Bool {
        let normal = normalise(text)
        guard !normal.isEmpty else { return false }
        let bare = normal.trimmingCharacters(in: CharacterSet(charactersIn: ".!?,;: "))
        if shortNonAnswers.contains(bare) { return true }
        let opening = Self.opening(normal)
        return phrases.contains { opening.contains($0) }
    }

    /// Lower case, straight apostrophes, single spaces, trimmed.
    static func normalise(_ text: String) -> String {
        let lowered = text.lowercased().replacingOccurrences(of: "\u{2019}", with: "'").replacingOccurrences(of: "\u{2018}", with: "'")
        return lowered.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
    }

    /// The first sentence of a normalised text (the first two when the first has at most four words, as in "I'm
    /// sorry. I can't do that."), at most 160 characters.
    static func opening(_ normal: String) -> String {
        let chars = Array(normal.prefix(160))
        var ends: [Int] = []
        for i in chars.indices where ".!?".contains(chars[i]) && (i + 1 == chars.count || chars[i + 1] == " ") {
            ends.append(i + 1)
            if ends.count == 2 { break }
        }
        guard let first = ends.first else { return String(chars) }
        let firstSentence = String(chars[0..<first])
        if firstSentence.split(separator: " ").count <= 4 { return String(chars[0..<(ends.count > 1 ? ends[1] : chars.count)]) }
        return firstSentence
    }
}
