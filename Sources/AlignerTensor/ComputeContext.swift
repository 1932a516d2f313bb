import CBLASRuntime
import Foundation

/// The resources computation runs with: how many threads BLAS and AlignerKit's kernels use, and the buffer pool
/// tensors draw their memory from. Passed explicitly and scoped: `context.run { ... }` makes it current for the body
/// (and for the worker threads `parallelFor` starts), instead of process-wide mutable settings.
public final class ComputeContext: Sendable {
    /// Threads for BLAS and AlignerKit's own kernels (at least 1).
    public let threads: Int
    /// Where tensors' buffers come from and go back to.
    public let pool: BufferPool

    public init(threads: Int, pool: BufferPool = .shared) {
        self.threads = max(1, threads)
        self.pool = pool
    }

    /// `ALIGNERKIT_THREADS`, else `OPENBLAS_NUM_THREADS`, else all cores; the shared pool.
    public static let standard = ComputeContext(threads: defaultThreads, pool: .shared)

    static var defaultThreads: Int {
        let env = ProcessInfo.processInfo.environment
        return env["ALIGNERKIT_THREADS"].flatMap(Int.init) ?? env["OPENBLAS_NUM_THREADS"].flatMap(Int.init)
            ?? ProcessInfo.processInfo.activeProcessorCount
    }

    /// The context computation uses now (`standard` outside any `run`).
    @TaskLocal public static var current: ComputeContext = .standard

    /// Runs `body` with this context current; OpenBLAS uses `threads` meanwhile and its previous count afterwards.
    public func run<R>(_ body: () throws -> R) rethrows -> R {
        BLAS.ensureLoaded()
        let previous = BLAS.openBLASThreads
        BLAS.setOpenBLASThreads(threads)
        defer { BLAS.setOpenBLASThreads(previous) }
        return try ComputeContext.$current.withValue(self) { try body() }
    }
}
