/// What a splitting pre-tokenizer does with the pieces its pattern matches (Hugging Face's `SplitDelimiterBehavior`).
public enum SplitBehavior: String, Sendable, CaseIterable {
    /// Matches are dropped.
    case removed = "Removed"
    /// Every match is a piece of its own.
    case isolated = "Isolated"
    /// A match joins the piece before it.
    case mergedWithPrevious = "MergedWithPrevious"
    /// A match joins the piece after it.
    case mergedWithNext = "MergedWithNext"
    /// Consecutive matches form one piece (and consecutive non-matches another).
    case contiguous = "Contiguous"
}

/// Splitting a text by a pattern as Hugging Face `tokenizers` does (`NormalizedString::split`): the text is cut into
/// alternating non-matching and matching pieces, combined as the behaviour says, and empty pieces are dropped.
enum Splitter {
    /// A piece of the text and whether the pattern matched it.
    typealias Piece = (range: Range<String.Index>, isMatch: Bool)

    /// The pieces of `text` around the matches of `pattern` (every character covered once, in order).
    static func pieces(_ text: String, pattern: PCRE2Pattern) -> [Piece] {
        let utf8 = text.utf8
        var out: [Piece] = []
        var previous = utf8.startIndex, previousOffset = 0
        for m in pattern.matches(in: text) {
            let start = utf8.index(previous, offsetBy: m.lowerBound - previousOffset)
            let end = utf8.index(start, offsetBy: m.count)
            if start != previous { out.append((previous..<start, false)) }
            out.append((start..<end, true))
            previous = end
            previousOffset = m.upperBound
        }
        if previous != text.endIndex { out.append((previous..<text.endIndex, false)) }
        return out
    }

    /// The pieces of `text` where every character (Unicode scalar) for which `matches` holds is a match of its own
    /// and the runs between them are non-matching pieces, as `tokenizers` treats a character predicate.
    static func pieces(_ text: String, where matches: (Unicode.Scalar) -> Bool) -> [Piece] {
        let scalars = text.unicodeScalars
        var out: [Piece] = []
        var runStart = scalars.startIndex
        var i = scalars.startIndex
        while i < scalars.endIndex {
            let next = scalars.index(after: i)
            if matches(scalars[i]) {
                if runStart < i { out.append((runStart..<i, false)) }
                out.append((i..<next, true))
                runStart = next
            }
            i = next
        }
        if runStart < scalars.endIndex { out.append((runStart..<scalars.endIndex, false)) }
        return out
    }

    /// Combines `pieces` of `text` by `behavior` (after flipping matches when `invert`) into the words it yields.
    static func split(_ text: String, _ pieces: [Piece], behavior: SplitBehavior, invert: Bool = false) -> [Substring] {
        let pieces = invert ? pieces.map { ($0.range, !$0.isMatch) } : pieces
        // (range, remove)
        var splits: [(range: Range<String.Index>, remove: Bool)] = []
        switch behavior {
        case .isolated:
            splits = pieces.map { ($0.range, false) }
        case .removed:
            splits = pieces.map { ($0.range, $0.isMatch) }
        case .contiguous, .mergedWithPrevious:
            // Contiguous joins a piece to the one before when both match or both do not; MergedWithPrevious joins a
            // match to the non-match before it.
            var previousMatch = false
            for p in pieces {
                let joins = behavior == .contiguous ? p.isMatch == previousMatch : p.isMatch && !previousMatch
                if joins, let last = splits.last {
                    splits[splits.count - 1].range = last.range.lowerBound..<p.range.upperBound
                } else {
                    splits.append((p.range, false))
                }
                previousMatch = p.isMatch
            }
        case .mergedWithNext:
            var previousMatch = false
            for p in pieces.reversed() {
                if p.isMatch && !previousMatch, let last = splits.last {
                    splits[splits.count - 1].range = p.range.lowerBound..<last.range.upperBound
                } else {
                    splits.append((p.range, false))
                }
                previousMatch = p.isMatch
            }
            splits.reverse()
        }
        return splits.compactMap { $0.remove || $0.range.isEmpty ? nil : text[$0.range] }
    }

    // MARK: Character classes as Rust's `char` methods define them

    /// `char::is_numeric`: general categories Nd, Nl, No.
    static func isNumeric(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: true
        default: false
        }
    }

    /// `char::is_whitespace`: the Unicode White_Space property.
    static func isWhitespace(_ s: Unicode.Scalar) -> Bool { s.properties.isWhitespace }

    /// `tokenizers`' punctuation: ASCII punctuation (which includes symbols such as `$`, `+`, `<`) or a Unicode
    /// punctuation category (Pc, Pd, Ps, Pe, Pi, Pf, Po).
    static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        if s.isASCII {
            let v = s.value
            return (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v)
        }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
             .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }
}
