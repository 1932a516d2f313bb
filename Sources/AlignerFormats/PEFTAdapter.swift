import AlignerFiles
import AlignerModel
import AlignerSafetensors
import AlignerTensor
import AlignerTokenizers
import Foundation

/// Low-rank adapters in Hugging Face PEFT's files: `adapter_config.json` (a LoraConfig) and
/// `adapter_model.safetensors` with PEFT's names (`base_model.model.<module path>.lora_A.weight`), which
/// `peft.PeftModel.from_pretrained(base, folder)` loads. LoRA checkpoints and `aligner export --format peft` write them.
public enum PEFTAdapter {
    public static let configFile = "adapter_config.json"
    public static let weightsFile = "adapter_model.safetensors"
    /// PEFT's prefix of saved adapter names (PeftModel → LoraModel → the transformers model).
    static let prefix = "base_model.model."

    /// Whether `directory` holds PEFT adapter files.
    public static func isPresent(in directory: URL) -> Bool {
        FileManager.default.fileExists(atPath: directory.appendingPathComponent(configFile).path)
    }

    /// The two files of `model`'s adapters (the model must have adapters). `base` goes into
    /// `base_model_name_or_path`.
    public static func files(of model: LlamaModel, base: String?) throws -> [(String, Data)] {
        guard let lora = model.lora else { throw FileError(file: configFile, message: "the model has no adapters to write") }
        var named: [String: Tensor] = [:]
        for name in model.adapterNames { named[prefix + name] = model.adapters[name]! }
        let config: [String: Any] = [
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": lora.rank, "lora_alpha": lora.alpha, "lora_dropout": lora.dropout,
            "target_modules": try lora.modules(available: model.linearModules), "use_rslora": lora.rsLoRA, "bias": "none",
            "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true, "modules_to_save": NSNull(),
            "base_model_name_or_path": base.map { $0 as Any } ?? NSNull(), "use_dora": false, "layers_to_transform": NSNull(),
            "layers_pattern": NSNull(), "rank_pattern": [String: Any](), "alpha_pattern": [String: Any](), "revision": NSNull(),
        ]
        return [
            (configFile, try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])),
            (weightsFile, try SafetensorsWriter.encode(named, metadata: ["format": "pt"])),
        ]
    }

    /// Reads the adapter files of `directory`: the configuration and the tensors under the model's adapter names.
    /// What AlignerKit cannot run (DoRA, trained biases, extra saved modules, per-layer ranks, fan-in-fan-out layers)
    /// is refused by name.
    public static func read(from directory: URL) throws -> (config: LoRAConfig, weights: [String: Tensor], base: String?) {
        let url = directory.appendingPathComponent(configFile)
        func bad(_ m: String) -> FileError { FileError(file: url.path, message: m, kind: .badData) }
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw FileError(file: url.path, message: "cannot read: \(error.localizedDescription)", kind: .missing) }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { throw bad("not a JSON object") }
        guard (root["peft_type"] as? String)?.uppercased() == "LORA" else { throw bad("peft_type is \(root["peft_type"] ?? "missing"), not LORA") }
        guard let r = root["r"] as? Int, let alpha = (root["lora_alpha"] as? NSNumber)?.doubleValue else { throw bad("needs r (an integer) and lora_alpha (a number)") }
        let targets: [String]
        if let list = root["target_modules"] as? [String] { targets = list.sorted() }
        else if let one = root["target_modules"] as? String { targets = [one] }
        else { throw bad("target_modules must be a list of module names or \"all-linear\"") }
        for (key, ok) in [("use_dora", root["use_dora"] as? Bool != true), ("bias", (root["bias"] as? String ?? "none") == "none"),
                          ("fan_in_fan_out", root["fan_in_fan_out"] as? Bool != true),
                          ("modules_to_save", root["modules_to_save"] == nil || root["modules_to_save"] is NSNull),
                          ("layers_to_transform", root["layers_to_transform"] == nil || root["layers_to_transform"] is NSNull),
                          ("rank_pattern", (root["rank_pattern"] as? [String: Any])?.isEmpty ?? true),
                          ("alpha_pattern", (root["alpha_pattern"] as? [String: Any])?.isEmpty ?? true)] where !ok {
            throw bad("\(key) = \(root[key]!) is not supported by AlignerKit (plain LoRA on whole projections only)")
        }
        let config = LoRAConfig(rank: r, alpha: alpha, dropout: (root["lora_dropout"] as? NSNumber)?.doubleValue ?? 0, targets: targets,
                                rsLoRA: root["use_rslora"] as? Bool ?? false)
        do { try config.validate() } catch let e as ModelInputError { throw bad("\(e.field): \(e.message)") }
        var weights: [String: Tensor] = [:]
        for (name, tensor) in try SafetensorsWeights(directory.appendingPathComponent(weightsFile)).weights() {
            // PEFT writes `<prefix><path>.lora_A.weight`; older versions kept the adapter name (`.lora_A.default.weight`).
            let plain = name.replacingOccurrences(of: ".default.weight", with: ".weight")
            guard plain.hasPrefix(prefix) else { throw bad("\(weightsFile): tensor '\(name)' is not under \(prefix)") }
            weights[String(plain.dropFirst(prefix.count))] = tensor
        }
        return (config, weights, root["base_model_name_or_path"] as? String)
    }
}

