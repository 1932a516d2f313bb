import AlignerFiles
import AlignerModel
import AlignerSafetensors
import AlignerTensor
import AlignerTokenizers
import Foundation

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
