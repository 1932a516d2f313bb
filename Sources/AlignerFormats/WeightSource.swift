import AlignerFiles
import AlignerGGUF
import AlignerModel
import AlignerSafetensors
import AlignerTensor
import Foundation

/// Where a model's weights come from. Every backend gives the same thing, Float32 tensors by Hugging Face name, and
/// every loader in AlignerKit reads weights through one (in the spirit of candle's `VarBuilder` backends):
///
/// - `SafetensorsWeights`: one safetensors file (`model.safetensors`, a checkpoint's weights, PEFT's adapter file);
/// - `ShardedSafetensorsWeights`: the shards a `model.safetensors.index.json` lists;
/// - `GGUFWeights`: a GGUF file, its llama.cpp names renamed and the rows of q and k un-permuted (`GGUFLayout`);
/// - `ReferencedBaseWeights`: the pretrained base a LoRA checkpoint refers to (`base_model.json`), after checking
///   its files are the ones training read;
/// - `ModelFolderWeights.source(in:config:)` picks the one a Hugging Face folder or checkpoint holds.
///
/// Adapters are read the same way (`PEFTAdapter.read`: a `SafetensorsWeights` with PEFT's names) and attached to the
/// weights by the model (`LlamaModel.attachAdapters`).
public protocol WeightSource {
    /// The file or folder the weights are read from, as messages name it.
    var origin: String { get }
    /// The names of the tensors it holds (reading no tensor data where the format allows).
    func names() throws -> [String]
    /// Every tensor, by its Hugging Face name, as Float32.
    func weights() throws -> [String: Tensor]
}

extension WeightSource {
    /// Copies the tensors `names` into `parameters` (the model's own tensors), refusing a missing tensor or another
    /// shape by name.
    public func assign(_ names: [String], to parameters: [String: Tensor]) throws {
        let all = try weights()
        for name in names {
            guard let t = all[name] else { throw WeightError(name: name, message: "missing from \(origin)") }
            guard let p = parameters[name] else { throw WeightError(name: name, message: "is not a parameter of the model") }
            guard t.shape == p.shape else { throw WeightError(name: name, message: "\(origin) has shape \(t.shape), the model \(p.shape)") }
            p.assign(from: t)
        }
    }
}

/// One safetensors file (F32, F16 or BF16).
public struct SafetensorsWeights: WeightSource {
    public let url: URL
    public init(_ url: URL) { self.url = url }
    public var origin: String { url.path }
    public func names() throws -> [String] { try SafetensorsFile(contentsOf: url).names }
    public func weights() throws -> [String: Tensor] { try SafetensorsFile(contentsOf: url).allTensors() }
}

/// The shards of a sharded Hugging Face checkpoint, as its `model.safetensors.index.json` maps names to files of
/// the same folder (no absolute paths, no parent folders, no subfolders); every listed tensor must be in its shard.
public struct ShardedSafetensorsWeights: WeightSource {
    public let index: URL
    public init(index: URL) { self.index = index }
    public var origin: String { index.path }

    func weightMap() throws -> [String: String] {
        guard let root = (try? JSONSerialization.jsonObject(with: Data(contentsOf: index))) as? [String: Any],
              let map = root["weight_map"] as? [String: String]
        else { throw WeightError(name: index.path, message: "not a safetensors index (no weight_map)") }
        for shard in Set(map.values) where shard.isEmpty || shard.contains("/") || shard == "." || shard == ".." {
            throw WeightError(name: index.path, message: "shard '\(shard)' is not a file name in this folder")
        }
        return map
    }

    public func names() throws -> [String] { try weightMap().keys.sorted() }

    public func weights() throws -> [String: Tensor] {
        let map = try weightMap()
        var weights: [String: Tensor] = [:]
        for shard in Set(map.values).sorted() {
            let f = try SafetensorsFile(contentsOf: index.deletingLastPathComponent().appendingPathComponent(shard))
            for name in f.names where map[name] == shard { weights[name] = try f.tensor(name) }
        }
        for name in map.keys where weights[name] == nil {
            throw WeightError(name: name, message: "listed in the index but missing from \(map[name]!)")
        }
        return weights
    }
}

