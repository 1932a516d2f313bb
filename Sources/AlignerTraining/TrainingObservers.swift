import AlignerRecipes
import AlignerRuns

/// Watches a run step by step; may stop it by throwing. Observers run in order after every optimiser step, each with
/// the step's event as the observers before it left it (`StepEvent`: the evaluation made at this step, the end of the
/// stage); the order is the lifecycle's (`RunLifecycle.standardObservers`).
public protocol TrainingObserver: AnyObject {
    func stepEnded(_ event: inout StepEvent, _ run: TrainingRun) throws
}

/// Stops the run when the loss or gradient is no longer finite, naming the last good checkpoint.
public final class DivergenceGuard: TrainingObserver {
    public init() {}
    public func stepEnded(_ event: inout StepEvent, _ run: TrainingRun) throws {
        let stats = event.stats
        guard stats.isFinite else {
            throw TrainingStop.diverged(stage: stats.stage, step: stats.step + 1, loss: stats.loss.isFinite ? stats.gradNorm : stats.loss,
                                        lastCheckpoint: run.lastCheckpoint)
        }
    }
}

/// Appends each step to metrics.jsonl and shows progress (a live line on a terminal, periodic lines elsewhere).
/// The step's own measures (`StepStats.extras`, such as a reward model's pairwise accuracy) join the line.
public final class ProgressObserver: TrainingObserver {
    let printer: ProgressPrinter
    let quiet: Bool
    /// The progress line's label ("reward" for a reward model; nil: the stage).
    let label: String?

    public init(printer: ProgressPrinter, quiet: Bool, label: String? = nil) {
        self.printer = printer
        self.quiet = quiet
        self.label = label
    }

    public func stepEnded(_ event: inout StepEvent, _ run: TrainingRun) throws {
        let stats = event.stats
        let (tps, eta) = run.stageRate
        var line: [String: Any] = ["stage": stats.stage, "step": stats.step, "global_step": run.globalStep, "loss": stats.loss,
                                   "lr": stats.learningRate, "grad_norm": stats.gradNorm, "tokens": run.state.tokensSeen,
                                   "tokens_per_s": tps, "elapsed": run.elapsed]
        line.merge(stats.extras.mapValues { $0 as Any }) { old, _ in old }
        try run.folder.metrics.append(line)
        if !quiet {
            printer.update(stage: stats.stage, step: stats.step, total: stats.totalSteps, loss: stats.loss, lr: stats.learningRate,
                           gradNorm: stats.gradNorm, tokensPerSecond: tps, elapsed: run.elapsed, eta: eta, label: label)
        }
    }
}

/// Evaluates on the held-out examples every `train.eval_every` steps and at the end of each stage.
public final class EvaluationObserver: TrainingObserver {
    let every: Int
    public init(every: Int) { self.every = every }

    public func stepEnded(_ event: inout StepEvent, _ run: TrainingRun) throws {
        let stats = event.stats
        guard (every > 0 && stats.step % every == 0) || stats.step == stats.totalSteps else { return }
        let (point, fields) = try run.evaluateAndRecord()
        event.evaluation = point
        run.say(run.task.describe(point, fields: fields, totalSteps: stats.totalSteps))
    }
}

/// Keeps the best stage-2 evaluation's weights as `checkpoints/best` (by `train.best_metric`, lower is better) and,
/// with `train.early_stopping_patience` > 0, ends stage 2 after that many evaluations without a new best. Reads the
/// step's evaluation from the event; its own state is the best so far.
public final class BestCheckpointObserver: TrainingObserver {
    let metric: BestMetric
    let patience: Int
    /// The best stage-2 evaluation so far, kept as `checkpoints/best`.
    public private(set) var best: BestCheckpoint?
    /// Stage-2 evaluations since the best one.
    public private(set) var evaluationsSinceBest = 0

    /// An observer for `recipe`'s best metric and patience; `history` (a resumed run's evaluations) gives the best so
    /// far and the evaluations after it.
    public init(recipe: Recipe, history: [EvalPoint] = [], checkpoints: CheckpointStore) {
        metric = recipe.train.bestMetric
        patience = recipe.train.earlyStoppingPatience
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
                              path: checkpoints.directory.appendingPathComponent(CheckpointStore.bestName).path)
        evaluationsSinceBest = stage2.count - 1 - b
    }

    public func stepEnded(_ event: inout StepEvent, _ run: TrainingRun) throws {
        let stats = event.stats
        guard stats.stage == 2, let e = event.evaluation, e.stage == 2, e.step == stats.step else { return }
        guard let value = e.metric(metric), value.isFinite else { return }
        if let best, value >= best.value {
            evaluationsSinceBest += 1
            if patience > 0 && evaluationsSinceBest >= patience && stats.step < stats.totalSteps {
                event.endsStage = true
                run.say(String(format: "early stopping: %d evaluations without a better %@ than %.4f (step %d); stage 2 ends at step %d of %d",
                               evaluationsSinceBest, metric.rawValue, best.value, best.step, stats.step, stats.totalSteps))
            }
            return
        }
        let url = try run.checkpoint(as: CheckpointStore.bestName)
        best = BestCheckpoint(metric: metric, value: value, stage: e.stage, step: e.step, globalStep: e.globalStep, path: url.path)
        evaluationsSinceBest = 0
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

    public func stepEnded(_ event: inout StepEvent, _ run: TrainingRun) throws {
        let stats = event.stats
        let atEnd = event.isStageEnd
        if atEnd { run.state.stageDone = true }
        if atEnd || (every > 0 && stats.step % every == 0) { try run.checkpoint() }
        let finished = atEnd && stats.stage == run.finalStage
        // One process alone stops as soon as Ctrl-C came; processes of a data-parallel run at the step all agreed on.
        let interrupted = run.group.isDistributed ? stats.stopRequested : Interrupt.isRequested
        if interrupted && !finished { throw TrainingStop.interrupted(checkpoint: try run.checkpoint()) }
        if let n = stopAfterSteps, n > 0, run.stepsThisProcess >= n, !finished {
            throw TrainingStop.stoppedAfterSteps(checkpoint: try run.checkpoint())
        }
    }
}
