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
    /// The precision of matrix products (`.bf16`: inputs rounded to bfloat16, float32 accumulation, through oneDNN).
    public let matmul: MatmulPrecision

    public init(threads: Int, pool: BufferPool = .shared, matmul: MatmulPrecision = .fp32) {
        self.threads = max(1, threads)
        self.pool = pool
        self.matmul = matmul
    }

    /// This context with another matrix-product precision.
    public func with(matmul: MatmulPrecision) -> ComputeContext { ComputeContext(threads: threads, pool: pool, matmul: matmul) }

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
        if matmul == .bf16 { OneDNN.setThreads(threads) }
        return try ComputeContext.$current.withValue(self) { try body() }
    }
}

/// The precision of matrix products, as `torch.autocast(device_type="cpu", dtype=torch.bfloat16)` sets it: `.bf16`
/// rounds both inputs of every matrix product to bfloat16 and accumulates in float32; everything else (norms,
/// softmax, the loss, weights and optimiser state) stays float32.
public enum MatmulPrecision: String, Sendable, CaseIterable {
    case fp32, bf16

    /// How `.bf16` products run here: oneDNN's bf16 matmul where it has one for this CPU (AVX512-BF16, AMX), else
    /// emulated (inputs rounded to bfloat16, then a float32 product: bf16's numerics without its speed).
    public static var bf16Engine: String {
        if OneDNN.bf16Unavailable == nil { return "oneDNN \(OneDNN.version) (\(OneDNN.isa))" }
        return "emulated (bf16-rounded inputs, float32 OpenBLAS products: \(OneDNN.bf16Unavailable!))"
    }

    /// Whether `.bf16` runs natively (faster than float32) rather than emulated (slower).
    public static var bf16IsNative: Bool { OneDNN.bf16Unavailable == nil }
}
