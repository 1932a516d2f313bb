import AlignerErrors
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The one mapping from a file-system failure to a `FileError` in plain words: the path, what was being done, and why
/// ("lies under /a/b, which is a file, not a folder", "is a folder, not a file", "the file system is read-only", "no
/// space left on the device", "permission denied", "no such file or folder"), with the kind the exit status follows
/// (`.missing` for what does not exist, `.io` for the rest). Foundation's own error text never reaches the user: a
/// code Foundation does not explain (Linux reports several as "unknown") is diagnosed from the file system itself.
public enum FileSystemFailure {
    /// Creates the folder at `path` and its missing parents (nothing when it exists); a failure is a `FileError` in
    /// plain words.
    public static func createFolder(_ path: String) throws {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw self.error(error, path: path, action: "create the folder")
        }
    }

    /// A Foundation file error (Cocoa or POSIX domain) that reached the command line without a path of AlignerKit's
    /// own, in plain words with the path Foundation recorded; nil for any other error.
    public static func plain(_ error: Error) -> FileError? {
        if error is AlignerError { return nil }
        let ns = error as NSError
        guard ns.domain == NSPOSIXErrorDomain || ns.domain == NSCocoaErrorDomain else { return nil }
        let path = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path ?? "(a file)"
        let reading = ns.domain == NSCocoaErrorDomain && (256..<512).contains(ns.code)  // Cocoa's read errors
        return self.error(error, path: path, action: reading ? "read" : "write")
    }

    /// `error` (a Foundation or POSIX error, or a `FileError` already) met while `action` ("write", "create the
    /// folder", "read") was done to `path`.
    public static func error(_ error: Error, path: String, action: String) -> FileError {
        if let e = error as? FileError { return e }
        let ns = error as NSError
        let failedPath = (ns.userInfo[NSFilePathErrorKey] as? String) ?? path
        if let code = posixCode(of: ns) { return self.error(errno: code, path: path, action: action, failedPath: failedPath) }
        if let (reason, kind) = diagnose(path: path, action: action) { return FileError(file: path, message: "cannot \(action): \(reason)", kind: kind) }
        return FileError(file: path, message: "cannot \(action)")
    }

    /// A failure that set `errno` (or returned it) while `action` was done to `path`. `failedPath` is the part of the
    /// path the system call named, when it was not `path` itself (a parent folder being created).
    public static func error(errno code: Int32, path: String, action: String, failedPath: String? = nil) -> FileError {
        let (reason, kind) = self.reason(errno: code, path: path, action: action, failedPath: failedPath)
        return FileError(file: path, message: "cannot \(action): \(reason)", kind: kind)
    }

    /// Plain words for `errno` at `path`, and the kind of failure.
    public static func reason(errno code: Int32, path: String, action: String = "write", failedPath: String? = nil) -> (String, FailureKind) {
        switch code {
        case ENOENT:
            if let blocker = fileAbove(path) { return (underFile(blocker), .io) }
            // Reading: the input is missing. Writing: a folder on the way is missing and cannot be made there.
            return action.hasPrefix("read") || action.hasPrefix("open") ? ("no such file or folder", .missing)
                : ("a folder on the way does not exist and cannot be made there", .io)
        case ENOTDIR:
            if let blocker = fileAbove(path) { return (underFile(blocker), .io) }
            return ("a part of the path is a file, not a folder", .io)
        case EEXIST:
            if let blocker = fileAbove(path) { return (underFile(blocker), .io) }
            if let failedPath, failedPath != path, isFile(failedPath) { return (underFile(failedPath), .io) }
            return (isFolder(path) ? "a folder of that name is in the way" : "a file of that name is in the way", .io)
        case EISDIR: return ("it is a folder, not a file", .io)
        case EROFS: return ("the file system is read-only", .io)
        case ENOSPC: return ("no space left on the device", .io)
        case EDQUOT: return ("the disk quota is used up", .io)
        case EACCES, EPERM: return ("permission denied", .io)
        case ENAMETOOLONG: return ("the name is too long", .io)
        case ELOOP: return ("too many symbolic links", .io)
        case EMFILE, ENFILE: return ("too many open files", .io)
        case EIO: return ("input/output error (the device failed)", .io)
        case EFBIG: return ("the file is too large for the file system", .io)
        case EXDEV: return ("it is on another file system", .io)
        case ENOTEMPTY: return ("the folder is not empty", .io)
        default: return (String(cString: strerror(code)), .io)
        }
    }

    /// Refuses an input that cannot be read as a file, before it is opened: missing (`.missing`), a folder, or a
    /// device, pipe or socket (`.usage`: reading /dev/zero or a pipe nobody writes would never end). `what` names
    /// the input in the message ("--prompt-file").
    public static func checkInputFile(_ path: String, what: String? = nil) throws {
        let role = what.map { " (\($0))" } ?? ""
        var st = stat()
        guard stat(path, &st) == 0 else {
            let code = errno
            if let blocker = fileAbove(path) { throw FileError(file: path, message: "cannot read\(role): \(underFile(blocker))", kind: .missing) }
            throw FileError(file: path, message: code == ENOENT ? "no such file\(role)" : "cannot read\(role): \(String(cString: strerror(code)))",
                            kind: code == ENOENT ? .missing : .io)
        }
        switch st.st_mode & S_IFMT {
        case S_IFREG: return
        case S_IFDIR: throw FileError(file: path, message: "is a folder, not a file\(role)", kind: .usage)
        default: throw FileError(file: path, message: "is a device or other special file, not a regular file\(role): it is not read", kind: .usage)
        }
    }

    /// Why nothing can be written at `path`, read from the file system without writing anything; nil when nothing is
    /// in the way. `folder`: the output is a folder (an existing folder is fine) rather than a file.
    public static func obstacle(toWriting path: String, folder: Bool) -> (String, FailureKind)? {
        if let long = path.split(separator: "/").first(where: { $0.utf8.count > 200 }) {
            // (outputs are written beside their place under a longer temporary name: 255 bytes is the usual limit)
            return ("the name \(long.prefix(24))… is \(long.utf8.count) bytes long, more than file systems hold (at most 200 here)", .io)
        }
        if let blocker = fileAbove(path) { return (underFile(blocker), .io) }
        if !folder && isFolder(path) { return ("it is a folder, not a file", .io) }
        // A device, pipe or socket: written through a temporary file renamed over it, it would be replaced by a file.
        if isSpecial(path) { return ("it is a device or other special file, not a regular file", .io) }
        if folder && isFile(path) { return ("it is a file, not a folder", .io) }
        guard let existing = nearestExisting(path) else { return nil }
        var fs = statvfs()
        if statvfs(existing, &fs) == 0 && (fs.f_flag & UInt(ST_RDONLY)) != 0 { return ("the file system is read-only", .io) }
        // The folder that receives a new entry (the path's own parent when it exists) must be writable.
        let parent = existing == path ? (path as NSString).deletingLastPathComponent : existing
        if access(parent.isEmpty ? "." : parent, W_OK) != 0 { return ("permission denied (\(parent) is not writable)", .io) }
        if existing == path && !folder && access(path, W_OK) != 0 { return ("permission denied", .io) }
        return nil
    }

    /// Why nothing can be written under `blocker`, a part of the path that exists and is not a folder.
    static func underFile(_ blocker: String) -> String {
        let regular = fileType(blocker) == S_IFREG
        return "it lies under \(blocker), which is \(regular ? "a file" : "a device or other special file"), not a folder"
    }

    /// The first ancestor of `path` that exists and is not a folder (a regular file, a device), or nil.
    static func fileAbove(_ path: String) -> String? {
        var prefix = path.hasPrefix("/") ? "" : "."
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).dropLast()
        for part in parts {
            prefix += "/" + part
            guard let type = fileType(prefix) else { return nil }
            if type != S_IFDIR { return path.hasPrefix("/") ? prefix : String(prefix.dropFirst(2)) }
        }
        return nil
    }

    /// The longest prefix of `path` that exists.
    static func nearestExisting(_ path: String) -> String? {
        var p = path
        while !p.isEmpty {
            if fileType(p) != nil { return p }
            let parent = (p as NSString).deletingLastPathComponent
            if parent == p { break }
            p = parent
        }
        return path.hasPrefix("/") ? "/" : "."
    }

    /// The type bits (`S_IFREG`, `S_IFDIR`, ...) of what is at `path`, following links; nil when nothing is.
    static func fileType(_ path: String) -> mode_t? {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_mode & S_IFMT : nil
    }

    /// A device, pipe or socket.
    static func isSpecial(_ path: String) -> Bool { fileType(path).map { $0 != S_IFDIR && $0 != S_IFREG } ?? false }
    static func isFolder(_ path: String) -> Bool { fileType(path) == S_IFDIR }
    /// Anything but a folder.
    static func isFile(_ path: String) -> Bool { fileType(path).map { $0 != S_IFDIR } ?? false }

    /// The POSIX error code inside a Foundation error, when it has one.
    static func posixCode(of ns: NSError) -> Int32? {
        if ns.domain == NSPOSIXErrorDomain { return Int32(ns.code) }
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return Int32(underlying.code)
        }
        guard ns.domain == NSCocoaErrorDomain else { return nil }
        switch CocoaError.Code(rawValue: ns.code) {
        case .fileNoSuchFile, .fileReadNoSuchFile: return ENOENT
        case .fileReadNoPermission, .fileWriteNoPermission: return EACCES
        case .fileWriteOutOfSpace: return ENOSPC
        case .fileWriteVolumeReadOnly: return EROFS
        case .fileWriteFileExists: return EEXIST
        default: return nil
        }
    }

    /// A cause found on the file system for a failure Foundation did not explain.
    static func diagnose(path: String, action: String) -> (String, FailureKind)? {
        if action.hasPrefix("read") || action.hasPrefix("open") {
            if let blocker = fileAbove(path) { return (underFile(blocker), .io) }
            if fileType(path) == nil { return ("no such file or folder", .missing) }
            if access(path, R_OK) != 0 { return ("permission denied", .io) }
            return nil
        }
        return obstacle(toWriting: path, folder: action.contains("folder"))
    }
}
