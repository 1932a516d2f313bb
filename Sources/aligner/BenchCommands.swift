import AlignerRuns
import AlignerBench
import AlignerInference
import AlignerData
import AlignerFiles
import AlignerTensor
import AlignerTokenizers
import AlignerModel
import ArgumentParser
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks.", subcommands: [Kernels.self, Train.self, Generate.self, TokenizerBench.self], defaultSubcommand: Kernels.self)

    struct TokenizerBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "tokenizer", abstract: "Tokenizer encoding throughput (MB/s of text on one core).")
        @Option(help: "tokenizer.json") var tokenizer = "data/tokenizers/gpt2/hf-gpt2-tokenizer.json"
        @Option(help: "Q-A-C corpus to encode.") var input = "data/qac/hh-rlhf-harmless-base-test.qac.jsonl.gz"

        func run() throws {
            let records = try RecordReader.read(path: input).records
            let texts = records.flatMap { [$0.question, $0.answer, $0.correction] }
            let data = try Data(contentsOf: URL(fileURLWithPath: tokenizer))
            print("tokenizer \(tokenizer), corpus \(input)")
            for _ in 0..<3 { print(try TokenizerBenchmark.run(tokenizerJSON: data, texts: texts).line) }
        }
    }

    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Training throughput of the reference Llama configurations (tokens/s, ms per step, GFLOP/s, peak memory).",
            discussion: "Each configuration runs in a process of its own so that its peak memory is its own. Compare with scripts/bench/pytorch_train_bench.py run in the same session.")
        @OptionGroup var compute: ComputeOptions
        @Option(help: "tiny, small, medium, smollm2 (SmolLM2-135M's shape) or all (the first three).") var config = "all"
        @Option(help: "fp32 (every weight), bf16 (the same with bf16 matrix products), lora (r 16 adapters on all projections, the model frozen) or lora-bf16.") var mode = "fp32"
        @Flag(help: "Activation checkpointing per decoder block.") var checkpointing = false
        @Option(help: "Timed steps (after the warm-up steps).") var steps = 10
        @Option(help: "Untimed warm-up steps.") var warmup = 3

        func validate() throws {
            guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") }
            guard warmup >= 0 else { throw ValidationError("--warmup must be 0 or more, got \(warmup)") }
            guard TrainBenchmark.Mode(rawValue: mode) != nil else {
                throw ValidationError("--mode must be one of \(TrainBenchmark.Mode.allCases.map(\.rawValue).joined(separator: ", ")), got '\(mode)'")
            }
        }

        func run() throws { try compute.context.run { try runBenchmarks() } }

        func runBenchmarks() throws {
            let names = config == "all" ? ["tiny", "small", "medium"] : [config]
            guard names.allSatisfy({ n in TrainBenchmark.presets.contains { $0.name == n } }) else {
                throw ValidationError("--config must be one of \(TrainBenchmark.presets.map(\.name).joined(separator: ", ")), all; got \(config)")
            }
            print(BLAS.summary)
            if TrainBenchmark.Mode(rawValue: mode)!.matmul == .bf16 { print("bf16 matrix products: \(MatmulPrecision.bf16Engine)") }
            if names.count == 1 {
                let preset = TrainBenchmark.presets.first { $0.name == names[0] }!
                print(try TrainBenchmark.run(preset, mode: TrainBenchmark.Mode(rawValue: mode)!, checkpointing: checkpointing, steps: steps, warmup: warmup).line)
                return
            }
            for name in names {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).standardizedFileURL
                var arguments = ["bench", "train", "--config", name, "--mode", mode, "--steps", "\(steps)", "--warmup", "\(warmup)"]
                if checkpointing { arguments.append("--checkpointing") }
                if let t = compute.threads { arguments += ["--threads", "\(t)"] }
                process.arguments = arguments
                let pipe = Pipe()
                process.standardOutput = pipe
                try process.run()
                let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                process.waitUntilExit()
                guard process.terminationStatus == 0 else { throw ValidationError("benchmark of \(name) failed") }
                print(output.split(separator: "\n").last.map(String.init) ?? "")
            }
        }
    }

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Prompt processing and greedy decoding speed with the key/value cache (tokens/s, ms per step, weight GB/s, peak memory).",
            discussion: "Runs SmolLM2-135M's shape with random weights, or a model file (--model: a GGUF file, Hugging Face directory, run or checkpoint folder; --inference-weights chooses f32 or q8_0). The prompt is fixed token ids and decoding never stops at EOS, as in scripts/bench/pytorch_generate_bench.py: run both in the same session.")
        @OptionGroup var compute: ComputeOptions
        @Option(help: "A GGUF file, Hugging Face directory, run or checkpoint folder (default: SmolLM2-135M's shape, random weights).") var model: String?
        @Option(help: "Prompt length in tokens.") var promptTokens = 256
        @Option(help: "Tokens generated per prompt.") var newTokens = 128
        @Option(help: "Prompts decoded together.") var batch = 1
        @Option(help: "Timed repeats (after one untimed run).") var repeats = 3
        @Option(help: ArgumentHelp("With --model: correct this many records of --data as Aligner prompts of mixed lengths, with continuous batching (corrections per minute, tokens/s).",
                                   discussion: "Each correction stops at an end token or --new-tokens."))
        var prompts: Int?
        @Option(help: "With --prompts: sequences decoded together (default: correct's, 8 per thread from 8 to 64).") var slots: Int?
        @Option(help: "With --prompts: the Q-A-C records whose questions and answers fill the prompts.") var data = "data/qac/hh-rlhf-harmless-base-test.qac.jsonl.gz"
        @Option(help: "With --prompts: also write the prompt ids, end tokens and limits as JSON here, for scripts/bench/pytorch_generate_bench.py --prompts-file.")
        var promptsOut: String?
        @OptionGroup var prompt: PromptOptions
        @OptionGroup var weights: InferenceWeightOptions

        func validate() throws {
            if let prompts {
                guard prompts >= 1 else { throw ValidationError("--prompts must be at least 1, got \(prompts)") }
                guard model != nil else { throw ValidationError("--prompts builds Aligner prompts with a model's tokenizer: give --model") }
                if let slots, slots < 1 { throw ValidationError("--slots must be at least 1, got \(slots)") }
            }
            for (name, value, least) in [("--prompt-tokens", promptTokens, 1), ("--new-tokens", newTokens, 2), ("--batch", batch, 1), ("--repeats", repeats, 1)]
            where value < least {
                throw ValidationError("\(name) must be at least \(least), got \(value)")
            }
        }

        func run() throws { try compute.context.run { try runBenchmark() } }

        func runBenchmark() throws {
            if let prompts, let model {
                let aligner = try prompt.apply(RunLocator.loadAligner(model))
                let chosen = aligner.useInferenceWeights(try weights.choice)
                let records = try RecordReader.read(path: data).records.prefix(prompts)
                let ids = try Corrector.prompts(records.map { ($0.question, $0.answer) }, for: aligner, maxNewTokens: newTokens).ids
                let slots = try aligner.model.continuousSlots(self.slots, prompts: ids, newTokens: newTokens)
                if let promptsOut {
                    let workload: [String: Any] = ["prompts": ids, "eos_token_ids": aligner.eosIds, "max_new_tokens": newTokens, "slots": slots,
                                                   "pad_token_id": aligner.model.config.padTokenId ?? aligner.eosIds.first ?? 0]
                    try AtomicFile.write(JSONSerialization.data(withJSONObject: workload), to: URL(fileURLWithPath: promptsOut))
                }
                let result = try ContinuousGenerationBenchmark.run(aligner.model, prompts: ids, slots: slots, maxNewTokens: newTokens, eosTokenIds: aligner.eosIds)
                print(BLAS.summary)
                print("AlignerKit; model \(model) (\(chosen.rawValue) weights), continuous batching over the first \(ids.count) records of \(data)")
                result.lines.forEach { print($0) }
                return
            }
            let llama: LlamaModel
            let label: String
            if let model {
                let aligner = try RunLocator.loadAligner(model)
                llama = aligner.model
                label = "\(model) (\(aligner.useInferenceWeights(try weights.choice).rawValue) weights)"
            } else {
                llama = try LlamaModel(config: GenerationBenchmark.smolLM2Config(), seed: 0)
                llama.setInferenceWeights(try weights.choice ?? .f32)
                label = "smollm2 (random weights, \(llama.inferenceWeightType.rawValue))"
            }
            let context = llama.config.maxPositionEmbeddings
            guard promptTokens + newTokens <= context else {
                throw ValidationError("--prompt-tokens \(promptTokens) + --new-tokens \(newTokens) exceed the model's context of \(context)")
            }
            let result = try GenerationBenchmark.run(llama, batch: batch, promptTokens: promptTokens, newTokens: newTokens, repeats: repeats)
            print(BLAS.summary)
            print(String(format: "AlignerKit; model %@, %.1fM parameters, batch %d, prompt %d, new %d", label as NSString,
                         Double(result.parameters) / 1e6, batch, promptTokens, newTokens))
            result.lines.forEach { print($0) }
        }
    }

    struct Kernels: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Times the matrix product and each fused kernel at transformer shapes (GFLOP/s or GB/s).")
        @OptionGroup var compute: ComputeOptions
        @Flag(help: "Shorter timing windows (a smoke run).") var quick = false

        func run() throws { compute.context.run { runKernels() } }

        func runKernels() {
            print(BLAS.summary)
            print("kernel                     shape                          time/call     rate")
            _ = KernelBenchmark.run(quick: quick) { print($0) }
            print("peak resident memory: \(peakResidentBytes() >> 20) MiB")
        }
    }
}
