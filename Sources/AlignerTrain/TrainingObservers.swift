import AlignerData
import AlignerModel
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
    let evalExamples: [Example]
    let padId: Int
    let tokenizerJSON: Data
    /// Further files of every checkpoint (the special tokens in `tokenizer_config.json`, a chat template).
    let extraFiles: [(String, Data)]
    let say: (String) -> Void
    private let clock = ContinuousClock()
    private let started: ContinuousClock.Instant
    private let elapsedBefore: Double
    private(set) var stageStarted: ContinuousClock.Instant
    private(set) var stageStartTokens = 0
    private(set) var stageStartStep = 0

    init(recipe: Recipe, folder: RunFolder, model: LlamaModel, state: TrainerState, evalExamples: [Example], padId: Int,
         tokenizerJSON: Data, extraFiles: [(String, Data)] = [], say: @escaping (String) -> Void) {
        self.extraFiles = extraFiles
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
        return try Evaluation.loss(model, evalExamples, batchSize: recipe.stage2.batchSize, padId: padId)
    }

    /// Writes a checkpoint of the current state (atomically; older ones beyond `keep_checkpoints` are removed).
    @discardableResult
    public func checkpoint() throws -> URL {
        state.position = loop.batches.position
        state.optimizerStep = loop.optimizer.step
        state.elapsed = elapsed
        let url = try folder.checkpoints.save(model: model, optimizer: loop.optimizer, state: state, recipe: recipe,
                                              tokenizerJSON: tokenizerJSON, extraFiles: extraFiles, base: base, keep: recipe.train.keepCheckpoints)
        lastCheckpoint = url
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
        guard (every > 0 && stats.step % every == 0) || stats.step == stats.totalSteps else { return }
        let loss = try run.evaluate()
        try run.folder.metrics.append(["stage": stats.stage, "step": stats.step, "global_step": run.globalStep, "eval_loss": loss])
        run.say(String(format: "stage %d step %d/%d: eval loss %.4f", stats.stage, stats.step, stats.totalSteps, loss))
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
        let atEnd = stats.step == stats.totalSteps
        if atEnd { run.state.stageDone = true }
        if atEnd || (every > 0 && stats.step % every == 0) { try run.checkpoint() }
        let finished = atEnd && stats.stage == 2
        if Interrupt.isRequested && !finished { throw TrainingStop.interrupted(checkpoint: try run.checkpoint()) }
        if let n = stopAfterSteps, n > 0, run.stepsThisProcess >= n, !finished {
            throw TrainingStop.stoppedAfterSteps(checkpoint: try run.checkpoint())
        }
    }
}
