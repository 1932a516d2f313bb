import Foundation
import XCTest

/// `aligner handoff RECIPE --to trl OUTDIR` as a user runs it (scripts/checks/trl_handoff_check.py runs the result
/// with TRL and compares its first-step loss with AlignerKit's).
final class HandoffTests: CLITestCase {
    /// A recipe meant for a GPU host is handed off from a machine too small to train it: the hand-off does not run the
    /// training memory check that `train` refuses it with.
    func testHandoffIsNotRefusedForMemoryThatTrainingHere() throws {
        let args = ["recipes/smoke.toml", "--set", "data.limit=60", "--set", "data.eval_count=10", "--set", "output_dir=\(dir.path)"]
        let small = ["ALIGNERKIT_MEMORY_LIMIT": "1000000"]  // 1 MB: no training fits
        let refused = try run(["train"] + args, expect: 69, environment: small)
        XCTAssertTrue(refused.contains("training this model"), refused)
        let text = try run(["handoff", "recipes/smoke.toml", "--to", "trl", dir.appendingPathComponent("handoff").path] + args.dropFirst(),
                           environment: small)
        XCTAssertTrue(text.contains("wrote the hand-off of smoke to TRL"), text)
    }

    func testHandoffToTRLWritesSplitsConfigsModelAndScript() throws {
        let out = dir.appendingPathComponent("handoff")
        let text = try run(["handoff", "recipes/smoke.toml", "--to", "trl", out.path, "--set", "data.limit=60", "--set", "data.eval_count=10",
                            "--set", "stage2.min_lr_ratio=0.1", "--set", "stage2.grad_accum=2"])
        XCTAssertTrue(text.contains("wrote the hand-off of smoke to TRL"), text)
        let manifest = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("aligner-handoff.json"))) as? [String: Any])
        let counts = try XCTUnwrap(manifest["counts"] as? [String: Int])
        for (file, key) in [("stage1-warmup", "stage1_warmup"), ("stage2-train", "stage2_train"), ("eval", "eval")] {
            let lines = try String(contentsOf: out.appendingPathComponent("data/\(file).jsonl"), encoding: .utf8).split(separator: "\n")
            let tokenized = try String(contentsOf: out.appendingPathComponent("data/\(file).tokenized.jsonl"), encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(lines.count, counts[key])
            XCTAssertEqual(tokenized.count, counts[key])
            XCTAssertGreaterThan(lines.count, 0)
            for (line, ids) in zip(lines, tokenized) {
                let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
                XCTAssertTrue(o["prompt"]!.hasPrefix("<s>BEGINNING OF CONVERSATION: USER: Edit the following Question-Answer pair"), o["prompt"]!)
                XCTAssertTrue(o["prompt"]!.hasSuffix(" ASSISTANT:"))
                XCTAssertTrue(o["completion"]!.hasSuffix("</s>"))
                let t = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(ids.utf8)) as? [String: [Int]])
                XCTAssertEqual(t["input_ids"]!.count, t["completion_mask"]!.count)
                XCTAssertLessThanOrEqual(t["input_ids"]!.count, 192)
                // The mask is 0 over the prompt, then 1 to the end (the correction and EOS).
                let firstOne = try XCTUnwrap(t["completion_mask"]!.firstIndex(of: 1))
                XCTAssertTrue(t["completion_mask"]![firstOne...].allSatisfy { $0 == 1 })
            }
        }
        let pku = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("pku-aligner/stage2-train.json"))) as? [[String: String]])
        XCTAssertEqual(pku.count, counts["stage2_train"])
        XCTAssertEqual(Set(pku[0].keys), ["question", "answer", "correction"])
        // Stage 1 is Q-A-A: the correction is the answer.
        let warm = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("pku-aligner/stage1-warmup.json"))) as? [[String: String]])
        XCTAssertTrue(warm.allSatisfy { $0["answer"] == $0["correction"] })
        let stage2 = try String(contentsOf: out.appendingPathComponent("stage2.yaml"), encoding: .utf8)
        for line in ["learning_rate: 0.002", "per_device_train_batch_size: 8", "gradient_accumulation_steps: 2", "adam_beta2: 0.95",
                     "adam_epsilon: 1.0e-08", "max_grad_norm: 1.0", "lr_scheduler_type: \"cosine_with_min_lr\"", "  min_lr_rate: 0.1",
                     "completion_only_loss: true", "packing: false", "max_length: 192", "num_train_epochs: 2.0"] {
            XCTAssertTrue(stage2.contains(line + "\n"), "\(line) missing from stage2.yaml:\n\(stage2)")
        }
        for file in ["model/config.json", "model/model.safetensors", "model/tokenizer.json", "train_aligner.py", "ds_zero2.json", "README.md"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(file).path), file)
        }
        // Again into the same folder: replaced; into a folder holding something else: refused.
        try run(["handoff", "recipes/smoke.toml", "--to", "trl", out.path, "--set", "data.limit=60", "--set", "data.eval_count=10"])
        XCTAssertTrue(try run(["handoff", "recipes/smoke.toml", "--to", "trl", dir.path], expect: 64).contains("holds no earlier hand-off"))
        XCTAssertTrue(try run(["handoff", "recipes/smoke.toml", "--to", "axolotl", out.path], expect: 64).contains("--to must be trl"))
        XCTAssertTrue(try run(["handoff", "recipes/smoke.toml", "--to", "trl", ""], expect: 64).contains("empty path"))
        let file = dir.appendingPathComponent("a-file")
        try Data("x".utf8).write(to: file)
        XCTAssertTrue(try run(["handoff", "recipes/smoke.toml", "--to", "trl", file.path], expect: 74).contains("cannot write: it is a file, not a folder"))
        XCTAssertTrue(try run(["handoff", "recipes/smoke.toml", "--to", "trl", "/proc/alignerkit-handoff"], expect: 74)
            .contains("/proc/alignerkit-handoff: cannot create the folder: a folder on the way does not exist and cannot be made there"))
    }
}
