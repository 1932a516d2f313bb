import AlignerErrors
import Foundation

/// A tokenizer file or call that cannot be used.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case invalid(String)
    case file(String, String)
    /// The file does not exist.
    case missing(String)

    public var description: String {
        switch self {
        case .invalid(let m): return m
        case .file(let path, let m): return "\(path): \(m)"
        case .missing(let path): return "\(path): no such file"
        }
    }
}

/// A token added on top of the model's vocabulary (special tokens such as BOS, EOS, PAD, UNK); never split.
public struct AddedToken: Sendable, Equatable {
    public var id: Int
    public var content: String
    public var special: Bool
    public var lstrip = false
    public var rstrip = false
    public var normalized = false
    public var singleWord = false

    public init(id: Int, content: String, special: Bool) {
        self.id = id
        self.content = content
        self.special = special
    }
}

/// Text normalisation before pre-tokenisation (Hugging Face's normalizers that BPE tokenizers use).
public indirect enum Normalizer: Sendable, Equatable {
    case sequence([Normalizer])
    case prepend(String)
    /// Replaces every occurrence of a literal string.
    case replace(pattern: String, content: String)
    /// Replaces every match of a regular expression.
    case replaceRegex(PCRE2Pattern, content: String)
    case nfc, nfkc, nfd, nfkd, lowercase
    /// Removes whitespace at the start (`left`) and/or end (`right`).
    case strip(left: Bool, right: Bool)

    func apply(_ s: String) -> String {
        switch self {
        case .sequence(let list): return list.reduce(s) { $1.apply($0) }
        case .prepend(let p): return s.isEmpty ? s : p + s
        case .replace(let pattern, let content): return s.replacingOccurrences(of: pattern, with: content)
        case .replaceRegex(let regex, let content):
            var out = "", last = s.startIndex
            for piece in Splitter.pieces(s, pattern: regex) where piece.isMatch {
                out += s[last..<piece.range.lowerBound]
                out += content
                last = piece.range.upperBound
            }
            return out + s[last...]
        case .nfc: return s.precomposedStringWithCanonicalMapping
        case .nfkc: return s.precomposedStringWithCompatibilityMapping
        case .nfd: return s.decomposedStringWithCanonicalMapping
        case .nfkd: return s.decomposedStringWithCompatibilityMapping
        case .lowercase: return s.lowercased()
        case .strip(let left, let right):
            var scalars = Substring(s).unicodeScalars
            if left { while let f = scalars.first, Splitter.isWhitespace(f) { scalars.removeFirst() } }
            if right { while let l = scalars.last, Splitter.isWhitespace(l) { scalars.removeLast() } }
            return String(scalars)
        }
    }
}

