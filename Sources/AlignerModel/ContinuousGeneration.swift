import AlignerTensor
import Foundation

/// Keys and values of `slots` sequences in generation, each in its own region of every layer's cache
/// (slots, capacity, KV, D), each with its own length. Active sequences occupy slots 0..<active.
final class SlotCache {
    let keys: [Tensor]    // per layer: (slots, capacity, KV, D)
    let values: [Tensor]  // per layer: (slots, capacity, KV, D)
    let capacity: Int
    let row: Int          // KV · D floats per position
    var lengths: [Int]

    init(config: LlamaConfig, slots: Int, capacity: Int) {
        let shape = [slots, capacity, config.numKeyValueHeads, config.headDim]
        keys = (0..<config.numHiddenLayers).map { _ in Tensor.zeros(shape) }
        values = (0..<config.numHiddenLayers).map { _ in Tensor.zeros(shape) }
        self.capacity = capacity
        row = config.numKeyValueHeads * config.headDim
        lengths = [Int](repeating: 0, count: slots)
    }

    /// Copies one new position's keys and values (A, 1, KV, D) of `layer` into slots 0..<A at their lengths.
    func append(layer: Int, k: Tensor, v: Tensor) {
        for a in 0..<k.shape[0] {
            precondition(lengths[a] < capacity, "slot cache overflow")
            (keys[layer].data + (a * capacity + lengths[a]) * row).update(from: k.data + a * row, count: row)
            (values[layer].data + (a * capacity + lengths[a]) * row).update(from: v.data + a * row, count: row)
        }
    }

    /// Puts a prompt's cache (a one-row `KVCache` holding `cache.length` positions) into `slot`.
    func fill(slot: Int, from cache: KVCache) {
        let n = cache.length * row
        for l in keys.indices {
            (keys[l].data + slot * capacity * row).update(from: cache.keys[l].data, count: n)
            (values[l].data + slot * capacity * row).update(from: cache.values[l].data, count: n)
        }
        lengths[slot] = cache.length
    }

    /// Moves the sequence in slot `from` to slot `to` (keeping active sequences in the first slots).
    func move(_ from: Int, to: Int) {
        let n = lengths[from] * row
        for l in keys.indices {
            (keys[l].data + to * capacity * row).update(from: keys[l].data + from * capacity * row, count: n)
            (values[l].data + to * capacity * row).update(from: values[l].data + from * capacity * row, count: n)
        }
        lengths[to] = lengths[from]
    }
}

extension LlamaModel {
    /// The number of sequences `generateContinuously` decodes together when its caller leaves it open: 8 per thread,
    /// from 8 to 64. Measured on SmolLM2-135M with 2 threads (128 mixed-length Aligner prompts, 2026-12-07): from 8 to
    /// 16 slots generated 20 % more tokens per second (F32) and 9 % more (Q8_0); from 16 to 32, 5 % and -2 %; from 32
    /// to 64, 1 %; each doubling costs a key/value cache per slot. A decoding step of few rows reads every weight for
    /// little arithmetic; more threads finish the arithmetic sooner, so more rows fit in the time of that read.
    public static func automaticSlots(threads: Int) -> Int { min(64, max(8, 8 * threads)) }

    /// Bytes that continuous generation with `slots` slots holds: the weights and one prompt's prefill (up to `width`
    /// tokens), every slot's key/value cache (slots, width + new, KV, D per layer) and a decoding step's logits.
    public func continuousGenerationBytes(slots: Int, width: Int, newTokens: Int) -> Double {
        let prefill = config.memoryEstimate(training: false, batch: 1, time: width)
        return prefill + keyValueCacheBytes(sequences: slots, positions: width + newTokens) + 8 * Double(slots) * Double(config.vocabSize)
    }

    /// Continues every prompt with continuous batching: `slots` sequences decode together, one batched product per
    /// layer and step; a sequence that ends (an EOS token or `maxNewTokens`) frees its slot, and the next prompt is
    /// prefilled on its own and joins the others. Prompts start longest first; results come back in input order.
    /// Greedy results are those of generating each prompt alone (`generate(prompts: [p])`), token for token: a prompt is
    /// prefilled alone, and each row of a decoding step attends over its own cache length only. Sampling draws from a
    /// generator of its own per prompt (`seed` + prompt index), so results do not depend on the slots either.
    /// `finished` receives the number of prompts done so far, as they finish.
    /// `slots` nil chooses `automaticSlots` for the current thread count, halved until what generation holds fits in
    /// half of this machine's memory (`MemoryBudget.available`); a number given is halved only when it would not fit in
    /// all of it. Either way never more slots than prompts. Records no gradients; throws as `generate` does.
    public func generateContinuously(prompts: [[Int]], options: GenerationOptions = GenerationOptions(), slots: Int? = nil,
                                     finished: (Int) -> Void = { _ in }) throws -> GenerationResult {
        try options.validate()
        if let slots, slots < 1 { throw ModelInputError(field: "slots", message: "must be at least 1, got \(slots)") }
        guard !prompts.isEmpty else { throw ModelInputError(field: "prompts", message: "no prompt to continue") }
        try validatePrompts(prompts, newTokens: options.maxNewTokens)
        let count = try continuousSlots(slots, prompts: prompts, newTokens: options.maxNewTokens)
        return withInferenceWeights { continuousBatches(prompts, options: options, slots: count, finished: finished) }
    }

