import AlignerData
import AlignerFiles
import AlignerModel
import AlignerSafetensors
import AlignerTensor
import AlignerTokenizers
import Foundation

/// Writes a Hugging Face model directory that `transformers` loads with `AutoModelForCausalLM` and `AutoTokenizer`.
public enum HuggingFaceExport {
    /// A Jinja chat template that renders the Aligner prompt from [user: question, assistant: answer].
    public static func chatTemplate(_ t: PromptTemplate, bos: String?, bosToken: String? = nil) -> String {
        func escaped(_ s: String) -> String { s.replacingOccurrences(of: "{{", with: "{{ '{{' }}") }
        let body = escaped(t.text).replacingOccurrences(of: "{question}", with: "{{ messages[0]['content'] }}")
            .replacingOccurrences(of: "{answer}", with: "{{ messages[1]['content'] }}")
        guard let bos else { return body }
        // The tokenizer's own BOS as the variable transformers fills in; any other prefix as literal text.
        return (bosToken != nil && bos == bosToken ? "{{ bos_token }}" : escaped(bos)) + body
    }

    /// The chat template an export carries: the one the Aligner's prompts went through, or a base model's own, or one
    /// that renders the Aligner's prompt template (with the BOS or other prefix every prompt starts with).
    static func exportedChatTemplate(_ bundle: AlignerBundle) throws -> String {
        if let source = bundle.chat?.template.source ?? bundle.baseChatTemplate { return source }
        let prefixIds = try bundle.exampleBuilder().promptPrefix
        let promptPrefix = prefixIds.isEmpty ? nil : prefixIds.compactMap { bundle.tokenizer.token(of: $0) }.joined()
        return chatTemplate(bundle.template, bos: promptPrefix, bosToken: bundle.specialTokens.bos)
    }

    /// Exports `bundle` to `directory`. The files are written to a fresh temporary folder beside it, which then takes
    /// the place of `directory`: an interrupted export leaves the old folder as it was, and nothing of an older export
    /// (a stale `model.safetensors.index.json`, say) survives into the new one. An existing `directory` must be empty
    /// or a model folder (it holds `config.json`); anything else is refused rather than replaced. `figures`
    /// adds the training run's metrics to the model card.
    public static func export(_ bundle: AlignerBundle, to directory: URL, figures: TrainingFigures? = nil) throws {
        try writeFolder(directory, marker: "config.json", kind: "a model folder") { try write(bundle, to: $0, figures: figures) }
    }

