import AlignerData
import AlignerFiles
import AlignerInference
import AlignerModel
import AlignerRecipes
import AlignerRuns
import Foundation

/// A run's corrections judged by a reward model: the run's Aligner (as `RunLocator.resolve` picks it: the best
/// checkpoint, else the newest) corrects the first `records` held-out records greedily, and the judge compares each
/// correction with its answer and its reference. Kept as `judge.json` in the run folder and reused while the judge's
/// weights, the checkpoint and the settings stay the same.
public struct RunJudgement: Codable, Sendable {
    public var judge: String
    /// Sizes and checksums of the judge's weights.
    public var judgeFiles: FileFingerprints
    public var checkpoint: String
    public var records: Int
    public var tieMargin: Double
    public var maxNewTokens: Int
    public var noRepeatNgramSize: Int
    /// `JudgeSummary.usefulRule` when judged.
    public var usefulRule: Int
    public var summary: JudgeSummary
    /// The judged records and the run's corrections of them, in the order of the summary's scores (nil in judgements
    /// saved before reports showed them; those are judged again).
    public var corrected: HeldOutCorrections?

    public static let file = "judge.json"
}

/// Judges the runs of a sweep with `sweep.judge`, beside the controls (answers, the fixed refusal and references are
/// scored once for all runs).
final class SweepJudge {
    let judge: RewardJudge
    let judgeFiles: FileFingerprints
    let records: Int
    let tieMargin: Double
    let maxNewTokens: Int
    let noRepeatNgramSize: Int

    init(recipe: Recipe) throws {
        judge = try RewardJudge(path: recipe.sweep.judge)
        judge.memoize = true
        judgeFiles = try FileFingerprints.record([(role: "judge", path: judge.source.appendingPathComponent("model.safetensors").path)])
        records = recipe.sweep.judgeRecords
        tieMargin = recipe.sweep.judgeTieMargin
        maxNewTokens = recipe.train.generateMaxNewTokens
        noRepeatNgramSize = recipe.train.generateNoRepeatNgramSize
    }

    /// The judgement of `run`: the saved one when it still applies, else a new one (saved).
    func judgement(of run: Sweep.ArmResult, say: (String) -> Void) throws -> RunJudgement {
        let runDirectory = URL(fileURLWithPath: run.result.runDirectory)
        let checkpoint = try RunLocator.resolve(runDirectory.path).path
        let url = runDirectory.appendingPathComponent(RunJudgement.file)
        let held = try RecordReader.read(path: runDirectory.appendingPathComponent("splits/eval.jsonl").path, fields: FieldNames()).records
        let subset = Array(held.prefix(records))
        guard !subset.isEmpty else { throw RecipeError(key: "sweep.judge", message: "\(runDirectory.path) has no held-out records to judge") }
        if let data = try? Data(contentsOf: url), let saved = try? ResultJSON.decode(RunJudgement.self, from: data),
           saved.judge == judge.source.path, saved.judgeFiles.differences(from: judgeFiles) == nil, saved.checkpoint == checkpoint,
           saved.tieMargin == tieMargin, saved.maxNewTokens == maxNewTokens, saved.noRepeatNgramSize == noRepeatNgramSize, saved.usefulRule == JudgeSummary.usefulRule, saved.records == subset.count,
           saved.corrected?.records.map({ [$0.question, $0.answer, $0.reference] }) == subset.map({ [$0.question, $0.answer, $0.correction] }) {
            try writeBoard(saved, of: run, onlyIfMissing: true)
            return saved
        }
        let aligner = try RunLocator.loadAligner(checkpoint)
        let outputs = try Corrector.corrections(subset.map { ($0.question, $0.answer) }, with: [aligner],
                                                options: GenerationOptions(maxNewTokens: maxNewTokens, noRepeatNgramSize: noRepeatNgramSize))
        let summary = try JudgeSummary.judge(judge, questions: subset.map(\.question), answers: subset.map(\.answer), corrections: outputs.texts,
                                             references: subset.map(\.correction), ended: outputs.ended, tieMargin: tieMargin, batchSize: 8).summary
        let result = RunJudgement(judge: judge.source.path, judgeFiles: judgeFiles, checkpoint: checkpoint, records: subset.count,
                                  tieMargin: tieMargin, maxNewTokens: maxNewTokens, noRepeatNgramSize: noRepeatNgramSize, usefulRule: JudgeSummary.usefulRule, summary: summary,
                                  corrected: HeldOutCorrections(subset, corrections: outputs.texts, ended: outputs.ended))
        try AtomicFile.write(ResultJSON.encode(result), to: url)
        try writeBoard(result, of: run)
        say("judged \(runDirectory.lastPathComponent) (\(subset.count) held-out records): \(summary.headline)")
        return result
    }

