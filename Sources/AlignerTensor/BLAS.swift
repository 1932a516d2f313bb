import CBLASRuntime
import Foundation

/// The BLAS back end (OpenBLAS, loaded at run time) and the thread count shared by BLAS and AlignerKit's own kernels.
///
/// OpenBLAS chooses its kernel set once, when the library is loaded, from `OPENBLAS_CORETYPE` or its own CPU
/// detection. Debian's OpenBLAS 0.3.21 misdetects recent CPUs and falls back to its SSE3 "Prescott" kernels, about five
/// times slower. AlignerKit therefore loads OpenBLAS itself, after setting `OPENBLAS_CORETYPE` from the CPU's features
/// (AVX-512 → `SkylakeX`, AVX2+FMA → `Haswell`) unless the environment already sets it, in which case the user's value
/// is respected.
public enum BLAS {
    /// Loads OpenBLAS on first use; a missing library stops the process with an install hint.
    static let loaded: Bool = {
        var message = [CChar](repeating: 0, count: 512)
        if ak_blas_load(&message, message.count) != 0 {
            let text = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            fatalError("AlignerKit: \(text)")
        }
        openBLASThreadCount = ComputeContext.standard.threads
        ak_blas_set_threads(Int32(openBLASThreadCount))
        return true
    }()

    /// The thread count OpenBLAS itself was last given (a process-wide setting of the library; `ComputeContext.run`
    /// sets and restores it).
    nonisolated(unsafe) private static var openBLASThreadCount = 1
    static var openBLASThreads: Int { openBLASThreadCount }
    static func setOpenBLASThreads(_ n: Int) {
        guard n != openBLASThreadCount else { return }
        openBLASThreadCount = n
        ak_blas_set_threads(Int32(n))
    }

    /// Makes sure the library is loaded (idempotent).
    @inline(__always) public static func ensureLoaded() { _ = loaded }

    /// The kernel set OpenBLAS runs, e.g. `SkylakeX`.
    public static var coreName: String { ensureLoaded(); return String(cString: ak_blas_corename()) }

    /// OpenBLAS's build configuration string.
    public static var configuration: String { ensureLoaded(); return String(cString: ak_blas_config()) }

    /// The shared library that was loaded.
    public static var libraryPath: String { ensureLoaded(); return String(cString: ak_blas_library_path()) }

    /// How the kernel set was chosen, in words.
    public static var coreSource: String {
        ensureLoaded()
        let value = String(cString: ak_blas_coretype_requested())
        switch ak_blas_core_source() {
        case AK_CORE_FROM_ENVIRONMENT: return "OPENBLAS_CORETYPE=\(value) from the environment"
        case AK_CORE_FROM_CPU_FEATURES: return "OPENBLAS_CORETYPE=\(value) chosen by AlignerKit from CPU features"
        case AK_CORE_PRELOADED: return "OpenBLAS was loaded before AlignerKit; its own choice stands"
        default: return "OpenBLAS's own detection (no AVX2 or AVX-512 found)"
        }
    }

    /// Threads used by BLAS and by AlignerKit's kernels: the current `ComputeContext`'s.
    public static var threads: Int { ComputeContext.current.threads }

    /// Runs `body` with BLAS on one thread (for work already parallel at a coarser level), then restores the count.
    static func singleThreaded<R>(_ body: () -> R) -> R {
        let n = openBLASThreads
        if n == 1 { return body() }
        setOpenBLASThreads(1)
        defer { setOpenBLASThreads(n) }
        return body()
    }

    /// One line for logs: core, how it was chosen, threads.
    public static var summary: String {
        ensureLoaded()
        let timeout = ak_blas_thread_timeout_set() != 0 ? ", idle threads sleep (OPENBLAS_THREAD_TIMEOUT=4)" : ""
        return "BLAS: OpenBLAS core \(coreName) (\(coreSource)), \(threads) thread\(threads == 1 ? "" : "s")\(timeout)"
    }

