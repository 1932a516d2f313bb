import AlignerData
import AlignerFiles
import AlignerFormats
import AlignerMeasures
import AlignerModel
import AlignerRecipes
import AlignerRuns
import AlignerSafetensors
import AlignerTensor
import AlignerTokenizers
import Foundation

/// One evaluation of a reward model on the held-out pairs during a run.
public struct RewardEvalPoint: Codable, Equatable, Sendable {
    public var step: Int
    public var evaluation: RewardEvaluation
}

/// Everything a finished reward-model run reports (also `result.json` in its folder).
public struct RewardResult: Codable, Sendable {
    public var kind = "reward_model"
    public var name: String
    /// Pairs trained on and held out (by question).
    public var trainPairs: Int
    public var evalPairs: Int
    /// Records left out because their two responses are the same text (no preference to learn).
    public var identicalPairsSkipped: Int
    public var steps: Int
    /// Held-out pairs before training and after the last step.
    public var initial: RewardEvaluation
    public var final: RewardEvaluation
    public var evalCurve: [RewardEvalPoint]
    /// Held-out accuracy of "the shorter response is better" (length alone; ties half).
    public var shorterResponseBaseline: Double
    public var tokensSeen: Int
    public var wallSeconds: Double
    public var runDirectory: String
    public var finalCheckpoint: String
    /// The exported reward model (Hugging Face sequence-classification folder): what `--judge` takes.
    public var model: String
    public var peakResidentMiB: Double
    /// `Recipe.fingerprint(for: .reward)`.
    public var recipeFingerprint: String
    /// With several data files: the final held-out evaluation per file (absent with one file, and in older results).
    public var perSource: [SourceEvaluation]?
}

/// `aligner reward train`: a reward model (a decoder from scratch or from `model.init_from`, with a scalar head)
/// trained with the Bradley-Terry loss on the recipe's Q-A-C records read as preferences (correction better than
/// answer), pairs held out by question as for Aligners; evaluation (pairwise accuracy, mean margin), metrics,
/// atomic checkpoints and exact resume; at the end the model is exported to `<run>/model` for `--judge`.
public final class RewardTrainer {
    public let recipe: Recipe
    public let runDirectory: URL
    public var progress: ProgressPrinter
    public var quiet = false
    public var compute: ComputeContext
    /// Stop (with a checkpoint) after this many steps of this process: a hook for tests of resumption.
    public var stopAfterSteps: Int?

    public init(recipe: Recipe, runDirectory: URL? = nil, isTerminal: Bool? = nil) {
        self.recipe = recipe
        self.runDirectory = runDirectory ?? URL(fileURLWithPath: recipe.outputDir).appendingPathComponent(recipe.name)
        progress = ProgressPrinter(every: recipe.train.logEvery, isTerminal: isTerminal ?? (isatty(STDOUT_FILENO) != 0))
        compute = Trainer.computeContext(for: recipe)
    }

    func say(_ s: String) { if !quiet { progress.message(s) } }

    /// Runs (or, with `resume`, continues) the training; `restart` deletes what the run folder holds first.
    public func run(resume: Bool = false, restart: Bool = false) throws -> RewardResult {
        try compute.run { try runInContext(resume: resume && !restart, restart: restart) }
    }

