import Foundation

/// Temporary files and folders that AlignerKit writes beside their final place, named `…-PID` after the writing
/// process (`.train.jsonl.tmp-1234`, `.tmp-ckpt-s1-0000010-1234`, `.model.export-1234`).
public enum TemporaryFiles {
    /// Whether a process with this id exists (signal 0 probes without sending anything).
    public static func isProcessAlive(_ pid: Int32) -> Bool {
        pid > 0 && (kill(pid, 0) == 0 || errno == EPERM)
    }

    /// The process id at the end of a temporary name.
    static func ownerPID(_ name: String) -> Int32? {
        guard let dash = name.lastIndex(of: "-") else { return nil }
        return Int32(name[name.index(after: dash)...])
    }

    /// Removes entries of `folder` whose names start with `prefix` (or, with no prefix, look like AlignerKit's
    /// temporary names: `.tmp-*`, `.*.tmp-PID`, `.*.export-PID`, `.*.old-PID`) and whose writing process is gone, or
    /// all of them when `lockHeld` (the caller holds the folder's lock, so no other process writes there). Returns
    /// their names.
    @discardableResult
    public static func removeStale(in folder: URL, prefix: String? = nil, lockHeld: Bool = false) -> [String] {
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
}
