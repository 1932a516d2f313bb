import Foundation

/// Trains a byte-level BPE tokenizer (GPT-2 style) on a corpus. Deterministic: the same texts and settings give the
/// same `tokenizer.json` on every run. Special tokens take ids 0…k−1, the 256 byte characters come next (in byte
/// order), then one token per merge. Each step merges the most frequent adjacent pair; ties go to the pair whose
/// (left, right) strings sort first.
public struct BPETrainer: Sendable {
    public var vocabSize: Int
    public var specialTokens: [String]
    /// Pairs seen fewer times than this are never merged (training may stop below `vocabSize`).
    public var minFrequency: Int

    public init(vocabSize: Int, specialTokens: [String] = ["<pad>", "<s>", "</s>"], minFrequency: Int = 2) {
        self.vocabSize = vocabSize
        self.specialTokens = specialTokens
        self.minFrequency = minFrequency
    }

    /// A setting of the trainer, as the recipe (`tokenizer.<rawValue>`) and the command line (`--vocab-size`, …) name it.
    public enum Setting: String, Sendable {
        case vocabSize = "vocab_size", specialTokens = "special_tokens", minFrequency = "min_frequency"
        /// The command-line flag of the setting.
        public var flag: String { "--" + rawValue.replacingOccurrences(of: "_", with: "-") }
    }

    /// The largest vocabulary the trainer builds.
    public static let maxVocabSize = 1 << 22

    /// The first problem with these settings, or nil: the one set of bounds the recipe keys and the flags share.
    public static func problem(vocabSize: Int, specialTokens: [String], minFrequency: Int) -> (setting: Setting, message: String)? {
        var seen = Set<String>()
        for token in specialTokens {
            if token.isEmpty { return (.specialTokens, "holds an empty token") }
            if !seen.insert(token).inserted { return (.specialTokens, "lists \"\(token)\" twice") }
        }
        let base = specialTokens.count + 256
        if vocabSize < base {
            return (.vocabSize, "must hold the \(specialTokens.count) special tokens and the 256 bytes (at least \(base)), got \(vocabSize)")
        }
        if vocabSize > maxVocabSize { return (.vocabSize, "must be at most \(maxVocabSize), got \(vocabSize)") }
        if minFrequency < 1 { return (.minFrequency, "must be at least 1, got \(minFrequency)") }
        return nil
    }

