import AlignerData
import AlignerGGUF
import AlignerModel
import AlignerTensor
import AlignerTokenizers
import Foundation

/// A model read from a GGUF file: its configuration from the `<arch>.*` metadata and its weights dequantised to
/// Float32 under Hugging Face's names (see `GGUFLayout`: llama.cpp's names mapped back, Llama's Q/K row permutation
/// undone, Gemma's 1 + w norms turned back into w, as transformers' GGUF loader does). Architectures: `llama`,
/// `qwen2`, `qwen3`, `gemma`, `phi3`.
public struct GGUFModel {
    public let config: LlamaConfig
    public let weights: [String: Tensor]

    public init(file: GGUFFile) throws {
        func fail(_ m: String) -> GGUFError { GGUFError(file: file.path, message: m) }
        guard let arch = file.metadata["general.architecture"]?.stringValue else { throw fail("no general.architecture") }
        guard let family = GGUFLayout.family(ofArchitecture: arch) else {
            throw fail("architecture '\(arch)' is not supported (llama, qwen2, qwen3, gemma, phi3)")
        }
        func int(_ key: String) throws -> Int {
            guard let v = file.metadata["\(arch).\(key)"]?.intValue else { throw fail("metadata \(arch).\(key) is missing or not an integer") }
            return v
        }
        func optionalInt(_ key: String) -> Int? { file.metadata["\(arch).\(key)"]?.intValue }
        func optionalDouble(_ key: String) -> Double? { file.metadata["\(arch).\(key)"]?.doubleValue }
        let heads = try int("attention.head_count")
        let hidden = try int("embedding_length")
        let tokens = file.metadata["tokenizer.ggml.tokens"].flatMap { if case .array(let a) = $0 { return a.count } else { return nil } }
        let vocab = optionalInt("vocab_size") ?? tokens ?? file.info("token_embd.weight")?.shape.first ?? 0
        let headDim = optionalInt("attention.key_length") ?? (family == .phi3 ? nil : optionalInt("rope.dimension_count"))
        var config = LlamaConfig(
            vocabSize: vocab, hiddenSize: hidden, intermediateSize: try int("feed_forward_length"),
            numHiddenLayers: try int("block_count"), numAttentionHeads: heads,
            numKeyValueHeads: optionalInt("attention.head_count_kv") ?? heads,
            rmsNormEps: optionalDouble("attention.layer_norm_rms_epsilon") ?? 1e-5,
            ropeTheta: optionalDouble("rope.freq_base") ?? 10_000,
            maxPositionEmbeddings: try int("context_length"),
            tieWordEmbeddings: file.info("output.weight") == nil,
            bosTokenId: file.metadata["tokenizer.ggml.bos_token_id"]?.intValue,
            eosTokenIds: file.metadata["tokenizer.ggml.eos_token_id"]?.intValue.map { [$0] } ?? [],
            padTokenId: file.metadata["tokenizer.ggml.padding_token_id"]?.intValue,
            headDim: headDim == hidden / max(heads, 1) ? nil : headDim, family: family)
        // The GGUF stores rms epsilon as a float32; transformers reads the same value.
        config.rmsNormEps = Double(Float(config.rmsNormEps))
        if let rotary = optionalInt("rope.dimension_count"), rotary != config.headDim, family == .phi3 {
            config.partialRotaryFactor = Double(rotary) / Double(config.headDim)
        }
        if let window = optionalInt("attention.sliding_window"), family == .phi3 { config.slidingWindow = window }
        config.originalMaxPositionEmbeddings = family == .phi3 ? optionalInt("rope.scaling.original_context_length") : nil
        switch file.metadata["\(arch).rope.scaling.type"]?.stringValue ?? "none" {
        case "none": break
        case "linear":
            guard let factor = optionalDouble("rope.scaling.factor") else { throw fail("\(arch).rope.scaling.factor is missing") }
            config.ropeScaling = RopeScaling(kind: .linear, factor: Double(Float(factor)))
        case let other: throw fail("\(arch).rope.scaling.type '\(other)' is not supported (none, linear)")
        }
        config.attentionBias = family != .qwen2 && file.info("blk.0.attn_output.bias") != nil
        config.mlpBias = file.info("blk.0.ffn_down.bias") != nil
        do { try config.validate() } catch let e as ConfigError { throw fail("\(e)") }
        self.config = config

        weights = try GGUFWeights(file: file, config: config).weights()
    }
}
