import AlignerData
import AlignerFiles
import AlignerFormats
import AlignerModel
import AlignerRecipes
import AlignerRuns
import AlignerTensor
import AlignerTokenizers
import Foundation

/// What every run of a recipe prepares before training, Aligner or reward model: the records, their split (held
/// out by question), the tokenizer and the model's configuration (a pretrained base's, or the recipe's for a model
/// trained from scratch).
struct RunPreparation {
    let recipe: Recipe
    let runDirectory: URL
    /// Whether this process writes the run folder (rank 0).
    let writes: Bool
    let say: (String) -> Void

    /// The tokenizer, special tokens and configuration of the model a run trains, with its initial weights when it
    /// starts from a pretrained base.
    struct ModelSetup {
        var tokenizer: Tokenizer
        var specials: SpecialTokens
        var config: LlamaConfig
        var initialWeights: [String: Tensor]?
        /// The chat template prompts are rendered through (`data.chat_template = "base"`).
        var chat: ChatPrompt?
        /// The pretrained base, fingerprinted, when LoRA checkpoints refer to it.
        var base: BaseReference?
        /// The id padding is written with (the pad token, else EOS).
        var padId: Int
    }

    var tokenizerURL: URL { runDirectory.appendingPathComponent("tokenizer.json") }

    /// The records of `data.train`, one list per file (deduplicated within a file; `data.limit` applied to the
    /// files in order).
    func records() throws -> [[QACRecord]] {
        let fields = FieldNames(question: recipe.data.fields[0], answer: recipe.data.fields[1], correction: recipe.data.fields[2])
        var sources: [[QACRecord]] = []
        var left = recipe.data.limit > 0 ? recipe.data.limit : Int.max
        for path in recipe.data.train {
            let load = try RecordReader.read(path: path, fields: fields, policy: recipe.data.badRecords)
            say("data: \(path): \(load.records.count) records (\(load.duplicates) duplicates removed, \(load.skippedTotal) bad skipped)")
            sources.append(Array(load.records.prefix(left)))
            left -= sources.last!.count
        }
        return sources
    }

    /// The records split into training, held-out (by question, from `data.split_seed`; each file on its own) and
    /// warm-up sets; written to the run folder's `splits/`.
    func splits(_ sources: [[QACRecord]], warmupPercent: Double) throws -> DataSplits {
        let holdOut: DataSplits.HoldOut = recipe.data.evalCount > 0 ? .count(recipe.data.evalCount) : .fraction(recipe.data.evalFraction)
        let splits = try DataSplits.make(sources: sources, holdOut: holdOut, warmupPercent: warmupPercent, seed: UInt64(recipe.seed),
                                         holdOutSeed: UInt64(recipe.data.splitSeed >= 0 ? recipe.data.splitSeed : recipe.seed))
        if writes { try splits.write(to: runDirectory.appendingPathComponent("splits")) }
        return splits
    }