/// The pretrained base a LoRA checkpoint refers to instead of holding its frozen weights (`base_model.json`): its path,
/// the size and CRC-32 of each of its files when the run started, and the pad token added to it, if any. Loading checks
/// the files and rebuilds the weights exactly as training did.
public struct BaseReference: Codable, Equatable, Sendable {
    public static let file = "base_model.json"
    /// `model.init_from` as the recipe gave it.
    public var path: String
    public var files: [FileFingerprints.File]
    /// The pad token training added when the base had none (`tokenizer.pad`), else nil.
    public var addedPad: String?

    /// Fingerprints the base named `path` (as the recipe gave it), whose files are at `location` (a GGUF file or a
    /// model folder: `RunLocator.modelLocation(path)`).
    public static func record(path: String, location: String, addedPad: String?) throws -> BaseReference {
        BaseReference(path: path, files: try FileFingerprints.record([(role: "base model", path: location)]).files, addedPad: addedPad)
    }

    /// Where the fingerprinted files are: the GGUF file, or the folder that holds them (the checkpoint a run folder
    /// named when training started, even if the run has a newer best checkpoint since).
    func location(checkpoint: String) throws -> String {
        guard let first = files.first else {
            throw FileError(file: checkpoint, message: "\(BaseReference.file) lists no file of the base \(path)", kind: .badData)
        }
        return PretrainedBase.isGGUF(first.path) ? first.path : URL(fileURLWithPath: first.path).deletingLastPathComponent().path
    }

    /// The base's weights as training saw them, after checking that its files are unchanged. `expected` (the
    /// checkpoint's config.json) must be the configuration they give.
    public func weights(expected: LlamaConfig, in checkpoint: String) throws -> [String: Tensor] {
        let now = try FileFingerprints.record(files.map { (role: "base model", path: $0.path) })
        if let change = now.differences(from: FileFingerprints(files: files)) {
            throw FileError(file: checkpoint, message: "the checkpoint holds adapters for the base \(path), which has changed since: \(change)", kind: .badData)
        }
        let base = try PretrainedBase(path: location(checkpoint: checkpoint))
        var (config, weights) = (base.config, base.weights)
        if let pad = addedPad { (config, weights, _, _) = addPadTokenIfMissing(config: config, weights: weights, tokenizer: base.tokenizer, specialTokens: base.specialTokens, padName: pad) }
        guard config == expected else {
            throw FileError(file: checkpoint, message: "config.json does not describe the base \(path) it refers to", kind: .badData)
        }
        return weights
    }
}

