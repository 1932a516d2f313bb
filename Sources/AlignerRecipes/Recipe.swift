import AlignerData
import AlignerFiles
import AlignerErrors
import AlignerModel
import AlignerOptim
import AlignerTensor
import AlignerTokenizers
import Foundation

/// A recipe value that cannot be used: the key (as `section.key`) and what is wrong.
public struct RecipeError: AlignerError, Equatable {
    public var subject: FailureSubject { .setting(key) }
    public var kind: FailureKind { .usage }
    public let key: String
    public let message: String
    public init(key: String, message: String) {
        self.key = key
        self.message = message
    }
    public var description: String { key.isEmpty ? "recipe: \(message)" : "recipe key '\(key)': \(message)" }
}

/// Optimiser, schedule and batching of one training stage.
public struct StageSettings: Equatable, Sendable {
    /// Passes over the stage's data (used when `steps` is 0).
    public var epochs: Double = 1
    /// Optimiser steps; 0 means derive from `epochs`.
    public var steps = 0
    public var lr = 1e-3
    /// The learning-rate schedule after the linear warm-up (`schedule`).
    public var schedule = ScheduleKind.cosine
    /// Linear warm-up as a fraction of the steps (used when `warmupSteps` is 0).
    public var warmupRatio = 0.03
    public var warmupSteps = 0
    /// The cosine decays to this fraction of `lr`.
    public var minLRRatio = 0.0
    public var weightDecay = 0.0
    /// Global-norm clipping; 0 disables.
    public var clip = 1.0
    /// Examples per micro-batch (used when `batchTokens` is 0).
    public var batchSize = 16
    /// Token budget per micro-batch (batch × longest row), 0 = use `batchSize`.
    public var batchTokens = 0
    /// Micro-batches per optimiser step.
    public var gradAccum = 1
    public var beta1 = 0.9
    public var beta2 = 0.95
    public var eps = 1e-8
    /// What the stage trains (`finetune`): every weight, or LoRA adapters on a frozen model.
    public var finetune = FinetuneKind.full

    public init() {}

    init(epochs: Double, lr: Double, batchSize: Int) {
        self.epochs = epochs
        self.lr = lr
        self.batchSize = batchSize
    }

    /// Optimiser steps of the stage over `batchesPerEpoch` micro-batches: `steps` when set, else `epochs` passes.
    public func totalSteps(batchesPerEpoch: Int) -> Int {
        steps > 0 ? steps : max(1, Int((epochs * Double(batchesPerEpoch) / Double(gradAccum)).rounded(.up)))
    }

    /// Linear warm-up steps: `warmupSteps` when set, else `warmupRatio` of `totalSteps` (rounded up).
    public func warmupSteps(totalSteps: Int) -> Int {
        warmupSteps > 0 ? warmupSteps : LearningRateSchedule.warmupSteps(ratio: warmupRatio, totalSteps: totalSteps)
    }

    /// The learning-rate schedule of a stage of `totalSteps` steps: constant or cosine (to `minLRRatio`) after the
    /// linear warm-up.
    public func learningRateSchedule(totalSteps: Int) -> LearningRateSchedule {
        let warmup = warmupSteps(totalSteps: totalSteps)
        return schedule == .constant ? .constant(warmupSteps: warmup) : .cosine(warmupSteps: warmup, totalSteps: totalSteps, minRatio: minLRRatio)
    }
}

/// What a stage trains (`finetune` of a stage section): "full" trains every weight; "lora" trains low-rank adapters
/// (the `lora` section) on a frozen model. When both stages use LoRA, stage 2 continues stage 1's adapters; a full
/// stage after a LoRA stage first merges them.
public enum FinetuneKind: String, Codable, Sendable, CaseIterable, RecipeChoice {
    case full, lora
}

/// The learning-rate schedule of a stage (`schedule`): cosine decay to `min_lr_ratio`, or constant, each after the
/// linear warm-up.
public enum ScheduleKind: String, Codable, Sendable, CaseIterable, RecipeChoice {
    case cosine, constant
}

/// `data.bad_records`: what a reader does with a bad record (stop at the first, or skip and report it).
extension BadRecordPolicy: RecipeChoice {}

extension MatmulPrecision: RecipeChoice {}

/// The measure that picks a run's best stage-2 checkpoint (`train.best_metric`); lower is better for both.
/// `train.report_to`: where a run's scalars go besides metrics.jsonl, as TRL's `report_to`.
public enum ReportTo: String, Codable, Sendable, CaseIterable, RecipeChoice {
    /// TensorBoard event files in the run folder's `tensorboard/` (`tensorboard --logdir RUN_OR_SWEEP_FOLDER`).
    case tensorboard
    /// metrics.jsonl only.
    case none
}

public enum BestMetric: String, Codable, Sendable, CaseIterable, RecipeChoice {
    case evalLoss = "eval_loss"
    /// Needs generated corrections (`train.generate_eval`).
    case editToReference = "edit_to_reference"
}

/// The measure that picks a sweep's best arm (`sweep.best_by`): lowest mean eval loss, or (with `sweep.judge`) the
/// highest mean win rate of correction over answer or useful-correction rate.
public enum BestArmMeasure: String, Codable, Sendable, CaseIterable, RecipeChoice {
    case evalLoss = "eval_loss"
    case winRate = "win_rate"
    case usefulRate = "useful_rate"
}

/// A closed set of recipe values, read and written as their TOML strings (`RecipeField.choice`).
public protocol RecipeChoice: RawRepresentable, CaseIterable where RawValue == String {}

/// `data.chat_template`: whether an Aligner's prompts go through the base model's chat template.
public enum ChatTemplateUse: String, Codable, Sendable, CaseIterable, RecipeChoice {
    /// "none": the prompt template's text is the prompt.
    case plain = "none"
    /// "base": the prompt template's instruction is one user message, rendered through the chat template of
    /// `model.init_from` with the generation prompt.
    case base
}

