import AlignerFormats
import AlignerInference
import AlignerRuns
import AlignerTraining
import AlignerData
import AlignerFiles
import AlignerModel
import AlignerTensor
import AlignerTokenizers
import ArgumentParser
import Foundation

/// Sampling options shared by generate, correct and eval.
struct SamplingOptions: ParsableArguments {
    @Option(help: "Most new tokens per output.") var maxNewTokens = 128
    @Option(help: "0 = greedy; otherwise the sampling temperature.") var temperature: Float = 0
    @Option(help: "Sample from the k most likely tokens.") var topK: Int?
    @Option(help: "Sample from the smallest set of tokens reaching this probability.") var topP: Float?
    @Option(help: "Sampling seed.") var seed: UInt64 = 0
    @Option(help: "Never generate a token that repeats an n-gram of this size the output already holds (0 = off; the prompt is not counted).")
    var noRepeatNgramSize = 0

    var options: GenerationOptions {
        GenerationOptions(maxNewTokens: maxNewTokens, temperature: temperature, topK: topK, topP: topP, seed: seed, noRepeatNgramSize: noRepeatNgramSize)
    }

    func validate() throws {
        do { try options.validate() } catch let e as ModelInputError {
            throw ValidationError("--\(e.field.replacingOccurrences(of: "_", with: "-")): \(e.message)")
        }
    }
}

/// How to prompt a model that is not an Aligner yet (a base model), shared by correct and eval.
struct PromptOptions: ParsableArguments {
    @Option(help: "Prompt with this built-in template (v1, v2, empathy) instead of the Aligner's own.") var template: String?
    @Option(help: "base: the template's instruction as a user message through the model's own chat template; none: plain.")
    var chatTemplate: String?

    func apply(_ bundle: AlignerBundle) throws -> AlignerBundle {
        template == nil && chatTemplate == nil ? bundle : try bundle.prompted(template: template, chatTemplate: chatTemplate)
    }
}

/// Which weights generation reads, shared by generate, correct, eval and bench generate.
struct InferenceWeightOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Weights generation reads: stored (q8_0 for a GGUF file whose matrices are Q8_0, else f32), f32, or q8_0.",
                               discussion: "q8_0 quantises every linear weight and the head to 8-bit blocks when the model loads. Losses always use the float32 weights."))
    var inferenceWeights = "stored"

    /// nil for "stored".
    var choice: InferenceWeights? {
        get throws {
            if inferenceWeights == "stored" { return nil }
            guard let w = InferenceWeights(rawValue: inferenceWeights) else {
                throw ValidationError("--inference-weights must be stored, f32 or q8_0, got \(inferenceWeights)")
            }
            return w
        }
    }

    func validate() throws { _ = try choice }

    /// The bundle, its generation reading the chosen weights.
    func apply(_ bundle: AlignerBundle) throws -> AlignerBundle {
        bundle.useInferenceWeights(try choice)
        return bundle
    }
}

/// A progress line with records per second.
struct RecordProgress {
    let label: String
    let clock = ContinuousClock()
    let start: ContinuousClock.Instant
    let isTerminal = isatty(STDOUT_FILENO) != 0
    init(_ label: String) {
        self.label = label
        start = clock.now
    }
    func update(pass: Int, done: Int, total: Int) {
        let d = clock.now - start
        let s = d.inSeconds
        let rate = Double(done) / max(s, 1e-9)
        let width = 30, filled = total == 0 ? width : done * width / total
        let line = "\(label) aligner \(pass + 1): [\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] \(done)/\(total)  \(String(format: "%.2f", rate)) records/s"
        if isTerminal { FileHandle.standardOutput.write(Data(("\r" + line + (done == total ? "\n" : "")).utf8)) } else if done == total { print(line) }
    }
}

/// What `--slots` does, for `correct` and `eval`.
private let slotsHelp = "continuous batching slots; default 8 per thread, 8 to 64, fewer when they would not fit in half of memory; a number given is lowered only when it would not fit in all of it)."

