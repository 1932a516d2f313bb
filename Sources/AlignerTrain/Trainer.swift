import AlignerData
import AlignerModel
import AlignerOptim
import AlignerTensor
import AlignerTokenizers
import Foundation

/// Why a run stopped early.
public enum TrainingStop: Error, CustomStringConvertible {
    case interrupted(checkpoint: URL)
    case stoppedAfterSteps(checkpoint: URL)
    case diverged(stage: Int, step: Int, loss: Double, lastCheckpoint: URL?)

    public var description: String {
        switch self {
        case .interrupted(let c): return "interrupted; checkpoint written to \(c.path) (resume with --resume)"
        case .stoppedAfterSteps(let c): return "stopped after train.stop_after_steps; checkpoint at \(c.path)"
        case .diverged(let stage, let step, let loss, let last):
            return "loss became \(loss) at stage \(stage) step \(step); stopped. Last good checkpoint: \(last?.path ?? "none") (lower the learning rate or raise clipping)"
        }
    }
}

/// Results of one stage.
public struct StageSummary: Codable, Equatable, Sendable {
    public var stage: Int
    public var steps: Int
    public var examples: Int
    public var finalTrainLoss: Double
    public var evalLoss: Double
    public var bestEvalLoss: Double
}

/// One evaluation during a run.
public struct EvalPoint: Codable, Equatable, Sendable {
    public var stage: Int
    public var step: Int
    public var globalStep: Int
    public var evalLoss: Double
}

/// Everything a finished run reports (also written as `result.json` in the run folder).
public struct RunResult: Codable, Sendable {
    public var name: String
    public var warmupPercent: Double
    public var warmupRecords: Int
    public var trainRecords: Int
    public var evalRecords: Int
    public var stages: [StageSummary]
    public var evalCurve: [EvalPoint]
    public var trainLosses: [Double]
    public var tokensSeen: Int
    public var wallSeconds: Double
    public var runDirectory: String
    public var finalCheckpoint: String
    /// Eval loss of the initial model, before any training.
    public var initialEvalLoss: Double

    public var bestEvalLoss: Double { evalCurve.map(\.evalLoss).min() ?? .nan }
}

/// Two-stage Aligner training: identity warm-up on Q-A-A (stage 1, skipped when p = 0), then Q-A-C (stage 2) from
/// the stage-1 weights, each with its own optimiser and schedule; evaluation, metrics, checkpoints and exact resume.
public final class Trainer {
    public let recipe: Recipe
    public let runDirectory: URL
    public var progress: ProgressPrinter
    /// Text lines for the log (default: stdout through the progress printer).
    public var quiet = false

    public init(recipe: Recipe, runDirectory: URL? = nil, isTerminal: Bool? = nil) {
        self.recipe = recipe
        self.runDirectory = runDirectory ?? URL(fileURLWithPath: recipe.outputDir).appendingPathComponent(recipe.name)
        progress = ProgressPrinter(every: recipe.train.logEvery, isTerminal: isTerminal ?? (isatty(STDOUT_FILENO) != 0))
    }

    func say(_ s: String) { if !quiet { progress.message(s) } }

    /// What the data preparation produced.
    public struct Prepared {
        public var splits: DataSplits
        public var tokenizer: Tokenizer
        public var specials: SpecialTokens
        public var config: LlamaConfig
        public var initialWeights: [String: Tensor]?
        public var eval: [Example]
        public var warmup: [Example]
        public var train: [Example]
        public var padId: Int
    }

