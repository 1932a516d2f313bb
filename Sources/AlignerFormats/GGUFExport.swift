import AlignerData
import AlignerFiles
import AlignerGGUF
import AlignerModel
import AlignerTensor
import AlignerTokenizers
import Foundation

/// Writes an Aligner (or any model AlignerKit loads) as one GGUF file for llama.cpp, Ollama, LM Studio and
/// transformers' GGUF loader: llama.cpp's architecture, metadata keys and tensor names (`GGUFLayout`), the tokenizer
/// as `tokenizer.ggml.*` (byte-level BPE: tokens, token types, merges, the `tokenizer.ggml.pre` rule, special ids),
/// and the Aligner's prompt as `tokenizer.chat_template`. AlignerKit's own keys (`aligner.*`) carry the prompt
/// template, so a GGUF export loads back as the same Aligner.
public enum GGUFExport {
    /// Tensor types an export can use (`--format gguf --type ...`): names as llama.cpp's `--outtype`.
    public static let types: [String: GGMLType] = ["f32": .f32, "f16": .f16, "bf16": .bf16, "q8_0": .q8_0]

    /// What was written, for the command's summary.
    public struct Summary {
        public var architecture: String
        public var tensors: Int
        /// Tensors per stored type ("F32": 61, ...).
        public var typeCounts: [String: Int]
        /// 2-D tensors whose rows are not a multiple of the block size, stored as F16 instead of the chosen type.
        public var fallbacks: [String]
        public var bytes: Int
    }

    /// `general.file_type` (llama.cpp's `llama_ftype`) of an export whose matrices are `type`.
    static func fileType(_ type: GGMLType) -> UInt32 {
        switch type {
        case .f16: 1
        case .q8_0: 7
        case .bf16: 32
        default: 0
        }
    }

    /// Exports `bundle` as `url` with its matrices stored as `type` (norms and other 1-D tensors stay F32, as
    /// llama.cpp's converter keeps them). The file is written under a temporary name and renamed into place.
    public static func export(_ bundle: AlignerBundle, to url: URL, type: GGMLType, name: String? = nil) throws -> Summary {
        let config = bundle.model.config
        func refuse(_ m: String) -> FileError { FileError(file: url.path, message: "cannot export as GGUF: \(m)", kind: .badData) }
        let arch = GGUFLayout.architecture(of: config.family)
        if config.family == .mistral, let w = config.slidingWindow, w < config.maxPositionEmbeddings {
            throw refuse("llama.cpp runs Mistral as 'llama', which has no sliding window (\(w) < \(config.maxPositionEmbeddings) positions)")
        }
        if (config.family == .qwen2 || config.family == .qwen3), (0..<config.numHiddenLayers).contains(where: { config.slidingWindow(layer: $0) != nil }) {
            throw refuse("sliding-window layers of \(config.family.rawValue) have no GGUF keys in llama.cpp's \(arch) architecture")
        }
        let activation: HiddenActivation = config.family == .gemma ? .geluTanh : .silu
        guard config.hiddenAct == activation else {
            throw refuse("llama.cpp's \(arch) architecture uses \(activation.rawValue), this model \(config.hiddenAct.rawValue)")
        }
        if let r = config.ropeScaling, r.kind != .linear {
            throw refuse("rope scaling '\(r.kind.rawValue)' is not written (linear is)")
        }
        var metadata: [(String, GGUFMetadataValue)] = [
            ("general.architecture", .string(arch)), ("general.type", .string("model")),
            ("general.name", .string(name ?? bundle.recipe?.name ?? bundle.source.deletingPathExtension().lastPathComponent)),
            ("general.file_type", .uint32(fileType(type))),
        ]
        if type == .q8_0 { metadata.append(("general.quantization_version", .uint32(2))) }
        func u32(_ key: String, _ v: Int) { metadata.append(("\(arch).\(key)", .uint32(UInt32(v)))) }
        u32("vocab_size", config.vocabSize)
        u32("context_length", config.maxPositionEmbeddings)
        u32("embedding_length", config.hiddenSize)
        u32("block_count", config.numHiddenLayers)
        u32("feed_forward_length", config.intermediateSize)
        u32("attention.head_count", config.numAttentionHeads)
        u32("attention.head_count_kv", config.numKeyValueHeads)
        u32("rope.dimension_count", config.rotaryDim)
        if config.headDim != config.hiddenSize / config.numAttentionHeads || config.family == .qwen3 || config.family == .gemma {
            u32("attention.key_length", config.headDim)
            u32("attention.value_length", config.headDim)
        }
        metadata.append(("\(arch).attention.layer_norm_rms_epsilon", .float32(Float(config.rmsNormEps))))
        metadata.append(("\(arch).rope.freq_base", .float32(Float(config.ropeTheta))))
        if let r = config.ropeScaling {
            metadata.append(("\(arch).rope.scaling.type", .string("linear")))
            metadata.append(("\(arch).rope.scaling.factor", .float32(Float(r.factor))))
        }
        if config.family == .phi3 {
            if let w = config.slidingWindow { u32("attention.sliding_window", w) }
            if let o = config.originalMaxPositionEmbeddings { u32("rope.scaling.original_context_length", o) }
        }
        metadata += try tokenizerMetadata(bundle, refuse: refuse)

        var tensors: [GGUFTensorSource] = []
        var summary = Summary(architecture: arch, tensors: 0, typeCounts: [:], fallbacks: [], bytes: 0)
        let weights = bundle.model.mergedWeights()  // adapters merged into the weights they adapt
        for hfName in bundle.model.parameterNames {
            guard let ggufName = GGUFLayout.ggufName(hfName, family: config.family), var w = weights[hfName] else {
                throw refuse("parameter '\(hfName)' has no llama.cpp name")
            }
            if GGUFLayout.permutesQK(config.family) {
                if hfName.contains(".q_proj.") { w = GGUFLayout.permuteRows(w, heads: config.numAttentionHeads, forward: true) }
                if hfName.contains(".k_proj.") { w = GGUFLayout.permuteRows(w, heads: config.numKeyValueHeads, forward: true) }
            }
            if config.family == .gemma, hfName.hasSuffix("norm.weight") {
                let shifted = Tensor.zeros(w.shape)
                for i in 0..<w.count { shifted.data[i] = w.data[i] + 1 }
                w = shifted
            }
            var t: GGMLType = w.shape.count < 2 ? .f32 : type
            if t.block.elements > 1, (w.shape.last ?? 0) % t.block.elements != 0 {
                t = .f16
                summary.fallbacks.append(ggufName)
            }
            tensors.append(GGUFTensorSource(name: ggufName, values: w, type: t))
            summary.typeCounts[t.name, default: 0] += 1
        }
        try GGUFWriter.write(metadata: metadata, tensors: tensors, to: url)
        summary.tensors = tensors.count
        summary.bytes = ((try? FileManager.default.attributesOfItem(atPath: url.path)[.size]) as? Int) ?? 0
        return summary
    }