/// How a two-stage run counts the warm-up stage against its training budget (`train.budget`).
public enum TrainingBudget: String, Codable, Sendable, CaseIterable, RecipeChoice {
    /// Stage 1 runs on top of a full stage 2 (more warm-up, more training).
    case additive
    /// Stage 2 takes the optimiser steps it would take alone minus stage 1's steps.
    case fixedSteps = "fixed_steps"
    /// Stage 2 stops when stage 1 and stage 2 together have seen the tokens stage 2 alone would see.
    case fixedTokens = "fixed_tokens"

    /// One line for logs and reports.
    public var explanation: String {
        switch self {
        case .additive: return "additive (stage 1 runs on top of a full stage 2: arms with more warm-up train longer)"
        case .fixedSteps: return "fixed_steps (stage 2 shortened by stage 1's optimiser steps: every arm takes the same number of steps)"
        case .fixedTokens: return "fixed_tokens (stage 2 shortened by the tokens stage 1 saw: every arm sees about the same number of tokens)"
        }
    }
}

/// A training run's description: data, tokenizer, model, the two stages, logging and checkpoints.
/// Read from TOML (`recipes/*.toml`) or from the JSON a run writes (`recipe.json`); every key can be overridden
/// with `--set section.key=value`. Unknown keys, wrong types and impossible values are errors naming the key.
public struct Recipe: Equatable, Sendable {
    public var name = "run"
    public var seed = 1234
    /// Runs are written to `<outputDir>/<name>`.
    public var outputDir = "checkpoints"

    public struct DataSection: Equatable, Sendable {
        public var train: [String] = ["data/qac/hh-rlhf-harmless-base-test.qac.jsonl.gz"]
        public var fields = ["question", "answer", "correction"]
        public var badRecords = BadRecordPolicy.fail
        /// `data.template`: a built-in prompt template's name (v1, v2, empathy; `templates.json`) …
        public var promptTemplateName = "v1"
        /// … or `data.custom_template`: a prompt template with {question} and {answer} (wins when not empty).
        public var customPromptTemplate = ""
        /// `data.chat_template`: whether prompts go through the base model's chat template.
        public var chatTemplateUse = ChatTemplateUse.plain
        public var evalFraction = 0.1
        /// Held-out records as a count (wins over the fraction when positive).
        public var evalCount = 0
        public var maxLength = 256
        /// Identity warm-up proportion p in percent (0 skips stage 1).
        public var warmupPercent = 20.0
        /// Use only the first N records of the file(s) (0 = all), for quick runs.
        public var limit = 0
        /// Seed of the evaluation hold-out; -1 means `seed`. A sweep over seeds fixes it, so that every seed is
        /// evaluated on the same held-out questions (the seed still draws the warm-up subset and the data order).
        public var splitSeed = -1
    }

    public struct TokenizerSection: Equatable, Sendable {
        /// A tokenizer.json to load; empty trains one on the training split.
        public var path = ""
        public var vocabSize = 2048
        public var specialTokens = ["<pad>", "<s>", "</s>"]
        public var minFrequency = 2
        public var bos = "<s>"
        public var eos = "</s>"
        public var pad = "<pad>"
    }

    public struct ModelSection: Equatable, Sendable {
        /// "scratch", or the path of a Hugging Face Llama directory to start from.
        public var initFrom = "scratch"
        public var hiddenSize = 128
        public var intermediateSize = 384
        public var numHiddenLayers = 4
        public var numAttentionHeads = 4
        public var numKeyValueHeads = 4
        public var maxPositionEmbeddings = 256
        public var ropeTheta = 10_000.0
        public var rmsNormEps = 1e-5
        public var tieWordEmbeddings = false
        public var initializerRange = 0.02
    }

    public struct TrainSection: Equatable, Sendable {
        /// Evaluate every N optimiser steps (0 = only at the end of each stage).
        public var evalEvery = 50
        public var logEvery = 10
        /// Checkpoint every N optimiser steps (0 = only at stage ends and on Ctrl-C).
        public var checkpointEvery = 200
        public var keepCheckpoints = 2
        /// Threads (0 = default).
        public var threads = 0
        /// Activation checkpointing per decoder block: each block keeps only its input and runs again in the
        /// backward pass (less memory, one more forward).
        public var activationCheckpointing = false
        /// Where scalars go besides metrics.jsonl: "tensorboard" (the default) or "none".
        public var reportTo = ReportTo.tensorboard
        /// Matrix products in "fp32", or "bf16" (inputs rounded to bfloat16, float32 accumulation, as
        /// torch.autocast(cpu, bfloat16); weights, optimiser state, norms, softmax and loss stay float32).
        public var precision = MatmulPrecision.fp32
        /// At each evaluation, greedy corrections of the first N held-out records (0 = none): copy rate, near-copy
        /// rate and normalised edit distances to the answer and to the reference, in metrics.jsonl and the report.
        public var generateEval = 0
        /// New-token budget of those corrections.
        public var generateMaxNewTokens = 128
        /// Their `no_repeat_ngram_size` (over the generated tokens; 0 = off), also for the sweep judge's corrections.
        public var generateNoRepeatNgramSize = 0
        /// The metric that picks the best checkpoint (`checkpoints/best`, kept besides the newest ones) among stage 2's
        /// evaluations: "eval_loss", or "edit_to_reference" (needs generate_eval); lower is better for both.
        public var bestMetric = BestMetric.evalLoss
        /// Stop stage 2 after this many evaluations without a new best (0 = never).
        public var earlyStoppingPatience = 0
        /// How the warm-up stage's cost is counted, so that warm-up sweeps compare arms fairly: "additive" (stage 1
        /// runs on top of a full stage 2: an arm with more warm-up trains longer), "fixed_steps" (stage 2 is shortened
        /// by stage 1's optimiser steps: every arm takes the steps stage 2 alone would take) or "fixed_tokens" (stage 2
        /// is shortened until stage 1 and stage 2 together see no more tokens than stage 2 alone would).
        public var budget = TrainingBudget.additive
        /// Stop each stage after this many steps (0 = no limit); for tests of interrupted runs.
    }

