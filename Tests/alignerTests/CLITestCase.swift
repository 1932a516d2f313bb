import Foundation
import XCTest

/// Runs the built `aligner` executable in a fresh temporary folder; subclasses hold the tests.
class CLITestCase: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("alignerkit-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// The built executable, next to the test bundle.
    var executable: URL {
        let candidates = [Bundle.main.bundleURL, Bundle(for: Self.self).bundleURL.deletingLastPathComponent(),
                          Bundle(for: Self.self).bundleURL.deletingLastPathComponent().deletingLastPathComponent()]
        for c in candidates {
            let url = c.appendingPathComponent("aligner")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return candidates[0].appendingPathComponent("aligner")
    }

    @discardableResult
    func run(_ args: [String], expect status: Int32 = 0, stdin: Data? = nil, environment: [String: String] = [:],
             file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let p = Process()
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        p.executableURL = executable
        p.arguments = args
        p.currentDirectoryURL = Self.root
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        let input = Pipe()
        p.standardInput = input
        try p.run()
        if let stdin { input.fileHandleForWriting.write(stdin) }
        try input.fileHandleForWriting.close()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, status, "aligner \(args.joined(separator: " ")):\n\(text)", file: file, line: line)
        return text
    }

    /// Runs `p` to its end, standard output and error captured together.
    static func capture(_ p: Process) throws -> (status: Int32, text: String) {
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, text)
    }

    // MARK: Shared fixtures and checks of the bad-input tests

    static let tinyModel = root.appendingPathComponent("Tests/AlignerFormatsTests/Fixtures/hf-tiny").path

    /// A copy of the tiny Hugging Face model whose config.json is changed by `edit`.
    func modelCopy(_ name: String, edit: (inout String) -> Void = { _ in }) throws -> String {
        let copy = dir.appendingPathComponent(name)
        try FileManager.default.copyItem(atPath: Self.tinyModel, toPath: copy.path)
        let config = copy.appendingPathComponent("config.json")
        var text = try String(contentsOf: config, encoding: .utf8)
        edit(&text)
        try text.write(to: config, atomically: true, encoding: .utf8)
        return copy.path
    }

    func assertFails(_ args: [String], status: Int32, saying needle: String, stdin: Data? = nil,
                     file: StaticString = #filePath, line: UInt = #line) throws {
        let out = try run(args, expect: status, stdin: stdin, file: file, line: line)
        XCTAssertTrue(out.contains(needle), "aligner \(args.joined(separator: " ")) should say \"\(needle)\":\n\(out)", file: file, line: line)
        XCTAssertFalse(out.contains("Error Domain="), "Foundation's error text reached the user:\n\(out)", file: file, line: line)
    }

    /// Common overrides for a run of a few seconds.
    func tinyRun(_ data: String, name: String = "r") -> [String] {
        ["--set", "output_dir=\(dir.path)", "--set", "name=\(name)", "--set", "data.train=[\"\(data)\"]", "--set", "data.limit=120",
         "--set", "data.eval_count=20", "--set", "model.hidden_size=32", "--set", "model.intermediate_size=64",
         "--set", "stage1.steps=2", "--set", "stage2.steps=3", "--set", "train.checkpoint_every=1"]
    }

    /// A copy of the bundled hh-rlhf Q-A-C file in the test folder (or at `path`).
    func dataCopy(_ path: URL? = nil) throws -> URL {
        let data = path ?? dir.appendingPathComponent("data.jsonl.gz")
        try FileManager.default.createDirectory(at: data.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.root.appendingPathComponent("data/qac/hh-rlhf-harmless-base-test.qac.jsonl.gz").path, toPath: data.path)
        return data
    }
}
