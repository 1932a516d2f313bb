import AlignerData
import AlignerDistributed
import AlignerFormats
import AlignerInference
import AlignerMeasures
import AlignerModel
import AlignerRecipes
import AlignerRuns
import AlignerTensor
import Foundation

/// A run in progress, as observers see it: where training stands, the model, the folder, and the two services
/// observers call (evaluate, checkpoint).
public final class TrainingRun {
    public let recipe: Recipe
    public let folder: RunFolder
    public let model: LlamaModel
    /// Where training stands (saved in every checkpoint).
    public internal(set) var state: TrainerState
    /// The stage being trained.
    public internal(set) var loop: TrainingLoop!
    /// The newest checkpoint written or resumed from.
    public internal(set) var lastCheckpoint: URL?
    /// The pretrained base that adapter checkpoints refer to instead of holding the frozen weights (nil: they hold them).
    public internal(set) var base: BaseReference?
    /// Optimiser steps taken by this process (all stages).
    public internal(set) var stepsThisProcess = 0
    /// The evaluation made at the current step, if any (set by `EvaluationObserver`).
    public internal(set) var lastEvaluation: EvalPoint?
    /// The best evaluation of stage 2 so far by `train.best_metric`, kept as `checkpoints/best`.
    public internal(set) var best: BestCheckpoint?
    /// Stage-2 evaluations since the best one.
    public internal(set) var evaluationsSinceBest = 0
    /// Set when early stopping ends stage 2 at this step.
    public internal(set) var stopEarly = false
    /// Held-out records corrected at each evaluation (`train.generate_eval`), and the Aligner (this model) that does it.
    var generationRecords: [QACRecord] = []
    var generator: AlignerBundle?
    let evalExamples: [Example]
    let padId: Int
    let tokenizerJSON: Data
    /// Further files of every checkpoint (the special tokens in `tokenizer_config.json`, a chat template).
    let extraFiles: [(String, Data)]
    let say: (String) -> Void
    /// The processes training together; rank 0 writes.
    let group: ProcessGroup
    private let clock = ContinuousClock()
    private let started: ContinuousClock.Instant
    private let elapsedBefore: Double
    private(set) var stageStarted: ContinuousClock.Instant
    private(set) var stageStartTokens = 0
    private(set) var stageStartStep = 0

    init(recipe: Recipe, folder: RunFolder, model: LlamaModel, state: TrainerState, evalExamples: [Example], padId: Int,
         tokenizerJSON: Data, extraFiles: [(String, Data)] = [], group: ProcessGroup = .single, say: @escaping (String) -> Void) {
        self.extraFiles = extraFiles
        self.group = group
        self.recipe = recipe
        self.folder = folder
        self.model = model
        self.state = state
        self.evalExamples = evalExamples
        self.padId = padId
        self.tokenizerJSON = tokenizerJSON
        self.say = say
        started = clock.now
        stageStarted = started
        elapsedBefore = state.elapsed
    }

    /// Seconds of training in this run, across processes.
    public var elapsed: Double { elapsedBefore + (clock.now - started).inSeconds }

    /// Tokens per second in this stage (this process) and the estimated seconds left in it.
    var stageRate: (tokensPerSecond: Double, eta: Double) {
        let seconds = (clock.now - stageStarted).inSeconds
        let steps = max(state.step - stageStartStep, 1)
        return (Double(state.tokensSeen - stageStartTokens) / max(seconds, 1e-9), seconds / Double(steps) * Double(state.totalSteps - state.step))
    }

    func beginStage(_ loop: TrainingLoop) {
        self.loop = loop
        stageStarted = clock.now
        stageStartTokens = state.tokensSeen
        stageStartStep = state.step
    }

    /// The global step (stage-2 steps counted after stage 1's).
    var globalStep: Int { (state.stage == 2 ? state.stage1Steps : 0) + state.step }

    /// Eval loss of the current weights on the held-out examples.
    /// The buffer pool is emptied before and after: evaluation's shapes are not training's.
    public func evaluate() throws -> Double {
        let pool = ComputeContext.current.pool
        pool.trim()
        defer { pool.trim() }
        return try Evaluation.loss(model, evalExamples, batchSize: recipe.stage2.batchSize, padId: padId, group: group)
    }

