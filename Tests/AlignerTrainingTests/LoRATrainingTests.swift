@testable import AlignerFormats
@testable import AlignerInference
@testable import AlignerRecipes
@testable import AlignerRuns
@testable import AlignerTraining
import AlignerData
import AlignerModel
import AlignerSafetensors
import AlignerTensor
import Foundation
import TrainingTestSupport
import XCTest


/// LoRA in runs: adapters-only checkpoints that refer to their base, exact resume with adapter dropout, stages that
/// mix LoRA and full finetuning, loading and exporting LoRA Aligners, and the recipe keys.
final class LoRATrainingTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try temporaryTestDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// A short full run to serve as the pretrained base.
    func base() throws -> URL {
        let url = dir.appendingPathComponent("base")
        if !FileManager.default.fileExists(atPath: url.path) {
            _ = try quietTrainer(tinyRecipe("base", in: dir, ["stage1.epochs=1", "stage2.epochs=1"])).run()
        }
        return url
    }

    func loraRecipe(_ name: String, _ extra: [String] = []) throws -> Recipe {
        try tinyRecipe(name, in: dir, ["model.init_from=\(try base().path)", "stage1.finetune=lora", "stage2.finetune=lora", "lora.rank=4",
                                       "lora.alpha=8", "lora.dropout=0.1", "stage1.lr=1e-2", "stage2.lr=1e-2"] + extra)
    }

    func files(_ checkpoint: String) throws -> Set<String> {
        Set(try FileManager.default.contentsOfDirectory(atPath: checkpoint))
    }

    func testAdapterRunsKeepOnlyAdaptersAndResumeExactly() throws {
        let straight = try quietTrainer(loraRecipe("straight")).run()
        XCTAssertLessThan(straight.stages.last!.evalLoss, straight.initialEvalLoss, "LoRA training lowers the eval loss")
        let names = try files(straight.finalCheckpoint)
        XCTAssertTrue(names.isSuperset(of: [PEFTAdapter.configFile, PEFTAdapter.weightsFile, BaseReference.file]), "\(names)")
        XCTAssertFalse(names.contains("model.safetensors"), "a checkpoint of adapters on an unchanged base holds no frozen weights")
        // The optimiser state covers the adapters only.
        let opt = try SafetensorsFile(contentsOf: URL(fileURLWithPath: straight.finalCheckpoint).appendingPathComponent("optimizer.safetensors"))
        XCTAssertTrue(opt.names.allSatisfy { $0.contains(".lora_A.") || $0.contains(".lora_B.") }, "\(opt.names.prefix(3))")
        // The frozen base is the base, unchanged; the adapters run unmerged and give the merged export's loss.
        let aligner = try RunLocator.loadAligner(straight.finalCheckpoint)
        let baseBundle = try RunLocator.loadAligner(try base().path)
        XCTAssertNotNil(aligner.model.lora)
        for name in aligner.model.parameterNames {
            XCTAssertEqual(aligner.model.parameters[name]!.scalars, baseBundle.model.parameters[name]!.scalars, name)
        }
        let examples = try aligner.exampleBuilder().buildAll(try RecordReader.read(path: dir.appendingPathComponent("straight/splits/eval.jsonl").path).records).0
        let unmerged = try Evaluation.loss(aligner.model, examples, batchSize: 8, padId: 0)
        try HuggingFaceExport.export(aligner, to: dir.appendingPathComponent("merged"))
        let merged = try RunLocator.loadAligner(dir.appendingPathComponent("merged").path)
        XCTAssertNil(merged.model.lora)
        XCTAssertEqual(try Evaluation.loss(merged.model, examples, batchSize: 8, padId: 0), unmerged, accuracy: 1e-5 * unmerged)
        XCTAssertEqual(unmerged, straight.stages.last!.evalLoss, accuracy: 1e-9, "the run's own evaluation (no dropout)")

        // Stopped mid stage 1 and mid stage 2, then resumed: the same losses (dropout masks included) and adapters.
        let s1 = straight.stages[0].steps
        for (name, stops) in [("mid1", [2]), ("mid2", [s1 + 2])] {
            for n in stops {
                let t = quietTrainer(try loraRecipe(name))
                t.stopAfterSteps = n
                XCTAssertThrowsError(try t.run()) { guard case TrainingStop.stoppedAfterSteps = $0 else { return XCTFail("\($0)") } }
            }
            let resumed = try quietTrainer(loraRecipe(name)).run(resume: true)
            XCTAssertEqual(resumed.trainLosses, straight.trainLosses, name)
            XCTAssertEqual(resumed.evalCurve, straight.evalCurve, name)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: resumed.finalCheckpoint).appendingPathComponent(PEFTAdapter.weightsFile)),
                           try Data(contentsOf: URL(fileURLWithPath: straight.finalCheckpoint).appendingPathComponent(PEFTAdapter.weightsFile)), name)
        }
        // Without dropout the losses differ: the masks were in use.
        let plain = try quietTrainer(loraRecipe("plain", ["lora.dropout=0"])).run()
        XCTAssertNotEqual(plain.trainLosses, straight.trainLosses)
    }

    func testMixedStagesMergeOrKeepTheFrozenWeights() throws {
        // LoRA warm-up, then a full stage: the adapters are merged, the final checkpoint is a full model.
        let loraThenFull = try quietTrainer(loraRecipe("lora-full", ["stage2.finetune=full", "stage2.lr=3e-3"])).run()
        var names = try files(loraThenFull.finalCheckpoint)
        XCTAssertTrue(names.contains("model.safetensors"))
        XCTAssertFalse(names.contains(PEFTAdapter.configFile))
        XCTAssertNil(try RunLocator.loadAligner(loraThenFull.finalCheckpoint).model.lora)
        // A full warm-up, then LoRA: the frozen weights are no longer the base's, so the checkpoint holds them.
        let fullThenLora = try quietTrainer(loraRecipe("full-lora", ["stage1.finetune=full", "stage1.lr=3e-3"])).run()
        names = try files(fullThenLora.finalCheckpoint)
        XCTAssertTrue(names.isSuperset(of: ["model.safetensors", PEFTAdapter.configFile, PEFTAdapter.weightsFile]))
        XCTAssertFalse(names.contains(BaseReference.file))
        // PEFT export: the frozen weights go into base/, named as the base.
        let out = dir.appendingPathComponent("peft")
        let summary = try PEFTExport.export(try RunLocator.loadAligner(fullThenLora.finalCheckpoint), to: out)
        XCTAssertTrue(summary.wroteBase)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("base/model.safetensors").path))
        // base/ is a plain causal language model: no Aligner prompt, no Aligner model card (the adapter folder has both).
        let baseTokenizerConfig = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("base/tokenizer_config.json"))) as? [String: Any])
        XCTAssertEqual(baseTokenizerConfig.keys.filter { $0.hasPrefix("aligner") || $0 == "chat_template" }, [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("base/README.md").path))
        let adapterTokenizerConfig = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("tokenizer_config.json"))) as? [String: Any])
        XCTAssertNotNil(adapterTokenizerConfig["aligner_prompt_template"] as? String)
        let read = try PEFTAdapter.read(from: out)
        XCTAssertEqual(read.base, out.appendingPathComponent("base").path)
        XCTAssertEqual(read.config.rank, 4)
        XCTAssertEqual(Set(read.weights.keys).count, 2 * 2 * 7)
        // From scratch with LoRA: the frozen random weights are kept too.
        let scratch = try quietTrainer(tinyRecipe("scratch-lora", in: dir, ["stage1.finetune=lora", "stage2.finetune=lora", "stage1.epochs=1", "stage2.epochs=1"])).run()
        XCTAssertTrue(try files(scratch.finalCheckpoint).isSuperset(of: ["model.safetensors", PEFTAdapter.configFile]))
        // A full Aligner has no adapters to export.
        XCTAssertThrowsError(try PEFTExport.export(try RunLocator.loadAligner(loraThenFull.finalCheckpoint), to: dir.appendingPathComponent("none"))) {
            XCTAssertTrue("\($0)".contains("has no adapters"), "\($0)")
        }
    }

    func testAChangedBaseIsRefusedWhenLoadingAdapters() throws {
        let run = try quietTrainer(loraRecipe("refers", ["stage1.epochs=1", "stage2.epochs=1"])).run()
        XCTAssertNotNil(try RunLocator.loadAligner(run.finalCheckpoint).model.lora)
        // The base's weights change under the run.
        let baseCheckpoint = try RunLocator.resolve(try base().path)
        let weights = baseCheckpoint.appendingPathComponent("model.safetensors")
        var data = try Data(contentsOf: weights)
        data[data.count - 1] ^= 0x01
        try data.write(to: weights)
        XCTAssertThrowsError(try RunLocator.loadAligner(run.finalCheckpoint)) { e in
            XCTAssertTrue("\(e)".contains("has changed since"), "\(e)")
        }
    }

    func testRecipeKeysAreCheckedByName() throws {
        func key(_ overrides: [String]) -> String? {
            do { _ = try tinyRecipe("bad", in: dir, overrides); return nil } catch { return (error as? RecipeError)?.key }
        }
        XCTAssertEqual(key(["stage1.finetune=qlora"]), "stage1.finetune")
        XCTAssertEqual(key(["lora.rank=0"]), "lora.rank")
        XCTAssertEqual(key(["lora.dropout=1"]), "lora.dropout")
        XCTAssertEqual(key(["lora.targets=[\"embed_tokens\"]"]), "lora.targets")
        XCTAssertEqual(key(["lora.rslora=3"]), "lora.rslora")
        XCTAssertNil(key(["lora.targets=[\"q\",\"v\"]", "stage2.finetune=lora"]))
        let r = try tinyRecipe("ok", in: dir, ["lora.rank=8", "lora.rslora=true", "stage2.finetune=lora"])
        XCTAssertEqual(r.lora.config.scaling, 32 / 8.0.squareRoot(), accuracy: 1e-12)
        // recipe.json round trip keeps the keys.
        let url = dir.appendingPathComponent("r.json")
        try r.jsonData().write(to: url)
        XCTAssertEqual(try Recipe.load(path: url.path), r)
    }

    /// Adapter folders AlignerKit cannot run are refused by name, never half-loaded.
    func testUnsupportedOrBrokenAdapterFilesAreRefusedByName() throws {
        let folder = dir.appendingPathComponent("adapters")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let weights: [String: Tensor] = ["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": Tensor.zeros([2, 4]),
                                         "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": Tensor.zeros([4, 2])]
        try SafetensorsWriter.encode(weights).write(to: folder.appendingPathComponent(PEFTAdapter.weightsFile))
        func message(_ config: String) -> String {
            do {
                try Data(config.utf8).write(to: folder.appendingPathComponent(PEFTAdapter.configFile))
                _ = try PEFTAdapter.read(from: folder)
                return "read"
            } catch { return "\(error)" }
        }
        let good = #"{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]}"#
        XCTAssertEqual(message(good), "read")
        XCTAssertTrue(message("not json").contains("not a JSON object"))
        XCTAssertTrue(message(#"{"peft_type": "IA3", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]}"#).contains("not LORA"))
        XCTAssertTrue(message(#"{"peft_type": "LORA", "lora_alpha": 4, "target_modules": ["q_proj"]}"#).contains("needs r"))
        XCTAssertTrue(message(#"{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"], "use_dora": true}"#).contains("use_dora"))
        XCTAssertTrue(message(#"{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"], "bias": "all"}"#).contains("bias"))
        XCTAssertTrue(message(#"{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"], "modules_to_save": ["lm_head"]}"#).contains("modules_to_save"))
        XCTAssertTrue(message(#"{"peft_type": "LORA", "r": 0, "lora_alpha": 4, "target_modules": ["q_proj"]}"#).contains("lora.rank"))
        XCTAssertTrue(message(#"{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["lm_head"]}"#).contains("lora.targets"))
        try FileManager.default.removeItem(at: folder.appendingPathComponent(PEFTAdapter.weightsFile))
        XCTAssertTrue(message(good).contains(PEFTAdapter.weightsFile), message(good))
    }
}
