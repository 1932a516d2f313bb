import AlignerData
import AlignerDistributed
import AlignerFiles
import AlignerOptim
import AlignerRecipes
import AlignerRuns
import AlignerTensor
import Foundation

/// One stage's optimisation as the run lifecycle drives it: `TrainingLoop` (an Aligner's stage) and
/// `RewardTrainingLoop` (a reward model's) conform.
public protocol StageLoop {
    /// Steps done in this stage.
    var step: Int { get }
    var totalSteps: Int { get }
    /// Where the data stream stands (saved in checkpoints).
    var position: BatchPosition { get }
    var optimizer: AdamW { get }
    /// One optimiser step; a non-finite loss or gradient leaves the weights unchanged and the step uncounted.
    mutating func takeStep() throws -> StepStats
}

/// What a run trains, as the lifecycle and its observers need it: how to evaluate the current weights and which files
/// a checkpoint of them holds. `AlignerTask` (an Aligner) and `RewardTask` (a reward model) conform.
public protocol TrainingTask: AnyObject {
    /// Evaluates the current weights on the held-out data: the fields of the evaluation's metrics.jsonl line besides
    /// stage, step and global_step (with `eval_loss`). Every process of a data-parallel run returns the same fields.
    func evaluate() throws -> [String: Any]
    /// The log line of an evaluation at `point` (in a stage of `totalSteps` steps), from the fields `evaluate` gave.
    func describe(_ point: EvalPoint, fields: [String: Any], totalSteps: Int) -> String
    /// The files of a checkpoint of the current weights at `state`, with the stage's optimiser.
    func checkpointFiles(state: TrainerState, optimizer: AdamW) throws -> [(String, Data)]
}

/// What happened at one optimiser step, passed through the observers in their order: each reads what the ones before
/// it added (the evaluation made at this step) and may add to it (end the stage here).
public struct StepEvent {
    public let stats: StepStats
    /// The evaluation made at this step (set by `EvaluationObserver`), if any.
    public var evaluation: EvalPoint?
    /// Set by an observer that ends the stage after this step (early stopping); the checkpoint policy then treats the
    /// step as the stage's last.
    public var endsStage = false

    public init(stats: StepStats) { self.stats = stats }

    /// Whether this step is the stage's last (planned, or ended early).
    public var isStageEnd: Bool { stats.step == stats.totalSteps || endsStage }
}

/// A run in progress, as observers see it: where training stands, the folder, and the two services observers call
/// (evaluate and record, checkpoint). The same for Aligner and reward runs; what is trained is the `task`.
public final class TrainingRun {
    public let recipe: Recipe
    public let folder: RunFolder
    public let task: TrainingTask
    /// The last stage of the run: its end finishes the run (2 for an Aligner, 1 for a reward model).
    public let finalStage: Int
    /// Where training stands (saved in every checkpoint).
    public internal(set) var state: TrainerState
    /// The newest checkpoint written or resumed from.
    public internal(set) var lastCheckpoint: URL?
    /// Optimiser steps taken by this process (all stages).
    public internal(set) var stepsThisProcess = 0
    /// The current stage's optimiser (checkpoints save its state).
    public internal(set) var optimizer: AdamW?
    let say: (String) -> Void
    /// The processes training together; rank 0 writes.
    let group: ProcessGroup
    private let clock = ContinuousClock()
    private let started: ContinuousClock.Instant
    private let elapsedBefore: Double
    private(set) var stageStarted: ContinuousClock.Instant
    private(set) var stageStartTokens = 0
    private(set) var stageStartStep = 0
    /// Seconds of this stage spent evaluating, which the stage's tokens/s leaves out.
    private(set) var stageEvaluating = 0.0

    init(recipe: Recipe, folder: RunFolder, task: TrainingTask, state: TrainerState, finalStage: Int, group: ProcessGroup = .single,
         say: @escaping (String) -> Void) {
        self.recipe = recipe
        self.folder = folder
        self.task = task
        self.state = state
        self.finalStage = finalStage
        self.group = group
        self.say = say
        started = clock.now
        stageStarted = started
        elapsedBefore = state.elapsed
    }

    /// Seconds of training in this run, across processes.
    public var elapsed: Double { elapsedBefore + (clock.now - started).inSeconds }

    /// Tokens per second of training in this stage (this process; evaluations left out, so the line after an
    /// evaluation shows the training rate) and the estimated seconds of training steps left in it.
    var stageRate: (tokensPerSecond: Double, eta: Double) {
        let seconds = max((clock.now - stageStarted).inSeconds - stageEvaluating, 1e-9)
        let steps = max(state.step - stageStartStep, 1)
        return (Double(state.tokensSeen - stageStartTokens) / max(seconds, 1e-9), seconds / Double(steps) * Double(state.totalSteps - state.step))
    }

    func beginStage(optimizer: AdamW) {
        self.optimizer = optimizer
        stageStarted = clock.now
        stageStartTokens = state.tokensSeen
        stageStartStep = state.step
        stageEvaluating = 0
    }

    /// The global step (stage-2 steps counted after stage 1's).
    var globalStep: Int { (state.stage == 2 ? state.stage1Steps : 0) + state.step }

    /// Evaluates (`task.evaluate`), appends the result to metrics.jsonl and returns it; `initial` marks the evaluation
    /// before any training (stage 0, step 0).
    @discardableResult
    public func evaluateAndRecord(initial: Bool = false) throws -> (point: EvalPoint, fields: [String: Any]) {
        let evaluationStarted = clock.now
        defer { stageEvaluating += (clock.now - evaluationStarted).inSeconds }
        var fields = try task.evaluate()
        fields.merge(["stage": initial ? 0 : state.stage, "step": initial ? 0 : state.step, "global_step": initial ? 0 : globalStep]) { _, new in new }
        // Every process reads the evaluation back from the same line (rank 0 also writes it).
        let point = try group.agree { try folder.metrics.append(evaluation: fields) }
        return (point, fields)
    }

    /// Writes a checkpoint of the current state (atomically; older ones beyond `keep_checkpoints` are removed). With
    /// `name` (`CheckpointStore.bestName`) it replaces that checkpoint instead and is not the run's newest.
    @discardableResult
    public func checkpoint(as name: String? = nil) throws -> URL {
        state.elapsed = elapsed
        // Rank 0 writes; every process learns whether it could.
        let url = try group.agree { () -> URL in
            guard group.isMain else { return folder.checkpoints.directory.appendingPathComponent(name ?? CheckpointStore.folderName(state)) }
            guard let optimizer else { throw FileError(file: folder.checkpoints.directory.path, message: "no stage has started: nothing to checkpoint", kind: .internal) }
            return try folder.checkpoints.save(files: task.checkpointFiles(state: state, optimizer: optimizer), state: state,
                                               keep: recipe.train.keepCheckpoints, as: name)
        }
        if name == nil { lastCheckpoint = url }
        return url
    }
}
