/// A byte-pair-encoding model: vocabulary, merge ranks, and the merge loop.
public struct BPEModel: Sendable {
    /// token string → id.
    public let vocab: [String: Int]
    /// id → token string (for ids in the vocabulary).
    public let tokens: [Int: String]
    /// Merges in rank order.
    public let merges: [(String, String)]
    /// (left id, right id) → (rank, merged id), packed as UInt64 keys.
    let mergeTable: [UInt64: (rank: Int32, id: Int32)]
    /// Token for characters not in the vocabulary (after byte fallback, if any).
    public let unkToken: String?
    /// Replace unknown characters by their UTF-8 bytes as `<0xNN>` tokens (SentencePiece style).
    public let byteFallback: Bool
    /// Merge consecutive unknown tokens into one.
    public let fuseUnknown: Bool
    /// `<0xNN>` token ids when byte fallback is on (-1 where the vocabulary lacks one).
    let byteTokens: [Int]?
    /// Prepended to every symbol but a word's first (WordPiece-style BPE, `continuing_subword_prefix`).
    public let continuingSubwordPrefix: String?
    /// Appended to a word's last symbol (`end_of_word_suffix`, e.g. "</w>").
    public let endOfWordSuffix: String?
    /// A word that is itself in the vocabulary becomes that one token without merging (`ignore_merges`, Llama 3).
    public let ignoreMerges: Bool

    @inline(__always) static func key(_ a: Int, _ b: Int) -> UInt64 { UInt64(UInt32(a)) << 32 | UInt64(UInt32(b)) }

    public init(vocab: [String: Int], merges: [(String, String)], unkToken: String? = nil, byteFallback: Bool = false,
                fuseUnknown: Bool = false, continuingSubwordPrefix: String? = nil, endOfWordSuffix: String? = nil,
                ignoreMerges: Bool = false) throws {
        self.vocab = vocab
        self.continuingSubwordPrefix = continuingSubwordPrefix.flatMap { $0.isEmpty ? nil : $0 }
        self.endOfWordSuffix = endOfWordSuffix.flatMap { $0.isEmpty ? nil : $0 }
        self.ignoreMerges = ignoreMerges
        let prefixLength = self.continuingSubwordPrefix?.utf8.count ?? 0
        var tokens: [Int: String] = [:]
        for (t, id) in vocab { tokens[id] = t }
        self.tokens = tokens
        self.merges = merges
        var table: [UInt64: (rank: Int32, id: Int32)] = [:]
        table.reserveCapacity(merges.count)
        for (rank, (a, b)) in merges.enumerated() {
            guard let ia = vocab[a], let ib = vocab[b] else {
                throw TokenizerError.invalid("merge \(rank) '\(a) \(b)' uses a token missing from the vocabulary")
            }
            // With a continuing-subword prefix, the right symbol carries it and the merged token does not repeat it.
            let right = prefixLength > 0 && b.utf8.count >= prefixLength ? String(decoding: b.utf8.dropFirst(prefixLength), as: UTF8.self) : b
            guard let merged = vocab[a + right] else {
                throw TokenizerError.invalid("merge \(rank) '\(a) \(b)' produces '\(a + right)', missing from the vocabulary")
            }
            let k = Self.key(ia, ib)
            if table[k] == nil { table[k] = (Int32(rank), Int32(merged)) }
        }
        mergeTable = table
        self.unkToken = unkToken
        self.byteFallback = byteFallback
        self.fuseUnknown = fuseUnknown
        if byteFallback {
            byteTokens = (0..<256).map { b in vocab["<0x" + String(b, radix: 16, uppercase: true).leftPadded(to: 2) + ">"] ?? -1 }
        } else {
            byteTokens = nil
        }
        if let unkToken, vocab[unkToken] == nil {
            throw TokenizerError.invalid("unk_token '\(unkToken)' is not in the vocabulary")
        }
    }