    /// Low-rank adapters for stages with `finetune = "lora"` (PEFT's LoraConfig: r, lora_alpha, lora_dropout,
    /// target_modules, use_rslora).
    public struct LoRASection: Equatable, Sendable {
        public var rank = 16
        public var alpha = 32.0
        public var dropout = 0.05
        public var targets = ["all-linear"]
        public var rslora = false
        /// As the model's configuration.
        public var config: LoRAConfig { LoRAConfig(rank: rank, alpha: alpha, dropout: dropout, targets: targets, rsLoRA: rslora) }
    }

    public struct SweepSection: Equatable, Sendable {
        public init() {}
        public var warmupPercents = [0.0, 2, 10, 20, 50]
        /// Every arm runs once per seed (empty: once, with `seed`).
        public var seeds: [Int] = []
        /// Further recipe keys and their values, crossed with the warm-up proportions (and seeds).
        public var grid: [GridAxis] = []
        /// A reward model (folder, or reward run) that judges each run's greedy corrections of the first
        /// `judgeRecords` held-out records against their answers and references ("" = no judging).
        public var judge = ""
        public var judgeRecords = 128
        /// Score differences up to this are ties.
        public var judgeTieMargin = 0.05
        /// How the best arm is chosen: "eval_loss" (lowest mean final eval loss), "win_rate" (highest mean win rate
        /// of correction over answer under `judge`) or "useful_rate" (highest mean useful-correction rate under
        /// `judge`, see `JudgeSummary`).
        public var bestBy = BestArmMeasure.evalLoss
    }

    /// One varied key of a sweep grid: the key ("section.key") and its values as JSON text (numbers, strings,
    /// booleans, lists), in the recipe's order.
    public struct GridAxis: Equatable, Sendable {
        public var key: String
        public var values: [String]
        public init(key: String, values: [String]) {
            self.key = key
            self.values = values
        }

        /// One value of an axis, as a sweep arm uses it.
        public struct Value: Equatable, Sendable {
            public var key: String
            public var json: String
            public init(key: String, json: String) {
                self.key = key
                self.json = json
            }
        }
    }

    public var data = DataSection()
    public var tokenizer = TokenizerSection()
    public var model = ModelSection()
    public var stage1 = StageSettings()
    public var stage2 = StageSettings()
    public var train = TrainSection()
    public var lora = LoRASection()
    public var sweep = SweepSection()
    /// `aligner reward train`: the reward model's one training stage (Bradley-Terry on preference pairs).
    public var reward = RewardSection()

    /// The `[reward]` section: the stage's settings (as a stage's keys; `batch_size` counts pairs) and how a
    /// question is shown to the reward model.
    public struct RewardSection: Equatable, Sendable {
        public var stage = StageSettings(epochs: 1, lr: 1e-4, batchSize: 8)
        /// `reward.template`: how the reward model reads a question: "conversation" (the built-in wrapper "BEGINNING OF
        /// CONVERSATION: USER: {question} ASSISTANT:") or a text with a {question} placeholder; the response follows it
        /// with no space.
        public var questionTemplate = "conversation"
        /// Share of the training records that also give a pair "reference better than a non-answer" (a refusal, a
        /// knowledge disclaimer, a lecture, an echo of the question, a repetition, or the answer with a disclaimer:
        /// `NonAnswers`), so that a constant cannot fool the judge; 0 = none. Declining kinds are not used where the
        /// reference itself is a refusal. Held-out records never give such pairs.
        public var nonAnswers = 0.0
        /// Share of the training records that also give a pair "reference better than an off-topic answer" (the
        /// reference of another training record, to another question), so that the judge must read the question;
        /// 0 = none.
        public var offTopic = 0.0
    }

    public init() {}
}

// MARK: - Reading

