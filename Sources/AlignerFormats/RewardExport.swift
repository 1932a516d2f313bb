import AlignerData
import AlignerFiles
import AlignerModel
import AlignerSafetensors
import AlignerTensor
import AlignerTokenizers
import Foundation

/// Reward models as Hugging Face folders in the sequence-classification layout that transformers'
/// `AutoModelForSequenceClassification` loads: `config.json` (architectures `<Family>ForSequenceClassification`,
/// one label), `model.safetensors` (the decoder's weights without a language-model head, and `score.weight`), the
/// tokenizer files (no chat template and no Aligner prompt: a reward model has neither); and `alignerkit_reward.json`,
/// the question template the model was trained with (transformers ignores it).
public enum RewardExport {
    /// The file holding the question template.
    public static let settingsFile = "alignerkit_reward.json"

    /// Writes `model` into `directory` (new, empty, or an earlier export, replaced whole). `questionTemplate`:
    /// "conversation" or a text with {question} (how the model reads a question; the response follows it).
    /// `maxLength`: the longest sequence the model was trained on, recorded for judges (nil: not recorded).
    public static func export(_ model: RewardModel, tokenizer: Tokenizer, specialTokens: SpecialTokens, questionTemplate: String = "conversation",
                              maxLength: Int? = nil, to directory: URL) throws {
        try HuggingFaceExport.writeFolder(directory, marker: "config.json", kind: "a model folder") { dir in
            guard var config = try JSONSerialization.jsonObject(with: model.config.jsonData()) as? [String: Any] else {
                throw FileError(file: dir.path, message: "the model's configuration does not encode as a JSON object")
            }
            config["architectures"] = [model.config.family.architecture.replacingOccurrences(of: "ForCausalLM", with: "ForSequenceClassification")]
            config["id2label"] = ["0": "LABEL_0"]
            config["label2id"] = ["LABEL_0": 0]
            try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
                .write(to: dir.appendingPathComponent("config.json"), options: .atomic)
            try SafetensorsWriter.write(model.parameters, metadata: ["format": "pt"], to: dir.appendingPathComponent("model.safetensors"))
            try HuggingFaceExport.writeTokenizerFiles(tokenizer, specialTokens: specialTokens, maxLength: model.config.maxPositionEmbeddings, to: dir)
            var settings: [String: Any] = ["format": "alignerkit-reward-model", "version": 1, "question_template": questionTemplate]
            if let maxLength { settings["max_length"] = maxLength }
            try JSONSerialization.data(withJSONObject: settings, options: [.prettyPrinted, .sortedKeys])
                .write(to: dir.appendingPathComponent(settingsFile), options: .atomic)
        }
    }

    /// The question template recorded in a reward model folder ("conversation" when the folder has none, e.g. one
    /// written by transformers).
    public static func questionTemplate(in directory: URL) throws -> String { try settings(in: directory).template }

    /// The question template and the training length recorded in a reward model folder (defaults when it has none).
    public static func settings(in directory: URL) throws -> (template: String, maxLength: Int?) {
        let url = directory.appendingPathComponent(settingsFile)
        guard let data = try? Data(contentsOf: url) else { return ("conversation", nil) }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any], let t = root["question_template"] as? String,
              t == "conversation" || t.contains("{question}") else {
            throw FileError(file: url.path, message: "needs \"question_template\": \"conversation\" or a text with {question}", kind: .badData)
        }
        let length = root["max_length"] as? Int
        if let length, length < 8 { throw FileError(file: url.path, message: "max_length \(length) is below 8", kind: .badData) }
        return (t, length)
    }

    /// A reward model folder (an export, or one transformers wrote): the model, its tokenizer and special tokens.
    public static func load(path: String) throws -> (model: RewardModel, tokenizer: Tokenizer, specialTokens: SpecialTokens) {
        let folder = try HuggingFaceDirectory(path: path)
        guard folder.weights[RewardModel.scoreName] != nil else {
            throw WeightError(name: path, message: "is not a reward model (no \(RewardModel.scoreName); a language model's folder?)")
        }
        return (try RewardModel(config: folder.config, weights: folder.weights), folder.tokenizer, folder.specialTokens)
    }
}
