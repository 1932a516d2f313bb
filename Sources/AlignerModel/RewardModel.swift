import AlignerTensor
import Foundation

/// A reward model: a decoder of any supported family with a scalar head, in Hugging Face's
/// `LlamaForSequenceClassification` layout (num_labels 1): `score.weight` (1, C), no bias, applied to the final hidden
/// state of each sequence's last token that is not the pad token (the rightmost, as transformers picks it; the first
/// position when a row is all padding). So transformers loads an exported reward model and gives the same scores.
public final class RewardModel {
    public let config: LlamaConfig
    /// The decoder; its language-model head, if it has one of its own, is not used.
    public let decoder: LlamaModel
    /// (1, C)
    public let score: Tensor
    /// The head's name in Hugging Face's layout.
    public static let scoreName = "score.weight"

    /// A reward model with the decoder drawn from `seed` (as `LlamaModel(config:seed:)`) and the head from
    /// normal(0, initializer_range), as transformers initialises `score`.
    public init(config: LlamaConfig, seed: UInt64) throws {
        try Self.check(config)
        self.config = config
        decoder = try LlamaModel(config: config, seed: seed)
        var g = SeededGenerator(seed: seed ^ 0x5C0E_5C0E)
        score = Tensor.randomNormal([1, config.hiddenSize], std: Float(config.initializerRange), generator: &g, requiresGrad: true)
        score.name = Self.scoreName
    }

    /// A reward model holding `weights` in Hugging Face's names: the decoder's (`model.…`) and `score.weight`. A base
    /// language model's `lm_head.weight` may be there too (it is not used).
    public init(config: LlamaConfig, weights: [String: Tensor]) throws {
        try Self.check(config)
        guard let head = weights[Self.scoreName] else {
            throw WeightError(name: Self.scoreName, message: "missing (a reward model's head, shape (1, \(config.hiddenSize)))")
        }
        guard head.shape == [1, config.hiddenSize] else {
            throw WeightError(name: Self.scoreName, message: "has shape \(head.shape), expected [1, \(config.hiddenSize)] (num_labels 1)")
        }
        guard head.scalars.allSatisfy(\.isFinite) else { throw WeightError(name: Self.scoreName, message: "holds NaN or infinite values") }
        var decoderWeights = weights
        decoderWeights[Self.scoreName] = nil
        // The sequence classifier has no language-model head: an untied decoder gets the embedding in its place
        // (shared, never used by the reward model).
        if !config.tieWordEmbeddings && decoderWeights["lm_head.weight"] == nil {
            decoderWeights["lm_head.weight"] = decoderWeights["model.embed_tokens.weight"]
        }
        self.config = config
        decoder = try LlamaModel(config: config, weights: decoderWeights)
        score = head.detached().requiringGrad()
        score.name = Self.scoreName
    }

    /// A reward model on a pretrained decoder (`decoderWeights` in Hugging Face's names, e.g. a base language model's)
    /// with a new head drawn from `seed` as `init(config:seed:)` draws it.
    public convenience init(config: LlamaConfig, decoderWeights: [String: Tensor], seed: UInt64) throws {
        var weights = decoderWeights
        var g = SeededGenerator(seed: seed ^ 0x5C0E_5C0E)
        weights[Self.scoreName] = Tensor.randomNormal([1, config.hiddenSize], std: Float(config.initializerRange), generator: &g)
        try self.init(config: config, weights: weights)
    }

    static func check(_ config: LlamaConfig) throws {
        try config.validate()
        guard config.padTokenId != nil else {
            throw ConfigError(field: "pad_token_id", message: "a reward model needs a pad token to find each sequence's last token")
        }
    }

    /// The reward model's parameters in Hugging Face's names: the decoder's without its language-model head, and
    /// `score.weight`.
    public var parameters: [String: Tensor] {
        var p = decoder.parameters
        if !config.tieWordEmbeddings { p["lm_head.weight"] = nil }
        p[Self.scoreName] = score
        return p
    }

    /// `parameters`' names in order (the decoder's order, then the head).
    public var parameterNames: [String] {
        decoder.parameterNames.filter { config.tieWordEmbeddings || $0 != "lm_head.weight" } + [Self.scoreName]
    }

    /// What training updates: the decoder's adapters and the head when the decoder has LoRA adapters, else every
    /// parameter.
    public var trainableParameters: [String: Tensor] {
        guard decoder.lora != nil else { return parameters }
        var p = decoder.adapters
        p[Self.scoreName] = score
        return p
    }

    /// `trainableParameters`' names in order.
    public var trainableNames: [String] { decoder.lora != nil ? decoder.trainableNames + [Self.scoreName] : parameterNames }

    /// The rows (one per sequence) whose hidden state is scored: the rightmost token that is not the pad token.
    public func lastTokens(ids: [Int], batch: Int, time: Int) -> [Int] {
        let pad = config.padTokenId!
        return (0..<batch).map { b in
            let row = ids[(b * time)..<((b + 1) * time)]
            return b * time + ((row.lastIndex { $0 != pad }).map { $0 - b * time } ?? 0)
        }
    }

    /// One score per sequence (B) for `ids` (B·T, right-padded with the pad token). Padding is kept out of attention.
    /// Throws `ModelInputError` as `LlamaModel.forward` does.
    public func scores(ids: [Int], batch: Int, time: Int) throws -> Tensor {
        let pad = config.padTokenId!
        let mask = ids.map { $0 != pad }
        let hidden = try decoder.hiddenStates(ids: ids, batch: batch, time: time, attentionMask: mask)  // (B, T, C)
        return hidden.reshape([batch * time, config.hiddenSize])
            .gatherRows(lastTokens(ids: ids, batch: batch, time: time))  // (B, C)
            .matmul(score, transposeOther: true)  // (B, 1)
            .reshape([batch])
    }

    /// The Bradley-Terry loss of preference pairs: mean over pairs of −log σ(r_better − r_worse). `better` and `worse`
    /// are scores (P) of the same pairs in the same order.
    public static func pairwiseLoss(better: Tensor, worse: Tensor) -> Tensor {
        precondition(better.shape == worse.shape, "pairwiseLoss: \(better.shape) against \(worse.shape)")
        return (better - worse).logSigmoid().mean() * -1
    }
}
