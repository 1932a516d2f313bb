import AlignerData
import AlignerGGUF
import AlignerModel
import AlignerTensor
import AlignerTokenizers
import Foundation

/// The tokenizer a GGUF file describes in its `tokenizer.ggml.*` metadata (BPE vocabularies, `tokenizer.ggml.model`
/// "gpt2"), with the pre-tokenizer llama.cpp uses for its `tokenizer.ggml.pre` name, special tokens by token type
/// (control tokens are special added tokens, user-defined ones plain added tokens), BOS added when
/// `tokenizer.ggml.add_bos_token` says so, and the chat template.
public struct GGUFTokenizer {
    public let tokenizer: Tokenizer
    public let specialTokens: SpecialTokens
    public let chatTemplate: String?

    static let llama3Split = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Split = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// llama.cpp's pre-tokenizer names AlignerKit reads, the first of each group being the one it writes.
    static let preNames = ["llama-bpe", "llama3", "llama-v3", "falcon3", "smaug-bpe", "dbrx", "qwen2", "deepseek-r1-qwen", "smollm",
                           "falcon", "gpt-2", "default", "gpt2"]

    /// The pre-tokenizer llama.cpp applies for `tokenizer.ggml.pre` = `name` (nil for a name it does not know).
    static func preTokenizer(named name: String, addPrefixSpace: Bool) throws -> PreTokenizer? {
        switch name {
        case "llama3", "llama-v3", "llama-bpe", "falcon3", "smaug-bpe", "dbrx":
            return .sequence([.split(pattern: try PCRE2Pattern(Self.llama3Split), behavior: .isolated, invert: false),
                              .byteLevel(addPrefixSpace: false, useRegex: false)])
        case "qwen2", "deepseek-r1-qwen":
            return .sequence([.split(pattern: try PCRE2Pattern(Self.qwen2Split), behavior: .isolated, invert: false),
                              .byteLevel(addPrefixSpace: false, useRegex: false)])
        case "smollm":
            // llama.cpp: digits one by one, then GPT-2's split (SmolLM's own tokenizer.json does the same).
            return .sequence([.digits(individualDigits: true), .byteLevel(addPrefixSpace: addPrefixSpace, useRegex: true)])
        case "falcon":
            return .sequence([.punctuation(.contiguous), .byteLevel(addPrefixSpace: false, useRegex: true), .digits(individualDigits: false),
                              .split(pattern: try PCRE2Pattern("[0-9][0-9][0-9]"), behavior: .isolated, invert: false)])
        case "default", "gpt-2", "gpt2":
            return .byteLevel(addPrefixSpace: addPrefixSpace, useRegex: true)
        default:
            return nil
        }
    }

    /// The `tokenizer.ggml.pre` name whose rule equals `preTokenizer` (a byte-level BPE tokenizer's), or nil.
    static func preName(of preTokenizer: PreTokenizer?) -> String? {
        guard let preTokenizer else { return nil }
        for name in ["gpt-2", "llama-bpe", "qwen2", "smollm", "falcon"] {
            if let p = try? Self.preTokenizer(named: name, addPrefixSpace: false), p == preTokenizer { return name }
        }
        return nil
    }

