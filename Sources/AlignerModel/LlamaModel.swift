import AlignerErrors
import AlignerTensor
import Foundation

/// A weight that does not fit the model: wrong shape, missing, or unexpected.
public struct WeightError: AlignerError, Equatable {
    public var subject: FailureSubject { .field(name) }
    public var kind: FailureKind { .badData }
    public let name: String
    public let message: String
    public init(name: String, message: String) {
        self.name = name
        self.message = message
    }
    public var description: String { "weight '\(name)': \(message)" }
}

/// Input the model cannot run on: ids outside the vocabulary, a sequence longer than the context, inconsistent sizes,
/// or generation options out of range. `field` names the argument or option.
public struct ModelInputError: AlignerError, Equatable {
    public var subject: FailureSubject { .field(field) }
    public var kind: FailureKind { .usage }
    public let field: String
    public let message: String
    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }
    public var description: String { "\(field): \(message)" }
}

/// A Llama-family decoder (Hugging Face `LlamaForCausalLM` and the families of `ModelFamily`): token embedding; N
/// blocks of (RMSNorm, self-attention with RoPE and grouped key/value heads, residual, RMSNorm, gated MLP, residual);
/// final RMSNorm; LM head (tied to the embedding or not). The configuration's switches add biases, per-head q/k norms,
/// Gemma's norm offset and embedding scale, fused projections, GeGLU and sliding windows. Parameters carry Hugging
/// Face's names, in its order; linear weights are (out, in).
public final class LlamaModel {
    public let config: LlamaConfig
    /// Every parameter by its Hugging Face name.
    public private(set) var parameters: [String: Tensor]
    /// Parameter names in Hugging Face's `named_parameters()` order.
    public let parameterNames: [String]
    let rope: RopeTable
    /// The low-rank adapters' configuration while adapters are attached (see `attachAdapters`).
    public internal(set) var lora: LoRAConfig?
    /// Adapter names in order: `<module path>.lora_A.weight`, `.lora_B.weight` per adapted layer.
    public internal(set) var adapterNames: [String] = []
    /// Adapter tensors by name.
    public internal(set) var adapters: [String: Tensor] = [:]
    /// Each adapted weight's adapter.
    var adapterByWeight: [ObjectIdentifier: LowRankAdapter] = [:]
    /// When set, adapter dropout is on (training) and its masks derive from this key: the same key, the same masks.
    /// nil (the default) runs the adapters without dropout, as in evaluation.
    public var adapterDropoutSeed: UInt64?
    /// The position (row of the flattened batch × time) in the whole batch of this batch's first position, when the
    /// batch is one process's part of a larger one: its dropout masks are then that part of the whole batch's masks.
    public var adapterDropoutPositionOffset = 0
    /// Activation checkpointing per decoder block in training: each block keeps only its input and runs again in the
    /// backward pass (less memory for one more forward).
    public var activationCheckpointing = false
    /// The weights generation reads (`setInferenceWeights`).
    public internal(set) var inferenceWeightType: InferenceWeights = .f32
    /// Quantised copies of linear weights and the head, by the float32 weight's identity (`.q8_0` only).
    var quantized: [ObjectIdentifier: Q8Matrix] = [:]
    /// True while generating (`withInferenceWeights`): products read `quantized` where it has the weight.
    var readsInferenceWeights = false

    /// One block's parameters. Either q, k, v or (Phi-3) the fused qkv; either gate, up or the fused gateUp.
    struct Block {
        let inputNorm, postNorm: Tensor  // (C)
        let q, k, v: Tensor?  // (H·D, C), (KV·D, C), (KV·D, C)
        let qkv: Tensor?  // (H·D + 2·KV·D, C)
        let qBias, kBias, vBias: Tensor?  // (H·D), (KV·D), (KV·D)
        let o: Tensor  // (C, H·D)
        let oBias: Tensor?  // (C)
        let qNorm, kNorm: Tensor?  // (D)
        let gate, up: Tensor?  // (F, C)
        let gateUp: Tensor?  // (2F, C)
        let gateBias, upBias: Tensor?  // (F)
        let down: Tensor  // (C, F)
        let downBias: Tensor?  // (C)
        /// Sliding window of this layer's attention (nil: full causal).
        let window: Int?
    }
    let embed: Tensor
    let blocks: [Block]
    let finalNorm: Tensor
    let head: Tensor  // the embedding when tied

