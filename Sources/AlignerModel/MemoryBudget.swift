import AlignerErrors
import Foundation

/// A model or run that would not fit in this machine's memory, refused before anything is allocated.
public struct MemoryError: AlignerError, Equatable {
    public var subject: FailureSubject { .none }
    public var kind: FailureKind { .memory }
    public let what: String
    public let bytes: Double
    public let available: Double
    public var description: String {
        String(format: "%@ would need about %.1f GiB, more than this machine's %.1f GiB of memory", what, bytes / 1_073_741_824,
               available / 1_073_741_824)
    }
}

/// Checks estimated sizes against the machine's physical memory.
public enum MemoryBudget {
    /// Physical memory in bytes (`ALIGNERKIT_MEMORY_LIMIT`, in bytes, overrides it, for tests and shared machines).
    public static var available: Double {
        if let s = ProcessInfo.processInfo.environment["ALIGNERKIT_MEMORY_LIMIT"], let v = Double(s), v > 0 { return v }
        return Double(ProcessInfo.processInfo.physicalMemory)
    }

    /// How much freed memory a training loop's buffer pool may keep for the next step (a quarter of `available`). The
    /// loop calls `BufferPool.endStep()` after each step, which frees what that step did not reuse, so the pool holds
    /// about one step's buffers, not this much, unless a step needs it.
    public static var trainingPoolBytes: Int { Int(min(available / 4, Double(Int.max / 2))) }

    /// Throws `MemoryError` when `bytes` exceeds the available memory.
    public static func check(bytes: Double, for what: String) throws {
        let limit = available
        guard bytes.isFinite, bytes <= limit else { throw MemoryError(what: what, bytes: bytes, available: limit) }
    }
}
