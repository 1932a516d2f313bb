import Foundation

/// A learning-rate schedule: the rate for optimiser step `step` (0-based: the first update uses step 0), as Hugging
/// Face's `LambdaLR` schedulers apply it.
public enum LearningRateSchedule: Sendable, Equatable {
    /// The base rate throughout, after an optional linear warm-up.
    case constant(warmupSteps: Int = 0)
    /// Linear warm-up from 0, then half a cosine down to `minRatio` × base at `totalSteps`
    /// (`get_cosine_schedule_with_warmup`; with a minimum, `get_cosine_with_min_lr_schedule_with_warmup`).
    case cosine(warmupSteps: Int, totalSteps: Int, minRatio: Double = 0)

    /// Warm-up given as a ratio of the total steps (rounded up, as Hugging Face's `get_warmup_steps`).
    public static func warmupSteps(ratio: Double, totalSteps: Int) -> Int { Int((ratio * Double(totalSteps)).rounded(.up)) }

    /// The multiplier of the base rate at `step`.
    public func factor(at step: Int) -> Double {
        switch self {
        case .constant(let warmup):
            return step < warmup ? Double(step) / Double(max(1, warmup)) : 1
        case .cosine(let warmup, let total, let minRatio):
            if step < warmup { return Double(step) / Double(max(1, warmup)) }
            let progress = Double(step - warmup) / Double(max(1, total - warmup))
            let cosine = max(0, 0.5 * (1 + Foundation.cos(Double.pi * progress)))
            return minRatio + (1 - minRatio) * cosine
        }
    }

    /// The rate at `step` for base rate `lr`.
    public func rate(at step: Int, base lr: Float) -> Float { Float(Double(lr) * factor(at: step)) }
}
