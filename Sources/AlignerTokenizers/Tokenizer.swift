import Foundation

/// A tokenizer file or call that cannot be used.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case invalid(String)
    case file(String, String)

    public var description: String {
        switch self {
        case .invalid(let m): return m
        case .file(let path, let m): return "\(path): \(m)"
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

/// Text normalisation before pre-tokenisation (the subset of Hugging Face normalizers that BPE tokenizers use).
public indirect enum Normalizer: Sendable, Equatable {
    case sequence([Normalizer])
    case prepend(String)
    case replace(pattern: String, content: String)
    case nfc, nfkc, nfd, lowercase

    func apply(_ s: String) -> String {
        switch self {
        case .sequence(let list): return list.reduce(s) { $1.apply($0) }
        case .prepend(let p): return s.isEmpty ? s : p + s
        case .replace(let pattern, let content): return s.replacingOccurrences(of: pattern, with: content)
        case .nfc: return s.precomposedStringWithCanonicalMapping
        case .nfkc: return s.precomposedStringWithCompatibilityMapping
        case .nfd: return s.decomposedStringWithCanonicalMapping
        case .lowercase: return s.lowercased()
        }
    }
}

/// Splitting into words before BPE.
public indirect enum PreTokenizer: Sendable, Equatable {
    /// GPT-2: optional leading space, the GPT-2 split, then bytes mapped to the byte-level alphabet.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    /// SentencePiece style: spaces become `replacement`, prepended to the first word (scheme "first"/"always") or not.
    case metaspace(replacement: String, prependScheme: String, split: Bool)
    case sequence([PreTokenizer])

    func apply(_ words: [String]) -> [String] {
        switch self {
        case .sequence(let list): return list.reduce(words) { $1.apply($0) }
        case .byteLevel(let prefix, let regex):
            return words.flatMap { w -> [String] in
                let text = prefix && !w.hasPrefix(" ") ? " " + w : w
                let pieces = regex ? GPT2Split.split(text).map(String.init) : [text]
                return pieces.map { ByteLevel.encode($0.utf8) }
            }
        case .metaspace(let replacement, let scheme, let split):
            return words.enumerated().flatMap { (i, w) -> [String] in
                var t = w.replacingOccurrences(of: " ", with: replacement)
                if (scheme == "always" || (scheme == "first" && i == 0)) && !t.hasPrefix(replacement) { t = replacement + t }
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

    func apply(_ tokens: [String]) -> [String] {
        switch self {
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
    /// Added tokens by first character, each list longest first, for leftmost-longest matching.
    private let addedByFirst: [Character: [AddedToken]]
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
        addedByFirst = Dictionary(grouping: addedTokens.filter { !$0.content.isEmpty }, by: { $0.content.first! })
            .mapValues { $0.sorted { $0.content.count > $1.content.count } }
    }

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

    /// Token ids of `text`. Added tokens are matched first (leftmost, longest) and never split; the rest goes through
    /// normalizer, pre-tokenizer and BPE. With `addSpecialTokens`, the post-processor's BOS/EOS are added.
    public func encode(_ text: String, addSpecialTokens: Bool = false) -> [Int] {
        var out: [Int] = []
        if addSpecialTokens { out += prefixIds }
        var segmentStart = text.startIndex
        var i = text.startIndex
        if addedByFirst.isEmpty {
            encodeSegment(text[...], into: &out)
        } else {
            while i < text.endIndex {
                var matched: AddedToken?
                for t in addedByFirst[text[i]] ?? [] where text[i...].hasPrefix(t.content) { matched = t; break }
                if let t = matched {
                    var before = text[segmentStart..<i]
                    if t.lstrip { while before.last?.isWhitespace == true { before = before.dropLast() } }
                    encodeSegment(before, into: &out)
                    out.append(t.id)
                    i = text.index(i, offsetBy: t.content.count)
                    if t.rstrip { while i < text.endIndex && text[i].isWhitespace { i = text.index(after: i) } }
                    segmentStart = i
                } else {
                    i = text.index(after: i)
                }
            }
            encodeSegment(text[segmentStart..<text.endIndex], into: &out)
        }
        if addSpecialTokens { out += suffixIds }
        return out
    }

    private func encodeSegment(_ segment: Substring, into out: inout [Int]) {
        if segment.isEmpty { return }
        var text = String(segment)
        if let normalizer { text = normalizer.apply(text) }
        let words: [String] = preTokenizer?.apply([text]) ?? [text]
        for w in words {
            let key = Substring(w)
            if key.unicodeScalars.count <= 64 {
                cacheLock.lock()
                let hit = cache[key]
                cacheLock.unlock()
                if let hit { out += hit; continue }
                var ids: [Int] = []
                model.encodeWord(key, into: &ids)
                cacheLock.lock()
                if cache.count > 200_000 { cache.removeAll(keepingCapacity: true) }
                cache[key] = ids
                cacheLock.unlock()
                out += ids
            } else {
                model.encodeWord(key, into: &out)
            }
        }
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
        return (decoder?.apply(tokens) ?? tokens).joined()
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
