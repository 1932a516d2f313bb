import AlignerFormats
import AlignerMeasures
import AlignerRecipes
import Foundation

/// Results of one stage.
public struct StageSummary: Codable, Equatable, Sendable {
    public var stage: Int
    public var steps: Int
    public var examples: Int
    public var finalTrainLoss: Double
    public var evalLoss: Double
    public var bestEvalLoss: Double

    public init(stage: Int, steps: Int, examples: Int, finalTrainLoss: Double, evalLoss: Double, bestEvalLoss: Double) {
        self.stage = stage
        self.steps = steps
        self.examples = examples
        self.finalTrainLoss = finalTrainLoss
        self.evalLoss = evalLoss
        self.bestEvalLoss = bestEvalLoss
    }
}

/// One evaluation during a run.
public struct EvalPoint: Codable, Equatable, Sendable {
    public var stage: Int
    public var step: Int
    public var globalStep: Int
    public var evalLoss: Double
    /// Metrics of greedy corrections of the first `train.generate_eval` held-out records (nil when not generated).
    public var generation: CorrectionMetrics?

    public init(stage: Int, step: Int, globalStep: Int, evalLoss: Double, generation: CorrectionMetrics? = nil) {
        self.stage = stage
        self.step = step
        self.globalStep = globalStep
        self.evalLoss = evalLoss
        self.generation = generation
    }

    /// The value of a `train.best_metric` (lower is better).
    public func metric(_ name: BestMetric) -> Double? {
        switch name {
        case .evalLoss: evalLoss
        case .editToReference: generation?.editToReference
        }
    }
}

/// The checkpoint kept for the best stage-2 evaluation.
public struct BestCheckpoint: Codable, Equatable, Sendable {
    /// `train.best_metric` (written as "eval_loss" or "edit_to_reference"; lower is better).
    public var metric: BestMetric
    public var value: Double
    public var stage: Int
    public var step: Int
    public var globalStep: Int
    /// The checkpoint folder (`checkpoints/best`).
    public var path: String

    public init(metric: BestMetric, value: Double, stage: Int, step: Int, globalStep: Int, path: String) {
        self.metric = metric
        self.value = value
        self.stage = stage
        self.step = step
        self.globalStep = globalStep
        self.path = path
    }
}

/// Everything a finished run reports (also written as `result.json` in the run folder).
public struct RunResult: Codable, Sendable {
    public var name: String
    public var warmupPercent: Double
    public var warmupRecords: Int
    public var trainRecords: Int
    public var evalRecords: Int
    public var stages: [StageSummary]
    public var evalCurve: [EvalPoint]
    public var trainLosses: [Double]
    public var tokensSeen: Int
    public var wallSeconds: Double
    public var runDirectory: String
    public var finalCheckpoint: String
    /// Eval loss of the initial model, before any training.
    public var initialEvalLoss: Double
    /// Generation metrics of the initial model (with `train.generate_eval`).
    public var initialGeneration: CorrectionMetrics?
    /// Peak resident memory of the process that finished the run, in MiB (absent in older results).
    public var peakResidentMiB: Double?
    /// `Recipe.fingerprint` of the recipe that produced the run (absent in older results).
    public var recipeFingerprint: String?
    /// The best checkpoint (`checkpoints/best`) and the evaluation it was taken at, by `train.best_metric`.
    public var best: BestCheckpoint?
    /// Stage 2 stopped early (`train.early_stopping_patience`) after this many steps.
    public var stoppedEarlyAtStep: Int?
    /// `train.budget` and how it was spent ("fixed_steps: 200 steps in all = ..."; absent in older results).
    public var budget: String?

    public var bestEvalLoss: Double { evalCurve.map(\.evalLoss).min() ?? .nan }

    /// The figures an export's model card shows.
    public var trainingFigures: TrainingFigures {
        TrainingFigures(initialEvalLoss: initialEvalLoss, stageEvalLosses: stages.map { ($0.stage, $0.evalLoss) }, evalRecords: evalRecords,
                        best: best.map { .init(path: $0.path, stage: $0.stage, step: $0.step, metric: $0.metric.rawValue, value: $0.value) })
    }

    /// The result of the run that `model` (a checkpoint or a run folder) belongs to: `result.json` in it or in one of
    /// its two parent folders (a checkpoint of a run, or `checkpoints/best`); nil when there is none.
    public static func near(_ model: URL) -> RunResult? {
        var dir = model
        for _ in 0..<3 {
            if let d = try? Data(contentsOf: dir.appendingPathComponent("result.json")) { return try? ResultJSON.decode(RunResult.self, from: d) }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    public init(name: String, warmupPercent: Double, warmupRecords: Int, trainRecords: Int, evalRecords: Int, stages: [StageSummary], evalCurve: [EvalPoint], trainLosses: [Double], tokensSeen: Int, wallSeconds: Double, runDirectory: String, finalCheckpoint: String, initialEvalLoss: Double, initialGeneration: CorrectionMetrics? = nil, peakResidentMiB: Double? = nil, recipeFingerprint: String? = nil, best: BestCheckpoint? = nil, stoppedEarlyAtStep: Int? = nil, budget: String? = nil) {
        self.name = name
        self.warmupPercent = warmupPercent
        self.warmupRecords = warmupRecords
        self.trainRecords = trainRecords
        self.evalRecords = evalRecords
        self.stages = stages
        self.evalCurve = evalCurve
        self.trainLosses = trainLosses
        self.tokensSeen = tokensSeen
        self.wallSeconds = wallSeconds
        self.runDirectory = runDirectory
        self.finalCheckpoint = finalCheckpoint
        self.initialEvalLoss = initialEvalLoss
        self.initialGeneration = initialGeneration
        self.peakResidentMiB = peakResidentMiB
        self.recipeFingerprint = recipeFingerprint
        self.best = best
        self.stoppedEarlyAtStep = stoppedEarlyAtStep
        self.budget = budget
    }
}

