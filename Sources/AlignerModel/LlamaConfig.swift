import Foundation

/// A configuration value that cannot be used; `field` is the Hugging Face `config.json` key.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let field: String
    public let message: String
    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }
    public var description: String { "config field '\(field)': \(message)" }
}

/// A Llama model's shape and constants, with Hugging Face `LlamaConfig` field names and meaning, read from and written
/// to `config.json`.
public struct LlamaConfig: Codable, Equatable, Sendable {
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

    public init(
        vocabSize: Int, hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int, numAttentionHeads: Int,
        numKeyValueHeads: Int? = nil, rmsNormEps: Double = 1e-6, ropeTheta: Double = 10_000,
        maxPositionEmbeddings: Int = 2048, tieWordEmbeddings: Bool = false, bosTokenId: Int? = 1,
        eosTokenIds: [Int] = [2], padTokenId: Int? = nil, initializerRange: Double = 0.02, headDim: Int? = nil
    ) {
        explicitHeadDim = headDim
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
    }

    /// Size of one attention head.
    /// Size of one attention head: `head_dim`, or hidden_size / num_attention_heads when the config gives none (as
    /// transformers reads it). Queries have num_attention_heads × head_dim features, keys and values
    /// num_key_value_heads × head_dim; o_proj maps num_attention_heads × head_dim back to hidden_size.
    public var headDim: Int { explicitHeadDim ?? hiddenSize / max(numAttentionHeads, 1) }

    /// Number of parameters (embedding, blocks, final norm and, when untied, the LM head).
    public var parameterCount: Int {
        let kvDim = numKeyValueHeads * headDim, qDim = numAttentionHeads * headDim
        let block = 2 * hiddenSize + hiddenSize * qDim * 2 + 2 * hiddenSize * kvDim + 3 * hiddenSize * intermediateSize
        return vocabSize * hiddenSize * (tieWordEmbeddings ? 1 : 2) + numHiddenLayers * block + hiddenSize
    }

    /// The largest value `validate` accepts for each size.
    public static let limits = (vocabSize: 1 << 22, hiddenSize: 1 << 16, intermediateSize: 1 << 18, layers: 1 << 10,
                                heads: 1 << 10, positions: 1 << 20)

    /// Bytes of memory to hold the weights in float32 and, when `training`, their gradients, AdamW's two moments and
    /// the activations kept for the backward pass of a batch of `batch` sequences of `time` tokens (an estimate that
    /// errs high: every intermediate of a block, the attention probabilities and the logits with their gradient).
    public func memoryEstimate(training: Bool, batch: Int = 1, time: Int = 1) -> Double {
        let params = Double(parameterCount)
        let (c, f, h, v, l) = (Double(hiddenSize), Double(intermediateSize), Double(numAttentionHeads), Double(vocabSize), Double(numHiddenLayers))
        let tokens = Double(batch) * Double(time)
        let perTokenPerLayer = 10 * c + 4 * f + 2 * h * Double(time)
        let activations = tokens * (l * perTokenPerLayer + 3 * v)
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
        case attentionBias = "attention_bias", mlpBias = "mlp_bias", ropeScaling = "rope_scaling"
        case torchDtype = "torch_dtype", ropeParameters = "rope_parameters"
    }

    /// transformers 5 keeps `rope_theta` inside `rope_parameters` (with `rope_type`); 4.x has it at the top level.
    struct RopeParameters: Codable {
        var ropeTheta: Double?
        var ropeType: String?
        enum CodingKeys: String, CodingKey { case ropeTheta = "rope_theta", ropeType = "rope_type" }
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
        if let type = try optional(String.self, .modelType), type != "llama" {
            throw ConfigError(field: "model_type", message: "'\(type)' is not 'llama'")
        }
        if let act = try optional(String.self, .hiddenAct), act != "silu" {
            throw ConfigError(field: "hidden_act", message: "'\(act)' is not supported (only silu)")
        }
        for key in [CodingKeys.attentionBias, .mlpBias] where try optional(Bool.self, key) == true {
            throw ConfigError(field: key.rawValue, message: "biases are not supported")
        }
        if c.contains(.ropeScaling), try !c.decodeNil(forKey: .ropeScaling) {
            throw ConfigError(field: "rope_scaling", message: "rope scaling is not supported")
        }
        vocabSize = try required(Int.self, .vocabSize)
        hiddenSize = try required(Int.self, .hiddenSize)
        intermediateSize = try required(Int.self, .intermediateSize)
        numHiddenLayers = try required(Int.self, .numHiddenLayers)
        numAttentionHeads = try required(Int.self, .numAttentionHeads)
        numKeyValueHeads = try optional(Int.self, .numKeyValueHeads) ?? numAttentionHeads
        rmsNormEps = try optional(Double.self, .rmsNormEps) ?? 1e-6
        let ropeParameters = try optional(RopeParameters.self, .ropeParameters)
        if let type = ropeParameters?.ropeType, type != "default" {
            throw ConfigError(field: "rope_parameters", message: "rope_type '\(type)' is not supported (only default)")
        }
        ropeTheta = try optional(Double.self, .ropeTheta) ?? ropeParameters?.ropeTheta ?? 10_000
        maxPositionEmbeddings = try optional(Int.self, .maxPositionEmbeddings) ?? 2048
        tieWordEmbeddings = try optional(Bool.self, .tieWordEmbeddings) ?? false
        bosTokenId = try optional(Int.self, .bosTokenId)
        if let one = try? c.decodeIfPresent(Int.self, forKey: .eosTokenIds) {
            eosTokenIds = [one]
        } else {
            eosTokenIds = try optional([Int].self, .eosTokenIds) ?? []
        }
        padTokenId = try optional(Int.self, .padTokenId)
        initializerRange = try optional(Double.self, .initializerRange) ?? 0.02
        let hd = try optional(Int.self, .headDim)
        explicitHeadDim = hd == hiddenSize / max(numAttentionHeads, 1) ? nil : hd
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(["LlamaForCausalLM"], forKey: .architectures)
        try c.encode("llama", forKey: .modelType)
        try c.encode("silu", forKey: .hiddenAct)
        try c.encode(false, forKey: .attentionBias)
        try c.encode(false, forKey: .mlpBias)
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
        if let bosTokenId { try c.encode(bosTokenId, forKey: .bosTokenId) } else { try c.encodeNil(forKey: .bosTokenId) }
        if eosTokenIds.count == 1 { try c.encode(eosTokenIds[0], forKey: .eosTokenIds) } else { try c.encode(eosTokenIds, forKey: .eosTokenIds) }
        if let padTokenId { try c.encode(padTokenId, forKey: .padTokenId) } else { try c.encodeNil(forKey: .padTokenId) }
        try c.encodeNil(forKey: .ropeScaling)
        try c.encode(RopeParameters(ropeTheta: ropeTheta, ropeType: "default"), forKey: .ropeParameters)
    }

    /// Reads and validates a `config.json`.
    public static func load(from url: URL) throws -> LlamaConfig {
        let data: Data
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw ConfigError(field: "config.json", message: "\(url.path) does not exist (not a model folder?)")
        }
        do { data = try Data(contentsOf: url) } catch {
            throw ConfigError(field: "config.json", message: "cannot read \(url.path): \(error.localizedDescription)")
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