    /// Greedy corrections of the `train.generate_eval` held-out records by the current weights and their metrics
    /// (nil when the recipe asks for none).
    public func generationMetrics() throws -> CorrectionMetrics? {
        guard let generator, !generationRecords.isEmpty else { return nil }
        let pool = ComputeContext.current.pool
        pool.trim()
        defer { pool.trim() }
        let outputs = try Corrector.correct(generationRecords.map { ($0.question, $0.answer) }, with: [generator],
                                            options: GenerationOptions(maxNewTokens: recipe.train.generateMaxNewTokens, noRepeatNgramSize: recipe.train.generateNoRepeatNgramSize),
                                            batchSize: recipe.stage2.batchSize)
        return try CorrectionMetrics(outputs: outputs, records: generationRecords)
    }

    /// Evaluates (loss, and generation metrics when asked for), appends the result to metrics.jsonl and returns it.
    @discardableResult
    public func evaluateAndRecord(initial: Bool = false) throws -> EvalPoint {
        let loss = try evaluate()
        var fields: [String: Any] = ["stage": initial ? 0 : state.stage, "step": initial ? 0 : state.step,
                                     "global_step": initial ? 0 : globalStep, "eval_loss": loss]
        // Rank 0 generates (the only process that has a generator); the others receive its metrics.
        var generation = try group.agree { try generationMetrics() }
        if group.isDistributed { generation = try group.broadcast(generation, as: CorrectionMetrics?.self) }
        if let g = generation { fields.merge(g.fields) { a, _ in a } }
        // Every process reads the evaluation back from the same line (rank 0 also writes it).
        let point = try group.agree { try folder.metrics.append(evaluation: fields) }
        lastEvaluation = point
        return point
    }

    /// The best stage-2 evaluation of `history` by `metric` and the evaluations after it (for a resumed run).
    func restoreBest(from history: [EvalPoint]) {
        let metric = recipe.train.bestMetric
        let stage2 = history.filter { $0.stage == 2 }
        var bestIndex: Int?
        for (i, p) in stage2.enumerated() {
            guard let v = p.metric(metric), v.isFinite else { continue }
            if let b = bestIndex, let bv = stage2[b].metric(metric), bv <= v { continue }
            bestIndex = i
        }
        guard let b = bestIndex else { return }
        let p = stage2[b]
        best = BestCheckpoint(metric: metric, value: p.metric(metric)!, stage: p.stage, step: p.step, globalStep: p.globalStep,
                              path: folder.checkpoints.directory.appendingPathComponent(CheckpointStore.bestName).path)
        evaluationsSinceBest = stage2.count - 1 - b
    }

    /// Writes a checkpoint of the current state (atomically; older ones beyond `keep_checkpoints` are removed). With
    /// `name` (`CheckpointStore.bestName`) it replaces that checkpoint instead and is not the run's newest.
    @discardableResult
    public func checkpoint(as name: String? = nil) throws -> URL {
        state.position = loop.batches.position
        state.optimizerStep = loop.optimizer.step
        state.elapsed = elapsed
        // Rank 0 writes; every process learns whether it could.
        let url = try group.agree { () -> URL in
            guard group.isMain else { return folder.checkpoints.directory.appendingPathComponent(name ?? CheckpointStore.folderName(state)) }
            return try folder.checkpoints.save(model: model, optimizer: loop.optimizer, state: state, recipe: recipe, tokenizerJSON: tokenizerJSON,
                                               extraFiles: extraFiles, base: base, keep: recipe.train.keepCheckpoints, as: name)
        }
        if name == nil { lastCheckpoint = url }
        return url
    }
}

/// Watches a run step by step; may stop it by throwing. Observers run in order after every optimiser step.
public protocol TrainingObserver: AnyObject {
    func stepEnded(_ stats: StepStats, _ run: TrainingRun) throws
}

/// Stops the run when the loss or gradient is no longer finite, naming the last good checkpoint.
public final class DivergenceGuard: TrainingObserver {
    public init() {}
    public func stepEnded(_ stats: StepStats, _ run: TrainingRun) throws {
        guard stats.isFinite else {
            throw TrainingStop.diverged(stage: stats.stage, step: stats.step + 1, loss: stats.loss.isFinite ? stats.gradNorm : stats.loss,
                                        lastCheckpoint: run.lastCheckpoint)
        }
    }
}

/// Appends each step to metrics.jsonl and shows progress (a live line on a terminal, periodic lines elsewhere).
public final class ProgressObserver: TrainingObserver {
    let printer: ProgressPrinter
    let quiet: Bool

    public init(printer: ProgressPrinter, quiet: Bool) {
        self.printer = printer
        self.quiet = quiet
    }

