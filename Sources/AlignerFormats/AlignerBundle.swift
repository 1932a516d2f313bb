import AlignerData
import AlignerFiles
import AlignerGGUF
import AlignerModel
import AlignerRecipes
import AlignerSafetensors
import AlignerTensor
import AlignerTokenizers
import Foundation

/// A trained Aligner ready to use: model, tokenizer, special tokens and prompt template. Loads from a checkpoint folder,
/// a Hugging Face Llama directory (an export, or one written by Python `transformers`) or a GGUF file.
public struct AlignerBundle {
    public let model: LlamaModel
    public let tokenizer: Tokenizer
    public let specialTokens: SpecialTokens
    public let template: PromptTemplate
    /// The folder the weights came from.
    public let source: URL
    /// The recipe that trained it, when known.
    public let recipe: Recipe?
    /// The chat template of a Hugging Face directory that is not an AlignerKit export (a base model), kept on export.
    public let baseChatTemplate: String?
    /// The chat template the Aligner's prompts go through (`data.chat_template = "base"`), with its tokens.
    public let chat: ChatPrompt?
    /// The type its weights were stored in, as generation can read them: `.q8_0` for a GGUF file whose matrices are
    /// all Q8_0, else `.f32` (float32, f16 and bf16 files, and quantisations without a kernel here, run as float32).
    public let storedWeights: InferenceWeights

    public init(model: LlamaModel, tokenizer: Tokenizer, specialTokens: SpecialTokens, template: PromptTemplate, source: URL, recipe: Recipe?,
                baseChatTemplate: String? = nil, chat: ChatPrompt? = nil, storedWeights: InferenceWeights = .f32) {
        self.storedWeights = storedWeights
        self.baseChatTemplate = baseChatTemplate
        self.chat = chat
        self.model = model
        self.tokenizer = tokenizer
        self.specialTokens = specialTokens
        self.template = template
        self.source = source
        self.recipe = recipe
    }

    /// Loads a checkpoint or Hugging Face directory, or a GGUF file. (`RunLocator.loadAligner` also takes a run
    /// folder or a sweep's best run.)
    public static func load(_ path: String) throws -> AlignerBundle {
        if PretrainedBase.isGGUF(path) { return try loadGGUF(path) }
        let dir = URL(fileURLWithPath: path)
        let hf = try HuggingFaceDirectory(path: dir.path)
        let model = try LlamaModel(config: hf.config, weights: hf.weights)
        if let adapters = hf.adapters { try model.attachAdapters(adapters.config, weights: adapters.weights) }
        let recipeURL = dir.appendingPathComponent("recipe.json")
        let recipe = FileManager.default.fileExists(atPath: recipeURL.path) ? try Recipe.load(path: recipeURL.path) : nil
        var specials = hf.specialTokens
        var template = PromptTemplate.v1
        let tokenizerConfig = (try? Data(contentsOf: dir.appendingPathComponent("tokenizer_config.json")))
            .flatMap { (try? JSONSerialization.jsonObject(with: $0)) as? [String: Any] }
        var usesChatTemplate = false
        if let recipe {
            template = try recipe.promptTemplate()
            usesChatTemplate = recipe.data.chatTemplateUse == .base
            // Checkpoints carry the special tokens their examples were built with; older ones only the recipe's.
            if tokenizerConfig == nil {
                specials = SpecialTokens(bos: hf.tokenizer.id(of: recipe.tokenizer.bos) != nil ? recipe.tokenizer.bos : nil,
                                         eos: recipe.tokenizer.eos, pad: recipe.tokenizer.pad, unk: nil)
            }
        } else if let root = tokenizerConfig, let text = root["aligner_prompt_template"] as? String {
            template = try PromptTemplate(name: root["aligner_template_name"] as? String ?? "custom", text: text)
            template.input = root["aligner_prompt_input"] as? String
            usesChatTemplate = root["aligner_chat_template"] as? Bool ?? false
        }
        let chat = usesChatTemplate ? try savedChatPrompt(hf.chatTemplate, specials: specials, in: dir.path) : nil
        if specials.eos == nil, let id = hf.config.eosTokenIds.first { specials.eos = hf.tokenizer.token(of: id) }
        return AlignerBundle(model: model, tokenizer: hf.tokenizer, specialTokens: specials, template: template, source: dir, recipe: recipe,
                             baseChatTemplate: recipe == nil && !hf.isAlignerExport ? hf.chatTemplate : nil, chat: chat)
    }

