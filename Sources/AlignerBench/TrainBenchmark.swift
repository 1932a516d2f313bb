import AlignerModel
import AlignerOptim
import AlignerTensor
import Foundation

/// The training-throughput benchmark: Llama models trained with AdamW on random tokens, in full fp32 or with LoRA
/// adapters (r 16, alpha 32, dropout 0.05 on all projections), with float32 or bf16 matrix products (`Mode`). `scripts/bench/pytorch_train_bench.py` trains
/// the same models the same way in PyTorch (transformers, PEFT) and prints the same figures.
public enum TrainBenchmark {
    /// A reference configuration.
    public struct Preset: Sendable {
        public let name: String
        public let vocab, hidden, intermediate, layers, heads, kvHeads, seq, batch: Int
        public var tied = false

        public var config: LlamaConfig {
            LlamaConfig(vocabSize: vocab, hiddenSize: hidden, intermediateSize: intermediate, numHiddenLayers: layers,
                        numAttentionHeads: heads, numKeyValueHeads: kvHeads, maxPositionEmbeddings: seq,
                        tieWordEmbeddings: tied, bosTokenId: nil, eosTokenIds: [], padTokenId: nil)
        }
    }

    /// What is trained: every weight, or LoRA adapters on a frozen model.
    public enum Mode: String, CaseIterable, Sendable {
        case fp32, bf16, lora, loraBF16 = "lora-bf16"
        var isLoRA: Bool { self == .lora || self == .loraBF16 }
        /// The precision of matrix products.
        public var matmul: MatmulPrecision { self == .bf16 || self == .loraBF16 ? .bf16 : .fp32 }
        /// The adapters of the `lora` mode.
        public static let adapters = LoRAConfig(rank: 16, alpha: 32, dropout: 0.05, targets: ["all-linear"])
    }

    public static let presets: [Preset] = [
        Preset(name: "tiny", vocab: 512, hidden: 128, intermediate: 384, layers: 4, heads: 4, kvHeads: 4, seq: 128, batch: 16),
        Preset(name: "small", vocab: 4096, hidden: 256, intermediate: 768, layers: 6, heads: 8, kvHeads: 8, seq: 256, batch: 8),
        Preset(name: "medium", vocab: 8192, hidden: 512, intermediate: 1536, layers: 8, heads: 8, kvHeads: 8, seq: 256, batch: 8),
        // SmolLM2-135M's shape (tied embeddings), batch 4 × 256 tokens.
        Preset(name: "smollm2", vocab: 49152, hidden: 576, intermediate: 1536, layers: 30, heads: 9, kvHeads: 3, seq: 256, batch: 4, tied: true),
    ]

    /// Measured figures of one configuration.
    public struct Result: Sendable {
        public let preset: Preset
        public let mode: Mode
        public let checkpointing: Bool
        public let parameters: Int
        public let steps: Int
        public let forwardMs, backwardMs, optimizerMs: Double
        public let tokensPerSecond: Double
        public let gflops: Double
        public let peakMiB: Double
        public let finalLoss: Float
        /// Bytes each process of a data-parallel run sums with the others per optimiser step: every trainable
        /// gradient in float32, plus 4 float64 totals (loss, token counts, stop requests).
        public let allReduceBytes: Int

        public var stepMs: Double { forwardMs + backwardMs + optimizerMs }

        /// One line in the format the PyTorch script prints too.
        public var line: String {
            String(format: "%-7@ %-9@ params %6.2fM  tokens/s %9.0f  step %8.2f ms (fwd %7.2f  bwd %7.2f  opt %6.2f)  %6.1f GFLOP/s  peak RSS %6.0f MiB  loss %.3f  all-reduce %.2f MB/step",
                   preset.name as NSString, (mode.rawValue + (checkpointing ? "+ckpt" : "")) as NSString, Double(parameters) / 1e6, tokensPerSecond, stepMs, forwardMs, backwardMs,
                   optimizerMs, gflops, peakMiB, finalLoss, Double(allReduceBytes) / 1e6)
        }
    }

    /// Trains `preset` for `warmup` + `steps` steps and times the last `steps` (median of each phase).
    public static func run(_ preset: Preset, mode: Mode = .fp32, checkpointing: Bool = false, steps: Int = 10, warmup: Int = 3,
                           seed: UInt64 = 0) throws -> Result {
        guard steps >= 1, warmup >= 0 else {
            throw ModelInputError(field: steps < 1 ? "steps" : "warmup", message: "needs steps ≥ 1 and warmup ≥ 0, got \(steps) and \(warmup)")
        }
        let model = try LlamaModel(config: preset.config, seed: seed)
        if mode.isLoRA { try model.attachAdapters(Mode.adapters, seed: seed &+ 2) }
        model.activationCheckpointing = checkpointing
        let optimizer = AdamW(groups: ParameterGroup.standard(model.trainableParameters, order: model.trainableNames, weightDecay: 0.1),
                              beta1: 0.9, beta2: 0.95, eps: 1e-8)
        return try ComputeContext.current.with(matmul: mode.matmul).run { try measure(model, optimizer, preset, mode, checkpointing, steps, warmup, seed) }
    }

    static func measure(_ model: LlamaModel, _ optimizer: AdamW, _ preset: Preset, _ mode: Mode, _ checkpointing: Bool, _ steps: Int,
                        _ warmup: Int, _ seed: UInt64) throws -> Result {
        var rng = SeededGenerator(seed: seed &+ 1)
        let tokens = preset.batch * preset.seq
        var fwd: [Double] = [], bwd: [Double] = [], opt: [Double] = []
        let clock = ContinuousClock()
        var lastLoss: Float = 0
        // The pool as the trainer sets it up: a step's buffers kept for the next, the rest freed at each step's end.
        let pool = ComputeContext.current.pool
        let limit = pool.limitBytes
        pool.limitBytes = MemoryBudget.trainingPoolBytes
        defer { pool.limitBytes = limit }
        for step in 0..<(warmup + steps) {
            let ids = (0..<tokens).map { _ in rng.nextInt(below: preset.vocab) }
            let t0 = clock.now
            model.adapterDropoutSeed = UInt64(step)
            let loss = try model.loss(ids: ids, labels: ids, batch: preset.batch, time: preset.seq)
            let t1 = clock.now
            loss.backward()
            let t2 = clock.now
            optimizer.update(model.trainableParameters, lr: 3e-4)
            model.releaseGradients()
            pool.endStep()
            let t3 = clock.now
            lastLoss = loss.item
            if step >= warmup {
                fwd.append((t1 - t0).inSeconds); bwd.append((t2 - t1).inSeconds); opt.append((t3 - t2).inSeconds)
            }
        }
        func median(_ x: [Double]) -> Double { x.sorted()[x.count / 2] * 1e3 }
        let (f, b, o) = (median(fwd), median(bwd), median(opt))
        let stepSeconds = (f + b + o) / 1e3
        let flops = 3 * model.forwardFlopsPerToken(time: preset.seq) * Double(tokens)
        return Result(preset: preset, mode: mode, checkpointing: checkpointing, parameters: preset.config.parameterCount, steps: steps, forwardMs: f, backwardMs: b,
                      optimizerMs: o, tokensPerSecond: Double(tokens) / stepSeconds, gflops: flops / stepSeconds / 1e9,
                      peakMiB: Double(peakResidentBytes()) / 1_048_576, finalLoss: lastLoss,
                      allReduceBytes: model.orderedTrainable.reduce(0) { $0 + 4 * $1.count } + 4 * 8)
    }
}