/// The tensors of a GGUF file under Hugging Face's names for `config` (read from the same file by `GGUFModel`):
/// dequantised, renamed (`GGUFLayout.hfName`), q and k rows un-permuted for the families llama.cpp permutes, Gemma's
/// norm weights stored as `1 + w` given back as `w`; llama3's `rope_freqs.weight` is left out (the configuration gives
/// the same factors).
public struct GGUFWeights: WeightSource {
    public let file: GGUFFile
    public let config: LlamaConfig
    public init(file: GGUFFile, config: LlamaConfig) {
        self.file = file
        self.config = config
    }
    public var origin: String { file.path }

    func unknown(_ tensor: String) -> GGUFError {
        GGUFError(file: file.path, message: "tensor '\(tensor)' is not a tensor of a \(file.metadata["general.architecture"]?.stringValue ?? "?") model")
    }

    public func names() throws -> [String] {
        try file.tensors.filter { $0.name != "rope_freqs.weight" }.map { t in
            guard let name = GGUFLayout.hfName(t.name, family: config.family) else { throw unknown(t.name) }
            return name
        }
    }

    public func weights() throws -> [String: Tensor] {
        let family = config.family
        var weights: [String: Tensor] = [:]
        for t in file.tensors {
            if t.name == "rope_freqs.weight" { continue }  // llama3 rope factors; computed from the configuration instead
            guard let name = GGUFLayout.hfName(t.name, family: family) else { throw unknown(t.name) }
            var w = try file.tensor(t.name)
            if GGUFLayout.permutesQK(family) {
                if t.name.contains(".attn_q.") { w = GGUFLayout.permuteRows(w, heads: config.numAttentionHeads) }
                if t.name.contains(".attn_k.") { w = GGUFLayout.permuteRows(w, heads: config.numKeyValueHeads) }
            }
            if family == .gemma, t.name.hasSuffix("norm.weight") {
                for i in 0..<w.count { w.data[i] -= 1 }
            }
            weights[name] = w
        }
        return weights
    }
}

/// The frozen weights a LoRA checkpoint refers to instead of holding them (`base_model.json`): the pretrained base's,
/// read from the files training fingerprinted after checking they have not changed, with the pad token training
/// added; `expected` (the checkpoint's config.json) must be the configuration they give.
public struct ReferencedBaseWeights: WeightSource {
    public let reference: BaseReference
    public let expected: LlamaConfig
    /// The checkpoint folder that refers to the base (named in errors).
    public let checkpoint: String
    public init(reference: BaseReference, expected: LlamaConfig, checkpoint: String) {
        (self.reference, self.expected, self.checkpoint) = (reference, expected, checkpoint)
    }
    public var origin: String { reference.path }
    public func names() throws -> [String] { try weights().keys.sorted() }
    public func weights() throws -> [String: Tensor] { try reference.weights(expected: expected, in: checkpoint) }
}

/// The weights a Hugging Face model folder or checkpoint holds.
public enum ModelFolderWeights {
    /// `model.safetensors.index.json` (shards), else `model.safetensors`, else `base_model.json` (a LoRA checkpoint's
    /// reference to its pretrained base, whose configuration must be `config`).
    public static func source(in folder: URL, config: LlamaConfig) throws -> WeightSource {
        let fm = FileManager.default
        let index = folder.appendingPathComponent("model.safetensors.index.json")
        if fm.fileExists(atPath: index.path) { return ShardedSafetensorsWeights(index: index) }
        let single = folder.appendingPathComponent("model.safetensors")
        if fm.fileExists(atPath: single.path) { return SafetensorsWeights(single) }
        let reference = folder.appendingPathComponent(BaseReference.file)
        guard fm.fileExists(atPath: reference.path) else {
            throw WeightError(name: folder.path, message: "has neither model.safetensors nor model.safetensors.index.json")
        }
        do {
            let base = try JSONDecoder().decode(BaseReference.self, from: Data(contentsOf: reference))
            return ReferencedBaseWeights(reference: base, expected: config, checkpoint: folder.path)
        } catch {
            throw FileError(file: reference.path, message: "not a base reference: \(error.localizedDescription)", kind: .badData)
        }
    }
}
