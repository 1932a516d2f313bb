@testable import AlignerRecipes
@testable import AlignerRuns
@testable import AlignerSweeps
@testable import AlignerTraining
import AlignerData
import AlignerModel
import Foundation
import XCTest


let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A recipe small enough for a test: 120 records of the bundled corpus, a 2-layer 32-wide model.
func tinyRecipe(_ name: String, in dir: URL, _ overrides: [String] = []) throws -> Recipe {
    let toml = """
    name = "\(name)"
    seed = 7
    output_dir = "\(dir.path)"
    [data]
    train = ["\(repositoryRoot.appendingPathComponent("data/qac/hh-rlhf-harmless-base-test.qac.jsonl.gz").path)"]
    eval_count = 24
    max_length = 160
    warmup_percent = 25
    limit = 120
    [tokenizer]
    vocab_size = 512
    [model]
    hidden_size = 32
    intermediate_size = 64
    num_hidden_layers = 2
    num_attention_heads = 4
    num_key_value_heads = 2
    max_position_embeddings = 160
    [stage1]
    epochs = 2
    lr = 3e-3
    batch_size = 8
    [stage2]
    epochs = 3
    lr = 3e-3
    batch_size = 8
    grad_accum = 2
    [train]
    eval_every = 5
    log_every = 5
    checkpoint_every = 4
    keep_checkpoints = 50
    threads = 2
    """
    let url = dir.appendingPathComponent("\(name).toml")
    try toml.write(to: url, atomically: true, encoding: .utf8)
    return try Recipe.load(path: url.path, overrides: overrides)
}

func quietTrainer(_ r: Recipe) -> Trainer {
    let t = Trainer(recipe: r, isTerminal: false)
    t.quiet = true
    return t
}