    /// A model with weights drawn deterministically from `seed`, as Hugging Face initialises Llama: every matrix
    /// normal(0, initializer_range), biases at 0, norms at 1, drawn in `parameterNames` order from one generator.
    public convenience init(config: LlamaConfig, seed: UInt64) throws {
        try config.validate()
        try MemoryBudget.check(bytes: config.memoryEstimate(training: false), for: "the model's \(config.parameterCount) parameters")
        try self.init(config: config, builder: ParameterBuilder(seed: seed, std: Float(config.initializerRange)))
    }

    /// A model holding `weights` (Hugging Face names). Every expected weight must be present with its shape and finite
    /// values; extra names are an error, except `lm_head.weight` when tied (ignored) and rotary-embedding buffers.
    public convenience init(config: LlamaConfig, weights: [String: Tensor]) throws {
        let builder = ParameterBuilder(weights: weights)
        try self.init(config: config, builder: builder)
        try builder.finish { name in (name == "lm_head.weight" && config.tieWordEmbeddings) || name.hasSuffix("rotary_emb.inv_freq") }
    }

    /// The model, its parameters declared through `builder` under Hugging Face's names and in their order.
    public init(config: LlamaConfig, builder: ParameterBuilder) throws {
        try config.validate()
        self.config = config
        let c = config.hiddenSize, qDim = config.numAttentionHeads * config.headDim
        let kvDim = config.numKeyValueHeads * config.headDim, f = config.intermediateSize
        let offset = config.normWeightOffset != 0
        let model = builder.scope("model")
        embed = try model.embedding("embed_tokens", count: config.vocabSize, width: c)  // (V, C)
        let layers = model.scope("layers")
        blocks = try (0..<config.numHiddenLayers).map { i in
            let layer = layers.scope("\(i)")
            let attention = layer.scope("self_attn"), mlp = layer.scope("mlp")
            var q, k, v: (weight: Tensor, bias: Tensor?)?
            let o: (weight: Tensor, bias: Tensor?)
            var qkv: Tensor?
            if config.fusedProjections {
                // Phi-3 registers o_proj before qkv_proj.
                o = try attention.linear("o_proj", out: c, in: qDim, bias: false)
                qkv = try attention.linear("qkv_proj", out: qDim + 2 * kvDim, in: c)
            } else {
                q = try attention.linear("q_proj", out: qDim, in: c, bias: config.qkvBias)
                k = try attention.linear("k_proj", out: kvDim, in: c, bias: config.qkvBias)
                v = try attention.linear("v_proj", out: kvDim, in: c, bias: config.qkvBias)
                o = try attention.linear("o_proj", out: c, in: qDim, bias: config.outputBias)
            }
            let qNorm = config.qkNorm ? try attention.norm("q_norm", size: config.headDim) : nil
            let kNorm = config.qkNorm ? try attention.norm("k_norm", size: config.headDim) : nil
            var gate, up: (weight: Tensor, bias: Tensor?)?
            var gateUp: Tensor?
            if config.fusedProjections {
                gateUp = try mlp.linear("gate_up_proj", out: 2 * f, in: c)
            } else {
                gate = try mlp.linear("gate_proj", out: f, in: c, bias: config.mlpBias)
                up = try mlp.linear("up_proj", out: f, in: c, bias: config.mlpBias)
            }
            let down = try mlp.linear("down_proj", out: c, in: f, bias: config.mlpBias)
            return Block(inputNorm: try layer.norm("input_layernorm", size: c, offset: offset),
                         postNorm: try layer.norm("post_attention_layernorm", size: c, offset: offset),
                         q: q?.weight, k: k?.weight, v: v?.weight, qkv: qkv,
                         qBias: q?.bias, kBias: k?.bias, vBias: v?.bias, o: o.weight, oBias: o.bias, qNorm: qNorm, kNorm: kNorm,
                         gate: gate?.weight, up: up?.weight, gateUp: gateUp, gateBias: gate?.bias, upBias: up?.bias,
                         down: down.weight, downBias: down.bias, window: config.slidingWindow(layer: i))
        }
        finalNorm = try model.norm("norm", size: c, offset: offset)
        head = config.tieWordEmbeddings ? embed : try builder.root.linear("lm_head", out: config.vocabSize, in: c)  // (V, C)
        parameters = builder.tensors
        parameterNames = builder.names
        rope = config.ropeTable()
    }

    /// Parameters in `parameterNames` order.
    public var orderedParameters: [Tensor] { parameterNames.map { parameters[$0]! } }