    public init(file: GGUFFile) throws {
        func fail(_ m: String) -> GGUFError { GGUFError(file: file.path, message: m) }
        let kind = file.metadata["tokenizer.ggml.model"]?.stringValue ?? "(none)"
        guard kind == "gpt2" || kind == "llama" else { throw fail("tokenizer.ggml.model '\(kind)' is not supported (gpt2, llama)") }
        guard case .array(let tokenValues)? = file.metadata["tokenizer.ggml.tokens"] else { throw fail("tokenizer.ggml.tokens is missing") }
        let tokens = try tokenValues.enumerated().map { i, v -> String in
            guard let s = v.stringValue else { throw fail("tokenizer.ggml.tokens[\(i)] is not a string") }
            return s
        }
        var types: [Int] = []
        if case .array(let t)? = file.metadata["tokenizer.ggml.token_type"] { types = t.map { $0.intValue ?? 1 } }
        var merges: [(String, String)] = []
        if case .array(let m)? = file.metadata["tokenizer.ggml.merges"] {
            for (i, v) in m.enumerated() {
                guard let s = v.stringValue, let space = s.firstIndex(of: " ") else { throw fail("tokenizer.ggml.merges[\(i)] is not \"a b\"") }
                merges.append((String(s[..<space]), String(s[s.index(after: space)...])))
            }
        }
        var vocab: [String: Int] = [:]
        for (i, t) in tokens.enumerated() where vocab[t] == nil { vocab[t] = i }
        func token(_ key: String) -> String? {
            file.metadata["tokenizer.ggml.\(key)"]?.intValue.flatMap { $0 < tokens.count ? tokens[$0] : nil }
        }
        // A sentencepiece vocabulary that says nothing adds BOS (llama.cpp's and transformers' default).
        let addBOS = file.metadata["tokenizer.ggml.add_bos_token"]?.boolValue ?? (kind == "llama")
        let prefix = addBOS ? (file.metadata["tokenizer.ggml.bos_token_id"]?.intValue).map { [$0] } ?? [] : []
        let model: BPEModel
        let normalizer: Normalizer?, preTokenizer: PreTokenizer?, decoder: Decoder
        var postProcessor: [String: Any]
        do {
            if kind == "gpt2" {
                model = try BPEModel(vocab: vocab, merges: merges)
                let pre = file.metadata["tokenizer.ggml.pre"]?.stringValue ?? "default"
                let prefixSpace = file.metadata["tokenizer.ggml.add_space_prefix"]?.boolValue ?? false
                guard let p = try Self.preTokenizer(named: pre, addPrefixSpace: prefixSpace) else {
                    throw fail("tokenizer.ggml.pre '\(pre)' is not supported (\(Self.preNames.joined(separator: ", ")))")
                }
                (normalizer, preTokenizer, decoder) = (nil, p, .byteLevel)
                postProcessor = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true]
            } else {
                // Sentencepiece BPE with byte fallback, as transformers' GGUF loader builds it (LlamaTokenizer): the
                // file's merges, or merges recovered from the scores; "▁" for spaces, one before the text when
                // tokenizer.ggml.add_space_prefix (default true) says so.
                var scores: [Double] = []
                if case .array(let a)? = file.metadata["tokenizer.ggml.scores"] { scores = a.map { $0.doubleValue ?? 0 } }
                let arch = file.metadata["general.architecture"]?.stringValue ?? ""
                let gemma = ["gemma", "gemma2", "gemma3"].contains(arch)
                var pieces = tokens
                if gemma {
                    // As transformers' GGUF loader: Gemma files spell whitespace-only tokens with real spaces
                    // (respelled "▁"), and their merge order is the file order, not the scores.
                    pieces = tokens.map { t in t.contains(" ") && t.allSatisfy(\.isWhitespace) ? String(repeating: "▁", count: t.unicodeScalars.count) : t }
                    scores = (0..<tokens.count).map { -Double($0) }
                    vocab = [:]
                    for (i, t) in pieces.enumerated() where vocab[t] == nil { vocab[t] = i }
                }
                if merges.isEmpty {
                    guard scores.count == tokens.count else { throw fail("tokenizer.ggml.scores: \(scores.count) scores for \(tokens.count) tokens") }
                    merges = Self.mergesFromScores(tokens: pieces, scores: scores, vocab: vocab)
                }
                model = try BPEModel(vocab: vocab, merges: merges, unkToken: gemma ? "<unk>" : token("unknown_token_id"), byteFallback: true, fuseUnknown: true)
                let prefixSpace = file.metadata["tokenizer.ggml.add_space_prefix"]?.boolValue ?? true
                if gemma {
                    // GemmaTokenizer: spaces become "▁" in a normalizer; no prefix space.
                    normalizer = .replace(pattern: " ", content: "▁")
                    preTokenizer = .split(pattern: try PCRE2Pattern(" ", literal: true), behavior: .mergedWithPrevious, invert: false)
                } else if arch == "phi3" {
                    // Phi-3's tokenizer.json puts the prefix space in a normalizer (before every text, also one
                    // that starts with a space).
                    normalizer = .sequence([.prepend("▁"), .replace(pattern: " ", content: "▁")])
                    preTokenizer = nil
                } else {
                    normalizer = nil
                    preTokenizer = .metaspace(replacement: "▁", prependScheme: prefixSpace ? "first" : "never", split: false)
                }
                var steps: [Decoder] = [.replace(pattern: "▁", content: " "), .byteFallback, .fuse]
                if !gemma && (prefixSpace || arch == "phi3") { steps.append(.strip(content: " ", start: 1, stop: 0)) }
                decoder = .sequence(steps)
                postProcessor = ["type": "TemplateProcessing", "single": [["Sequence": ["id": "A", "type_id": 0]]],
                                 "pair": [["Sequence": ["id": "A", "type_id": 0]], ["Sequence": ["id": "B", "type_id": 1]]],
                                 "special_tokens": [String: Any]()]
            }
        } catch let e as TokenizerError { throw fail("tokenizer: \(e)") }
        var added: [AddedToken] = []
        for (i, t) in types.enumerated() where i < tokens.count && (t == 3 || t == 4) {
            added.append(AddedToken(id: i, content: tokens[i], special: t == 3))
        }
        // With BOS to add, the post-processor is written from `prefixIds` when the tokenizer is saved.
        tokenizer = Tokenizer(model: model, normalizer: normalizer, preTokenizer: preTokenizer, decoder: decoder, addedTokens: added,
                              prefixIds: prefix, suffixIds: [], postProcessorJSON: prefix.isEmpty ? postProcessor : nil)
        specialTokens = SpecialTokens(bos: token("bos_token_id"), eos: token("eos_token_id"), pad: token("padding_token_id"), unk: token("unknown_token_id"))
        chatTemplate = file.metadata["tokenizer.chat_template"]?.stringValue
    }

    /// Merges implied by a sentencepiece vocabulary's scores, as transformers' `generate_merges` derives them: every
    /// split of a token into two tokens of the vocabulary, best merged-token score first (then shorter left, shorter
    /// right pieces first, reversed as Python's stable `sort(reverse=True)` orders them).
    static func mergesFromScores(tokens: [String], scores: [Double], vocab: [String: Int]) -> [(String, String)] {
        var lastId: [String: Int] = [:]  // Python's {token: index} keeps the last index of a repeated token
        for (i, t) in tokens.enumerated() { lastId[t] = i }
        var scoreOf: [String: Double] = [:], order: [String] = []
        for (t, s) in zip(tokens, scores) {
            if scoreOf[t] == nil { order.append(t) }
            scoreOf[t] = s
        }
        var all: [(left: String, right: String, score: Double, ll: Int, rl: Int)] = []
        for merged in order {
            let scalars = Array(merged.unicodeScalars)
            guard scalars.count > 1 else { continue }
            var local: [(String, String, Int, Int)] = []
            for cut in 1..<scalars.count {
                var l = String.UnicodeScalarView(), r = String.UnicodeScalarView()
                l.append(contentsOf: scalars[..<cut])
                r.append(contentsOf: scalars[cut...])
                let left = String(l), right = String(r)
                if let a = lastId[left], let b = lastId[right] { local.append((left, right, a, b)) }
            }
            local.sort { ($0.2, $0.3) < ($1.2, $1.3) }
            let s = scoreOf[merged]!
            for m in local { all.append((m.0, m.1, s, m.0.unicodeScalars.count, m.1.unicodeScalars.count)) }
        }
        // Stable sort, descending by (score, left length, right length).
        let indexed = all.enumerated().sorted { x, y in
            let a = x.element, b = y.element
            if a.score != b.score { return a.score > b.score }
            if a.ll != b.ll { return a.ll > b.ll }
            if a.rl != b.rl { return a.rl > b.rl }
            return x.offset < y.offset
        }
        return indexed.map { ($0.element.left, $0.element.right) }
    }
}
