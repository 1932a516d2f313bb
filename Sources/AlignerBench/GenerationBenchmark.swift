import AlignerModel
import AlignerTensor
import Foundation

/// The decoding benchmark: prompt processing (prefill) and greedy decoding with the key/value cache, through
/// `LlamaModel.generate`, as users run it. `scripts/bench/pytorch_generate_bench.py` times transformers on the same
/// model, the same prompt ids and the same number of steps, and prints the same figures.
public enum GenerationBenchmark {
    /// Measured figures (medians over the timed repeats).
    public struct Result: Sendable {
        public let parameters: Int
        /// Weight bytes a decoding step reads (Q8_0 or float32, as generation reads them).
        public let weightBytes: Int
        public let batch, promptTokens, newTokens: Int
        /// Seconds to run the prompt through the model and pick the first token.
        public let prefillSeconds: Double
        /// Seconds for the `newTokens - 1` decoding steps after the first token.
        public let decodeSeconds: Double
        public let peakMiB: Double

        public var prefillTokensPerSecond: Double { Double(batch * promptTokens) / prefillSeconds }
        public var decodeSteps: Int { max(newTokens - 1, 1) }
        public var decodeTokensPerSecond: Double { Double(batch * decodeSteps) / decodeSeconds }
        public var msPerStep: Double { decodeSeconds / Double(decodeSteps) * 1e3 }
        /// Weight bytes read per decoding step divided by its time: every matrix is read once per step.
        public var weightGBPerSecond: Double { Double(weightBytes) / (decodeSeconds / Double(decodeSteps)) / 1e9 }

        /// The lines the PyTorch script prints too.
        public var lines: [String] {
            [String(format: "prefill   %9.1f tokens/s  (%8.1f ms)", prefillTokensPerSecond, prefillSeconds * 1e3),
             String(format: "decode    %9.1f tokens/s  (%8.2f ms per step, %5.1f GB/s of weights)", decodeTokensPerSecond, msPerStep, weightGBPerSecond),
             String(format: "peak RSS %.0f MiB", peakMiB)]
        }
    }

    /// The prompt both benchmarks use: id(i) = (7919 i + 1) mod vocab.
    public static func promptIds(length: Int, vocab: Int) -> [Int] {
        (0..<length).map { (7919 * $0 + 1) % vocab }
    }

    /// SmolLM2-135M's shape with random weights and a context of 8192 (its own), for runs without a model file.
    public static func smolLM2Config() -> LlamaConfig {
        var config = TrainBenchmark.presets.first { $0.name == "smollm2" }!.config
        config.maxPositionEmbeddings = 8192
        config.ropeTheta = 100_000
        return config
    }

    /// Times `repeats` runs (after one untimed run) of `batch` copies of the benchmark prompt continued greedily for
    /// exactly `newTokens` tokens (no EOS stop). Throws `ModelInputError` for sizes out of range or beyond the context.
    public static func run(_ model: LlamaModel, batch: Int = 1, promptTokens: Int = 256, newTokens: Int = 128,
                           repeats: Int = 3) throws -> Result {
        for (name, value, least) in [("batch", batch, 1), ("prompt_tokens", promptTokens, 1), ("new_tokens", newTokens, 2), ("repeats", repeats, 1)]
        where value < least {
            throw ModelInputError(field: name, message: "must be at least \(least), got \(value)")
        }
        try model.checkGenerationMemory(prompts: batch, width: promptTokens, newTokens: newTokens)
        let prompt = promptIds(length: promptTokens, vocab: model.config.vocabSize)
        let options = GenerationOptions(maxNewTokens: newTokens, eosTokenIds: [])
        let clock = ContinuousClock()
        var prefill: [Double] = [], decode: [Double] = []
        for round in 0...repeats {
            let start = clock.now
            var first: ContinuousClock.Instant?
            var produced = 0
            _ = try model.generate(prompts: Array(repeating: prompt, count: batch), options: options) { _ in
                produced += 1
                if first == nil { first = clock.now }
            }
            let end = clock.now
            guard produced == newTokens, let first else {
                throw ModelInputError(field: "new_tokens", message: "generation stopped after \(produced) of \(newTokens) tokens")
            }
            if round > 0 {
                prefill.append((first - start).inSeconds)
                decode.append((end - first).inSeconds)
            }
        }
        let params = model.parameters.values.reduce(0) { $0 + $1.count }
        return Result(parameters: params, weightBytes: model.inferenceWeightBytes, batch: batch, promptTokens: promptTokens, newTokens: newTokens,
                      prefillSeconds: median(prefill), decodeSeconds: median(decode),
                      peakMiB: Double(peakResidentBytes()) / 1_048_576)
    }

    static func median(_ values: [Double]) -> Double {
        let s = values.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

/// The workload users run: many prompts of mixed lengths (Aligner prompts of real questions and answers) corrected
/// with continuous batching (`LlamaModel.generateContinuously`), until each ends or reaches `maxNewTokens`.
public enum ContinuousGenerationBenchmark {
    public struct Result: Sendable {
        public let prompts, slots, maxNewTokens: Int
        /// Prompt tokens in all, and the shortest, median and longest prompt.
        public let promptTokens: Int
        public let promptLengths: (shortest: Int, median: Int, longest: Int)
        /// Tokens generated in all (end tokens included).
        public let generatedTokens: Int
        /// Prompts that ended with an end token before `maxNewTokens`.
        public let ended: Int
        public let seconds: Double
        public let peakMiB: Double

        public var correctionsPerMinute: Double { Double(prompts) / seconds * 60 }
        public var generatedTokensPerSecond: Double { Double(generatedTokens) / seconds }

        public var lines: [String] {
            [String(format: "%d prompts of %d-%d tokens (median %d, %d in all), %d slots, at most %d new tokens; %d ended with an end token",
                    prompts, promptLengths.shortest, promptLengths.longest, promptLengths.median, promptTokens, slots, maxNewTokens, ended),
             String(format: "%.1f s: %.1f corrections/min, %.1f generated tokens/s (%d tokens), %.1f prompt+generated tokens/s",
                    seconds, correctionsPerMinute, generatedTokensPerSecond, generatedTokens, Double(promptTokens + generatedTokens) / seconds),
             String(format: "peak RSS %.0f MiB", peakMiB)]
        }
    }

    /// Corrects `prompts` once with `slots` slots (greedy, stopping at `eosTokenIds`) and times it.
    public static func run(_ model: LlamaModel, prompts: [[Int]], slots: Int, maxNewTokens: Int, eosTokenIds: [Int]) throws -> Result {
        let clock = ContinuousClock()
        let start = clock.now
        let r = try model.generateContinuously(prompts: prompts, options: GenerationOptions(maxNewTokens: maxNewTokens, eosTokenIds: eosTokenIds),
                                               slots: slots)
        let seconds = (clock.now - start).inSeconds
        let lengths = prompts.map(\.count).sorted()
        let ended = r.stoppedAtEOS.filter { $0 }.count
        return Result(prompts: prompts.count, slots: slots, maxNewTokens: maxNewTokens, promptTokens: lengths.reduce(0, +),
                      promptLengths: (lengths.first ?? 0, lengths.isEmpty ? 0 : lengths[lengths.count / 2], lengths.last ?? 0),
                      generatedTokens: r.tokens.reduce(0) { $0 + $1.count } + ended, ended: ended, seconds: seconds,
                      peakMiB: Double(peakResidentBytes()) / 1_048_576)
    }
}