    /// The judge's event files in a run's TensorBoard folder end with this.
    static let boardSuffix = "judge"

    /// The judgement's numbers (`RunJudgement.scalars`) as TensorBoard scalars `judge/X` at the run's last evaluation's
    /// global step, in an event file of their own in the run's TensorBoard folder, when the run writes TensorBoard
    /// events: written afresh (an older judgement's file removed), or with `onlyIfMissing` only when none is there.
    func writeBoard(_ judgement: RunJudgement, of run: Sweep.ArmResult, onlyIfMissing: Bool = false) throws {
        guard run.arm.recipe.train.reportTo == .tensorboard else { return }
        let folder = URL(fileURLWithPath: run.result.runDirectory).appendingPathComponent(RunFolder.tensorBoardFolder)
        if onlyIfMissing && !TensorBoardWriter.eventFiles(in: folder, suffix: Self.boardSuffix).isEmpty { return }
        TensorBoardWriter.removeEvents(in: folder, suffix: Self.boardSuffix)
        let board = try TensorBoardWriter(folder: folder, suffix: Self.boardSuffix)
        let step = run.result.evalCurve.last?.globalStep ?? 0
        for (name, value) in judgement.scalars { try board.scalar("judge/" + name, value, step: step) }
    }
}

extension RunJudgement {
    /// The judgement's numbers by name (report.csv's names where it has them): the corrections' useful rate and its
    /// interval, refusal, degenerate, generic and unfinished rates, win / tie / lose against the answer, the mean score
    /// change and scores, the win rate against the reference, and each control's useful rate.
    public var scalars: [(String, Double)] {
        let s = summary
        var v: [(String, Double)] = []
        if let c = s.responses.last {
            v += [("useful_rate", c.usefulRate), ("useful_low", c.usefulInterval[0]), ("useful_high", c.usefulInterval[1]),
                  ("refusal_rate", c.measures.refusalRate), ("degenerate_rate", c.measures.degenerateRate), ("generic_rate", c.measures.genericRate)]
            if let u = c.measures.unfinishedRate { v.append(("unfinished_rate", u)) }
        }
        v += [("win_rate", s.correctionVsAnswer.winRate), ("tie_rate", s.correctionVsAnswer.tieRate), ("lose_rate", s.correctionVsAnswer.loseRate),
              ("mean_score_change", s.correctionVsAnswer.meanChange), ("mean_answer_score", s.meanAnswerScore), ("mean_correction_score", s.meanCorrectionScore)]
        if let r = s.correctionVsReference { v.append(("win_rate_vs_reference", r.winRate)) }
        if let m = s.meanReferenceScore { v.append(("mean_reference_score", m)) }
        for (name, short) in [(JudgeSummary.copyName, "copy"), (JudgeSummary.refusalName, "refusal"), (JudgeSummary.referenceName, "reference")] {
            if let x = s.responses.dropLast().first(where: { $0.name == name }) { v.append(("\(short)_useful_rate", x.usefulRate)) }
        }
        return v
    }
}
