import AlignerErrors
import Foundation

/// Why a run stopped early.
public enum TrainingStop: AlignerError {
    case interrupted(checkpoint: URL)
    case stoppedAfterSteps(checkpoint: URL)
    case diverged(stage: Int, step: Int, loss: Double, lastCheckpoint: URL?)

    public var subject: FailureSubject { .none }
    public var kind: FailureKind {
        if case .interrupted = self { return .interrupted }
        return .stopped
    }

    public var description: String {
        switch self {
        case .interrupted(let c): return "interrupted; checkpoint written to \(c.path) (resume with --resume)"
        case .stoppedAfterSteps(let c): return "stopped after the requested number of steps; checkpoint at \(c.path)"
        case .diverged(let stage, let step, let loss, let last):
            return "loss became \(loss) at stage \(stage) step \(step); stopped. Last good checkpoint: \(last?.path ?? "none") (lower the learning rate or raise clipping)"
        }
    }
}