    /// A GGUF file: the model (dequantised to Float32) and the tokenizer of its metadata. An Aligner that AlignerKit
    /// exported as GGUF carries its prompt template in `aligner.*` keys; any other file's chat template is kept as a
    /// base's (for export) and the prompt template is v1.
    static func loadGGUF(_ path: String) throws -> AlignerBundle {
        let file = try GGUFFile(contentsOf: URL(fileURLWithPath: path))
        let base = try PretrainedBase(file: file)
        let model = try LlamaModel(config: base.config, weights: base.weights)
        let matrices = file.tensors.filter { $0.shape.count == 2 }
        let stored: InferenceWeights = !matrices.isEmpty && matrices.allSatisfy { $0.type == .q8_0 } ? .q8_0 : .f32
        guard let text = file.metadata["aligner.prompt_template"]?.stringValue else {
            return AlignerBundle(model: model, tokenizer: base.tokenizer, specialTokens: base.specialTokens, template: .v1,
                                 source: URL(fileURLWithPath: path), recipe: nil, baseChatTemplate: base.chatTemplate, storedWeights: stored)
        }
        func bad(_ m: String) -> FileError { FileError(file: path, message: m, kind: .badData) }
        var template: PromptTemplate
        do {
            template = try PromptTemplate(name: file.metadata["aligner.template_name"]?.stringValue ?? "custom", text: text)
        } catch { throw bad("aligner.prompt_template: \(error)") }
        template.input = file.metadata["aligner.prompt_input"]?.stringValue
        let chat = file.metadata["aligner.chat_template"]?.boolValue == true
            ? try savedChatPrompt(base.chatTemplate, specials: base.specialTokens, in: path) : nil
        return AlignerBundle(model: model, tokenizer: base.tokenizer, specialTokens: base.specialTokens, template: template,
                             source: URL(fileURLWithPath: path), recipe: nil, baseChatTemplate: nil, chat: chat, storedWeights: stored)
    }

    /// Makes generation read `weights` (nil: the type the weights were stored in, `storedWeights`). Returns the type
    /// chosen. Losses are unaffected: they always read the float32 parameters.
    @discardableResult
    public func useInferenceWeights(_ weights: InferenceWeights?) -> InferenceWeights {
        let chosen = weights ?? storedWeights
        if model.inferenceWeightType != chosen { model.setInferenceWeights(chosen) }
        return chosen
    }

    /// The chat template a saved Aligner (checkpoint, export) says its prompts went through; a missing or unusable
    /// one is bad content of `path`.
    static func savedChatPrompt(_ source: String?, specials: SpecialTokens, in path: String) throws -> ChatPrompt {
        guard let source else {
            throw FileError(file: path, message: "the Aligner's prompts go through a chat template, but it has none", kind: .badData)
        }
        do { return try ChatPrompt(source: source, bosToken: specials.bos, eosToken: specials.eos) } catch let e as SettingError {
            throw FileError(file: path, message: e.message, kind: .badData)
        }
    }

    /// This model prompted another way: a built-in prompt template (`v1`, `v2`, `empathy`) and, with `chatTemplate`
    /// "base", the template's instruction as a user message through the model's own chat template (as a recipe's
    /// `data.chat_template = "base"` does). For measuring a base model as an Aligner before finetuning it.
    public func prompted(template name: String?, chatTemplate: String?) throws -> AlignerBundle {
        var template = self.template
        if let name {
            do { template = try PromptTemplate.named(name) } catch let e as SettingError { throw SettingError(setting: "--template", message: e.message) }
        }
        var chat = self.chat
        switch chatTemplate {
        case nil: break
        case "none"?: chat = nil
        case "base"?:
            guard let source = baseChatTemplate ?? self.chat?.template.source else {
                throw SettingError(setting: "--chat-template", message: "\(self.source.path) has no chat template of its own")
            }
            chat = try ChatPrompt(source: source, bosToken: specialTokens.bos, eosToken: specialTokens.eos, setting: "--chat-template")
        case let other?:
            throw SettingError(setting: "--chat-template", message: "must be \"base\" or \"none\", got \"\(other)\"")
        }
        return AlignerBundle(model: model, tokenizer: tokenizer, specialTokens: specialTokens, template: template, source: source,
                             recipe: recipe, baseChatTemplate: baseChatTemplate, chat: chat, storedWeights: storedWeights)
    }

    /// This model used zero-shot as an Aligner: prompted through its own chat template (the template's instruction
    /// as one user message) when it has one, else as it is.
    public func zeroShot() throws -> AlignerBundle {
        baseChatTemplate != nil || chat != nil ? try prompted(template: nil, chatTemplate: "base") : self
    }

    /// The example builder matching this Aligner (template, BOS/EOS).
    public func exampleBuilder(maxLength: Int? = nil) throws -> ExampleBuilder {
        try ExampleBuilder(tokenizer: tokenizer, template: template, specialTokens: specialTokens,
                           maxLength: maxLength ?? model.config.maxPositionEmbeddings, chat: chat)
    }

    public var eosIds: [Int] {
        var ids = model.config.eosTokenIds
        if let e = specialTokens.eos, let id = tokenizer.id(of: e), !ids.contains(id) { ids.append(id) }
        return ids
    }
}

extension AlignerBundle {
    /// Every file and folder this Aligner was read from, which no output may overwrite: its folder or GGUF file, the
    /// run folder around a checkpoint (`RUN/checkpoints/ckpt-…`), and the pretrained base a LoRA checkpoint refers to.
    public var readPaths: [String] {
        var paths = [source.path]
        let parent = source.deletingLastPathComponent()
        if parent.lastPathComponent == "checkpoints" { paths.append(parent.deletingLastPathComponent().path) }
        let reference = source.appendingPathComponent(BaseReference.file)
        if let data = try? Data(contentsOf: reference), let base = try? JSONDecoder().decode(BaseReference.self, from: data) {
            paths.append(base.path)
        }
        return paths
    }
}
