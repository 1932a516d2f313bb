@testable import AlignerRecipes
@testable import AlignerRuns
@testable import AlignerSweeps
@testable import AlignerTraining
import AlignerData
import AlignerModel
import Foundation
import TrainingTestSupport
import XCTest

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
        XCTAssertEqual(r.data.promptTemplateName, "v2")
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
        expect("nonsense", "")
        XCTAssertThrowsError(try tinyRecipe("r", in: dir, ["=5"])) {
            XCTAssertEqual("\($0)", "recipe: override '=5' must look like key=value or section.key=value (for example stage1.lr=1e-4)")
        }
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
