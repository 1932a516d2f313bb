import Foundation

/// Sizes and CRC-32s of named input files, each with its role ("training data", "base model"): a run records the files
/// it reads when it starts and compares them when it is resumed, so that a resumed run is the run it continues; an
/// adapter records its base model's files the same way.
public struct FileFingerprints: Codable, Equatable, Sendable {
    public struct File: Codable, Equatable, Sendable {
        public var role: String
        public var path: String
        public var bytes: Int
        public var crc32: UInt32
        public init(role: String, path: String, bytes: Int, crc32: UInt32) {
            (self.role, self.path, self.bytes, self.crc32) = (role, path, bytes, crc32)
        }
    }
    public var files: [File]

    public init(files: [File]) { self.files = files }

    /// Fingerprints `paths` (role, path); a folder contributes its regular files, each named under it.
    public static func record(_ paths: [(role: String, path: String)]) throws -> FileFingerprints {
        var files: [File] = []
        let fm = FileManager.default
        for (role, path) in paths {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDir) else { throw FileError(file: path, message: "no such file (\(role))", kind: .missing) }
            let urls: [URL]
            if isDir.boolValue {
                let names = (try? fm.contentsOfDirectory(atPath: path)) ?? []
                urls = names.sorted().filter { !$0.hasPrefix(".") }.map { URL(fileURLWithPath: path).appendingPathComponent($0) }
                    .filter { (try? $0.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true }
            } else {
                try FileSystemFailure.checkInputFile(path, what: role)  // (a device would be read forever)
                urls = [URL(fileURLWithPath: path)]
            }
            for url in urls {
                let (bytes, crc) = try Checksum.crc32(of: url)
                files.append(File(role: role, path: url.path, bytes: bytes, crc32: crc))
            }
        }
        return FileFingerprints(files: files)
    }

    /// What differs from `recorded` (nil when nothing does), in words.
    public func differences(from recorded: FileFingerprints) -> String? {
        var lines: [String] = []
        let now = Dictionary(files.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        let before = Dictionary(recorded.files.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        for f in recorded.files {
            guard let n = now[f.path] else { lines.append("\(f.role) \(f.path) is no longer an input"); continue }
            if n.bytes != f.bytes { lines.append("\(f.role) \(f.path) changed: \(f.bytes) bytes when the run started, \(n.bytes) now") }
            else if n.crc32 != f.crc32 { lines.append("\(f.role) \(f.path) changed: same size, different content (CRC-32)") }
        }
        for f in files where before[f.path] == nil { lines.append("\(f.role) \(f.path) was not an input when the run started") }
        return lines.isEmpty ? nil : lines.joined(separator: "; ")
    }
}
