import Foundation
import XCTest

/// Runs the `aligner` executable as a user would: every command on a tiny model, and the errors users see.
final class CommandLineTests: CLITestCase {
    func testEveryCommandOnATinyModel() throws {
        let out = dir.path
        let common = ["--set", "output_dir=\(out)", "--set", "data.limit=150", "--set", "data.eval_count=20",
                      "--set", "stage2.epochs=1", "--set", "model.hidden_size=32", "--set", "model.intermediate_size=64"]
        XCTAssertTrue(try run(["info"]).contains("BLAS: OpenBLAS core"))
        let train = try run(["train", "recipes/smoke.toml"] + common)
        XCTAssertTrue(train.contains("stage 1: ") && train.contains("stage 2: "), train)
        let run = "\(out)/smoke"
        // Resume of a finished run continues nothing and reports the same final state.
        XCTAssertTrue(try self.run(["train", "recipes/smoke.toml", "--resume"] + common).contains("finished"))

        let qa = dir.appendingPathComponent("qa.jsonl").path
        try #"{"question": "How do I bake bread?", "answer": "Mix flour."}"#.appending("\n").write(toFile: qa, atomically: true, encoding: .utf8)
        XCTAssertTrue(try self.run(["correct", "--checkpoint", run, "--checkpoint", run, qa, "\(out)/c.jsonl", "--max-new-tokens", "8"])
            .contains("wrote 1 corrections by 2 Aligner(s)"))
        let line = try String(contentsOfFile: "\(out)/c.jsonl", encoding: .utf8)
        XCTAssertTrue(line.contains("\"correction\"") && line.contains("\"answer\":\"Mix flour.\""), line)

        let eval = try self.run(["eval", "--checkpoint", run, "\(run)/splits/eval.jsonl", "--generate", "4", "--max-new-tokens", "8"])
        XCTAssertTrue(eval.contains("copy rate") && eval.contains("perplexity"), eval)
        // The JSON summary says what the table says.
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(run)/eval-eval.jsonl.json"))) as? [String: Any])
        let loss = try XCTUnwrap(summary["loss"] as? Double)
        XCTAssertTrue(eval.contains(String(format: "| correction loss | %.4f |", loss)), eval)
        XCTAssertEqual(summary["generated"] as? Int, 4)
        XCTAssertEqual(summary["records"] as? Int, 20)
        XCTAssertTrue(loss.isFinite && loss > 0 && loss < 20, "\(loss)")
        // Its report: the path printed, every generated record in it.
        XCTAssertTrue(eval.contains("report: \(run)/eval-eval.jsonl.html"), eval)
        let page = try String(contentsOfFile: "\(run)/eval-eval.jsonl.html", encoding: .utf8)
        XCTAssertEqual(page.components(separatedBy: "<article class=\"record\"").count - 1, 4)

        let gen = try self.run(["generate", "--checkpoint", run, "--prompt", "Hello", "--max-new-tokens", "5", "--logits-out", "\(out)/l.safetensors"])
        XCTAssertTrue(gen.hasPrefix("Hello") && gen.contains("tokens/s"), gen)
        // The logits file holds (1, T, vocab) floats for the prompt's T tokens.
        let logits = try Data(contentsOf: URL(fileURLWithPath: "\(out)/l.safetensors"))
        let headerLength = Int(logits.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: logits.subdata(in: 8..<(8 + headerLength))) as? [String: Any])
        let shape = try XCTUnwrap((header["logits"] as? [String: Any])?["shape"] as? [Int])
        let vocab = try XCTUnwrap((JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(run)/checkpoints")
            .appendingPathComponent(FileManager.default.contentsOfDirectory(atPath: "\(run)/checkpoints").filter { $0.hasPrefix("ckpt-") }.sorted().last!)
            .appendingPathComponent("config.json"))) as? [String: Any])?["vocab_size"] as? Int)
        XCTAssertEqual(shape.count, 3)
        XCTAssertEqual(shape.first, 1)
        XCTAssertEqual(shape.last, vocab)

        XCTAssertTrue(try self.run(["export", run, "\(out)/hf"]).contains("exported"))
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: "\(out)/hf")),
                       ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "README.md"])
        let exported = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(out)/hf/config.json"))) as? [String: Any])
        XCTAssertEqual(exported["architectures"] as? [String], ["LlamaForCausalLM"])
        XCTAssertEqual(exported["vocab_size"] as? Int, vocab)
        XCTAssertTrue(try self.run(["generate", "--checkpoint", "\(out)/hf", "--prompt", "Hello", "--max-new-tokens", "3"]).contains("tokens/s"))
        let bench = try self.run(["bench", "generate", "--model", "\(out)/hf", "--prompt-tokens", "6", "--new-tokens", "4", "--batch", "2", "--repeats", "1"])
        XCTAssertTrue(bench.contains("batch 2, prompt 6, new 4") && bench.contains("prefill") && bench.contains("GB/s of weights"), bench)
        // A Q8_0 GGUF decodes from its Q8_0 blocks unless told otherwise; the prompt's logits differ from float32's.
        XCTAssertTrue(try self.run(["export", run, "\(out)/q8.gguf", "--type", "q8_0"]).contains("Q8_0"))
        let q8 = try self.run(["bench", "generate", "--model", "\(out)/q8.gguf", "--prompt-tokens", "6", "--new-tokens", "4", "--repeats", "1"])
        XCTAssertTrue(q8.contains("(q8_0 weights)"), q8)
        let f32 = try self.run(["bench", "generate", "--model", "\(out)/q8.gguf", "--prompt-tokens", "6", "--new-tokens", "4", "--repeats", "1",
                                "--inference-weights", "f32"])
        XCTAssertTrue(f32.contains("(f32 weights)"), f32)
        try self.run(["generate", "--checkpoint", "\(out)/q8.gguf", "--prompt", "Hello", "--max-new-tokens", "2", "--logits-out", "\(out)/q8.safetensors"])
        try self.run(["generate", "--checkpoint", "\(out)/q8.gguf", "--prompt", "Hello", "--max-new-tokens", "2", "--logits-out", "\(out)/f32.safetensors",
                      "--inference-weights", "f32"])
        XCTAssertNotEqual(try Data(contentsOf: URL(fileURLWithPath: "\(out)/q8.safetensors")), try Data(contentsOf: URL(fileURLWithPath: "\(out)/f32.safetensors")))

        let ft = try self.run(["finetune", "recipes/empathy-finetune.toml", "--set", "output_dir=\(out)", "--set", "model.init_from=\(run)",
                               "--set", "data.limit=120", "--set", "data.eval_count=20", "--set", "stage2.epochs=1",
                               "--set", "data.max_length=192"])
        XCTAssertTrue(ft.contains("before,") && ft.contains("after"), ft)

        let sweep = try self.run(["sweep", "recipes/smoke.toml"] + common + ["--set", "name=sw", "--set", "sweep.warmup_percents=[0,20]"])
        XCTAssertTrue(sweep.contains("| 20 |") && sweep.contains("eval-loss.svg"), sweep)

        XCTAssertTrue(try self.run(["data", "stats", "data/qac/raw/aligner-template-dataset.json"]).contains("2 records"))
        let ids = try self.run(["tokenizer", "encode", "--tokenizer", "\(run)/tokenizer.json", "Hello world"])
            .trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ").map(String.init)
        XCTAssertGreaterThan(ids.count, 1)
        XCTAssertEqual(try self.run(["tokenizer", "decode", "--tokenizer", "\(run)/tokenizer.json"] + ids), "Hello world\n")
        try self.run(["tokenizer", "train", "--input", qa, "--vocab-size", "300", "--output", "\(out)/t.json", "--fields", "question,answer,correction", "--skip-bad"])
        let trained = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(out)/t.json"))) as? [String: Any])
        let trainedVocab = try XCTUnwrap((trained["model"] as? [String: Any])?["vocab"] as? [String: Int])
        XCTAssertTrue((259...300).contains(trainedVocab.count), "\(trainedVocab.count)")
    }

    func testUsersSeeErrorsThatNameTheProblem() throws {
        XCTAssertTrue(try run(["train", "recipes/smoke.toml", "--set", "stage2.lrr=1"], expect: 64).contains("recipe key 'stage2.lrr': unknown key"))
        XCTAssertTrue(try run(["train", "recipes/smoke.toml", "--set", "stage1.batch_size=x"], expect: 64).contains("stage1.batch_size"))
        let bad = dir.appendingPathComponent("bad.jsonl").path
        try "{\"question\": \"Q\", \"answer\": 3, \"correction\": \"C\"}\n".write(toFile: bad, atomically: true, encoding: .utf8)
        XCTAssertTrue(try run(["data", "stats", bad], expect: 65).contains("\(bad):1: field 'answer': is a number or boolean, not a string"))
        for command in ["train", "sweep", "finetune", "correct", "generate", "eval", "export", "reward", "info", "data", "tokenizer", "bench"] {
            XCTAssertTrue(try run([command, "--help"]).contains("USAGE"), command)
        }
    }
}