    func runInContext(resume: Bool, restart: Bool) throws -> RewardResult {
        let folder = try RunFolder(directory: runDirectory, say: say)
        if restart, try folder.clear() { say("--restart: removed what \(runDirectory.path) held; starting afresh") }
        let latest = try folder.startingPoint(resume: resume)
        if latest != nil { try folder.checkSameRecipe(recipe, kind: .reward) }
        if let latest, let done = finishedResult(folder, at: latest) {
            say("\(runDirectory.path) has already finished; nothing to resume")
            return done
        }
        let preparation = RunPreparation(recipe: recipe, runDirectory: runDirectory, writes: true, say: say)
        let inputs = try FileFingerprints.record(preparation.inputPaths())
        if let latest { try folder.checkResumable(inputs: inputs, from: latest, say: say) } else {
            if resume { say("no checkpoint to resume in \(folder.checkpoints.directory.path); starting from the beginning") }
            try folder.recordStart(recipe, inputs: inputs)
        }

        // Data, tokenizer, pairs.
        let splits = try preparation.splits(preparation.records(), warmupPercent: 0)
        say("splits: \(splits.train.count) train, \(splits.eval.count) eval records (held out by question)")
        let settings = recipe.reward.stage
        let setup = try preparation.model(splits: splits, resuming: latest != nil, loraReference: settings.finetune == .lora, chatTemplate: false)
        let config = setup.config
        try MemoryBudget.check(bytes: config.memoryEstimate(training: true, batch: 2 * settings.batchSize, time: recipe.data.maxLength),
                               for: "training this reward model (\(config.parameterCount) parameters, \(settings.batchSize) pairs of up to \(recipe.data.maxLength) tokens)")
        try preparation.saveTokenizer(setup.tokenizer)
        let builder = try RewardExampleBuilder(tokenizer: setup.tokenizer, specialTokens: setup.specials, maxLength: recipe.data.maxLength,
                                               template: recipe.reward.questionTemplate)
        func pairs(_ records: [QACRecord]) -> (pairs: [PreferencePair], identical: Int) {
            var out: [PreferencePair] = [], identical = 0
            for r in records {
                let p = builder.pair(r)
                if p.better == p.worse { identical += 1 } else { out.append(p) }
            }
            return (out, identical)
        }
        var (train, trainIdentical) = pairs(splits.train)
        let nonAnswerRecords = Self.nonAnswerRecords(splits.train, share: recipe.reward.nonAnswers, seed: UInt64(recipe.seed))
        let offTopicRecords = Self.offTopicRecords(splits.train, sourceSizes: splits.sourceCounts.map(\.train), share: recipe.reward.offTopic,
                                                   seed: UInt64(recipe.seed))
        if !offTopicRecords.isEmpty {
            train += pairs(offTopicRecords).pairs
            say("off-topic pairs (reward.off_topic = \(recipe.reward.offTopic)): \(offTopicRecords.count) from training records, reference better than another question's reference from the same file")
        }
        if !nonAnswerRecords.isEmpty {
            train += pairs(nonAnswerRecords).pairs
            say("non-answer pairs (reward.non_answers = \(recipe.reward.nonAnswers)): \(nonAnswerRecords.count) from training records, reference better than " + NonAnswers.kinds.joined(separator: ", "))
        }
        // Held-out pairs source by source (the split keeps each file's records together), with each pair's source.
        var eval: [PreferencePair] = [], evalSource: [Int] = [], evalIdentical = 0, offset = 0
        for (k, count) in splits.sourceCounts.enumerated() {
            let part = pairs(Array(splits.eval[offset..<(offset + count.eval)]))
            eval += part.pairs
            evalSource += [Int](repeating: k, count: part.pairs.count)
            evalIdentical += part.identical
            offset += count.eval
        }
        say("pairs (max \(recipe.data.maxLength) tokens per sequence; a long question loses its beginning first): \(train.count) train, \(eval.count) eval; \(trainIdentical + evalIdentical) left out (both responses the same text)")
        say(String(format: "held-out baseline: preferring the shorter response scores %.4f (length alone)", RewardEvaluation.shorterResponseAccuracy(eval)))
        guard !train.isEmpty, !eval.isEmpty else { throw RecipeError(key: "data.train", message: "no preference pair to train on or to evaluate (train \(train.count), eval \(eval.count))") }

        // The model: a new head on the base's decoder, or everything from the seed.
        let seed = UInt64(recipe.seed)
        let model = try setup.initialWeights.map { try RewardModel(config: config, decoderWeights: $0, seed: seed) }
            ?? RewardModel(config: config, seed: seed)
        model.decoder.activationCheckpointing = recipe.train.activationCheckpointing
        if settings.finetune == .lora {
            do { try model.decoder.attachAdapters(recipe.lora.config, seed: seed &+ 0x4C_6F_52_41) } catch let e as ModelInputError {
                throw RecipeError(key: e.field, message: e.message)
            }
        }
        if compute.matmul == .bf16 {
            say("matrix products in bf16: \(MatmulPrecision.bf16Engine)\(MatmulPrecision.bf16IsNative ? "" : "; slower than fp32 on this CPU")")
        }
        compute.pool.limitBytes = min(4 << 30, max(256 << 20, 8 * config.parameterCount))
        // A checkpoint's weights (and adapters) go in before the optimiser is built over the trainable tensors.
        let restored = try latest.map { try Self.load($0, into: model) }
        var loop = try RewardTrainingLoop(model: model, pairs: train, settings: settings, seed: seed)
        loop.dropoutSeed = seed
        var state = TrainerState(stage: 1, step: 0, totalSteps: loop.totalSteps, position: BatchPosition(), optimizerStep: 0,
                                 tokensSeen: 0, stageDone: false, elapsed: 0, stage1Steps: 0)
        if let latest, let (saved, optimizer) = restored {
            guard saved.totalSteps == loop.totalSteps else {
                throw FileError(file: latest.path, message: "plans \(saved.totalSteps) steps, this run \(loop.totalSteps) (the data or recipe changed)", kind: .badData)
            }
            try loop.restore(optimizer: optimizer, optimizerStep: saved.optimizerStep, step: saved.step, position: saved.position)
            state = saved
            say("resuming from \(latest.path): step \(state.step)/\(state.totalSteps)")
        }
        try folder.startMetrics(resumingAt: latest != nil ? state : nil)
        let evalBatch = max(1, settings.batchSize)
        var lastMargins: [Double] = []
        func evaluate(step: Int) throws -> RewardEvaluation {
            lastMargins = try RewardEvaluation.margins(model, eval, batchSize: evalBatch)
            let e = RewardEvaluation.summary(of: lastMargins)
            try folder.metrics.append(["stage": 1, "step": step, "eval_accuracy": e.accuracy, "eval_margin": e.meanMargin, "eval_loss": e.loss, "eval_pairs": e.pairs])
            say(String(format: "step %d: held-out pairwise accuracy %.4f (%d pairs), mean margin %.4f, loss %.4f", step, e.accuracy, e.pairs, e.meanMargin, e.loss))
            return e
        }
        if latest == nil { _ = try evaluate(step: 0) }
        let base = settings.finetune == .lora ? setup.base : nil
        let tokenizerJSON = try setup.tokenizer.jsonData()
        var lastCheckpoint = latest
        func checkpoint() throws -> URL {
            let url = try folder.checkpoints.save(files: try Self.files(model: model, loop: loop, state: state, recipe: recipe, tokenizerJSON: tokenizerJSON,
                                                                        specials: setup.specials, base: base),
                                                  state: state, keep: recipe.train.keepCheckpoints)
            lastCheckpoint = url
            return url
        }

        say("reward model: \(train.count) pairs, \(loop.totalSteps) steps (\(loop.batchesPerEpoch) batches of \(settings.batchSize) pairs per epoch, grad_accum \(settings.gradAccum)), lr \(settings.lr) \(settings.schedule.rawValue) (\(loop.warmupSteps) warm-up steps), \(settings.finetune.rawValue)")
        if let lora = model.decoder.lora {
            let trainable = model.trainableParameters.values.reduce(0) { $0 + $1.count }
            say("  LoRA r \(lora.rank), alpha \(lora.alpha), dropout \(lora.dropout): \(trainable) trainable parameters (head included)")
        }
        let clock = ContinuousClock()
        let started = clock.now
        let elapsedBefore = state.elapsed
        var stepsHere = 0, tokensHere = 0
        while loop.step < loop.totalSteps {
            let stats = try loop.takeStep()
            guard stats.isFinite else {
                throw TrainingStop.diverged(stage: 1, step: stats.step + 1, loss: stats.loss, lastCheckpoint: lastCheckpoint)
            }
            stepsHere += 1
            tokensHere += stats.tokens
            state.step = loop.step
            state.position = loop.position
            state.optimizerStep = loop.optimizer.step
            state.tokensSeen += stats.tokens
            state.elapsed = elapsedBefore + (clock.now - started).inSeconds
            let seconds = max((clock.now - started).inSeconds, 1e-9)
            if stats.step % recipe.train.logEvery == 0 || stats.step == loop.totalSteps {
                try folder.metrics.append(["stage": 1, "step": stats.step, "loss": stats.loss, "accuracy": stats.accuracy, "grad_norm": stats.gradNorm,
                                           "lr": stats.learningRate, "tokens": state.tokensSeen, "elapsed": state.elapsed])
            }
            if !quiet {
                progress.update(stage: 1, step: stats.step, total: loop.totalSteps, loss: stats.loss, lr: stats.learningRate, gradNorm: stats.gradNorm,
                                tokensPerSecond: Double(tokensHere) / seconds, elapsed: state.elapsed,
                                eta: Double(loop.totalSteps - stats.step) * seconds / Double(stepsHere), label: "reward")
            }
            let atEnd = loop.step == loop.totalSteps
            if atEnd { state.stageDone = true }
            if recipe.train.evalEvery > 0 && stats.step % recipe.train.evalEvery == 0 && !atEnd { _ = try evaluate(step: stats.step) }
            if atEnd || (recipe.train.checkpointEvery > 0 && stats.step % recipe.train.checkpointEvery == 0) { _ = try checkpoint() }
            if atEnd { break }
            if Interrupt.isRequested { throw TrainingStop.interrupted(checkpoint: try checkpoint()) }
            if let n = stopAfterSteps, n > 0, stepsHere >= n { throw TrainingStop.stoppedAfterSteps(checkpoint: try checkpoint()) }
        }
        if lastCheckpoint == nil || !state.stageDone { _ = try checkpoint() }
        let final = try evaluate(step: loop.step)
        var perSource: [SourceEvaluation]?
        if splits.sourceCounts.count > 1 {
            perSource = recipe.data.train.indices.map { k in
                let idx = evalSource.indices.filter { evalSource[$0] == k }
                let e = RewardEvaluation.summary(of: idx.map { lastMargins[$0] })
                let s = SourceEvaluation(source: recipe.data.train[k], evaluation: e,
                                         accuracyInterval: Intervals.wilson(Int((e.accuracy * Double(e.pairs)).rounded(.down)), e.pairs),
                                         shorterResponseBaseline: RewardEvaluation.shorterResponseAccuracy(idx.map { eval[$0] }))
                say(String(format: "  %@: held-out accuracy %.4f [%.3f, %.3f] on %d pairs (shorter response: %.4f)", s.source, e.accuracy,
                           s.accuracyInterval[0], s.accuracyInterval[1], e.pairs, s.shorterResponseBaseline))
                return s
            }
        }

        // The export `--judge` reads: adapters merged into the decoder.
        if model.decoder.lora != nil { model.decoder.mergeAdapters() }
        let exportURL = runDirectory.appendingPathComponent(RunFolder.rewardModelFolder)
        try RewardExport.export(model, tokenizer: setup.tokenizer, specialTokens: setup.specials, questionTemplate: recipe.reward.questionTemplate,
                                maxLength: recipe.data.maxLength, to: exportURL)
        let points = MetricsLog.lines(folder.metricsURL).compactMap { line -> RewardEvalPoint? in
            let o = line.object
            guard let step = o["step"] as? Int, let a = MetricsLog.number(o["eval_accuracy"]), let m = MetricsLog.number(o["eval_margin"]),
                  let l = MetricsLog.number(o["eval_loss"]), let n = o["eval_pairs"] as? Int else { return nil }
            return RewardEvalPoint(step: step, evaluation: RewardEvaluation(pairs: n, accuracy: a, meanMargin: m, loss: l))
        }
        let result = RewardResult(
            name: recipe.name, trainPairs: train.count, evalPairs: eval.count, identicalPairsSkipped: trainIdentical + evalIdentical,
            steps: loop.totalSteps, initial: points.first?.evaluation ?? final, final: final, evalCurve: points,
            shorterResponseBaseline: RewardEvaluation.shorterResponseAccuracy(eval), tokensSeen: state.tokensSeen,
            wallSeconds: state.elapsed, runDirectory: runDirectory.path, finalCheckpoint: lastCheckpoint?.path ?? "", model: exportURL.path,
            peakResidentMiB: Double(peakResidentBytes()) / 1_048_576, recipeFingerprint: recipe.fingerprint(for: .reward), perSource: perSource)
        try AtomicFile.write(ResultJSON.encode(result), to: folder.resultURL)
        return result
    }