    /// Sets every parameter's gradient to nil.
    public func releaseGradients() {
        for p in parameters.values { p.releaseGrad() }
        for p in adapters.values { p.releaseGrad() }
    }

    // MARK: Forward

    /// Logits (B, T, vocab) for `ids` (B·T, row-major). `attentionMask` (B·T, true = real token) keeps padded keys
    /// out of attention; `positions` (B·T) default to 0…T−1 for every row.
    /// Throws `ModelInputError` for ids outside the vocabulary, a sequence longer than the context or mismatched sizes.
    public func forward(ids: [Int], batch: Int, time: Int, attentionMask: [Bool]? = nil, positions: [Int]? = nil) throws -> Tensor {
        try validateInput(ids: ids, batch: batch, time: time, attentionMask: attentionMask)
        if let positions {
            guard positions.count == time else { throw ModelInputError(field: "positions", message: "\(positions.count) positions for time \(time)") }
            if let bad = positions.first(where: { $0 < 0 || $0 >= config.maxPositionEmbeddings }) {
                throw ModelInputError(field: "positions", message: "position \(bad) is outside 0..<\(config.maxPositionEmbeddings) (max_position_embeddings)")
            }
        }
        return unchecked(ids: ids, batch: batch, time: time, attentionMask: attentionMask, positions: positions)
    }

    /// Checks a batch of token ids (B·T, row-major) against the vocabulary and the context length.
    public func validateInput(ids: [Int], batch: Int, time: Int, attentionMask: [Bool]? = nil) throws {
        guard batch >= 1, time >= 1 else { throw ModelInputError(field: "ids", message: "batch \(batch) × time \(time) is empty") }
        let (n, overflow) = batch.multipliedReportingOverflow(by: time)
        guard !overflow, ids.count == n else { throw ModelInputError(field: "ids", message: "\(ids.count) ids for batch \(batch) × time \(time)") }
        guard time <= config.maxPositionEmbeddings else {
            throw ModelInputError(field: "ids", message: "a sequence of \(time) tokens exceeds the model's context of \(config.maxPositionEmbeddings) (max_position_embeddings)")
        }
        if let i = ids.firstIndex(where: { $0 < 0 || $0 >= config.vocabSize }) {
            throw ModelInputError(field: "ids", message: "token id \(ids[i]) at position \(i) is outside the vocabulary 0..<\(config.vocabSize) (vocab_size)")
        }
        if let attentionMask, attentionMask.count != ids.count {
            throw ModelInputError(field: "attention_mask", message: "\(attentionMask.count) entries for \(ids.count) ids")
        }
    }

    /// The final normalised hidden states (B, T, C) for `ids` (B·T): what the language-model head reads, and what other
    /// heads (a reward model's score) read instead. Checked like `forward`.
    public func hiddenStates(ids: [Int], batch: Int, time: Int, attentionMask: [Bool]? = nil) throws -> Tensor {
        try validateInput(ids: ids, batch: batch, time: time, attentionMask: attentionMask)
        return uncheckedHidden(ids: ids, batch: batch, time: time, attentionMask: attentionMask, positions: nil)
    }

    /// `forward` without input checks, for callers that validated already.
    func unchecked(ids: [Int], batch: Int, time: Int, attentionMask: [Bool]?, positions: [Int]?) -> Tensor {
        headLogits(uncheckedHidden(ids: ids, batch: batch, time: time, attentionMask: attentionMask, positions: positions))  // (B, T, V)
    }

    /// `hiddenStates` without input checks: (B, T, C).
    func uncheckedHidden(ids: [Int], batch: Int, time: Int, attentionMask: [Bool]?, positions: [Int]?) -> Tensor {
        let pos = positions ?? Array(0..<time)
        let mask = attentionMask.flatMap { $0.allSatisfy { $0 } ? nil : $0 }
        // As Hugging Face's nn.Embedding(padding_idx=pad_token_id): the pad row receives no gradient.
        var x = embedTokens(ids, batch: batch, time: time, paddingIndex: config.padTokenId)  // (B, T, C)
        for block in blocks {
            if activationCheckpointing {
                // Keeps only each block's input; the backward pass runs the block again.
                x = Tensor.checkpoint(x, parameters: tensors(of: block)) { [unowned self] h in
                    self.blockForward(block, h, batch: batch, time: time, positions: pos, mask: mask)
                }
            } else {
                x = blockForward(block, x, batch: batch, time: time, positions: pos, mask: mask)
            }
        }
        return finalNormed(x)  // (B, T, C)
    }