    /// Reads the data, splits it, gets the tokenizer (loaded, or trained on the training split), builds examples.
    public func prepare(resuming: Bool = false) throws -> Prepared {
        let fields = FieldNames(question: recipe.data.fields[0], answer: recipe.data.fields[1], correction: recipe.data.fields[2])
        var records: [QACRecord] = []
        for path in recipe.data.train {
            let load = try RecordReader.read(path: path, fields: fields, policy: recipe.data.badRecords == "skip" ? .skip : .fail)
            say("data: \(path): \(load.records.count) records (\(load.duplicates) duplicates removed, \(load.skippedTotal) bad skipped)")
            records += load.records
        }
        if recipe.data.limit > 0 { records = Array(records.prefix(recipe.data.limit)) }
        let holdOut: DataSplits.HoldOut = recipe.data.evalCount > 0 ? .count(recipe.data.evalCount) : .fraction(recipe.data.evalFraction)
        let splits = try DataSplits.make(records, holdOut: holdOut, warmupPercent: recipe.data.warmupPercent, seed: UInt64(recipe.seed))
        try splits.write(to: runDirectory.appendingPathComponent("splits"))
        say("splits: \(splits.train.count) train, \(splits.eval.count) eval (held out by question), \(splits.warmup.count) identity warm-up (p = \(recipe.data.warmupPercent)%)")

        // Tokenizer and model configuration.
        var tokenizer: Tokenizer
        var specials: SpecialTokens
        var config: LlamaConfig
        var initialWeights: [String: Tensor]?
        let saved = runDirectory.appendingPathComponent("tokenizer.json")
        if recipe.model.initFrom != "scratch" {
            let hf = try HuggingFaceDirectory(path: AlignerBundle.resolve(recipe.model.initFrom).path)
            (config, initialWeights, tokenizer, specials) = addPadTokenIfMissing(
                config: hf.config, weights: hf.weights, tokenizer: hf.tokenizer, specialTokens: hf.specialTokens, padName: recipe.tokenizer.pad)
            say("model: \(recipe.model.initFrom) (\(config.parameterCount) parameters)")
        } else {
            if resuming, FileManager.default.fileExists(atPath: saved.path) {
                // The run's own tokenizer; a fresh run never reuses one left by an earlier, failed start.
                tokenizer = try Tokenizer.load(from: saved)
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
        // Weights, gradients, AdamW's moments and one batch's activations must fit before anything is allocated.
        let batchTokens = [recipe.stage1, recipe.stage2].map { s in s.batchTokens > 0 ? s.batchTokens : s.batchSize * recipe.data.maxLength }.max()!
        try MemoryBudget.check(bytes: config.memoryEstimate(training: true, batch: max(1, batchTokens / recipe.data.maxLength), time: recipe.data.maxLength),
                               for: "training this model (\(config.parameterCount) parameters, batches of up to \(batchTokens) tokens)")
        try FileManager.default.createDirectory(at: runDirectory, withIntermediateDirectories: true)
        try tokenizer.save(to: saved)
        guard recipe.data.maxLength <= config.maxPositionEmbeddings else {
            throw RecipeError(key: "data.max_length", message: "\(recipe.data.maxLength) exceeds the model's max_position_embeddings \(config.maxPositionEmbeddings)")
        }
        let builder = try ExampleBuilder(tokenizer: tokenizer, template: recipe.promptTemplate(), specialTokens: specials,
                                         maxLength: recipe.data.maxLength)
        let (eval, er) = builder.buildAll(splits.eval)
        let (warmup, wr) = builder.buildAll(splits.warmup)
        let (train, tr) = builder.buildAll(splits.train)
        say("examples (max \(recipe.data.maxLength) tokens): train \(tr.summary); warm-up \(wr.summary); eval \(er.summary)")
        guard !eval.isEmpty, !train.isEmpty else { throw RecipeError(key: "data.max_length", message: "no example fits") }
        let padId = tokenizer.id(of: specials.pad ?? specials.eos!)!
        return Prepared(splits: splits, tokenizer: tokenizer, specials: specials, config: config, initialWeights: initialWeights,
                        eval: eval, warmup: warmup, train: train, padId: padId)
    }

    /// Token-weighted mean loss of the corrections of `examples` (no gradients).
    public static func evaluate(_ model: LlamaModel, _ examples: [Example], batchSize: Int, padId: Int) throws -> Double {
        guard batchSize >= 1 else { throw RecipeError(key: "batch_size", message: "must be at least 1, got \(batchSize)") }
        var total = 0.0, counted = 0
        let stream = try BatchStream(examples: examples, size: .examples(batchSize), seed: 0, padId: padId, groupWindow: 1)
        var start = 0
        while start < examples.count {
            let idx = Array(start..<min(examples.count, start + batchSize))
            let b = stream.pad(idx)
            let loss = try withNoGrad { try model.loss(ids: b.ids, labels: b.labels, batch: b.batch, time: b.time, attentionMask: b.mask, reduction: .sum).loss }
            total += Double(loss.item)
            counted += b.countedTokens
            start += batchSize
        }
        return total / Double(max(counted, 1))
    }

    func stream(for examples: [Example], settings s: StageSettings, stage: Int, padId: Int) throws -> BatchStream {
        try BatchStream(examples: examples, size: s.batchTokens > 0 ? .tokens(s.batchTokens) : .examples(s.batchSize),
                        seed: UInt64(recipe.seed) &+ UInt64(stage) &* 7919, padId: padId)
    }

    func totalSteps(_ s: StageSettings, _ stream: BatchStream) -> Int {
        s.steps > 0 ? s.steps : max(1, Int((s.epochs * Double(stream.batchesPerEpoch) / Double(s.gradAccum)).rounded(.up)))
    }

    /// Runs (or, with `resume`, continues) the two stages.
    public func run(resume: Bool = false) throws -> RunResult {
        let fm = FileManager.default
        // One process at a time writes a run folder; what a killed writer left half-done is removed.
        let lock = try RunLock(folder: runDirectory)
        defer { withExtendedLifetime(lock) {} }
        for folder in ["", "checkpoints", "splits"] {
            for name in StoreFiles.removeStaleTemporaries(in: runDirectory.appendingPathComponent(folder), lockHeld: true) {
                say("removed \(folder.isEmpty ? "" : folder + "/")\(name), left by an interrupted process")
            }
        }
        let store = CheckpointStore(directory: runDirectory.appendingPathComponent("checkpoints"))
        let existing = store.complete(verify: false)
        if !resume && !existing.isEmpty {
            throw RecipeError(key: "name", message: "\(runDirectory.path) already has checkpoints; pass --resume to continue it or choose another name")
        }
        if threadsSetting > 0 { BLAS.threads = threadsSetting }
        let resultURL = runDirectory.appendingPathComponent("result.json")
        // Verified once here; loading below trusts it.
        let latest = resume ? store.newest() : nil
        if let latest,
           let state = try? JSONDecoder().decode(TrainerState.self, from: Data(contentsOf: latest.appendingPathComponent("trainer_state.json"))),
           state.stage == 2 && state.stageDone,
           let saved = try? ResultJSON.decode(RunResult.self, from: Data(contentsOf: resultURL)) {
            say("\(runDirectory.path) has already finished; nothing to resume")
            return saved
        }
        try fm.createDirectory(at: runDirectory, withIntermediateDirectories: true)
        // The files this run reads, fingerprinted; a resumed run must read the same ones.
        let inputsURL = runDirectory.appendingPathComponent("inputs.json")
        let inputs = try RunInputs.record(inputPaths())
        if let latest {
            if let data = try? Data(contentsOf: inputsURL), let recorded = try? JSONDecoder().decode(RunInputs.self, from: data) {
                if let change = inputs.differences(from: recorded) {
                    throw RecipeError(key: "data", message: "cannot resume \(runDirectory.path) from \(latest.lastPathComponent): \(change). Restore the original files, or start a new run (another name)")
                }
            } else {
                say("note: \(inputsURL.path) is missing (a run started by an older AlignerKit); the inputs cannot be compared")
            }
        } else {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try StoreFiles.writeSynced(encoder.encode(inputs), to: inputsURL)
        }
        try StoreFiles.writeSynced(recipe.jsonData(), to: runDirectory.appendingPathComponent("recipe.json"))
        let prepared = try prepare(resuming: latest != nil)
        let model = try prepared.initialWeights.map { try LlamaModel(config: prepared.config, weights: $0) }
            ?? LlamaModel(config: prepared.config, seed: UInt64(recipe.seed))
        let tokenizerJSON = try prepared.tokenizer.jsonData()
        let evalBatch = recipe.stage2.batchSize
        let metricsURL = runDirectory.appendingPathComponent("metrics.jsonl")

        let stages: [(Int, StageSettings, [Example])] =
            (prepared.warmup.isEmpty ? [] : [(1, recipe.stage1, prepared.warmup)]) + [(2, recipe.stage2, prepared.train)]
        var state: TrainerState
        var resumedFrom: URL?
        var optimizerToRestore: [String: Tensor]?
        let s1Steps = prepared.warmup.isEmpty ? 0 : totalSteps(recipe.stage1, try stream(for: prepared.warmup, settings: recipe.stage1, stage: 1, padId: prepared.padId))
        if let latest {
            // A resumed run must be the same run: only logging, checkpointing and stop settings may change.
            let saved = try Recipe.load(path: latest.appendingPathComponent("recipe.json").path)
            for (key, same) in [("seed", saved.seed == recipe.seed), ("data", saved.data == recipe.data),
                                ("tokenizer", saved.tokenizer == recipe.tokenizer), ("model", saved.model == recipe.model),
                                ("stage1", saved.stage1 == recipe.stage1), ("stage2", saved.stage2 == recipe.stage2)] where !same {
                throw RecipeError(key: key, message: "differs from the run being resumed (\(latest.path)/recipe.json); resume with the same recipe and overrides")
            }
            (state, optimizerToRestore) = try CheckpointStore.load(latest, into: model, verify: false)
            resumedFrom = latest
            say("resuming from \(latest.path): stage \(state.stage), step \(state.step)/\(state.totalSteps)")
            try truncateMetrics(metricsURL, after: state)
        } else {
            if resume { say("no checkpoint to resume in \(store.directory.path); starting from the beginning") }
            state = TrainerState(stage: stages[0].0, step: 0, totalSteps: 0, position: BatchPosition(), optimizerStep: 0,
                                 tokensSeen: 0, stageDone: false, elapsed: 0, stage1Steps: s1Steps)
            try? fm.removeItem(at: metricsURL)
        }
        let metrics = try MetricsLog(url: metricsURL)
        defer { metrics.close() }
        var result = RunResult(
            name: recipe.name, warmupPercent: recipe.data.warmupPercent, warmupRecords: prepared.splits.warmup.count,
            trainRecords: prepared.splits.train.count, evalRecords: prepared.splits.eval.count, stages: [], evalCurve: [],
            trainLosses: [], tokensSeen: 0, wallSeconds: 0, runDirectory: runDirectory.path, finalCheckpoint: "",
            initialEvalLoss: .nan)
        if resumedFrom == nil {
            result.initialEvalLoss = try Self.evaluate(model, prepared.eval, batchSize: evalBatch, padId: prepared.padId)
            try metrics.append(["stage": 0, "step": 0, "global_step": 0, "eval_loss": result.initialEvalLoss])
            say(String(format: "eval loss before training: %.4f", result.initialEvalLoss))
        }
        let clock = ContinuousClock()
        let wallStart = clock.now
        let elapsedBefore = state.elapsed
        func elapsedNow() -> Double {
            let d = clock.now - wallStart
            return elapsedBefore + d.inSeconds
        }
        var lastCheckpoint = resumedFrom
        var stepsThisProcess = 0

        for (stageNumber, settings, examples) in stages {
            if stageNumber < state.stage || (stageNumber == state.stage && state.stageDone) { continue }
            var batches = try stream(for: examples, settings: settings, stage: stageNumber, padId: prepared.padId)
            let total = totalSteps(settings, batches)
            let warmupSteps = settings.warmupSteps > 0 ? settings.warmupSteps : LearningRateSchedule.warmupSteps(ratio: settings.warmupRatio, totalSteps: total)
            let schedule: LearningRateSchedule = settings.schedule == "constant"
                ? .constant(warmupSteps: warmupSteps) : .cosine(warmupSteps: warmupSteps, totalSteps: total, minRatio: settings.minLRRatio)
            let optimizer = AdamW(groups: ParameterGroup.standard(model.parameters, order: model.parameterNames, weightDecay: Float(settings.weightDecay)),
                                  beta1: Float(settings.beta1), beta2: Float(settings.beta2), eps: Float(settings.eps))
            if stageNumber == state.stage && state.step > 0, let saved = optimizerToRestore {
                try optimizer.load(tensors: saved, step: state.optimizerStep, parameters: model.parameters)
                batches.position = state.position
            } else {
                state = TrainerState(stage: stageNumber, step: 0, totalSteps: total, position: BatchPosition(), optimizerStep: 0,
                                     tokensSeen: state.tokensSeen, stageDone: false, elapsed: state.elapsed, stage1Steps: s1Steps)
            }
            state.totalSteps = total
            say("stage \(stageNumber) (\(stageNumber == 1 ? "identity warm-up, Q-A-A" : "Q-A-C")): \(examples.count) examples, \(total) steps, \(batches.batchesPerEpoch) batches per epoch, lr \(settings.lr) \(settings.schedule) (\(warmupSteps) warm-up steps)")
            let stageStartTokens = state.tokensSeen
            let stageClockStart = clock.now
            let startStep = state.step

            func checkpoint() throws -> URL {
                state.position = batches.position
                state.optimizerStep = optimizer.step
                state.elapsed = elapsedNow()
                let url = try store.save(model: model, optimizer: optimizer, state: state, recipe: recipe,
                                         tokenizerJSON: tokenizerJSON, keep: recipe.train.keepCheckpoints)
                lastCheckpoint = url
                return url
            }

            while state.step < total {
                if Interrupt.isRequested { throw TrainingStop.interrupted(checkpoint: try checkpoint()) }
                var lossSum = 0.0, counted = 0, tokens = 0
                for _ in 0..<settings.gradAccum {
                    let b = batches.next()
                    let loss = try model.loss(ids: b.ids, labels: b.labels, batch: b.batch, time: b.time, attentionMask: b.mask, reduction: .sum).loss
                    loss.backward()
                    lossSum += Double(loss.item)
                    counted += b.countedTokens
                    tokens += b.mask.reduce(0) { $0 + ($1 ? 1 : 0) }
                }
                let params = model.orderedParameters
                scaleGradients(params, by: 1 / Float(max(counted, 1)))
                let norm = Double(clipGradientNorm(params, maxNorm: settings.clip > 0 ? Float(settings.clip) : .infinity))
                let lr = schedule.rate(at: state.step, base: Float(settings.lr))
                let trainLoss = lossSum / Double(max(counted, 1))
                guard trainLoss.isFinite, norm.isFinite else {
                    model.releaseGradients()
                    throw TrainingStop.diverged(stage: stageNumber, step: state.step + 1, loss: trainLoss.isFinite ? norm : trainLoss, lastCheckpoint: lastCheckpoint)
                }
                optimizer.update(model.parameters, lr: lr)
                model.releaseGradients()
                state.step += 1
                state.tokensSeen += tokens
                stepsThisProcess += 1
                let global = (stageNumber == 2 ? s1Steps : 0) + state.step
                let stageSeconds = (clock.now - stageClockStart).inSeconds
                let tps = Double(state.tokensSeen - stageStartTokens) / max(stageSeconds, 1e-9)
                let eta = stageSeconds / Double(state.step - startStep) * Double(total - state.step)
                try metrics.append(["stage": stageNumber, "step": state.step, "global_step": global, "loss": trainLoss, "lr": Double(lr),
                                "grad_norm": norm, "tokens": state.tokensSeen, "tokens_per_s": tps, "elapsed": elapsedNow()])
                if !quiet {
                    progress.update(stage: stageNumber, step: state.step, total: total, loss: trainLoss, lr: Double(lr), gradNorm: norm,
                                    tokensPerSecond: tps, elapsed: elapsedNow(), eta: eta)
                }
                let atEnd = state.step == total
                if (recipe.train.evalEvery > 0 && state.step % recipe.train.evalEvery == 0) || atEnd {
                    let lastEval = try Self.evaluate(model, prepared.eval, batchSize: evalBatch, padId: prepared.padId)
                    try metrics.append(["stage": stageNumber, "step": state.step, "global_step": global, "eval_loss": lastEval])
                    say(String(format: "stage %d step %d/%d: eval loss %.4f", stageNumber, state.step, total, lastEval))
                }
                if atEnd { state.stageDone = true }
                if atEnd || (recipe.train.checkpointEvery > 0 && state.step % recipe.train.checkpointEvery == 0) {
                    _ = try checkpoint()
                }
                if recipe.train.stopAfterSteps > 0 && stepsThisProcess >= recipe.train.stopAfterSteps && !(atEnd && stageNumber == 2) {
                    throw TrainingStop.stoppedAfterSteps(checkpoint: try checkpoint())
                }
            }
            state.stageDone = true
        }
        result.tokensSeen = state.tokensSeen
        result.wallSeconds = elapsedNow()
        result.finalCheckpoint = lastCheckpoint?.path ?? ""
        // Curves and stage summaries from metrics.jsonl, so that a resumed run reports its whole history.
        let history = metrics.evalPoints()
        result.evalCurve = history.filter { $0.stage > 0 }
        if let initial = history.first(where: { $0.stage == 0 }) { result.initialEvalLoss = initial.evalLoss }
        let losses = metrics.trainLosses()
        result.trainLosses = losses.map(\.loss)
        for (stageNumber, settings, examples) in stages {
            let evals = history.filter { $0.stage == stageNumber }
            let steps = try totalSteps(settings, stream(for: examples, settings: settings, stage: stageNumber, padId: prepared.padId))
            result.stages.append(StageSummary(
                stage: stageNumber, steps: steps, examples: examples.count,
                finalTrainLoss: losses.last(where: { $0.stage == stageNumber })?.loss ?? .nan,
                evalLoss: evals.last?.evalLoss ?? .nan, bestEvalLoss: evals.map(\.evalLoss).min() ?? .nan))
        }
        try StoreFiles.writeSynced(ResultJSON.encode(result), to: resultURL)
        return result
    }

    var threadsSetting: Int { recipe.train.threads }

    /// The files a run reads: its data files, a tokenizer file, and the folder of the model it starts from.
    func inputPaths() throws -> [(role: String, path: String)] {
        var paths = recipe.data.train.map { (role: "data file", path: $0) }
        if recipe.model.initFrom == "scratch" {
            if !recipe.tokenizer.path.isEmpty { paths.append((role: "tokenizer", path: recipe.tokenizer.path)) }
        } else {
            paths.append((role: "base model", path: try AlignerBundle.resolve(recipe.model.initFrom).path))
        }
        return paths
    }

    /// Drops metrics recorded after the checkpoint being resumed, so that the file reads as one uninterrupted run.
    func truncateMetrics(_ url: URL, after s: TrainerState) throws {
        let keep = MetricsLog.lines(url).filter { line in
            guard let stage = line.object["stage"] as? Int, let step = line.object["step"] as? Int else { return false }
            return stage < s.stage || (stage == s.stage && step <= s.step)
        }.map(\.text)
        try (keep.joined(separator: "\n") + (keep.isEmpty ? "" : "\n")).write(to: url, atomically: true, encoding: .utf8)
    }
}
