import AlignerData
import AlignerFiles
import AlignerFormats
import AlignerModel
import AlignerOptim
import AlignerRecipes
import AlignerSafetensors
import AlignerTensor
import AlignerTokenizers
import Foundation

/// Where training stands, saved in every checkpoint.
public struct TrainerState: Codable, Equatable, Sendable {
    /// 1 = identity warm-up, 2 = Q-A-C.
    public var stage: Int
    /// Optimiser steps done in this stage.
    public var step: Int
    /// Total steps this stage will take.
    public var totalSteps: Int
    /// Position in this stage's batch stream.
    public var position: BatchPosition
    /// The optimiser's own step count.
    public var optimizerStep: Int
    /// Tokens trained on so far, over both stages.
    public var tokensSeen: Int
    /// Whether this stage is finished.
    public var stageDone: Bool
    /// Seconds of training so far (wall time, both stages).
    public var elapsed: Double
    /// Steps of stage 1 (for a global step axis), fixed once stage 1 is planned.
    public var stage1Steps: Int

    /// nil when every field is in range; otherwise the first that is not (a hand-edited or foreign checkpoint).
    public var problem: String? {
        if stage != 1 && stage != 2 { return "stage \(stage) is not 1 or 2" }
        if totalSteps < 0 || totalSteps > 100_000_000 { return "total_steps \(totalSteps) is out of range" }
        if step < 0 || step > totalSteps { return "step \(step) is not within 0...\(totalSteps)" }
        if position.epoch < 0 || position.epoch > 100_000_000 || position.cursor < 0 { return "batch position \(position) is out of range" }
        if optimizerStep < 0 || tokensSeen < 0 || stage1Steps < 0 || stage1Steps > 100_000_000 { return "a count is negative or out of range" }
        if !(elapsed.isFinite && elapsed >= 0) { return "elapsed \(elapsed) is not a finite, non-negative number" }
        return nil
    }

    public init(stage: Int, step: Int, totalSteps: Int, position: BatchPosition, optimizerStep: Int, tokensSeen: Int, stageDone: Bool, elapsed: Double, stage1Steps: Int) {
        self.stage = stage
        self.step = step
        self.totalSteps = totalSteps
        self.position = position
        self.optimizerStep = optimizerStep
        self.tokensSeen = tokensSeen
        self.stageDone = stageDone
        self.elapsed = elapsed
        self.stage1Steps = stage1Steps
    }
}

/// Checkpoints of a run: written to a temporary folder, flushed, renamed into place with a manifest of sizes and
/// CRC-32 checksums; on load, folders without a manifest or with a mismatch are skipped with a warning.
public struct CheckpointStore {
    public let directory: URL
    public var warn: (String) -> Void = { FileHandle.standardError.write(Data(("warning: " + $0 + "\n").utf8)) }

    public init(directory: URL) { self.directory = directory }

    /// One checkpoint's folder name; sorting names sorts checkpoints in training order.
    public static func folderName(_ s: TrainerState) -> String {
        String(format: "ckpt-s%d-%07d", s.stage, s.step)
    }

    /// Writes a checkpoint atomically and keeps only the newest `keep`. A model with adapters is written as PEFT's
    /// adapter files plus its frozen weights, or, when `base` is given (the frozen weights are that pretrained base's,
    /// unchanged), plus a reference to it instead.
    /// With `name` (`bestName`), the checkpoint is written under that name instead, replacing the previous one
    /// atomically, and is not counted among the newest.
    public func save(model: LlamaModel, optimizer: AdamW, state: TrainerState, recipe: Recipe, tokenizerJSON: Data,
                     extraFiles: [(String, Data)] = [], base: BaseReference? = nil, keep: Int, as name: String? = nil) throws -> URL {
        try save(files: Self.files(model: model, optimizer: optimizer, state: state, recipe: recipe, tokenizerJSON: tokenizerJSON,
                                   extraFiles: extraFiles, base: base), state: state, keep: keep, as: name)
    }

