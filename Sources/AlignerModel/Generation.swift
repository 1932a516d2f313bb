import AlignerTensor
import Foundation

/// How `LlamaModel.generate` picks tokens.
public struct GenerationOptions: Sendable {
    /// Most tokens generated per prompt (the EOS token, when produced, counts).
    public var maxNewTokens: Int
    /// 0 is greedy decoding; otherwise logits are divided by it before sampling.
    public var temperature: Float
    /// Keep only the k most likely tokens (sampling only).
    public var topK: Int?
    /// Keep the smallest set of most likely tokens whose probability reaches p (sampling only).
    public var topP: Float?
    /// Seed of the sampler; one generator serves the batch, rows drawn in order.
    public var seed: UInt64
    /// Tokens that end a sequence; nil means the configuration's `eos_token_id`.
    public var eosTokenIds: [Int]?
    /// Use the key/value cache (false recomputes the whole sequence every step; for checking).
    public var useCache: Bool
    /// When n > 0, a token that would repeat an n-gram the row has already generated is never chosen (end tokens
    /// excepted), as transformers' `no_repeat_ngram_size` but over the generated tokens only: an Aligner may copy
    /// n-grams of the answer its prompt shows, and must not loop on its own. 0 = off.
    public var noRepeatNgramSize: Int

    public init(maxNewTokens: Int = 64, temperature: Float = 0, topK: Int? = nil, topP: Float? = nil, seed: UInt64 = 0,
                eosTokenIds: [Int]? = nil, useCache: Bool = true, noRepeatNgramSize: Int = 0) {
        self.noRepeatNgramSize = noRepeatNgramSize
        self.maxNewTokens = maxNewTokens
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
        self.eosTokenIds = eosTokenIds
        self.useCache = useCache
    }

    /// Throws `ModelInputError` naming the option that is out of range.
    public func validate() throws {
        guard maxNewTokens >= 0 else { throw ModelInputError(field: "max_new_tokens", message: "must be 0 or more, got \(maxNewTokens)") }
        guard temperature.isFinite, temperature >= 0 else {
            throw ModelInputError(field: "temperature", message: "must be a finite number ≥ 0 (0 = greedy), got \(temperature)")
        }
        if let topK, topK < 1 { throw ModelInputError(field: "top_k", message: "must be at least 1, got \(topK)") }
        if let topP, !(topP > 0 && topP <= 1) { throw ModelInputError(field: "top_p", message: "must be in (0, 1], got \(topP)") }
        guard noRepeatNgramSize >= 0 && noRepeatNgramSize <= 64 else {
            throw ModelInputError(field: "no_repeat_ngram_size", message: "must be within 0...64 (0 = off), got \(noRepeatNgramSize)")
        }
    }
}

/// Generated continuations, one per prompt, without the prompt; `stoppedAtEOS` tells whether each ended with an EOS
/// token (which is not included in `tokens`).
public struct GenerationResult: Sendable, Equatable {
    public var tokens: [[Int]]
    public var stoppedAtEOS: [Bool]
}

/// Keys and values of every layer for the positions processed so far: (B, capacity, KV, D) per layer.
final class KVCache {
    let keys: [Tensor]
    let values: [Tensor]
    let capacity: Int
    var length = 0

    init(config: LlamaConfig, batch: Int, capacity: Int) {
        let shape = [batch, capacity, config.numKeyValueHeads, config.headDim]
        keys = (0..<config.numHiddenLayers).map { _ in Tensor.zeros(shape) }
        values = (0..<config.numHiddenLayers).map { _ in Tensor.zeros(shape) }
        self.capacity = capacity
    }

    /// Copies new keys/values (B, Tn, KV, D) of `layer` into positions length..<length+Tn.
    func store(layer: Int, k: Tensor, v: Tensor) {
        let (b, tn, row) = (k.shape[0], k.shape[1], k.shape[2] * k.shape[3])
        precondition(length + tn <= capacity, "KV cache overflow: \(length) + \(tn) > \(capacity)")
        for bi in 0..<b {
            (keys[layer].data + (bi * capacity + length) * row).update(from: k.data + bi * tn * row, count: tn * row)
            (values[layer].data + (bi * capacity + length) * row).update(from: v.data + bi * tn * row, count: tn * row)
        }
    }
}

