import Foundation
import XCTest

/// `aligner reward train|score` and `--judge` on eval and correct, as a user runs them, and the errors they see.
final class RewardCommandTests: CLITestCase {
    func testRewardTrainScoreAndJudgeOnATinyModel() throws {
        let out = dir.path
        let common = ["--set", "output_dir=\(out)", "--set", "data.limit=150", "--set", "data.eval_count=20",
                      "--set", "stage2.epochs=1", "--set", "model.hidden_size=32", "--set", "model.intermediate_size=64"]
        try run(["train", "recipes/smoke.toml"] + common)
        let aligner = "\(out)/smoke"
        let rm = try run(["reward", "train", "recipes/smoke.toml", "--set", "name=rm", "--set", "reward.lr=2e-3"] + common)
        XCTAssertTrue(rm.contains("held-out pairs (20): pairwise accuracy") && rm.contains("\(out)/rm/model"), rm)
        let judge = "\(out)/rm"

        let score = try run(["reward", "score", "--judge", judge, "\(aligner)/splits/eval.jsonl", "--output", "\(out)/scored.jsonl"])
        XCTAssertTrue(score.contains("20 records judged") && score.contains("pairwise accuracy"), score)
        let scored = try String(contentsOfFile: "\(out)/scored.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(scored.count, 20)
        let first = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(scored[0].utf8)) as? [String: Any])
        XCTAssertNotNil(first["answer_score"] as? Double)
        XCTAssertNotNil(first["correction_score"] as? Double)

        let eval = try run(["eval", "--checkpoint", aligner, "\(aligner)/splits/eval.jsonl", "--generate", "6", "--max-new-tokens", "8",
                            "--judge", judge, "--tie-margin", "0.01"])
        XCTAssertTrue(eval.contains("| correction vs answer | win ") && eval.contains("| correction vs reference | win ")
                      && eval.contains("≤ 0.01"), eval)
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(aligner)/eval-eval.jsonl.json"))) as? [String: Any])
        let verdict = try XCTUnwrap((summary["judge"] as? [String: Any])?["correctionVsAnswer"] as? [String: Any])
        XCTAssertEqual((verdict["wins"] as! Int) + (verdict["ties"] as! Int) + (verdict["losses"] as! Int), 6)

        let qa = dir.appendingPathComponent("qa.jsonl").path
        try #"{"question": "How do I bake bread?", "answer": "Mix flour."}"#.appending("\n").write(toFile: qa, atomically: true, encoding: .utf8)
        let corrected = try run(["correct", "--checkpoint", aligner, qa, "\(out)/c.jsonl", "--max-new-tokens", "8", "--judge", judge])
        XCTAssertTrue(corrected.contains("correction vs answer"), corrected)
        let line = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(out)/c.jsonl"))) as? [String: Any])
        XCTAssertNotNil(line["answer_score"] as? Double)
        XCTAssertNotNil(line["correction_score"] as? Double)

        // Errors name the problem; nothing is generated or written before the judge is read.
        XCTAssertTrue(try run(["eval", "--checkpoint", aligner, qa, "--judge", "\(out)/nothing"], expect: 66).contains("\(out)/nothing"))
        XCTAssertTrue(try run(["correct", "--checkpoint", aligner, qa, "\(out)/d.jsonl", "--judge", aligner], expect: 65).contains("not a reward model folder"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(out)/d.jsonl"))
        XCTAssertTrue(try run(["reward", "score", "--judge", qa, qa], expect: 65).contains("is a file"))
        XCTAssertTrue(try run(["eval", "--checkpoint", aligner, qa, "--judge", judge, "--generate", "0"], expect: 64).contains("--generate"))
        XCTAssertTrue(try run(["eval", "--checkpoint", aligner, qa, "--judge", judge, "--tie-margin", "-1"], expect: 64).contains("--tie-margin"))
        XCTAssertTrue(try run(["reward", "train", "recipes/smoke.toml", "--set", "reward.template=plain"] + common, expect: 64).contains("reward.template"))
        XCTAssertTrue(try run(["reward", "train", "--help"]).contains("USAGE"))
    }
}