final class RecipeTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try temporaryTestDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func testBundledRecipesLoad() throws {
        let folder = repositoryRoot.appendingPathComponent("recipes")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.hasSuffix(".toml") }.map { String($0.dropLast(5)) }.sorted()
        XCTAssertGreaterThanOrEqual(names.count, 9, "\(names)")
        for name in names {
            let r = try Recipe.load(path: folder.appendingPathComponent("\(name).toml").path)
            XCTAssertEqual(r.name, name)
        }
        // The SmolLM2 sweep holds the budget fixed and judges every arm on the judge's own hold-out.
        let sweep = try Recipe.load(path: folder.appendingPathComponent("warmup-sweep-smollm2.toml").path)
        XCTAssertEqual(sweep.train.budget, .fixedSteps)
        XCTAssertEqual(sweep.sweep.judge, "checkpoints/judge")
        XCTAssertEqual(sweep.data.evalFraction, 0.1)
        XCTAssertEqual(sweep.data.evalCount, 0)
    }

    func testOverridesAndRoundTrip() throws {
        let r = try tinyRecipe("r", in: dir, ["stage2.lr=5e-4", "data.template=v2", "sweep.warmup_percents=[0,50]", "model.tie_word_embeddings=true"])
        XCTAssertEqual(r.stage2.lr, 5e-4)
        XCTAssertEqual(r.data.template, "v2")
        XCTAssertEqual(r.sweep.warmupPercents, [0, 50])
        XCTAssertTrue(r.model.tieWordEmbeddings)
        XCTAssertEqual(r.stage1.batchSize, 8)
        // Closed sets are enums read from and written as their strings.
        let lora = try tinyRecipe("r", in: dir, ["stage2.finetune=lora", "train.budget=fixed_tokens", "stage1.schedule=constant",
                                                 "train.precision=bf16", "data.bad_records=skip"])
        XCTAssertEqual([lora.stage1.schedule, lora.stage2.schedule], [.constant, .cosine])
        XCTAssertEqual(lora.train.precision, .bf16)
        XCTAssertEqual(lora.data.badRecords, .skip)
        XCTAssertEqual(lora.stage2.finetune, .lora)
        XCTAssertEqual(lora.stage1.finetune, .full)
        XCTAssertEqual(lora.train.budget, .fixedTokens)
        let written = try XCTUnwrap(JSONSerialization.jsonObject(with: lora.jsonData()) as? [String: Any])
        XCTAssertEqual((written["stage2"] as? [String: Any])?["finetune"] as? String, "lora")
        XCTAssertEqual((written["train"] as? [String: Any])?["budget"] as? String, "fixed_tokens")
        let json = dir.appendingPathComponent("r.json")
        try r.jsonData().write(to: json)
        XCTAssertEqual(try Recipe.load(path: json.path), r)
    }

    func testBadKeysTypesAndValuesNameTheKey() throws {
        func expect(_ override: String, _ key: String, line: UInt = #line) {
            XCTAssertThrowsError(try tinyRecipe("r", in: dir, [override]), line: line) { e in
                XCTAssertEqual((e as? RecipeError)?.key, key, "\(e)", line: line)
            }
        }
        expect("stage2.lrr=1", "stage2.lrr")
        expect("optimizer.lr=1", "optimizer.lr")
        expect("stage1.batch_size=eight", "stage1.batch_size")
        expect("stage1.batch_size=2.5", "stage1.batch_size")
        expect("stage2.lr=-1", "stage2.lr")
        expect("data.warmup_percent=150", "data.warmup_percent")
        expect("model.num_attention_heads=5", "model.num_attention_heads")
        expect("data.template=v7", "data.template")
        expect("model.tie_word_embeddings=1", "model.tie_word_embeddings")
        expect("data.max_length=500", "data.max_length")
        expect("data.max_length=8", "data.max_length")
        expect("nonsense", "nonsense")
        XCTAssertThrowsError(try tinyRecipe("r", in: dir, ["stage1.finetune=qlora"])) {
            XCTAssertEqual("\($0)", "recipe key 'stage1.finetune': must be \"full\" or \"lora\", got \"qlora\"")
        }
        XCTAssertThrowsError(try tinyRecipe("r", in: dir, ["stage2.schedule=linear"])) {
            XCTAssertTrue("\($0)".hasSuffix("stage2.schedule': must be \"cosine\" or \"constant\", got \"linear\""), "\($0)")
        }
        XCTAssertThrowsError(try tinyRecipe("r", in: dir, ["data.bad_records=ignore"])) {
            XCTAssertTrue("\($0)".hasSuffix("data.bad_records': must be \"fail\" or \"skip\", got \"ignore\""), "\($0)")
        }
        XCTAssertThrowsError(try tinyRecipe("r", in: dir, ["train.budget=tokens"])) {
            XCTAssertTrue("\($0)".hasSuffix("must be \"additive\", \"fixed_steps\" or \"fixed_tokens\", got \"tokens\""), "\($0)")
        }
        XCTAssertThrowsError(try { () throws -> Recipe in
            let url = self.dir.appendingPathComponent("bad.toml")
            try "name = \"x\"\n[data\n".write(to: url, atomically: true, encoding: .utf8)
            return try Recipe.load(path: url.path)
        }()) { XCTAssertTrue("\($0)".contains("bad.toml:2")) }
    }
}

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

    func testSweepArmsShareInitAndEvalAndResumeArmByArm() throws {
        let recipe = try tinyRecipe("sweep", in: dir, ["sweep.warmup_percents=[0,50]", "stage2.epochs=1", "stage1.epochs=1"])
        let sweep = Sweep(recipe: recipe, isTerminal: false)
        var lines: [String] = []
        let results = try sweep.run { lines.append($0) }.map(\.result)
        XCTAssertEqual(results.map(\.warmupPercent), [0, 50])
        XCTAssertEqual(results[0].initialEvalLoss, results[1].initialEvalLoss)  // same weights, same eval set
        XCTAssertEqual(results[0].evalRecords, results[1].evalRecords)
        XCTAssertEqual(results[0].stages.last!.steps, results[1].stages.last!.steps)  // same stage-2 budget
        XCTAssertEqual(results[1].stages.map(\.stage), [1, 2])
        let report = try String(contentsOf: sweep.directory.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("| 50 |"))
        let svg = try String(contentsOf: sweep.directory.appendingPathComponent("eval-loss.svg"), encoding: .utf8)
        // Each arm is a curve in the whole-run panel, and in the zoomed panel a curve or, with one evaluation there, a dot.
        let zoomed = try XCTUnwrap(svg.components(separatedBy: "Last half of stage 2").last?.components(separatedBy: "Final eval loss per arm").first)
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1 - (zoomed.components(separatedBy: "<polyline").count - 1), 2)
        XCTAssertEqual(zoomed.components(separatedBy: "<polyline").count - 1 + zoomed.components(separatedBy: "<circle").count - 1, 2)
        // Running again reuses finished arms.
        var again: [String] = []
        _ = try Sweep(recipe: recipe, isTerminal: false).run { again.append($0) }
        XCTAssertEqual(again.filter { $0.contains("already finished") }.count, 2)
    }
}

func temporaryTestDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("alignerkit-train-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