extension LlamaModel {
    /// Continues each prompt (lists of token ids, any lengths; batched with left padding) greedily or by sampling,
    /// until an EOS token or `maxNewTokens`. Records no gradients.
    /// `onStep`, when given, receives each step's new token per row (finished rows get -1), for streaming output.
    /// Throws `ModelInputError` for empty prompts, ids outside the vocabulary, options out of range, or a prompt that
    /// with `maxNewTokens` does not fit the context (callers shorten the prompt or the budget first).
    public func generate(prompts: [[Int]], options: GenerationOptions = GenerationOptions(),
                         onStep: (([Int]) -> Void)? = nil) throws -> GenerationResult {
        try options.validate()
        guard !prompts.isEmpty else { throw ModelInputError(field: "prompts", message: "no prompt to continue") }
        try checkGenerationMemory(prompts: prompts.count, width: prompts.map(\.count).max()!, newTokens: options.maxNewTokens)
        try validatePrompts(prompts, newTokens: options.maxNewTokens)
        return withInferenceWeights {
            var state = SamplerState(model: self, prompts: prompts, options: options)
            state.onStep = onStep
            return options.useCache ? generateCached(prompts, &state) : generateRecomputing(prompts, &state)
        }
    }

    /// Throws `ModelInputError` for an empty prompt, ids outside the vocabulary, or a prompt that with `newTokens` does
    /// not fit the context.
    func validatePrompts(_ prompts: [[Int]], newTokens: Int) throws {
        for (i, p) in prompts.enumerated() {
            guard !p.isEmpty else { throw ModelInputError(field: "prompts", message: "prompt \(i) has no tokens") }
            do { try validateInput(ids: p, batch: 1, time: p.count) } catch let e as ModelInputError {
                throw ModelInputError(field: "prompts", message: "prompt \(i): \(e.message)")
            }
            guard p.count + newTokens <= config.maxPositionEmbeddings else {
                throw ModelInputError(field: "max_new_tokens", message: "prompt \(i) of \(p.count) tokens + \(newTokens) new tokens exceeds the model's context of \(config.maxPositionEmbeddings) (max_position_embeddings)")
            }
        }
    }

    /// Throws `MemoryError` when generating for `prompts` prompts of up to `width` tokens plus `newTokens` would not fit
    /// in memory: the prompts' forward pass and every layer's key/value cache (B, width + new, KV, D).
    public func checkGenerationMemory(prompts: Int, width: Int, newTokens: Int) throws {
        try MemoryBudget.check(bytes: config.memoryEstimate(training: false, batch: prompts, time: width) + keyValueCacheBytes(sequences: prompts, positions: width + newTokens),
                               for: "generating for \(prompts) prompts of up to \(width) tokens (+ \(newTokens) new) with this model")
    }

    /// Bytes of every layer's key/value cache for `sequences` sequences of `positions` positions (float32 keys and values).
    func keyValueCacheBytes(sequences: Int, positions: Int) -> Double {
        8 * Double(config.numHiddenLayers) * Double(sequences) * Double(positions) * Double(config.numKeyValueHeads * config.headDim)
    }

    private func leftPadded(_ prompts: [[Int]]) -> (ids: [Int], mask: [Bool], positions: [Int], width: Int) {
        let width = prompts.map(\.count).max()!
        let pad = config.padTokenId ?? 0
        var ids: [Int] = [], mask: [Bool] = [], positions: [Int] = []
        for p in prompts {
            let n = width - p.count
            ids += [Int](repeating: pad, count: n) + p
            mask += [Bool](repeating: false, count: n) + [Bool](repeating: true, count: p.count)
            positions += [Int](repeating: 0, count: n) + Array(0..<p.count)
        }
        return (ids, mask, positions, width)
    }