extension Recipe {
    /// Reads a TOML or JSON recipe file, applies `overrides` ("section.key=value"), and validates.
    public static func load(path: String, overrides: [String] = []) throws -> Recipe {
        let text: String
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            throw RecipeError(key: "", message: "\(path) is a folder, not a recipe file")
        }
        if FileManager.default.fileExists(atPath: path) { try FileSystemFailure.checkInputFile(path, what: "recipe") }
        do { text = try UTF8Text.decode(Data(contentsOf: URL(fileURLWithPath: path)), source: path) } catch let e as FileError {
            throw RecipeError(key: "", message: e.description)  // a recipe that is not text is a wrong recipe (64)
        } catch {
            throw FileSystemFailure.error(error, path: path, action: "read the recipe")
        }
        var tree: [String: Any]
        if path.hasSuffix(".json") {
            guard let t = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
                throw RecipeError(key: "", message: "\(path) is not a JSON object")
            }
            tree = t
        } else {
            do { tree = try RecipeTOML.parse(text) } catch let e as RecipeTOML.ParseError {
                throw RecipeError(key: "", message: "\(path):\(e.line):\(e.column): invalid TOML: \(e.message)")
            }
        }
        for o in overrides { try applyOverride(o, to: &tree) }
        return try Recipe(tree: tree)
    }

    /// Sets `section.key=value` in a recipe tree; the value is read as a number, boolean, JSON array or string.
    static func applyOverride(_ assignment: String, to tree: inout [String: Any]) throws {
        let path = assignment.firstIndex(of: "=").map { assignment[..<$0].split(separator: ".", omittingEmptySubsequences: false).map(String.init) } ?? []
        guard let eq = assignment.firstIndex(of: "="), (1...2).contains(path.count), path.allSatisfy({ !$0.isEmpty }) else {
            throw RecipeError(key: "", message: "override '\(assignment)' must look like key=value or section.key=value (for example stage1.lr=1e-4)")
        }
        let raw = String(assignment[assignment.index(after: eq)...])
        let value: Any
        if let i = Int(raw) { value = i }
        else if let d = Double(raw) { value = d }
        else if raw == "true" || raw == "false" { value = raw == "true" }
        else if raw.hasPrefix("[") || raw.hasPrefix("{"), let a = try? JSONSerialization.jsonObject(with: Data(raw.utf8)) { value = a }
        else { value = raw }
        try set(value, at: path, in: &tree)
    }

    /// Puts `value` at `key` ("section.key" or "key", split) in a recipe tree.
    public static func set(_ value: Any, at path: [String], in tree: inout [String: Any]) throws {
        if path.count == 1 { tree[path[0]] = value; return }
        var section = tree[path[0]] as? [String: Any] ?? [:]
        if tree[path[0]] != nil && !(tree[path[0]] is [String: Any]) {
            throw RecipeError(key: path[0], message: "is not a section")
        }
        section[path[1]] = value
        tree[path[0]] = section
    }

    /// A value as canonical JSON text (sorted keys): how grid values are kept and recipes compared.
    static func canonicalJSON(_ value: Any) -> String? {
        (try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys, .withoutEscapingSlashes]))
            .map { String(decoding: $0, as: UTF8.self) }
    }

    /// The value of canonical JSON text (the text itself if it is not JSON).
    public static func jsonValue(_ text: String) -> Any {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: .fragmentsAllowed)) ?? text
    }

    /// Reads and validates a recipe tree.
    public init(tree: [String: Any]) throws {
        var r = RecipeTreeReader(tree: tree)
        self.init()
        for field in Self.fields { try field.read(&r, &self) }
        try r.rejectUnknown()
        try validate()
    }

    /// Impossible values, named by key.
    public func validate() throws {
        func check(_ ok: Bool, _ key: String, _ message: String) throws { if !ok { throw RecipeError(key: key, message: message) } }
        try check(Self.isPlainFolderName(name), "name", "must be a plain folder name (letters, digits, '-', '_', '.'; not '.' or '..'), got \"\(name)\"")
        try check(seed >= 0 && seed <= Int(UInt32.max), "seed", "must be within 0...\(UInt32.max), got \(seed)")
        let limits = LlamaConfig.limits
        for (key, value, limit) in [("model.hidden_size", model.hiddenSize, limits.hiddenSize),
                                    ("model.intermediate_size", model.intermediateSize, limits.intermediateSize),
                                    ("model.num_hidden_layers", model.numHiddenLayers, limits.layers),
                                    ("model.num_attention_heads", model.numAttentionHeads, limits.heads),
                                    ("model.num_key_value_heads", model.numKeyValueHeads, limits.heads),
                                    ("model.max_position_embeddings", model.maxPositionEmbeddings, limits.positions),
                                    ("tokenizer.vocab_size", tokenizer.vocabSize, limits.vocabSize)] {
            try check(value <= limit, key, "\(value) is larger than AlignerKit supports (at most \(limit))")
        }
        try check(data.maxLength <= limits.positions, "data.max_length", "\(data.maxLength) is larger than AlignerKit supports (at most \(limits.positions))")
        try check(!data.train.isEmpty, "data.train", "needs at least one file")
        try check(data.fields.count == 3, "data.fields", "needs three names (question, answer, correction)")
        if data.customPromptTemplate.isEmpty {
            try check(PromptTemplate.builtIn[data.promptTemplateName] != nil, "data.template",
                      "unknown template '\(data.promptTemplateName)' (built in: \(PromptTemplate.builtIn.keys.sorted().joined(separator: ", ")))")
        } else {
            try check(data.customPromptTemplate.contains("{question}") && data.customPromptTemplate.contains("{answer}"),
                      "data.custom_template", "needs {question} and {answer} placeholders")
        }
        try check(data.chatTemplateUse == .plain || model.initFrom != "scratch", "data.chat_template",
                  "\"base\" renders prompts through the chat template of model.init_from, which is \"scratch\"")
        try check(data.evalFraction >= 0 && data.evalFraction < 1, "data.eval_fraction", "must be in [0, 1), got \(data.evalFraction)")
        try check(data.evalCount >= 0, "data.eval_count", "must not be negative")
        try check(data.evalFraction > 0 || data.evalCount > 0, "data.eval_fraction", "an evaluation hold-out is needed (fraction or count)")
        try check(data.maxLength >= 16, "data.max_length", "must be at least 16, got \(data.maxLength)")
        try check(data.maxLength <= model.maxPositionEmbeddings || model.initFrom != "scratch", "data.max_length",
                  "\(data.maxLength) exceeds model.max_position_embeddings \(model.maxPositionEmbeddings)")
        try check(data.warmupPercent >= 0 && data.warmupPercent <= 100, "data.warmup_percent", "must be within 0...100, got \(data.warmupPercent)")
        try check(data.limit >= 0, "data.limit", "must not be negative")
        if let (setting, message) = BPETrainer.problem(vocabSize: tokenizer.vocabSize, specialTokens: tokenizer.specialTokens,
                                                       minFrequency: tokenizer.minFrequency),
           setting != .vocabSize || tokenizer.path.isEmpty {  // (the vocabulary of a tokenizer file is the file's)
            throw RecipeError(key: "tokenizer.\(setting.rawValue)", message: message)
        }
        try check(model.hiddenSize > 0 && model.numAttentionHeads > 0 && model.hiddenSize % model.numAttentionHeads == 0,
                  "model.num_attention_heads", "must divide model.hidden_size")
        try check(model.numKeyValueHeads > 0 && model.numAttentionHeads % model.numKeyValueHeads == 0,
                  "model.num_key_value_heads", "must divide model.num_attention_heads")
        try check(model.numHiddenLayers > 0, "model.num_hidden_layers", "must be positive")
        try check(model.intermediateSize > 0, "model.intermediate_size", "must be positive")
        for (section, s) in [("stage1", stage1), ("stage2", stage2), ("reward", reward.stage)] {
            try check(s.lr > 0 && s.lr.isFinite, "\(section).lr", "must be positive, got \(s.lr)")
            try check(s.steps > 0 || s.epochs > 0, "\(section).epochs", "must be positive (or set steps)")
            try check(s.steps >= 0, "\(section).steps", "must not be negative")
            try check(s.warmupRatio >= 0 && s.warmupRatio < 1, "\(section).warmup_ratio", "must be in [0, 1)")
            try check(s.warmupSteps >= 0, "\(section).warmup_steps", "must not be negative")
            try check(s.minLRRatio >= 0 && s.minLRRatio <= 1, "\(section).min_lr_ratio", "must be within 0...1")
            try check(s.weightDecay >= 0, "\(section).weight_decay", "must not be negative")
            try check(s.clip >= 0, "\(section).clip", "must not be negative")
            try check(s.batchSize > 0, "\(section).batch_size", "must be positive")
            // Upper bounds far above what a CPU run can use, so that a typo is refused instead of running for ever.
            try check(s.batchSize <= 1 << 16, "\(section).batch_size", "\(s.batchSize) is larger than AlignerKit supports (at most \(1 << 16))")
            try check(s.batchTokens <= 1 << 24, "\(section).batch_tokens", "\(s.batchTokens) is larger than AlignerKit supports (at most \(1 << 24))")
            try check(s.gradAccum <= 1 << 12, "\(section).grad_accum", "\(s.gradAccum) is larger than AlignerKit supports (at most \(1 << 12))")
            try check(s.steps <= 100_000_000, "\(section).steps", "\(s.steps) is larger than AlignerKit supports (at most 100000000)")
            try check(s.epochs <= 1_000_000, "\(section).epochs", "\(s.epochs) is larger than AlignerKit supports (at most 1000000)")
            try check(s.warmupSteps <= 100_000_000, "\(section).warmup_steps", "\(s.warmupSteps) is larger than AlignerKit supports")
            try check(s.batchTokens >= 0, "\(section).batch_tokens", "must not be negative")
            try check(s.gradAccum > 0, "\(section).grad_accum", "must be positive")
            try check(s.beta1 >= 0 && s.beta1 < 1, "\(section).beta1", "must be in [0, 1)")
            try check(s.beta2 >= 0 && s.beta2 < 1, "\(section).beta2", "must be in [0, 1)")
            try check(s.eps > 0, "\(section).eps", "must be positive")
        }
        try check(reward.nonAnswers >= 0 && reward.nonAnswers <= 1, "reward.non_answers", "must be within 0...1 (a share of the training records), got \(reward.nonAnswers)")
        try check(reward.offTopic >= 0 && reward.offTopic <= 1, "reward.off_topic", "must be within 0...1 (a share of the training records), got \(reward.offTopic)")
        try check(reward.stage.batchTokens == 0, "reward.batch_tokens", "is not supported for reward training: batches count pairs (reward.batch_size)")
        try check(reward.questionTemplate == "conversation" || reward.questionTemplate.contains("{question}"), "reward.template",
                  "must be \"conversation\" or a text with a {question} placeholder")
        do { try lora.config.validate() } catch let e as ModelInputError { throw RecipeError(key: e.field, message: e.message) }
        try check(train.evalEvery >= 0, "train.eval_every", "must not be negative")
        try check(train.logEvery > 0, "train.log_every", "must be positive")
        try check(train.checkpointEvery >= 0, "train.checkpoint_every", "must not be negative")
        try check(train.keepCheckpoints >= 1, "train.keep_checkpoints", "must be at least 1")
        try check(train.generateEval >= 0 && train.generateEval <= 100_000, "train.generate_eval", "must be within 0...100000, got \(train.generateEval)")
        try check(train.generateMaxNewTokens >= 1 && train.generateMaxNewTokens <= 8192, "train.generate_max_new_tokens", "must be within 1...8192, got \(train.generateMaxNewTokens)")
        try check(train.generateNoRepeatNgramSize >= 0 && train.generateNoRepeatNgramSize <= 64, "train.generate_no_repeat_ngram_size", "must be within 0...64 (0 = off), got \(train.generateNoRepeatNgramSize)")
        try check(train.bestMetric == .evalLoss || train.generateEval > 0, "train.best_metric", "\"edit_to_reference\" needs generated corrections: set train.generate_eval")
        try check(train.earlyStoppingPatience >= 0, "train.early_stopping_patience", "must not be negative")
        try check(train.threads >= 0 && train.threads <= 1024, "train.threads", "must be within 0...1024 (0 = the default), got \(train.threads)")
        try check(!sweep.warmupPercents.isEmpty && sweep.warmupPercents.allSatisfy { $0 >= 0 && $0 <= 100 },
                  "sweep.warmup_percents", "must be percentages within 0...100")
        try check(Set(sweep.warmupPercents).count == sweep.warmupPercents.count, "sweep.warmup_percents", "lists a proportion twice")
        try check(data.splitSeed >= -1 && data.splitSeed <= Int(UInt32.max), "data.split_seed", "must be -1 (= seed) or within 0...\(UInt32.max), got \(data.splitSeed)")
        try check(sweep.seeds.allSatisfy { $0 >= 0 && $0 <= Int(UInt32.max) }, "sweep.seeds", "must be within 0...\(UInt32.max)")
        try check(Set(sweep.seeds).count == sweep.seeds.count, "sweep.seeds", "lists a seed twice")
        try check(sweep.judgeRecords >= 1 && sweep.judgeRecords <= 100_000, "sweep.judge_records", "must be within 1...100000, got \(sweep.judgeRecords)")
        try check(sweep.judgeTieMargin >= 0, "sweep.judge_tie_margin", "must not be negative, got \(sweep.judgeTieMargin)")
        try check(sweep.bestBy == .evalLoss || !sweep.judge.isEmpty, "sweep.best_by", "\"\(sweep.bestBy.rawValue)\" needs a reward model: set sweep.judge")
        let keys = Set(Self.fields.map(\.key))
        for axis in sweep.grid {
            try check(keys.contains(axis.key), "sweep.grid", "'\(axis.key)' is not a recipe key")
            try check(!Self.notInGrid.contains(axis.key) && !axis.key.hasPrefix("sweep."), "sweep.grid",
                      "'\(axis.key)' cannot be varied by the grid (the sweep sets it: warm-up proportions in sweep.warmup_percents, seeds in sweep.seeds)")
            try check(!axis.values.isEmpty, "sweep.grid", "'\(axis.key)' needs at least one value")
            try check(Set(axis.values).count == axis.values.count, "sweep.grid", "'\(axis.key)' lists a value twice")
        }
    }

    /// Whether `s` can name a folder inside another without escaping it or hiding: no separators, not "." or "..",
    /// not starting with ".", printable ASCII letters, digits and "-_.+=@,".
    public static func isPlainFolderName(_ s: String) -> Bool {
        guard !s.isEmpty, s.count <= 200, s != ".", s != "..", !s.hasPrefix(".") else { return false }
        return s.unicodeScalars.allSatisfy { c in
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || "-_.+=@,".unicodeScalars.contains(c)
        }
    }

    /// The resolved recipe as JSON in the recipe file's key names (loadable with `Recipe.load`).
    public func jsonData() throws -> Data {
        var tree: [String: Any] = [:]
        for field in Self.fields {
            let parts = field.key.split(separator: ".").map(String.init)
            if parts.count == 1 { tree[parts[0]] = field.value(self); continue }
            if field.key == "sweep.grid" && sweep.grid.isEmpty { continue }
            var section = tree[parts[0]] as? [String: Any] ?? [:]
            section[parts[1]] = field.value(self)
            tree[parts[0]] = section
        }
        return try JSONSerialization.data(withJSONObject: tree, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }

    /// Keys a sweep grid may not vary: the sweep sets them itself, or they name the run.
    static let notInGrid: Set<String> = ["name", "output_dir", "seed", "data.warmup_percent", "data.split_seed"]

    /// The template the recipe names.
    public func promptTemplate() throws -> PromptTemplate {
        data.customPromptTemplate.isEmpty ? try PromptTemplate.named(data.promptTemplateName) : try PromptTemplate(name: "custom", text: data.customPromptTemplate)
    }
}