struct CorrectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "correct",
        abstract: "Correct upstream answers with one or more Aligners (stacked: each corrects the previous output).",
        discussion: "Writes JSON Lines {question, answer, correction}: the original answer and the Aligner's correction, usable as training data.")
    @Option(name: .customLong("checkpoint"), help: "A run folder, checkpoint folder or Hugging Face directory (repeat to stack).") var checkpoints: [String]
    @Argument(help: "Questions with upstream answers (JSON or JSON Lines).") var input: String
    @Argument(help: "Output JSON Lines (.gz to compress).") var output: String
    @OptionGroup var records: RecordOptions
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var prompt: PromptOptions
    @OptionGroup var weights: InferenceWeightOptions
    @Option(name: [.customLong("slots"), .customLong("batch-size")],
            help: "Records generated together (\(slotsHelp)")
    var slots: Int?
    @Option(help: "Only the first N records.") var limit: Int?
    @Option(help: "A reward model (folder, or a reward run) that scores each answer and correction: answer_score and correction_score on each line.")
    var judge: String?
    @Option(help: "With --judge: write the verdict (controls, useful rates, intervals) as JSON here.") var summary: String?

    func validate() throws {
        if let slots, slots < 1 { throw ValidationError("--slots (--batch-size) must be at least 1, got \(slots)") }
        if let limit, limit < 0 { throw ValidationError("--limit must be 0 or more, got \(limit)") }
        if summary != nil && judge == nil { throw ValidationError("--summary writes the judge's verdict: give --judge too") }
    }

    func run() throws {
        guard !checkpoints.isEmpty else { throw ValidationError("give at least one --checkpoint") }
        let read = [input] + checkpoints + (judge.map { [$0] } ?? [])
        for path in [output] + (summary.map { [$0] } ?? []) { try OutputPaths.check(path, folder: false, inputs: read) }
        let aligners = try checkpoints.map { try weights.apply(prompt.apply(RunLocator.loadAligner($0))) }
        let judge = try self.judge.map { try RewardJudge(path: $0) }  // refused before any generation
        for path in [output] + (summary.map { [$0] } ?? []) {
            try OutputPaths.check(path, folder: false, inputs: read + aligners.flatMap(\.readPaths) + (judge.map { [$0.source.path] } ?? []))
        }
        let fields = try records.fieldNames()
        var load = try RecordReader.read(path: input, fields: fields, policy: records.policy, requireCorrection: false)
        if let limit { load.records = Array(load.records.prefix(limit)) }
        let progress = RecordProgress("correct")
        let outputs = try Corrector.corrections(load.records.map { ($0.question, $0.answer) }, with: aligners, options: sampling.options,
                                            slots: slots, progress: { progress.update(pass: $0, done: $1, total: $2) },
                                            note: { FileHandle.standardError.write(Data("note: \($0)\n".utf8)) })
        let corrected = zip(load.records, outputs.texts).map { QACRecord(question: $0.question, answer: $0.answer, correction: $1) }
        var extras: [[String: Any]]?
        var verdict: JudgeSummary?
        if let judge, !corrected.isEmpty {
            let j = try JudgeSummary.judge(judge, questions: corrected.map(\.question), answers: corrected.map(\.answer),
                                           corrections: outputs.texts, references: nil, ended: outputs.ended)
            extras = zip(j.answer, j.correction).map { ["answer_score": $0, "correction_score": $1] }
            verdict = j.summary
        }
        try RecordReader.write(corrected, to: output, fields: fields, extras: extras)
        print("wrote \(corrected.count) corrections by \(aligners.count) Aligner(s) to \(output)")
        if judge != nil && corrected.isEmpty {
            FileHandle.standardError.write(Data("note: \(input) holds no record: nothing judged\(summary.map { ", \($0) not written" } ?? "")\n".utf8))
        }
        if let verdict {
            print("judged by \(verdict.judge) (tie when the scores differ by ≤ \(verdict.tieMargin) or the texts are equal): correction vs answer: \(verdict.correctionVsAnswer.line)")
            print("")
            print(verdict.controlsTable, terminator: "")
            if let summary {
                try AtomicFile.write(ResultJSON.encode(verdict), to: URL(fileURLWithPath: summary))
                print("verdict: \(summary)")
            }
        }
    }
}

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate", abstract: "Continue a text with a checkpoint or Hugging Face Llama directory, printing tokens as they come.")
    @Option(name: .customLong("checkpoint"), help: "A run folder, checkpoint folder or Hugging Face directory.") var checkpoint: String
    @Option(help: "The prompt text.") var prompt: String?
    @Option(help: "A file holding the prompt.") var promptFile: String?
    @Flag(inversion: .prefixedNo, help: "Add the tokenizer's own special tokens (its post-processor's BOS/EOS), as transformers does by default.")
    var specialTokens = true
    @Flag(help: "Prepend the BOS token even when the tokenizer's post-processor does not.") var bos = false
    @Option(help: "Write the prompt's logits (1, T, vocab) to this safetensors file (for comparisons; from the weights generation reads).")
    var logitsOut: String?
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var weights: InferenceWeightOptions

    func validate() throws {
        guard (prompt == nil) != (promptFile == nil) else { throw ValidationError("give either --prompt or --prompt-file") }
    }

    func run() throws {
        let text: String
        if let logitsOut { try OutputPaths.check(logitsOut, folder: false, inputs: [checkpoint] + (promptFile.map { [$0] } ?? [])) }
        if let prompt { text = prompt } else { text = try readUTF8File(promptFile!, what: "--prompt-file") }
        let aligner = try weights.apply(RunLocator.loadAligner(checkpoint))
        if let logitsOut { try OutputPaths.check(logitsOut, folder: false, inputs: aligner.readPaths) }
        let ids = try aligner.rawPromptIds(text, addSpecialTokens: specialTokens, forceBOS: bos, setting: prompt == nil ? "--prompt-file" : "--prompt")
        if let logitsOut {
            let logits = try aligner.model.withInferenceWeights { try aligner.model.forward(ids: ids, batch: 1, time: ids.count) }
            try AlignerSafetensorsBridge.write(["logits": logits, "input_ids": Tensor(ids.map(Float.init), shape: [1, ids.count])], to: logitsOut)
        }
        let (options, note) = aligner.generationOptions(sampling.options, promptLength: ids.count)
        if let note { FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
        print(text, terminator: "")
        var produced = 0
        var stream = StreamingDecoder(tokenizer: aligner.tokenizer, prompt: ids)
        let clock = ContinuousClock()
        let start = clock.now
        _ = try aligner.model.generate(prompts: [ids], options: options) { step in
            guard step[0] >= 0 else { return }
            produced += 1
            let new = stream.push(step[0])
            if !new.isEmpty {
                print(new, terminator: "")
                fflush(nil)
            }
        }
        let d = clock.now - start
        let s = d.inSeconds
        print(stream.finish())
        // The statistics go to standard error: standard output is the prompt and its continuation only.
        FileHandle.standardError.write(Data("\n\(produced) tokens in \(String(format: "%.2f", s)) s: \(String(format: "%.1f", Double(produced) / max(s, 1e-9))) tokens/s\n".utf8))
    }
}

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Loss and perplexity of the corrections of a Q-A-C file; with --generate N, copy rate and edit distances of generated corrections.")
    @Option(name: .customLong("checkpoint"), help: "A run folder, checkpoint folder or Hugging Face directory.") var checkpoint: String
    @Argument(help: "A Q-A-C file (JSON or JSON Lines).") var input: String
    @OptionGroup var records: RecordOptions
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var prompt: PromptOptions
    @OptionGroup var weights: InferenceWeightOptions
    @Option(help: "Generate corrections for the first N records (0 = loss only).") var generate = 64
    @Option(help: "Records scored together (loss, judge, fluency).") var batchSize = 8
    @Option(help: "With --generate: records generated together (\(slotsHelp)")
    var slots: Int?
    @Option(help: "Write the JSON summary here (and report.html beside it: the same name ending in .html).") var output: String?
    @Option(help: "A reward model (folder, or a reward run) that judges the generated corrections: win/tie/lose against the answer and the reference.")
    var judge: String?
    @Option(help: "With --judge: score differences up to this are ties.") var tieMargin = JudgeSummary.defaultTieMargin
    @Option(help: ArgumentHelp("Another model whose corrections of the same records are measured (and judged) as a control, e.g. the base model used zero-shot as an Aligner (repeatable).",
                               discussion: "A model with a chat template of its own is prompted through it (the template's instruction as the user message); otherwise with its own Aligner template."))
    var controlModel: [String] = []
    @Option(help: ArgumentHelp("A language model under which the fluency of every set of responses is measured (mean per-token loss).",
                               discussion: "Default: the base the Aligner was trained from (its recipe's model.init_from), when it is one; 'none' to skip."))
    var fluencyModel: String?

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
        if let slots, slots < 1 { throw ValidationError("--slots must be at least 1, got \(slots)") }
        guard generate >= 0 else { throw ValidationError("--generate must be 0 or more, got \(generate)") }
        if !controlModel.isEmpty && generate == 0 { throw ValidationError("--control-model corrects records: --generate must be at least 1") }
        guard tieMargin >= 0 && tieMargin.isFinite else { throw ValidationError("--tie-margin must be a finite number ≥ 0, got \(tieMargin)") }
        if judge != nil && generate == 0 { throw ValidationError("--judge scores generated corrections: --generate must be at least 1") }
    }

    func run() throws {
        let read = [checkpoint, input] + controlModel + (judge.map { [$0] } ?? []) + (fluencyModel.map { [$0] } ?? [])
        for path in output.map({ [$0, EvalSummary.reportURL(forSummary: URL(fileURLWithPath: $0)).path] }) ?? [] {
            try OutputPaths.check(path, folder: false, inputs: read)
        }
        let aligner = try weights.apply(prompt.apply(RunLocator.loadAligner(checkpoint)))
        let out = URL(fileURLWithPath: output ?? RunLocator.evalSummaryURL(model: aligner.source, input: input).path)
        // An explicit output is checked against every input; the default one lies in the run folder by design, so only
        // against the records it reads.
        for path in [out.path, EvalSummary.reportURL(forSummary: out).path] {
            try OutputPaths.check(path, folder: false, inputs: output == nil ? [input] : read + aligner.readPaths)
        }
        let judge = try self.judge.map { try RewardJudge(path: $0) }
        let controls = try controlModel.map { path in (name: "\(path) (zero-shot)", aligner: try weights.apply(RunLocator.loadAligner(path).zeroShot())) }
        let fluencyPath = fluencyModel ?? aligner.recipe.map(\.model.initFrom).flatMap { $0 == "scratch" || $0.isEmpty ? nil : $0 }
        let fluency = try fluencyPath.flatMap { path in generate > 0 && path != "none" ? FluencyScorer(try RunLocator.loadAligner(path), name: path) : nil }
        let load = try RecordReader.read(path: input, fields: records.fieldNames(), policy: records.policy)
        let progress = RecordProgress("eval")
        let summary = try EvalSummary.compute(aligner, records: load.records, generate: generate, options: sampling.options,
                                              batchSize: batchSize, slots: slots, judge: judge, tieMargin: tieMargin, controls: controls, fluency: fluency,
                                              progress: { progress.update(pass: $0, done: $1, total: $2) },
                                              note: { FileHandle.standardError.write(Data("note: \($0)\n".utf8)) })
        print(summary.table)
        let report = try summary.write(to: out, input: input)
        print("summary: \(out.path)")
        print("report: \(report.path) (open it in a browser: every generated record with its correction\(controls.isEmpty ? "" : "s")\(judge == nil ? "" : ", scores") and flags)")
    }
}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a Hugging Face model directory, a GGUF file (llama.cpp, Ollama) or PEFT adapters from a run or checkpoint.",
        discussion: """
            --format hf (the default) writes config.json, model.safetensors, the tokenizer and a model card; --format gguf \
            (or an output path ending in .gguf) writes one GGUF file with llama.cpp's names and the tokenizer, the \
            Aligner's prompt as its chat template, matrices stored as --type f32, f16 (default), bf16 or q8_0. Both merge \
            LoRA adapters into the weights. --format peft writes a LoRA Aligner's adapters as PEFT's adapter_config.json \
            and adapter_model.safetensors (with the tokenizer), for peft.PeftModel.from_pretrained on the base.
            """)
    @Argument(help: "A run folder, checkpoint folder or GGUF file.") var checkpoint: String
    @Argument(help: "The output directory (hf) or file (gguf).") var output: String
    @Option(help: "hf, gguf or peft (default: gguf when the output ends in .gguf, else hf).") var format: String?
    @Option(help: "GGUF tensor type for matrices: f32, f16, bf16 or q8_0 (norms stay f32).") var type = "f16"

    func validate() throws {
        if let format, !["hf", "gguf", "peft"].contains(format) { throw ValidationError("--format must be hf, gguf or peft, got '\(format)'") }
        guard GGUFExport.types[type] != nil else { throw ValidationError("--type must be one of f32, f16, bf16, q8_0, got '\(type)'") }
    }

    func run() throws {
        let folder = (format ?? (output.lowercased().hasSuffix(".gguf") ? "gguf" : "hf")) != "gguf"
        try OutputPaths.check(output, folder: folder, inputs: [checkpoint])
        let aligner = try RunLocator.loadAligner(checkpoint)
        try OutputPaths.check(output, folder: folder, inputs: aligner.readPaths)
        if format == "peft" {
            let s = try PEFTExport.export(aligner, to: URL(fileURLWithPath: output))
            print("exported the adapters of \(aligner.source.path) → \(output) (adapter_config.json, adapter_model.safetensors with \(s.adapterTensors) tensors, tokenizer; base \(s.base)\(s.wroteBase ? ", written there" : ""))")
            return
        }
        if (format ?? (output.lowercased().hasSuffix(".gguf") ? "gguf" : "hf")) == "gguf" {
            let url = URL(fileURLWithPath: output)
            try FileSystemFailure.createFolder(url.deletingLastPathComponent().path)
            let s = try GGUFExport.export(aligner, to: url, type: GGUFExport.types[type]!)
            let counts = s.typeCounts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            print("exported \(aligner.source.path) → \(output) (GGUF v3, architecture \(s.architecture), \(s.tensors) tensors: \(counts); "
                + String(format: "%.1f MiB)", Double(s.bytes) / 1_048_576))
            if !s.fallbacks.isEmpty {
                print("stored as F16 (rows not a multiple of the \(type) block): \(s.fallbacks.joined(separator: ", "))")
            }
            return
        }
        try HuggingFaceExport.export(aligner, to: URL(fileURLWithPath: output), figures: RunResult.near(aligner.source)?.trainingFigures)
        print("exported \(aligner.source.path) → \(output) (config.json, model.safetensors, tokenizer.json, tokenizer_config.json, generation_config.json, README.md)")
    }
}

struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Continue training an existing Aligner on a new corpus (its tokenizer and configuration kept, a fresh optimiser and schedule).",
        discussion: "The recipe's model.init_from names the Aligner (a run, checkpoint or Hugging Face directory); data.warmup_percent is usually 0.")
    @OptionGroup var options: RecipeOptions
    @OptionGroup var start: RunStartOptions

    func run() throws {
        guard try options.load().model.initFrom != "scratch" else {
            throw ValidationError("recipe key 'model.init_from': finetuning needs an existing Aligner, not \"scratch\"")
        }
        let recipe = try options.prepareRun()
        do {
            let r = try Trainer(recipe: recipe).run(resume: start.resume, restart: start.restart)
            print(String(format: "\nfinetuned %@ on %@: eval loss %.4f before, %.4f after (%d held-out records)", recipe.model.initFrom,
                         recipe.data.train.joined(separator: ", "), r.initialEvalLoss, r.stages.last?.evalLoss ?? .nan, r.evalRecords))
            print("run folder: \(r.runDirectory); final checkpoint: \(r.finalCheckpoint)")
        } catch let stop as TrainingStop {
            print("\n\(stop)")
            throw ExitCode(ExitStatus(stop.kind).rawValue)
        }
    }
}
