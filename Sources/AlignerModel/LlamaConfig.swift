import AlignerFiles
import AlignerErrors
import AlignerTensor
import Foundation

/// A configuration value that cannot be used; `field` is the Hugging Face `config.json` key.
public struct ConfigError: AlignerError, Equatable {
    public var subject: FailureSubject { .field(field) }
    public var kind: FailureKind { .badData }
    public let field: String
    public let message: String
    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }
    public var description: String { "config field '\(field)': \(message)" }
}

/// A Llama-family model's shape and constants, with Hugging Face field names and meaning, read from and written to
/// `config.json`. `family` selects the per-family switches (see `ModelFamily`); the fields below are those of
/// transformers' `LlamaConfig` plus the few that other families add.
public struct LlamaConfig: Codable, Equatable, Sendable {
    public var family: ModelFamily = .llama
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int
    public var rmsNormEps: Double
    public var ropeTheta: Double
    public var maxPositionEmbeddings: Int
    public var tieWordEmbeddings: Bool
    public var bosTokenId: Int?
    /// One or more end-of-sequence ids (`eos_token_id` may be an integer or a list in Hugging Face files).
    public var eosTokenIds: [Int]
    public var padTokenId: Int?
    public var initializerRange: Double
    /// `head_dim` when the file gives one that differs from hidden_size / num_attention_heads (nil: that quotient).
    public var explicitHeadDim: Int?
    /// `hidden_act`: the MLP's gate activation.
    public var hiddenAct: HiddenActivation = .silu
    /// `attention_bias`: biases on q, k, v and o (Llama, Qwen3, Gemma). Qwen2 always has q, k, v biases.
    public var attentionBias = false
    /// `mlp_bias`: biases on gate, up and down (Llama).
    public var mlpBias = false
    /// `rope_parameters` / `rope_scaling` other than the default.
    public var ropeScaling: RopeScaling?
    /// Phi-3's `partial_rotary_factor`: the fraction of each head that RoPE rotates.
    public var partialRotaryFactor = 1.0
    /// `sliding_window` as the file gives it (Mistral: active when set; Qwen2/3: when `use_sliding_window`).
    public var slidingWindow: Int?
    /// Qwen2/3: `use_sliding_window` and `max_window_layers` (layers from this index on slide).
    public var useSlidingWindow = false
    public var maxWindowLayers: Int?
    /// Qwen2/3: `layer_types` when the file lists them ("full_attention" / "sliding_attention" per layer).
    public var layerTypes: [String]?
    /// Phi-3: `original_max_position_embeddings` (kept for export).
    public var originalMaxPositionEmbeddings: Int?

    public init(
        vocabSize: Int, hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int, numAttentionHeads: Int,
        numKeyValueHeads: Int? = nil, rmsNormEps: Double = 1e-6, ropeTheta: Double = 10_000,
        maxPositionEmbeddings: Int = 2048, tieWordEmbeddings: Bool = false, bosTokenId: Int? = 1,
        eosTokenIds: [Int] = [2], padTokenId: Int? = nil, initializerRange: Double = 0.02, headDim: Int? = nil,
        family: ModelFamily = .llama
    ) {
        explicitHeadDim = headDim
        self.family = family
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.numKeyValueHeads = numKeyValueHeads ?? numAttentionHeads
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.tieWordEmbeddings = tieWordEmbeddings
        self.bosTokenId = bosTokenId
        self.eosTokenIds = eosTokenIds
        self.padTokenId = padTokenId
        self.initializerRange = initializerRange
        if family == .gemma { hiddenAct = .geluTanh }
    }

    // MARK: Per-family switches

    /// Biases on q, k and v.
    public var qkvBias: Bool { family == .qwen2 || attentionBias }
    /// A bias on o.
    public var outputBias: Bool { family != .qwen2 && attentionBias }
    /// Qwen3's RMSNorm over each head of q and k (weights of size head_dim).
    public var qkNorm: Bool { family == .qwen3 }
    /// Gemma stores norm weights as a difference from 1.
    public var normWeightOffset: Float { family == .gemma ? 1 : 0 }
    /// Gemma multiplies the embedding by √hidden_size (rounded to Float32, as transformers' `embed_scale`).
    public var embeddingScale: Float? { family == .gemma ? Float(Double(hiddenSize).squareRoot()) : nil }
    /// Phi-3's fused `qkv_proj` and `gate_up_proj`.
    public var fusedProjections: Bool { family == .phi3 }
    /// Features of each head that RoPE rotates.
    public var rotaryDim: Int { Int(Double(headDim) * partialRotaryFactor) }

