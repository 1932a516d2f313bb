@testable import AlignerInference
@testable import AlignerRecipes
@testable import AlignerRuns
@testable import AlignerTraining
import AlignerData
import AlignerMeasures
import AlignerModel
import AlignerTensor
import Foundation
import TrainingTestSupport
import XCTest


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
            .split(separator: "\n").map { $0.replacingOccurrences(of: #""(elapsed|tokens_per_s)":[0-9.e+-]+,?"#, with: "", options: .regularExpression) }
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

/// A judge trained from several files with non-answer pairs: per-file held-out accuracy, and the probe.
final class RewardSourcesTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try temporaryTestDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func testPerSourceAccuracyNonAnswerPairsAndTheProbe() throws {
        let all = try RecordReader.read(path: repositoryRoot.appendingPathComponent("data/qac/hh-rlhf-harmless-base-test.qac.jsonl.gz").path,
                                        fields: FieldNames()).records
        let first = dir.appendingPathComponent("first.jsonl"), second = dir.appendingPathComponent("second.jsonl")
        try RecordReader.write(Array(all.prefix(60)), to: first.path)
        try RecordReader.write(Array(all[60..<120]), to: second.path)
        let overrides = ["data.train=[\"\(first.path)\", \"\(second.path)\"]", "data.limit=0", "reward.lr=3e-3", "reward.batch_size=6",
                         "reward.epochs=1", "train.eval_every=0", "train.checkpoint_every=0", "reward.non_answers=0.5"]
        let t = RewardTrainer(recipe: try tinyRecipe("two", in: dir, overrides), isTerminal: false)
        t.quiet = true
        let r = try t.run()
        let per = try XCTUnwrap(r.perSource)
        XCTAssertEqual(per.map(\.source), [first.path, second.path])
        XCTAssertEqual(per.map(\.evaluation.pairs).reduce(0, +), r.evalPairs)
        // The pairs' accuracies, weighted by their counts, are the whole held-out accuracy.
        let weighted = per.reduce(0.0) { $0 + $1.evaluation.accuracy * Double($1.evaluation.pairs) } / Double(r.evalPairs)
        XCTAssertEqual(weighted, r.final.accuracy, accuracy: 1e-9)
        // Non-answer pairs come on top of the record pairs: half of the training records, none from held-out ones.
        let trainRecords = try RecordReader.read(path: dir.appendingPathComponent("two/splits/train.jsonl").path, fields: FieldNames()).records
        let identical = trainRecords.filter { $0.answer == $0.correction }.count
        XCTAssertEqual(r.trainPairs, trainRecords.count - identical + Int((0.5 * Double(trainRecords.count)).rounded()))
        let made = RewardTrainer.nonAnswerRecords(trainRecords, share: 0.5, seed: 7)
        XCTAssertEqual(Set(made.map(\.question)).isSubset(of: Set(trainRecords.map(\.question))), true)
        for m in made where RefusalDetector.isRefusal(m.correction) {
            XCTAssertFalse(RefusalDetector.isRefusal(m.answer) && m.answer != m.correction, "a refusing reference is not paired with a refusal: \(m.answer)")
        }
        // Off-topic pairs: the question of one training record, the reference of another as the worse response.
        let offTopic = RewardTrainer.offTopicRecords(trainRecords, share: 0.25, seed: 7)
        XCTAssertEqual(offTopic.count, Int((0.25 * Double(trainRecords.count)).rounded()))
        let referenceOf = Dictionary(trainRecords.map { ($0.correction, $0.question) }, uniquingKeysWith: { a, _ in a })
        for o in offTopic {
            XCTAssertNotNil(referenceOf[o.answer], "the worse response is another training record's reference")
            XCTAssertNotEqual(o.answer, o.correction)
            XCTAssertTrue(trainRecords.contains { $0.question == o.question && $0.correction == o.correction })
        }
        XCTAssertEqual(RewardTrainer.offTopicRecords(trainRecords, share: 0, seed: 7).count, 0)
        // Several sources: every worse response comes from the record's own source, and each source gives its share.
        let sourceA = (0..<8).map { QACRecord(question: "harm question \($0)", answer: "a\($0)", correction: "harmless reply \($0)") }
        let sourceB = (0..<12).map { QACRecord(question: "feeling \($0)", answer: "ok", correction: "empathetic reply \($0)") }
        let mixed = RewardTrainer.offTopicRecords(sourceA + sourceB, sourceSizes: [8, 12], share: 0.5, seed: 3)
        XCTAssertEqual(mixed.count, 4 + 6)
        XCTAssertEqual(mixed.filter { $0.question.hasPrefix("harm") }.count, 4)
        for m in mixed {
            let fromA = m.question.hasPrefix("harm")
            XCTAssertEqual(m.answer.hasPrefix("harmless"), fromA, "\(m.question) is paired with \(m.answer) from another source")
            XCTAssertNotEqual(m.answer, m.correction)
        }
        // The probe: its "upstream answer" row is the held-out preference the run measured (same judge, same pairs).
        let held = try RecordReader.read(path: dir.appendingPathComponent("two/splits/eval.jsonl").path, fields: FieldNames()).records
            .filter { $0.answer != $0.correction }
        let probe = try JudgeProbe.run(try RewardJudge(path: dir.appendingPathComponent("two").path), records: held, tieMargin: 0, batchSize: 5)
        XCTAssertEqual(probe.rows.count, 2 + NonAnswers.kinds.count + 2)
        let answerRow = try XCTUnwrap(probe.rows.last)
        XCTAssertEqual(answerRow.accuracy, r.final.accuracy, accuracy: 1e-9)
        let refusing = held.filter { RefusalDetector.isRefusal($0.correction) }.count
        XCTAssertEqual(probe.rows[0].skipped, refusing)
        XCTAssertEqual(probe.rows[0].referenceVsProbe.records, held.count - refusing)
        XCTAssertTrue(probe.table.contains("garbled repetition"))
    }
}