    /// The files of an Aligner checkpoint: the weights (`model.safetensors`; with adapters on the untouched pretrained
    /// `base`, `base_model.json` instead), PEFT's adapter files when it has adapters, `trainingFiles`, and `extraFiles`.
    public static func files(model: LlamaModel, optimizer: AdamW, state: TrainerState, recipe: Recipe, tokenizerJSON: Data,
                             extraFiles: [(String, Data)] = [], base: BaseReference? = nil) throws -> [(String, Data)] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var weights: [(String, Data)] = []
        if let base, model.lora != nil {
            weights.append((BaseReference.file, try encoder.encode(base)))
        } else {
            weights.append(("model.safetensors", try SafetensorsWriter.encode(model.parameters, metadata: ["format": "pt"])))
        }
        if model.lora != nil { weights += try PEFTAdapter.files(of: model, base: base?.path) }
        return weights + (try Self.trainingFiles(optimizer: optimizer, state: state, config: model.config, recipe: recipe,
                                                 tokenizerJSON: tokenizerJSON)) + extraFiles
    }

    /// What every checkpoint holds besides its weights: the optimiser's state, the trainer state, the model's
    /// configuration, the recipe and the tokenizer.
    public static func trainingFiles(optimizer: AdamW, state: TrainerState, config: LlamaConfig, recipe: Recipe, tokenizerJSON: Data) throws -> [(String, Data)] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return [
            ("optimizer.safetensors", try SafetensorsWriter.encode(optimizer.stateDict().tensors)),
            ("trainer_state.json", try encoder.encode(state)),
            ("config.json", try config.jsonData()),
            ("recipe.json", try recipe.jsonData()),
            ("tokenizer.json", tokenizerJSON),
        ]
    }

    /// `tokenizer_config.json` with the special tokens examples were built with, and `chat_template.jinja` when
    /// prompts go through a chat template.
    public static func tokenizerFiles(specials: SpecialTokens, chat: ChatPrompt?) throws -> [(String, Data)] {
        func token(_ s: String?) -> Any { s.map { $0 as Any } ?? NSNull() }
        var config: [String: Any] = ["bos_token": token(specials.bos), "eos_token": token(specials.eos), "pad_token": token(specials.pad)]
        if let chat { config["chat_template"] = chat.template.source }
        var files = [("tokenizer_config.json", try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]))]
        if let chat { files.append(("chat_template.jinja", Data(chat.template.source.utf8))) }
        return files
    }

    /// Writes `files` as one checkpoint atomically (with a manifest of sizes and checksums) and keeps only the newest
    /// `keep`; named after `state` or, with `name`, under that name (replacing the previous one atomically).
    public func save(files: [(String, Data)], state: TrainerState, keep: Int, as name: String? = nil) throws -> URL {
        let fm = FileManager.default
        try FileSystemFailure.createFolder(directory.path)
        let final = directory.appendingPathComponent(name ?? Self.folderName(state))
        let tmp = directory.appendingPathComponent(".tmp-\(name ?? Self.folderName(state))-\(getpid())")
        try? fm.removeItem(at: tmp)
        try FileSystemFailure.createFolder(tmp.path)
        do {
            try write(files, into: tmp, final: final)
        } catch {
            try? fm.removeItem(at: tmp)
            let previous = complete(verify: false).last.map { "the previous checkpoint \($0.lastPathComponent) is intact" } ?? "no earlier checkpoint exists"
            throw FileError(file: final.path, message: "cannot write this checkpoint (\(error)); \(previous)")
        }
        AtomicFile.syncDirectory(directory)
        // Keep the newest `keep` complete checkpoints.
        let all = complete(verify: false)
        for old in all.dropLast(keep) { try? fm.removeItem(at: old) }
        return final
    }

    /// Writes `files` and their manifest into `tmp`, then renames it to `final`.
    private func write(_ files: [(String, Data)], into tmp: URL, final: URL) throws {
        let fm = FileManager.default
        var manifest: [String: [String: Int]] = [:]
        for (name, data) in files {
            try AtomicFile.write(data, to: tmp.appendingPathComponent(name))
            manifest[name] = ["bytes": data.count, "crc32": Int(Checksum.crc32(data))]
        }
        let manifestData = try JSONSerialization.data(withJSONObject: ["files": manifest, "complete": true], options: [.sortedKeys, .prettyPrinted])
        try AtomicFile.write(manifestData, to: tmp.appendingPathComponent("manifest.json"))
        if fm.fileExists(atPath: final.path) {
            // Swap the new folder into place in one step (the old one is never missing), then remove the old one.
            if Self.exchange(tmp.path, final.path) {
                try? fm.removeItem(at: tmp)
                return
            }
            try fm.removeItem(at: final)
        }
        guard rename(tmp.path, final.path) == 0 else {
            throw FileError(file: final.path, message: "cannot move the checkpoint into place: \(String(cString: strerror(errno)))")
        }
    }

    /// glibc's renameat2 (looked up at run time: Swift's Glibc module does not declare it).
    private typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
    private static let renameat2: RenameAt2? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "renameat2").map { unsafeBitCast($0, to: RenameAt2.self) }

    /// Swaps two paths in one step (renameat2 with RENAME_EXCHANGE); false where the system cannot.
    static func exchange(_ a: String, _ b: String) -> Bool {
        guard let renameat2 else { return false }
        let atFDCWD: Int32 = -100, renameExchange: UInt32 = 2
        return renameat2(atFDCWD, a, atFDCWD, b, renameExchange) == 0
    }

    /// The folder name of the best checkpoint.
    public static let bestName = "best"

    /// The best checkpoint, when there is one and it is intact.
    public func best() -> URL? {
        let url = directory.appendingPathComponent(Self.bestName)
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent("manifest.json").path) else { return nil }
        if let problem = Self.verify(url) { warn("skipping checkpoint \(url.path): \(problem)"); return nil }
        return url
    }

    /// Checkpoint folders with a manifest, oldest first; with `verify`, those whose files do not match are skipped.
    public func complete(verify: Bool) -> [URL] {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory.path) else { return [] }
        var out: [URL] = []
        for name in names.sorted() where name.hasPrefix("ckpt-") {
            let url = directory.appendingPathComponent(name)
            if !verify { if fm.fileExists(atPath: url.appendingPathComponent("manifest.json").path) { out.append(url) }; continue }
            if let problem = Self.verify(url) { warn("skipping checkpoint \(url.path): \(problem)") } else { out.append(url) }
        }
        return out
    }

    /// nil when the checkpoint is complete and intact; otherwise what is wrong.
    public static func verify(_ url: URL) -> String? {
        guard let data = try? Data(contentsOf: url.appendingPathComponent("manifest.json")),
              let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              root["complete"] as? Bool == true, let files = root["files"] as? [String: [String: Int]]
        else { return "no complete manifest (interrupted while writing?)" }
        for (name, info) in files.sorted(by: { $0.key < $1.key }) {
            guard !name.isEmpty, !name.contains("/"), !name.hasPrefix(".") else { return "the manifest names '\(name)', not a file of the checkpoint" }
            guard let d = try? Data(contentsOf: url.appendingPathComponent(name)) else { return "\(name) is missing" }
            if d.count != info["bytes"] { return "\(name) has \(d.count) bytes, the manifest says \(info["bytes"] ?? -1)" }
            if Int(Checksum.crc32(d)) != info["crc32"] { return "\(name) fails its checksum" }
        }
        return nil
    }

    /// The newest intact checkpoint, if any.
    public func newest() -> URL? { complete(verify: true).last }

    /// Restores model weights from a checkpoint; returns its trainer state and the optimiser state tensors (for
    /// `AdamW.load`, with `state.optimizerStep`). `verify: false` skips the checksums when the caller just checked them.
    /// A checkpoint with adapters replaces the model's adapters with its own; one that refers to its base instead of
    /// holding the frozen weights leaves the model's weights as they are (the caller built the model from that base).
    public static func load(_ url: URL, into model: LlamaModel, verify check: Bool = true) throws
        -> (state: TrainerState, optimizer: [String: Tensor]) {
        if check, let problem = verify(url) { throw FileError(file: url.path, message: "damaged checkpoint: \(problem)", kind: .badData) }
        let weightsURL = url.appendingPathComponent("model.safetensors")
        let refersToBase = !FileManager.default.fileExists(atPath: weightsURL.path) && FileManager.default.fileExists(atPath: url.appendingPathComponent(BaseReference.file).path)
        model.detachAdapters()
        if PEFTAdapter.isPresent(in: url) || refersToBase {
            let adapters = try PEFTAdapter.read(from: url)
            if !refersToBase { try assign(weightsURL, to: model) }
            try model.attachAdapters(adapters.config, weights: adapters.weights)
        } else {
            try assign(weightsURL, to: model)
        }
        return try loadState(url)
    }

    /// A checkpoint's trainer state (checked to be in range) and optimiser state tensors.
    public static func loadState(_ url: URL) throws -> (state: TrainerState, optimizer: [String: Tensor]) {
        let stateURL = url.appendingPathComponent("trainer_state.json")
        let state: TrainerState
        do { state = try JSONDecoder().decode(TrainerState.self, from: Data(contentsOf: stateURL)) } catch {
            throw FileError(file: stateURL.path, message: "not a trainer state: \(error.localizedDescription)", kind: .badData)
        }
        if let problem = state.problem { throw FileError(file: stateURL.path, message: problem, kind: .badData) }
        let optimizer = try SafetensorsFile(contentsOf: url.appendingPathComponent("optimizer.safetensors")).allTensors()
        return (state, optimizer)
    }

    /// Copies every parameter of `model` from the safetensors file at `url`.
    static func assign(_ url: URL, to model: LlamaModel) throws {
        try SafetensorsWeights(url).assign(model.parameterNames, to: model.parameters)
    }
}
