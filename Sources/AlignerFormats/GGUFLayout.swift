import AlignerData
import AlignerGGUF
import AlignerModel
import AlignerTensor
import AlignerTokenizers
import Foundation

/// How llama.cpp names and stores the families AlignerKit runs: the GGUF architecture of each family, tensor names
/// (`token_embd`, `blk.N.attn_q`, ...) against Hugging Face's, and the per-architecture changes llama.cpp's converter
/// makes to the weights (Llama's Q/K row permutation, Gemma's norm weights stored as 1 + w). Reading and writing
/// share this table.
public enum GGUFLayout {
    /// The GGUF `general.architecture` of `family` (llama.cpp runs Mistral as `llama`).
    public static func architecture(of family: ModelFamily) -> String {
        switch family {
        case .llama, .mistral: "llama"
        case .qwen2: "qwen2"
        case .qwen3: "qwen3"
        case .gemma: "gemma"
        case .phi3: "phi3"
        }
    }

    /// The family a GGUF architecture is read as.
    public static func family(ofArchitecture arch: String) -> ModelFamily? {
        ["llama": .llama, "qwen2": .qwen2, "qwen3": .qwen3, "gemma": .gemma, "phi3": .phi3][arch]
    }

    /// Per-block tensor names, llama.cpp's and Hugging Face's (after `blk.N.` and `model.layers.N.`).
    static let blockNames: [(gguf: String, hf: String)] = [
        ("attn_norm", "input_layernorm"), ("ffn_norm", "post_attention_layernorm"),
        ("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj"),
        ("attn_qkv", "self_attn.qkv_proj"), ("attn_output", "self_attn.o_proj"),
        ("attn_q_norm", "self_attn.q_norm"), ("attn_k_norm", "self_attn.k_norm"),
        ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"), ("ffn_down", "mlp.down_proj"),
    ]

    /// Hugging Face's name of a GGUF tensor (Phi-3's `ffn_up` is the fused `gate_up_proj`), or nil.
    static func hfName(_ name: String, family: ModelFamily) -> String? {
        switch name {
        case "token_embd.weight": return "model.embed_tokens.weight"
        case "output_norm.weight": return "model.norm.weight"
        case "output.weight": return "lm_head.weight"
        default:
            let parts = name.split(separator: ".")
            guard parts.count == 4, parts[0] == "blk", let layer = Int(parts[1]) else { return nil }
            if family == .phi3, parts[2] == "ffn_up" { return "model.layers.\(layer).mlp.gate_up_proj.\(parts[3])" }
            guard let hf = blockNames.first(where: { $0.gguf == parts[2] })?.hf else { return nil }
            return "model.layers.\(layer).\(hf).\(parts[3])"
        }
    }

    /// llama.cpp's name of a Hugging Face parameter, or nil.
    static func ggufName(_ name: String, family: ModelFamily) -> String? {
        switch name {
        case "model.embed_tokens.weight": return "token_embd.weight"
        case "model.norm.weight": return "output_norm.weight"
        case "lm_head.weight": return "output.weight"
        default:
            let parts = name.split(separator: ".")
            guard parts.count >= 5, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]) else { return nil }
            let inner = parts[3..<(parts.count - 1)].joined(separator: "."), kind = parts[parts.count - 1]
            if family == .phi3, inner == "mlp.gate_up_proj" { return "blk.\(layer).ffn_up.\(kind)" }
            guard let g = blockNames.first(where: { $0.hf == inner })?.gguf else { return nil }
            return "blk.\(layer).\(g).\(kind)"
        }
    }

    /// Whether llama.cpp's converter permutes the rows of q and k (Llama and Mistral, weights and biases).
    static func permutesQK(_ family: ModelFamily) -> Bool { family == .llama || family == .mistral }

    /// Undoes llama.cpp's permutation of a q or k weight or bias (rows = heads × 2 × D/2 interleaved back into
    /// rotate-half order): row (h, a, i) of the result is row (h, i, a) of the file's, a ∈ {0, 1}, i < D/2.
    /// `forward` applies the permutation instead (for writing).
    static func permuteRows(_ w: Tensor, heads: Int, forward: Bool = false) -> Tensor {
        let rows = w.shape[0], cols = w.count / max(rows, 1)
        let half = rows / heads / 2
        let out = Tensor.zeros(w.shape)
        for h in 0..<heads {
            for a in 0..<2 {
                for i in 0..<half {
                    let hf = (h * 2 * half + a * half + i) * cols, gguf = (h * 2 * half + i * 2 + a) * cols
                    (out.data + (forward ? gguf : hf)).update(from: w.data + (forward ? hf : gguf), count: cols)
                }
            }
        }
        return out
    }
}