/// One recipe key: its name in the file, how to read it into a `Recipe`, and its value for `recipe.json`.
struct RecipeField: @unchecked Sendable {  // immutable after construction
    let key: String
    let read: (inout RecipeTreeReader, inout Recipe) throws -> Void
    let value: (Recipe) -> Any

    init<T>(_ key: String, _ path: WritableKeyPath<Recipe, T>,
            _ reader: @escaping (inout RecipeTreeReader, String, T) throws -> T, value: ((Recipe) -> Any)? = nil) {
        self.key = key
        read = { r, recipe in recipe[keyPath: path] = try reader(&r, key, recipe[keyPath: path]) }
        self.value = value ?? { $0[keyPath: path] }
    }

    /// A key whose value is one of a closed set, read from and written as its string; anything else is refused
    /// naming the key and every allowed value (`must be "full" or "lora", got "qlora"`).
    static func choice<E: RecipeChoice>(_ key: String, _ path: WritableKeyPath<Recipe, E>) -> RecipeField {
        RecipeField(key, path, { (r: inout RecipeTreeReader, k: String, d: E) in
            let name = try r.string(k, d.rawValue)
            guard let value = E(rawValue: name) else {
                let names = E.allCases.map { "\"\($0.rawValue)\"" }
                let allowed = names.count > 1 ? names.dropLast().joined(separator: ", ") + " or " + names.last! : names.joined()
                throw RecipeError(key: k, message: "must be \(allowed), got \"\(name)\"")
            }
            return value
        }, value: { $0[keyPath: path].rawValue })
    }
}