    /// Writes a folder through `write` into a fresh temporary folder beside `directory`, which then takes its place.
    /// An existing `directory` must be empty or hold `marker` (it is `kind`).
    static func writeFolder(_ directory: URL, marker: String, kind: String, write: (URL) throws -> Void) throws {
        let fm = FileManager.default
        let target = directory.standardizedFileURL
        let parent = target.deletingLastPathComponent()
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: target.path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw FileError(file: target.path, message: "exists and is not a folder") }
            let entries = (try? fm.contentsOfDirectory(atPath: target.path)) ?? []
            guard entries.isEmpty || entries.contains(marker) else {
                throw FileError(file: target.path, message: "exists and is not \(kind) (no \(marker)); export into a new or empty folder")
            }
        }
        try FileSystemFailure.createFolder(parent.path)
        TemporaryFiles.removeStale(in: parent, prefix: "." + target.lastPathComponent + ".export-")
        let staging = parent.appendingPathComponent(".\(target.lastPathComponent).export-\(getpid())")
        try? fm.removeItem(at: staging)
        try FileSystemFailure.createFolder(staging.path)
        do {
            try write(staging)
            try AtomicFile.replaceFolder(target, with: staging)
        } catch {
            try? fm.removeItem(at: staging)
            throw error
        }
    }

    /// Writes every file of the export into `directory` (an existing, empty folder): `writeModelFiles`, the Aligner's
    /// tokenizer configuration (`writeTokenizer`) and its model card.
    static func write(_ bundle: AlignerBundle, to directory: URL, figures: TrainingFigures?) throws {
        try writeModelFiles(bundle.model, tokenizer: bundle.tokenizer, specialTokens: bundle.specialTokens, to: directory)
        try writeTokenizer(bundle, to: directory)
        try modelCard(bundle, figures: figures).write(to: directory.appendingPathComponent("README.md"), atomically: true, encoding: .utf8)
    }

    /// A causal language model's own files, as transformers saves them: `config.json`, `model.safetensors` (adapters
    /// merged into the weights they adapt), `generation_config.json` (greedy) and the tokenizer files
    /// (`writeTokenizerFiles`: no chat template, nothing of an Aligner).
    public static func writeModelFiles(_ model: LlamaModel, tokenizer: Tokenizer, specialTokens: SpecialTokens, to directory: URL) throws {
        let config = model.config
        try config.jsonData().write(to: directory.appendingPathComponent("config.json"), options: .atomic)
        try SafetensorsWriter.write(model.mergedWeights(), metadata: ["format": "pt"], to: directory.appendingPathComponent("model.safetensors"))
        try writeTokenizerFiles(tokenizer, specialTokens: specialTokens, maxLength: config.maxPositionEmbeddings, to: directory)
        var generation: [String: Any] = ["do_sample": false, "max_new_tokens": min(256, config.maxPositionEmbeddings)]
        if let b = config.bosTokenId { generation["bos_token_id"] = b }
        generation["eos_token_id"] = config.eosTokenIds.count == 1 ? config.eosTokenIds[0] as Any : config.eosTokenIds as Any
        if let p = config.padTokenId { generation["pad_token_id"] = p }
        try JSONSerialization.data(withJSONObject: generation, options: [.prettyPrinted, .sortedKeys])
            .write(to: directory.appendingPathComponent("generation_config.json"), options: .atomic)
    }

    /// Writes an Aligner's tokenizer files: `tokenizerFiles` with its chat template (the prompt template, or the chat
    /// template its prompts go through) and the `aligner_*` keys that `AlignerBundle.load` reads its prompt from.
    static func writeTokenizer(_ bundle: AlignerBundle, to directory: URL) throws {
        try writeTokenizerFiles(bundle.tokenizer, specialTokens: bundle.specialTokens, maxLength: bundle.model.config.maxPositionEmbeddings,
                                extra: [
                                    "chat_template": try exportedChatTemplate(bundle),
                                    "aligner_chat_template": bundle.chat != nil, "aligner_prompt_input": bundle.template.input.map { $0 as Any } ?? NSNull(),
                                    "aligner_prompt_template": bundle.template.text, "aligner_template_name": bundle.template.name,
                                ], to: directory)
    }

    /// Writes `tokenizer.json` and a `tokenizer_config.json` that transformers' `AutoTokenizer` reads as this
    /// tokenizer (`PreTrainedTokenizerFast`, its special and added tokens, no BOS or EOS added by encoding), with the
    /// `extra` keys of the model it belongs to.
    public static func writeTokenizerFiles(_ tokenizer: Tokenizer, specialTokens s: SpecialTokens, maxLength: Int, extra: [String: Any] = [:],
                                           to directory: URL) throws {
        try tokenizer.save(to: directory.appendingPathComponent("tokenizer.json"))
        var added: [String: Any] = [:]
        for t in tokenizer.addedTokens {
            added[String(t.id)] = ["content": t.content, "lstrip": t.lstrip, "rstrip": t.rstrip, "normalized": t.normalized,
                                   "single_word": t.singleWord, "special": t.special]
        }
        func token(_ name: String?) -> Any { name.map { $0 as Any } ?? NSNull() }
        var tokenizerConfig: [String: Any] = [
            "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": token(s.bos), "eos_token": token(s.eos),
            "pad_token": token(s.pad), "unk_token": token(s.unk), "model_max_length": maxLength,
            "clean_up_tokenization_spaces": false, "add_bos_token": false, "add_eos_token": false,
            "added_tokens_decoder": added,
        ]
        tokenizerConfig.merge(extra) { _, new in new }
        try JSONSerialization.data(withJSONObject: tokenizerConfig, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            .write(to: directory.appendingPathComponent("tokenizer_config.json"), options: .atomic)
    }

    static func modelCard(_ b: AlignerBundle, figures: TrainingFigures?) -> String {
        let c = b.model.config
        var s = """
        ---
        library_name: transformers
        pipeline_tag: text-generation
        tags: [aligner, alignerkit, llama]
        ---

        # Aligner (AlignerKit)

        A \(c.parameterCount)-parameter Llama-architecture Aligner trained with AlignerKit: it reads a question and an
        upstream model's answer and writes a corrected answer (Q-A-C residual learning, Ji et al. 2024,
        "Aligner: Achieving Efficient Alignment through Weak-to-Strong Correction").

        ## Prompt

        The prompt template (`aligner_prompt_template` in tokenizer_config.json, also as the chat template with the
        question as the user message and the answer as the assistant message); the correction follows with no space:

        ```
        \(b.template.text)
        ```

        ## Use

        ```python
        from transformers import AutoModelForCausalLM, AutoTokenizer
        tok = AutoTokenizer.from_pretrained(PATH)
        model = AutoModelForCausalLM.from_pretrained(PATH)
        prompt = tok.apply_chat_template([{"role": "user", "content": question}, {"role": "assistant", "content": answer}], tokenize=False)
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
        out = model.generate(ids, max_new_tokens=128, do_sample=False)
        print(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
        ```

        ## Model

        hidden \(c.hiddenSize), intermediate \(c.intermediateSize), \(c.numHiddenLayers) layers, \(c.numAttentionHeads) heads
        (\(c.numKeyValueHeads) key/value), vocabulary \(c.vocabSize), context \(c.maxPositionEmbeddings), float32.

        """
        if let r = b.recipe {
            s += "\n## Training data and recipe\n\nData: \(r.data.train.joined(separator: ", ")) (see AlignerKit's data/README.md for licences); "
            s += "identity warm-up p = \(r.data.warmupPercent)%; stage 2: \(r.stage2.epochs) epochs at lr \(r.stage2.lr).\n\n"
            if let json = try? r.jsonData() { s += "```json\n" + String(decoding: json, as: UTF8.self) + "\n```\n" }
        }
        if let figures {
            s += "\n## Metrics\n\nEval loss before training \(String(format: "%.4f", figures.initialEvalLoss)); "
            s += figures.stageEvalLosses.map { String(format: "after stage %d: %.4f", $0.stage, $0.evalLoss) }.joined(separator: "; ")
            s += " (\(figures.evalRecords) held-out records)"
            if let best = figures.best, best.path == b.source.path {
                s += String(format: ". These weights are the run's best checkpoint: stage %d step %d, %@ %.4f", best.stage, best.step, best.metric, best.value)
            }
            s += ".\n"
        }
        return s
    }
}

