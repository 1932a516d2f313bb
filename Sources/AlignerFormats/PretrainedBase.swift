import AlignerData
import AlignerGGUF
import AlignerModel
import AlignerTensor
import AlignerTokenizers
import Foundation

/// The pretrained model a recipe starts from (`model.init_from`, located by `RunLocator.modelLocation`): a Hugging Face
/// directory or checkpoint, or a GGUF file, as configuration, Float32 weights, tokenizer, special tokens and chat
/// template.
public struct PretrainedBase {
    public let config: LlamaConfig
    public let weights: [String: Tensor]
    public let tokenizer: Tokenizer
    public let specialTokens: SpecialTokens
    public let chatTemplate: String?

    public static func isGGUF(_ path: String) -> Bool { path.lowercased().hasSuffix(".gguf") }

    public init(path: String) throws {
        if Self.isGGUF(path) {
            try self.init(file: GGUFFile(contentsOf: URL(fileURLWithPath: path)))
        } else {
            let hf = try HuggingFaceDirectory(path: path)
            var weights = hf.weights
            if let adapters = hf.adapters {
                // A LoRA run or checkpoint as a base: its adapters merged into its weights.
                let model = try LlamaModel(config: hf.config, weights: hf.weights)
                try model.attachAdapters(adapters.config, weights: adapters.weights)
                weights = model.mergedWeights()
            }
            self.init(config: hf.config, weights: weights, tokenizer: hf.tokenizer, specialTokens: hf.specialTokens, chatTemplate: hf.chatTemplate)
        }
    }

    init(file: GGUFFile) throws {
        let model = try GGUFModel(file: file), t = try GGUFTokenizer(file: file)
        self.init(config: model.config, weights: model.weights, tokenizer: t.tokenizer, specialTokens: t.specialTokens, chatTemplate: t.chatTemplate)
    }

    init(config: LlamaConfig, weights: [String: Tensor], tokenizer: Tokenizer, specialTokens: SpecialTokens, chatTemplate: String?) {
        (self.config, self.weights, self.tokenizer, self.specialTokens, self.chatTemplate) = (config, weights, tokenizer, specialTokens, chatTemplate)
    }
}