    public func train<S: Sequence>(_ texts: S) throws -> Tokenizer where S.Element == String {
        if let (setting, message) = Self.problem(vocabSize: vocabSize, specialTokens: specialTokens, minFrequency: minFrequency) {
            throw TokenizerError.invalid("\(setting.rawValue) \(message)")
        }
        // Word frequencies after the GPT-2 split, as byte arrays.
        var counts: [[UInt8]: Int] = [:]
        for text in texts {
            for piece in GPT2Split.split(text) { counts[Array(piece.utf8), default: 0] += 1 }
        }
        var strings: [String] = specialTokens + ByteLevel.byteToChar.map { String($0) }
        // Words in a fixed order (by bytes) so that every later step is deterministic.
        let sortedWords = counts.sorted { $0.key.lexicographicallyPrecedes($1.key) }
        var words: [[Int32]] = sortedWords.map { $0.key.map { Int32(specialTokens.count + Int($0)) } }
        let freq: [Int] = sortedWords.map(\.value)

        @inline(__always) func key(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(a)) << 32 | UInt64(UInt32(b)) }
        var pairCount: [UInt64: Int] = [:]
        var pairWords: [UInt64: Set<Int32>] = [:]
        for (w, word) in words.enumerated() where word.count > 1 {
            for i in 0..<(word.count - 1) {
                let k = key(word[i], word[i + 1])
                pairCount[k, default: 0] += freq[w]
                pairWords[k, default: []].insert(Int32(w))
            }
        }
        var merges: [(String, String)] = []
        while strings.count < vocabSize {
            var best: UInt64 = 0, bestCount = 0
            for (k, c) in pairCount where c > bestCount || (c == bestCount && c > 0 && precedes(k, best, strings)) {
                best = k
                bestCount = c
            }
            if bestCount < max(1, minFrequency) { break }
            let a = Int32(truncatingIfNeeded: best >> 32), b = Int32(truncatingIfNeeded: best & 0xFFFF_FFFF)
            let newId = Int32(strings.count)
            strings.append(strings[Int(a)] + strings[Int(b)])
            merges.append((strings[Int(a)], strings[Int(b)]))
            for w in (pairWords[best] ?? []).sorted() {
                let word = words[Int(w)]
                let f = freq[Int(w)]
                // Remove the word's pairs, merge, add its new pairs.
                for i in 0..<(word.count - 1) {
                    let k = key(word[i], word[i + 1])
                    pairCount[k, default: 0] -= f
                    if pairCount[k]! <= 0 { pairCount[k] = nil }
                }
                var merged: [Int32] = []
                merged.reserveCapacity(word.count)
                var i = 0
                while i < word.count {
                    if i + 1 < word.count && word[i] == a && word[i + 1] == b { merged.append(newId); i += 2 } else { merged.append(word[i]); i += 1 }
                }
                if merged.count > 1 {
                    for i in 0..<(merged.count - 1) {
                        let k = key(merged[i], merged[i + 1])
                        pairCount[k, default: 0] += f
                        pairWords[k, default: []].insert(w)
                    }
                }
                words[Int(w)] = merged
            }
            pairWords[best] = nil
            pairCount[best] = nil
        }
        var vocab: [String: Int] = [:]
        for (i, s) in strings.enumerated() { vocab[s] = i }
        let model = try BPEModel(vocab: vocab, merges: merges)
        let added = specialTokens.enumerated().map { AddedToken(id: $0.offset, content: $0.element, special: true) }
        return Tokenizer(model: model, normalizer: nil, preTokenizer: .byteLevel(addPrefixSpace: false, useRegex: true),
                         decoder: .byteLevel, addedTokens: added)
    }

    private func precedes(_ x: UInt64, _ y: UInt64, _ strings: [String]) -> Bool {
        let (xa, xb) = (strings[Int(x >> 32)], strings[Int(x & 0xFFFF_FFFF)])
        let (ya, yb) = (strings[Int(y >> 32)], strings[Int(y & 0xFFFF_FFFF)])
        return xa != ya ? xa.unicodeScalars.lexicographicallyPrecedes(ya.unicodeScalars) : xb.unicodeScalars.lexicographicallyPrecedes(yb.unicodeScalars)
    }
}

/// Which tokens play the BOS, EOS, PAD and UNK roles.
public struct SpecialTokens: Sendable, Equatable {
    public var bos: String?
    public var eos: String?
    public var pad: String?
    public var unk: String?

    public init(bos: String? = nil, eos: String? = nil, pad: String? = nil, unk: String? = nil) {
        self.bos = bos
        self.eos = eos
        self.pad = pad
        self.unk = unk
    }

    /// Roles guessed from common names among the tokenizer's added tokens.
    public static func guess(for tokenizer: Tokenizer) -> SpecialTokens {
        let names = Set(tokenizer.addedTokens.map(\.content))
        func first(_ candidates: [String]) -> String? { candidates.first { names.contains($0) } }
        return SpecialTokens(
            bos: first(["<s>", "<|begin_of_text|>", "<|bos|>", "<bos>", "<|startoftext|>"]),
            eos: first(["</s>", "<|eos|>", "<eos>", "<|end_of_text|>", "<|endoftext|>", "<|im_end|>"]),
            pad: first(["<pad>", "<|pad|>", "[PAD]", "<|finetune_right_pad_id|>"]),
            unk: first(["<unk>", "[UNK]"]))
    }

    /// Roles from a Hugging Face `tokenizer_config.json` (`bos_token` etc., strings or {"content": …}), falling back
    /// to `guess` for roles it does not name.
    public static func load(tokenizerConfig url: URL, for tokenizer: Tokenizer) throws -> SpecialTokens {
        var roles = guess(for: tokenizer)
        guard let root = (try? JSONSerialization.jsonObject(with: Data(contentsOf: url))) as? [String: Any] else {
            throw TokenizerError.file(url.path, "not a JSON object")
        }
        func value(_ key: String) -> String?? {
            guard let v = root[key] else { return .none }
            if v is NSNull { return .some(nil) }
            if let s = v as? String { return .some(s) }
            if let d = v as? [String: Any], let s = d["content"] as? String { return .some(s) }
            return .none
        }
        if let v = value("bos_token") { roles.bos = v }
        if let v = value("eos_token") { roles.eos = v }
        if let v = value("pad_token") { roles.pad = v }
        if let v = value("unk_token") { roles.unk = v }
        return roles
    }
}