    /// `tokenizer.ggml.*` (byte-level BPE as llama.cpp's `gpt2` model), the chat template and AlignerKit's prompt keys.
    static func tokenizerMetadata(_ bundle: AlignerBundle, refuse: (String) -> FileError) throws -> [(String, GGUFMetadataValue)] {
        let tokenizer = bundle.tokenizer, config = bundle.model.config, model = tokenizer.model
        guard tokenizer.normalizer == nil, !model.byteFallback, model.continuingSubwordPrefix == nil, model.endOfWordSuffix == nil,
              tokenizer.decoder == .byteLevel, let pre = GGUFTokenizer.preName(of: tokenizer.preTokenizer) else {
            throw refuse("the tokenizer is not a byte-level BPE with one of llama.cpp's pre-tokenizer rules (gpt-2, llama-bpe, qwen2, smollm, falcon)")
        }
        guard tokenizer.vocabularySize <= config.vocabSize else {
            throw refuse("the tokenizer has \(tokenizer.vocabularySize) tokens, the model's embedding \(config.vocabSize) rows")
        }
        var tokens: [String] = [], types: [Int32] = []
        let added = Dictionary(tokenizer.addedTokens.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        for id in 0..<config.vocabSize {
            if let a = added[id] {
                tokens.append(a.content)
                types.append(a.special ? 3 : 4)  // control, user-defined
            } else if let t = tokenizer.token(of: id) {
                tokens.append(t)
                types.append(1)  // normal
            } else {
                tokens.append("[PAD\(id)]")  // embedding rows beyond the tokenizer, as llama.cpp's converter names them
                types.append(5)  // unused
            }
        }
        var out: [(String, GGUFMetadataValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string(pre)),
            ("tokenizer.ggml.tokens", .strings(tokens)), ("tokenizer.ggml.token_type", .int32s(types)),
            ("tokenizer.ggml.merges", .strings(model.merges.map { "\($0.0) \($0.1)" })),
        ]
        let s = bundle.specialTokens
        for (key, token) in [("bos", s.bos), ("eos", s.eos), ("unknown", s.unk), ("padding", s.pad)] {
            if let token, let id = tokenizer.id(of: token) { out.append(("tokenizer.ggml.\(key)_token_id", .uint32(UInt32(id)))) }
        }
        // llama.cpp adds BOS to a prompt when the Aligner's prompts start with it (the chat template writes it too, as
        // Llama 3's does; llama.cpp keeps one). Prompts through a base's chat template keep the base's setting.
        let builder = try bundle.exampleBuilder()
        let bos = builder.bosId.map { [$0] } ?? [-1]
        let addBOS = builder.chat == nil ? builder.promptPrefix == bos : tokenizer.hasPostProcessor && tokenizer.prefixIds == bos
        out.append(("tokenizer.ggml.add_bos_token", .bool(addBOS)))
        out.append(("tokenizer.ggml.add_eos_token", .bool(false)))
        out.append(("tokenizer.chat_template", .string(try HuggingFaceExport.exportedChatTemplate(bundle))))
        if bundle.recipe != nil || bundle.chat != nil || bundle.baseChatTemplate == nil {
            out.append(("aligner.prompt_template", .string(bundle.template.text)))
            out.append(("aligner.template_name", .string(bundle.template.name)))
            if let input = bundle.template.input { out.append(("aligner.prompt_input", .string(input))) }
            out.append(("aligner.chat_template", .bool(bundle.chat != nil)))
        }
        return out
    }
}
