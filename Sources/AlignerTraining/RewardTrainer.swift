import AlignerData
import AlignerDistributed
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

/// `aligner reward train`: a reward model (a decoder from scratch or from `model.init_from`, with a scalar head)
/// trained with the Bradley-Terry loss on the recipe's Q-A-C records read as preferences (correction better than
/// answer), pairs held out by question as for Aligners; evaluation (pairwise accuracy, mean margin), metrics,
/// atomic checkpoints and exact resume; at the end the model is exported to `<run>/model` for `--judge`.
public final class RewardTrainer: TrainerBase {
    /// Runs (or, with `resume`, continues) the training; `restart` deletes what the run folder holds first.
    public func run(resume: Bool = false, restart: Bool = false) throws -> RewardResult {
        try running { try runInContext(resume: resume, restart: restart) }
    }

    func runInContext(resume: Bool, restart: Bool) throws -> RewardResult {
        let lifecycle = RunLifecycle(recipe: recipe, kind: .reward, runDirectory: runDirectory, group: group, say: say)
        let preparation = RunPreparation(recipe: recipe, runDirectory: runDirectory, writes: group.isMain, say: say)
        let opening = try lifecycle.open(resume: resume, restart: restart, inputs: { try preparation.inputPaths() },
                                         finishedResult: { folder, latest in latest.flatMap { finishedResult(folder, at: $0) } })
        if let done = opening.finished { return done }
        let folder = opening.folder, latest = opening.latest
        announceDataParallel()

        // Data, tokenizer, pairs.
        // Rank 0 writes the splits and the tokenizer; every process learns whether it could.
        let settings = recipe.reward.stage
        let (splits, setup) = try group.agree { () -> (DataSplits, RunPreparation.ModelSetup) in
            if latest != nil { try preparation.checkOwnFiles() }
            let splits = try preparation.splits(preparation.records(), warmupPercent: 0)
            say("splits: \(splits.train.count) train, \(splits.eval.count) eval records (held out by question)")
            let setup = try preparation.model(splits: splits, resuming: latest != nil, loraReference: settings.finetune == .lora, chatTemplate: false)
            try MemoryBudget.check(bytes: setup.config.memoryEstimate(training: true, batch: 2 * settings.batchSize, time: recipe.data.maxLength),
                                   for: "training this reward model (\(setup.config.parameterCount) parameters, \(settings.batchSize) pairs of up to \(recipe.data.maxLength) tokens)")
            try preparation.saveTokenizer(setup.tokenizer)
            if latest != nil { try preparation.checkOwnFiles() } else { try preparation.recordOwnFiles() }
            return (splits, setup)
        }
        let config = setup.config
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
        compute.pool.limitBytes = MemoryBudget.trainingPoolBytes
        // A checkpoint's weights (and adapters) go in before the optimiser is built over the trainable tensors.
        let restored = try latest.map { try Self.load($0, into: model) }
        var loop = try RewardTrainingLoop(model: model, pairs: train, settings: settings, seed: seed)
        loop.dropoutSeed = seed
        loop.group = group
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
        try group.agree { try folder.startMetrics(resumingAt: latest != nil ? state : nil, tensorBoard: recipe.train.reportTo == .tensorboard) }  // others read it after rank 0 cut it back
        let task = RewardTask(recipe: recipe, model: model, eval: eval, evalBatch: max(1, settings.batchSize),
                              tokenizerJSON: try setup.tokenizer.jsonData(), specials: setup.specials,
                              base: settings.finetune == .lora ? setup.base : nil)
        let run = TrainingRun(recipe: recipe, folder: folder, task: task, state: state, finalStage: 1, group: group, say: say)
        run.lastCheckpoint = latest
        if latest == nil {
            let (point, fields) = try run.evaluateAndRecord(initial: true)
            say(task.describe(point, fields: fields, totalSteps: loop.totalSteps))
        }

        say("reward model: \(train.count) pairs, \(loop.totalSteps) steps (\(loop.batchesPerEpoch) batches of \(settings.batchSize) pairs per epoch, grad_accum \(settings.gradAccum)), lr \(settings.lr) \(settings.schedule.rawValue) (\(loop.warmupSteps) warm-up steps), \(settings.finetune.rawValue)")
        if let lora = model.decoder.lora {
            let trainable = model.trainableParameters.values.reduce(0) { $0 + $1.count }
            say("  LoRA r \(lora.rank), alpha \(lora.alpha), dropout \(lora.dropout): \(trainable) trainable parameters (head included)")
        }
        // (Resumed at the end, no step is left: the stage only begins, for the checkpoint below.)
        try lifecycle.train(stage: &loop, run: run, observers: lifecycle.observers(progress: progress, quiet: quiet, label: "reward",
                                                                                    stopAfterSteps: stopAfterSteps))
        if run.lastCheckpoint == nil { try run.checkpoint() }
        // The final evaluation: the one at the last step when this process took it, else (resumed at the end) now.
        var margins = run.stepsThisProcess > 0 ? task.lastMargins : nil
        if margins == nil {
            let (point, fields) = try run.evaluateAndRecord()
            say(task.describe(point, fields: fields, totalSteps: loop.totalSteps))
            margins = task.lastMargins
        }
        let lastMargins = margins ?? []
        let final = RewardEvaluation.summary(of: lastMargins)
        state = run.state
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
        try group.agree {
            guard group.isMain else { return }
            try RewardExport.export(model, tokenizer: setup.tokenizer, specialTokens: setup.specials, questionTemplate: recipe.reward.questionTemplate,
                                    maxLength: recipe.data.maxLength, to: exportURL)
        }
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
            wallSeconds: run.elapsed, runDirectory: runDirectory.path, finalCheckpoint: run.lastCheckpoint?.path ?? "", model: exportURL.path,
            peakResidentMiB: Double(peakResidentBytes()) / 1_048_576, recipeFingerprint: recipe.fingerprint(for: .reward), perSource: perSource)
        try group.agree {
            guard group.isMain else { return }
            try AtomicFile.write(ResultJSON.encode(result), to: folder.resultURL)
        }
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

    /// Restores a reward checkpoint into `model` (built as the run builds it); returns its state and optimiser tensors.
    static func load(_ url: URL, into model: RewardModel) throws -> (state: TrainerState, optimizer: [String: Tensor]) {
        if let problem = CheckpointStore.verify(url) { throw FileError(file: url.path, message: "damaged checkpoint: \(problem)", kind: .badData) }
        model.decoder.detachAdapters()
        let weights = SafetensorsWeights(url.appendingPathComponent("model.safetensors"))
        let names = Set(try weights.names())
        let decoderNames = model.parameterNames.filter { $0 != RewardModel.scoreName }
        let hasDecoder = decoderNames.contains { names.contains($0) }
        try weights.assign(hasDecoder ? model.parameterNames : [RewardModel.scoreName], to: model.parameters)
        if PEFTAdapter.isPresent(in: url) {
            let adapters = try PEFTAdapter.read(from: url)
            try model.decoder.attachAdapters(adapters.config, weights: adapters.weights)
        } else if !hasDecoder {
            throw FileError(file: url.path, message: "holds neither the decoder's weights nor adapters", kind: .badData)
        }
        return try CheckpointStore.loadState(url)
    }
}
