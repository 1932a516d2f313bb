import AlignerData
import AlignerModel
import AlignerTensor
import Foundation
import XCTest

@testable import AlignerTrain

/// `aligner reward train` end to end on a tiny recipe: run folder, evaluation, export, exact resume, recipe identity.
final class RewardTrainerTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try temporaryTestDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func recipe(_ name: String, _ overrides: [String] = []) throws -> Recipe {
        try tinyRecipe(name, in: dir, ["reward.lr=3e-3", "reward.batch_size=6", "reward.epochs=1", "reward.grad_accum=2",
                                       "train.eval_every=4", "train.log_every=1", "train.checkpoint_every=0"] + overrides)
    }

    func trainer(_ r: Recipe) -> RewardTrainer {
        let t = RewardTrainer(recipe: r, isTerminal: false)
        t.quiet = true
        return t
    }

    /// metrics.jsonl without the wall-clock field.
    func metrics(_ name: String) throws -> [String] {
        try String(contentsOf: dir.appendingPathComponent(name).appendingPathComponent("metrics.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { $0.replacingOccurrences(of: #""elapsed":[0-9.e+-]+,?"#, with: "", options: .regularExpression) }
    }

    func testRunEvaluatesExportsAndTheJudgeScoresAsTheModel() throws {
        let r = try trainer(recipe("rm")).run()
        XCTAssertEqual(r.trainPairs + r.evalPairs + r.identicalPairsSkipped, 120)
        XCTAssertLessThanOrEqual(r.evalPairs, 24)
        XCTAssertEqual(r.steps, ((r.trainPairs + 5) / 6 + 1) / 2)  // one epoch of 6-pair micro-batches, two per step
        XCTAssertEqual(r.evalCurve.first?.step, 0)
        XCTAssertEqual(r.evalCurve.last?.step, r.steps)
        XCTAssertEqual(r.final.accuracy, r.evalCurve.last!.evaluation.accuracy)
        XCTAssertEqual(r.final.meanMargin, r.evalCurve.last!.evaluation.meanMargin, accuracy: 1e-12)  // read back from metrics.jsonl
        XCTAssertNotEqual(r.initial.meanMargin, r.final.meanMargin)
        let judge = try RewardJudge(path: dir.appendingPathComponent("rm").path)  // the run folder: its model/
        XCTAssertEqual(judge.source.lastPathComponent, "model")
        XCTAssertEqual(judge.builder.maxLength, 160, "the judge reads sequences as long as the model was trained on")
        // The judge reproduces the run's held-out evaluation from the exported folder.
        let held = try RecordReader.read(path: dir.appendingPathComponent("rm/splits/eval.jsonl").path, fields: FieldNames()).records.filter { $0.correction != $0.answer }
        let j = try JudgeSummary.judge(judge, questions: held.map(\.question), answers: held.map(\.answer), corrections: held.map(\.correction),
                                       references: nil, tieMargin: 0, batchSize: 5)
        let accuracy = (Double(j.summary.correctionVsAnswer.wins) + 0.5 * Double(j.summary.correctionVsAnswer.ties)) / Double(held.count)
        XCTAssertEqual(accuracy, r.final.accuracy, accuracy: 1e-9)
        XCTAssertEqual(j.summary.correctionVsAnswer.meanChange, r.final.meanMargin, accuracy: 1e-4)
        // A finished run asked to resume reports its result.
        let again = try trainer(recipe("rm")).run(resume: true)
        XCTAssertEqual(again.final, r.final)
    }

    func testResumeContinuesExactly() throws {
        for (name, extra) in [("full", [String]()), ("lora", ["reward.finetune=lora", "lora.rank=4", "lora.dropout=0.1"])] {
            let whole = try trainer(recipe("\(name)-whole", extra)).run()
            let t = trainer(try recipe("\(name)-parts", extra))
            t.stopAfterSteps = 3
            XCTAssertThrowsError(try t.run()) { XCTAssertTrue("\($0)".contains("stopped after"), "\($0)") }
            let parts = try trainer(recipe("\(name)-parts", extra)).run(resume: true)
            XCTAssertEqual(parts.final, whole.final, name)
            let a = try Data(contentsOf: dir.appendingPathComponent("\(name)-whole/model/model.safetensors"))
            let b = try Data(contentsOf: dir.appendingPathComponent("\(name)-parts/model/model.safetensors"))
            XCTAssertEqual(a, b, "\(name): the resumed run's model differs from the uninterrupted run's")
            XCTAssertEqual(try metrics("\(name)-whole"), try metrics("\(name)-parts"), name)
        }
    }

    func testResumeRefusesAChangedRewardKeyAndIgnoresAlignerStages() throws {
        let t = trainer(try recipe("id"))
        t.stopAfterSteps = 2
        XCTAssertThrowsError(try t.run())
        XCTAssertThrowsError(try trainer(recipe("id", ["reward.lr=1e-3"])).run(resume: true)) { error in
            XCTAssertTrue("\(error)".contains("reward.lr"), "\(error)")
        }
        // Stage keys and the Aligner template do not change a reward run.
        XCTAssertNoThrow(try trainer(recipe("id", ["stage2.lr=1e-5", "data.template=v2"])).run(resume: true))
        // ... nor do reward keys change an Aligner run's identity.
        let a = try recipe("x"), b = try recipe("x", ["reward.lr=1e-5", "reward.template=Q: {question}"])
        XCTAssertEqual(a.fingerprint, b.fingerprint)
        XCTAssertNotEqual(a.fingerprint(for: .reward), b.fingerprint(for: .reward))
    }

    func testBadRewardKeysAreRefusedByName() throws {
        for (override, key) in [("reward.template=no placeholder", "reward.template"), ("reward.batch_size=0", "reward.batch_size"),
                                ("reward.finetune=qlora", "reward.finetune"), ("reward.batch_tokens=512", "reward.batch_tokens"),
                                ("reward.lr=-1", "reward.lr"), ("reward.colour=1", "reward.colour")] {
            XCTAssertThrowsError(try recipe("bad", [override])) { error in
                XCTAssertTrue("\(error)".contains(key), "\(override): \(error)")
            }
        }
    }
}

/// Win, tie and lose rates with intervals.
final class JudgeComparisonTests: XCTestCase {
    func testCountsTiesIntervalsAndMeanChange() throws {
        let new = [1.0, 2.0, 0.0, 0.5, 3.0, 3.0]
        let old = [0.0, 2.01, 1.0, 0.5, 1.0, 0.0]
        let same = [false, false, false, false, false, true]
        let c = try JudgeComparison(new: new, old: old, same: same, tieMargin: 0.05)
        XCTAssertEqual([c.wins, c.ties, c.losses], [2, 3, 1])  // 2.0 vs 2.01 within the margin; equal texts tie
        XCTAssertEqual(c.winRate, 2.0 / 6, accuracy: 1e-12)
        XCTAssertEqual(c.meanChange, (1 - 0.01 - 1 + 0 + 2 + 3) / 6, accuracy: 1e-12)
        let d = zip(new, old).map { $0 - $1 }, m = d.reduce(0, +) / 6
        let sd = (d.map { ($0 - m) * ($0 - m) }.reduce(0, +) / 5).squareRoot()
        XCTAssertEqual(c.meanChangeInterval[1] - c.meanChange, 1.959964 * sd / 6.0.squareRoot(), accuracy: 1e-9)
        let exact = try JudgeComparison(new: new, old: old, same: same, tieMargin: 0)
        XCTAssertEqual([exact.wins, exact.ties, exact.losses], [2, 2, 2])
        // Wilson 95% intervals, as statsmodels' proportion_confint(method="wilson") gives them.
        let w = JudgeComparison.wilson(5, 10)
        XCTAssertEqual(w[0], 0.236593, accuracy: 1e-5)
        XCTAssertEqual(w[1], 0.763407, accuracy: 1e-5)
        let z = JudgeComparison.wilson(0, 20)
        XCTAssertEqual(z[0], 0, accuracy: 1e-12)
        XCTAssertEqual(z[1], 0.161125, accuracy: 1e-5)
        XCTAssertThrowsError(try JudgeComparison(new: [1], old: [1, 2], same: [false], tieMargin: 0))
        XCTAssertThrowsError(try JudgeComparison(new: [1], old: [1], same: [false], tieMargin: -1))
    }
}
