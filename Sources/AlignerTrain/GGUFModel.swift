import AlignerData
import AlignerGGUF
import AlignerModel
import AlignerTensor
import AlignerTokenizers
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

/// The tokenizer a GGUF file describes in its `tokenizer.ggml.*` metadata (BPE vocabularies, `tokenizer.ggml.model`
/// "gpt2"), with the pre-tokenizer llama.cpp uses for its `tokenizer.ggml.pre` name, special tokens by token type
/// (control tokens are special added tokens, user-defined ones plain added tokens), BOS added when
/// `tokenizer.ggml.add_bos_token` says so, and the chat template.
public struct GGUFTokenizer {
    public let tokenizer: Tokenizer
    public let specialTokens: SpecialTokens
    public let chatTemplate: String?

    static let llama3Split = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Split = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    public init(file: GGUFFile) throws {
        func fail(_ m: String) -> GGUFError { GGUFError(file: file.path, message: m) }
        let kind = file.metadata["tokenizer.ggml.model"]?.stringValue ?? "(none)"
        guard kind == "gpt2" else { throw fail("tokenizer.ggml.model '\(kind)' is not supported yet (gpt2)") }
        guard case .array(let tokenValues)? = file.metadata["tokenizer.ggml.tokens"] else { throw fail("tokenizer.ggml.tokens is missing") }
        let tokens = try tokenValues.enumerated().map { i, v -> String in
            guard let s = v.stringValue else { throw fail("tokenizer.ggml.tokens[\(i)] is not a string") }
            return s
        }
        var types: [Int] = []
        if case .array(let t)? = file.metadata["tokenizer.ggml.token_type"] { types = t.map { $0.intValue ?? 1 } }
        var merges: [(String, String)] = []
        if case .array(let m)? = file.metadata["tokenizer.ggml.merges"] {
            for (i, v) in m.enumerated() {
                guard let s = v.stringValue, let space = s.firstIndex(of: " ") else { throw fail("tokenizer.ggml.merges[\(i)] is not \"a b\"") }
                merges.append((String(s[..<space]), String(s[s.index(after: space)...])))
            }
        }
        var vocab: [String: Int] = [:]
        for (i, t) in tokens.enumerated() where vocab[t] == nil { vocab[t] = i }
        let model: BPEModel
        do { model = try BPEModel(vocab: vocab, merges: merges) } catch let e as TokenizerError { throw fail("tokenizer: \(e)") }
        let pre = file.metadata["tokenizer.ggml.pre"]?.stringValue ?? "default"
        let prefixSpace = file.metadata["tokenizer.ggml.add_space_prefix"]?.boolValue ?? false
        let preTokenizer: PreTokenizer
        do {
            switch pre {
            case "llama3", "llama-v3", "llama-bpe", "falcon3", "smaug-bpe", "dbrx":
                preTokenizer = .sequence([.split(pattern: try PCRE2Pattern(Self.llama3Split), behavior: .isolated, invert: false),
                                          .byteLevel(addPrefixSpace: false, useRegex: false)])
            case "qwen2", "deepseek-r1-qwen":
                preTokenizer = .sequence([.split(pattern: try PCRE2Pattern(Self.qwen2Split), behavior: .isolated, invert: false),
                                          .byteLevel(addPrefixSpace: false, useRegex: false)])
            case "smollm":
                // llama.cpp: digits one by one, then GPT-2's split (SmolLM's own tokenizer.json does the same).
                preTokenizer = .sequence([.digits(individualDigits: true), .byteLevel(addPrefixSpace: prefixSpace, useRegex: true)])
            case "falcon":
                preTokenizer = .sequence([.punctuation(.contiguous), .byteLevel(addPrefixSpace: false, useRegex: true), .digits(individualDigits: false),
                                          .split(pattern: try PCRE2Pattern("[0-9][0-9][0-9]"), behavior: .isolated, invert: false)])
            case "default", "gpt-2", "gpt2":
                preTokenizer = .byteLevel(addPrefixSpace: prefixSpace, useRegex: true)
            default:
                throw fail("tokenizer.ggml.pre '\(pre)' is not supported (llama-bpe, qwen2, smollm, falcon, gpt-2, default)")
            }
        } catch let e as TokenizerError { throw fail("\(e)") }
        var added: [AddedToken] = []
        for (i, t) in types.enumerated() where i < tokens.count && (t == 3 || t == 4) {
            added.append(AddedToken(id: i, content: tokens[i], special: t == 3))
        }
        func token(_ key: String) -> String? {
            file.metadata["tokenizer.ggml.\(key)"]?.intValue.flatMap { $0 < tokens.count ? tokens[$0] : nil }
        }
        let bos = token("bos_token_id")
        let addBOS = file.metadata["tokenizer.ggml.add_bos_token"]?.boolValue ?? false
        let prefix = addBOS ? (file.metadata["tokenizer.ggml.bos_token_id"]?.intValue).map { [$0] } ?? [] : []
        tokenizer = Tokenizer(model: model, normalizer: nil, preTokenizer: preTokenizer, decoder: .byteLevel, addedTokens: added,
                              prefixIds: prefix, suffixIds: [],
                              postProcessorJSON: ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true] as [String: Any])
        specialTokens = SpecialTokens(bos: bos, eos: token("eos_token_id"), pad: token("padding_token_id"), unk: token("unknown_token_id"))
        chatTemplate = file.metadata["tokenizer.chat_template"]?.stringValue
    }
}

/// The pretrained model a recipe starts from (`model.init_from`): a Hugging Face directory, a run or checkpoint, or a
/// GGUF file, as configuration, Float32 weights, tokenizer, special tokens and chat template.
struct PretrainedBase {
    let config: LlamaConfig
    let weights: [String: Tensor]
    let tokenizer: Tokenizer
    let specialTokens: SpecialTokens
    let chatTemplate: String?

    static func isGGUF(_ path: String) -> Bool { path.lowercased().hasSuffix(".gguf") }

    init(path: String) throws {
        if Self.isGGUF(path) {
            let file = try GGUFFile(contentsOf: URL(fileURLWithPath: path))
            let model = try GGUFModel(file: file), t = try GGUFTokenizer(file: file)
            (config, weights, tokenizer, specialTokens, chatTemplate) = (model.config, model.weights, t.tokenizer, t.specialTokens, t.chatTemplate)
        } else {
            let hf = try HuggingFaceDirectory(path: AlignerBundle.resolve(path).path)
            (config, weights, tokenizer, specialTokens, chatTemplate) = (hf.config, hf.weights, hf.tokenizer, hf.specialTokens, hf.chatTemplate)
        }
    }
}
