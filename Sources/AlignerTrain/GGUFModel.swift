import AlignerGGUF
import AlignerModel
import AlignerTensor
import Foundation

/// A model read from a GGUF file: its configuration from the `<arch>.*` metadata and its weights dequantised to
/// Float32 under Hugging Face's names (llama.cpp's `token_embd`, `blk.N.attn_q`, ... mapped back, and the Q/K row
/// permutation that llama.cpp's converter applies to Llama attention weights undone, as transformers' GGUF loader
/// does). Architectures: `llama`.
public struct GGUFModel {
    public let config: LlamaConfig
    public let weights: [String: Tensor]

    public init(file: GGUFFile) throws {
        func fail(_ m: String) -> GGUFError { GGUFError(file: file.path, message: m) }
        guard let arch = file.metadata["general.architecture"]?.stringValue else { throw fail("no general.architecture") }
        guard arch == "llama" else { throw fail("architecture '\(arch)' is not supported yet (llama)") }
        func int(_ key: String) throws -> Int {
            guard let v = file.metadata["\(arch).\(key)"]?.intValue else { throw fail("metadata \(arch).\(key) is missing or not an integer") }
            return v
        }
        func optionalDouble(_ key: String) -> Double? { file.metadata["\(arch).\(key)"]?.doubleValue }
        let heads = try int("attention.head_count")
        let hidden = try int("embedding_length")
        let tokens = file.metadata["tokenizer.ggml.tokens"].flatMap { if case .array(let a) = $0 { return a.count } else { return nil } }
        let vocab = (try? int("vocab_size")) ?? tokens ?? file.info("token_embd.weight")?.shape.first ?? 0
        let headDim = file.metadata["\(arch).attention.key_length"]?.intValue ?? file.metadata["\(arch).rope.dimension_count"]?.intValue
        var config = LlamaConfig(
            vocabSize: vocab, hiddenSize: hidden, intermediateSize: try int("feed_forward_length"),
            numHiddenLayers: try int("block_count"), numAttentionHeads: heads,
            numKeyValueHeads: file.metadata["\(arch).attention.head_count_kv"]?.intValue ?? heads,
            rmsNormEps: optionalDouble("attention.layer_norm_rms_epsilon") ?? 1e-5,
            ropeTheta: optionalDouble("rope.freq_base") ?? 10_000,
            maxPositionEmbeddings: try int("context_length"),
            tieWordEmbeddings: file.info("output.weight") == nil,
            bosTokenId: file.metadata["tokenizer.ggml.bos_token_id"]?.intValue,
            eosTokenIds: file.metadata["tokenizer.ggml.eos_token_id"]?.intValue.map { [$0] } ?? [],
            padTokenId: file.metadata["tokenizer.ggml.padding_token_id"]?.intValue,
            headDim: headDim == hidden / max(heads, 1) ? nil : headDim)
        // The GGUF stores rms epsilon as a float32; transformers reads the same value.
        config.rmsNormEps = Double(Float(config.rmsNormEps))
        do { try config.validate() } catch let e as ConfigError { throw fail("\(e)") }
        self.config = config

        var weights: [String: Tensor] = [:]
        let names: [(String, String)] = [("attn_norm", "input_layernorm"), ("ffn_norm", "post_attention_layernorm"),
                                         ("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj"),
                                         ("attn_output", "self_attn.o_proj"), ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"),
                                         ("ffn_down", "mlp.down_proj")]
        for t in file.tensors {
            var name: String
            switch t.name {
            case "token_embd.weight": name = "model.embed_tokens.weight"
            case "output_norm.weight": name = "model.norm.weight"
            case "output.weight": name = "lm_head.weight"
            case "rope_freqs.weight": continue  // llama3 rope factors; computed from the configuration instead
            default:
                let parts = t.name.split(separator: ".")
                guard parts.count == 4, parts[0] == "blk", let layer = Int(parts[1]),
                      let mapped = names.first(where: { $0.0 == parts[2] })?.1 else {
                    throw fail("tensor '\(t.name)' is not a tensor of a llama model")
                }
                name = "model.layers.\(layer).\(mapped).\(parts[3])"
            }
            var w = try file.tensor(t.name)
            if t.name.hasSuffix("attn_q.weight") { w = Self.unpermute(w, heads: config.numAttentionHeads) }
            if t.name.hasSuffix("attn_k.weight") { w = Self.unpermute(w, heads: config.numKeyValueHeads) }
            weights[name] = w
        }
        self.weights = weights
    }

    /// Undoes llama.cpp's permutation of a q or k weight (rows = heads × 2 × D/2 interleaved back into rotate-half
    /// order): row (h, a, i) of the result is row (h, i, a) of the file's, a ∈ {0, 1}, i < D/2.
    static func unpermute(_ w: Tensor, heads: Int) -> Tensor {
        let rows = w.shape[0], cols = w.count / max(rows, 1)
        let half = rows / heads / 2
        let out = Tensor.zeros(w.shape)
        for h in 0..<heads {
            for a in 0..<2 {
                for i in 0..<half {
                    let dst = (h * 2 * half + a * half + i) * cols, src = (h * 2 * half + i * 2 + a) * cols
                    (out.data + dst).update(from: w.data + src, count: cols)
                }
            }
        }
        return out
    }
}
