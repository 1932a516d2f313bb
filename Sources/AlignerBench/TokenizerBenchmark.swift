import AlignerTensor
import AlignerTokenizers
import Foundation

/// Encoding throughput of a tokenizer on one core.
public enum TokenizerBenchmark {
    public struct Result: Sendable {
        public let bytes: Int
        public let tokens: Int
        public let seconds: Double
        public var megabytesPerSecond: Double { Double(bytes) / seconds / 1e6 }
        public var line: String {
            String(format: "encoded %.2f MB into %d tokens in %.3f s: %.2f MB/s, %.0f tokens/s (one core, cold cache)",
                   Double(bytes) / 1e6, tokens, seconds, megabytesPerSecond, Double(tokens) / seconds)
        }
    }

    /// Encodes `texts` once with a fresh copy of the tokenizer (so the word cache starts empty) and times it.
    public static func run(tokenizerJSON: Data, texts: [String]) throws -> Result {
        let tokenizer = try Tokenizer.load(json: tokenizerJSON)
        let bytes = texts.reduce(0) { $0 + $1.utf8.count }
        let clock = ContinuousClock()
        var tokens = 0
        let start = clock.now
        for t in texts { tokens += tokenizer.encode(t).count }
        let d = clock.now - start
        return Result(bytes: bytes, tokens: tokens, seconds: d.inSeconds)
    }
}