    /// The sliding window of layer `layer`, or nil for full causal attention.
    public func slidingWindow(layer: Int) -> Int? {
        guard let w = slidingWindow else { return nil }
        switch family {
        case .mistral, .phi3: return w
        case .qwen2, .qwen3:
            if let types = layerTypes, layer < types.count { return types[layer] == "sliding_attention" ? w : nil }
            return useSlidingWindow && layer >= (maxWindowLayers ?? 28) ? w : nil
        case .llama, .gemma: return nil
        }
    }

    /// The rotary table: frequencies of the configured scaling over `rotaryDim`, positions up to the context.
    public func ropeTable() -> RopeTable {
        let dim = rotaryDim
        if let ropeScaling {
            let (inv, scaling) = ropeScaling.inverseFrequencies(dim: dim, theta: ropeTheta, maxPositionEmbeddings: maxPositionEmbeddings)
            return RopeTable(headDim: headDim, inverseFrequencies: inv, positions: maxPositionEmbeddings, attentionScaling: scaling)
        }
        return RopeTable(headDim: headDim, inverseFrequencies: RopeTable.defaultInverseFrequencies(rotaryDim: dim, theta: Float(ropeTheta)),
                         positions: maxPositionEmbeddings)
    }

    /// Size of one attention head: `head_dim`, or hidden_size / num_attention_heads when the config gives none (as
    /// transformers reads it). Queries have num_attention_heads × head_dim features, keys and values
    /// num_key_value_heads × head_dim; o_proj maps num_attention_heads × head_dim back to hidden_size.
    public var headDim: Int { explicitHeadDim ?? hiddenSize / max(numAttentionHeads, 1) }

    /// Number of parameters (embedding, blocks, final norm and, when untied, the LM head).
    public var parameterCount: Int {
        let kvDim = numKeyValueHeads * headDim, qDim = numAttentionHeads * headDim
        var block = 2 * hiddenSize + hiddenSize * qDim * 2 + 2 * hiddenSize * kvDim + 3 * hiddenSize * intermediateSize
        if qkvBias { block += qDim + 2 * kvDim }
        if outputBias { block += hiddenSize }
        if mlpBias { block += 2 * intermediateSize + hiddenSize }
        if qkNorm { block += 2 * headDim }
        return vocabSize * hiddenSize * (tieWordEmbeddings ? 1 : 2) + numHiddenLayers * block + hiddenSize
    }

    /// The largest value `validate` accepts for each size.
    public static let limits = (vocabSize: 1 << 22, hiddenSize: 1 << 16, intermediateSize: 1 << 18, layers: 1 << 10,
                                heads: 1 << 10, positions: 1 << 20)

    /// Bytes of memory to hold the weights in float32 and, when `training`, their gradients, AdamW's two moments and
    /// the activations kept for the backward pass of a batch of `batch` sequences of `time` tokens (an estimate that
    /// errs high: every intermediate of a block, the attention probabilities and the logits with their gradient).
    /// Without `training`, a forward pass without gradients keeps no layer's activations for later: one layer's
    /// intermediates are live at a time, and one set of logits.
    public func memoryEstimate(training: Bool, batch: Int = 1, time: Int = 1) -> Double {
        let params = Double(parameterCount)
        let (c, f, h, v, l) = (Double(hiddenSize), Double(intermediateSize), Double(numAttentionHeads), Double(vocabSize), Double(numHiddenLayers))
        let tokens = Double(batch) * Double(time)
        let perTokenPerLayer = 10 * c + 4 * f + 2 * h * Double(time)
        let activations = training ? tokens * (l * perTokenPerLayer + 3 * v) : tokens * (perTokenPerLayer + v)
        let rope = Double(maxPositionEmbeddings) * Double(headDim)
        return 4 * (training ? 4 * params + 2 * activations : params + activations + rope)
    }

