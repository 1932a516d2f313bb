import Foundation
import XCTest

/// Outputs never destroy inputs, file-system failures are said in plain words with the documented exit status, and a
/// resumed run checks everything it relies on (issue 27), through the built executable.
final class OutputSafetyTests: CLITestCase {
    /// Names and sizes of every file under `folder`, to show that a refused command left it as it was.
    func listing(_ folder: URL) -> [String] {
        let e = FileManager.default.enumerator(atPath: folder.path)
        var out: [String] = []
        while let name = e?.nextObject() as? String {
            let size = (try? FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent(name).path)[.size] as? Int) ?? -1
            out.append("\(name) \(size)")
        }
        return out.sorted()
    }

    /// A finished tiny run (5 steps, a checkpoint after each) and its newest checkpoint.
    func finishedRun(name: String = "r") throws -> (run: URL, checkpoint: URL, data: URL) {
        let data = try dataCopy(dir.appendingPathComponent("in/\(name).jsonl.gz"))
        try run(["train", "recipes/smoke.toml"] + tinyRun(data.path, name: name))
        let run = dir.appendingPathComponent(name)
        let names = try FileManager.default.contentsOfDirectory(atPath: run.appendingPathComponent("checkpoints").path).filter { $0.hasPrefix("ckpt-") }.sorted()
        return (run, run.appendingPathComponent("checkpoints").appendingPathComponent(names.last!), data)
    }

    func testOutputsNeverOverwriteInputs() throws {
        let (runFolder, ckpt, data) = try finishedRun()
        let before = listing(runFolder)
        // export CKPT CKPT used to exit 0 and delete the checkpoint's optimiser state, trainer state and manifest.
        try assertFails(["export", ckpt.path, ckpt.path], status: 64, saying: "the output is the input")
        try assertFails(["export", ckpt.path, ckpt.path + "/../" + ckpt.lastPathComponent], status: 64, saying: "the output is the input")
        try assertFails(["export", ckpt.path, ckpt.appendingPathComponent("hf").path], status: 64, saying: "lies inside the input folder")
        try assertFails(["export", ckpt.path, runFolder.appendingPathComponent("export.gguf").path], status: 64, saying: "lies inside the input folder")
        try assertFails(["export", ckpt.path, dir.path], status: 64, saying: "contains the input")
        try assertFails(["export", runFolder.path, runFolder.path, "--format", "hf"], status: 64, saying: "the output is the input")
        // Another spelling of the same place: a symbolic link.
        let link = dir.appendingPathComponent("link")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: ckpt)
        try assertFails(["export", ckpt.path, link.path], status: 64, saying: "the output is the input")
        XCTAssertEqual(listing(runFolder), before, "a refused export must leave the run as it was")

        // Every other command that writes.
        let qa = dir.appendingPathComponent("in/qa.jsonl")
        try #"{"question": "Q?", "answer": "A."}"#.appending("\n").write(to: qa, atomically: true, encoding: .utf8)
        let raw = Self.root.appendingPathComponent("data/qac/raw/hh-rlhf-harmless-base-test.jsonl.gz").path
        let rawCopy = dir.appendingPathComponent("in/raw.jsonl.gz")
        try FileManager.default.copyItem(atPath: raw, toPath: rawCopy.path)
        let rawBytes = try Data(contentsOf: rawCopy)
        try assertFails(["data", "convert", rawCopy.path, rawCopy.path, "--format", "hh-rlhf"], status: 64, saying: "the output is the input")
        XCTAssertEqual(try Data(contentsOf: rawCopy), rawBytes)
        try assertFails(["correct", "--checkpoint", ckpt.path, qa.path, qa.path], status: 64, saying: "the output is the input")
        try assertFails(["correct", "--checkpoint", ckpt.path, qa.path, ckpt.appendingPathComponent("c.jsonl").path], status: 64, saying: "lies inside the input folder")
        try assertFails(["eval", "--checkpoint", ckpt.path, data.path, "--generate", "0", "--output", data.path], status: 64, saying: "the output is the input")
        try assertFails(["generate", "--checkpoint", ckpt.path, "--prompt", "hi", "--logits-out", ckpt.appendingPathComponent("model.safetensors").path],
                        status: 64, saying: "lies inside the input folder")
        try assertFails(["tokenizer", "train", "--input", qa.path, "--output", qa.path], status: 64, saying: "the output is the input")
        XCTAssertEqual(listing(runFolder), before)

        // A run folder that would hold its own data file (`--restart` empties the run folder).
        let inside = try dataCopy(dir.appendingPathComponent("held/data.jsonl.gz"))
        try assertFails(["train", "recipes/smoke.toml"] + tinyRun(inside.path, name: "held"), status: 64, saying: "contains the input")
        XCTAssertTrue(FileManager.default.fileExists(atPath: inside.path))
        try assertFails(["handoff", "recipes/smoke.toml"] + tinyRun(inside.path, name: "h") + ["--to", "trl", dir.appendingPathComponent("held").path],
                        status: 64, saying: "contains the input")
    }

    func testFileSystemErrorsAreSaidInPlainWords() throws {
        let file = dir.appendingPathComponent("afile")
        try "x".write(to: file, atomically: true, encoding: .utf8)
        let raw = Self.root.appendingPathComponent("data/qac/raw/hh-rlhf-harmless-base-test.jsonl.gz").path
        let qa = dir.appendingPathComponent("qa.jsonl")
        try #"{"question": "Q?", "answer": "A."}"#.appending("\n").write(to: qa, atomically: true, encoding: .utf8)
        let under = file.appendingPathComponent("sub/out")
        let says = "lies under \(file.path), which is a file, not a folder"
        // An output under a regular file (Foundation's "Code=516" before), in every command that writes.
        try assertFails(["data", "convert", raw, under.path + ".jsonl", "--format", "hh-rlhf"], status: 74, saying: says)
        try assertFails(["export", Self.tinyModel, under.path], status: 74, saying: says)
        try assertFails(["export", Self.tinyModel, under.path + ".gguf"], status: 74, saying: says)
        try assertFails(["tokenizer", "train", "--input", qa.path, "--output", under.path + ".json", "--vocab-size", "300"], status: 74, saying: says)
        try assertFails(["correct", "--checkpoint", Self.tinyModel, qa.path, under.path + ".jsonl"], status: 74, saying: says)
        try assertFails(["eval", "--checkpoint", Self.tinyModel, "data/qac/raw/aligner-template-dataset.json", "--generate", "0", "--output", under.path + ".json"],
                        status: 74, saying: says)
        try assertFails(["generate", "--checkpoint", Self.tinyModel, "--prompt", "hi", "--logits-out", under.path + ".safetensors"], status: 74, saying: says)
        let data = try dataCopy()
        try assertFails(["train", "recipes/smoke.toml"] + tinyRun(data.path) + ["--set", "output_dir=\(under.path)"], status: 74, saying: says)
        try assertFails(["handoff", "recipes/smoke.toml"] + tinyRun(data.path) + ["--to", "trl", under.path], status: 74, saying: says)
        // An output that is a folder (Foundation's "Code=512 (null)" before), refused before any work: correct does
        // not generate first.
        let folder = dir.appendingPathComponent("afolder")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try assertFails(["data", "convert", raw, folder.path, "--format", "hh-rlhf"], status: 74, saying: "it is a folder, not a file")
        let out = try run(["correct", "--checkpoint", Self.tinyModel, qa.path, folder.path], expect: 74)
        XCTAssertTrue(out.contains("it is a folder, not a file") && !out.contains("correct aligner"), out)
        try assertFails(["tokenizer", "train", "--input", qa.path, "--output", folder.path, "--vocab-size", "300"], status: 74, saying: "it is a folder, not a file")
        try assertFails(["export", Self.tinyModel, file.path], status: 74, saying: "it is a file, not a folder")
        // A device or pipe would be replaced by a file (outputs are renamed into place): refused.
        let fifo = dir.appendingPathComponent("fifo")
        XCTAssertEqual(mkfifo(fifo.path, 0o644), 0)
        try assertFails(["data", "convert", raw, fifo.path, "--format", "hh-rlhf"], status: 74, saying: "it is a device or other special file, not a regular file")
        try assertFails(["eval", "--checkpoint", Self.tinyModel, "data/qac/raw/aligner-template-dataset.json", "--generate", "0", "--output", fifo.path],
                        status: 74, saying: "special file")
        var st = stat()
        XCTAssertEqual(stat(fifo.path, &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFIFO, "the pipe must still be a pipe")
        // A model folder without config.json is a missing input (66), not bad data.
        let empty = dir.appendingPathComponent("empty-model")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        try "{}".write(to: empty.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
        try assertFails(["generate", "--checkpoint", empty.path, "--prompt", "hi"], status: 66, saying: "config.json: no such file")
    }

    /// A read-only file system (Foundation's "Code=642" before) and a full one, made with a private mount namespace, and
    /// a folder the user may not write (the command run as nobody): needs root, unshare(1) and setpriv(1), as this
    /// project's CI machines have.
    func testReadOnlyFullDiskAndPermissionDeniedAreSaidInPlainWords() throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare"),
              FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else {
            throw XCTSkip("needs root, unshare(1) and setpriv(1) to make read-only, full and unwritable places")
        }
        let raw = Self.root.appendingPathComponent("data/qac/raw/hh-rlhf-harmless-base-test.jsonl.gz").path
        let place = dir.appendingPathComponent("place")
        try FileManager.default.createDirectory(at: place, withIntermediateDirectories: true)
        chmod(dir.path, 0o755)
        chmod(place.path, 0o755)
        func quoted(_ args: [String]) -> String {
            ([executable.path] + args).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        }
        /// `aligner args` after `setup` (shell) in a private mount namespace, or as nobody.
        func run(_ args: [String], setup: String?, asNobody: Bool = false) throws -> (Int32, String) {
            let p = Process()
            if asNobody {
                p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
                p.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups"] + [executable.path] + args
            } else {
                p.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
                p.arguments = ["-m", "sh", "-c", "\(setup!) && exec \(quoted(args))"]
            }
            p.currentDirectoryURL = Self.root
            return try Self.capture(p)
        }
        let convert = { (out: String) in ["data", "convert", raw, out, "--format", "hh-rlhf", "--skip-bad"] }
        let cases: [([String], String?, Bool, String)] = [
            (convert(place.appendingPathComponent("x.jsonl").path), "mount -t tmpfs -o ro tmpfs '\(place.path)'", false, "the file system is read-only"),
            (["export", Self.tinyModel, place.appendingPathComponent("hf").path], "mount -t tmpfs -o ro tmpfs '\(place.path)'", false, "the file system is read-only"),
            (["export", Self.tinyModel, place.appendingPathComponent("sub/m.gguf").path], "mount -t tmpfs -o ro tmpfs '\(place.path)'", false, "the file system is read-only"),
            (convert(place.appendingPathComponent("x.jsonl").path), "mount -t tmpfs -o size=64k tmpfs '\(place.path)'", false, "no space left on the device"),
            (["export", Self.tinyModel, place.appendingPathComponent("m.gguf").path, "--type", "f32"], "mount -t tmpfs -o size=64k tmpfs '\(place.path)'", false,
             "no space left on the device"),
            (convert(place.appendingPathComponent("x.jsonl").path), nil, true, "permission denied (\(place.path) is not writable)"),
        ]
        for (args, setup, nobody, words) in cases {
            let (status, text) = try run(args, setup: setup, asNobody: nobody)
            XCTAssertEqual(status, 74, "\(args.joined(separator: " ")): \(text)")
            XCTAssertTrue(text.contains(words) && !text.contains("Error Domain="), "\(args.joined(separator: " ")) should say \"\(words)\": \(text)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: place.path), [], "a failed write leaves nothing behind")
    }

    /// Inputs that are devices or pipes would be read forever (/dev/zero) or wait for a writer (a FIFO): refused
    /// before they are opened, in every reader.
    func testDevicesAndPipesAreNotReadAsInputs() throws {
        let fifo = dir.appendingPathComponent("in.fifo")
        XCTAssertEqual(mkfifo(fifo.path, 0o644), 0)
        let out = dir.appendingPathComponent("o.jsonl").path
        let says = "is a device or other special file, not a regular file"
        for input in [fifo.path, "/dev/zero"] {
            try assertFails(["data", "stats", input], status: 64, saying: says)
            try assertFails(["tokenizer", "train", "--input", input, "--output", dir.appendingPathComponent("t.json").path], status: 64, saying: says)
            try assertFails(["correct", "--checkpoint", Self.tinyModel, input, out], status: 64, saying: says)
            try assertFails(["generate", "--checkpoint", Self.tinyModel, "--prompt-file", input], status: 64, saying: says)
            try assertFails(["train", input], status: 64, saying: says)
            try assertFails(["gguf", "inspect", input], status: 64, saying: says)
            try assertFails(["tokenizer", "encode", "--tokenizer", input, "hi"], status: 64, saying: says)
            try assertFails(["train", "recipes/smoke.toml"] + tinyRun(input), status: 64, saying: says)
        }
    }

    func testResumeChecksTheRunsOwnFilesAndRecord() throws {
        let data = try dataCopy()
        let args = ["train", "recipes/smoke.toml"] + tinyRun(data.path)
        try run(args, expect: 1, environment: ["ALIGNERKIT_STOP_AFTER_STEPS": "3"])
        let runFolder = dir.appendingPathComponent("r")
        let fm = FileManager.default
        func refused(_ status: Int32, _ needle: String) throws {
            let before = listing(runFolder)
            try assertFails(args + ["--resume"], status: status, saying: needle)
            XCTAssertEqual(listing(runFolder), before, "a refused resume must not touch the run")
        }
        // The run's tokenizer swapped for another of the same size.
        let tokenizer = runFolder.appendingPathComponent("tokenizer.json")
        let original = try Data(contentsOf: tokenizer)
        var swapped = original
        let i = swapped.firstIndex(of: UInt8(ascii: "e"))!
        swapped[i] = UInt8(ascii: "f")
        try swapped.write(to: tokenizer)
        try refused(65, "the run's tokenizer \(tokenizer.path) changed: same size, different content")
        try original.write(to: tokenizer)
        // A split edited.
        let eval = runFolder.appendingPathComponent("splits/eval.jsonl")
        let evalText = try Data(contentsOf: eval)
        try (evalText + Data("\n".utf8)).write(to: eval)
        try refused(65, "the run's splits \(eval.path) changed")
        try evalText.write(to: eval)
        // metrics.jsonl deleted: refused, saying how to go on (it used to resume and write a half-empty result.json).
        let metrics = runFolder.appendingPathComponent("metrics.jsonl")
        let metricsText = try Data(contentsOf: metrics)
        try fm.removeItem(at: metrics)
        try refused(66, "metrics.jsonl: is missing")
        // Damaged in the middle.
        var lines = String(decoding: metricsText, as: UTF8.self).split(separator: "\n").map(String.init)
        lines[1] = "{\"stage\": 1, \"step\"" 
        try (lines.joined(separator: "\n") + "\n").write(to: metrics, atomically: true, encoding: .utf8)
        try refused(65, "line 2 is not a JSON object")
        try metricsText.write(to: metrics)
        // Every checkpoint damaged: nothing to resume from (it used to exit 74).
        let checkpoints = runFolder.appendingPathComponent("checkpoints")
        for name in try fm.contentsOfDirectory(atPath: checkpoints.path) where name.hasPrefix("ckpt-") {
            let weights = checkpoints.appendingPathComponent(name).appendingPathComponent("model.safetensors")
            var bytes = try Data(contentsOf: weights)
            bytes[bytes.count - 1] ^= 0xFF
            try bytes.write(to: weights)
        }
        try refused(65, "no checkpoint is intact")
        // With everything restored but the checkpoints, --restart is the way on, and it trains the run afresh.
        XCTAssertTrue(try run(args + ["--restart"]).contains("--restart: removed what"))
    }

    func testInputRulesAndExitCodesAgreeAcrossCommands() throws {
        // Missing files are 66 wherever they are named.
        try assertFails(["train", dir.appendingPathComponent("absent.toml").path], status: 66, saying: "absent.toml: cannot read the recipe: no such file or folder")
        try assertFails(["data", "stats", "data/qac/raw/aligner-template-dataset.json", "--tokenizer", dir.appendingPathComponent("absent.json").path],
                        status: 66, saying: "absent.json: no such file")
        // The recipe and the flags share their bounds, and name the key or flag.
        try assertFails(["train", "recipes/smoke.toml", "--set", "tokenizer.min_frequency=-5"], status: 64, saying: "recipe key 'tokenizer.min_frequency': must be at least 1, got -5")
        try assertFails(["train", "recipes/smoke.toml", "--set", "tokenizer.special_tokens=[\"<pad>\",\"<s>\",\"<pad>\"]"],
                        status: 64, saying: "recipe key 'tokenizer.special_tokens': lists \"<pad>\" twice")
        let qa = dir.appendingPathComponent("qa.jsonl")
        try #"{"question": "Q?", "answer": "A.", "correction": "C."}"#.appending("\n").write(to: qa, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("t.json").path
        try assertFails(["tokenizer", "train", "--input", qa.path, "--output", out, "--min-frequency=-5"], status: 64, saying: "--min-frequency must be at least 1, got -5")
        try assertFails(["tokenizer", "train", "--input", qa.path, "--output", out, "--special-tokens", "<a>,<b>,<a>"],
                        status: 64, saying: "--special-tokens lists \"<a>\" twice")
        for bad in ["=5", "a..b=1", ".x=1", "noequals"] {
            try assertFails(["train", "recipes/smoke.toml", "--set", bad], status: 64, saying: "override '\(bad)' must look like key=value or section.key=value")
        }
        // data convert refuses a record it cannot convert unless --skip-bad, and then lists it.
        let pairs = dir.appendingPathComponent("pairs.jsonl")
        try ([#"{"chosen": "\n\nHuman: Hi\n\nAssistant: Hello.", "rejected": "\n\nHuman: Hi\n\nAssistant: Go away."}"#,
              #"{"chosen": "no assistant turn", "rejected": "none here either"}"#,
              #"{"chosen": 5, "rejected": "x"}"#].joined(separator: "\n") + "\n").write(to: pairs, atomically: true, encoding: .utf8)
        let converted = dir.appendingPathComponent("c.jsonl")
        try assertFails(["data", "convert", pairs.path, converted.path, "--format", "hh-rlhf"], status: 65, saying: "\(pairs.path):2: no \"\\n\\nAssistant:\" turn")
        XCTAssertFalse(FileManager.default.fileExists(atPath: converted.path), "a refused conversion writes nothing")
        let listed = try run(["data", "convert", pairs.path, converted.path, "--format", "hh-rlhf", "--skip-bad"])
        XCTAssertTrue(listed.contains("wrote 1") && listed.contains("skipped line 2: no \"\\n\\nAssistant:\" turn")
                      && listed.contains("skipped line 3: field 'chosen'"), listed)
    }
}
