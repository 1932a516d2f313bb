import AlignerInference
import AlignerRuns
import AlignerTraining
import AlignerData
import AlignerFiles
import ArgumentParser
import Foundation

struct RewardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reward", abstract: "Reward models: train one on preference pairs, score responses with one.",
        subcommands: [RewardTrainCommand.self, RewardScoreCommand.self, RewardProbeCommand.self])
}

struct RewardTrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a reward model (Bradley-Terry) on a recipe's Q-A-C records read as preferences: the correction better than the answer.",
        discussion: """
            The recipe's [data], [tokenizer], [model], [train] and [lora] sections are read as for Aligners (pairs are \
            held out by question as records are); the [reward] section holds the stage's settings (epochs, lr, \
            batch_size in pairs, grad_accum, finetune = "full" or "lora", ...) and template ("conversation" or a text \
            with {question}). The model is exported to <run>/model, which --judge takes.
            """)
    @OptionGroup var options: RecipeOptions
    @OptionGroup var start: RunStartOptions

    func run() throws {
        let recipe = try options.prepareRun()
        let trainer = RewardTrainer(recipe: recipe)
        if let n = ProcessInfo.processInfo.environment["ALIGNERKIT_STOP_AFTER_STEPS"].flatMap(Int.init), n > 0 { trainer.stopAfterSteps = n }
        do {
            let r = try trainer.run(resume: start.resume, restart: start.restart)
            print("\nreward model \(r.name) finished in \(ProgressPrinter.duration(r.wallSeconds)): \(r.steps) steps on \(r.trainPairs) pairs; \(r.tokensSeen) tokens; peak memory \(Int(r.peakResidentMiB)) MiB")
            print(String(format: "held-out pairs (%d): pairwise accuracy %.4f before, %.4f after (a random judge scores 0.5); mean margin %.4f → %.4f",
                         r.evalPairs, r.initial.accuracy, r.final.accuracy, r.initial.meanMargin, r.final.meanMargin))
            print(String(format: "length alone (the shorter response preferred) scores %.4f on the same pairs", r.shorterResponseBaseline))
            print("run folder: \(r.runDirectory) (metrics.jsonl, splits/, result.json); the reward model for --judge: \(r.model)")
        } catch let stop as TrainingStop {
            print("\n\(stop)")
            throw ExitCode(ExitStatus(stop.kind).rawValue)
        }
    }
}

struct RewardScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Score the answers and corrections of a Q-A-C file with a reward model; with --output, write them per record.",
        discussion: "Prints the pairwise accuracy of the file's own preference (correction over answer) and the win/tie/lose rates.")
    @OptionGroup var file: JudgedFileOptions
    @Option(help: "Write the records with answer_score and correction_score (JSON Lines, .gz to compress).") var output: String?

    func run() throws {
        for path in [output, file.summary].compactMap({ $0 }) { try OutputPaths.check(path, folder: false, inputs: [file.judge, file.input]) }
        let (judge, load) = try file.load()
        let fields = try file.records.fieldNames()
        let tieMargin = file.tieMargin, summary = file.summary
        let j = try JudgeSummary.judge(judge, questions: load.records.map(\.question), answers: load.records.map(\.answer),
                                       corrections: load.records.map(\.correction), references: nil, tieMargin: tieMargin, batchSize: file.batchSize)
        let v = j.summary.correctionVsAnswer
        print("\(load.records.count) records judged by \(judge.source.path)")
        print(String(format: "mean score: answer %.4f, correction %.4f", j.summary.meanAnswerScore, j.summary.meanCorrectionScore))
        print(String(format: "pairwise accuracy (correction scored above answer, ties half): %.4f", v.pairwiseAccuracy))
        print("correction vs answer (tie when the scores differ by ≤ \(tieMargin) or the texts are equal): \(v.line)")
        print("")
        print(j.summary.controlsTable, terminator: "")
        if let summary {
            try AtomicFile.write(ResultJSON.encode(j.summary), to: URL(fileURLWithPath: summary))
            print("verdict: \(summary)")
        }
        if let output {
            try RecordReader.write(load.records, to: output, fields: fields,
                                   extras: zip(j.answer, j.correction).map { ["answer_score": $0, "correction_score": $1] })
            print("wrote \(output)")
        }
    }
}

struct RewardProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "How a reward model ranks the references of a Q-A-C file against responses that answer nothing.",
        discussion: """
            For every record the judge scores the reference (the correction) against a fixed refusal, a fixed garbled \
            repetition, each kind of non-answer (refusals, not knowing, lectures, echoes of the question, repetitions, the \
            answer with a disclaimer appended; texts from AlignerData's non-answers.json) and the upstream answer. A judge \
            a constant cannot fool prefers the reference to all of them. Declining probes leave out records whose reference \
            is itself a refusal. Use held-out records the judge never trained on (a reward run's splits/eval.jsonl).
            """)
    @OptionGroup var file: JudgedFileOptions

    func run() throws {
        if let summary = file.summary { try OutputPaths.check(summary, folder: false, inputs: [file.judge, file.input]) }
        let (judge, load) = try file.load()
        let probe = try JudgeProbe.run(judge, records: load.records, tieMargin: file.tieMargin, batchSize: file.batchSize)
        print("\(load.records.count) records probed with \(judge.source.path) (tie when the scores differ by ≤ \(file.tieMargin))")
        print(probe.table, terminator: "")
        if let summary = file.summary {
            try AtomicFile.write(ResultJSON.encode(probe), to: URL(fileURLWithPath: summary))
            print("probe: \(summary)")
        }
    }
}

/// A judge and a Q-A-C file it scores: the options `reward score` and `reward probe` share.
struct JudgedFileOptions: ParsableArguments {
    @Option(help: "A reward model folder, or a reward run folder.") var judge: String
    @Argument(help: "A Q-A-C file (JSON or JSON Lines).") var input: String
    @OptionGroup var records: RecordOptions
    @Option(help: "Only the first N records.") var limit: Int?
    @Option(help: "Sequences scored together.") var batchSize = 8
    @Option(help: "Score differences up to this are ties.") var tieMargin = JudgeSummary.defaultTieMargin
    @Option(help: "Write the verdict (controls, useful rates, intervals; or the probe's rows) as JSON here.") var summary: String?

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1, got \(limit)") }
        guard tieMargin >= 0 && tieMargin.isFinite else { throw ValidationError("--tie-margin must be a finite number ≥ 0, got \(tieMargin)") }
    }

    /// The judge (loaded first, so that a bad folder is refused before the file is read) and the records.
    func load() throws -> (RewardJudge, RecordLoad) {
        let judge = try RewardJudge(path: self.judge)
        var load = try RecordReader.read(path: input, fields: records.fieldNames(), policy: records.policy)
        if let limit { load.records = Array(load.records.prefix(limit)) }
        guard !load.records.isEmpty else { throw ValidationError("\(input) holds no record") }
        return (judge, load)
    }
}