    /// Throws `ConfigError` naming the first field that makes the configuration unusable.
    public func validate() throws {
        func positive(_ v: Int, _ f: String) throws {
            if v <= 0 { throw ConfigError(field: f, message: "must be positive, got \(v)") }
        }
        try positive(vocabSize, "vocab_size")
        try positive(hiddenSize, "hidden_size")
        try positive(intermediateSize, "intermediate_size")
        try positive(numHiddenLayers, "num_hidden_layers")
        try positive(numAttentionHeads, "num_attention_heads")
        try positive(numKeyValueHeads, "num_key_value_heads")
        try positive(maxPositionEmbeddings, "max_position_embeddings")
        // Upper bounds far above any model this toolkit can train or run on a CPU, so that a mistyped or hostile
        // value is refused here and not in the allocator (and no size computation overflows).
        for (v, f, limit) in [(vocabSize, "vocab_size", Self.limits.vocabSize), (hiddenSize, "hidden_size", Self.limits.hiddenSize),
                              (intermediateSize, "intermediate_size", Self.limits.intermediateSize),
                              (numHiddenLayers, "num_hidden_layers", Self.limits.layers),
                              (numAttentionHeads, "num_attention_heads", Self.limits.heads),
                              (numKeyValueHeads, "num_key_value_heads", Self.limits.heads),
                              (maxPositionEmbeddings, "max_position_embeddings", Self.limits.positions)] where v > limit {
            throw ConfigError(field: f, message: "\(v) is larger than AlignerKit supports (at most \(limit))")
        }
        if let hd = explicitHeadDim, hd <= 0 || hd > Self.limits.hiddenSize {
            throw ConfigError(field: "head_dim", message: "must be within 1...\(Self.limits.hiddenSize), got \(hd)")
        }
        if explicitHeadDim == nil && hiddenSize % numAttentionHeads != 0 {
            throw ConfigError(field: "num_attention_heads",
                              message: "\(numAttentionHeads) heads do not divide hidden_size \(hiddenSize)")
        }
        if numAttentionHeads % numKeyValueHeads != 0 {
            throw ConfigError(field: "num_key_value_heads",
                              message: "\(numKeyValueHeads) key/value heads do not divide num_attention_heads \(numAttentionHeads)")
        }
        if headDim % 2 != 0 {
            throw ConfigError(field: explicitHeadDim == nil ? "num_attention_heads" : "head_dim",
                              message: "head size \(headDim) must be even for rotary embeddings")
        }
        if !(partialRotaryFactor > 0 && partialRotaryFactor <= 1) || rotaryDim < 2 || rotaryDim % 2 != 0 {
            throw ConfigError(field: "partial_rotary_factor",
                              message: "\(partialRotaryFactor) of head size \(headDim) gives \(rotaryDim) rotated features; it must be an even number ≥ 2")
        }
        if partialRotaryFactor != 1 && family != .phi3 {
            throw ConfigError(field: "partial_rotary_factor", message: "only Phi-3 models rotate part of a head (\(family.rawValue) does not)")
        }
        try ropeScaling?.validate()
        if let w = slidingWindow, w < 1 { throw ConfigError(field: "sliding_window", message: "must be at least 1, got \(w)") }
        if let types = layerTypes {
            guard types.count == numHiddenLayers else {
                throw ConfigError(field: "layer_types", message: "\(types.count) entries for \(numHiddenLayers) layers")
            }
            if let bad = types.first(where: { $0 != "full_attention" && $0 != "sliding_attention" }) {
                throw ConfigError(field: "layer_types", message: "'\(bad)' is neither 'full_attention' nor 'sliding_attention'")
            }
        }
        if !(rmsNormEps > 0) { throw ConfigError(field: "rms_norm_eps", message: "must be positive, got \(rmsNormEps)") }
        if !(ropeTheta > 0) { throw ConfigError(field: "rope_theta", message: "must be positive, got \(ropeTheta)") }
        if !(initializerRange >= 0) {
            throw ConfigError(field: "initializer_range", message: "must be non-negative, got \(initializerRange)")
        }
        for (field, id) in [("bos_token_id", bosTokenId), ("pad_token_id", padTokenId)] {
            if let id, id < 0 || id >= vocabSize {
                throw ConfigError(field: field, message: "\(id) is outside the vocabulary 0..<\(vocabSize)")
            }
        }
        for id in eosTokenIds where id < 0 || id >= vocabSize {
            throw ConfigError(field: "eos_token_id", message: "\(id) is outside the vocabulary 0..<\(vocabSize)")
        }
    }

