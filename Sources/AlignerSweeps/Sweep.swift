import AlignerData
import AlignerDistributed
import AlignerFiles
import AlignerRecipes
import AlignerRuns
import AlignerTraining
import Foundation

/// The identity warm-up ablation: one two-stage run per warm-up proportion p, from the same initial weights, seed,
/// evaluation set and stage-2 budget, so that the arms differ only in p. Each arm lives in its own folder; a stopped
/// sweep resumes arm by arm.
public final class Sweep {
    public let recipe: Recipe
    public let directory: URL
    public var isTerminal: Bool
    /// Retrain (from scratch) arms whose folders hold a run of a different recipe, instead of refusing.
    public var restart = false

    public init(recipe: Recipe, isTerminal: Bool = isatty(STDOUT_FILENO) != 0) {
        self.recipe = recipe
        directory = URL(fileURLWithPath: recipe.outputDir).appendingPathComponent(recipe.name)
        self.isTerminal = isTerminal
    }

    /// One run of the sweep: a warm-up proportion, a seed and a point of the grid.
    public struct Arm: Sendable {
        public var percent: Double
        public var seed: Int
        /// The grid's keys and values (JSON text) for this arm, in the grid's key order.
        public var point: [Recipe.GridAxis.Value]
        /// The run's recipe (name = the arm's folder name).
        public var recipe: Recipe
        /// Index of the grid point (arms of one point share a tokenizer).
        public var pointIndex: Int
        public var name: String { recipe.name }
    }

    /// A finished arm and its result.
    public struct ArmResult: Sendable {
        public var arm: Arm
        public var result: RunResult
        /// The run's corrections judged by `sweep.judge` (nil without one).
        public var judgement: RunJudgement?
        /// The corrections the run's last evaluation generated (`train.generate_eval`), when it kept them.
        public var lastEvaluation: HeldOutCorrections?

        public init(arm: Arm, result: RunResult, judgement: RunJudgement? = nil, lastEvaluation: HeldOutCorrections? = nil) {
            self.arm = arm
            self.result = result
            self.judgement = judgement
            self.lastEvaluation = lastEvaluation
        }

        /// The corrections reports show: the judged ones, else the last evaluation's.
        public var corrections: HeldOutCorrections? { judgement?.corrected ?? lastEvaluation }
    }

    static func armName(_ p: Double) -> String {
        p == p.rounded() ? "arm-p\(Int(p))" : "arm-p" + String(format: "%g", p).replacingOccurrences(of: ".", with: "_")
    }

