import AlignerData
import AlignerDistributed
import AlignerFiles
import AlignerFormats
import AlignerMeasures
import AlignerModel
import AlignerRecipes
import AlignerRuns
import AlignerSafetensors
import AlignerTensor
import AlignerTokenizers
import Foundation

/// One evaluation of a reward model on the held-out pairs during a run.
public struct RewardEvalPoint: Codable, Equatable, Sendable {
    public var step: Int
    public var evaluation: RewardEvaluation
}

/// Everything a finished reward-model run reports (also `result.json` in its folder).
public struct RewardResult: Codable, Sendable {
    public var kind = "reward_model"
    public var name: String
    /// Pairs trained on and held out (by question).
    public var trainPairs: Int
    public var evalPairs: Int
    /// Records left out because their two responses are the same text (no preference to learn).
    public var identicalPairsSkipped: Int
    public var steps: Int
    /// Held-out pairs before training and after the last step.
    public var initial: RewardEvaluation
    public var final: RewardEvaluation
    public var evalCurve: [RewardEvalPoint]
    /// Held-out accuracy of "the shorter response is better" (length alone; ties half).
    public var shorterResponseBaseline: Double
    public var tokensSeen: Int
    public var wallSeconds: Double
    public var runDirectory: String
    public var finalCheckpoint: String
    /// The exported reward model (Hugging Face sequence-classification folder): what `--judge` takes.
    public var model: String
    public var peakResidentMiB: Double
    /// `Recipe.fingerprint(for: .reward)`.
    public var recipeFingerprint: String
    /// With several data files: the final held-out evaluation per file (absent with one file, and in older results).
    public var perSource: [SourceEvaluation]?
}
