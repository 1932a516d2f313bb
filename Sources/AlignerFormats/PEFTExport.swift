import AlignerFiles
import AlignerModel
import AlignerSafetensors
import AlignerTensor
import AlignerTokenizers
import Foundation

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
                // The frozen weights as a plain causal language model (the Aligner's prompt is the adapter folder's).
                let baseDir = dir.appendingPathComponent("base")
                try FileSystemFailure.createFolder(baseDir.path)
                try HuggingFaceExport.writeModelFiles(frozen, tokenizer: bundle.tokenizer, specialTokens: bundle.specialTokens, to: baseDir)
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