    /// Records "reference better than a non-answer" for a seeded `share` of the training records: kinds in turn, each
    /// kind's texts in turn; a declining kind (refusal, not knowing, lecture) is replaced by the next other kind where
    /// the reference itself is a refusal.
    static func nonAnswerRecords(_ train: [QACRecord], share: Double, seed: UInt64) -> [QACRecord] {
        guard share > 0, !train.isEmpty else { return [] }
        let chosen = seededOrder(train.count, seed: seed &+ 0x4E4F_4E41).prefix(Int((share * Double(train.count)).rounded())).sorted()
        let kinds = NonAnswers.kinds
        return chosen.enumerated().map { j, i in
            let r = train[i]
            var k = j % kinds.count
            if RefusalDetector.isRefusal(r.correction) {
                while NonAnswers.decliningKinds.contains(kinds[k]) { k = (k + 1) % kinds.count }
            }
            return QACRecord(question: r.question, answer: NonAnswers.make(kinds[k], for: r, variant: j / kinds.count), correction: r.correction)
        }
    }

    /// Records "reference better than another record's reference" for a seeded `share` of the training records: each
    /// chosen record is paired with the next chosen one (in a seeded order) whose question and reference differ, taken
    /// from the same source (`sourceSizes`: the training records are each source's in turn, as `DataSplits` keeps
    /// them), so that the worse response reads like a right one (an empathetic reply against a harmlessness answer
    /// would be told apart by its style, not by whether it answers the question). The same `share` of every source.
    static func offTopicRecords(_ train: [QACRecord], sourceSizes: [Int]? = nil, share: Double, seed: UInt64) -> [QACRecord] {
        guard share > 0, train.count > 1 else { return [] }
        let sizes = sourceSizes ?? [train.count]
        precondition(sizes.reduce(0, +) == train.count, "source sizes add up to the training records")
        var out: [QACRecord] = [], start = 0
        for (k, size) in sizes.enumerated() {
            let part = Array(train[start..<(start + size)])
            start += size
            guard part.count > 1 else { continue }
            let order = seededOrder(part.count, seed: seed &+ 0x4F46_4654 &+ UInt64(k))
            let n = Int((share * Double(part.count)).rounded())
            out += order.prefix(n).enumerated().compactMap { j, i in
                let r = part[i]
                // The first record after this one in the seeded order with another question and another reference.
                for step in 1..<order.count {
                    let other = part[order[(j + step) % order.count]]
                    if other.question != r.question && other.correction != r.correction {
                        return QACRecord(question: r.question, answer: other.correction, correction: r.correction)
                    }
                }
                return nil
            }
        }
        return out
    }

