import AlignerErrors
import Foundation

/// A file that could not be written or read, is missing, damaged or in use: its path and the reason ("No space left on
/// device"). Run folders, checkpoints and exports throw it; a format reader names its file in its own error type.
public struct FileError: AlignerError, Equatable {
    public let file: String
    public let message: String
    /// What failed: `.io` (reading or writing: a full disk, permissions), `.badData` (the file was read but its content
    /// is wrong: damaged or edited), `.missing` (no such file or folder) or `.inUse` (another process holds it).
    public let kind: FailureKind
    public init(file: String, message: String, kind: FailureKind = .io) {
        self.file = file
        self.message = message
        self.kind = kind
    }
    public var subject: FailureSubject { .file(file) }
    public var description: String { "\(file): \(message)" }
}

/// The one way AlignerKit writes a file: into a temporary file beside its final place (`.NAME.tmp-PID`), flushed to
/// disk, then renamed over the final path and the folder synced. A reader sees the old content or the new, never a
/// part; a failure (a full disk, an unwritable folder) removes the temporary file, leaves the old file as it was and
/// throws `FileError` naming the final path.
public enum AtomicFile {
    /// The temporary path a write to `url` uses: `.NAME.tmp-PID` in the same folder (same file system, so the rename
    /// is atomic; `TemporaryFiles.removeStale` recognises it once the process is gone).
    public static func temporaryURL(for url: URL) -> URL {
        url.deletingLastPathComponent().appendingPathComponent(temporaryPrefix(for: url) + "\(getpid())")
    }

    /// The name of every temporary file of `url`, before the writer's process id (`.NAME.tmp-`), for
    /// `TemporaryFiles.removeStale(in:prefix:)`.
    public static func temporaryPrefix(for url: URL) -> String { ".\(url.lastPathComponent).tmp-" }

    /// Writes `data` to `url` atomically.
    public static func write(_ data: Data, to url: URL) throws {
        try write(to: url) { handle in
            do { try handle.write(contentsOf: data) } catch {
                throw FileSystemFailure.error(error, path: url.path, action: "write \(data.count) bytes")
            }
        }
    }

    /// Writes `url` atomically through `body`, which writes the content to the handle of the temporary file (for
    /// files written in parts). An error `body` throws is passed on after the temporary file is removed.
    public static func write(to url: URL, _ body: (FileHandle) throws -> Void) throws {
        let tmp = temporaryURL(for: url)
        guard FileManager.default.createFile(atPath: tmp.path, contents: nil), let handle = try? FileHandle(forWritingTo: tmp) else {
            throw FileSystemFailure.error(errno: errno, path: url.path, action: "write")
        }
        do {
            try body(handle)
            do {
                try handle.synchronize()
                try handle.close()
            } catch {
                throw FileSystemFailure.error(error, path: url.path, action: "finish writing")
            }
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(at: tmp)
            throw error
        }
        try install(tmp, at: url)
    }

    /// Renames the finished temporary file `tmp` over `url` and syncs the folder; on failure removes `tmp`.
    public static func install(_ tmp: URL, at url: URL) throws {
        guard rename(tmp.path, url.path) == 0 else {
            let code = errno
            try? FileManager.default.removeItem(at: tmp)
            throw FileSystemFailure.error(errno: code, path: url.path, action: "write")
        }
        syncDirectory(url.deletingLastPathComponent())
    }

    /// Puts the folder `staging` (written completely) in the place of `target`, which may not exist: the old folder is
    /// renamed aside (`.NAME.old-PID`), the new one renamed in, and only then the old one removed; if the new one
    /// cannot be moved in, the old one is moved back.
    public static func replaceFolder(_ target: URL, with staging: URL) throws {
        let fm = FileManager.default
        let aside = target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).old-\(getpid())")
        try? fm.removeItem(at: aside)
        let hadOld = fm.fileExists(atPath: target.path)
        if hadOld, rename(target.path, aside.path) != 0 {
            throw FileSystemFailure.error(errno: errno, path: target.path, action: "move the old folder aside")
        }
        if rename(staging.path, target.path) != 0 {
            let code = errno
            if hadOld { _ = rename(aside.path, target.path) }
            throw FileSystemFailure.error(errno: code, path: target.path, action: "move the new folder into place")
        }
        syncDirectory(target.deletingLastPathComponent())
        if hadOld { try? fm.removeItem(at: aside) }
    }

    /// Flushes a folder's entries (a rename into it) to disk; best effort.
    public static func syncDirectory(_ url: URL) {
        let fd = open(url.path, O_RDONLY)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }
}