    /// Every tensor a block's forward reads: its weights, biases and norms, and their adapters.
    func tensors(of w: Block) -> [Tensor] {
        let own: [Tensor] = [w.inputNorm, w.postNorm, w.q, w.k, w.v, w.qkv, w.qBias, w.kBias, w.vBias, w.o, w.oBias, w.qNorm, w.kNorm,
                             w.gate, w.up, w.gateUp, w.gateBias, w.upBias, w.down, w.downBias].compactMap { $0 }
        return own + own.compactMap { adapterByWeight[ObjectIdentifier($0)] }.flatMap { [$0.a, $0.b] }
    }

    /// The token embeddings (B, T, C), times √C for Gemma.
    func embedTokens(_ ids: [Int], batch: Int, time: Int, paddingIndex: Int? = nil) -> Tensor {
        let x = Tensor.embedding(embed, ids: ids, shape: [batch, time], paddingIndex: paddingIndex)
        return config.embeddingScale.map { x * $0 } ?? x
    }

    /// The final norm of the hidden states.
    func finalNormed(_ x: Tensor) -> Tensor {
        Tensor.rmsNorm(x, weight: finalNorm, eps: Float(config.rmsNormEps), weightOffset: config.normWeightOffset)
    }

    func blockForward(_ w: Block, _ x: Tensor, batch b: Int, time t: Int, positions: [Int], mask: [Bool]?) -> Tensor {
        blockForward(w, x, batch: b, time: t, positions: positions) { q, k, v in
            Tensor.attention(q: q, k: k, v: v, causal: true, keyPadding: mask, window: w.window, layout: .bthd)
        }
    }

    /// x (…, in) times a linear layer's weight (out, in), plus its bias (out) when it has one, plus its low-rank
    /// adapter's output when it has one.
    @inline(__always) func linear(_ x: Tensor, _ weight: Tensor, _ bias: Tensor?) -> Tensor {
        if readsInferenceWeights, let y = inferenceProduct(x, weight) {
            // Generation: the adapter's low-rank term, when there is one, added in float32.
            var out = y
            if let ad = adapterByWeight[ObjectIdentifier(weight)], let lora {
                out = out + x.matmul(ad.a, transposeOther: true).matmul(ad.b, transposeOther: true) * Float(lora.scaling)
            }
            return bias.map { out + $0 } ?? out
        }
        if !adapterByWeight.isEmpty, let y = adapted(x, weight: weight, bias: bias) { return y }
        let y = x.matmul(weight, transposeOther: true)
        return bias.map { y + $0 } ?? y
    }

    /// One decoder block on x (B, T, C). `attend` gets q (B, T, H, D) and k, v (B, T, KV, D) after RoPE and returns
    /// the attention output (B, T, H, D): full causal attention in training, attention against a cache in generation.
    func blockForward(_ w: Block, _ x: Tensor, batch b: Int, time t: Int, positions: [Int],
                      attend: (Tensor, Tensor, Tensor) -> Tensor) -> Tensor {
        let h = config.numAttentionHeads, kv = config.numKeyValueHeads, d = config.headDim
        let eps = Float(config.rmsNormEps), offset = config.normWeightOffset
        let n1 = Tensor.rmsNorm(x, weight: w.inputNorm, eps: eps, weightOffset: offset)
        var q, k, v: Tensor  // (B, T, H·D), (B, T, KV·D), (B, T, KV·D)
        if let qkv = w.qkv {
            let all = linear(n1, qkv, nil)  // (B, T, H·D + 2·KV·D)
            q = all.slice(axis: 2, 0..<(h * d))
            k = all.slice(axis: 2, (h * d)..<((h + kv) * d))
            v = all.slice(axis: 2, ((h + kv) * d)..<((h + 2 * kv) * d))
        } else {
            q = linear(n1, w.q!, w.qBias)
            k = linear(n1, w.k!, w.kBias)
            v = linear(n1, w.v!, w.vBias)
        }
        q = q.reshape([b, t, h, d])
        k = k.reshape([b, t, kv, d])
        v = v.reshape([b, t, kv, d])
        if let qn = w.qNorm, let kn = w.kNorm {
            q = Tensor.rmsNorm(q, weight: qn, eps: eps)
            k = Tensor.rmsNorm(k, weight: kn, eps: eps)
        }
        let a = attend(q.rope(positions: positions, table: rope, layout: .bthd), k.rope(positions: positions, table: rope, layout: .bthd), v)  // (B, T, H, D)
        let x1 = x + linear(a.reshape([b, t, h * d]), w.o, w.oBias)
        let n2 = Tensor.rmsNorm(x1, weight: w.postNorm, eps: eps, weightOffset: offset)
        let gate, up: Tensor  // (B, T, F)
        if let gateUp = w.gateUp {
            let both = linear(n2, gateUp, nil)  // (B, T, 2F)
            let f = config.intermediateSize
            (gate, up) = (both.slice(axis: 2, 0..<f), both.slice(axis: 2, f..<(2 * f)))
        } else {
            (gate, up) = (linear(n2, w.gate!, w.gateBias), linear(n2, w.up!, w.upBias))
        }
        let m: Tensor  // (B, T, F)
        switch config.hiddenAct {
        case .silu: m = Tensor.swiglu(gate: gate, up: up)
        case .geluTanh: m = gate.gelu(approximate: .tanh) * up
        case .gelu: m = gate.gelu() * up
        }
        return x1 + linear(m, w.down, w.downBias)
    }

