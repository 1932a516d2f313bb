import CZlib
import Foundation

/// An error writing or reading a run's files (checkpoints, metrics, locks, exports): the file and what went wrong.
public struct StoreError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let message: String
    /// The file was read but its content is wrong (damaged or edited), as opposed to a failure to read or write.
    public let isBadContent: Bool
    public init(file: String, message: String, isBadContent: Bool = false) {
        self.file = file
        self.message = message
        self.isBadContent = isBadContent
    }
    public var description: String { "\(file): \(message)" }
}

/// File-system helpers shared by run folders, checkpoints and exports.
public enum StoreFiles {
    /// Whether a process with this id exists (signal 0 probes without sending anything).
    public static func isProcessAlive(_ pid: Int32) -> Bool {
        pid > 0 && (kill(pid, 0) == 0 || errno == EPERM)
    }

    /// The process id at the end of a temporary name such as `.train.jsonl.tmp-1234` or `.tmp-ckpt-s1-0000010-1234`.
    static func ownerPID(_ name: String) -> Int32? {
        guard let dash = name.lastIndex(of: "-") else { return nil }
        return Int32(name[name.index(after: dash)...])
    }

    /// Removes entries of `folder` whose names start with `prefix` (or, with no prefix, look like AlignerKit's
    /// temporary names: `.tmp-*`, `.*.tmp-PID`, `.*.export-PID`, `.*.old-PID`) and whose writing process is gone, or
    /// all of them when `lockHeld` (the caller holds the folder's lock, so no other process writes there). Returns
    /// their names.
    @discardableResult
    public static func removeStaleTemporaries(in folder: URL, prefix: String? = nil, lockHeld: Bool = false) -> [String] {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: folder.path) else { return [] }
        var removed: [String] = []
        for name in names {
            let matches = prefix.map { name.hasPrefix($0) }
                ?? (name.hasPrefix(".tmp-") || (name.hasPrefix(".") && [".tmp-", ".export-", ".old-"].contains { name.contains($0) }))
            guard matches, let pid = ownerPID(name), lockHeld || !isProcessAlive(pid) else { continue }
            if (try? fm.removeItem(at: folder.appendingPathComponent(name))) != nil { removed.append(name) }
        }
        return removed
    }

    /// Puts the folder `staging` in the place of `target` (which may not exist): the old folder is renamed aside, the
    /// new one renamed in, and only then the old one removed.
    public static func replaceFolder(_ target: URL, with staging: URL) throws {
        let fm = FileManager.default
        let aside = target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).old-\(getpid())")
        try? fm.removeItem(at: aside)
        let hadOld = fm.fileExists(atPath: target.path)
        if hadOld, rename(target.path, aside.path) != 0 {
            throw StoreError(file: target.path, message: "cannot move the old folder aside: \(String(cString: strerror(errno)))")
        }
        if rename(staging.path, target.path) != 0 {
            let reason = String(cString: strerror(errno))
            if hadOld { _ = rename(aside.path, target.path) }
            throw StoreError(file: target.path, message: "cannot move the new folder into place: \(reason)")
        }
        syncDirectory(target.deletingLastPathComponent())
        if hadOld { try? fm.removeItem(at: aside) }
    }

    /// Writes `data` to a temporary file beside `url`, flushes it to disk and renames it into place: `url` holds
    /// either its old content or the new, never a part. A failure (a full disk) removes the temporary file and
    /// names `url` and the reason.
    public static func writeSynced(_ data: Data, to url: URL) throws {
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        guard FileManager.default.createFile(atPath: tmp.path, contents: nil), let h = try? FileHandle(forWritingTo: tmp) else {
            throw StoreError(file: url.path, message: "cannot create: \(String(cString: strerror(errno)))")
        }
        do {
            try h.write(contentsOf: data)
            try h.synchronize()
            try h.close()
        } catch {
            try? h.close()
            try? FileManager.default.removeItem(at: tmp)
            throw StoreError(file: url.path, message: "cannot write \(data.count) bytes: \(describe(error))")
        }
        guard rename(tmp.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: tmp)
            throw StoreError(file: url.path, message: "cannot move into place: \(reason)")
        }
    }

    static func syncDirectory(_ url: URL) {
        let fd = open(url.path, O_RDONLY)
        if fd >= 0 { fsync(fd); close(fd) }
    }

    /// A short reason for a file-system error (for example "No space left on device").
    public static func describe(_ error: Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
        return ns.localizedDescription
    }

    /// CRC-32 and size of a file, read in chunks (bounded memory).
    public static func checksum(of url: URL) throws -> (bytes: Int, crc32: UInt32) {
        guard let f = fopen(url.path, "rb") else { throw StoreError(file: url.path, message: "cannot open: \(String(cString: strerror(errno)))") }
        defer { fclose(f) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var crc: UInt = 0, total = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { fread($0.baseAddress!, 1, $0.count, f) }
            if n == 0 { break }
            crc = buffer.withUnsafeBytes { CZlib.crc32_z(crc, $0.bindMemory(to: UInt8.self).baseAddress, n) }
            total += n
        }
        if ferror(f) != 0 { throw StoreError(file: url.path, message: "read error: \(String(cString: strerror(errno)))") }
        return (total, UInt32(crc))
    }
}

