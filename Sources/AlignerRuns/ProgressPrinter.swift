import Foundation

/// Prints training progress: a live line rewritten in place on a terminal, plain periodic lines otherwise.
public final class ProgressPrinter {
    public let isTerminal: Bool
    public let every: Int
    private var lastWidth = 0

    public init(every: Int, isTerminal: Bool = isatty(STDOUT_FILENO) != 0) {
        self.every = max(1, every)
        self.isTerminal = isTerminal
    }

    public static func duration(_ s: Double) -> String {
        guard s.isFinite && s >= 0 else { return "?" }
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
    }

    /// One progress update; on a terminal every step redraws the line, elsewhere every `every` steps print one.
    /// `label` replaces "stage N" (e.g. "reward").
    public func update(stage: Int, step: Int, total: Int, loss: Double, lr: Double, gradNorm: Double,
                       tokensPerSecond: Double, elapsed: Double, eta: Double, label: String? = nil) {
        let text = String(format: "%@  step %d/%d  loss %.4f  lr %.2e  grad %.3f  %.0f tok/s  elapsed %@  eta %@",
                          (label ?? "stage \(stage)") as NSString, step, total, loss, lr, gradNorm, tokensPerSecond, Self.duration(elapsed) as NSString,
                          Self.duration(eta) as NSString)
        if isTerminal {
            let pad = max(0, lastWidth - text.count)
            FileHandle.standardOutput.write(Data(("\r" + text + String(repeating: " ", count: pad)).utf8))
            lastWidth = text.count
        } else if step % every == 0 || step == total {
            print(text)
            fflush(nil)
        }
    }

    /// A message on its own line (ends a live line first).
    public func message(_ text: String) {
        if isTerminal && lastWidth > 0 { FileHandle.standardOutput.write(Data("\n".utf8)); lastWidth = 0 }
        print(text)
        fflush(nil)
    }
}