/// Writes an Aligner's adapters as a PEFT adapter folder (`aligner export --format peft`).
public enum PEFTExport {
    /// What an export wrote.
    public struct Summary: Sendable {
        /// `base_model_name_or_path`: the pretrained base the adapters were trained on, or the `base` subfolder.
        public var base: String
        /// Whether the frozen weights were written into `base/` (they are not a pretrained base's).
        public var wroteBase: Bool
        public var adapterTensors: Int
    }

    /// Writes `adapter_config.json`, `adapter_model.safetensors`, the tokenizer files and a README into `directory`
    /// (replaced atomically as `HuggingFaceExport` does). When the checkpoint refers to its pretrained base, that base is
    /// named; otherwise (a base trained from scratch, or a full stage before the LoRA stage) the frozen weights are
    /// written as a Hugging Face model into `directory/base` and named.
    public static func export(_ bundle: AlignerBundle, to directory: URL) throws -> Summary {
        guard bundle.model.lora != nil else {
            throw FileError(file: bundle.source.path, message: "has no adapters (trained with finetune = \"full\"); export it with --format hf or gguf", kind: .badData)
        }
        let target = directory.standardizedFileURL
        let referenceURL = bundle.source.appendingPathComponent(BaseReference.file)
        let reference = (try? Data(contentsOf: referenceURL)).flatMap { try? JSONDecoder().decode(BaseReference.self, from: $0) }
        let base = reference.map { URL(fileURLWithPath: $0.path).standardizedFileURL.path } ?? target.appendingPathComponent("base").path
        let files = try PEFTAdapter.files(of: bundle.model, base: base)
        try HuggingFaceExport.writeFolder(directory, marker: PEFTAdapter.configFile, kind: "a PEFT adapter folder") { dir in
            for (name, data) in files { try data.write(to: dir.appendingPathComponent(name), options: .atomic) }
            try HuggingFaceExport.writeTokenizer(bundle, to: dir)
            if reference == nil {
                let frozen = try LlamaModel(config: bundle.model.config, weights: bundle.model.parameters)
                let baseBundle = AlignerBundle(model: frozen, tokenizer: bundle.tokenizer, specialTokens: bundle.specialTokens, template: bundle.template,
                                               source: bundle.source, recipe: bundle.recipe, baseChatTemplate: bundle.baseChatTemplate, chat: bundle.chat)
                let baseDir = dir.appendingPathComponent("base")
                try FileManager.default.createDirectory(at: baseDir, withIntermediateDirectories: true)
                try HuggingFaceExport.write(baseBundle, to: baseDir, figures: nil)
            }
            try readme(bundle, base: base, wroteBase: reference == nil).write(to: dir.appendingPathComponent("README.md"), atomically: true, encoding: .utf8)
        }
        return Summary(base: base, wroteBase: reference == nil, adapterTensors: bundle.model.adapterNames.count)
    }

    static func readme(_ b: AlignerBundle, base: String, wroteBase: Bool) -> String {
        let lora = b.model.lora!
        return """
        ---
        library_name: peft
        tags: [aligner, alignerkit, lora]
        ---

        # Aligner LoRA adapters (AlignerKit)

        LoRA adapters (r \(lora.rank), alpha \(lora.alpha)\(lora.rsLoRA ? ", rsLoRA" : ""), on \((try? lora.modules(available: b.model.linearModules).joined(separator: ", ")) ?? "")) of an
        Aligner trained with AlignerKit. Base: `\(base)`\(wroteBase ? " (the frozen weights, written beside the adapters)" : "").
        The tokenizer files here are the Aligner's (its prompt template is in tokenizer_config.json).

        ```python
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer
        base = AutoModelForCausalLM.from_pretrained(BASE)  # a GGUF base: from_pretrained(folder, gguf_file=name)
        model = PeftModel.from_pretrained(base, ADAPTER_FOLDER)
        tok = AutoTokenizer.from_pretrained(ADAPTER_FOLDER)
        ```

        """
    }
}
