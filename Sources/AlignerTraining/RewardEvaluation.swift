import AlignerData
import AlignerDistributed
import AlignerModel
import AlignerOptim
import AlignerRecipes
import AlignerTensor
import Foundation

/// A reward model's quality on preference pairs: how often it scores the better response higher (pairwise accuracy;
/// a random judge scores 0.5), the mean margin r_better − r_worse, and the Bradley-Terry loss.
public struct RewardEvaluation: Codable, Equatable, Sendable {
    public var pairs: Int
    public var accuracy: Double
    public var meanMargin: Double
    public var loss: Double

    /// The pairwise accuracy of a judge that prefers the shorter response (fewer tokens; ties half): what length
    /// alone predicts, a baseline a trained reward model should beat.
    public static func shorterResponseAccuracy(_ pairs: [PreferencePair]) -> Double {
        guard !pairs.isEmpty else { return .nan }
        let right = pairs.reduce(0.0) { $0 + ($1.better.count < $1.worse.count ? 1 : $1.better.count == $1.worse.count ? 0.5 : 0) }
        return right / Double(pairs.count)
    }

    /// Scores `pairs` in batches of `batchSize` pairs (no gradients). Ties count as half right.
    public static func evaluate(_ model: RewardModel, _ pairs: [PreferencePair], batchSize: Int) throws -> RewardEvaluation {
        summary(of: try margins(model, pairs, batchSize: batchSize))
    }

    /// score(better) − score(worse) of each pair, scored in batches of `batchSize` pairs (no gradients).
    public static func margins(_ model: RewardModel, _ pairs: [PreferencePair], batchSize: Int) throws -> [Double] {
        guard batchSize >= 1 else { throw SettingError(setting: "batch_size", message: "must be at least 1, got \(batchSize)") }
        guard let pad = model.config.padTokenId else { throw SettingError(setting: "pad_token_id", message: "the reward model has none") }
        var out: [Double] = []
        out.reserveCapacity(pairs.count)
        for start in stride(from: 0, to: pairs.count, by: batchSize) {
            let part = Array(pairs[start..<min(pairs.count, start + batchSize)])
            let b = RewardExampleBuilder.batch(part, padId: pad)
            let s = try withNoGrad { try model.scores(ids: b.ids, batch: b.batch, time: b.time) }.scalars
            for i in 0..<part.count { out.append(Double(s[i]) - Double(s[part.count + i])) }
        }
        return out
    }

    /// Accuracy (ties half), mean margin and Bradley-Terry loss of pairs with these margins.
    public static func summary(of margins: [Double]) -> RewardEvaluation {
        var right = 0.0, margin = 0.0, loss = 0.0
        for d in margins {
            right += d > 0 ? 1 : d == 0 ? 0.5 : 0
            margin += d
            loss += d >= 0 ? Foundation.log1p(Foundation.exp(-d)) : -d + Foundation.log1p(Foundation.exp(d))
        }
        let n = Double(max(margins.count, 1))
        return RewardEvaluation(pairs: margins.count, accuracy: right / n, meanMargin: margin / n, loss: loss / n)
    }
}

/// A reward model's held-out evaluation on the pairs of one source file.
public struct SourceEvaluation: Codable, Equatable, Sendable {
    public var source: String
    public var evaluation: RewardEvaluation
    /// 95% Wilson interval of the accuracy (ties counted as half a success, rounded down).
    public var accuracyInterval: [Double]
    /// Accuracy of "the shorter response is better" on the same pairs.
    public var shorterResponseBaseline: Double
}
