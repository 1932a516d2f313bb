import AlignerFiles
import Foundation

extension Tokenizer {
    /// Loads a Hugging Face `tokenizer.json` (BPE models: GPT-2 byte-level and SentencePiece-style with byte fallback).
    public static func load(from url: URL) throws -> Tokenizer {
        let data: Data
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue {
            throw FileError(file: url.path, message: "is a folder, not a tokenizer.json file", kind: .usage)
        }
        guard FileManager.default.fileExists(atPath: url.path) else { throw TokenizerError.missing(url.path) }
        try FileSystemFailure.checkInputFile(url.path)
        do { data = try Data(contentsOf: url) } catch {
            throw FileSystemFailure.error(error, path: url.path, action: "read")
        }
        do { return try load(json: data) } catch let TokenizerError.invalid(m) { throw TokenizerError.file(url.path, m) }
    }

    /// Parses the contents of a `tokenizer.json`.
    public static func load(json data: Data) throws -> Tokenizer {
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw TokenizerError.invalid("not a JSON object")
        }
        guard let m = root["model"] as? [String: Any] else { throw TokenizerError.invalid("no 'model' section") }
        let type = m["type"] as? String ?? "BPE"
        guard type == "BPE" else {
            throw TokenizerError.invalid("model type '\(type)' is not supported (only BPE; Unigram and WordPiece models are not implemented)")
        }
        guard let vocabAny = m["vocab"] as? [String: Any] else { throw TokenizerError.invalid("model.vocab is missing") }
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(vocabAny.count)
        for (k, v) in vocabAny {
            guard let id = v as? Int else { throw TokenizerError.invalid("model.vocab['\(k)'] is not an integer") }
            try checkId(id, "model.vocab['\(k)']")
            vocab[k] = id
        }
        var merges: [(String, String)] = []
        for (i, item) in ((m["merges"] as? [Any]) ?? []).enumerated() {
            if let s = item as? String {
                guard let space = s.firstIndex(of: " ") else { throw TokenizerError.invalid("merge \(i) '\(s)' has no space") }
                merges.append((String(s[..<space]), String(s[s.index(after: space)...])))
            } else if let pair = item as? [String], pair.count == 2 {
                merges.append((pair[0], pair[1]))
            } else {
                throw TokenizerError.invalid("merge \(i) is neither \"a b\" nor [a, b]")
            }
        }
        if let dropout = m["dropout"] as? Double, dropout > 0 {
            throw TokenizerError.invalid("model.dropout \(dropout) is not supported (BPE dropout is a training-time augmentation)")
        }
        let model = try BPEModel(
            vocab: vocab, merges: merges, unkToken: m["unk_token"] as? String, byteFallback: m["byte_fallback"] as? Bool ?? false,
            fuseUnknown: m["fuse_unk"] as? Bool ?? false, continuingSubwordPrefix: m["continuing_subword_prefix"] as? String,
            endOfWordSuffix: m["end_of_word_suffix"] as? String, ignoreMerges: m["ignore_merges"] as? Bool ?? false)