    /// Token ids of one pre-tokenized word: characters → ids (unknown ones by byte fallback or `unk`), then merges by
    /// rank, the lowest first and, among equal ranks, the leftmost.
    public func encodeWord(_ word: Substring, into out: inout [Int]) {
        if ignoreMerges, let id = vocab[String(word)] {
            out.append(id)
            return
        }
        var symbols: [Int32] = []
        symbols.reserveCapacity(word.unicodeScalars.count)
        var lastWasUnknown = false
        let affixed = continuingSubwordPrefix != nil || endOfWordSuffix != nil
        let scalars = word.unicodeScalars
        var index = scalars.startIndex
        while index < scalars.endIndex {
            let scalar = scalars[index]
            let isFirst = index == scalars.startIndex
            index = scalars.index(after: index)
            var s = String(scalar)
            if affixed {
                if !isFirst, let p = continuingSubwordPrefix { s = p + s }
                if index == scalars.endIndex, let e = endOfWordSuffix { s += e }
            }
            if let id = vocab[s] {
                symbols.append(Int32(id))
                lastWasUnknown = false
            } else if let byteTokens, s.utf8.allSatisfy({ byteTokens[Int($0)] >= 0 }) {
                for b in s.utf8 { symbols.append(Int32(byteTokens[Int(b)])) }
                lastWasUnknown = false
            } else if let unkToken, let id = vocab[unkToken] {
                if !(fuseUnknown && lastWasUnknown) { symbols.append(Int32(id)) }
                lastWasUnknown = true
            }
        }
        merge(&symbols)
        for s in symbols { out.append(Int(s)) }
    }

    /// Applies merges in place. Short words scan for the best pair; long ones use a heap over a linked list.
    func merge(_ symbols: inout [Int32]) {
        if symbols.count < 2 { return }
        if symbols.count <= 48 {
            while symbols.count > 1 {
                var bestRank = Int32.max, bestAt = -1, bestId: Int32 = 0
                for i in 0..<(symbols.count - 1) {
                    if let m = mergeTable[Self.key(Int(symbols[i]), Int(symbols[i + 1]))], m.rank < bestRank {
                        bestRank = m.rank; bestAt = i; bestId = m.id
                    }
                }
                if bestAt < 0 { break }
                symbols[bestAt] = bestId
                symbols.remove(at: bestAt + 1)
            }
            return
        }
        mergeLong(&symbols)
    }

    /// O(n log n) merging for long words (no pre-tokenizer splits SentencePiece-style text into words).
    private func mergeLong(_ symbols: inout [Int32]) {
        let n = symbols.count
        var prev = (0..<n).map { $0 - 1 }, next = (0..<n).map { $0 + 1 }
        var alive = [Bool](repeating: true, count: n)
        var ids = symbols
        // Heap of (rank, position, left id, right id); stale entries are skipped when popped.
        var heap = Heap<(Int32, Int, Int32, Int32)> { ($0.0, $0.1) < ($1.0, $1.1) }
        for i in 0..<(n - 1) {
            if let m = mergeTable[Self.key(Int(ids[i]), Int(ids[i + 1]))] { heap.push((m.rank, i, ids[i], ids[i + 1])) }
        }
        while let (rank, i, a, b) = heap.pop() {
            guard alive[i], next[i] < n, ids[i] == a, ids[next[i]] == b else { continue }
            guard let m = mergeTable[Self.key(Int(a), Int(b))], m.rank == rank else { continue }
            let j = next[i]
            ids[i] = m.id
            alive[j] = false
            next[i] = next[j]
            if next[j] < n { prev[next[j]] = i }
            if prev[i] >= 0, let m2 = mergeTable[Self.key(Int(ids[prev[i]]), Int(ids[i]))] {
                heap.push((m2.rank, prev[i], ids[prev[i]], ids[i]))
            }
            if next[i] < n, let m2 = mergeTable[Self.key(Int(ids[i]), Int(ids[next[i]]))] {
                heap.push((m2.rank, i, ids[i], ids[next[i]]))
            }
        }
        var out: [Int32] = []
        var i = 0
        while i < n { out.append(ids[i]); i = next[i] }
        symbols = out
    }
}

/// A binary min-heap ordered by `less`.
struct Heap<T> {
    var items: [T] = []
    let less: (T, T) -> Bool
    init(_ less: @escaping (T, T) -> Bool) { self.less = less }

    mutating func push(_ x: T) {
        items.append(x)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if !less(items[i], items[p]) { break }
            items.swapAt(i, p)
            i = p
        }
    }

    mutating func pop() -> T? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count && less(items[l], items[m]) { m = l }
            if r < items.count && less(items[r], items[m]) { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
        return top
    }
}

extension String {
    func leftPadded(to n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
