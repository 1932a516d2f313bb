extension Tensor {
    /// Matrix product `op(self) · op(other)` through `cblas_sgemm`, where `op` transposes the last two axes when asked.
    ///
    /// - `self` (…, m, k) or (…, k, m) when `transposeSelf`; `other` (k, n) or (n, k) when `transposeOther`.
    /// - `other` of rank 2 is shared by every leading index of `self` (a linear layer: `x.matmul(W, transposeOther:
    ///   true)` with W stored (out, in)); when `self` is not transposed this is one GEMM over all rows.
    /// - Otherwise both have the same leading (batch) axes and each batch entry is one GEMM.
    /// Result: (…, m, n).
    public func matmul(_ other: Tensor, transposeSelf: Bool = false, transposeOther: Bool = false) -> Tensor {
        let a = self, b = other
        precondition(a.rank >= 2 && b.rank >= 2, "matmul needs rank >= 2, got \(a.shape) and \(b.shape)")
        let aRows = a.shape[a.rank - 2], aCols = a.shape[a.rank - 1]
        let bRows = b.shape[b.rank - 2], bCols = b.shape[b.rank - 1]
        let m = transposeSelf ? aCols : aRows
        let k = transposeSelf ? aRows : aCols
        let kb = transposeOther ? bCols : bRows
        let n = transposeOther ? bRows : bCols
        precondition(k == kb, "matmul: inner sizes differ, \(a.shape)\(transposeSelf ? "ᵀ" : "") · \(b.shape)\(transposeOther ? "ᵀ" : "")")
        let batchShape = Array(a.shape.dropLast(2))
        let batch = batchShape.reduce(1, *)
        let sharedB = b.rank == 2
        if !sharedB {
            precondition(Array(b.shape.dropLast(2)) == batchShape, "matmul: batch axes \(a.shape) and \(b.shape) differ")
        }
        let out = Tensor(uninitialized: batchShape + [m, n])
        let aStride = aRows * aCols, bStride = sharedB ? 0 : bRows * bCols, cStride = m * n

        if sharedB && !transposeSelf {
            // (batch·m, k) · op(B): one GEMM.
            BLAS.sgemm(
                transA: false, transB: transposeOther, m: batch * m, n: n, k: k, a: a.data, lda: aCols, b: b.data,
                ldb: bCols, beta: 0, c: out.data, ldc: n)
        } else {
            for i in 0..<batch {
                BLAS.sgemm(
                    transA: transposeSelf, transB: transposeOther, m: m, n: n, k: k, a: a.data + i * aStride,
                    lda: aCols, b: b.data + i * bStride, ldb: bCols, beta: 0, c: out.data + i * cStride, ldc: n)
            }
        }

        return out.record("matmul", [a, b]) { out in
            let g = out.grad!.data
            if a.requiresGrad {
                let (da, fresh) = a.gradBuffer()
                let beta: Float = fresh ? 0 : 1
                if sharedB && !transposeSelf {
                    // dA = dC · op(B)ᵀ
                    BLAS.sgemm(
                        transA: false, transB: !transposeOther, m: batch * m, n: k, k: n, a: g, lda: n, b: b.data,
                        ldb: bCols, beta: beta, c: da, ldc: aCols)
                } else {
                    for i in 0..<batch {
                        let gi = g + i * cStride, bi = b.data + i * bStride, di = da + i * aStride
                        if !transposeSelf {
                            BLAS.sgemm(
                                transA: false, transB: !transposeOther, m: m, n: k, k: n, a: gi, lda: n, b: bi,
                                ldb: bCols, beta: beta, c: di, ldc: aCols)
                        } else {
                            // A is (k, m): dA = op(B) · dCᵀ
                            BLAS.sgemm(
                                transA: transposeOther, transB: true, m: k, n: m, k: n, a: bi, lda: bCols, b: gi,
                                ldb: n, beta: beta, c: di, ldc: aCols)
                        }
                    }
                }
            }
            if b.requiresGrad {
                let (db, fresh) = b.gradBuffer()
                if sharedB && !transposeSelf {
                    let beta: Float = fresh ? 0 : 1
                    if !transposeOther {
                        // dB (k, n) = Aᵀ · dC over all rows
                        BLAS.sgemm(
                            transA: true, transB: false, m: k, n: n, k: batch * m, a: a.data, lda: aCols, b: g, ldb: n,
                            beta: beta, c: db, ldc: bCols)
                    } else {
                        // dB (n, k) = dCᵀ · A
                        BLAS.sgemm(
                            transA: true, transB: false, m: n, n: k, k: batch * m, a: g, lda: n, b: a.data, ldb: aCols,
                            beta: beta, c: db, ldc: bCols)
                    }
                } else {
                    for i in 0..<batch {
                        // A shared B accumulates over the batch; the first GEMM may overwrite a fresh buffer.
                        let beta: Float = (fresh && (i == 0 || !sharedB)) ? 0 : 1
                        let gi = g + i * cStride, ai = a.data + i * aStride, di = db + i * bStride
                        if !transposeOther {
                            // dB = op(A)ᵀ · dC
                            BLAS.sgemm(
                                transA: !transposeSelf, transB: false, m: k, n: n, k: m, a: ai, lda: aCols, b: gi,
                                ldb: n, beta: beta, c: di, ldc: bCols)
                        } else {
                            // dB = dCᵀ · op(A)
                            BLAS.sgemm(
                                transA: true, transB: transposeSelf, m: n, n: k, k: m, a: gi, lda: n, b: ai,
                                ldb: aCols, beta: beta, c: di, ldc: bCols)
                        }
                    }
                }
            }
        }
    }
}