    public func stepEnded(_ stats: StepStats, _ run: TrainingRun) throws {
        let (tps, eta) = run.stageRate
        try run.folder.metrics.append(["stage": stats.stage, "step": stats.step, "global_step": run.globalStep, "loss": stats.loss,
                                       "lr": stats.learningRate, "grad_norm": stats.gradNorm, "tokens": run.state.tokensSeen,
                                       "tokens_per_s": tps, "elapsed": run.elapsed])
        if !quiet {
            printer.update(stage: stats.stage, step: stats.step, total: stats.totalSteps, loss: stats.loss, lr: stats.learningRate,
                           gradNorm: stats.gradNorm, tokensPerSecond: tps, elapsed: run.elapsed, eta: eta)
        }
    }

    func message(_ text: String) { if !quiet { printer.message(text) } }
}

/// Evaluates on the held-out examples every `train.eval_every` steps and at the end of each stage.
public final class EvaluationObserver: TrainingObserver {
    let every: Int
    public init(every: Int) { self.every = every }

    public func stepEnded(_ stats: StepStats, _ run: TrainingRun) throws {
        run.lastEvaluation = nil
        guard (every > 0 && stats.step % every == 0) || stats.step == stats.totalSteps else { return }
        let point = try run.evaluateAndRecord()
        var line = String(format: "stage %d step %d/%d: eval loss %.4f", stats.stage, stats.step, stats.totalSteps, point.evalLoss)
        if let g = point.generation {
            line += String(format: "; %d corrections: copy rate %.3f, near-copy %.3f, edit distance to answer %.3f, to reference %.3f",
                           g.generated, g.copyRate, g.nearCopyRate, g.editToAnswer, g.editToReference)
        }
        run.say(line)
    }
}

/// Keeps the best stage-2 evaluation's weights as `checkpoints/best` (by `train.best_metric`, lower is better) and,
/// with `train.early_stopping_patience` > 0, ends stage 2 after that many evaluations without a new best.
public final class BestCheckpointObserver: TrainingObserver {
    public init() {}

    public func stepEnded(_ stats: StepStats, _ run: TrainingRun) throws {
        guard stats.stage == 2, let e = run.lastEvaluation, e.stage == 2, e.step == stats.step else { return }
        let metric = run.recipe.train.bestMetric
        guard let value = e.metric(metric), value.isFinite else { return }
        if let best = run.best, value >= best.value {
            run.evaluationsSinceBest += 1
            let patience = run.recipe.train.earlyStoppingPatience
            if patience > 0 && run.evaluationsSinceBest >= patience && stats.step < stats.totalSteps {
                run.stopEarly = true
                run.say(String(format: "early stopping: %d evaluations without a better %@ than %.4f (step %d); stage 2 ends at step %d of %d",
                               run.evaluationsSinceBest, metric.rawValue, best.value, best.step, stats.step, stats.totalSteps))
            }
            return
        }
        let url = try run.checkpoint(as: CheckpointStore.bestName)
        run.best = BestCheckpoint(metric: metric, value: value, stage: e.stage, step: e.step, globalStep: e.globalStep, path: url.path)
        run.evaluationsSinceBest = 0
    }
}

/// Writes checkpoints every `train.checkpoint_every` steps and at the end of each stage; on Ctrl-C writes one and
/// stops; `stopAfterSteps` (a test hook, not a recipe key) stops after that many steps of this process.
public final class CheckpointPolicy: TrainingObserver {
    let every: Int
    let stopAfterSteps: Int?

    public init(every: Int, stopAfterSteps: Int? = nil) {
        self.every = every
        self.stopAfterSteps = stopAfterSteps
    }

    public func stepEnded(_ stats: StepStats, _ run: TrainingRun) throws {
        let atEnd = stats.step == stats.totalSteps || run.stopEarly
        if atEnd { run.state.stageDone = true }
        if atEnd || (every > 0 && stats.step % every == 0) { try run.checkpoint() }
        let finished = atEnd && stats.stage == 2
        // One process alone stops as soon as Ctrl-C came; processes of a data-parallel run at the step all agreed on.
        let interrupted = run.group.isDistributed ? stats.stopRequested : Interrupt.isRequested
        if interrupted && !finished { throw TrainingStop.interrupted(checkpoint: try run.checkpoint()) }
        if let n = stopAfterSteps, n > 0, run.stepsThisProcess >= n, !finished {
            throw TrainingStop.stoppedAfterSteps(checkpoint: try run.checkpoint())
        }
    }
}
