import AlignerFiles
import AlignerModel
import AlignerSafetensors
import AlignerTensor
import AlignerTokenizers
import Foundation

/// A Hugging Face Llama model directory: `config.json`, `model.safetensors` (or shards listed in
/// `model.safetensors.index.json`; F32, F16 or BF16), `tokenizer.json` and optionally `tokenizer_config.json`. A LoRA
/// checkpoint also holds PEFT adapter files, and instead of `model.safetensors` it may refer to its pretrained base
/// (`base_model.json`).
public struct HuggingFaceDirectory {
    public let config: LlamaConfig
    /// The weights (of the frozen base, when the folder holds adapters).
    public let weights: [String: Tensor]
    /// Low-rank adapters on those weights (PEFT's files in the folder), not merged.
    public let adapters: (config: LoRAConfig, weights: [String: Tensor])?
    public let tokenizer: Tokenizer
    public let specialTokens: SpecialTokens
    /// The directory's chat template (Jinja): `chat_template.jinja`, or `chat_template` in `tokenizer_config.json`
    /// (a string, or the one named "default" of a list). Kept on export.
    public let chatTemplate: String?
    /// Whether `tokenizer_config.json` holds an AlignerKit prompt template (the directory is an AlignerKit export).
    public let isAlignerExport: Bool

    public init(path: String) throws {
        let dir = URL(fileURLWithPath: path)
        config = try LlamaConfig.load(from: dir.appendingPathComponent("config.json"))
        let fm = FileManager.default
        weights = try ModelFolderWeights.source(in: dir, config: config).weights()
        if PEFTAdapter.isPresent(in: dir) {
            let read = try PEFTAdapter.read(from: dir)
            adapters = (read.config, read.weights)
        } else {
            adapters = nil
        }
        let tok = try Tokenizer.load(from: dir.appendingPathComponent("tokenizer.json"))
        guard tok.vocabularySize <= config.vocabSize else {
            throw ConfigError(field: "vocab_size", message: "\(config.vocabSize) in \(dir.appendingPathComponent("config.json").path) is smaller than the \(tok.vocabularySize) ids of \(dir.appendingPathComponent("tokenizer.json").path): the tokenizer can produce ids the model has no embedding for")
        }
        tokenizer = tok
        let tc = dir.appendingPathComponent("tokenizer_config.json")
        specialTokens = fm.fileExists(atPath: tc.path) ? try SpecialTokens.load(tokenizerConfig: tc, for: tok) : SpecialTokens.guess(for: tok)
        let config = (try? Data(contentsOf: tc)).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] } ?? [:]
        isAlignerExport = config["aligner_prompt_template"] is String
        let jinja = dir.appendingPathComponent("chat_template.jinja")
        if let text = try? String(contentsOf: jinja, encoding: .utf8) {
            chatTemplate = text
        } else if let text = config["chat_template"] as? String {
            chatTemplate = text
        } else if let named = config["chat_template"] as? [[String: Any]] {
            chatTemplate = named.first { $0["name"] as? String == "default" }?["template"] as? String
        } else {
            chatTemplate = nil
        }
    }
}

/// Adds a pad token when the tokenizer has none: a new special token after the last id, whose embedding row (and LM
/// head row, when untied) is the mean of the existing rows, as the reference implementation does.
public func addPadTokenIfMissing(
    config: LlamaConfig, weights: [String: Tensor], tokenizer: Tokenizer, specialTokens: SpecialTokens, padName: String = "<pad>"
) -> (LlamaConfig, [String: Tensor], Tokenizer, SpecialTokens) {
    if let pad = specialTokens.pad, tokenizer.id(of: pad) != nil { return (config, weights, tokenizer, specialTokens) }
    let id = max(tokenizer.vocabularySize, config.vocabSize)
    let tok = tokenizer.adding(AddedToken(id: id, content: padName, special: true))
    var c = config
    c.vocabSize = id + 1
    c.padTokenId = id
    var w = weights
    func grow(_ name: String) {
        guard let t = weights[name] else { return }
        let (rows, width) = (t.shape[0], t.shape[1])
        var values = t.scalars
        values += [Float](repeating: 0, count: (c.vocabSize - rows) * width)
        for j in 0..<width {
            var s = 0.0
            for r in 0..<rows { s += Double(values[r * width + j]) }
            let mean = Float(s / Double(rows))
            for r in rows..<c.vocabSize { values[r * width + j] = mean }
        }
        w[name] = Tensor(values, shape: [c.vocabSize, width])
    }
    grow("model.embed_tokens.weight")
    if !config.tieWordEmbeddings { grow("lm_head.weight") }
    var s = specialTokens
    s.pad = padName
    return (c, w, tok, s)
}
