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
        try FileSystemFailure.checkInputFile(url.path)
        do { data = try Data(contentsOf: url) } catch { throw FileSystemFailure.error(error, path: url.path, action: "read") }
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
