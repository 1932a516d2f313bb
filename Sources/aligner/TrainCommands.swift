import AlignerHandoff
import AlignerRecipes
import AlignerRuns
import AlignerSweeps
import AlignerTraining
import AlignerTensor
import ArgumentParser
import Foundation

/// Recipe file and overrides.
struct RecipeOptions: ParsableArguments {
    @Argument(help: "Recipe file (TOML, or a run's recipe.json).") var recipe: String
    @Option(name: .customLong("set"), help: "Override a recipe key, e.g. --set stage2.lr=3e-4 (repeatable).") var overrides: [String] = []

    func load() throws -> Recipe { try Recipe.load(path: recipe, overrides: overrides) }

    /// Loads the recipe and readies a training process: Ctrl-C handling, threads, and the BLAS line.
    func prepareRun() throws -> Recipe {
        let recipe = try load()
        Interrupt.install()
        print(Trainer.computeContext(for: recipe).run { BLAS.summary })
        return recipe
    }
}

/// How a training command treats the run folder: continue it, or empty it first.
struct RunStartOptions: ParsableArguments {
    @Flag(help: "Continue from the newest complete checkpoint of the run.") var resume = false
    @Flag(help: "Delete what the run folder holds (checkpoints, metrics, result) and start afresh.") var restart = false

    func validate() throws {
        if resume && restart { throw ValidationError("--resume and --restart exclude each other") }
    }
}

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Two-stage Aligner training (identity warm-up, then Q-A-C) from a recipe.")
    @OptionGroup var options: RecipeOptions
    @OptionGroup var start: RunStartOptions

    func run() throws {
        let recipe = try options.prepareRun()
        let trainer = Trainer(recipe: recipe)
        // For tests of resumption: stop (with a checkpoint) after N steps of this process. Not a recipe key.
        if let n = ProcessInfo.processInfo.environment["ALIGNERKIT_STOP_AFTER_STEPS"].flatMap(Int.init), n > 0 { trainer.stopAfterSteps = n }
        do {
            let r = try trainer.run(resume: start.resume, restart: start.restart)
            print("\nrun \(r.name) finished in \(ProgressPrinter.duration(r.wallSeconds)); \(r.tokensSeen) tokens seen; peak memory \(Int(r.peakResidentMiB ?? 0)) MiB")
            print(String(format: "eval loss before training: %.4f", r.initialEvalLoss))
            for s in r.stages {
                print(String(format: "stage %d: %d steps on %d examples, final train loss %.4f, eval loss %.4f (best %.4f)",
                             s.stage, s.steps, s.examples, s.finalTrainLoss, s.evalLoss, s.bestEvalLoss))
            }
            print("run folder: \(r.runDirectory) (metrics.jsonl, splits/, tokenizer.json, result.json)")
            print("final checkpoint: \(r.finalCheckpoint)")
        } catch let stop as TrainingStop {
            print("\n\(stop)")
            throw ExitCode(ExitStatus(stop.kind).rawValue)
        }
    }
}

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep", abstract: "The identity warm-up proportion sweep: one two-stage run per proportion, then a report.")
    @OptionGroup var options: RecipeOptions
    @Flag(help: "Retrain arms whose folders hold runs of a different recipe (otherwise the sweep stops, naming the keys that differ).") var restart = false

    func run() throws {
        let recipe = try options.prepareRun()
        let sweep = Sweep(recipe: recipe)
        sweep.restart = restart
        let clock = ContinuousClock()
        let start = clock.now
        do {
            let results = try sweep.run()
            let report = SweepReport(recipe: recipe, results: results)
            print("\n" + report.armTable().markdown())
            print(report.winnerSummary(), terminator: "")
            print("sweep wall time (this process): \(clock.now - start)")
            print("report: \(sweep.directory.appendingPathComponent("report.md").path) (and report.json, report.csv)")
            print("chart:  \(sweep.directory.appendingPathComponent("eval-loss.svg").path)")
            print("html:   \(sweep.directory.appendingPathComponent("report.html").path) (open it in a browser: the tables, the chart, and every arm's corrections side by side)")
        } catch let stop as TrainingStop {
            print("\n\(stop)\nrun the same command again to resume the sweep")
            throw ExitCode(ExitStatus(stop.kind).rawValue)
        }
    }
}

struct HandoffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "handoff",
        abstract: "Hand a recipe's two-stage training to a GPU trainer (Hugging Face TRL): splits, initial model, SFTConfigs, script.",
        discussion: "aligner handoff recipes/warmup-sweep.toml --to trl handoff/   then, on a GPU machine: python handoff/train_aligner.py")
    @OptionGroup var options: RecipeOptions
    @Option(name: .customLong("to"), help: "The trainer to hand off to (trl).") var target: String
    @Argument(help: "Output folder (new, empty, or an earlier hand-off's).") var output: String

    func validate() throws {
        guard target == "trl" else { throw ValidationError("--to must be trl (Hugging Face TRL), got '\(target)'") }
        guard !output.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("the output folder is an empty path; name a new or empty folder") }
    }

    func run() throws {
        let recipe = try options.load()
        let s = try TRLHandoff(recipe: recipe, directory: URL(fileURLWithPath: output)).write()
        print("wrote the hand-off of \(recipe.name) to TRL in \(output): stages \(s.stages.map(String.init).joined(separator: ", ")); "
              + "\(s.warmup) warm-up, \(s.train) train, \(s.eval) eval examples (\(s.dropped) left out: correction longer than max_length); "
              + "initial model (\(s.parameters) parameters) in model/")
        print("next: python \(output)/train_aligner.py   (see \(output)/README.md; accelerate and DeepSpeed commands there)")
    }
}