/// What the run that trained a model measured, for the model card of its export.
public struct TrainingFigures: Sendable, Equatable {
    /// The best checkpoint of the run: its folder, where it was taken, and the metric it was chosen by.
    public struct Best: Sendable, Equatable {
        public var path: String
        public var stage: Int
        public var step: Int
        /// The metric's name as the recipe writes it ("eval_loss").
        public var metric: String
        public var value: Double
        public init(path: String, stage: Int, step: Int, metric: String, value: Double) {
            (self.path, self.stage, self.step, self.metric, self.value) = (path, stage, step, metric, value)
        }
    }
    public var initialEvalLoss: Double
    public var stageEvalLosses: [(stage: Int, evalLoss: Double)]
    public var evalRecords: Int
    public var best: Best?

    public init(initialEvalLoss: Double, stageEvalLosses: [(stage: Int, evalLoss: Double)], evalRecords: Int, best: Best?) {
        (self.initialEvalLoss, self.stageEvalLosses, self.evalRecords, self.best) = (initialEvalLoss, stageEvalLosses, evalRecords, best)
    }

    public static func == (a: TrainingFigures, b: TrainingFigures) -> Bool {
        a.initialEvalLoss == b.initialEvalLoss && a.evalRecords == b.evalRecords && a.best == b.best
            && a.stageEvalLosses.map(\.stage) == b.stageEvalLosses.map(\.stage) && a.stageEvalLosses.map(\.evalLoss) == b.stageEvalLosses.map(\.evalLoss)
    }
}
