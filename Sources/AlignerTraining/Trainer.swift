import AlignerData
import AlignerDistributed
import AlignerErrors
import AlignerFiles
import AlignerFormats
import AlignerMeasures
import AlignerModel
import AlignerOptim
import AlignerRecipes
import AlignerRuns
import AlignerTensor
import AlignerTokenizers
import Foundation

/// Two-stage Aligner training: identity warm-up on Q-A-A (stage 1, skipped when p = 0), then Q-A-C (stage 2) from
/// the stage-1 weights, each with its own optimiser and schedule; evaluation, metrics, checkpoints and exact resume.
public final class Trainer: TrainerBase {
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
        /// The chat template prompts are rendered through (`data.chat_template = "base"`), with its tokens.
        public var chat: ChatPrompt?
        /// The pretrained base (`model.init_from`), fingerprinted, for LoRA checkpoints that refer to it.
        public var base: BaseReference?

        /// Files every checkpoint carries besides weights and state: `tokenizer_config.json` with the special tokens
        /// the examples were built with, and `chat_template.jinja` when prompts go through a chat template.
        public func checkpointFiles() throws -> [(String, Data)] { try CheckpointStore.tokenizerFiles(specials: specials, chat: chat) }
    }

    /// Weights, gradients, AdamW's moments and one batch's activations must fit this machine before anything is
    /// allocated (`MemoryError` otherwise).
    func checkTrainingMemory(config: LlamaConfig, warmup: Bool) throws {
        let stages = warmup ? [recipe.stage1, recipe.stage2] : [recipe.stage2]  // stage 1 runs only with a warm-up set
        let batchTokens = stages.map { s in s.batchTokens > 0 ? s.batchTokens : s.batchSize * recipe.data.maxLength }.max()!
        try MemoryBudget.check(bytes: config.memoryEstimate(training: true, batch: max(1, batchTokens / recipe.data.maxLength), time: recipe.data.maxLength),
                               for: "training this model (\(config.parameterCount) parameters, batches of up to \(batchTokens) tokens)")
    }

    /// Reads the data, splits it, gets the tokenizer (loaded, or trained on the training split), builds examples.
    /// `checkMemory`: refuse (before allocating) when training would not fit this machine; a hand-off to another
    /// machine prepares without it.
    public func prepare(resuming: Bool = false, checkMemory: Bool = true) throws -> Prepared {
        let preparation = RunPreparation(recipe: recipe, runDirectory: runDirectory, writes: group.isMain, say: say)
        if resuming { try preparation.checkOwnFiles() }
        let splits = try preparation.splits(preparation.records(), warmupPercent: recipe.data.warmupPercent)
        say("splits: \(splits.train.count) train, \(splits.eval.count) eval (held out by question), \(splits.warmup.count) identity warm-up (p = \(recipe.data.warmupPercent)%)")
        let usesLoRA = [recipe.stage1, recipe.stage2].contains(where: { $0.finetune == .lora })
        let setup = try preparation.model(splits: splits, resuming: resuming, loraReference: usesLoRA, chatTemplate: recipe.data.chatTemplateUse == .base)
        let config = setup.config
        if checkMemory { try checkTrainingMemory(config: config, warmup: !splits.warmup.isEmpty) }
        try preparation.saveTokenizer(setup.tokenizer)
        if resuming { try preparation.checkOwnFiles() } else { try preparation.recordOwnFiles() }
        let builder = try ExampleBuilder(tokenizer: setup.tokenizer, template: recipe.promptTemplate(), specialTokens: setup.specials,
                                         maxLength: recipe.data.maxLength, chat: setup.chat)
        let (eval, er) = builder.buildAll(splits.eval)
        let (warmup, wr) = builder.buildAll(splits.warmup)
        let (train, tr) = builder.buildAll(splits.train)
        say("examples (max \(recipe.data.maxLength) tokens): train \(tr.summary); warm-up \(wr.summary); eval \(er.summary)")
        guard !eval.isEmpty, !train.isEmpty else { throw RecipeError(key: "data.max_length", message: "no example fits") }
        return Prepared(splits: splits, tokenizer: setup.tokenizer, specials: setup.specials, config: config, initialWeights: setup.initialWeights,
                        eval: eval, warmup: warmup, train: train, padId: setup.padId, chat: setup.chat, base: setup.base)
    }

    /// The files and folders the run reads (data files, a tokenizer file, the base model), which no output may overwrite.
    public func inputPaths() throws -> [String] {
        try RunPreparation(recipe: recipe, runDirectory: runDirectory, writes: false, say: say).inputPaths().map(\.path)
    }

    func stream(for examples: [Example], settings s: StageSettings, stage: Int, padId: Int) throws -> BatchStream {
        try BatchStream(examples: examples, size: s.batchTokens > 0 ? .tokens(s.batchTokens) : .examples(s.batchSize),
                        seed: UInt64(recipe.seed) &+ UInt64(stage) &* 7919, padId: padId)
    }

    /// Runs (or, with `resume`, continues) the two stages. The run folder is locked meanwhile; each step goes through
    /// `TrainingLoop`, then through the observers (divergence, metrics and progress, evaluation, checkpoints).
    /// With `restart`, whatever the run folder holds (checkpoints, metrics, result) is deleted first and the run starts
    /// afresh.
    public func run(resume: Bool = false, restart: Bool = false) throws -> RunResult {
        try running { try runInContext(resume: resume, restart: restart) }
    }

    func runInContext(resume: Bool, restart: Bool) throws -> RunResult {
        let lifecycle = RunLifecycle(recipe: recipe, kind: .aligner, runDirectory: runDirectory, group: group, say: say)
        let opening = try lifecycle.open(
            resume: resume, restart: restart,
            inputs: { try RunPreparation(recipe: recipe, runDirectory: runDirectory, writes: true, say: say).inputPaths() },
            finishedResult: { folder, latest in folder.finishedResult(at: latest) })
        if let done = opening.finished { return done }
        let folder = opening.folder, latest = opening.latest
        let (bytesBefore, callsBefore, secondsBefore) = (group.bytesAllReduced, group.allReduceCalls, group.secondsAllReducing)
        announceDataParallel()
        if group.isDistributed {
            for (n, s) in [(1, recipe.stage1), (2, recipe.stage2)]
            where (n == 2 || recipe.data.warmupPercent > 0) && s.batchTokens == 0 && s.batchSize % group.size != 0 {
                say("note: stage \(n)'s batches of \(s.batchSize) rows do not split evenly over \(group.size) ranks (each takes a share of every batch); a multiple of \(group.size) keeps every rank busy")
            }
        }
        let prepared = try group.agree { try prepare(resuming: latest != nil) }
        let model = try prepared.initialWeights.map { try LlamaModel(config: prepared.config, weights: $0) }
            ?? LlamaModel(config: prepared.config, seed: UInt64(recipe.seed))
        model.activationCheckpointing = recipe.train.activationCheckpointing
        if compute.matmul == .bf16 {
            say("matrix products in bf16: \(MatmulPrecision.bf16Engine)\(MatmulPrecision.bf16IsNative ? "" : "; slower than fp32 on this CPU")")
        }
        // The pool keeps what the next step reuses (a step's buffers; each step's end frees those it did not reuse).
        compute.pool.limitBytes = MemoryBudget.trainingPoolBytes

        let plan = try plannedStages(prepared)
        let stages = plan.stages
        let stage1Steps = plan.stage1Steps
        if recipe.train.budget != .additive { say("budget: \(plan.note)") }
        var state = TrainerState(stage: stages[0].0, step: 0, totalSteps: 0, position: BatchPosition(), optimizerStep: 0,
                                 tokensSeen: 0, stageDone: false, elapsed: 0, stage1Steps: stage1Steps)
        var optimizerToRestore: [String: Tensor]?
        if let latest {
            (state, optimizerToRestore) = try CheckpointStore.load(latest, into: model, verify: false)
            say("resuming from \(latest.path): stage \(state.stage), step \(state.step)/\(state.totalSteps)")
        }
        try group.agree { try folder.startMetrics(resumingAt: latest != nil ? state : nil, tensorBoard: recipe.train.reportTo == .tensorboard) }  // others read it after rank 0 cut it back
        let task = AlignerTask(recipe: recipe, model: model, evalExamples: prepared.eval, padId: prepared.padId,
                               tokenizerJSON: try prepared.tokenizer.jsonData(), extraFiles: try prepared.checkpointFiles(), group: group)
        let run = TrainingRun(recipe: recipe, folder: folder, task: task, state: state, finalStage: 2, group: group, say: say)
        run.lastCheckpoint = latest
        if recipe.train.generateEval > 0 && group.isMain {  // rank 0 generates; the others receive the metrics
            task.generationRecords = Array(prepared.splits.eval.prefix(recipe.train.generateEval))
            task.generator = AlignerBundle(model: model, tokenizer: prepared.tokenizer, specialTokens: prepared.specials,
                                           template: try recipe.promptTemplate(), source: runDirectory, recipe: recipe, chat: prepared.chat)
            task.correctionsFile = runDirectory.appendingPathComponent(HeldOutCorrections.file)
        }
        if latest == nil {
            let initial = try run.evaluateAndRecord(initial: true).point
            say(String(format: "eval loss before training: %.4f", initial.evalLoss)
                + (initial.generation.map { String(format: "; copy rate %.3f, edit distance to reference %.3f", $0.copyRate, $0.editToReference) } ?? ""))
        }
        let best = BestCheckpointObserver(recipe: recipe, history: latest == nil ? [] : folder.metrics.evalPoints(), checkpoints: folder.checkpoints)
        let observers = lifecycle.observers(progress: progress, quiet: quiet, best: best, stopAfterSteps: stopAfterSteps)

        for (stageNumber, settings, examples) in stages {
            if stageNumber < run.state.stage || (stageNumber == run.state.stage && run.state.stageDone) { continue }
            compute.pool.trim()  // the last stage's (or the preparation's) buffers do not fit this one's shapes
            try adapt(model, for: settings)
            // The frozen weights are the pretrained base's while every stage so far trained adapters only.
            task.base = stages.filter { $0.0 <= stageNumber }.allSatisfy { $0.1.finetune == .lora } ? prepared.base : nil
            var loop = TrainingLoop(stage: stageNumber, settings: settings, model: model,
                                    batches: try stream(for: examples, settings: settings, stage: stageNumber, padId: prepared.padId))
            loop.dropoutSeed = UInt64(recipe.seed)
            loop.group = group
            if stageNumber == run.state.stage && run.state.step > 0, let saved = optimizerToRestore {
                try loop.restore(optimizer: saved, optimizerStep: run.state.optimizerStep, step: run.state.step, position: run.state.position)
            } else {
                run.state = TrainerState(stage: stageNumber, step: 0, totalSteps: loop.totalSteps, position: BatchPosition(), optimizerStep: 0,
                                         tokensSeen: run.state.tokensSeen, stageDone: false, elapsed: run.state.elapsed, stage1Steps: stage1Steps)
            }
            run.state.totalSteps = loop.totalSteps
            say("stage \(stageNumber) (\(stageNumber == 1 ? "identity warm-up, Q-A-A" : "Q-A-C")): \(examples.count) examples, \(loop.totalSteps) steps, \(loop.batches.batchesPerEpoch) batches per epoch, lr \(settings.lr) \(settings.schedule.rawValue) (\(loop.warmupSteps) warm-up steps)")
            if let lora = model.lora {
                let trainable = model.adapters.values.reduce(0) { $0 + $1.count }
                say("  LoRA r \(lora.rank), alpha \(lora.alpha)\(lora.rsLoRA ? " (rsLoRA)" : ""), dropout \(lora.dropout) on \((try? lora.modules(available: model.linearModules).joined(separator: ", ")) ?? ""): \(trainable) trainable parameters (\(String(format: "%.2f", 100 * Double(trainable) / Double(model.config.parameterCount)))% of \(model.config.parameterCount))")
            }
            try lifecycle.train(stage: &loop, run: run, observers: observers)
        }
        if group.isDistributed && run.stepsThisProcess > 0 {
            let megabytes = Double(group.bytesAllReduced - bytesBefore) / 1e6
            let steps = Double(run.stepsThisProcess)
            say(String(format: "data-parallel: each rank all-reduced %.1f MB in %d calls of float32 sums over %d steps (%.2f MB per step, %.1f ms per step in those calls, waiting for the other ranks included)",
                       megabytes, group.allReduceCalls - callsBefore, run.stepsThisProcess, megabytes / steps,
                       (group.secondsAllReducing - secondsBefore) * 1000 / steps))
        }
        return try finish(run, best: best.best, folder: folder, stages: stages, budget: plan.note, prepared: prepared)
    }

    /// The stages a run trains, in order, with their settings and examples (stage 1 only with a warm-up set), and
    /// stage 1's optimiser steps. Under `train.budget` = "fixed_steps" or "fixed_tokens", stage 2's steps are
    /// shortened by what stage 1 uses, so that every warm-up proportion trains on the budget stage 2 alone would take
    /// (stage 2's examples are the same for every proportion: all the training records). A warm-up that uses the
    /// whole budget is refused, naming `train.budget`.
    public func plannedStages(_ prepared: Prepared) throws
        -> (stages: [(Int, StageSettings, [Example])], stage1Steps: Int, note: String) {
        let padId = prepared.padId
        let stage2Stream = try stream(for: prepared.train, settings: recipe.stage2, stage: 2, padId: padId)
        let stage2Alone = TrainingLoop.totalSteps(recipe.stage2, stage2Stream)
        guard !prepared.warmup.isEmpty else {
            return ([(2, recipe.stage2, prepared.train)], 0, "\(recipe.train.budget.rawValue): no warm-up; stage 2 takes its \(stage2Alone) steps")
        }
        let stage1Stream = try stream(for: prepared.warmup, settings: recipe.stage1, stage: 1, padId: padId)
        let stage1Steps = TrainingLoop.totalSteps(recipe.stage1, stage1Stream)
        var stage2 = recipe.stage2
        let note: String
        switch recipe.train.budget {
        case .additive:
            note = "additive: stage 1 \(stage1Steps) steps + stage 2 \(stage2Alone) steps"
        case .fixedSteps:
            stage2.steps = stage2Alone - stage1Steps
            guard stage2.steps >= 1 else {
                throw RecipeError(key: "train.budget", message: "fixed_steps: stage 1's \(stage1Steps) steps use the whole budget of \(stage2Alone) steps (stage 2 alone); lower data.warmup_percent or stage1.epochs, or use \"additive\"")
            }
            note = "fixed_steps: \(stage2Alone) steps in all = stage 1 \(stage1Steps) + stage 2 \(stage2.steps) (of its \(stage2Alone))"
        case .fixedTokens:
            let stage2Tokens = Self.tokensPerStep(stage2Stream, steps: stage2Alone, gradAccum: recipe.stage2.gradAccum)
            let budget = stage2Tokens.reduce(0, +)
            let used = Self.tokensPerStep(stage1Stream, steps: stage1Steps, gradAccum: recipe.stage1.gradAccum).reduce(0, +)
            // The most stage-2 steps whose tokens, with stage 1's, stay within the budget.
            var steps = 0, seen = used
            while steps < stage2Alone && seen + stage2Tokens[steps] <= budget {
                seen += stage2Tokens[steps]
                steps += 1
            }
            guard steps >= 1 else {
                throw RecipeError(key: "train.budget", message: "fixed_tokens: stage 1's \(used) tokens use the whole budget of \(budget) tokens (stage 2 alone); lower data.warmup_percent or stage1.epochs, or use \"additive\"")
            }
            stage2.steps = steps
            note = "fixed_tokens: \(budget) tokens at most = stage 1 \(used) + stage 2 \(seen - used) (\(steps) of its \(stage2Alone) steps)"
        }
        return ([(1, recipe.stage1, prepared.warmup), (2, stage2, prepared.train)], stage1Steps, note)
    }

    /// The real (unpadded) tokens of each of a stage's first `steps` optimiser steps.
    static func tokensPerStep(_ stream: BatchStream, steps: Int, gradAccum: Int) -> [Int] {
        var s = stream
        return (0..<steps).map { _ in (0..<gradAccum).reduce(0) { total, _ in total + s.next().realTokens } }
    }

    /// Attaches fresh adapters for a LoRA stage (stage 2 continues stage 1's when both use LoRA) and merges them
    /// before a full stage.
    func adapt(_ model: LlamaModel, for settings: StageSettings) throws {
        switch settings.finetune {
        case .lora where model.lora == nil:
            do { try model.attachAdapters(recipe.lora.config, seed: UInt64(recipe.seed) &+ 0x4C_6F_52_41) } catch let e as ModelInputError {
                throw RecipeError(key: e.field, message: e.message)
            }
        case .full where model.lora != nil: model.mergeAdapters()
        default: break
        }
    }

    /// The result from metrics.jsonl (so that a resumed run reports its whole history), written as result.json.
    func finish(_ run: TrainingRun, best: BestCheckpoint?, folder: RunFolder, stages: [(Int, StageSettings, [Example])], budget: String, prepared: Prepared) throws -> RunResult {
        var result = RunResult(
            name: recipe.name, warmupPercent: recipe.data.warmupPercent, warmupRecords: prepared.splits.warmup.count,
            trainRecords: prepared.splits.train.count, evalRecords: prepared.splits.eval.count, stages: [], evalCurve: [],
            trainLosses: [], tokensSeen: run.state.tokensSeen, wallSeconds: run.elapsed, runDirectory: runDirectory.path,
            finalCheckpoint: run.lastCheckpoint?.path ?? "", initialEvalLoss: .nan,
            peakResidentMiB: Double(peakResidentBytes()) / 1_048_576, recipeFingerprint: recipe.fingerprint)
        let history = folder.metrics.evalPoints()
        result.evalCurve = history.filter { $0.stage > 0 }
        if let initial = history.first(where: { $0.stage == 0 }) {
            result.initialEvalLoss = initial.evalLoss
            result.initialGeneration = initial.generation
        }
        let losses = folder.metrics.trainLosses()
        result.trainLosses = losses.map(\.loss)
        // Early stopping ended stage 2 before its planned steps (also when a resumed run finds it so).
        if run.state.stage == 2 && run.state.stageDone && run.state.step < run.state.totalSteps { result.stoppedEarlyAtStep = run.state.step }
        result.best = best
        result.budget = budget
        for (stageNumber, settings, examples) in stages {
            let evals = history.filter { $0.stage == stageNumber }
            var steps = try TrainingLoop.totalSteps(settings, stream(for: examples, settings: settings, stage: stageNumber, padId: prepared.padId))
            if stageNumber == 2, let stopped = result.stoppedEarlyAtStep { steps = stopped }
            result.stages.append(StageSummary(
                stage: stageNumber, steps: steps, examples: examples.count,
                finalTrainLoss: losses.last(where: { $0.stage == stageNumber })?.loss ?? .nan,
                evalLoss: evals.last?.evalLoss ?? .nan, bestEvalLoss: evals.map(\.evalLoss).min() ?? .nan))
        }
        try group.agree { try folder.writeResult(result) }
        return result
    }

}