/// An exclusive lock on a run folder, held while a process writes it. The lock is an `flock` on `.lock` (released by
/// the kernel when the process ends, even by `kill -9`); the file holds the holder's process id for the message.
public final class RunLock {
    public let folder: URL
    private let fd: Int32

    /// Takes the lock or throws `StoreError` naming the process that holds it.
    public init(folder: URL) throws {
        self.folder = folder
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent(".lock").path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StoreError(file: path, message: "cannot open the run's lock file: \(String(cString: strerror(errno)))") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = read(fd, &buffer, 31)
            close(fd)
            let holder = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
            throw StoreError(file: folder.path, message: "is in use by another AlignerKit process (PID \(holder)); wait for it to finish or stop it first")
        }
        ftruncate(fd, 0)
        let pid = "\(getpid())\n"
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
        self.fd = fd
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}

/// Sizes and checksums of the files a run reads (data, tokenizer, base model), recorded when the run starts and
/// compared when it is resumed, so that a resumed run is the run it continues.
public struct RunInputs: Codable, Equatable, Sendable {
    public struct File: Codable, Equatable, Sendable {
        public var role: String
        public var path: String
        public var bytes: Int
        public var crc32: UInt32
    }
    public var files: [File]

    /// Fingerprints `paths` (role, path); a folder contributes its regular files, each named under it.
    public static func record(_ paths: [(role: String, path: String)]) throws -> RunInputs {
        var files: [File] = []
        let fm = FileManager.default
        for (role, path) in paths {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDir) else { throw StoreError(file: path, message: "no such file (\(role))") }
            let urls: [URL]
            if isDir.boolValue {
                let names = (try? fm.contentsOfDirectory(atPath: path)) ?? []
                urls = names.sorted().filter { !$0.hasPrefix(".") }.map { URL(fileURLWithPath: path).appendingPathComponent($0) }
                    .filter { (try? $0.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true }
            } else {
                urls = [URL(fileURLWithPath: path)]
            }
            for url in urls {
                let (bytes, crc) = try StoreFiles.checksum(of: url)
                files.append(File(role: role, path: url.path, bytes: bytes, crc32: crc))
            }
        }
        return RunInputs(files: files)
    }

