import CKernels

/// Products for generation: the weights stream through once per step for the few rows a decoding step has, on the
/// kernels' own thread pool (no dispatch per product), each row's result independent of the other rows.
extension Tensor {
    /// `self` (…, k) times `weight`ᵀ, weight (n, k) in Q8_0: (…, n), as a linear layer `x.matmul(W, transposeOther:
    /// true)`. The rows of `self` are quantised to Q8_0 too (per block of 32, scale max|x|/127 kept in float, quants
    /// rounded half to even), as llama.cpp does for Q8_0 weights; a block's products are summed exactly in int32.
    /// Each row's result depends on that row alone. Inference only: it records no gradient.
    public func matmul(q8 weight: Q8Matrix) -> Tensor {
        let k = shape[rank - 1]
        precondition(k == weight.cols, "matmul(q8:): inner sizes differ, \(shape) · (\(weight.rows), \(weight.cols))ᵀ")
        precondition(!(GradMode.isEnabled && requiresGrad), "matmul(q8:) is for inference; it records no gradient")
        let m = count / max(k, 1), n = weight.rows, blocks = k / Q8Matrix.block
        let out = Tensor(uninitialized: Array(shape.dropLast()) + [n])
        let quantsBuffer = Storage(count: (m * k + 3) / 4), scalesBuffer = Storage(count: m * blocks)  // (m, k) int8; (m, k/32)
        let xq = UnsafeMutableRawPointer(quantsBuffer.pointer).bindMemory(to: Int8.self, capacity: m * k)
        ak_q8_quantize(data, Int64(m), Int64(k), Int64(k), xq, scalesBuffer.pointer, 0)
        ak_q8_matmul(weight.quants, weight.scales, Int64(n), Int64(k), xq, scalesBuffer.pointer, Int64(m), out.data, Int64(n),
                     Int32(BLAS.threads))
        withExtendedLifetime((quantsBuffer, scalesBuffer, weight)) {}
        return out
    }
}

extension Tensor {
    /// `self` (…, k) times `weight`ᵀ, weight (n, k) in float32: (…, n), as `matmul(weight, transposeOther: true)` but
    /// for a few rows (a decoding step): each output is 8 lanes of fused multiply-adds over k in order, summed in a fixed
    /// order, so a row's result is the same bits whatever the other rows, the thread count or the kernel. Inference only:
    /// it records no gradient. (Many rows, such as a prompt's, are faster through `matmul`'s GEMM.)
    public func matmul(rows weight: Tensor) -> Tensor {
        let k = shape[rank - 1]
        precondition(weight.rank == 2 && k == weight.shape[1], "matmul(rows:): inner sizes differ, \(shape) · \(weight.shape)ᵀ")
        precondition(!(GradMode.isEnabled && (requiresGrad || weight.requiresGrad)), "matmul(rows:) is for inference; it records no gradient")
        let m = count / max(k, 1), n = weight.shape[0]
        let out = Tensor(uninitialized: Array(shape.dropLast()) + [n])
        ak_f32_rows_matmul(weight.data, Int64(n), Int64(k), data, Int64(k), Int64(m), out.data, Int64(n), Int32(BLAS.threads))
        return out
    }
}
