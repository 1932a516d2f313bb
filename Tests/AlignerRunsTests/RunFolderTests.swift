@testable import AlignerInference
@testable import AlignerRecipes
@testable import AlignerRuns
import AlignerData
import AlignerFiles
import AlignerModel
import Foundation
import TestSupport
import TrainingTestSupport
import XCTest


/// Run folders: the lock, fingerprints of inputs, metrics on a full disk, non-finite results, and fuzzed recipes and
/// checkpoint manifests.
final class RunFolderTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try temporaryTestDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func testASecondLockOnARunFolderNamesTheHolder() throws {
        let first = try RunLock(folder: dir)
        XCTAssertThrowsError(try RunLock(folder: dir)) { error in
            XCTAssertTrue("\(error)".contains("in use by another AlignerKit process (PID \(getpid()))"), "\(error)")
        }
        withExtendedLifetime(first) {}
        _ = consume first
        XCTAssertNoThrow(try RunLock(folder: dir), "released when its holder goes")
    }

    func testMetricsOnAFullDiskFailCleanly() throws {
        // /dev/full accepts the open and fails every write with ENOSPC.
        let log = try MetricsLog(url: URL(fileURLWithPath: "/dev/full"))
        XCTAssertThrowsError(try log.append(["step": 1, "loss": 2.5])) { error in
            XCTAssertTrue("\(error)".contains("No space left on device"), "\(error)")
            XCTAssertTrue(error is FileError)
        }
        log.close()
        XCTAssertThrowsError(try AtomicFile.write(Data("x".utf8), to: URL(fileURLWithPath: "/dev/full/x"))) { error in
            XCTAssertTrue(error is FileError, "\(error)")
        }
    }

    func testNonFiniteNumbersAreWrittenAsNull() throws {
        let url = dir.appendingPathComponent("m.jsonl")
        let log = try MetricsLog(url: url)
        try log.append(["stage": 1, "step": 3, "global_step": 3, "loss": Double.nan, "grad_norm": Double.infinity])
        try log.append(["stage": 1, "step": 3, "global_step": 3, "eval_loss": 1.5])
        log.close()
        let text = try String(contentsOf: url, encoding: .utf8)
        XCTAssertTrue(text.hasPrefix(#"{"global_step":3,"grad_norm":null,"loss":null,"non_finite":["grad_norm","loss"],"stage":1,"step":3}"#), text)
        XCTAssertTrue(log.trainLosses()[0].loss.isNaN)
        XCTAssertEqual(log.evalPoints().map(\.evalLoss), [1.5])

        let summary = EvalSummary(source: "x", records: 2, scored: 0, loss: .nan, perplexity: .infinity, generated: 0)
        let data = try ResultJSON.encode(summary)
        XCTAssertTrue(String(decoding: data, as: UTF8.self).contains(#""loss" : null"#))
        let back = try ResultJSON.decode(EvalSummary.self, from: data)
        XCTAssertTrue(back.loss.isNaN && back.perplexity.isNaN && back.copyRate == nil)
    }

    func testInputFingerprintsNameWhatChanged() throws {
        let a = dir.appendingPathComponent("a.jsonl"), model = dir.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
        try "one\n".write(to: a, atomically: true, encoding: .utf8)
        try "{}".write(to: model.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        let paths = [(role: "data file", path: a.path), (role: "base model", path: model.path)]
        let before = try FileFingerprints.record(paths)
        XCTAssertNil(try FileFingerprints.record(paths).differences(from: before))
        try "two\n".write(to: a, atomically: true, encoding: .utf8)
        XCTAssertEqual(try FileFingerprints.record(paths).differences(from: before), "data file \(a.path) changed: same size, different content (CRC-32)")
        try "three\n".write(to: a, atomically: true, encoding: .utf8)
        try "x".write(to: model.appendingPathComponent("extra.safetensors"), atomically: true, encoding: .utf8)
        let change = try FileFingerprints.record(paths).differences(from: before) ?? ""
        XCTAssertTrue(change.contains("4 bytes when the run started, 6 now") && change.contains("extra.safetensors was not an input"), change)
    }

    func testTrainerStatesOutOfRangeAreNamed() {
        let good = TrainerState(stage: 2, step: 3, totalSteps: 10, position: BatchPosition(epoch: 1, cursor: 2), optimizerStep: 3,
                                tokensSeen: 100, stageDone: false, elapsed: 1.5, stage1Steps: 4)
        XCTAssertNil(good.problem)
        var s = good; s.stage = 7
        XCTAssertEqual(s.problem, "stage 7 is not 1 or 2")
        s = good; s.step = -5
        XCTAssertEqual(s.problem, "step -5 is not within 0...10")
        s = good; s.position = BatchPosition(epoch: Int.max, cursor: 0)
        XCTAssertNotNil(s.problem)
        s = good; s.position = BatchPosition(epoch: 0, cursor: -1)
        XCTAssertNotNil(s.problem)
        s = good; s.elapsed = .nan
        XCTAssertNotNil(s.problem)
        s = good; s.tokensSeen = -1
        XCTAssertNotNil(s.problem)
    }

    func testMutatedRecipesLoadOrNameAKey() throws {
        let valid = Array(try Data(contentsOf: repositoryRoot.appendingPathComponent("recipes/smoke.toml")))
        let path = dir.appendingPathComponent("r.toml").path
        var m = Mutator(seed: 4)
        var refused = 0
        for _ in 0..<400 {
            let mutant = Data(m.mutate(valid))
            try mutant.write(to: URL(fileURLWithPath: path))
            do { _ = try Recipe.load(path: path) } catch let e as RecipeError {
                refused += 1
                XCTAssertFalse(e.message.isEmpty)
            }
        }
        XCTAssertGreaterThan(refused, 50)
    }

    func testMutatedCheckpointManifestsAreVerifiedNotTrusted() throws {
        let ckpt = dir.appendingPathComponent("ckpt-s1-0000001")
        try FileManager.default.createDirectory(at: ckpt, withIntermediateDirectories: true)
        let content = Data("weights".utf8)
        try content.write(to: ckpt.appendingPathComponent("model.safetensors"))
        let manifest = try JSONSerialization.data(
            withJSONObject: ["complete": true, "files": ["model.safetensors": ["bytes": content.count, "crc32": Int(Checksum.crc32(content))]]],
            options: [.sortedKeys, .prettyPrinted])
        try manifest.write(to: ckpt.appendingPathComponent("manifest.json"))
        XCTAssertNil(CheckpointStore.verify(ckpt))
        var m = Mutator(seed: 5)
        var rejected = 0
        for _ in 0..<500 {
            let mutant = Data(m.mutate(Array(manifest)))
            try mutant.write(to: ckpt.appendingPathComponent("manifest.json"))
            if CheckpointStore.verify(ckpt) != nil { rejected += 1 }
        }
        XCTAssertGreaterThan(rejected, 300)
        // Extreme sizes and checksums (negative, 2^62, Int.max, Int.min) are compared, never trusted or trapped on.
        let tree = try JSONSerialization.jsonObject(with: manifest)
        for _ in 0..<300 {
            try JSONSerialization.data(withJSONObject: m.extremeNumbers(tree)).write(to: ckpt.appendingPathComponent("manifest.json"))
            XCTAssertNotNil(CheckpointStore.verify(ckpt))
        }
        // A manifest naming a file outside the checkpoint is rejected.
        let escape = try JSONSerialization.data(withJSONObject: ["complete": true, "files": ["../x": ["bytes": 1, "crc32": 0]]])
        try escape.write(to: ckpt.appendingPathComponent("manifest.json"))
        XCTAssertNotNil(CheckpointStore.verify(ckpt))
    }
}