extension Recipe {
    /// Every key of the format, in one place: reading, `recipe.json` and unknown-key detection all follow it.
    static let fields: [RecipeField] = {
        typealias R = RecipeTreeReader
        let int = { (r: inout R, k: String, d: Int) in try r.int(k, d) }
        let double = { (r: inout R, k: String, d: Double) in try r.double(k, d) }
        let bool = { (r: inout R, k: String, d: Bool) in try r.bool(k, d) }
        let string = { (r: inout R, k: String, d: String) in try r.string(k, d) }
        let strings = { (r: inout R, k: String, d: [String]) in try r.strings(k, d) }
        let doubles = { (r: inout R, k: String, d: [Double]) in try r.doubles(k, d) }
        var f: [RecipeField] = [
            RecipeField("name", \.name, string), RecipeField("seed", \.seed, int), RecipeField("output_dir", \.outputDir, string),
            RecipeField("data.train", \.data.train, strings), RecipeField("data.fields", \.data.fields, strings),
            RecipeField.choice("data.bad_records", \.data.badRecords), RecipeField("data.template", \.data.promptTemplateName, string),
            RecipeField("data.custom_template", \.data.customPromptTemplate, string),
            RecipeField.choice("data.chat_template", \.data.chatTemplateUse),
            RecipeField("data.eval_fraction", \.data.evalFraction, double), RecipeField("data.eval_count", \.data.evalCount, int),
            RecipeField("data.max_length", \.data.maxLength, int), RecipeField("data.warmup_percent", \.data.warmupPercent, double),
            RecipeField("data.limit", \.data.limit, int),
            RecipeField("tokenizer.path", \.tokenizer.path, string), RecipeField("tokenizer.vocab_size", \.tokenizer.vocabSize, int),
            RecipeField("tokenizer.special_tokens", \.tokenizer.specialTokens, strings),
            RecipeField("tokenizer.min_frequency", \.tokenizer.minFrequency, int), RecipeField("tokenizer.bos", \.tokenizer.bos, string),
            RecipeField("tokenizer.eos", \.tokenizer.eos, string), RecipeField("tokenizer.pad", \.tokenizer.pad, string),
            RecipeField("model.init_from", \.model.initFrom, string), RecipeField("model.hidden_size", \.model.hiddenSize, int),
            RecipeField("model.intermediate_size", \.model.intermediateSize, int),
            RecipeField("model.num_hidden_layers", \.model.numHiddenLayers, int),
            RecipeField("model.num_attention_heads", \.model.numAttentionHeads, int),
            RecipeField("model.num_key_value_heads", \.model.numKeyValueHeads, int),
            RecipeField("model.max_position_embeddings", \.model.maxPositionEmbeddings, int),
            RecipeField("model.rope_theta", \.model.ropeTheta, double), RecipeField("model.rms_norm_eps", \.model.rmsNormEps, double),
            RecipeField("model.tie_word_embeddings", \.model.tieWordEmbeddings, bool),
            RecipeField("model.initializer_range", \.model.initializerRange, double),
            RecipeField("train.eval_every", \.train.evalEvery, int), RecipeField("train.log_every", \.train.logEvery, int),
            RecipeField("train.checkpoint_every", \.train.checkpointEvery, int),
            RecipeField("train.keep_checkpoints", \.train.keepCheckpoints, int), RecipeField("train.threads", \.train.threads, int),
            RecipeField("train.activation_checkpointing", \.train.activationCheckpointing, bool),
            RecipeField.choice("train.report_to", \.train.reportTo),
            RecipeField.choice("train.precision", \.train.precision),
            RecipeField("train.generate_eval", \.train.generateEval, int),
            RecipeField("train.generate_max_new_tokens", \.train.generateMaxNewTokens, int),
            RecipeField("train.generate_no_repeat_ngram_size", \.train.generateNoRepeatNgramSize, int),
            RecipeField.choice("train.best_metric", \.train.bestMetric),
            RecipeField("train.early_stopping_patience", \.train.earlyStoppingPatience, int),
            RecipeField.choice("train.budget", \.train.budget),
            RecipeField("lora.rank", \.lora.rank, int), RecipeField("lora.alpha", \.lora.alpha, double),
            RecipeField("lora.dropout", \.lora.dropout, double), RecipeField("lora.targets", \.lora.targets, strings),
            RecipeField("lora.rslora", \.lora.rslora, bool),
            RecipeField("data.split_seed", \.data.splitSeed, int),
            RecipeField("sweep.warmup_percents", \.sweep.warmupPercents, doubles),
            RecipeField("sweep.seeds", \.sweep.seeds, { (r: inout R, k: String, d: [Int]) in try r.ints(k, d) }),
            RecipeField("sweep.judge", \.sweep.judge, string), RecipeField("sweep.judge_records", \.sweep.judgeRecords, int),
            RecipeField("sweep.judge_tie_margin", \.sweep.judgeTieMargin, double), RecipeField.choice("sweep.best_by", \.sweep.bestBy),
            RecipeField("sweep.grid", \.sweep.grid, { (r: inout R, k: String, d: [GridAxis]) in try r.grid(k, d) },
                        value: { recipe in
                            Dictionary(uniqueKeysWithValues: recipe.sweep.grid.map { axis in
                                (axis.key, axis.values.map(Recipe.jsonValue))
                            })
                        }),
        ]
        f.append(RecipeField("reward.template", \.reward.questionTemplate, string))
        f.append(RecipeField("reward.non_answers", \.reward.nonAnswers, double))
        f.append(RecipeField("reward.off_topic", \.reward.offTopic, double))
        let stages: [(String, WritableKeyPath<Recipe, StageSettings>)] = [("stage1", \.stage1), ("stage2", \.stage2), ("reward", \.reward.stage)]
        for (name, stage) in stages {
            f += [
                RecipeField("\(name).epochs", stage.appending(path: \StageSettings.epochs), double),
                RecipeField("\(name).steps", stage.appending(path: \StageSettings.steps), int),
                RecipeField("\(name).lr", stage.appending(path: \StageSettings.lr), double),
                RecipeField.choice("\(name).schedule", stage.appending(path: \StageSettings.schedule)),
                RecipeField("\(name).warmup_ratio", stage.appending(path: \StageSettings.warmupRatio), double),
                RecipeField("\(name).warmup_steps", stage.appending(path: \StageSettings.warmupSteps), int),
                RecipeField("\(name).min_lr_ratio", stage.appending(path: \StageSettings.minLRRatio), double),
                RecipeField("\(name).weight_decay", stage.appending(path: \StageSettings.weightDecay), double),
                RecipeField("\(name).clip", stage.appending(path: \StageSettings.clip), double),
                RecipeField("\(name).batch_size", stage.appending(path: \StageSettings.batchSize), int),
                RecipeField("\(name).batch_tokens", stage.appending(path: \StageSettings.batchTokens), int),
                RecipeField("\(name).grad_accum", stage.appending(path: \StageSettings.gradAccum), int),
                RecipeField("\(name).beta1", stage.appending(path: \StageSettings.beta1), double),
                RecipeField("\(name).beta2", stage.appending(path: \StageSettings.beta2), double),
                RecipeField("\(name).eps", stage.appending(path: \StageSettings.eps), double),
                RecipeField.choice("\(name).finetune", stage.appending(path: \StageSettings.finetune)),
            ]
        }
        return f
    }()
}

