import AlignerDistributed
import AlignerFiles
import AlignerRecipes
import AlignerRuns
import AlignerTensor
import Foundation

/// The life of a training run, the same for an Aligner and a reward model, one process or a data-parallel job:
///
/// 1. `open`: rank 0 locks the run folder (another process holding it is refused), empties it with `--restart`, finds
///    the newest intact checkpoint with `--resume`, refuses a different recipe or changed input files, and records the
///    start; the other ranks learn the outcome and open the folder read-only.
/// 2. The trainer restores the checkpoint, if any, and evaluates the initial weights of a fresh run.
/// 3. `train(stage:)` for each stage: optimiser steps (`StageLoop`), each followed by the observers in order
///    (`observers(...)`): divergence stops the run naming the last good checkpoint; progress appends the step to
///    metrics.jsonl; evaluation every `train.eval_every` steps and at the stage's end; the best checkpoint and early
///    stopping (Aligners' stage 2); checkpoints every `train.checkpoint_every` steps and at the stage's end, and on
///    Ctrl-C (or SIGTERM under mpirun, on the step every rank agreed on) one more checkpoint and
///    `TrainingStop.interrupted`, so that `--resume` continues exactly.
/// 4. The trainer writes its result (rank 0).
public struct RunLifecycle {
    public let recipe: Recipe
    public let kind: RunKind
    public let runDirectory: URL
    public let group: ProcessGroup
    let say: (String) -> Void

    public init(recipe: Recipe, kind: RunKind, runDirectory: URL, group: ProcessGroup, say: @escaping (String) -> Void) {
        self.recipe = recipe
        self.kind = kind
        self.runDirectory = runDirectory
        self.group = group
        self.say = say
    }

    /// What rank 0 found in the run folder, for the other processes.
    struct Start: Codable {
        var latest: String?
        var finished = false
    }

    /// The opened run folder (locked by rank 0), the checkpoint to resume from, and the run's result when it has
    /// already finished there.
    public struct Opening<Result> {
        public let folder: RunFolder
        public let latest: URL?
        public let finished: Result?
    }

    /// Opens the run folder (step 1). `inputs` names the files the run reads (fingerprinted); `finishedResult` reads
    /// the result of a run that has finished at a checkpoint (nil when it has not). A finished run is said so and
    /// returned as it is.
    public func open<Result>(resume: Bool, restart: Bool, inputs: () throws -> [(role: String, path: String)],
                             finishedResult: (RunFolder, URL?) -> Result?) throws -> Opening<Result> {
        var writer: RunFolder?
        var done: Result?
        // The run folder must not be, hold or lie inside what the run reads (`--restart` empties it).
        let read = group.isMain ? try inputs() : []
        if group.isMain { try OutputPaths.check(runDirectory.path, folder: true, inputs: read.map(\.path)) }
        let start = try group.agree { () -> Start in
            guard group.isMain else { return Start() }
            let folder = try RunFolder(directory: runDirectory, say: say)
            writer = folder
            if restart, try folder.clear() { say("--restart: removed what \(runDirectory.path) held; starting afresh") }
            let latest = try folder.startingPoint(resume: resume && !restart)
            if latest != nil { try folder.checkSameRecipe(recipe, kind: kind) }
            done = finishedResult(folder, latest)
            if done != nil { return Start(latest: latest?.path, finished: true) }
            let fingerprints = try FileFingerprints.record(read)
            if let latest { try folder.checkResumable(inputs: fingerprints, from: latest, say: say) } else {
                if resume && !restart { say("no checkpoint to resume in \(folder.checkpoints.directory.path); starting from the beginning") }
                try folder.recordStart(recipe, inputs: fingerprints)
            }
            return Start(latest: latest?.path)
        }
        let shared = group.isDistributed ? try group.broadcast(start, as: Start.self) : start
        let folder = writer ?? RunFolder(follower: runDirectory)
        let latest = shared.latest.map { URL(fileURLWithPath: $0) }
        if shared.finished {
            if done == nil { done = finishedResult(folder, latest) }  // the other ranks read what rank 0 found
            say("\(runDirectory.path) has already finished; nothing to resume")
        }
        return Opening(folder: folder, latest: latest, finished: shared.finished ? done : nil)
    }

    /// The observers of every step, in their order: divergence, progress, evaluation, the best checkpoint (when
    /// `best` is given), checkpoints and interrupts. `stopAfterSteps` is a test hook (stop with a checkpoint after that
    /// many steps of this process).
    public func observers(progress: ProgressPrinter, quiet: Bool, label: String? = nil, best: BestCheckpointObserver? = nil,
                          stopAfterSteps: Int?) -> [TrainingObserver] {
        var list: [TrainingObserver] = [DivergenceGuard(), ProgressObserver(printer: progress, quiet: quiet, label: label),
                                        EvaluationObserver(every: recipe.train.evalEvery)]
        if let best { list.append(best) }
        list.append(CheckpointPolicy(every: recipe.train.checkpointEvery, stopAfterSteps: stopAfterSteps))
        return list
    }

    /// Trains one stage (step 3): steps until the stage's planned steps are done or an observer ends it, each step
    /// passed through `observers`; the stage is then marked done in `run.state`.
    public func train<L: StageLoop>(stage loop: inout L, run: TrainingRun, observers: [TrainingObserver]) throws {
        run.beginStage(optimizer: loop.optimizer)
        while run.state.step < loop.totalSteps {
            let stats = try loop.takeStep()
            ComputeContext.current.pool.endStep()
            run.state.position = loop.position
            run.state.optimizerStep = loop.optimizer.step
            if stats.isFinite {
                run.state.step = loop.step
                run.state.tokensSeen += stats.tokens
                run.stepsThisProcess += 1
            }
            var event = StepEvent(stats: stats)
            for observer in observers { try observer.stepEnded(&event, run) }
            if event.endsStage { break }
        }
        run.state.stageDone = true
    }
}