        var added: [AddedToken] = []
        for item in (root["added_tokens"] as? [[String: Any]]) ?? [] {
            guard let id = item["id"] as? Int, let content = item["content"] as? String else {
                throw TokenizerError.invalid("an added token lacks id or content")
            }
            try checkId(id, "added_tokens '\(content)'")
            var t = AddedToken(id: id, content: content, special: item["special"] as? Bool ?? false)
            t.lstrip = item["lstrip"] as? Bool ?? false
            t.rstrip = item["rstrip"] as? Bool ?? false
            t.normalized = item["normalized"] as? Bool ?? false
            t.singleWord = item["single_word"] as? Bool ?? false
            added.append(t)
        }
        let normalizer = try parseNormalizer(root["normalizer"])
        let pre = try parsePreTokenizer(root["pre_tokenizer"])
        let decoder = try parseDecoder(root["decoder"])
        var prefix: [Int] = [], suffix: [Int] = []
        if let post = root["post_processor"] as? [String: Any] {
            (prefix, suffix) = try parseTemplate(post, vocab: vocab, added: added)
        }
        for id in prefix + suffix { try checkId(id, "post_processor") }
        return Tokenizer(model: model, normalizer: normalizer, preTokenizer: pre, decoder: decoder, addedTokens: added,
                         prefixIds: prefix, suffixIds: suffix, postProcessorJSON: root["post_processor"])
    }

    /// The largest token id a tokenizer file may use (the largest real vocabularies hold about 256K tokens).
    public static let maxTokenId = (1 << 24) - 1

    /// Refuses an id that is negative or beyond `maxTokenId`, naming where it was found.
    static func checkId(_ id: Int, _ what: String) throws {
        guard (0...maxTokenId).contains(id) else {
            throw TokenizerError.invalid("\(what): token id \(id) is outside 0...\(maxTokenId)")
        }
    }

    /// Loads OpenAI's GPT-2 files (`encoder.json` = vocab.json, `vocab.bpe` = merges.txt) as GPT-2's tokenizer.
    public static func gpt2(encoderJSON: URL, vocabBPE: URL) throws -> Tokenizer {
        guard let vocab = (try? JSONSerialization.jsonObject(with: Data(contentsOf: encoderJSON))) as? [String: Int] else {
            throw TokenizerError.file(encoderJSON.path, "not a JSON object of token → id")
        }
        let text: String
        do { text = try String(contentsOf: vocabBPE, encoding: .utf8) } catch {
            throw FileSystemFailure.error(error, path: vocabBPE.path, action: "read")
        }
        var merges: [(String, String)] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.hasPrefix("#version") || line.isEmpty { continue }
            let parts = line.split(separator: " ")
            guard parts.count == 2 else { throw TokenizerError.file(vocabBPE.path, "line \(n + 1): expected two tokens") }
            merges.append((String(parts[0]), String(parts[1])))
        }
        let model = try BPEModel(vocab: vocab, merges: merges)
        var added: [AddedToken] = []
        if let eot = vocab["<|endoftext|>"] { added.append(AddedToken(id: eot, content: "<|endoftext|>", special: true)) }
        return Tokenizer(model: model, normalizer: nil, preTokenizer: .byteLevel(addPrefixSpace: false, useRegex: true),
                         decoder: .byteLevel, addedTokens: added)
    }

    // MARK: Sections

    /// A `{"String": ...}` (literal) or `{"Regex": ...}` pattern.
    static func compiledPattern(_ any: Any?, in section: String) throws -> PCRE2Pattern {
        if let p = any as? [String: Any] {
            if let s = p["String"] as? String { return try PCRE2Pattern(s, literal: true) }
            if let r = p["Regex"] as? String {
                do { return try PCRE2Pattern(r) } catch let TokenizerError.invalid(m) { throw TokenizerError.invalid("\(section): \(m)") }
            }
        }
        throw TokenizerError.invalid("\(section): pattern must be {\"String\": ...} or {\"Regex\": ...}, got \(String(describing: any))")
    }

    static func behavior(_ any: Any?, default d: SplitBehavior, in section: String) throws -> SplitBehavior {
        guard let name = any as? String else { return d }
        guard let b = SplitBehavior(rawValue: name) else {
            throw TokenizerError.invalid("\(section): behavior '\(name)' is not one of \(SplitBehavior.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return b
    }

    static func parseNormalizer(_ any: Any?) throws -> Normalizer? {
        guard let n = any as? [String: Any], let type = n["type"] as? String else { return nil }
        switch type {
        case "Sequence": return .sequence(try ((n["normalizers"] as? [Any]) ?? []).compactMap(parseNormalizer))
        case "Prepend": return .prepend(n["prepend"] as? String ?? "")
        case "Replace":
            let p = try compiledPattern(n["pattern"], in: "normalizer Replace")
            let content = n["content"] as? String ?? ""
            return p.isLiteral ? .replace(pattern: p.source, content: content) : .replaceRegex(p, content: content)
        case "NFC": return .nfc
        case "NFKC": return .nfkc
        case "NFD": return .nfd
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        case "Strip": return .strip(left: n["strip_left"] as? Bool ?? true, right: n["strip_right"] as? Bool ?? true)
        default: throw TokenizerError.invalid("normalizer '\(type)' is not supported (Sequence, Prepend, Replace, NFC, NFKC, NFD, NFKD, Lowercase, Strip)")
        }
    }

    static func parsePreTokenizer(_ any: Any?) throws -> PreTokenizer? {
        guard let p = any as? [String: Any], let type = p["type"] as? String else { return nil }
        switch type {
        case "ByteLevel":
            return .byteLevel(addPrefixSpace: p["add_prefix_space"] as? Bool ?? false, useRegex: p["use_regex"] as? Bool ?? true)
        case "Metaspace":
            var scheme = p["prepend_scheme"] as? String ?? "always"
            if p["prepend_scheme"] == nil, let add = p["add_prefix_space"] as? Bool { scheme = add ? "always" : "never" }
            guard ["first", "always", "never"].contains(scheme) else {
                throw TokenizerError.invalid("pre_tokenizer Metaspace: prepend_scheme '\(scheme)' is not first, always or never")
            }
            return .metaspace(replacement: p["replacement"] as? String ?? "▁", prependScheme: scheme, split: p["split"] as? Bool ?? true)
        case "Split":
            return .split(pattern: try compiledPattern(p["pattern"], in: "pre_tokenizer Split"),
                          behavior: try behavior(p["behavior"], default: .isolated, in: "pre_tokenizer Split"),
                          invert: p["invert"] as? Bool ?? false)
        case "Digits": return .digits(individualDigits: p["individual_digits"] as? Bool ?? false)
        case "Punctuation": return .punctuation(try behavior(p["behavior"], default: .isolated, in: "pre_tokenizer Punctuation"))
        case "Whitespace": return .whitespace
        case "WhitespaceSplit": return .whitespaceSplit
        case "Sequence": return .sequence(try ((p["pretokenizers"] as? [Any]) ?? []).compactMap(parsePreTokenizer))
        default:
            throw TokenizerError.invalid("pre_tokenizer '\(type)' is not supported (ByteLevel, Metaspace, Split, Digits, Punctuation, Whitespace, WhitespaceSplit, Sequence)")
        }
    }

    static func parseDecoder(_ any: Any?) throws -> Decoder? {
        guard let d = any as? [String: Any], let type = d["type"] as? String else { return nil }
        switch type {
        case "ByteLevel": return .byteLevel
        case "Sequence": return .sequence(try ((d["decoders"] as? [Any]) ?? []).compactMap(parseDecoder))
        case "Replace":
            let p = try compiledPattern(d["pattern"], in: "decoder Replace")
            guard p.isLiteral else { throw TokenizerError.invalid("decoder Replace: only string patterns are supported") }
            return .replace(pattern: p.source, content: d["content"] as? String ?? "")
        case "ByteFallback": return .byteFallback
        case "Fuse": return .fuse
        case "Strip":
            let start = d["start"] as? Int ?? 0, stop = d["stop"] as? Int ?? 0
            guard (0...1 << 20).contains(start), (0...1 << 20).contains(stop) else {
                throw TokenizerError.invalid("decoder Strip: start \(start) and stop \(stop) must be within 0...\(1 << 20)")
            }
            return .strip(content: d["content"] as? String ?? " ", start: start, stop: stop)
        case "Metaspace":
            var scheme = d["prepend_scheme"] as? String ?? "always"
            if d["prepend_scheme"] == nil, let add = d["add_prefix_space"] as? Bool { scheme = add ? "always" : "never" }
            return .metaspace(replacement: d["replacement"] as? String ?? "▁", prependScheme: scheme)
        case "BPEDecoder": return .bpe(suffix: d["suffix"] as? String ?? "</w>")
        default:
            throw TokenizerError.invalid("decoder '\(type)' is not supported (ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, BPEDecoder, Sequence)")
        }
    }

    /// The special tokens a TemplateProcessing post-processor puts around a single sequence `$A`.
    static func parseTemplate(_ post: [String: Any], vocab: [String: Int], added: [AddedToken]) throws -> ([Int], [Int]) {
        let type = post["type"] as? String ?? ""
        if type == "ByteLevel" { return ([], []) }
        if type == "RobertaProcessing" || type == "BertProcessing" {
            // {"cls": ["<s>", 0], "sep": ["</s>", 2]}: cls $A sep.
            guard let cls = post["cls"] as? [Any], let sep = post["sep"] as? [Any], let c = cls.last as? Int, let e = sep.last as? Int else {
                throw TokenizerError.invalid("post_processor \(type) needs cls and sep as [token, id]")
            }
            return ([c], [e])
        }
        if type == "Sequence" {
            var prefix: [Int] = [], suffix: [Int] = []
            for p in (post["processors"] as? [[String: Any]]) ?? [] {
                let (a, b) = try parseTemplate(p, vocab: vocab, added: added)
                prefix += a
                suffix += b
            }
            return (prefix, suffix)
        }
        guard type == "TemplateProcessing" else {
            throw TokenizerError.invalid("post_processor '\(type)' is not supported (TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, Sequence)")
        }
        var ids: [String: Int] = vocab
        for t in added { ids[t.content] = t.id }
        if let specials = post["special_tokens"] as? [String: Any] {
            for (name, v) in specials {
                if let d = v as? [String: Any], let list = d["ids"] as? [Int], let first = list.first { ids[name] = first }
            }
        }
        var prefix: [Int] = [], suffix: [Int] = [], seenSequence = false
        for piece in (post["single"] as? [[String: Any]]) ?? [] {
            if piece["Sequence"] != nil { seenSequence = true; continue }
            guard let special = piece["SpecialToken"] as? [String: Any], let name = special["id"] as? String else { continue }
            guard let id = ids[name] else { throw TokenizerError.invalid("post_processor names unknown token '\(name)'") }
            if seenSequence { suffix.append(id) } else { prefix.append(id) }
        }
        return (prefix, suffix)
    }
}

extension Tokenizer {
    /// A `tokenizer.json` for this tokenizer (the format Hugging Face `tokenizers` reads).
    public func jsonData() throws -> Data {
        func normalizerJSON(_ n: Normalizer?) -> Any {
            guard let n else { return NSNull() }
            switch n {
            case .sequence(let l): return ["type": "Sequence", "normalizers": l.map { normalizerJSON($0) }]
            case .prepend(let p): return ["type": "Prepend", "prepend": p]
            case .replace(let p, let c): return ["type": "Replace", "pattern": ["String": p], "content": c]
            case .replaceRegex(let p, let c): return ["type": "Replace", "pattern": ["Regex": p.source], "content": c]
            case .nfc: return ["type": "NFC"]
            case .nfkc: return ["type": "NFKC"]
            case .nfd: return ["type": "NFD"]
            case .nfkd: return ["type": "NFKD"]
            case .lowercase: return ["type": "Lowercase"]
            case .strip(let l, let r): return ["type": "Strip", "strip_left": l, "strip_right": r]
            }
        }
        func preJSON(_ p: PreTokenizer?) -> Any {
            guard let p else { return NSNull() }
            switch p {
            case .byteLevel(let prefix, let regex):
                return ["type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": true, "use_regex": regex]
            case .metaspace(let r, let scheme, let split):
                return ["type": "Metaspace", "replacement": r, "prepend_scheme": scheme, "split": split]
            case .sequence(let l): return ["type": "Sequence", "pretokenizers": l.map { preJSON($0) }]
            case .split(let p, let b, let invert):
                return ["type": "Split", "pattern": [p.isLiteral ? "String" : "Regex": p.source], "behavior": b.rawValue, "invert": invert]
            case .digits(let individual): return ["type": "Digits", "individual_digits": individual]
            case .punctuation(let b): return ["type": "Punctuation", "behavior": b.rawValue]
            case .whitespace: return ["type": "Whitespace"]
            case .whitespaceSplit: return ["type": "WhitespaceSplit"]
            }
        }
        func decoderJSON(_ d: Decoder?) -> Any {
            guard let d else { return NSNull() }
            switch d {
            case .byteLevel: return ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true]
            case .sequence(let l): return ["type": "Sequence", "decoders": l.map { decoderJSON($0) }]
            case .replace(let p, let c): return ["type": "Replace", "pattern": ["String": p], "content": c]
            case .byteFallback: return ["type": "ByteFallback"]
            case .fuse: return ["type": "Fuse"]
            case .strip(let c, let a, let b): return ["type": "Strip", "content": c, "start": a, "stop": b]
            case .metaspace(let r, let scheme): return ["type": "Metaspace", "replacement": r, "prepend_scheme": scheme, "split": true]
            case .bpe(let suffix): return ["type": "BPEDecoder", "suffix": suffix]
            }
        }
        var post: Any = postProcessorJSON ?? NSNull()
        if postProcessorJSON == nil && (!prefixIds.isEmpty || !suffixIds.isEmpty) {
            func special(_ id: Int) -> [String: Any] { ["SpecialToken": ["id": token(of: id) ?? "", "type_id": 0]] }
            let single: [[String: Any]] = prefixIds.map(special) + [["Sequence": ["id": "A", "type_id": 0]]] + suffixIds.map(special)
            var specials: [String: Any] = [:]
            for id in prefixIds + suffixIds { let t = token(of: id) ?? ""; specials[t] = ["id": t, "ids": [id], "tokens": [t]] }
            post = ["type": "TemplateProcessing", "single": single, "pair": single, "special_tokens": specials]
        }
        let root: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(),
            "added_tokens": addedTokens.map {
                ["id": $0.id, "content": $0.content, "single_word": $0.singleWord, "lstrip": $0.lstrip, "rstrip": $0.rstrip,
                 "normalized": $0.normalized, "special": $0.special] as [String: Any]
            },
            "normalizer": normalizerJSON(normalizer), "pre_tokenizer": preJSON(preTokenizer), "post_processor": post,
            "decoder": decoderJSON(decoder),
            "model": [
                "type": "BPE", "dropout": NSNull(), "unk_token": model.unkToken.map { $0 as Any } ?? NSNull(),
                "continuing_subword_prefix": model.continuingSubwordPrefix.map { $0 as Any } ?? NSNull(),
                "end_of_word_suffix": model.endOfWordSuffix.map { $0 as Any } ?? NSNull(), "fuse_unk": model.fuseUnknown,
                "byte_fallback": model.byteFallback, "ignore_merges": model.ignoreMerges, "vocab": model.vocab,
                "merges": model.merges.map { [$0.0, $0.1] },
            ] as [String: Any],
        ]
        return try JSONSerialization.data(withJSONObject: root, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
    }

    /// Writes `tokenizer.json` to `url`.
    public func save(to url: URL) throws { try jsonData().write(to: url, options: .atomic) }
}
