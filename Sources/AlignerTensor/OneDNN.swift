import CDNNLRuntime
import Foundation

/// oneDNN (Intel's deep-learning kernels, what PyTorch runs on CPU), loaded at run time for bfloat16 matrix products
/// with float32 accumulation (AVX512-BF16 or AMX when the CPU has them) and, optionally, float32 ones. AlignerKit runs
/// without it: `isAvailable` is false and `unavailableReason` says why.
public enum OneDNN {
    private static let loaded: String? = {
        var err = [CChar](repeating: 0, count: 512)
        return ak_dnnl_load(&err, err.count) == 0 ? nil : String(cString: err)
    }()

    /// Whether oneDNN is loaded and usable.
    public static var isAvailable: Bool { loaded == nil }
    /// Why it is not, when it is not.
    public static var unavailableReason: String? { loaded }
    /// Its version ("2.6.3"), or "" when unavailable.
    public static var version: String { isAvailable ? String(cString: ak_dnnl_version()) : "" }
    /// The instruction set oneDNN dispatches to on this CPU ("avx2", "avx512_core_bf16", "avx512_core_amx").
    public static var isa: String { isAvailable ? String(cString: ak_dnnl_isa()) : "" }
    /// A failed oneDNN call.
    public struct Failure: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// Row-major C = alpha·op(A)·op(B) + beta·C through oneDNN's matmul; A and B float32 or bfloat16 (UInt16 bits).
    /// Returns the implementation oneDNN chose (e.g. "brg:avx512_core_amx", "gemm:jit", "ref:any").
    @discardableResult
    static func gemm(bf16: Bool, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafeRawPointer, lda: Int,
                     b: UnsafeRawPointer, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) throws -> String {
        var impl = [CChar](repeating: 0, count: 64), err = [CChar](repeating: 0, count: 512)
        let status = ak_dnnl_gemm(bf16 ? 1 : 0, transA ? 1 : 0, transB ? 1 : 0, Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda), b,
                                  Int64(ldb), beta, c, Int64(ldc), &impl, impl.count, &err, err.count)
        guard status == 0 else { throw Failure(message: String(cString: err)) }
        return String(cString: impl)
    }

    /// nil when oneDNN multiplies bfloat16 matrices on this CPU (probed once with a small product); else why not
    /// (oneDNN 2.6 has no bf16 matmul for CPUs without AVX-512, for instance).
    public static let bf16Unavailable: String? = {
        if let reason = unavailableReason { return reason }
        let a = [UInt16](repeating: 0x3F80, count: 16), b = a
        var c = [Float](repeating: 0, count: 16)
        do {
            try gemm(bf16: true, transA: false, transB: false, m: 4, n: 4, k: 4, alpha: 1, a: a, lda: 4, b: b, ldb: 4, beta: 0, c: &c, ldc: 4)
        } catch { return "\(error)" }
        return c.allSatisfy { $0 == 4 } ? nil : "oneDNN \(version): a bf16 test product gave wrong values"
    }()

    /// x·Wᵀ in float32 through oneDNN's matmul (x (m, k), W (n, k) → (m, n); no autodiff): for comparing engines.
    public static func linearF32(_ x: Tensor, _ w: Tensor) throws -> Tensor {
        guard x.rank == 2, w.rank == 2, x.shape[1] == w.shape[1] else { throw Failure(message: "linearF32: shapes \(x.shape) and \(w.shape)") }
        let (m, k, n) = (x.shape[0], x.shape[1], w.shape[0])
        let out = Tensor(uninitialized: [m, n])
        try gemm(bf16: false, transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: x.data, lda: k, b: w.data, ldb: k, beta: 0,
                 c: out.data, ldc: n)
        return out
    }

    /// Threads of oneDNN's OpenMP runtime.
    public static func setThreads(_ n: Int) { ak_dnnl_set_threads(Int32(n)) }
}

/// bfloat16 conversion (round to nearest even, as PyTorch's `.to(torch.bfloat16)`; NaN stays NaN).
public enum BFloat16 {
    /// Converts `count` floats.
    public static func convert(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<UInt16>, count: Int) {
        typealias U = SIMD8<UInt32>
        var i = 0
        while i + 8 <= count {
            let bits = unsafeBitCast(UnsafeRawPointer(src + i).loadUnaligned(as: SIMD8<Float>.self), to: U.self)
            let rounded = (bits &+ 0x7FFF &+ ((bits &>> 16) & 1)) &>> 16
            let isNaN = (bits & 0x7FFF_FFFF) .> 0x7F80_0000
            let v = rounded.replacing(with: U(repeating: 0x7FC0), where: isNaN)
            for j in 0..<8 { dst[i + j] = UInt16(truncatingIfNeeded: v[j]) }
            i += 8
        }
        while i < count { dst[i] = one(src[i]); i += 1 }
    }

    /// Rounds `count` floats to the nearest bfloat16 values, kept as floats.
    public static func round(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, count: Int) {
        typealias U = SIMD8<UInt32>
        var i = 0
        while i + 8 <= count {
            let bits = unsafeBitCast(UnsafeRawPointer(src + i).loadUnaligned(as: SIMD8<Float>.self), to: U.self)
            let rounded = ((bits &+ 0x7FFF &+ ((bits &>> 16) & 1)) & 0xFFFF_0000)
            let v = rounded.replacing(with: U(repeating: 0x7FC0_0000), where: (bits & 0x7FFF_FFFF) .> 0x7F80_0000)
            UnsafeMutableRawPointer(dst + i).storeBytes(of: unsafeBitCast(v, to: SIMD8<Float>.self), as: SIMD8<Float>.self)
            i += 8
        }
        while i < count { dst[i] = float(one(src[i])); i += 1 }
    }

    @inline(__always) public static func one(_ x: Float) -> UInt16 {
        if x.isNaN { return 0x7FC0 }
        let b = x.bitPattern
        return UInt16(truncatingIfNeeded: (b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16)
    }

    @inline(__always) public static func float(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }
}