    /// The causal-LM loss as Hugging Face computes it: the logits at position t are scored against label t+1, labels
    /// of -100 are ignored, the mean is over counted tokens (or the sum with `.sum`, for token-weighted gradient
    /// accumulation). Only the positions the loss counts go through the language-model head and the softmax (an
    /// Aligner's target is the correction, about a fifth of its tokens): the same loss and gradients as scoring every
    /// position, without the vocabulary-wide products of the rest. `forward` gives the logits of every position.
    public func loss(
        ids: [Int], labels: [Int], batch: Int, time: Int, attentionMask: [Bool]? = nil, reduction: LossReduction = .mean
    ) throws -> Tensor {
        guard labels.count == ids.count else { throw ModelInputError(field: "labels", message: "\(labels.count) labels for \(ids.count) ids") }
        if let i = labels.firstIndex(where: { $0 != -100 && ($0 < 0 || $0 >= config.vocabSize) }) {
            throw ModelInputError(field: "labels", message: "label \(labels[i]) at position \(i) is outside the vocabulary 0..<\(config.vocabSize) (and not -100)")
        }
        try validateInput(ids: ids, batch: batch, time: time, attentionMask: attentionMask)
        let targets = Self.shiftedTargets(labels, batch: batch, time: time)  // (B·T)
        let counted = targets.indices.filter { targets[$0] != -100 }
        let hidden = uncheckedHidden(ids: ids, batch: batch, time: time, attentionMask: attentionMask, positions: nil)  // (B, T, C)
        guard !counted.isEmpty else { return Tensor.crossEntropy(headLogits(hidden), targets: targets, reduction: reduction) }
        let rows = hidden.reshape([batch * time, config.hiddenSize]).gatherRows(counted)  // (N, C)
        return Tensor.crossEntropy(headLogits(rows), targets: counted.map { targets[$0] }, reduction: reduction)  // logits (N, V)
    }

    /// Row t of each sequence is scored against label t+1; the last row against nothing (-100).
    public static func shiftedTargets(_ labels: [Int], batch: Int, time: Int) -> [Int] {
        var targets = [Int](repeating: -100, count: batch * time)
        for b in 0..<batch { for t in 0..<(time - 1) { targets[b * time + t] = labels[b * time + t + 1] } }
        return targets
    }

    /// Number of tokens `loss` counts for these labels (label positions 1…T−1 that are not -100).
    public static func countedTokens(_ labels: [Int], batch: Int, time: Int) -> Int {
        shiftedTargets(labels, batch: batch, time: time).reduce(0) { $0 + ($1 == -100 ? 0 : 1) }
    }

    /// Forward-pass floating-point operations per token for a sequence of `time` tokens (matrix products and the
    /// attention score/value products over the full T×T square), as commonly counted; training is about 3×.
    public func forwardFlopsPerToken(time: Int) -> Double {
        let c = Double(config.hiddenSize), kvDim = Double(config.numKeyValueHeads * config.headDim)
        let qDim = Double(config.numAttentionHeads * config.headDim)  // (biases and norms are not counted)
        let f = Double(config.intermediateSize), v = Double(config.vocabSize), l = Double(config.numHiddenLayers)
        let perLayer = 2 * (c * qDim * 2 + 2 * c * kvDim + 3 * c * f) + 2 * 2 * Double(time) * qDim
        return l * perLayer + 2 * c * v
    }
}
