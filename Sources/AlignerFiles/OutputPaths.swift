import AlignerErrors
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Where a command will write, checked before it reads or computes anything: the output must not be, contain or lie
/// inside any of the command's inputs (a source checkpoint, a run folder, a model folder, a data file), and nothing on
/// the file system may be in the way of writing it (a file where a folder is needed, a folder where a file is
/// written, a read-only file system, a folder without write permission). Paths are compared after `..` and symbolic
/// links are resolved, so another spelling of the same place is caught too.
public enum OutputPaths {
    /// Throws `FileError` naming `output` when it overlaps an input (kind `.usage`) or cannot be written (`.io`).
    /// `folder`: the output is a folder (an existing folder is allowed; the command decides what it may replace).
    /// `inputs` may hold paths that do not exist (they are skipped).
    public static func check(_ output: String, folder: Bool, inputs: [String]) throws {
        let out = resolved(output)
        let sources = inputs.filter { !$0.isEmpty && FileManager.default.fileExists(atPath: $0) }.map { ($0, resolved($0)) }
        if let (input, _) = sources.first(where: { $0.1 == out }) {
            throw FileError(file: output, message: "the output is the input \(input): writing it would destroy what is read", kind: .usage)
        }
        if let (reason, kind) = FileSystemFailure.obstacle(toWriting: output, folder: folder) {
            throw FileError(file: output, message: "cannot write: \(reason)", kind: kind)
        }
        for (input, source) in sources {
            if out.hasPrefix(source.hasSuffix("/") ? source : source + "/") {
                throw FileError(file: output, message: "the output lies inside the input folder \(input): choose a path outside it", kind: .usage)
            }
            if source.hasPrefix(out.hasSuffix("/") ? out : out + "/") {
                throw FileError(file: output, message: "the output contains the input \(input): writing it would replace what is read", kind: .usage)
            }
        }
    }

    /// An absolute path with `.`, `..` and the symbolic links of its existing part resolved; the part that does not
    /// exist yet is appended as spelled (after `.` and `..` are folded).
    public static func resolved(_ path: String) -> String {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        var parts: [Substring] = []
        for part in absolute.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." { _ = parts.popLast(); continue }
            parts.append(part)
        }
        // The longest existing prefix, through realpath; the rest as written.
        var split = parts.count
        while split > 0 {
            let prefix = "/" + parts[0..<split].joined(separator: "/")
            if let real = realpath(prefix, nil) {
                defer { free(real) }
                let base = String(cString: real)
                let rest = parts[split...].joined(separator: "/")
                return rest.isEmpty ? base : (base == "/" ? "/" + rest : base + "/" + rest)
            }
            split -= 1
        }
        return "/" + parts.joined(separator: "/")
    }
}