    /// The slots `generateContinuously` uses for `prompts` when asked for `requested` (nil: automatic), as documented
    /// there. Throws `MemoryError` when not even one fits in memory.
    public func continuousSlots(_ requested: Int?, prompts: [[Int]], newTokens: Int) throws -> Int {
        let width = prompts.map(\.count).max() ?? 0
        let share = requested == nil ? 0.5 : 1.0
        var count = max(1, min(requested ?? Self.automaticSlots(threads: ComputeContext.current.threads), prompts.count))
        while count > 1, continuousGenerationBytes(slots: count, width: width, newTokens: newTokens) > share * MemoryBudget.available {
            count /= 2
        }
        try MemoryBudget.check(bytes: continuousGenerationBytes(slots: count, width: width, newTokens: newTokens),
                               for: "generating for prompts of up to \(width) tokens (+ \(newTokens) new) with this model")
        return count
    }

    private func continuousBatches(_ prompts: [[Int]], options: GenerationOptions, slots: Int, finished: (Int) -> Void) -> GenerationResult {
        let eos = Set(options.eosTokenIds ?? config.eosTokenIds)
        var result = GenerationResult(tokens: prompts.map { _ in [] }, stoppedAtEOS: prompts.map { _ in false })
        if options.maxNewTokens <= 0 { return result }
        // Longest prompts first: the long ones overlap with many short ones instead of running alone at the end.
        var queue = prompts.indices.sorted { prompts[$0].count != prompts[$1].count ? prompts[$0].count > prompts[$1].count : $0 < $1 }[...]
        let cache = SlotCache(config: config, slots: slots, capacity: prompts.map(\.count).max()! + options.maxNewTokens)
        var owner: [Int] = []                // prompt index of each active slot (slots 0..<owner.count)
        var lastToken: [Int] = []            // the token each active slot feeds next
        var rngs = prompts.indices.map { SeededGenerator(seed: options.seed &+ UInt64($0) &* 0x9E37_79B9_7F4A_7C15) }
        var done = 0

        /// Picks prompt i's next token from its logits row; true when the sequence ends with it.
        func choose(_ i: Int, _ row: UnsafePointer<Float>) -> (token: Int, ends: Bool) {
            let t = Sampler.next(row, config.vocabSize, options, after: result.tokens[i], eos: eos, &rngs[i])
            if eos.contains(t) {
                result.stoppedAtEOS[i] = true
                return (t, true)
            }
            result.tokens[i].append(t)
            return (t, result.tokens[i].count >= options.maxNewTokens)
        }

        while !queue.isEmpty || !owner.isEmpty {
            // Fill the free slots: each new prompt is prefilled alone and picks its first token.
            while owner.count < slots, let i = queue.popFirst() {
                let p = prompts[i]
                let single = KVCache(config: config, batch: 1, capacity: p.count)
                let logits = forwardCached(ids: p, batch: 1, newTokens: p.count, positions: Array(0..<p.count), cache: single,
                                           mask: [Bool](repeating: true, count: p.count))
                let (t, ends) = choose(i, logits.data)
                if ends {
                    done += 1
                    finished(done)
                    continue
                }
                cache.fill(slot: owner.count, from: single)
                owner.append(i)
                lastToken.append(t)
            }
            guard !owner.isEmpty else { break }
            // One decoding step of every active slot.
            let active = owner.count
            let logits = forwardSlots(ids: lastToken, cache: cache, active: active)  // (active, vocab)
            var ended: [Int] = []
            for a in 0..<active {
                let (t, ends) = choose(owner[a], logits.data + a * config.vocabSize)
                lastToken[a] = t
                if ends { ended.append(a) }
            }
            // Free the slots of finished sequences, keeping the active ones first.
            for a in ended.reversed() {
                let last = owner.count - 1
                if a != last {
                    cache.move(last, to: a)
                    owner[a] = owner[last]
                    lastToken[a] = lastToken[last]
                }
                owner.removeLast()
                lastToken.removeLast()
                done += 1
                finished(done)
            }
        }
        return result
    }

    /// One new position for each of the active slots 0..<`active` (`ids`: the token each feeds), appended to the slot
    /// cache at each slot's own position; returns their logits (active, vocab).
    func forwardSlots(ids: [Int], cache: SlotCache, active a: Int) -> Tensor {
        let positions = Array(cache.lengths[0..<a])
        let lengths = positions.map { $0 + 1 }
        var x = embedTokens(ids, batch: a, time: 1)
        for (l, w) in blocks.enumerated() {
            x = blockForward(w, x, batch: a, time: 1, positions: positions) { q, k, v in
                cache.append(layer: l, k: k, v: v)
                return Tensor.cachedAttention(q: q, kCache: cache.keys[l], vCache: cache.values[l], lengths: lengths, window: w.window)
            }
        }
        for s in 0..<a { cache.lengths[s] += 1 }
        return headLogits(finalNormed(x)).reshape([a, config.vocabSize])
    }
}