/// Splitting into words before BPE (Hugging Face's pre-tokenizers).
public indirect enum PreTokenizer: Sendable, Equatable {
    /// GPT-2: optional leading space, the GPT-2 split (`useRegex`), then bytes mapped to the byte-level alphabet.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    /// SentencePiece style: spaces become `replacement`, prepended to the first word of the text (scheme "first"),
    /// to every word ("always") or to none ("never"); `split` cuts before each replacement character.
    case metaspace(replacement: String, prependScheme: String, split: Bool)
    /// Splits by a regular expression or literal string with a `SplitBehavior`; `invert` swaps matches and the rest.
    case split(pattern: PCRE2Pattern, behavior: SplitBehavior, invert: Bool)
    /// Digits apart from the rest: each digit alone (`individualDigits`) or runs of digits together.
    case digits(individualDigits: Bool)
    /// Punctuation apart from the rest, with a `SplitBehavior` (Isolated by default).
    case punctuation(SplitBehavior)
    /// Words (`\w+`) and runs of other non-space characters; whitespace is dropped.
    case whitespace
    /// Cuts at whitespace, which is dropped.
    case whitespaceSplit
    case sequence([PreTokenizer])

    /// `\w+|[^\w\s]+` with Rust's Unicode definitions of \w and \s, for `Whitespace`.
    static let wordsOrSymbols: PCRE2Pattern = {
        let word = #"\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}"#
        return try! PCRE2Pattern("[" + word + "]+|[^" + word + #"\p{White_Space}]+"#)
    }()

    /// The words of `words` after this pre-tokenizer; `atStart` says whether the first word begins the text (for
    /// Metaspace's "first" scheme, which prepends only there, as `tokenizers` checks the original offset).
    func apply(_ words: [String], atStart: Bool = true) -> [String] {
        // Empty words yield nothing (tokenizers drops empty splits).
        let words = words.filter { !$0.isEmpty }
        func splitting(_ f: (String) -> [Substring]) -> [String] { words.flatMap { f($0).map(String.init) } }
        switch self {
        case .sequence(let list): return list.reduce(words) { $1.apply($0, atStart: atStart) }
        case .byteLevel(let prefix, let regex):
            return words.flatMap { w -> [String] in
                let text = prefix && !w.hasPrefix(" ") ? " " + w : w
                let pieces = regex ? GPT2Split.split(text).map(String.init) : [text]
                return pieces.map { ByteLevel.encode($0.utf8) }
            }
        case .metaspace(let replacement, let scheme, let split):
            return words.enumerated().flatMap { (i, w) -> [String] in
                var t = w.replacingOccurrences(of: " ", with: replacement)
                if (scheme == "always" || (scheme == "first" && i == 0 && atStart)) && !t.hasPrefix(replacement) { t = replacement + t }
                guard split else { return [t] }
                // Split before each replacement character, keeping it with the word that follows.
                var out: [String] = []
                var current = ""
                for ch in t {
                    if String(ch) == replacement && !current.isEmpty { out.append(current); current = "" }
                    current.append(ch)
                }
                if !current.isEmpty { out.append(current) }
                return out
            }
        case .split(let pattern, let behavior, let invert):
            return splitting { Splitter.split($0, Splitter.pieces($0, pattern: pattern), behavior: behavior, invert: invert) }
        case .digits(let individual):
            return splitting { Splitter.split($0, Splitter.pieces($0, where: Splitter.isNumeric), behavior: individual ? .isolated : .contiguous) }
        case .punctuation(let behavior):
            return splitting { Splitter.split($0, Splitter.pieces($0, where: Splitter.isPunctuation), behavior: behavior) }
        case .whitespace:
            return splitting { Splitter.split($0, Splitter.pieces($0, pattern: Self.wordsOrSymbols), behavior: .removed, invert: true) }
        case .whitespaceSplit:
            return splitting { Splitter.split($0, Splitter.pieces($0, where: Splitter.isWhitespace), behavior: .removed) }
        }
    }
}

/// Turning token strings back into text.
public indirect enum Decoder: Sendable, Equatable {
    case byteLevel
    case sequence([Decoder])
    case replace(pattern: String, content: String)
    case byteFallback
    case fuse
    case strip(content: String, start: Int, stop: Int)
    case metaspace(replacement: String, prependScheme: String)
    /// `BPEDecoder`: the end-of-word suffix becomes a space (nothing after the last token).
    case bpe(suffix: String)

    func apply(_ tokens: [String]) -> [String] {
        switch self {
        case .bpe(let suffix):
            return tokens.enumerated().map { i, t in t.replacingOccurrences(of: suffix, with: i == tokens.count - 1 ? "" : " ") }
        case .sequence(let list): return list.reduce(tokens) { $1.apply($0) }
        case .byteLevel:
            return [String(decoding: ByteLevel.decode(tokens.joined()), as: UTF8.self)]
        case .replace(let pattern, let content): return tokens.map { $0.replacingOccurrences(of: pattern, with: content) }
        case .fuse: return [tokens.joined()]
        case .strip(let content, let start, let stop):
            return tokens.map { t in
                var s = Substring(t)
                for _ in 0..<start where s.hasPrefix(content) { s = s.dropFirst(content.count) }
                for _ in 0..<stop where s.hasSuffix(content) { s = s.dropLast(content.count) }
                return String(s)
            }
        case .byteFallback:
            var out: [String] = []
            var bytes: [UInt8] = []
            func flush() {
                guard !bytes.isEmpty else { return }
                // Invalid UTF-8 becomes one U+FFFD per byte, as tokenizers does.
                if let s = String(bytes: bytes, encoding: .utf8) { out.append(s) }
                else { out += [String](repeating: "\u{FFFD}", count: bytes.count) }
                bytes.removeAll()
            }
            for t in tokens {
                if t.count == 6, t.hasPrefix("<0x"), t.hasSuffix(">"), let b = UInt8(t.dropFirst(3).prefix(2), radix: 16) {
                    bytes.append(b)
                } else {
                    flush()
                    out.append(t)
                }
            }
            flush()
            return out
        case .metaspace(let replacement, let scheme):
            return tokens.enumerated().map { (i, t) in
                var s = t.replacingOccurrences(of: replacement, with: " ")
                if i == 0 && scheme != "never" && s.hasPrefix(" ") { s.removeFirst() }
                return s
            }
        }
    }
}

/// A Hugging Face-compatible BPE tokenizer (`tokenizer.json`): added tokens, normalizer, pre-tokenizer, BPE model,
/// post-processor (BOS/EOS template) and decoder.
public final class Tokenizer: @unchecked Sendable {
    public let model: BPEModel
    public let normalizer: Normalizer?
    public let preTokenizer: PreTokenizer?
    public let decoder: Decoder?
    public let addedTokens: [AddedToken]
    /// Token ids placed before / after a sequence when `addSpecialTokens` is true (from TemplateProcessing).
    public let prefixIds: [Int]
    public let suffixIds: [Int]
    /// The original `post_processor` JSON, written back unchanged on save.
    let postProcessorJSON: Any?

    private let addedByContent: [String: Int]
    private let addedById: [Int: AddedToken]
    /// Added tokens matched on the raw text (`normalized` false, or no normalizer) and on the normalized text,
    /// by first character, each list longest first, for leftmost-longest matching.
    private let rawAdded: [Character: [AddedToken]]
    private let normalizedAdded: [Character: [AddedToken]]
    private var cache: [Substring: [Int]] = [:]
    private let cacheLock = NSLock()

    public init(model: BPEModel, normalizer: Normalizer?, preTokenizer: PreTokenizer?, decoder: Decoder?,
                addedTokens: [AddedToken], prefixIds: [Int] = [], suffixIds: [Int] = [], postProcessorJSON: Any? = nil) {
        self.model = model
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.decoder = decoder
        self.addedTokens = addedTokens
        self.prefixIds = prefixIds
        self.suffixIds = suffixIds
        self.postProcessorJSON = postProcessorJSON
        var byContent: [String: Int] = [:], byId: [Int: AddedToken] = [:]
        for t in addedTokens { byContent[t.content] = t.id; byId[t.id] = t }
        addedByContent = byContent
        addedById = byId
        func byFirst(_ tokens: [AddedToken]) -> [Character: [AddedToken]] {
            Dictionary(grouping: tokens.filter { !$0.content.isEmpty }, by: { $0.content.first! })
                .mapValues { $0.sorted { $0.content.count > $1.content.count } }
        }
        let matchedNormalized = { (t: AddedToken) in t.normalized && normalizer != nil }
        rawAdded = byFirst(addedTokens.filter { !matchedNormalized($0) })
        normalizedAdded = byFirst(addedTokens.filter(matchedNormalized))
    }

    /// Whether the file gave a post-processor: then its special tokens (`prefixIds`, `suffixIds`) are the ones
    /// transformers adds to an encoded text, and a `bos_token` in `tokenizer_config.json` adds nothing by itself
    /// (transformers 5 also ignores `add_bos_token` / `add_eos_token` there when `tokenizer.json` exists).
    public var hasPostProcessor: Bool { postProcessorJSON is [String: Any] || !prefixIds.isEmpty || !suffixIds.isEmpty }

    /// Size of the id space (model vocabulary plus added tokens).
    public var vocabularySize: Int {
        max((model.tokens.keys.max() ?? -1), (addedTokens.map(\.id).max() ?? -1)) + 1
    }

    /// The id of a token string (added or model vocabulary).
    public func id(of token: String) -> Int? { addedByContent[token] ?? model.vocab[token] }

    /// The string of a token id.
    public func token(of id: Int) -> String? { addedById[id]?.content ?? model.tokens[id] }

    /// Whether `id` is a special added token.
    public func isSpecial(_ id: Int) -> Bool { addedById[id]?.special ?? false }

    // MARK: Encoding

    /// Token ids of `text`, as Hugging Face `tokenizers` encodes: added tokens are matched first (leftmost, longest;
    /// `single_word`, `lstrip`, `rstrip` as the file says; `normalized` ones on the normalized text) and never split;
    /// the rest goes through normalizer, pre-tokenizer and BPE. With `addSpecialTokens`, the post-processor's BOS/EOS
    /// are added.
    public func encode(_ text: String, addSpecialTokens: Bool = false) -> [Int] {
        var out: [Int] = []
        if addSpecialTokens { out += prefixIds }
        Self.splitByAdded(text[...], rawAdded) { piece, id in
            if let id { out.append(id) } else { encodeSegment(piece, atStart: piece.startIndex == text.startIndex, into: &out) }
        }
        if addSpecialTokens { out += suffixIds }
        return out
    }

    /// Calls `body` with the pieces of `text` in order: (the matched text, the added token's id) for added tokens of
    /// `tokens`, (the text between them, nil) otherwise.
    private static func splitByAdded(_ text: Substring, _ tokens: [Character: [AddedToken]], _ body: (Substring, Int?) -> Void) {
        if tokens.isEmpty {
            body(text, nil)
            return
        }
        var segmentStart = text.startIndex
        var i = text.startIndex
        while i < text.endIndex {
            var matched: AddedToken?
            for t in tokens[text[i]] ?? [] where text[i...].hasPrefix(t.content) { matched = t; break }
            guard let t = matched else { i = text.index(after: i); continue }
            let end = text.index(i, offsetBy: t.content.count)
            if t.singleWord {
                // Only as a whole word: no word character (\w) right before or after.
                func isWord(_ c: Character?) -> Bool { c.map { $0.isLetter || $0.isNumber || $0 == "_" } ?? false }
                let before = i > text.startIndex ? text[text.index(before: i)] : nil
                let after = end < text.endIndex ? text[end] : nil
                if isWord(before) || isWord(after) { i = end; continue }
            }
            var before = text[segmentStart..<i]
            if t.lstrip { while before.last?.isWhitespace == true { before = before.dropLast() } }
            if !before.isEmpty { body(before, nil) }
            body(text[i..<end], t.id)
            i = end
            if t.rstrip { while i < text.endIndex && text[i].isWhitespace { i = text.index(after: i) } }
            segmentStart = i
        }
        if segmentStart < text.endIndex { body(text[segmentStart...], nil) }
    }

    /// Normalizes a piece of text between added tokens, matches the normalized added tokens, and pre-tokenizes and
    /// BPE-encodes the rest. `atStart`: the piece begins the text (Metaspace's "first" scheme prepends only there).
    private func encodeSegment(_ segment: Substring, atStart: Bool, into out: inout [Int]) {
        if segment.isEmpty { return }
        var text = String(segment)
        if let normalizer { text = normalizer.apply(text) }
        Self.splitByAdded(text[...], normalizedAdded) { piece, id in
            if let id { out.append(id); return }
            let words: [String] = preTokenizer?.apply([String(piece)], atStart: atStart && piece.startIndex == text.startIndex) ?? [String(piece)]
            for w in words { encodeWord(w, into: &out) }
        }
    }

    /// BPE of one pre-tokenized word, through the cache for short words.
    private func encodeWord(_ w: String, into out: inout [Int]) {
        let key = Substring(w)
        guard key.unicodeScalars.count <= 64 else {
            model.encodeWord(key, into: &out)
            return
        }
        cacheLock.lock()
        let hit = cache[key]
        cacheLock.unlock()
        if let hit { out += hit; return }
        var ids: [Int] = []
        model.encodeWord(key, into: &ids)
        cacheLock.lock()
        if cache.count > 200_000 { cache.removeAll(keepingCapacity: true) }
        cache[key] = ids
        cacheLock.unlock()
        out += ids
    }

    // MARK: Decoding

    /// The text of `ids`; special tokens are left out when `skipSpecialTokens`. As in `tokenizers`, every token
    /// (added ones included) goes through the decoder.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            if let added = addedById[id] {
                if skipSpecialTokens && added.special { continue }
                tokens.append(added.content)
            } else if let t = model.tokens[id] {
                tokens.append(t)
            }
        }
        // Without a decoder, tokenizers joins the tokens with spaces.
        guard let decoder else { return tokens.joined(separator: " ") }
        return decoder.apply(tokens).joined()
    }
}

extension Tokenizer {
    /// A copy with one more added token.
    public func adding(_ token: AddedToken) -> Tokenizer {
        Tokenizer(model: model, normalizer: normalizer, preTokenizer: preTokenizer, decoder: decoder,
                  addedTokens: addedTokens + [token], prefixIds: prefixIds, suffixIds: suffixIds,
                  postProcessorJSON: postProcessorJSON)
    }
}

extension TokenizerError: AlignerError {
    public var subject: FailureSubject {
        switch self {
        case .file(let path, _), .missing(let path): return .file(path)
        case .invalid: return .none
        }
    }
    public var kind: FailureKind {
        if case .missing = self { return .missing }
        return .badData
    }
}