    /// A grid value as a folder-name part: letters, digits and ".+-_" kept, quotes dropped, anything else "_".
    static func folderPart(_ value: String) -> String {
        let kept = value.unicodeScalars.compactMap { c -> String? in
            if c == "\"" { return nil }
            let ok = (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || ".+-_".unicodeScalars.contains(c)
            return ok ? String(c) : "_"
        }.joined()
        return String(kept.prefix(40))
    }

    /// Every arm in the order they run: seed by seed, grid point by grid point, proportion by proportion (so that a
    /// stopped sweep has whole seeds done). Each grid point's recipe is validated here, before anything runs.
    public static func arms(of recipe: Recipe) throws -> [Arm] {
        var points: [[Recipe.GridAxis.Value]] = [[]]
        for axis in recipe.sweep.grid {
            points = points.flatMap { point in axis.values.map { point + [Recipe.GridAxis.Value(key: axis.key, json: $0)] } }
        }
        let seeds = recipe.sweep.seeds.isEmpty ? [recipe.seed] : recipe.sweep.seeds
        let splitSeed = recipe.data.splitSeed >= 0 ? recipe.data.splitSeed : recipe.seed
        var base = recipe
        base.sweep.grid = []
        guard let tree = try JSONSerialization.jsonObject(with: base.jsonData()) as? [String: Any] else {
            throw RecipeError(key: "", message: "the recipe does not serialise to a table")
        }
        var pointRecipes: [Recipe] = []
        for point in points {
            var t = tree
            do {
                for v in point { try Recipe.set(Recipe.jsonValue(v.json), at: v.key.split(separator: ".").map(String.init), in: &t) }
                pointRecipes.append(try Recipe(tree: t))
            } catch let e as RecipeError {
                let where_ = point.map { "\($0.key) = \($0.json)" }.joined(separator: ", ")
                throw RecipeError(key: "sweep.grid", message: "the arm with \(where_): \(e)")
            }
        }
        var arms: [Arm] = []
        var names = Set<String>()
        let directory = URL(fileURLWithPath: recipe.outputDir).appendingPathComponent(recipe.name)
        var sharedTokenizer: [Int: String] = [:]  // by grid point: the tokenizer the point's first arm trains
        for seed in seeds {
            for (index, (point, pointRecipe)) in zip(points, pointRecipes).enumerated() {
                for p in recipe.sweep.warmupPercents {
                    var r = pointRecipe
                    var name = armName(p) + point.map { "-\($0.key)=\(folderPart($0.json))" }.joined()
                    if !recipe.sweep.seeds.isEmpty {
                        name += "-seed\(seed)"
                        r.seed = seed
                        r.data.splitSeed = splitSeed  // one evaluation set for every seed
                    }
                    if names.contains(name) { name += "-\(index)" }
                    names.insert(name)
                    r.name = name
                    r.outputDir = directory.path
                    r.data.warmupPercent = p
                    r.sweep = Recipe.SweepSection()
                    if r.tokenizer.path.isEmpty && r.model.initFrom == "scratch" {
                        if let shared = sharedTokenizer[index] { r.tokenizer.path = shared } else {
                            sharedTokenizer[index] = directory.appendingPathComponent(name).appendingPathComponent("tokenizer.json").path
                        }
                    }
                    arms.append(Arm(percent: p, seed: r.seed, point: point, recipe: r, pointIndex: index))
                }
            }
        }
        return arms
    }

    /// Why a finished or started arm's folder cannot be reused for `arm` (nil when it can, or holds nothing).
    func mismatch(_ arm: Arm, in armDir: URL) -> String? {
        // A folder without a checkpoint or a result holds nothing to reuse: the arm starts afresh there anyway.
        let hasWork = FileManager.default.fileExists(atPath: armDir.appendingPathComponent("result.json").path)
            || !CheckpointStore(directory: armDir.appendingPathComponent("checkpoints")).complete(verify: false).isEmpty
        guard hasWork else { return nil }
        let recipeURL = armDir.appendingPathComponent("recipe.json")
        var changed: [String] = []
        if FileManager.default.fileExists(atPath: recipeURL.path) {
            guard let saved = try? Recipe.load(path: recipeURL.path) else { return "its recipe.json cannot be read" }
            changed = arm.recipe.differences(from: saved)
        }
        if !changed.isEmpty { return changed.joined(separator: ", ") }
        if let data = try? Data(contentsOf: armDir.appendingPathComponent("result.json")),
           let done = try? ResultJSON.decode(RunResult.self, from: data),
           let recorded = done.recipeFingerprint, recorded != arm.recipe.fingerprint {
            return "its result's recipe fingerprint \(recorded) differs from \(arm.recipe.fingerprint)"
        }
        return nil
    }

    /// Runs every arm not yet finished and writes the reports. Returns the arms' results in the order they run.
    /// Before anything runs, every arm folder is checked against its recipe: a folder holding a run of another
    /// recipe is refused, naming the differing keys (with `restart`, it is retrained instead).
    public func run(say: (String) -> Void = { print($0); fflush(nil) }) throws -> [ArmResult] {
        let arms = try Self.arms(of: recipe)
        // Rank 0 (the only process outside MPI) locks the folder, checks it and decides what each arm does; the other
        // processes of a data-parallel sweep follow that plan.
        let group = ProcessGroup.current
        var lock: RunLock?
        defer { withExtendedLifetime(lock) {} }
        let plan = try group.agree { () -> [ArmAction] in
            guard group.isMain else { return [] }
            // One sweep process per folder (each arm's run folder has its own lock too).
            lock = try RunLock(folder: directory)
            TemporaryFiles.removeStale(in: directory, lockHeld: true)
            return try planArms(arms)
        }
        let actions = group.isDistributed ? try group.broadcast(plan, as: [ArmAction].self) : plan
        var results: [ArmResult] = []
        for (arm, action) in zip(arms, actions) {
            let armDir = directory.appendingPathComponent(arm.name)
            let resultURL = armDir.appendingPathComponent("result.json")
            let label = "arm \(arm.name)"
            if action == .finished, let data = try? Data(contentsOf: resultURL), let done = try? ResultJSON.decode(RunResult.self, from: data) {
                say("\(label): already finished (\(resultURL.path))")
                results.append(ArmResult(arm: arm, result: done))
            } else {
                say("\(label): \(action == .restart ? "retraining (its folder held a different recipe's run)" : action == .resume ? "resuming" : "starting") in \(armDir.path)")
                let trainer = Trainer(recipe: arm.recipe, isTerminal: isTerminal)
                results.append(ArmResult(arm: arm, result: try trainer.run(resume: action == .resume, restart: action == .restart)))
            }
        }
        try group.agree {
            guard group.isMain, !recipe.sweep.judge.isEmpty else { return }
            // Rank 0 judges every run (reusing each run's judge.json while it applies); the others wait.
            let judge = try SweepJudge(recipe: recipe)
            say("judging each run's corrections of \(recipe.sweep.judgeRecords) held-out records with \(judge.judge.source.path)")
            for i in results.indices {
                results[i].judgement = try judge.judgement(of: results[i], say: say)
            }
        }
        try group.agree {
            guard group.isMain else { return }
            // The reports show the judged corrections, else those the run's last evaluation kept.
            for i in results.indices where results[i].judgement?.corrected == nil {
                let url = URL(fileURLWithPath: results[i].result.runDirectory).appendingPathComponent(HeldOutCorrections.file)
                guard let data = try? Data(contentsOf: url) else { continue }  // (a run without train.generate_eval keeps none)
                guard let kept = try? ResultJSON.decode(HeldOutCorrections.self, from: data) else {
                    say("note: \(url.path) is damaged (not the corrections a run keeps); report.html leaves out the corrections of \(results[i].arm.name)")
                    continue
                }
                results[i].lastEvaluation = kept
            }
            let report = SweepReport(recipe: recipe, results: results)
            try AtomicFile.write(Data(report.html().render().utf8), to: directory.appendingPathComponent("report.html"))
            try AtomicFile.write(Data(report.markdown().utf8), to: directory.appendingPathComponent("report.md"))
            try AtomicFile.write(Data(report.svg().utf8), to: directory.appendingPathComponent("eval-loss.svg"))
            try AtomicFile.write(report.json(), to: directory.appendingPathComponent("report.json"))
            try AtomicFile.write(Data(report.csv().utf8), to: directory.appendingPathComponent("report.csv"))
        }
        return results
    }

    /// What the sweep does with an arm.
    enum ArmAction: String, Codable {
        case finished, start, resume, restart
    }

    /// Each arm's action, after checking every arm folder against its recipe (refusing, unless `restart`, folders that
    /// hold another recipe's run); records the sweep's recipe.
    func planArms(_ arms: [Arm]) throws -> [ArmAction] {
        var stale = Set<String>()
        var refusals: [String] = []
        for arm in arms {
            guard let why = mismatch(arm, in: directory.appendingPathComponent(arm.name)) else { continue }
            stale.insert(arm.name)
            refusals.append("\(arm.name): \(why)")
        }
        if !refusals.isEmpty && !restart {
            throw RecipeError(key: "", message: "\(directory.path) holds arms trained with a different recipe (keys recorded → now):\n  " + refusals.joined(separator: "\n  ") + "\nRun the sweep with the recipe and overrides it was started with, give it another name, or pass --restart to retrain these arms")
        }
        try AtomicFile.write(recipe.jsonData(), to: directory.appendingPathComponent("recipe.json"))
        return arms.map { arm in
            let armDir = directory.appendingPathComponent(arm.name)
            if stale.contains(arm.name) { return .restart }
            if let data = try? Data(contentsOf: armDir.appendingPathComponent("result.json")), (try? ResultJSON.decode(RunResult.self, from: data)) != nil {
                return .finished
            }
            return CheckpointStore(directory: armDir.appendingPathComponent("checkpoints")).complete(verify: false).isEmpty ? .start : .resume
        }
    }
}