    /// The tokenizer and configuration: `model.init_from`'s (a pad token added when it has none), or, from scratch,
    /// the run's own tokenizer (when resuming), `tokenizer.path`, or byte-level BPE trained on the training split.
    func model(splits: DataSplits, resuming: Bool, loraReference: Bool, chatTemplate: Bool) throws -> ModelSetup {
        var tokenizer: Tokenizer
        var specials: SpecialTokens
        var config: LlamaConfig
        var initialWeights: [String: Tensor]?
        var chat: ChatPrompt?
        var reference: BaseReference?
        if recipe.model.initFrom != "scratch" {
            let location = try RunLocator.modelLocation(recipe.model.initFrom)
            let base = try PretrainedBase(path: location)
            let hasPad = base.specialTokens.pad.map { base.tokenizer.id(of: $0) != nil } ?? false
            if loraReference {
                reference = try BaseReference.record(path: RunLocator.pinnedName(recipe.model.initFrom, location: location), location: location, addedPad: hasPad ? nil : recipe.tokenizer.pad)
            }
            (config, initialWeights, tokenizer, specials) = addPadTokenIfMissing(
                config: base.config, weights: base.weights, tokenizer: base.tokenizer, specialTokens: base.specialTokens, padName: recipe.tokenizer.pad)
            say("model: \(recipe.model.initFrom) (\(config.parameterCount) parameters)")
            if chatTemplate {
                guard let source = base.chatTemplate else {
                    throw RecipeError(key: "data.chat_template", message: "\(recipe.model.initFrom) has no chat template (chat_template.jinja or chat_template in tokenizer_config.json)")
                }
                do { chat = try ChatPrompt(source: source, bosToken: specials.bos, eosToken: specials.eos) } catch let e as SettingError {
                    throw RecipeError(key: "data.chat_template", message: "\(recipe.model.initFrom): \(e.message)")
                }
                say("prompts: the \(try recipe.promptTemplate().name) instruction as a user message through the chat template of \(recipe.model.initFrom)")
            }
        } else {
            if resuming, FileManager.default.fileExists(atPath: tokenizerURL.path) {
                // The run's own tokenizer; a fresh run never reuses one left by an earlier, failed start.
                tokenizer = try Tokenizer.load(from: tokenizerURL)
            } else if !recipe.tokenizer.path.isEmpty {
                tokenizer = try Tokenizer.load(from: URL(fileURLWithPath: recipe.tokenizer.path))
            } else {
                let texts = splits.train.flatMap { [$0.question, $0.answer, $0.correction] }
                tokenizer = try BPETrainer(vocabSize: recipe.tokenizer.vocabSize, specialTokens: recipe.tokenizer.specialTokens,
                                           minFrequency: recipe.tokenizer.minFrequency).train(texts)
                say("tokenizer: trained byte-level BPE on the training split, vocabulary \(tokenizer.vocabularySize)")
            }
            specials = SpecialTokens(bos: recipe.tokenizer.bos, eos: recipe.tokenizer.eos, pad: recipe.tokenizer.pad)
            for (key, name) in [("tokenizer.eos", specials.eos), ("tokenizer.pad", specials.pad)] where tokenizer.id(of: name!) == nil {
                throw RecipeError(key: key, message: "'\(name!)' is not a token of the tokenizer")
            }
            if let bos = specials.bos, tokenizer.id(of: bos) == nil { specials.bos = nil }
            let m = recipe.model
            config = LlamaConfig(
                vocabSize: tokenizer.vocabularySize, hiddenSize: m.hiddenSize, intermediateSize: m.intermediateSize,
                numHiddenLayers: m.numHiddenLayers, numAttentionHeads: m.numAttentionHeads, numKeyValueHeads: m.numKeyValueHeads,
                rmsNormEps: m.rmsNormEps, ropeTheta: m.ropeTheta, maxPositionEmbeddings: m.maxPositionEmbeddings,
                tieWordEmbeddings: m.tieWordEmbeddings, bosTokenId: specials.bos.flatMap { tokenizer.id(of: $0) },
                eosTokenIds: [tokenizer.id(of: specials.eos!)!], padTokenId: tokenizer.id(of: specials.pad!),
                initializerRange: m.initializerRange)
        }
        try config.validate()
        guard recipe.data.maxLength <= config.maxPositionEmbeddings else {
            throw RecipeError(key: "data.max_length", message: "\(recipe.data.maxLength) exceeds the model's max_position_embeddings \(config.maxPositionEmbeddings)")
        }
        let padId = tokenizer.id(of: specials.pad ?? specials.eos!)!
        return ModelSetup(tokenizer: tokenizer, specials: specials, config: config, initialWeights: initialWeights, chat: chat, base: reference, padId: padId)
    }

    /// The files a run reads: its data files, a tokenizer file, and the folder (or GGUF file) of the model it starts
    /// from; fingerprinted when it starts and compared when it resumes.
    func inputPaths() throws -> [(role: String, path: String)] {
        var paths = recipe.data.train.map { (role: "data file", path: $0) }
        if recipe.model.initFrom == "scratch" {
            if !recipe.tokenizer.path.isEmpty { paths.append((role: "tokenizer", path: recipe.tokenizer.path)) }
        } else {
            paths.append((role: "base model", path: try RunLocator.modelLocation(recipe.model.initFrom)))
        }
        return paths
    }

    /// The run's own files, fingerprinted in `run-files.json` when it starts and checked when it resumes: its
    /// tokenizer and its splits.
    var ownFilesURL: URL { runDirectory.appendingPathComponent("run-files.json") }
    var ownFiles: [(role: String, path: String)] {
        [(role: "the run's tokenizer", path: tokenizerURL.path), (role: "the run's splits", path: runDirectory.appendingPathComponent("splits").path)]
    }

    /// Records the fingerprints of the run's tokenizer and splits (a fresh start, once both are written).
    func recordOwnFiles() throws {
        guard writes else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(encoder.encode(FileFingerprints.record(ownFiles)), to: ownFilesURL)
    }

    /// On resume: the run's tokenizer and splits must be the ones it started with (checked before they are used and
    /// again after they are made anew, which must reproduce them); a swapped or edited file is refused, naming it.
    func checkOwnFiles() throws {
        guard let data = try? Data(contentsOf: ownFilesURL) else {
            say("note: \(ownFilesURL.path) is missing (a run started by an older AlignerKit); the run's tokenizer and splits cannot be compared")
            return
        }
        guard let recorded = try? JSONDecoder().decode(FileFingerprints.self, from: data) else {
            throw FileError(file: ownFilesURL.path, message: "is damaged (not the fingerprints of the run's files); pass --restart to train the run afresh", kind: .badData)
        }
        let now: FileFingerprints
        do { now = try FileFingerprints.record(ownFiles) } catch let e as FileError {
            throw FileError(file: e.file, message: "\(e.message): the run cannot be resumed without it. Restore it, or pass --restart to train the run afresh", kind: e.kind)
        }
        if let change = now.differences(from: recorded) {
            throw FileError(file: runDirectory.path, message: "cannot resume: \(change). Restore the run's own files, or pass --restart to train the run afresh", kind: .badData)
        }
    }

    /// Writes the run's tokenizer (`tokenizer.json`) into the run folder (created if needed).
    func saveTokenizer(_ tokenizer: Tokenizer) throws {
        guard writes else { return }
        try FileSystemFailure.createFolder(runDirectory.path)
        try tokenizer.save(to: tokenizerURL)
    }
}
