import CKernels

/// A weight matrix (rows, cols) stored as Q8_0, llama.cpp's 8-bit format: each block of 32 values along a row keeps 32
/// int8 quants and one scale (a half-precision value, held as float), value ≈ quant × scale. Quantised exactly as
/// ggml's reference `quantize_row_q8_0` (and `GGUFWriter`, `aligner export --type q8_0`) does, so quantising the values
/// read from a Q8_0 GGUF file gives back that file's blocks. For inference: `Tensor.matmul(q8:)` multiplies with it.
public final class Q8Matrix: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    let quants: UnsafeMutablePointer<Int8>  // (rows, cols)
    let scales: UnsafeMutablePointer<Float>  // (rows, cols / 32)

    /// Values per block.
    public static let block = Int(AK_Q8_BLOCK)

    /// Whether `weight` can be held as Q8_0: a matrix whose rows are whole blocks.
    public static func canQuantize(_ weight: Tensor) -> Bool {
        weight.rank == 2 && weight.shape[1] % block == 0 && weight.shape[1] > 0 && weight.shape[0] > 0
    }

    /// `weight` (rows, cols), cols a multiple of 32, quantised to Q8_0.
    public init(quantizing weight: Tensor) {
        precondition(Q8Matrix.canQuantize(weight), "Q8_0 needs a matrix with a multiple of 32 columns, got \(weight.shape)")
        rows = weight.shape[0]
        cols = weight.shape[1]
        quants = .allocate(capacity: rows * cols)
        scales = .allocate(capacity: rows * cols / Q8Matrix.block)
        ak_q8_quantize(weight.data, Int64(rows), Int64(cols), Int64(cols), quants, scales, 1)
    }

    deinit {
        quants.deallocate()
        scales.deallocate()
    }

    /// Bytes the matrix takes (quants and float scales).
    public var byteCount: Int { rows * cols + rows * cols / Q8Matrix.block * MemoryLayout<Float>.size }

    /// The values the quants stand for, quant × scale: (rows, cols).
    public func dequantized() -> Tensor {
        let out = Tensor(uninitialized: [rows, cols])
        for i in 0..<(rows * cols) { out.data[i] = Float(quants[i]) * scales[i / Q8Matrix.block] }
        return out
    }

    /// The quants of row `row` (for tests): cols int8 values.
    public func quants(row: Int) -> [Int8] { Array(UnsafeBufferPointer(start: quants + row * cols, count: cols)) }

    /// The scales of row `row`: cols / 32 values.
    public func scales(row: Int) -> [Float] { Array(UnsafeBufferPointer(start: scales + row * cols / Q8Matrix.block, count: cols / Q8Matrix.block)) }

    /// Which kernel runs the products here: "avx2+vnni", "avx2" or "portable".
    public static var kernelPath: String { String(cString: ak_q8_path()) }

    /// Runs `body` with the AVX2 kernel even where VNNI is available (for tests: both give the same bits).
    public static func withoutVNNI<R>(_ body: () throws -> R) rethrows -> R {
        ak_q8_set_no_vnni(1)
        defer { ak_q8_set_no_vnni(0) }
        return try body()
    }

    /// Runs `body` with the portable kernel even where AVX2 is available (for tests: both give the same bits).
    public static func withPortableKernel<R>(_ body: () throws -> R) rethrows -> R {
        ak_q8_set_portable(1)
        defer { ak_q8_set_portable(0) }
        return try body()
    }
}
