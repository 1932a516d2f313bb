import Foundation

/// Measures of degenerate text: repetition within a text, diversity across texts.
///
/// Words are the runs of letters, digits and apostrophes of the lower-cased text. A text is *degenerate* when it has
/// no word, when at least `repeatedShareLimit` of its word 4-grams repeat an earlier 4-gram of the same text
/// ("I don't know that you don't know that you don't know ..."), or when one word is more than half of a text of at
/// least 8 words ("the the the ..."); a generated text is degenerate too when it stopped at the token limit without
/// its end token (it did not finish).
public enum Degeneration {
    /// The share of repeated 4-grams from which a text is degenerate.
    public static let repeatedShareLimit = 0.3

    /// The words of a text (see the type's description).
    public static func words(_ text: String) -> [String] {
        var out: [String] = [], current = ""
        for c in text.lowercased().replacingOccurrences(of: "\u{2019}", with: "'") {
            if c.isLetter || c.isNumber || c == "'" { current.append(c) } else if !current.isEmpty {
                out.append(current)
                current = ""
            }
        }
        if !current.isEmpty { out.append(current) }
        return out
    }

    /// The word n-grams of a text, joined by a space.
    public static func ngrams(_ words: [String], _ n: Int) -> [String] {
        guard n >= 1, words.count >= n else { return [] }
        return (0...(words.count - n)).map { words[$0..<($0 + n)].joined(separator: " ") }
    }

    /// The share of a text's word n-grams that repeat an earlier n-gram of the same text (0 without n-grams).
    public static func repeatedShare(_ text: String, n: Int = 4) -> Double {
        let grams = ngrams(words(text), n)
        guard !grams.isEmpty else { return 0 }
        return 1 - Double(Set(grams).count) / Double(grams.count)
    }

    /// Whether a text is degenerate (see the type's description); `ended` = false for a generation that hit its token
    /// limit without the end token.
    public static func isDegenerate(_ text: String, ended: Bool = true) -> Bool {
        guard ended else { return true }
        let w = words(text)
        guard !w.isEmpty else { return true }
        if repeatedShare(text) >= repeatedShareLimit { return true }
        if w.count >= 8 {
            var counts: [String: Int] = [:]
            for x in w { counts[x, default: 0] += 1 }
            if let most = counts.values.max(), Double(most) > 0.5 * Double(w.count) { return true }
        }
        return false
    }

    /// distinct-n over a set of texts (Li et al. 2016): distinct word n-grams divided by all word n-grams (0 without
    /// n-grams).
    public static func distinct(_ texts: [String], n: Int) -> Double {
        var all = 0
        var seen = Set<String>()
        for t in texts {
            let g = ngrams(words(t), n)
            all += g.count
            seen.formUnion(g)
        }
        return all == 0 ? 0 : Double(seen.count) / Double(all)
    }
}