    private func generateCached(_ prompts: [[Int]], _ state: inout SamplerState) -> GenerationResult {
        let b = prompts.count
        let options = state.options
        var (ids, mask, positions, width) = leftPadded(prompts)
        let cache = KVCache(config: config, batch: b, capacity: width + options.maxNewTokens)
        var logits = forwardCached(ids: ids, batch: b, newTokens: width, positions: positions, cache: cache, mask: mask)
        var next = prompts.map { $0.count }  // next position per row
        while !state.done {
            let tokens = state.step(lastLogits: logits)
            if state.done { break }
            // Append one column: the new token, visible, at the next position.
            var newMask: [Bool] = []
            for bi in 0..<b {
                newMask += mask[(bi * cache.length)..<((bi + 1) * cache.length)] + [true]
            }
            mask = newMask
            positions = next
            ids = tokens
            logits = forwardCached(ids: ids, batch: b, newTokens: 1, positions: positions, cache: cache, mask: mask)
            next = next.map { $0 + 1 }
        }
        return state.result
    }

    private func generateRecomputing(_ prompts: [[Int]], _ state: inout SamplerState) -> GenerationResult {
        let b = prompts.count
        var sequences = prompts
        while !state.done {
            let (ids, mask, positions, width) = leftPadded(sequences)
            let logits = unchecked(ids: ids, batch: b, time: width, attentionMask: mask, positions: positions)
            let last = logits.slice(axis: 1, (width - 1)..<width).reshape([b, config.vocabSize])
            let tokens = state.step(lastLogits: last)
            for bi in 0..<b { sequences[bi].append(tokens[bi]) }
        }
        return state.result
    }

    /// Runs `newTokens` positions per row through the model against the cache (appending their keys and values) and
    /// returns the logits of the last new position (B, vocab). `mask` covers all cached positions plus the new ones.
    func forwardCached(ids: [Int], batch b: Int, newTokens tn: Int, positions: [Int], cache: KVCache, mask: [Bool]) -> Tensor {
        let length = cache.length + tn
        let keyMask: [Bool]? = mask.allSatisfy { $0 } ? nil : mask
        var x = embedTokens(ids, batch: b, time: tn)
        for (l, w) in blocks.enumerated() {
            x = blockForward(w, x, batch: b, time: tn, positions: positions) { q, k, v in
                cache.store(layer: l, k: k, v: v)
                return Tensor.cachedAttention(q: q, kCache: cache.keys[l], vCache: cache.values[l], length: length,
                                              keyPadding: keyMask, window: w.window)
            }
        }
        cache.length = length
        let last = tn == 1 ? x : x.slice(axis: 1, (tn - 1)..<tn)
        return headLogits(finalNormed(last)).reshape([b, config.vocabSize])
    }
}

/// Token selection and stopping for a batch.
struct SamplerState {
    let options: GenerationOptions
    let eos: Set<Int>
    let vocab: Int
    let padToken: Int
    var rng: SeededGenerator
    var result: GenerationResult
    var finished: [Bool]
    var produced = 0
    var onStep: (([Int]) -> Void)?

    init(model: LlamaModel, prompts: [[Int]], options: GenerationOptions) {
        self.options = options
        eos = Set(options.eosTokenIds ?? model.config.eosTokenIds)
        vocab = model.config.vocabSize
        padToken = model.config.padTokenId ?? 0
        rng = SeededGenerator(seed: options.seed)
        result = GenerationResult(tokens: prompts.map { _ in [] }, stoppedAtEOS: prompts.map { _ in false })
        finished = prompts.map { _ in options.maxNewTokens <= 0 }
    }

    var done: Bool { finished.allSatisfy { $0 } }