    /// What differs from `recorded` (nil when nothing does), in words.
    public func differences(from recorded: RunInputs) -> String? {
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

/// Metrics appended to `metrics.jsonl`, one JSON object per line. Each line is written whole or not at all: when the
/// disk is full the partial line is cut off again and the error names the file. Non-finite numbers are written as
/// `null`, and the line lists their keys under `non_finite`.
public struct MetricsLog {
    let url: URL
    private let fd: Int32

    init(url: URL) throws {
        self.url = url
        let fd = open(url.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StoreError(file: url.path, message: "cannot open: \(String(cString: strerror(errno)))") }
        self.fd = fd
    }

    func close() { _ = Foundation.close(fd) }

    /// The JSON line for `object` (sorted keys; NaN and infinity as null, listed under "non_finite").
    static func line(_ object: [String: Any]) throws -> Data {
        var clean = object
        var nonFinite: [String] = []
        for (k, v) in object {
            if let d = v as? Double, !d.isFinite { clean[k] = NSNull(); nonFinite.append(k) }
            if let f = v as? Float, !f.isFinite { clean[k] = NSNull(); nonFinite.append(k) }
        }
        if !nonFinite.isEmpty { clean["non_finite"] = nonFinite.sorted() }
        return try JSONSerialization.data(withJSONObject: clean, options: [.sortedKeys]) + Data("\n".utf8)
    }

    func append(_ object: [String: Any]) throws {
        let data = try Self.line(object)
        let before = lseek(fd, 0, SEEK_END)
        var written = 0
        let failure: Int32? = data.withUnsafeBytes { raw -> Int32? in
            while written < raw.count {
                let n = write(fd, raw.baseAddress! + written, raw.count - written)
                if n < 0 { if errno == EINTR { continue }; return errno }
                if n == 0 { return ENOSPC }
                written += n
            }
            return nil
        }
        if let failure {
            if before >= 0 { ftruncate(fd, before) }
            throw StoreError(file: url.path, message: "cannot append metrics: \(String(cString: strerror(failure))) (the file is left as it was before this line)")
        }
    }

    /// Every line of a metrics file with its parsed object (unparsable lines are left out).
    static func lines(_ url: URL) -> [(text: Substring, object: [String: Any])] {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))).flatMap { $0 as? [String: Any] }.map { (line, $0) }
        }
    }

    /// A number from a metrics line: null (a non-finite value) reads as NaN.
    static func number(_ v: Any?) -> Double? {
        if v is NSNull { return .nan }
        return v as? Double ?? (v as? Int).map(Double.init)
    }

    /// (stage, step, loss) of every training step logged.
    func trainLosses() -> [(stage: Int, step: Int, loss: Double)] {
        Self.lines(url).compactMap { line in
            let o = line.object
            guard o.keys.contains("loss"), let l = Self.number(o["loss"]), let stage = o["stage"] as? Int, let step = o["step"] as? Int else { return nil }
            return (stage, step, l)
        }
    }

    func evalPoints() -> [EvalPoint] {
        Self.lines(url).compactMap { line in
            let o = line.object
            guard o.keys.contains("eval_loss"), let e = Self.number(o["eval_loss"]), let stage = o["stage"] as? Int,
                  let step = o["step"] as? Int, let g = o["global_step"] as? Int else { return nil }
            return EvalPoint(stage: stage, step: step, globalStep: g, evalLoss: e)
        }
    }
}

/// JSON for results that may hold NaN or infinity (a diverged loss, an empty stage): such numbers are written as
/// `null`, and read back as NaN, so that writing a summary never fails because of a value.
public enum ResultJSON {
    private static let sentinel = "\u{1}non-finite\u{1}"

    /// Pretty-printed JSON with sorted keys; non-finite numbers become `null`.
    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: sentinel, negativeInfinity: sentinel, nan: sentinel)
        let text = String(decoding: try encoder.encode(value), as: UTF8.self)
        let escaped = String(decoding: try JSONEncoder().encode(sentinel), as: UTF8.self)
        return Data(text.replacingOccurrences(of: escaped, with: "null").utf8)
    }

    /// Decodes JSON written by `encode`; `null` where a number is expected reads as NaN.
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        do { return try JSONDecoder().decode(type, from: data) } catch {
            // Retry with nulls as NaN (optional fields that are null stay absent only when they were left out).
            guard let tree = try? JSONSerialization.jsonObject(with: data) else { throw error }
            func fill(_ v: Any) -> Any {
                if v is NSNull { return "NaN" }
                if let a = v as? [Any] { return a.map(fill) }
                if let o = v as? [String: Any] { return o.mapValues(fill) }
                return v
            }
            let decoder = JSONDecoder()
            decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
            return try decoder.decode(type, from: JSONSerialization.data(withJSONObject: fill(tree)))
        }
    }
}

/// A run's folder and everything kept in it: the lock, checkpoints, metrics, the recipe and inputs it started with,
/// and the result. It holds the lock from `init` until it is released (when the object goes away).
public final class RunFolder {
    public let directory: URL
    public let checkpoints: CheckpointStore
    private let lock: RunLock
    /// metrics.jsonl, open for appending once `startMetrics` has run.
    public private(set) var metrics: MetricsLog!

    var metricsURL: URL { directory.appendingPathComponent("metrics.jsonl") }
    var resultURL: URL { directory.appendingPathComponent("result.json") }
    var inputsURL: URL { directory.appendingPathComponent("inputs.json") }