    // MARK: config.json

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads", rmsNormEps = "rms_norm_eps", ropeTheta = "rope_theta"
        case maxPositionEmbeddings = "max_position_embeddings", tieWordEmbeddings = "tie_word_embeddings"
        case bosTokenId = "bos_token_id", eosTokenIds = "eos_token_id", padTokenId = "pad_token_id"
        case initializerRange = "initializer_range"
        case architectures, modelType = "model_type", hiddenAct = "hidden_act", headDim = "head_dim"
        case hiddenActivation = "hidden_activation"
        case attentionBias = "attention_bias", mlpBias = "mlp_bias", ropeScaling = "rope_scaling"
        case torchDtype = "torch_dtype", ropeParameters = "rope_parameters"
        case partialRotaryFactor = "partial_rotary_factor", slidingWindow = "sliding_window"
        case useSlidingWindow = "use_sliding_window", maxWindowLayers = "max_window_layers", layerTypes = "layer_types"
        case originalMaxPositionEmbeddings = "original_max_position_embeddings"
        case attentionDropout = "attention_dropout", residPdrop = "resid_pdrop", embdPdrop = "embd_pdrop"
        case useBidirectionalAttention = "use_bidirectional_attention"
    }

    /// `rope_parameters` (transformers 5, with `rope_theta` inside) or `rope_scaling` (4.x, `type` or `rope_type`).
    struct RopeParameters: Codable {
        var ropeType: String?
        var type: String?
        var ropeTheta: Double?
        var factor: Double?
        var lowFreqFactor: Double?
        var highFreqFactor: Double?
        var originalMaxPositionEmbeddings: Int?
        var attentionFactor: Double?
        var betaFast: Double?
        var betaSlow: Double?
        var mscale: Double?
        var mscaleAllDim: Double?
        var truncate: Bool?
        var partialRotaryFactor: Double?
        enum CodingKeys: String, CodingKey {
            case ropeType = "rope_type", type, ropeTheta = "rope_theta", factor, lowFreqFactor = "low_freq_factor"
            case highFreqFactor = "high_freq_factor", originalMaxPositionEmbeddings = "original_max_position_embeddings"
            case attentionFactor = "attention_factor", betaFast = "beta_fast", betaSlow = "beta_slow", mscale
            case mscaleAllDim = "mscale_all_dim", truncate, partialRotaryFactor = "partial_rotary_factor"
        }
        var kind: String { ropeType ?? type ?? "default" }

        init(theta: Double, scaling: RopeScaling?, partialRotaryFactor: Double?) {
            ropeType = scaling?.kind.rawValue ?? "default"
            ropeTheta = theta
            factor = scaling?.factor
            lowFreqFactor = scaling?.lowFreqFactor
            highFreqFactor = scaling?.highFreqFactor
            originalMaxPositionEmbeddings = scaling?.originalMaxPositionEmbeddings
            attentionFactor = scaling?.attentionFactor
            betaFast = scaling?.betaFast
            betaSlow = scaling?.betaSlow
            mscale = scaling?.mscale
            mscaleAllDim = scaling?.mscaleAllDim
            truncate = scaling?.truncate
            self.partialRotaryFactor = partialRotaryFactor
        }

        /// The scaling these parameters describe (nil for `default`), or a `ConfigError` naming `field`.
        func scaling(field: String, family: ModelFamily, maxPositionEmbeddings: Int) throws -> RopeScaling? {
            let name = kind
            if name == "default" { return nil }
            guard let k = RopeScaling.Kind(rawValue: name), family != .phi3 else {
                let supported = family == .phi3 ? "Phi-3 models: only default" : "default, " + RopeScaling.Kind.allCases.map(\.rawValue).joined(separator: ", ")
                throw ConfigError(field: field, message: "rope_type '\(name)' is not supported (\(supported))")
            }
            var f = factor
            if f == nil, k == .yarn, let o = originalMaxPositionEmbeddings { f = Double(maxPositionEmbeddings) / Double(o) }
            guard let f else { throw ConfigError(field: field, message: "rope_type '\(name)' needs a factor") }
            return RopeScaling(kind: k, factor: f, lowFreqFactor: lowFreqFactor, highFreqFactor: highFreqFactor,
                               originalMaxPositionEmbeddings: originalMaxPositionEmbeddings, attentionFactor: attentionFactor,
                               betaFast: betaFast, betaSlow: betaSlow, mscale: mscale, mscaleAllDim: mscaleAllDim, truncate: truncate)
        }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func required<T: Decodable>(_ type: T.Type, _ key: CodingKeys) throws -> T {
            guard c.contains(key) else { throw ConfigError(field: key.rawValue, message: "missing") }
            do { return try c.decode(T.self, forKey: key) } catch {
                throw ConfigError(field: key.rawValue, message: "expected \(T.self)")
            }
        }
        func optional<T: Decodable>(_ type: T.Type, _ key: CodingKeys) throws -> T? {
            guard c.contains(key), try !c.decodeNil(forKey: key) else { return nil }
            do { return try c.decode(T.self, forKey: key) } catch {
                throw ConfigError(field: key.rawValue, message: "expected \(T.self)")
            }
        }
        let supported = ModelFamily.allCases.map(\.rawValue).joined(separator: ", ")
        if let type = try optional(String.self, .modelType) {
            guard let f = ModelFamily(rawValue: type) else {
                throw ConfigError(field: "model_type", message: "'\(type)' is not supported (supported: \(supported))")
            }
            family = f
        } else if let archs = try optional([String].self, .architectures), let first = archs.first {
            guard let f = ModelFamily.allCases.first(where: { $0.architecture == first }) else {
                throw ConfigError(field: "architectures", message: "'\(first)' is not supported (supported: \(ModelFamily.allCases.map(\.architecture).joined(separator: ", ")))")
            }
            family = f
        }
        let family = family
        // Family defaults where a field is absent, as transformers' config classes have them.
        let defaults: (eps: Double, tie: Bool, headDim: Int?, positions: Int, act: String) = switch family {
        case .llama: (1e-6, false, nil, 2048, "silu")
        case .mistral: (1e-6, false, nil, 4096 * 32, "silu")
        case .qwen2: (1e-6, false, nil, 32768, "silu")
        case .qwen3: (1e-6, false, 128, 32768, "silu")
        case .gemma: (1e-6, true, 256, 8192, "gelu_pytorch_tanh")
        case .phi3: (1e-5, false, nil, 4096, "silu")
        }
        var actName = try optional(String.self, .hiddenAct) ?? defaults.act
        if family == .gemma {
            // Gemma's legacy "gelu" means the tanh approximation (transformers converts it); `hidden_activation`
            // (4.x files) takes precedence.
            actName = try optional(String.self, .hiddenActivation) ?? actName
            if actName == "gelu" { actName = "gelu_pytorch_tanh" }
        }
        switch actName {
        case "silu", "swish": hiddenAct = .silu
        case "gelu_pytorch_tanh", "gelu_new", "gelu_fast": hiddenAct = .geluTanh
        case "gelu": hiddenAct = .gelu
        default: throw ConfigError(field: "hidden_act", message: "'\(actName)' is not supported (silu, gelu, gelu_pytorch_tanh)")
        }
        attentionBias = try optional(Bool.self, .attentionBias) ?? false
        mlpBias = try optional(Bool.self, .mlpBias) ?? false
        if family != .llama, mlpBias { throw ConfigError(field: "mlp_bias", message: "only Llama models have MLP biases") }
        if family == .mistral || family == .phi3, attentionBias {
            throw ConfigError(field: "attention_bias", message: "\(family.architecture) has no attention biases")
        }
        for key in [CodingKeys.attentionDropout, .residPdrop, .embdPdrop] {
            if let p = try optional(Double.self, key), p != 0 {
                throw ConfigError(field: key.rawValue, message: "\(p): dropout is not implemented (AlignerKit trains without dropout); set it to 0.0")
            }
        }
        if try optional(Bool.self, .useBidirectionalAttention) == true {
            throw ConfigError(field: "use_bidirectional_attention", message: "bidirectional attention is not supported (causal language models only)")
        }
        vocabSize = try required(Int.self, .vocabSize)
        hiddenSize = try required(Int.self, .hiddenSize)
        intermediateSize = try required(Int.self, .intermediateSize)
        numHiddenLayers = try required(Int.self, .numHiddenLayers)
        numAttentionHeads = try required(Int.self, .numAttentionHeads)
        numKeyValueHeads = try optional(Int.self, .numKeyValueHeads) ?? numAttentionHeads
        rmsNormEps = try optional(Double.self, .rmsNormEps) ?? defaults.eps
        maxPositionEmbeddings = try optional(Int.self, .maxPositionEmbeddings) ?? defaults.positions
        originalMaxPositionEmbeddings = try optional(Int.self, .originalMaxPositionEmbeddings)
        // rope_scaling (4.x) takes precedence over rope_parameters, as transformers 5 reads them.
        let scalingKey: CodingKeys = c.contains(.ropeScaling) && (try? c.decodeNil(forKey: .ropeScaling)) == false ? .ropeScaling : .ropeParameters
        var rope = try optional(RopeParameters.self, scalingKey)
        if family == .phi3, var r = rope, r.kind != "default", r.originalMaxPositionEmbeddings == nil {
            r.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
            rope = r
        }
        ropeScaling = try rope?.scaling(field: scalingKey.rawValue, family: family, maxPositionEmbeddings: maxPositionEmbeddings)
        if ropeScaling?.kind == .yarn, ropeScaling?.originalMaxPositionEmbeddings == nil {
            ropeScaling?.originalMaxPositionEmbeddings = maxPositionEmbeddings
        }
        let parameters = scalingKey == .ropeScaling ? try optional(RopeParameters.self, .ropeParameters) : rope
        ropeTheta = try optional(Double.self, .ropeTheta) ?? rope?.ropeTheta ?? parameters?.ropeTheta ?? 10_000
        partialRotaryFactor = try rope?.partialRotaryFactor ?? parameters?.partialRotaryFactor ?? optional(Double.self, .partialRotaryFactor) ?? 1
        tieWordEmbeddings = try optional(Bool.self, .tieWordEmbeddings) ?? defaults.tie
        bosTokenId = try optional(Int.self, .bosTokenId)
        if let one = try? c.decodeIfPresent(Int.self, forKey: .eosTokenIds) {
            eosTokenIds = [one]
        } else {
            eosTokenIds = try optional([Int].self, .eosTokenIds) ?? []
        }
        padTokenId = try optional(Int.self, .padTokenId)
        initializerRange = try optional(Double.self, .initializerRange) ?? 0.02
        let hd = try optional(Int.self, .headDim) ?? defaults.headDim
        explicitHeadDim = hd == hiddenSize / max(numAttentionHeads, 1) ? nil : hd
        switch family {
        case .mistral:
            slidingWindow = c.contains(.slidingWindow) ? try optional(Int.self, .slidingWindow) : 4096
        case .qwen2, .qwen3:
            useSlidingWindow = try optional(Bool.self, .useSlidingWindow) ?? false
            slidingWindow = c.contains(.slidingWindow) ? try optional(Int.self, .slidingWindow) : 4096
            maxWindowLayers = try optional(Int.self, .maxWindowLayers)
            layerTypes = try optional([String].self, .layerTypes)
            if !useSlidingWindow && layerTypes?.contains("sliding_attention") != true { layerTypes = nil }
        case .phi3:
            slidingWindow = try optional(Int.self, .slidingWindow)
        case .llama, .gemma:
            break
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode([family.architecture], forKey: .architectures)
        try c.encode(family.rawValue, forKey: .modelType)
        try c.encode(hiddenAct.rawValue, forKey: .hiddenAct)
        try c.encode(headDim, forKey: .headDim)
        try c.encode("float32", forKey: .torchDtype)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(intermediateSize, forKey: .intermediateSize)
        try c.encode(numHiddenLayers, forKey: .numHiddenLayers)
        try c.encode(numAttentionHeads, forKey: .numAttentionHeads)
        try c.encode(numKeyValueHeads, forKey: .numKeyValueHeads)
        try c.encode(rmsNormEps, forKey: .rmsNormEps)
        try c.encode(ropeTheta, forKey: .ropeTheta)
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try c.encode(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        try c.encode(initializerRange, forKey: .initializerRange)
        try c.encode(0.0, forKey: .attentionDropout)
        if let bosTokenId { try c.encode(bosTokenId, forKey: .bosTokenId) } else { try c.encodeNil(forKey: .bosTokenId) }
        if eosTokenIds.count == 1 { try c.encode(eosTokenIds[0], forKey: .eosTokenIds) } else { try c.encode(eosTokenIds, forKey: .eosTokenIds) }
        if let padTokenId { try c.encode(padTokenId, forKey: .padTokenId) } else { try c.encodeNil(forKey: .padTokenId) }
        let rope = RopeParameters(theta: ropeTheta, scaling: ropeScaling, partialRotaryFactor: family == .phi3 ? partialRotaryFactor : nil)
        try c.encode(rope, forKey: .ropeParameters)
        if ropeScaling != nil { try c.encode(rope, forKey: .ropeScaling) } else { try c.encodeNil(forKey: .ropeScaling) }
        func encodeOptional<T: Encodable>(_ v: T?, _ key: CodingKeys) throws {
            if let v { try c.encode(v, forKey: key) } else { try c.encodeNil(forKey: key) }
        }
        switch family {
        case .llama:
            try c.encode(attentionBias, forKey: .attentionBias)
            try c.encode(mlpBias, forKey: .mlpBias)
        case .gemma:
            try c.encode(attentionBias, forKey: .attentionBias)
        case .mistral:
            try encodeOptional(slidingWindow, .slidingWindow)
        case .qwen2, .qwen3:
            if family == .qwen3 { try c.encode(attentionBias, forKey: .attentionBias) }
            try c.encode(useSlidingWindow, forKey: .useSlidingWindow)
            try encodeOptional(slidingWindow, .slidingWindow)
            try c.encode(maxWindowLayers ?? 28, forKey: .maxWindowLayers)
            if let layerTypes { try c.encode(layerTypes, forKey: .layerTypes) }
        case .phi3:
            try encodeOptional(slidingWindow, .slidingWindow)
            try c.encode(originalMaxPositionEmbeddings ?? maxPositionEmbeddings, forKey: .originalMaxPositionEmbeddings)
            try c.encode(0.0, forKey: .residPdrop)
            try c.encode(0.0, forKey: .embdPdrop)
            if partialRotaryFactor != 1 { try c.encode(partialRotaryFactor, forKey: .partialRotaryFactor) }
        }
    }

    /// Reads and validates a `config.json`.
    public static func load(from url: URL) throws -> LlamaConfig {
        let data: Data
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw FileError(file: url.path, message: "no such file (not a model folder?)", kind: .missing)
        }
        try FileSystemFailure.checkInputFile(url.path)
        do { data = try Data(contentsOf: url) } catch {
            throw FileSystemFailure.error(error, path: url.path, action: "read")
        }
        let config: LlamaConfig
        do { config = try JSONDecoder().decode(LlamaConfig.self, from: data) } catch let e as ConfigError {
            throw ConfigError(field: e.field, message: "\(e.message) (in \(url.path))")
        } catch {
            throw ConfigError(field: "config.json", message: "\(url.path) is not valid JSON: \(error.localizedDescription)")
        }
        do { try config.validate() } catch let e as ConfigError {
            throw ConfigError(field: e.field, message: "\(e.message) (in \(url.path))")
        }
        return config
    }

    /// The `config.json` text (sorted keys, indented).
    public func jsonData() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(self)
    }
}