/// Typed reads from a recipe tree that remember which keys were used, so that leftovers are reported as unknown.
struct RecipeTreeReader {
    let tree: [String: Any]
    var used = Set<String>()

    init(tree: [String: Any]) { self.tree = tree }

    func lookup(_ key: String) throws -> Any? {
        let parts = key.split(separator: ".").map(String.init)
        if parts.count == 1 { return tree[parts[0]] }
        guard let sectionValue = tree[parts[0]] else { return nil }
        guard let section = sectionValue as? [String: Any] else { throw RecipeError(key: parts[0], message: "must be a section (a table)") }
        return section[parts[1]]
    }

    mutating func get<T>(_ key: String, _ fallback: T, _ kind: String, _ convert: (Any) -> T?) throws -> T {
        used.insert(key)
        guard let v = try lookup(key) else { return fallback }
        guard let t = convert(v) else { throw RecipeError(key: key, message: "must be \(kind), got \(describe(v))") }
        return t
    }

    func describe(_ v: Any) -> String {
        if let s = v as? String { return "the string \"\(s)\"" }
        if v is [Any] { return "a list" }
        if v is [String: Any] { return "a table" }
        return "\(v)"
    }

    /// JSON booleans arrive as a distinct NSNumber subclass; plain `is Bool` is also true for 0 and 1.
    static func isBool(_ v: Any) -> Bool { type(of: v) == Bool.self || type(of: v) == type(of: NSNumber(value: true)) }