    /// Picks the next token of every unfinished row from `lastLogits` (B, vocab); finished rows get the pad token.
    mutating func step(lastLogits: Tensor) -> [Int] {
        var tokens: [Int] = []
        var streamed: [Int] = []
        for bi in 0..<finished.count {
            if finished[bi] { tokens.append(padToken); streamed.append(-1); continue }
            let row = lastLogits.data + bi * vocab
            let t = Sampler.next(row, vocab, options, after: result.tokens[bi], eos: eos, &rng)
            tokens.append(t)
            streamed.append(eos.contains(t) ? -1 : t)
            if eos.contains(t) {
                finished[bi] = true
                result.stoppedAtEOS[bi] = true
            } else {
                result.tokens[bi].append(t)
            }
        }
        produced += 1
        if produced >= options.maxNewTokens { finished = finished.map { _ in true } }
        onStep?(streamed)
        return tokens
    }
}

/// Greedy choice or temperature / top-k / top-p sampling (in Hugging Face's order) from one row of logits.
public enum Sampler {
    /// The tokens that would complete an n-gram already in `tokens` (the last n−1 tokens seen before, followed by
    /// them); empty for n < 1 or too few tokens.
    public static func repeatingTokens(_ tokens: [Int], n: Int) -> Set<Int> {
        guard n >= 1 else { return [] }
        if n == 1 { return Set(tokens) }
        guard tokens.count >= n else { return [] }
        let k = n - 1
        let tail = tokens[(tokens.count - k)...]
        var banned = Set<Int>()
        for start in 0...(tokens.count - n) where tokens[start..<(start + k)].elementsEqual(tail) { banned.insert(tokens[start + k]) }
        return banned
    }

    /// The next token of a sequence that has generated `generated`: `pick`, never choosing a token that would repeat
    /// one of its n-grams (`noRepeatNgramSize`; end tokens always allowed).
    public static func next(_ logits: UnsafePointer<Float>, _ n: Int, _ options: GenerationOptions, after generated: [Int], eos: Set<Int>,
                            _ rng: inout SeededGenerator) -> Int {
        let banned = options.noRepeatNgramSize > 0 ? repeatingTokens(generated, n: options.noRepeatNgramSize).subtracting(eos) : []
        return pick(logits, n, options, banned: banned, &rng)
    }

    /// As `pick`, never choosing a token of `banned` (its logits are taken as −∞).
    public static func pick(_ logits: UnsafePointer<Float>, _ n: Int, _ options: GenerationOptions, banned: Set<Int>,
                            _ rng: inout SeededGenerator) -> Int {
        guard !banned.isEmpty else { return pick(logits, n, options, &rng) }
        var masked = Array(UnsafeBufferPointer(start: logits, count: n))  // (vocab) logits of this row
        for b in banned where b >= 0 && b < n { masked[b] = -.infinity }
        return masked.withUnsafeBufferPointer { pick($0.baseAddress!, n, options, &rng) }
    }

    public static func pick(_ logits: UnsafePointer<Float>, _ n: Int, _ options: GenerationOptions, _ rng: inout SeededGenerator) -> Int {
        if options.temperature <= 0 {
            var best = 0
            for j in 1..<n where logits[j] > logits[best] { best = j }
            return best
        }
        let t = Double(options.temperature)
        var order = Array(0..<n).sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        if let k = options.topK, k > 0, k < n { order.removeLast(n - k) }
        let top = Double(logits[order[0]])
        var probs = order.map { Foundation.exp((Double(logits[$0]) - top) / t) }
        var total = probs.reduce(0, +)
        if let p = options.topP, p < 1 {
            var cumulative = 0.0
            var keep = 0
            while keep < probs.count {
                cumulative += probs[keep] / total
                keep += 1
                if cumulative >= Double(p) { break }
            }
            order.removeLast(order.count - keep)
            probs.removeLast(probs.count - keep)
            total = probs.reduce(0, +)
        }
        var u = rng.nextDouble() * total
        for (i, pr) in probs.enumerated() {
            u -= pr
            if u < 0 { return order[i] }
        }
        return order[probs.count - 1]
    }
}