    /// Takes the folder's lock and removes what killed processes left half-written (reported through `say`).
    public init(directory: URL, say: (String) -> Void) throws {
        self.directory = directory
        lock = try RunLock(folder: directory)
        checkpoints = CheckpointStore(directory: directory.appendingPathComponent("checkpoints"))
        for folder in ["", "checkpoints", "splits"] {
            for name in StoreFiles.removeStaleTemporaries(in: directory.appendingPathComponent(folder), lockHeld: true) {
                say("removed \(folder.isEmpty ? "" : folder + "/")\(name), left by an interrupted process")
            }
        }
    }

    deinit { metrics?.close() }

    /// The checkpoint to continue from: nil for a fresh run. A fresh run in a folder that has checkpoints is refused.
    func startingPoint(resume: Bool) throws -> URL? {
        if !resume && !checkpoints.complete(verify: false).isEmpty {
            throw RecipeError(key: "name", message: "\(directory.path) already has checkpoints; pass --resume to continue it or choose another name")
        }
        return resume ? checkpoints.newest() : nil
    }

    /// The saved result when the checkpoint `latest` ends the run (nothing left to do).
    func finishedResult(at latest: URL?) -> RunResult? {
        guard let latest,
              let state = try? JSONDecoder().decode(TrainerState.self, from: Data(contentsOf: latest.appendingPathComponent("trainer_state.json"))),
              state.stage == 2 && state.stageDone else { return nil }
        return try? ResultJSON.decode(RunResult.self, from: Data(contentsOf: resultURL))
    }

    /// A resumed run must be the same run: the same recipe (only logging, checkpointing and thread settings may
    /// change) and the same input files.
    func checkResumable(_ recipe: Recipe, inputs: RunInputs, from latest: URL, say: (String) -> Void) throws {
        let saved = try Recipe.load(path: latest.appendingPathComponent("recipe.json").path)
        for (key, same) in [("seed", saved.seed == recipe.seed), ("data", saved.data == recipe.data),
                            ("tokenizer", saved.tokenizer == recipe.tokenizer), ("model", saved.model == recipe.model),
                            ("stage1", saved.stage1 == recipe.stage1), ("stage2", saved.stage2 == recipe.stage2)] where !same {
            throw RecipeError(key: key, message: "differs from the run being resumed (\(latest.path)/recipe.json); resume with the same recipe and overrides")
        }
        if let data = try? Data(contentsOf: inputsURL), let recorded = try? JSONDecoder().decode(RunInputs.self, from: data) {
            if let change = inputs.differences(from: recorded) {
                throw RecipeError(key: "data", message: "cannot resume \(directory.path) from \(latest.lastPathComponent): \(change). Restore the original files, or start a new run (another name)")
            }
        } else {
            say("note: \(inputsURL.path) is missing (a run started by an older AlignerKit); the inputs cannot be compared")
        }
    }

    /// Records what a fresh run starts from: its recipe and the fingerprints of its inputs.
    func recordStart(_ recipe: Recipe, inputs: RunInputs) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try StoreFiles.writeSynced(encoder.encode(inputs), to: inputsURL)
        try StoreFiles.writeSynced(recipe.jsonData(), to: directory.appendingPathComponent("recipe.json"))
    }

    /// Opens metrics.jsonl: emptied for a fresh run; for a resumed one, cut back to the checkpoint being resumed so
    /// that the file reads as one uninterrupted run.
    func startMetrics(resumingAt state: TrainerState?) throws {
        if let s = state {
            let keep = MetricsLog.lines(metricsURL).filter { line in
                guard let stage = line.object["stage"] as? Int, let step = line.object["step"] as? Int else { return false }
                return stage < s.stage || (stage == s.stage && step <= s.step)
            }.map(\.text)
            try StoreFiles.writeSynced(Data((keep.joined(separator: "\n") + (keep.isEmpty ? "" : "\n")).utf8), to: metricsURL)
        } else {
            try? FileManager.default.removeItem(at: metricsURL)
        }
        metrics = try MetricsLog(url: metricsURL)
    }

    func writeResult(_ result: RunResult) throws {
        try StoreFiles.writeSynced(ResultJSON.encode(result), to: resultURL)
    }
}
