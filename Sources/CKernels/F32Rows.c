// Float32 products of a few rows with a weight matrix, y = x · wᵀ, for decoding: the weights stream through once
// for up to four rows at a time, on the shared pool. Each output is computed by the same operations whatever the
// number of rows, the thread count or the kernel (AVX2 or portable): 8 lanes of fused multiply-adds over the inner
// axis in order, summed in a fixed order, then the inner axis's tail (k mod 8) added in order.
#include "CKernels.h"
#include "Internal.h"

#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static void rows_portable(const float *w, int64_t j0, int64_t j1, int64_t k, const float *x, int64_t ldx, int64_t m,
                          float *y, int64_t ldy) {
    const int64_t k8 = k / 8 * 8;
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = j0; j < j1; j++) {
            float acc[8] = {0};
            const float *wr = w + j * k, *xr = x + i * ldx;
            for (int64_t e = 0; e < k8; e += 8)
                for (int l = 0; l < 8; l++) acc[l] = fmaf(wr[e + l], xr[e + l], acc[l]);
            float s = ak_sum8(acc);
            for (int64_t e = k8; e < k; e++) s = fmaf(wr[e], xr[e], s);
            y[i * ldy + j] = s;
        }
    }
}

#if defined(__x86_64__)
// R rows (i0..) against J weight rows (j..): R·J accumulators, each weight load shared by the R rows.
#define AK_F32_TILE(R, J)                                                                                          \
    __attribute__((target("avx2,fma"))) static inline void tile_##R##_##J(                                         \
        const float *w, int64_t j, int64_t k, const float *x, int64_t ldx, int64_t i0, float *y, int64_t ldy) {    \
        const int64_t k8 = k / 8 * 8;                                                                              \
        __m256 acc[R][J];                                                                                          \
        for (int r = 0; r < R; r++)                                                                                \
            for (int c = 0; c < J; c++) acc[r][c] = _mm256_setzero_ps();                                           \
        for (int64_t e = 0; e < k8; e += 8) {                                                                      \
            __m256 wv[J];                                                                                          \
            for (int c = 0; c < J; c++) wv[c] = _mm256_loadu_ps(w + (j + c) * k + e);                              \
            for (int r = 0; r < R; r++) {                                                                          \
                const __m256 xv = _mm256_loadu_ps(x + (i0 + r) * ldx + e);                                         \
                for (int c = 0; c < J; c++) acc[r][c] = _mm256_fmadd_ps(wv[c], xv, acc[r][c]);                     \
            }                                                                                                      \
        }                                                                                                          \
        for (int r = 0; r < R; r++)                                                                                \
            for (int c = 0; c < J; c++) {                                                                          \
                float s = ak_hsum8(acc[r][c]);                                                                     \
                const float *wr = w + (j + c) * k, *xr = x + (i0 + r) * ldx;                                       \
                for (int64_t e = k8; e < k; e++) s = fmaf(wr[e], xr[e], s);                                        \
                y[(i0 + r) * ldy + j + c] = s;                                                                     \
            }                                                                                                      \
    }
AK_F32_TILE(1, 1) AK_F32_TILE(2, 1) AK_F32_TILE(3, 1) AK_F32_TILE(4, 1) AK_F32_TILE(4, 3)

// One weight row at a time for up to three rows: a single sequential stream through memory, which the hardware prefetcher follows (four
// interleaved rows ran at a third of the bandwidth, measured on AMD EPYC).
__attribute__((target("avx2,fma"))) static void rows_avx2(const float *w, int64_t j0, int64_t j1, int64_t k, const float *x,
                                                          int64_t ldx, int64_t m, float *y, int64_t ldy) {
    const int64_t tile = 16;  // weight rows kept in cache while the row groups pass over them
    for (int64_t jt = j0; jt < j1; jt += tile) {
        const int64_t je = jt + tile < j1 ? jt + tile : j1;
        for (int64_t i = 0; i < m; i += 4) {
            switch (m - i < 4 ? m - i : 4) {
            case 1: for (int64_t j = jt; j < je; j++) tile_1_1(w, j, k, x, ldx, i, y, ldy); break;
            case 2: for (int64_t j = jt; j < je; j++) tile_2_1(w, j, k, x, ldx, i, y, ldy); break;
            case 3: for (int64_t j = jt; j < je; j++) tile_3_1(w, j, k, x, ldx, i, y, ldy); break;
            default: {
                // Four rows are compute-bound: three weight rows at once (twelve independent accumulators).
                int64_t j = jt;
                for (; j + 3 <= je; j += 3) tile_4_3(w, j, k, x, ldx, i, y, ldy);
                for (; j < je; j++) tile_4_1(w, j, k, x, ldx, i, y, ldy);
                break;
            }
            }
        }
    }
}
#endif

struct f32_job {
    int avx2;
    const float *w, *x;
    int64_t n, k, ldx, m, ldy;
    float *y;
};

static void f32_part(void *ctx, int part, int parts) {
    const struct f32_job *job = ctx;
    int64_t j0, j1;
    ak_part_range(job->n, 16, part, parts, &j0, &j1);  // multiples of 16 outputs: whole cache lines of y
    if (j0 >= j1) return;
#if defined(__x86_64__)
    if (job->avx2) { rows_avx2(job->w, j0, j1, job->k, job->x, job->ldx, job->m, job->y, job->ldy); return; }
#endif
    rows_portable(job->w, j0, j1, job->k, job->x, job->ldx, job->m, job->y, job->ldy);
}

void ak_f32_rows_matmul(const float *w, int64_t n, int64_t k, const float *x, int64_t ldx, int64_t m, float *y, int64_t ldy,
                        int threads) {
    if (n <= 0 || m <= 0) return;
    struct f32_job job = {ak_uses_avx2(), w, x, n, k, ldx, m, ldy, y};
    ak_pool_run(ak_parts(n, k, m, threads, 16), f32_part, &job);
}
