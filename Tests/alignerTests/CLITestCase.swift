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
}
