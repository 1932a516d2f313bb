@testable import AlignerRecipes
@testable import AlignerRuns
@testable import AlignerSweeps
@testable import AlignerTraining
import AlignerData
import AlignerModel
import Foundation
import TrainingTestSupport
import XCTest


final class TrainerTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try temporaryTestDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func testBothStagesRunAndEvalLossFalls() throws {
        let r = try quietTrainer(tinyRecipe("both", in: dir)).run()
        XCTAssertEqual(r.stages.map(\.stage), [1, 2])
        XCTAssertGreaterThan(r.warmupRecords, 0)
        let final = try XCTUnwrap(r.stages.last?.evalLoss)
        XCTAssertLessThan(final, r.initialEvalLoss - 0.3, "eval loss \(r.initialEvalLoss) → \(final)")
        let run = dir.appendingPathComponent("both")
        for f in ["metrics.jsonl", "tokenizer.json", "recipe.json", "result.json", "splits/eval.jsonl", "splits/warmup.jsonl", "splits/train.jsonl"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: run.appendingPathComponent(f).path), f)
        }
        // Warm-up split is Q-A-A and nested in a larger p's.
        let warm = try RecordReader.read(path: run.appendingPathComponent("splits/warmup.jsonl").path).records
        XCTAssertTrue(warm.allSatisfy { $0.answer == $0.correction })
        XCTAssertNil(CheckpointStore.verify(URL(fileURLWithPath: r.finalCheckpoint)))
        // Resuming a finished run changes nothing.
        let again = try quietTrainer(tinyRecipe("both", in: dir)).run(resume: true)
        XCTAssertEqual(again.stages, r.stages)
        XCTAssertEqual(again.wallSeconds, r.wallSeconds)
        // A second run into the same folder without --resume is refused.
        XCTAssertThrowsError(try quietTrainer(tinyRecipe("both", in: dir)).run()) { XCTAssertEqual(($0 as? RecipeError)?.key, "name") }
        // p = 0 skips stage 1.
        XCTAssertEqual(try quietTrainer(tinyRecipe("p0", in: dir, ["data.warmup_percent=0"])).run().stages.map(\.stage), [2])
    }

    /// Losses of a run read back from metrics.jsonl (exact doubles).
    func losses(_ run: String) throws -> [String] {
        try String(contentsOf: dir.appendingPathComponent(run).appendingPathComponent("metrics.jsonl"), encoding: .utf8)
            .split(separator: "\n").compactMap { line -> String? in
                let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                guard let loss = o["loss"] as? Double ?? o["eval_loss"] as? Double else { return nil }
                return "\(o["stage"]!)/\(o["step"]!) \(loss.bitPattern)"
            }
    }

    func finalWeights(_ r: RunResult) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: r.finalCheckpoint).appendingPathComponent("model.safetensors"))
    }

    /// `train.budget`: under fixed_steps every arm takes stage 2's steps in all; under fixed_tokens every arm sees at
    /// most stage 2's tokens (and not a whole step fewer); additive puts stage 1 on top. Checked on the steps and
    /// tokens the runs really logged.
    func testFixedBudgetsShortenStageTwoByWhatStageOneUsed() throws {
        let alone = try quietTrainer(tinyRecipe("p0", in: dir, ["data.warmup_percent=0", "train.eval_every=0"])).run()
        let stage2Alone = try XCTUnwrap(alone.stages.first { $0.stage == 2 }?.steps)
        let additive = try quietTrainer(tinyRecipe("add", in: dir, ["train.eval_every=0"])).run()
        let fixedSteps = try quietTrainer(tinyRecipe("steps", in: dir, ["train.budget=fixed_steps", "train.eval_every=0"])).run()
        let fixedTokens = try quietTrainer(tinyRecipe("tokens", in: dir, ["train.budget=fixed_tokens", "train.eval_every=0"])).run()
        func logged(_ name: String) throws -> (steps: Int, tokens: Int) {
            let lines = try String(contentsOf: dir.appendingPathComponent("\(name)/metrics.jsonl"), encoding: .utf8).split(separator: "\n")
            let steps = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.filter { $0["loss"] != nil && $0["eval_loss"] == nil }
            return (steps.count, steps.compactMap { $0["tokens"] as? Int }.max() ?? 0)
        }
        let stage1 = try XCTUnwrap(additive.stages.first { $0.stage == 1 }?.steps)
        XCTAssertGreaterThan(stage1, 0)
        XCTAssertEqual(additive.stages.map(\.steps), [stage1, stage2Alone])
        XCTAssertEqual(fixedSteps.stages.map(\.steps), [stage1, stage2Alone - stage1])
        XCTAssertEqual(fixedSteps.stages.map(\.steps).reduce(0, +), stage2Alone)
        XCTAssertEqual(try logged("steps").steps, stage2Alone, "steps really taken")
        XCTAssertEqual(try logged("add").steps, stage1 + stage2Alone)
        // Tokens: within the p = 0 run's tokens, and closer than the largest step (2 micro-batches of 8 rows × 160).
        XCTAssertLessThanOrEqual(fixedTokens.tokensSeen, alone.tokensSeen)
        XCTAssertGreaterThan(fixedTokens.tokensSeen, alone.tokensSeen - 2 * 8 * 160)
        XCTAssertGreaterThan(additive.tokensSeen, alone.tokensSeen)
        XCTAssertEqual(fixedTokens.budget?.hasPrefix("fixed_tokens"), true)
        XCTAssertEqual(fixedSteps.budget?.hasPrefix("fixed_steps: \(stage2Alone) steps in all"), true, fixedSteps.budget ?? "")
        // A warm-up that uses the whole budget is refused, naming the key.
        XCTAssertThrowsError(try quietTrainer(tinyRecipe("over", in: dir, ["train.budget=fixed_steps", "stage1.epochs=40"])).run()) {
            XCTAssertEqual(($0 as? RecipeError)?.key, "train.budget", "\($0)")
        }
        XCTAssertThrowsError(try tinyRecipe("bad", in: dir, ["train.budget=fixed"])) { XCTAssertEqual(($0 as? RecipeError)?.key, "train.budget") }
    }

    func testResumeContinuesBitForBit() throws {
        let straight = try quietTrainer(tinyRecipe("straight", in: dir)).run()
        let s1 = straight.stages[0].steps
        XCTAssertGreaterThan(s1, 3)
        // Stops: in the middle of stage 1, exactly at the stage boundary, and in the middle of stage 2.
        for (name, stops) in [("mid1", [2, 3]), ("boundary", [s1 - 0]), ("mid2", [s1 + 3, 5])] {
            var done = 0
            for (i, n) in stops.enumerated() {
                let t = quietTrainer(try tinyRecipe(name, in: dir))
                t.stopAfterSteps = n
                XCTAssertThrowsError(try t.run(resume: i > 0), "\(name) stop \(i)") { e in
                    guard case TrainingStop.stoppedAfterSteps = e else { return XCTFail("\(e)") }
                }
                done += n
            }
            let resumed = try quietTrainer(tinyRecipe(name, in: dir)).run(resume: true)
            XCTAssertEqual(try losses(name), try losses("straight"), name)
            XCTAssertEqual(try finalWeights(resumed), try finalWeights(straight), "\(name): final weights differ")
            XCTAssertEqual(resumed.tokensSeen, straight.tokensSeen, name)
            XCTAssertEqual(resumed.stages, straight.stages, name)
            XCTAssertEqual(resumed.evalCurve, straight.evalCurve, name)
            XCTAssertEqual(resumed.trainLosses, straight.trainLosses, name)
            XCTAssertEqual(resumed.best?.step, straight.best?.step, name)
            XCTAssertEqual(resumed.best?.value, straight.best?.value, name)
        }
    }

    func testCorruptCheckpointIsSkippedWithAWarning() throws {
        let t = quietTrainer(try tinyRecipe("corrupt", in: dir))
        t.stopAfterSteps = 8
        XCTAssertThrowsError(try t.run())
        let store = CheckpointStore(directory: dir.appendingPathComponent("corrupt/checkpoints"))
        let all = store.complete(verify: true)
        XCTAssertGreaterThanOrEqual(all.count, 2)
        // Damage the newest: flip a byte of its weights. And leave a half-written folder (no manifest) behind.
        let newest = all.last!.appendingPathComponent("model.safetensors")
        var bytes = try Data(contentsOf: newest)
        bytes[bytes.count - 3] ^= 0xFF
        try bytes.write(to: newest)
        try FileManager.default.createDirectory(at: store.directory.appendingPathComponent("ckpt-s9-0000001"), withIntermediateDirectories: true)
        var warnings: [String] = []
        var s = store
        s.warn = { warnings.append($0) }
        XCTAssertEqual(s.newest(), all[all.count - 2])
        XCTAssertTrue(warnings.contains { $0.contains("fails its checksum") }, "\(warnings)")
        XCTAssertTrue(warnings.contains { $0.contains("no complete manifest") }, "\(warnings)")
        // Resuming with a different recipe is refused, naming the key and both values.
        XCTAssertThrowsError(try quietTrainer(tinyRecipe("corrupt", in: dir, ["stage2.lr=1e-4"])).run(resume: true)) {
            XCTAssertEqual(($0 as? RecipeError)?.key, "stage2.lr")
            XCTAssertTrue("\($0)".contains("→ 0.0001") && "\($0)".contains("--restart"), "\($0)")
        }
        // Resuming uses the intact one and finishes.
        XCTAssertNoThrow(try quietTrainer(tinyRecipe("corrupt", in: dir)).run(resume: true))
    }

    func testDivergenceStopsWithTheLastGoodCheckpoint() throws {
        let t = quietTrainer(try tinyRecipe("nan", in: dir, ["stage1.lr=1e30", "stage1.clip=0", "train.checkpoint_every=1"]))
        XCTAssertThrowsError(try t.run()) { e in
            guard case let TrainingStop.diverged(stage, _, _, last) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(stage, 1)
            if let last { XCTAssertNil(CheckpointStore.verify(last)) }
            XCTAssertTrue("\(e)".contains("lower the learning rate"))
        }
    }
}
