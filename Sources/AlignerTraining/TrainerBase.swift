import AlignerDistributed
import AlignerRecipes
import AlignerRuns
import AlignerTensor
import Foundation

/// What every trainer holds (`Trainer`, `RewardTrainer`): the recipe, the run folder, the progress printer, the
/// threads, the processes training together, and the test hook that stops a run early.
public class TrainerBase {
    public let recipe: Recipe
    public let runDirectory: URL
    public var progress: ProgressPrinter
    /// Text lines for the log (default: stdout through the progress printer).
    public var quiet = false
    /// Threads and buffer pool for this run (from `train.threads` by default).
    public var compute: ComputeContext
    /// Stop (with a checkpoint) after this many steps of this process: a hook for tests of resumption, not a recipe key.
    public var stopAfterSteps: Int?
    /// The processes training together (data-parallel under mpirun; `ProcessGroup.current` by default). Rank 0 alone
    /// writes the run folder.
    public var group: ProcessGroup = .current

    /// A trainer of `recipe` writing `runDirectory` (default: `<output_dir>/<name>`); `isTerminal` (default: whether
    /// standard output is one) chooses a live progress line or periodic lines.
    public init(recipe: Recipe, runDirectory: URL? = nil, isTerminal: Bool? = nil) {
        self.recipe = recipe
        self.runDirectory = runDirectory ?? URL(fileURLWithPath: recipe.outputDir).appendingPathComponent(recipe.name)
        progress = ProgressPrinter(every: recipe.train.logEvery, isTerminal: isTerminal ?? (isatty(STDOUT_FILENO) != 0))
        compute = Self.computeContext(for: recipe)
    }

    func say(_ s: String) { if !quiet { progress.message(s) } }

    /// Runs `body` in this trainer's compute context. A `TrainingStop` (interrupt, divergence) is one every process
    /// of a data-parallel run took at the same step, so MPI may end normally.
    func running<R>(_ body: () throws -> R) throws -> R {
        do {
            return try compute.run { try body() }
        } catch let stop as TrainingStop {
            group.noteAgreedFailure()
            throw stop
        }
    }

    /// Says how a data-parallel run is split (nothing for one process).
    func announceDataParallel() {
        guard group.isDistributed else { return }
        let hosts = Array(Set(group.hosts)).sorted()
        let on = hosts.count > 1 ? " on \(hosts.count) hosts (\(group.hosts.enumerated().map { "rank \($0.offset): \($0.element)" }.joined(separator: ", ")))" : ""
        say("data-parallel: \(group.size) processes (MPI)\(on), \(compute.threads) thread\(compute.threads == 1 ? "" : "s") each; rank 0 writes \(runDirectory.path)")
    }

    /// Threads from `train.threads` (when positive), else the standard context; matrix products in `train.precision`.
    public static func computeContext(for recipe: Recipe) -> ComputeContext {
        let base = recipe.train.threads > 0 ? ComputeContext(threads: recipe.train.threads) : .standard
        return base.with(matmul: recipe.train.precision)
    }
}