    mutating func int(_ key: String, _ d: Int) throws -> Int {
        try get(key, d, "an integer") { v in
            if v is String || Self.isBool(v) { return nil }
            if let i = v as? Int { return i }
            if let x = v as? Double, x == x.rounded(), abs(x) < 1e15 { return Int(x) }
            return nil
        }
    }
    mutating func double(_ key: String, _ d: Double) throws -> Double {
        try get(key, d, "a finite number") { v in
            (v is String || Self.isBool(v)) ? nil : (v as? Double ?? (v as? Int).map(Double.init)).flatMap { $0.isFinite ? $0 : nil }
        }
    }
    mutating func bool(_ key: String, _ d: Bool) throws -> Bool {
        try get(key, d, "true or false") { v in Self.isBool(v) ? v as? Bool : nil }
    }
    mutating func string(_ key: String, _ d: String) throws -> String {
        try get(key, d, "a string") { v in v as? String }
    }
    mutating func strings(_ key: String, _ d: [String]) throws -> [String] {
        try get(key, d, "a list of strings") { v in v as? [String] }
    }
    mutating func doubles(_ key: String, _ d: [Double]) throws -> [Double] {
        try get(key, d, "a list of numbers") { v in
            guard let a = v as? [Any] else { return nil }
            let out = a.compactMap { x -> Double? in
                (x is String || Self.isBool(x)) ? nil : (x as? Double ?? (x as? Int).map(Double.init)).flatMap { $0.isFinite ? $0 : nil }
            }
            return out.count == a.count ? out : nil
        }
    }

    mutating func ints(_ key: String, _ d: [Int]) throws -> [Int] {
        try get(key, d, "a list of integers") { v in
            guard let a = v as? [Any] else { return nil }
            let out = a.compactMap { x -> Int? in
                if x is String || Self.isBool(x) { return nil }
                if let i = x as? Int { return i }
                if let d = x as? Double, d == d.rounded(), abs(d) < 1e15 { return Int(d) }
                return nil
            }
            return out.count == a.count ? out : nil
        }
    }

    /// A table of recipe keys to lists of values (`[sweep.grid]` with quoted keys, or a JSON object); keys sorted.
    mutating func grid(_ key: String, _ d: [Recipe.GridAxis]) throws -> [Recipe.GridAxis] {
        used.insert(key)
        guard let v = try lookup(key) else { return d }
        guard let table = v as? [String: Any] else { throw RecipeError(key: key, message: "must be a table of recipe keys to lists of values, got \(describe(v))") }
        return try table.keys.sorted().map { k in
            guard let values = table[k] as? [Any] else {
                throw RecipeError(key: key, message: "'\(k)' must be a list of values, got \(describe(table[k]!))")
            }
            return Recipe.GridAxis(key: k, values: try values.map { value in
                guard let text = Recipe.canonicalJSON(value) else {
                    throw RecipeError(key: key, message: "'\(k)' has a value that is not a number, string, boolean or list")
                }
                return text
            })
        }
    }

    /// Throws for the first key of the tree that no read asked for.
    func rejectUnknown() throws {
        for (k, v) in tree.sorted(by: { $0.key < $1.key }) {
            if let section = v as? [String: Any], !used.contains(k) {
                for sk in section.keys.sorted() where !used.contains("\(k).\(sk)") {
                    throw RecipeError(key: "\(k).\(sk)", message: used.contains(where: { $0.hasPrefix(k + ".") }) ? "unknown key" : "unknown section '\(k)'")
                }
            } else if !used.contains(k) {
                throw RecipeError(key: k, message: "unknown key")
            }
        }
    }
}

// MARK: - Identity of a run

extension Recipe {
    /// Keys that do not change what a run computes: its name and folder, logging and checkpoint cadence, threads,
    /// activation checkpointing (bit-identical gradients) and the sweep section (which builds the arms' recipes).
    static let operationalKeys: Set<String> = ["name", "output_dir", "train.log_every", "train.checkpoint_every",
                                               "train.keep_checkpoints", "train.threads", "train.activation_checkpointing", "train.report_to"]

    /// Every key that decides a run's result, with its value as canonical JSON text (the split seed resolved). An
    /// Aligner run ignores the `[reward]` section; a reward run ignores the stages, the warm-up proportion, the Aligner
    /// template and the generation and best-checkpoint keys.
    public func resultDefiningValues(for kind: RunKind = .aligner) -> [(key: String, value: String)] {
        var resolved = self
        if resolved.data.splitSeed < 0 { resolved.data.splitSeed = resolved.seed }
        return Self.fields.filter { field in
            !Self.operationalKeys.contains(field.key) && !field.key.hasPrefix("sweep.") && !kind.ignores(field.key)
        }.map { field in (field.key, Recipe.canonicalJSON(field.value(resolved)) ?? "") }
    }

    /// The keys (with both values) whose values differ from `other`'s, ignoring operational keys and those `kind`
    /// ignores; empty when the two recipes produce the same run.
    public func differences(from other: Recipe, for kind: RunKind = .aligner) -> [String] {
        zip(resultDefiningValues(for: kind), other.resultDefiningValues(for: kind)).compactMap { mine, theirs in
            mine.value == theirs.value ? nil : "\(mine.key) (\(theirs.value) → \(mine.value))"
        }
    }

    /// A hash of the result-defining keys and values of an Aligner run (64-bit FNV-1a, hex): runs with equal
    /// fingerprints compute the same thing from the same input files.
    public var fingerprint: String { fingerprint(for: .aligner) }

    /// The fingerprint of the run of `kind` this recipe describes.
    public func fingerprint(for kind: RunKind) -> String {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for (key, value) in resultDefiningValues(for: kind) {
            for byte in "\(key)=\(value)\n".utf8 {
                h ^= UInt64(byte)
                h = h &* 0x0000_0100_0000_01B3
            }
        }
        return String(h, radix: 16).leftPadded(to: 16)
    }
}

/// What a recipe trains: an Aligner (`train`, `sweep`, `finetune`) or a reward model (`reward train`).
public enum RunKind: String, Sendable {
    case aligner, reward

    /// Whether a run of this kind leaves `key` unused.
    func ignores(_ key: String) -> Bool {
        switch self {
        case .aligner: return key.hasPrefix("reward.")
        case .reward:
            return key.hasPrefix("stage1.") || key.hasPrefix("stage2.") || [
                "data.warmup_percent", "data.template", "data.custom_template", "data.chat_template", "train.generate_eval",
                "train.generate_max_new_tokens", "train.generate_no_repeat_ngram_size", "train.best_metric", "train.early_stopping_patience", "train.budget",
            ].contains(key)
        }
    }
}

extension String {
    fileprivate func leftPadded(to n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
