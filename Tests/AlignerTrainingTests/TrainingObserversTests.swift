@testable import AlignerRecipes
@testable import AlignerRuns
import Foundation
import TrainingTestSupport
import XCTest


/// Best checkpoints, early stopping and generation metrics during training.
final class TrainingObserversTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try temporaryTestDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func testBestCheckpointAndGenerationMetricsAreKeptAndUsed() throws {
        let r = try quietTrainer(tinyRecipe("best", in: dir, ["train.generate_eval=4", "train.generate_max_new_tokens=6"])).run()
        // Every evaluation (the initial one too) carries generation metrics of 4 corrections.
        let run = dir.appendingPathComponent("best")
        let history = MetricsLog.lines(run.appendingPathComponent("metrics.jsonl")).map(\.object).filter { $0["eval_loss"] != nil }
        XCTAssertEqual(history.count, r.evalCurve.count + 1)
        XCTAssertTrue(history.allSatisfy { $0["gen_count"] as? Int == 4 && ($0["gen_copy_rate"] as? Double).map { (0...1).contains($0) } == true })
        XCTAssertTrue(r.evalCurve.allSatisfy { $0.generation?.generated == 4 })
        // The best checkpoint is stage 2's lowest eval loss, intact, and what a run folder resolves to.
        let stage2 = r.evalCurve.filter { $0.stage == 2 }
        let lowest = try XCTUnwrap(stage2.min { $0.evalLoss < $1.evalLoss })
        let best = try XCTUnwrap(r.best)
        XCTAssertEqual(best.metric, .evalLoss)
        XCTAssertEqual(best.value, lowest.evalLoss)
        XCTAssertEqual(best.step, lowest.step)
        let bestURL = URL(fileURLWithPath: best.path)
        XCTAssertEqual(bestURL.lastPathComponent, "best")
        let resultJSON = bestURL.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("result.json")
        XCTAssertTrue(try String(contentsOf: resultJSON, encoding: .utf8).contains("\"metric\" : \"eval_loss\""), "result.json keeps the string")
        XCTAssertNil(CheckpointStore.verify(bestURL))
        let state = try JSONDecoder().decode(TrainerState.self, from: Data(contentsOf: bestURL.appendingPathComponent("trainer_state.json")))
        XCTAssertEqual(state.step, best.step)
        XCTAssertEqual(try RunLocator.resolve(run.path).standardizedFileURL, bestURL.standardizedFileURL)
        // The newest checkpoints are still kept besides it.
        XCTAssertTrue(CheckpointStore(directory: run.appendingPathComponent("checkpoints")).complete(verify: true).allSatisfy { $0.lastPathComponent.hasPrefix("ckpt-") })
        XCTAssertEqual(try RunLocator.resolve(r.finalCheckpoint).path, r.finalCheckpoint)

        // The same run picking by edit distance to the reference.
        let e = try quietTrainer(tinyRecipe("edit", in: dir, ["train.generate_eval=4", "train.generate_max_new_tokens=6", "train.best_metric=edit_to_reference"])).run()
        let byEdit = try XCTUnwrap(e.evalCurve.filter { $0.stage == 2 }.min { $0.generation!.editToReference < $1.generation!.editToReference })
        XCTAssertEqual(e.best?.value, byEdit.generation!.editToReference)
        XCTAssertThrowsError(try tinyRecipe("bad", in: dir, ["train.best_metric=edit_to_reference"])) {
            XCTAssertEqual(($0 as? RecipeError)?.key, "train.best_metric")
        }
    }

    func testEarlyStoppingEndsStageTwoAndResumesToTheSameResult() throws {
        // A constant, large learning rate and an evaluation every step: the eval loss soon stops improving.
        let overrides = ["train.eval_every=1", "train.early_stopping_patience=2", "stage2.schedule=constant", "stage2.lr=0.03",
                         "stage2.epochs=4", "data.warmup_percent=0", "train.checkpoint_every=0"]
        let r = try quietTrainer(tinyRecipe("early", in: dir, overrides)).run()
        let stopped = try XCTUnwrap(r.stoppedEarlyAtStep, "eval losses \(r.evalCurve.map(\.evalLoss))")
        let best = try XCTUnwrap(r.best)
        XCTAssertEqual(r.stages.last?.steps, stopped)
        XCTAssertEqual(r.evalCurve.last?.step, stopped)
        XCTAssertEqual(stopped - best.step, 2)  // two evaluations (one per step) without a new best
        XCTAssertTrue(r.evalCurve.filter { $0.step > best.step }.allSatisfy { $0.evalLoss >= best.value })
        // Resumed from a stop before the end, the run stops at the same step with the same best.
        let t = quietTrainer(try tinyRecipe("early2", in: dir, overrides))
        t.stopAfterSteps = max(1, best.step - 1)
        XCTAssertThrowsError(try t.run())
        let resumed = try quietTrainer(tinyRecipe("early2", in: dir, overrides)).run(resume: true)
        XCTAssertEqual(resumed.stoppedEarlyAtStep, stopped)
        XCTAssertEqual(resumed.best?.step, best.step)
        XCTAssertEqual(resumed.best?.value, best.value)
        XCTAssertEqual(resumed.evalCurve, r.evalCurve)
        // Finished: resuming again reports the same.
        XCTAssertEqual(try quietTrainer(tinyRecipe("early2", in: dir, overrides)).run(resume: true).stoppedEarlyAtStep, stopped)
    }
}