    /// 0..<count in the seeded order the extra pairs are chosen in.
    static func seededOrder(_ count: Int, seed: UInt64) -> [Int] {
        var rng = SeededGenerator(seed: seed)
        return seededShuffle(Array(0..<count), &rng)
    }

    /// The saved result when the checkpoint `latest` ends the run.
    func finishedResult(_ folder: RunFolder, at latest: URL) -> RewardResult? {
        guard let state = try? CheckpointStore.loadState(latest).state, state.stageDone,
              FileManager.default.fileExists(atPath: runDirectory.appendingPathComponent(RunFolder.rewardModelFolder).appendingPathComponent("config.json").path)
        else { return nil }
        return try? ResultJSON.decode(RewardResult.self, from: Data(contentsOf: folder.resultURL))
    }

    /// A reward checkpoint's files. Weights: `model.safetensors` with every parameter in Hugging Face's
    /// sequence-classification names; with LoRA, PEFT's adapter files and, in `model.safetensors`, the head alone when
    /// the frozen decoder is the pretrained base (`base_model.json` refers to it), else the head and the decoder.
    static func files(model: RewardModel, loop: RewardTrainingLoop, state: TrainerState, recipe: Recipe, tokenizerJSON: Data,
                      specials: SpecialTokens, base: BaseReference?) throws -> [(String, Data)] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var files: [(String, Data)] = []
        let referToBase = model.decoder.lora != nil ? base : nil
        if let referToBase { files.append((BaseReference.file, try encoder.encode(referToBase))) }
        files.append(("model.safetensors", try SafetensorsWriter.encode(referToBase != nil ? [RewardModel.scoreName: model.score] : model.parameters,
                                                                         metadata: ["format": "pt"])))
        if model.decoder.lora != nil { files += try PEFTAdapter.files(of: model.decoder, base: base?.path) }
        return files + (try CheckpointStore.trainingFiles(optimizer: loop.optimizer, state: state, config: model.config, recipe: recipe,
                                                          tokenizerJSON: tokenizerJSON))
            + (try CheckpointStore.tokenizerFiles(specials: specials, chat: nil))
    }

    /// Restores a reward checkpoint into `model` (built as the run builds it); returns its state and optimiser tensors.
    static func load(_ url: URL, into model: RewardModel) throws -> (state: TrainerState, optimizer: [String: Tensor]) {
        if let problem = CheckpointStore.verify(url) { throw FileError(file: url.path, message: "damaged checkpoint: \(problem)", kind: .badData) }
        model.decoder.detachAdapters()
        let weights = try SafetensorsFile(contentsOf: url.appendingPathComponent("model.safetensors"))
        let names = Set(weights.names)
        let params = model.parameters
        let decoderNames = model.parameterNames.filter { $0 != RewardModel.scoreName }
        let hasDecoder = decoderNames.contains { names.contains($0) }
        for name in (hasDecoder ? model.parameterNames : [RewardModel.scoreName]) {
            let t = try weights.tensor(name)
            guard t.shape == params[name]!.shape else { throw WeightError(name: name, message: "checkpoint shape \(t.shape) differs from the model's") }
            params[name]!.assign(from: t)
        }
        if PEFTAdapter.isPresent(in: url) {
            let adapters = try PEFTAdapter.read(from: url)
            try model.decoder.attachAdapters(adapters.config, weights: adapters.weights)
        } else if !hasDecoder {
            throw FileError(file: url.path, message: "holds neither the decoder's weights nor adapters", kind: .badData)
        }
        return try CheckpointStore.loadState(url)
    }
}
