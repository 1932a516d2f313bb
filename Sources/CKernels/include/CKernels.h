// Hand-written CPU kernels for generation that no maintained library provides: Q8_0 (llama.cpp's 8-bit block format)
// matrix products with the dequantisation fused in, and the small persistent thread pool that runs them without a
// dispatch per product. AVX2 paths are chosen at run time; every function has a portable C path with the same results.
#ifndef CKERNELS_H
#define CKERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Q8_0 block size: 32 values share one scale.
#define AK_Q8_BLOCK 32

/// Quantises `m` rows of `k` floats (row stride `ldx`; k a multiple of 32) to Q8_0 as llama.cpp's reference
/// `quantize_row_q8_0` does: per block of 32, d = max|x| / 127, q = round(x / d) (half away from zero).
/// q: (m, k) int8; d: (m, k/32) float. With `half_scales` != 0, d is rounded to IEEE half precision first (as stored
/// in GGUF files; weights), otherwise kept in float (activations).
void ak_q8_quantize(const float *x, int64_t m, int64_t k, int64_t ldx, int8_t *q, float *d, int half_scales);

/// y (m, n) = x (m, k) · wᵀ, with w (n, k) and x both in Q8_0 (quants and per-block scales as `ak_q8_quantize`
/// writes them), accumulated per block in int32 and across blocks in float. Each output is computed by the same
/// sequence of operations whatever m is (a row's results do not depend on the other rows). Runs on up to `threads`
/// threads of the shared pool (outputs split between them). y has row stride `ldy`.
void ak_q8_matmul(const int8_t *wq, const float *wd, int64_t n, int64_t k,
                  const int8_t *xq, const float *xd, int64_t m,
                  float *y, int64_t ldy, int threads);

/// y (m, n) = x (m, k) · wᵀ in float32, w (n, k) row-major, x with row stride ldx, y with ldy: for a few rows (a
/// decoding step), streaming the weights once per four rows, on up to `threads` threads of the shared pool. Each output
/// is 8 lanes of fused multiply-adds over k in order, summed in a fixed order, plus the tail (k mod 8) in order: the
/// same bits whatever m, the thread count or the kernel.
void ak_f32_rows_matmul(const float *w, int64_t n, int64_t k, const float *x, int64_t ldx, int64_t m, float *y, int64_t ldy,
                        int threads);

/// Which Q8_0 dot-product path runs: "avx2+vnni" (AVX512-VNNI with 256-bit registers), "avx2" (AVX2 and FMA) or
/// "portable".
const char *ak_q8_path(void);

/// With on != 0, the portable paths (Q8_0 and float32 rows) run even where AVX2 is available (tests compare the two;
/// both give the same bits).
void ak_q8_set_portable(int on);

/// With on != 0, the AVX2 Q8_0 path runs even where AVX512-VNNI is available (tests compare the two: the same bits).
void ak_q8_set_no_vnni(int on);

/// Runs fn(ctx, i, parts) for i in 0..<parts, part 0 on the calling thread and the others on the pool's workers,
/// and returns when all are done. Workers spin briefly between jobs (then sleep), so back-to-back small jobs do not pay
/// a thread wake-up each. When the pool is busy (a call from another thread or from inside a job), everything runs on
/// the calling thread. parts is capped at 64.
void ak_pool_run(int parts, void (*fn)(void *ctx, int part, int parts), void *ctx);

#ifdef __cplusplus
}
#endif

#endif
