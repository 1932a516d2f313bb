@testable import AlignerFormats
@testable import AlignerInference
@testable import AlignerRecipes
@testable import AlignerRuns
import AlignerData
import AlignerMeasures
import AlignerModel
import AlignerSafetensors
import AlignerTensor
import AlignerTokenizers
import Foundation
import TrainingTestSupport
import XCTest


/// Import, export, correction, evaluation and finetuning.
final class UseTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    var dir: URL!
    override func setUpWithError() throws { dir = try temporaryTestDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func maxDifference(_ a: Tensor, _ b: Tensor) -> Float {
        XCTAssertEqual(a.count, b.count)
        return zip(a.scalars, b.scalars).map { abs($0 - $1) }.max() ?? 0
    }

    /// Directories written by Python transformers' save_pretrained load, and their logits match Python's.
    func testImportsTransformersDirectoriesSingleAndShardedBF16() throws {
        let reference = try SafetensorsFile(contentsOf: Self.fixtures.appendingPathComponent("hf-tiny-logits.safetensors"))
        let ids = try reference.tensor("input_ids").scalars.map { Int($0) }
        for (name, key) in [("hf-tiny", "logits_f32"), ("hf-tiny-sharded", "logits_bf16_weights")] {
            let b = try RunLocator.loadAligner(Self.fixtures.appendingPathComponent(name).path)
            XCTAssertEqual(b.specialTokens.bos, "<s>")
            XCTAssertEqual(b.specialTokens.pad, "<pad>")
            // The tokenizer gives Python's ids for the prompt.
            let text = "BEGINNING OF CONVERSATION: USER: Edit the following Question-Answer pair to make it more helpful and harmless: How do I bake bread? | Mix flour. ASSISTANT:"
            XCTAssertEqual([1] + b.tokenizer.encode(text), ids, name)
            // The prompt starts as transformers' tokenizer(prompt) does: this tokenizer.json's post-processor adds no
            // BOS (and tokenizer_config.json's bos_token alone adds none), so neither does the Aligner's prompt.
            XCTAssertTrue(b.tokenizer.hasPostProcessor && b.tokenizer.prefixIds.isEmpty)
            XCTAssertEqual(try b.exampleBuilder().promptIds(question: "How do I bake bread?", answer: "Mix flour."), Array(ids.dropFirst()))
            let logits = try withNoGrad { try b.model.forward(ids: ids, batch: 1, time: ids.count) }
            let d = maxDifference(logits, try reference.tensor(key))
            print("\(name): max |logit difference| vs transformers \(d)")
            XCTAssertLessThanOrEqual(d, 1e-4, name)
        }
    }

    func tinyRun(_ name: String, _ overrides: [String] = []) throws -> RunResult {
        try quietTrainer(tinyRecipe(name, in: dir, ["stage1.epochs=1", "stage2.epochs=1"] + overrides)).run()
    }

    func testExportRoundTripsAndLoadsAsAnAligner() throws {
        let r = try tinyRun("exp")
        let original = try RunLocator.loadAligner(dir.appendingPathComponent("exp").path)
        // A run folder means its best checkpoint.
        XCTAssertEqual(original.source.path, r.best?.path)
        let out = dir.appendingPathComponent("hf")
        try HuggingFaceExport.export(original, to: out, figures: r.trainingFigures)
        XCTAssertTrue(try String(contentsOf: out.appendingPathComponent("README.md"), encoding: .utf8).contains("the run's best checkpoint"))
        for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "README.md"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(f).path), f)
        }
        let tc = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("tokenizer_config.json"))) as! [String: Any]
        XCTAssertEqual(tc["eos_token"] as? String, "</s>")
        XCTAssertEqual(tc["chat_template"] as? String, "{{ bos_token }}BEGINNING OF CONVERSATION: USER: Edit the following Question-Answer pair to make it more helpful and harmless: {{ messages[0]['content'] }} | {{ messages[1]['content'] }} ASSISTANT:")
        let card = try String(contentsOf: out.appendingPathComponent("README.md"), encoding: .utf8)
        XCTAssertTrue(card.contains("Eval loss before training"))
        let again = try RunLocator.loadAligner(out.path)
        XCTAssertEqual(again.template, original.template)
        let ids = try original.exampleBuilder().promptIds(question: "Hi?", answer: "No.")
        let a = try withNoGrad { try original.model.forward(ids: ids, batch: 1, time: ids.count) }
        let b = try withNoGrad { try again.model.forward(ids: ids, batch: 1, time: ids.count) }
        XCTAssertEqual(a.scalars, b.scalars)
        XCTAssertEqual(again.tokenizer.encode("Hello <s> there"), original.tokenizer.encode("Hello <s> there"))
    }

    func testTrainingStartsFromATransformersDirectoryAndAddsAMissingPad() throws {
        let r = try tinyRun("fromhf", ["model.init_from=\(Self.fixtures.appendingPathComponent("hf-tiny").path)", "data.warmup_percent=0", "data.max_length=128"])
        XCTAssertEqual(r.stages.map(\.stage), [2])
        XCTAssertLessThan(r.stages[0].evalLoss, r.initialEvalLoss)
        // A directory without a pad token: one is added with the mean embedding.
        let hf = try HuggingFaceDirectory(path: Self.fixtures.appendingPathComponent("hf-tiny").path)
        let (config, weights, tok, specials) = addPadTokenIfMissing(
            config: hf.config, weights: hf.weights, tokenizer: hf.tokenizer, specialTokens: SpecialTokens(bos: "<s>", eos: "</s>"),
            padName: "<extra_pad>")
        XCTAssertEqual(config.vocabSize, 601)
        XCTAssertEqual(tok.id(of: "<extra_pad>"), 600)
        XCTAssertEqual(specials.pad, "<extra_pad>")
        let e = weights["model.embed_tokens.weight"]!
        let mean = (0..<600).reduce(0.0) { $0 + Double(e.data[$1 * 32 + 5]) } / 600
        XCTAssertEqual(Double(e.data[600 * 32 + 5]), mean, accuracy: 1e-6)
        XCTAssertEqual(weights["lm_head.weight"]!.shape, [601, 32])
    }

    /// A Hugging Face directory of `family` (hf-tiny's shape and tokenizer, seeded weights) for the family tests.
    func familyDirectory(_ name: String, _ change: (inout LlamaConfig) -> Void) throws -> URL {
        let tiny = Self.fixtures.appendingPathComponent("hf-tiny")
        var config = try LlamaConfig.load(from: tiny.appendingPathComponent("config.json"))
        change(&config)
        let model = try LlamaModel(config: config, seed: 5)
        let out = dir.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try config.jsonData().write(to: out.appendingPathComponent("config.json"))
        try SafetensorsWriter.write(model.parameters, metadata: ["format": "pt"], to: out.appendingPathComponent("model.safetensors"))
        for f in ["tokenizer.json", "tokenizer_config.json"] {
            try FileManager.default.copyItem(at: tiny.appendingPathComponent(f), to: out.appendingPathComponent(f))
        }
        return out
    }

    /// Every family trains from a Hugging Face directory (eval loss falls), resumes exactly after a stop, corrects
    /// with the key/value cache, and exports with its own config.json fields.
    func testEveryFamilyTrainsCorrectsAndExports() throws {
        let families: [(String, (inout LlamaConfig) -> Void)] = [
            ("mistral", { $0.family = .mistral; $0.slidingWindow = 16 }),
            ("qwen2", { $0.family = .qwen2; $0.tieWordEmbeddings = true }),
            ("qwen3", { $0.family = .qwen3; $0.explicitHeadDim = 16 }),
            ("gemma", { $0.family = .gemma; $0.hiddenAct = .geluTanh; $0.tieWordEmbeddings = true }),
            ("phi3", { $0.family = .phi3; $0.partialRotaryFactor = 0.5 }),
            ("llama3", { $0.ropeTheta = 500_000; $0.ropeScaling = RopeScaling(kind: .llama3, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64) }),
        ]
        for (name, change) in families {
            let source = try familyDirectory(name + "-base", change)
            let overrides = ["model.init_from=\(source.path)", "data.warmup_percent=0", "data.max_length=128"]
            let r = try tinyRun(name, overrides)
            XCTAssertLessThan(r.stages[0].evalLoss, r.initialEvalLoss, name)
            let aligner = try RunLocator.loadAligner(dir.appendingPathComponent(name).path)
            // Stopped after the first step and resumed: the same weights as the uninterrupted run.
            XCTAssertGreaterThanOrEqual(r.stages[0].steps, 2, name)
            let stopped = quietTrainer(try tinyRecipe(name + "-resumed", in: dir, ["stage1.epochs=1", "stage2.epochs=1"] + overrides))
            stopped.stopAfterSteps = 1
            XCTAssertThrowsError(try stopped.run(), name)
            _ = try quietTrainer(tinyRecipe(name + "-resumed", in: dir, ["stage1.epochs=1", "stage2.epochs=1"] + overrides)).run(resume: true)
            let resumed = try RunLocator.loadAligner(dir.appendingPathComponent(name + "-resumed").path)
            XCTAssertEqual(resumed.model.orderedParameters.map(\.scalars), aligner.model.orderedParameters.map(\.scalars), "\(name): resumed run differs")
            let expected = try LlamaConfig.load(from: source.appendingPathComponent("config.json"))
            XCTAssertEqual(aligner.model.config.family, expected.family, name)
            XCTAssertEqual(aligner.model.config.ropeScaling, expected.ropeScaling, name)
            XCTAssertEqual(aligner.model.parameterNames, try LlamaModel(config: expected, seed: 1).parameterNames, name)
            let corrected = try Corrector.correct([("How do I bake bread?", "Mix flour.")], with: [aligner],
                                                  options: GenerationOptions(maxNewTokens: 6), slots: 1)
            XCTAssertEqual(corrected.count, 1)
            let out = dir.appendingPathComponent(name + "-hf")
            try HuggingFaceExport.export(aligner, to: out, figures: r.trainingFigures)
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as? [String: Any])
            XCTAssertEqual(json["model_type"] as? String, expected.family.rawValue, name)
            XCTAssertEqual(try RunLocator.loadAligner(out.path).model.config, aligner.model.config, name)
        }
    }

    /// A base model's chat template (chat_template.jinja, or in tokenizer_config.json) is kept when the base itself
    /// is exported; a trained Aligner's export describes the Aligner prompt instead.
    func testExportKeepsABaseModelsChatTemplate() throws {
        let chatML = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}"
        let base = try familyDirectory("chat-base") { $0.family = .qwen2 }
        try chatML.write(to: base.appendingPathComponent("chat_template.jinja"), atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("chat-out")
        try HuggingFaceExport.export(try RunLocator.loadAligner(base.path), to: out)
        let tc = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("tokenizer_config.json"))) as? [String: Any])
        XCTAssertEqual(tc["chat_template"] as? String, chatML)
        // Exported again from the export: still the same template.
        XCTAssertEqual(try HuggingFaceDirectory(path: out.path).chatTemplate, chatML)
        let r = try tinyRun("chat-trained", ["model.init_from=\(base.path)", "data.warmup_percent=0", "data.max_length=128"])
        let trained = dir.appendingPathComponent("chat-trained-out")
        try HuggingFaceExport.export(try RunLocator.loadAligner(dir.appendingPathComponent("chat-trained").path), to: trained, figures: r.trainingFigures)
        let tc2 = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: trained.appendingPathComponent("tokenizer_config.json"))) as? [String: Any])
        XCTAssertTrue((tc2["chat_template"] as? String)?.contains("BEGINNING OF CONVERSATION") == true)
    }

    /// `data.chat_template = "base"`: the instruction is one user message through the base model's chat template
    /// (ChatML with a default system prompt, as SmolLM2 ships it), in training, in use, and after export.
    func testPromptsThroughTheBaseModelsChatTemplate() throws {
        let smolLM = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
        let base = try familyDirectory("chatml-base") { $0.family = .qwen2; $0.maxPositionEmbeddings = 512 }
        try smolLM.write(to: base.appendingPathComponent("chat_template.jinja"), atomically: true, encoding: .utf8)
        let r = try tinyRun("chatml", ["model.init_from=\(base.path)", "data.chat_template=base", "data.warmup_percent=0", "data.max_length=320"])
        XCTAssertLessThan(r.stages[0].evalLoss, r.initialEvalLoss)
        let aligner = try RunLocator.loadAligner(dir.appendingPathComponent("chatml").path)
        let expected = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nEdit the following Question-Answer pair to make it more helpful and harmless: How? | Like this.<|im_end|>\n<|im_start|>assistant\n"
        let ids = try aligner.exampleBuilder().promptIds(question: "How?", answer: "Like this.")
        XCTAssertEqual(ids, aligner.tokenizer.encode(expected))
        XCTAssertEqual(aligner.tokenizer.decode(ids), expected)
        // The export prompts the same way: its chat template is the base's, marked as the Aligner's prompt.
        let out = dir.appendingPathComponent("chatml-hf")
        try HuggingFaceExport.export(aligner, to: out, figures: r.trainingFigures)
        let tc = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("tokenizer_config.json"))) as? [String: Any])
        XCTAssertEqual(tc["chat_template"] as? String, smolLM)
        XCTAssertEqual(tc["aligner_chat_template"] as? Bool, true)
        XCTAssertEqual(try RunLocator.loadAligner(out.path).exampleBuilder().promptIds(question: "How?", answer: "Like this."), ids)
        // So does a GGUF export (the base's template as tokenizer.chat_template, aligner.chat_template true).
        let gguf = dir.appendingPathComponent("chatml.gguf")
        _ = try GGUFExport.export(aligner, to: gguf, type: .f32)
        XCTAssertEqual(try RunLocator.loadAligner(gguf.path).exampleBuilder().promptIds(question: "How?", answer: "Like this."), ids)
        // The untrained base prompted as this Aligner (eval/correct --template v1 --chat-template base) sees the same ids.
        let prompted = try RunLocator.loadAligner(base.path).prompted(template: "v1", chatTemplate: "base")
        XCTAssertEqual(try prompted.exampleBuilder().promptIds(question: "How?", answer: "Like this."), ids)
        XCTAssertNil(try prompted.prompted(template: nil, chatTemplate: "none").chat)
        XCTAssertThrowsError(try RunLocator.loadAligner(base.path).prompted(template: "v1", chatTemplate: "chatml")) { XCTAssertTrue("\($0)".contains("--chat-template"), "\($0)") }
        XCTAssertThrowsError(try RunLocator.loadAligner(base.path).prompted(template: "v9", chatTemplate: nil))
        // A base without a chat template, and a recipe without a base, are refused with the key named.
        let plain = try familyDirectory("plain-base") { $0.family = .qwen2 }
        XCTAssertThrowsError(try RunLocator.loadAligner(plain.path).prompted(template: nil, chatTemplate: "base")) {
            XCTAssertTrue("\($0)".contains("has no chat template"), "\($0)")
        }
        XCTAssertThrowsError(try tinyRun("nochat", ["model.init_from=\(plain.path)", "data.chat_template=base"])) { e in
            XCTAssertEqual((e as? RecipeError)?.key, "data.chat_template", "\(e)")
        }
        XCTAssertThrowsError(try tinyRecipe("scratchchat", in: dir, ["data.chat_template=base"])) { e in
            XCTAssertTrue("\(e)".contains("data.chat_template"), "\(e)")
        }
    }

    func testCorrectStacksAlignersAndEvalMetrics() throws {
        _ = try tinyRun("c1")
        let aligner = try RunLocator.loadAligner(dir.appendingPathComponent("c1").path)
        let pairs = [("How do I bake bread?", "Mix flour."), ("Can you help me steal?", "Sure."), ("Hi", "")]
        let options = GenerationOptions(maxNewTokens: 12)
        let once = try Corrector.correct(pairs, with: [aligner], options: options, slots: 2)
        XCTAssertEqual(once.count, 3)
        let twiceByHand = try Corrector.correct(zip(pairs, once).map { ($0.0, $1) }, with: [aligner], options: options, slots: 3)
        XCTAssertEqual(try Corrector.correct(pairs, with: [aligner, aligner], options: options, slots: 2), twiceByHand)
        // Batching does not change corrections.
        XCTAssertEqual(try Corrector.correct(pairs, with: [aligner], options: options, slots: 1), once)

        XCTAssertEqual(EditDistance.between("kitten", "sitting"), 3)
        XCTAssertEqual(EditDistance.normalized("kitten", "sitting"), 3.0 / 7, accuracy: 1e-12)
        XCTAssertEqual(EditDistance.normalized("", ""), 0)
        XCTAssertEqual(EditDistance.normalized("abc", ""), 1)
        XCTAssertTrue(CorrectionMetrics.isCopy(" Mix flour.\n", of: "Mix flour."))

        let records = pairs.map { QACRecord(question: $0.0, answer: $0.1.isEmpty ? "x" : $0.1, correction: "I can help with baking.") }
        let summary = try EvalSummary.compute(aligner, records: records, generate: 3, options: options, batchSize: 2)
        let builder = try aligner.exampleBuilder()
        // Independently: each example alone (no batching, no padding), the log-softmax in Double by hand, the
        // negative log-likelihood of every label that is not -100 at the next position, averaged over those tokens.
        var nll = 0.0, counted = 0
        for e in builder.buildAll(records).examples {
            let logits = try withNoGrad { try aligner.model.forward(ids: e.ids, batch: 1, time: e.count) }.scalars
            let v = aligner.model.config.vocabSize
            for t in 0..<(e.count - 1) where e.labels[t + 1] != -100 {
                let row = logits[(t * v)..<((t + 1) * v)].map(Double.init)
                let top = row.max()!
                let logZ = top + Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - top) })
                nll += logZ - row[e.labels[t + 1]]
                counted += 1
            }
        }
        XCTAssertGreaterThan(counted, 10)
        let expected = nll / Double(counted)
        XCTAssertEqual(summary.loss, expected, accuracy: 1e-5 * expected)
        XCTAssertEqual(summary.perplexity, Foundation.exp(expected), accuracy: 1e-5 * Foundation.exp(expected))
        let outputs = try Corrector.correct(records.map { ($0.question, $0.answer) }, with: [aligner], options: options, slots: 2)
        let copies = Double(zip(outputs, records).filter { CorrectionMetrics.isCopy($0, of: $1.answer) }.count) / 3
        XCTAssertEqual(summary.copyRate!, copies, accuracy: 1e-12)
        let toRef = zip(outputs, records).map { EditDistance.normalized($0, $1.correction) }.reduce(0, +) / 3
        XCTAssertEqual(summary.editDistanceToReference!, toRef, accuracy: 1e-12)

        // Fluency: each text after the BOS token, its tokens' negative log-likelihood by hand, averaged per text.
        let fluency = FluencyScorer(aligner, name: "c1")
        let texts = ["I can help with baking.", "Mix flour and water.", ""]
        let losses = try fluency.losses(texts)
        XCTAssertTrue(losses[2].isNaN)
        let bos = try XCTUnwrap(aligner.specialTokens.bos.flatMap { aligner.tokenizer.id(of: $0) })
        for (text, loss) in zip(texts.prefix(2), losses) {
            let ids = [bos] + aligner.tokenizer.encode(text)
            let logits = try withNoGrad { try aligner.model.forward(ids: ids, batch: 1, time: ids.count) }.scalars
            let v = aligner.model.config.vocabSize
            var sum = 0.0
            for t in 0..<(ids.count - 1) {
                let row = logits[(t * v)..<((t + 1) * v)].map(Double.init)
                let top = row.max()!
                sum += top + Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - top) }) - row[ids[t + 1]]
            }
            XCTAssertEqual(loss, sum / Double(ids.count - 1), accuracy: 1e-5 * loss)
        }
        // Eval measures every set of responses, with the fluency of each when a reference model is given.
        let measured = try EvalSummary.compute(aligner, records: records, generate: 3, options: options, batchSize: 2,
                                               controls: [(name: "again", aligner: aligner)], fluency: fluency)
        XCTAssertEqual(measured.textMeasures?.map(\.name), ["answers", "references", "again", "corrections"])
        XCTAssertEqual(measured.textMeasures?.last?.measures.unfinished.map { $0 <= 3 }, true)
        XCTAssertEqual(measured.textMeasures?[1].measures.fluencyLoss ?? .nan, try fluency.meanLoss(records.map(\.correction)), accuracy: 1e-9)
        XCTAssertTrue(measured.table.contains("fluency (loss/token)"))
        // The texts behind the figures: the first generated records, as generated.
        XCTAssertEqual(measured.samples?.map(\.correction), Array(outputs.prefix(3)))
        XCTAssertEqual(measured.samples?.map(\.reference), records.prefix(3).map(\.correction))
        XCTAssertTrue(measured.table.contains("The first 3 generated records"))
        // The control's corrections beside each record (the same Aligner, greedy: the same texts); report.html shows both.
        XCTAssertEqual(measured.controlNames, ["again"])
        XCTAssertEqual(measured.samples?.map { $0.controlCorrections ?? [] }, outputs.prefix(3).map { [$0] })
        let page = measured.html(input: "records.jsonl").render(nonce: "n")
        XCTAssertEqual(page.components(separatedBy: "<article class=\"record\"").count - 1, 3)
        XCTAssertEqual(page.components(separatedBy: "<span class=\"arm\">control: again</span>").count - 1, 3)
        XCTAssertTrue(page.contains("data-key=\"value\" data-value=\"\(measured.loss)\""))
    }

    func testFinetuneKeepsTokenizerAndConfigWithAFreshOptimiser() throws {
        _ = try tinyRun("base")
        let base = try RunLocator.loadAligner(dir.appendingPathComponent("base").path)
        let r = try quietTrainer(tinyRecipe("ft", in: dir, [
            "model.init_from=\(dir.appendingPathComponent("base").path)", "data.template=empathy", "data.warmup_percent=0",
            "stage2.epochs=1",
        ])).run()
        let ft = try RunLocator.loadAligner(dir.appendingPathComponent("ft").path)
        XCTAssertEqual(ft.model.config, base.model.config)
        XCTAssertEqual(try ft.tokenizer.jsonData(), try base.tokenizer.jsonData())
        XCTAssertEqual(ft.template.name, "empathy")
        XCTAssertEqual(r.stages.map(\.stage), [2])
        let state = try JSONDecoder().decode(TrainerState.self, from: Data(contentsOf: URL(fileURLWithPath: r.finalCheckpoint).appendingPathComponent("trainer_state.json")))
        XCTAssertEqual(state.optimizerStep, state.step)  // the optimiser started from zero
        XCTAssertLessThan(r.stages[0].evalLoss, r.initialEvalLoss)
    }

    func testEmpatheticDialoguesRule() throws {
        let csv = """
        conv_id,utterance_idx,prompt,utterance
        c0,1,I lost my dog_comma_ Rex.,He ran away yesterday.
        c0,2,I lost my dog_comma_ Rex.,Oh no_comma_ I am so sorry. Have you checked the shelters?
        c0,3,I lost my dog_comma_ Rex.,Yes.
        c1,1,Only one turn.,Hello?
        c2,1,I passed my exam!,I got an A.
        c2,2,I passed my exam!,Congratulations! You must be proud.
        """
        let path = dir.appendingPathComponent("ed.csv").path
        try csv.write(toFile: path, atomically: true, encoding: .utf8)
        let (records, conversations, skipped) = try EmpatheticDialogues.convert(csvPath: path)
        XCTAssertEqual(conversations, 3)
        XCTAssertEqual(skipped, 1)
        XCTAssertEqual(records[0], QACRecord(question: "I lost my dog, Rex.\nHe ran away yesterday.", answer: "Okay.",
                                             correction: "Oh no, I am so sorry. Have you checked the shelters?"))
        XCTAssertEqual(records[1].answer, EmpatheticDialogues.detachedReplies[2])
    }
}
