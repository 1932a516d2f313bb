import Foundation
import XCTest

/// The bad-input matrix through the built executable: each class of hostile input or fault gets a clear message and
/// the documented exit status (64 usage, 65 bad data, 66 missing input, 74 I/O, 75 run in use), never a signal, a
/// trap or a hang, and nothing already written is lost.
final class BadInputTests: CLITestCase {
    func testIdsPromptsAndSizesAreCheckedBeforeWork() throws {
        let m = Self.tinyModel
        // A tokenizer with more ids than the model's vocabulary.
        let small = try modelCopy("small-vocab") { $0 = $0.replacingOccurrences(of: "\"vocab_size\": 600", with: "\"vocab_size\": 100") }
        try assertFails(["generate", "--checkpoint", small, "--prompt", "hi"], status: 65, saying: "vocab_size")
        try assertFails(["eval", "--checkpoint", small, "data/qac/raw/aligner-template-dataset.json"], status: 65, saying: "tokenizer can produce ids")
        // A prompt longer than the context (128 tokens), with and without --logits-out.
        let long = String(repeating: "word ", count: 400)
        try assertFails(["generate", "--checkpoint", m, "--prompt", long], status: 64, saying: "context is 128")
        try assertFails(["generate", "--checkpoint", m, "--prompt", long, "--logits-out", dir.appendingPathComponent("l.safetensors").path],
                        status: 64, saying: "context is 128")
        // correct shortens answers that do not fit the context (answer first), and says how many.
        let longQA = dir.appendingPathComponent("long.jsonl").path
        try (#"{"question": "Q?", "answer": "\#(long)"}"# + "\n" + #"{"question": "Q2?", "answer": "short"}"# + "\n")
            .write(toFile: longQA, atomically: true, encoding: .utf8)
        let corrected = try run(["correct", "--checkpoint", m, longQA, dir.appendingPathComponent("c.jsonl").path, "--max-new-tokens", "4"])
        XCTAssertTrue(corrected.contains("1 of 2 prompts shortened to fit the context of 128 tokens"), corrected)
        try assertFails(["correct", "--checkpoint", m, longQA, dir.appendingPathComponent("c2.jsonl").path, "--max-new-tokens", "110"],
                        status: 64, saying: "prompt template alone does not fit")
        // A prompt that fits, with a budget that does not: lowered, and said.
        XCTAssertTrue(try run(["generate", "--checkpoint", m, "--prompt", "hello", "--max-new-tokens", "1000"]).contains("lowered to"))
        // Sizes without bounds in config.json and in recipe overrides.
        let deep = try modelCopy("deep") { $0 = $0.replacingOccurrences(of: "\"num_hidden_layers\": 2", with: "\"num_hidden_layers\": 1000000000") }
        try assertFails(["generate", "--checkpoint", deep, "--prompt", "hi"], status: 65, saying: "num_hidden_layers")
        let layers3 = try modelCopy("three-layers") { $0 = $0.replacingOccurrences(of: "\"num_hidden_layers\": 2", with: "\"num_hidden_layers\": 3") }
        try assertFails(["generate", "--checkpoint", layers3, "--prompt", "hi"], status: 65, saying: "model.layers.2")
        try assertFails(["train", "recipes/smoke.toml", "--set", "model.hidden_size=1099511627776"], status: 64, saying: "model.hidden_size")
        try assertFails(["train", "recipes/smoke.toml", "--set", "model.num_hidden_layers=1000", "--set", "model.hidden_size=65536",
                         "--set", "output_dir=\(dir.path)"], status: 69, saying: "more than this machine")
        try assertFails(["train", "recipes/smoke.toml", "--set", "seed=-1"], status: 64, saying: "'seed'")
        try assertFails(["train", "recipes/smoke.toml", "--set", "stage1.lr=nan"], status: 64, saying: "stage1.lr")
        let nanRecipe = dir.appendingPathComponent("nan.toml").path
        try "name = \"x\"\n[stage2]\nlr = nan\n".write(toFile: nanRecipe, atomically: true, encoding: .utf8)
        try assertFails(["train", nanRecipe], status: 64, saying: "recipe key 'stage2.lr': must be a finite number")
        for name in ["..", ".", "a/b", ".hidden", ""] {
            try assertFails(["train", "recipes/smoke.toml", "--set", "name=\(name)"], status: 64, saying: "recipe key 'name'")
        }
    }

    func testCountsAndSamplingOptionsAreValidated() throws {
        let m = Self.tinyModel
        let qa = dir.appendingPathComponent("qa.jsonl").path
        try #"{"question": "Q?", "answer": "A."}"#.appending("\n").write(toFile: qa, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("o.jsonl").path
        let cases: [([String], String)] = [
            (["generate", "--checkpoint", m, "--prompt", "hi", "--max-new-tokens=-1000"], "--max-new-tokens"),
            (["generate", "--checkpoint", m, "--prompt", "hi", "--top-p", "2"], "--top-p"),
            (["generate", "--checkpoint", m, "--prompt", "hi", "--top-p", "0"], "--top-p"),
            (["generate", "--checkpoint", m, "--prompt", "hi", "--temperature", "nan"], "--temperature"),
            (["generate", "--checkpoint", m, "--prompt", "hi", "--temperature=-1"], "--temperature"),
            (["generate", "--checkpoint", m, "--prompt", "hi", "--top-k", "0"], "--top-k"),
            (["generate", "--checkpoint", m], "--prompt"),
            (["generate", "--checkpoint", m, "--prompt", "hi", "--inference-weights", "q4_0"], "--inference-weights"),
            (["correct", "--checkpoint", m, qa, out, "--inference-weights", "int8"], "--inference-weights"),
            (["eval", "--checkpoint", m, qa, "--inference-weights", "F32"], "--inference-weights"),
            (["correct", "--checkpoint", m, qa, out, "--batch-size=-1"], "--batch-size"),
            (["correct", "--checkpoint", m, qa, out, "--slots", "0"], "--slots"),
            (["correct", "--checkpoint", m, qa, out, "--limit=-1"], "--limit"),
            (["eval", "--checkpoint", m, qa, "--batch-size", "0"], "--batch-size"),
            (["eval", "--checkpoint", m, qa, "--slots=-2"], "--slots"),
            (["bench", "generate", "--model", m, "--prompts", "2", "--slots", "0"], "--slots"),
            (["eval", "--checkpoint", m, qa, "--generate=-3"], "--generate"),
            (["bench", "train", "--steps=-2"], "--steps"),
            (["bench", "train", "--steps", "0"], "--steps"),
            (["bench", "generate", "--new-tokens", "1"], "--new-tokens"),
            (["bench", "generate", "--batch", "0"], "--batch"),
            (["bench", "generate", "--model", m, "--prompt-tokens", "100000"], "context"),
            (["bench", "generate", "--prompts", "4"], "--model"),
            (["bench", "generate", "--model", m, "--prompts", "4", "--slots", "0"], "--slots"),
            (["info", "--threads", "0"], "--threads"),
            (["data", "stats", qa, "--max-length", "0"], "--max-length"),
            (["tokenizer", "train", "--input", qa, "--vocab-size", "-5", "--output", out], "--vocab-size"),
        ]
        try assertFails(["bench", "generate", "--model", m, "--batch", "100000000", "--prompt-tokens", "8", "--new-tokens", "4"], status: 69, saying: "would need")
        // The mixed-length workload runs on a real model's tokenizer and reports what it corrected.
        let mixed = try run(["bench", "generate", "--model", m, "--prompts", "5", "--slots", "2", "--new-tokens", "4"])
        XCTAssertTrue(mixed.contains("5 prompts of ") && mixed.contains("2 slots") && mixed.contains("corrections/min"), mixed)
        for (args, needle) in cases { try assertFails(args, status: 64, saying: needle) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    /// `aligner gguf inspect` validates a GGUF file and names what is wrong: missing (66), not GGUF or truncated (65).
    func testGGUFInspect() throws {
        let fixture = Self.root.appendingPathComponent("Tests/AlignerGGUFTests/Fixtures/quants.gguf")
        let out = try run(["gguf", "inspect", "--dequantise", fixture.path])
        XCTAssertTrue(out.contains("GGUF version 3") && out.contains("tensor t.q4_1 Q4_1 [3, 64]"), out)
        XCTAssertTrue(try run(["gguf", "inspect", "/nonexistent/x.gguf"], expect: 66).contains("no such file"))
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("folder-\(UUID()).gguf")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        XCTAssertTrue(try run(["generate", "--checkpoint", folder.path, "--prompt", "hi"], expect: 64).contains("is a folder, not a GGUF file"))
        let truncated = FileManager.default.temporaryDirectory.appendingPathComponent("truncated-\(UUID()).gguf")
        try Data(try Data(contentsOf: fixture).prefix(700)).write(to: truncated)
        defer { try? FileManager.default.removeItem(at: truncated) }
        XCTAssertTrue(try run(["gguf", "inspect", truncated.path], expect: 65).contains("truncated-"))
    }

    func testTextThatIsNotUTF8IsRefused() throws {
        let bad = dir.appendingPathComponent("prompt.txt")
        try Data([0x68, 0x69, 0xFF, 0xFE]).write(to: bad)
        try assertFails(["generate", "--checkpoint", Self.tinyModel, "--prompt-file", bad.path], status: 65, saying: "not valid UTF-8: first bad byte at offset 2 (line 1)")
        try assertFails(["tokenizer", "encode"], status: 65, saying: "standard input: not valid UTF-8: first bad byte at offset 1", stdin: Data([0x61, 0xC3]))
        // A tokenizer-training corpus follows the same rule (it used to become U+FFFD in the vocabulary).
        try assertFails(["tokenizer", "train", "--input", bad.path, "--output", dir.appendingPathComponent("t.json").path, "--vocab-size", "300"],
                        status: 65, saying: "\(bad.path): not valid UTF-8: first bad byte at offset 2")
        XCTAssertTrue(try run(["tokenizer", "encode"], stdin: Data("héllo".utf8)).contains(" "))
    }

    func testDamagedGzipIsAnErrorNotAnEndOfFile() throws {
        // 160 records, gzip-compressed.
        let lines = (0..<160).map { #"{"question": "Q\#($0)?", "answer": "A\#($0).", "correction": "C\#($0)."}"# }.joined(separator: "\n") + "\n"
        let plain = dir.appendingPathComponent("r.jsonl")
        try lines.write(to: plain, atomically: true, encoding: .utf8)
        let gzip = Process()
        gzip.executableURL = URL(fileURLWithPath: "/bin/gzip")
        gzip.arguments = ["-k", "-n", plain.path]
        try gzip.run()
        gzip.waitUntilExit()
        let gz = try Data(contentsOf: URL(fileURLWithPath: plain.path + ".gz"))
        let good = dir.appendingPathComponent("good.jsonl.gz"), truncated = dir.appendingPathComponent("truncated.jsonl.gz")
        let noTrailer = dir.appendingPathComponent("no-trailer.jsonl.gz"), garbage = dir.appendingPathComponent("garbage.jsonl.gz")
        let twoMembers = dir.appendingPathComponent("two.jsonl.gz")
        try gz.write(to: good)
        try gz.prefix(gz.count / 2).write(to: truncated)
        try gz.prefix(gz.count - 8).write(to: noTrailer)
        try (gz + Data("garbage".utf8)).write(to: garbage)
        try (gz + gz).write(to: twoMembers)
        XCTAssertTrue(try run(["data", "stats", good.path]).contains("160 read"))
        try assertFails(["data", "stats", truncated.path], status: 65, saying: "ends early")
        try assertFails(["data", "stats", noTrailer.path], status: 65, saying: "ends early")
        try assertFails(["data", "stats", garbage.path], status: 65, saying: "trailing garbage")
        // Concatenated members read as gzip reads them (the second half are exact duplicates).
        XCTAssertTrue(try run(["data", "stats", twoMembers.path]).contains("320 read, 160 records, 160 exact duplicates"))
        var corrupt = gz
        corrupt[corrupt.count / 2] ^= 0xFF
        try corrupt.write(to: garbage)
        try assertFails(["data", "stats", garbage.path], status: 65, saying: "gzip")
        try assertFails(["data", "stats", dir.appendingPathComponent("absent.jsonl").path], status: 66, saying: "no such file")
    }

    func testRunFoldersAreLockedAndResumeChecksItsInputs() throws {
        let data = try dataCopy()
        // Stopped after 2 of its 5 steps, so that there is something to resume.
        let args = ["train", "recipes/smoke.toml"] + tinyRun(data.path)
        try run(args, expect: 1, environment: ["ALIGNERKIT_STOP_AFTER_STEPS": "2"])
        let runFolder = dir.appendingPathComponent("r")

        // A second process on a locked run folder is refused, naming the holder.
        let lockPath = runFolder.appendingPathComponent(".lock").path
        let fd = open(lockPath, O_RDWR)
        XCTAssertEqual(flock(fd, LOCK_EX | LOCK_NB), 0)
        _ = "4242\n".withCString { pwrite(fd, $0, 5, 0) }
        try assertFails(args + ["--resume"], status: 75, saying: "in use by another AlignerKit process (PID 4242)")
        flock(fd, LOCK_UN)
        close(fd)

        // A stale temporary checkpoint folder of a killed writer is removed when the run is next opened.
        let stale = runFolder.appendingPathComponent("checkpoints/.tmp-ckpt-s2-0000009-999999")
        try FileManager.default.createDirectory(at: stale, withIntermediateDirectories: true)
        XCTAssertTrue(try run(args + ["--resume"], expect: 1, environment: ["ALIGNERKIT_STOP_AFTER_STEPS": "1"]).contains("removed checkpoints/.tmp-ckpt-s2-0000009-999999"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale.path))

        // Resume refuses a data file that changed since the run started.
        let metricsBefore = try Data(contentsOf: runFolder.appendingPathComponent("metrics.jsonl"))
        let shorten = Process()
        shorten.executableURL = URL(fileURLWithPath: "/bin/sh")
        shorten.arguments = ["-c", "gzip -dc '\(data.path)' | head -n 300 | gzip -n > '\(data.path).new' && mv '\(data.path).new' '\(data.path)'"]
        try shorten.run()
        shorten.waitUntilExit()
        XCTAssertEqual(shorten.terminationStatus, 0)
        try assertFails(args + ["--resume"], status: 64, saying: "changed: ")
        XCTAssertEqual(try Data(contentsOf: runFolder.appendingPathComponent("metrics.jsonl")), metricsBefore, "a refused resume must not touch the run")

        // A fresh run without --resume in a folder with checkpoints is refused too.
        try assertFails(args, status: 64, saying: "--resume")
    }

    func testExportReplacesOldExportsWhole() throws {
        let out = dir.appendingPathComponent("export")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        // An older, sharded export: its index would win over the new single file if it stayed.
        try "{}".write(to: out.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        try #"{"weight_map": {"x": "model-00001-of-00002.safetensors"}}"#.write(to: out.appendingPathComponent("model.safetensors.index.json"), atomically: true, encoding: .utf8)
        try run(["export", Self.tinyModel, out.path])
        let names = try FileManager.default.contentsOfDirectory(atPath: out.path)
        XCTAssertFalse(names.contains("model.safetensors.index.json"), "\(names)")
        XCTAssertTrue(names.contains("model.safetensors"))
        XCTAssertTrue(try run(["generate", "--checkpoint", out.path, "--prompt", "hi", "--max-new-tokens", "2"]).contains("tokens/s"))
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: dir.path).contains { $0.contains(".export-") || $0.contains(".old-") })
        // A folder of something else is not replaced.
        let other = dir.appendingPathComponent("photos")
        try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
        try "x".write(to: other.appendingPathComponent("a.jpg"), atomically: true, encoding: .utf8)
        try assertFails(["export", Self.tinyModel, other.path], status: 74, saying: "not a model folder")
        XCTAssertTrue(FileManager.default.fileExists(atPath: other.appendingPathComponent("a.jpg").path))
    }

    func testModelFilesThatLieAreRefused() throws {
        // A shard outside the folder.
        let sharded = dir.appendingPathComponent("sharded")
        try FileManager.default.copyItem(atPath: Self.root.appendingPathComponent("Tests/AlignerFormatsTests/Fixtures/hf-tiny-sharded").path, toPath: sharded.path)
        let index = sharded.appendingPathComponent("model.safetensors.index.json")
        let text = try String(contentsOf: index, encoding: .utf8).replacingOccurrences(of: "\"model-00001-of-00002.safetensors\"", with: "\"../model-00001-of-00002.safetensors\"")
        try text.write(to: index, atomically: true, encoding: .utf8)
        try assertFails(["generate", "--checkpoint", sharded.path, "--prompt", "hi"], status: 65, saying: "is not a file name in this folder")
        // All-NaN weights.
        let nan = try modelCopy("nan")
        let weights = URL(fileURLWithPath: nan).appendingPathComponent("model.safetensors")
        var bytes = try Data(contentsOf: weights)
        let headerLength = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let nanBits: [UInt8] = [0x00, 0x00, 0xC0, 0x7F]
        for i in stride(from: 8 + headerLength, to: bytes.count - 3, by: 4) { bytes.replaceSubrange(i..<(i + 4), with: nanBits) }
        try bytes.write(to: weights)
        try assertFails(["generate", "--checkpoint", nan, "--prompt", "hi"], status: 65, saying: "NaN or infinite")
        try assertFails(["generate", "--checkpoint", dir.appendingPathComponent("absent").path, "--prompt", "hi"], status: 66, saying: "no such folder")
    }
}