    /// Row-major `C = alpha * op(A) * op(B) + beta * C`; `op(A)` is (m, k), `op(B)` is (k, n), C is (m, n).
    @inline(__always)
    static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        ensureLoaded()
        if m == 0 || n == 0 { return }
        if k == 0 {
            // BLAS leaves C untouched when k == 0 only if beta == 1; make beta's meaning explicit.
            if beta == 0 { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
            else if beta != 1 { for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } } }
            return
        }
        if ComputeContext.current.matmul == .bf16 {
            bf16gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        // A single row or column is a matrix-vector product: GEMV reads the matrix once, where GEMM would first pack
        // it (decoding one token at a time spent most of its time packing weights).
        if m == 1 || n == 1, beta == 0 {
            // BLAS may scale y by beta = 0 as a product (an uninitialised NaN would survive): clear it instead.
            if m == 1 { c.update(repeating: 0, count: n) } else { for i in 0..<m { c[i * ldc] = 0 } }
        }
        if m == 1 {
            // c (1, n) = alpha · a (1, k) · op(B) (k, n): B stored (n, k) when transposed, (k, n) otherwise.
            let x = transA ? lda : 1
            if ak_sgemv(transB ? 0 : 1, Int32(transB ? n : k), Int32(transB ? k : n), alpha, b, Int32(ldb), a, Int32(x), beta, c, 1) != 0 { return }
        } else if n == 1 {
            // c (m, 1) = alpha · op(A) (m, k) · b (k, 1): A stored (k, m) when transposed, (m, k) otherwise.
            let x = transB ? 1 : ldb
            if ak_sgemv(transA ? 1 : 0, Int32(transA ? k : m), Int32(transA ? m : k), alpha, a, Int32(lda), b, Int32(x), beta, c, Int32(ldc)) != 0 { return }
        }
        ak_sgemm(
            transA ? 1 : 0, transB ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb),
            beta, c, Int32(ldc))
    }

    /// `sgemm` with both inputs rounded to bfloat16 (packed into pooled scratch buffers) and float32 accumulation:
    /// through oneDNN where it has a bf16 matmul for this CPU, else emulated (the rounded values multiplied in float32).
    static func bf16gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        // op(A) is (m, k): stored (k, m) when transposed. Rows of the stored matrix are packed contiguously.
        let (aRows, aCols) = transA ? (k, m) : (m, k)
        let (bRows, bCols) = transB ? (n, k) : (k, n)
        guard MatmulPrecision.bf16IsNative else {
            let ar = Storage(count: aRows * aCols), br = Storage(count: bRows * bCols)  // bf16-rounded copies in float32
            let pa = ar.pointer, pb = br.pointer
            parallelFor(aRows, grain: max(1, 16384 / max(aCols, 1))) { rows in for r in rows { BFloat16.round(a + r * lda, pa + r * aCols, count: aCols) } }
            parallelFor(bRows, grain: max(1, 16384 / max(bCols, 1))) { rows in for r in rows { BFloat16.round(b + r * ldb, pb + r * bCols, count: bCols) } }
            ak_sgemm(transA ? 1 : 0, transB ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha, pa, Int32(aCols), pb, Int32(bCols), beta, c, Int32(ldc))
            withExtendedLifetime((ar, br)) {}
            return
        }
        let a16 = Storage(count: (aRows * aCols + 1) / 2), b16 = Storage(count: (bRows * bCols + 1) / 2)  // bf16 pairs in floats
        let pa = UnsafeMutableRawPointer(a16.pointer).bindMemory(to: UInt16.self, capacity: aRows * aCols)
        let pb = UnsafeMutableRawPointer(b16.pointer).bindMemory(to: UInt16.self, capacity: bRows * bCols)
        parallelFor(aRows, grain: max(1, 16384 / max(aCols, 1))) { rows in for r in rows { BFloat16.convert(a + r * lda, pa + r * aCols, count: aCols) } }
        parallelFor(bRows, grain: max(1, 16384 / max(bCols, 1))) { rows in for r in rows { BFloat16.convert(b + r * ldb, pb + r * bCols, count: bCols) } }
        do {
            try OneDNN.gemm(bf16: true, transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: pa, lda: aCols, b: pb,
                            ldb: bCols, beta: beta, c: c, ldc: ldc)
        } catch {
            fatalError("AlignerKit: bf16 matrix product \(m)x\(n)x\(k) failed: \(error)")
        }
        withExtendedLifetime((a16, b16)) {}
    }
}
