// Q8_0 matrix products for generation: llama.cpp's 8-bit block format (32 int8 quants and one scale per block), both
// operands quantised, products summed exactly in int32 within a block and in float across blocks.
#include "CKernels.h"
#include "Internal.h"

#include <math.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define QK AK_Q8_BLOCK


#if defined(__x86_64__)
// Activations, one row: the same values as the portable path below (max of |x|, the same scalar scale and inverse,
// products rounded half to even by the conversion under the default rounding mode, |q| ≤ 127 by construction).
__attribute__((target("avx2,fma"))) static void quantize_row_avx2(const float *v, int64_t nb, int8_t *out, float *d) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < nb; b++, v += QK, out += QK) {
        __m256 x0 = _mm256_loadu_ps(v), x1 = _mm256_loadu_ps(v + 8), x2 = _mm256_loadu_ps(v + 16), x3 = _mm256_loadu_ps(v + 24);
        __m256 mx = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, x0), _mm256_andnot_ps(sign, x1)),
                                  _mm256_max_ps(_mm256_andnot_ps(sign, x2), _mm256_andnot_ps(sign, x3)));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float scale = amax / 127.0f, inv = scale != 0 ? 1.0f / scale : 0.0f;
        d[b] = scale;
        const __m256 iv = _mm256_set1_ps(inv);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(x0, iv)), i1 = _mm256_cvtps_epi32(_mm256_mul_ps(x1, iv));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(x2, iv)), i3 = _mm256_cvtps_epi32(_mm256_mul_ps(x3, iv));
        // Packing interleaves the 128-bit lanes; the permutation puts the 32 values back in order.
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)out, p);
    }
}
#endif

void ak_q8_quantize(const float *x, int64_t m, int64_t k, int64_t ldx, int8_t *q, float *d, int half_scales) {
    const int64_t nb = k / QK;
#if defined(__x86_64__)
    if (!half_scales && ak_uses_avx2()) {
        for (int64_t i = 0; i < m; i++) quantize_row_avx2(x + i * ldx, nb, q + i * k, d + i * nb);
        return;
    }
#endif
    for (int64_t i = 0; i < m; i++) {
        const float *row = x + i * ldx;
        for (int64_t b = 0; b < nb; b++) {
            const float *v = row + b * QK;
            float amax = 0;
            for (int j = 0; j < QK; j++) { float a = fabsf(v[j]); if (a > amax) amax = a; }
            const float scale = amax / 127.0f, inv = scale != 0 ? 1.0f / scale : 0.0f;
            int8_t *out = q + i * k + b * QK;
            if (half_scales) {
                // Weights: exactly ggml's quantize_row_q8_0_ref (and GGUFWriter): roundf, scale stored as half.
                d[i * nb + b] = (float)(_Float16)scale;
                for (int j = 0; j < QK; j++) {
                    float r = roundf(v[j] * inv);
                    out[j] = (int8_t)(r > 127 ? 127 : (r < -128 ? -128 : r));
                }
            } else {
                // Activations: half to even (as ggml's AVX2 quantize_row_q8_0), scale kept in float.
                d[i * nb + b] = scale;
                for (int j = 0; j < QK; j++) {
                    float r = nearbyintf(v[j] * inv);
                    out[j] = (int8_t)(r > 127 ? 127 : (r < -127 ? -127 : r));
                }
            }
        }
    }
}

// The portable path: the same operations as the AVX2 path lane by lane (lane l of a block sums quants 4l..4l+3 in
// int32, then one fused multiply-add per lane and block), so both give the same bits.
static void q8_rows_portable(const int8_t *wq, const float *wd, int64_t j0, int64_t j1, int64_t k,
                             const int8_t *xq, const float *xd, int64_t m, float *y, int64_t ldy) {
    const int64_t nb = k / QK;
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = j0; j < j1; j++) {
            float acc[8] = {0};
            const int8_t *w = wq + j * k, *x = xq + i * k;
            for (int64_t b = 0; b < nb; b++) {
                const float s = wd[j * nb + b] * xd[i * nb + b];
                for (int l = 0; l < 8; l++) {
                    int32_t dot = 0;
                    for (int e = 0; e < 4; e++) dot += (int32_t)w[b * QK + 4 * l + e] * (int32_t)x[b * QK + 4 * l + e];
                    acc[l] = fmaf((float)dot, s, acc[l]);
                }
            }
            y[i * ldy + j] = ak_sum8(acc);
        }
    }
}

#if defined(__x86_64__)
// Rows i0..<i0+R (R ≤ 4) against weight rows j0..<j1: each weight block is loaded once for the R rows. DOT(aw, sx)
// gives 8 int32 lanes, lane l the sum of the products 4l..4l+3 of |w| and x·sign(w): vpmaddubsw + vpmaddwd on AVX2,
// one vpdpbusd with VNNI. The sums are exact integers either way (|q| ≤ 127 for activations, so no int16 saturation),
// so both paths give the same bits.
#define AK_Q8_ROWS(NAME, TARGET, DOT, R)                                                                           \
    __attribute__((target(TARGET))) static void NAME##_##R(                                                        \
        const int8_t *wq, const float *wd, int64_t j0, int64_t j1, int64_t k, const int8_t *xq, const float *xd,   \
        int64_t i0, float *y, int64_t ldy) {                                                                       \
        const int64_t nb = k / QK;                                                                                 \
        const __m256i ones = _mm256_set1_epi16(1);                                                                 \
        (void)ones;                                                                                                \
        for (int64_t j = j0; j < j1; j++) {                                                                        \
            __m256 acc[R];                                                                                         \
            for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();                                              \
            const int8_t *w = wq + j * k;                                                                          \
            const float *dw = wd + j * nb;                                                                         \
            for (int64_t b = 0; b < nb; b++) {                                                                     \
                const __m256i wv = _mm256_loadu_si256((const __m256i *)(w + b * QK));                              \
                const __m256i aw = _mm256_sign_epi8(wv, wv);                                                       \
                for (int r = 0; r < R; r++) {                                                                      \
                    const __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + (i0 + r) * k + b * QK));          \
                    const __m256i sx = _mm256_sign_epi8(xv, wv);                                                   \
                    const __m256i p = DOT;                                                                         \
                    const __m256 s = _mm256_set1_ps(dw[b] * xd[(i0 + r) * nb + b]);                                \
                    acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), s, acc[r]);                                    \
                }                                                                                                  \
            }                                                                                                      \
            for (int r = 0; r < R; r++) y[(i0 + r) * ldy + j] = ak_hsum8(acc[r]);                                  \
        }                                                                                                          \
    }

// One kernel set: 1 to 4 rows at a time, weight rows in tiles that stay in cache while the row groups pass over them.
#define AK_Q8_KERNEL(NAME, TARGET, DOT)                                                                            \
    AK_Q8_ROWS(NAME, TARGET, DOT, 1) AK_Q8_ROWS(NAME, TARGET, DOT, 2)                                              \
    AK_Q8_ROWS(NAME, TARGET, DOT, 3) AK_Q8_ROWS(NAME, TARGET, DOT, 4)                                              \
    static void NAME(const int8_t *wq, const float *wd, int64_t j0, int64_t j1, int64_t k, const int8_t *xq,       \
                     const float *xd, int64_t m, float *y, int64_t ldy) {                                          \
        const int64_t tile = 32;                                                                                   \
        for (int64_t jt = j0; jt < j1; jt += tile) {                                                               \
            const int64_t je = jt + tile < j1 ? jt + tile : j1;                                                    \
            int64_t i = 0;                                                                                         \
            for (; i + 4 <= m; i += 4) NAME##_4(wq, wd, jt, je, k, xq, xd, i, y, ldy);                             \
            switch (m - i) {                                                                                       \
            case 3: NAME##_3(wq, wd, jt, je, k, xq, xd, i, y, ldy); break;                                         \
            case 2: NAME##_2(wq, wd, jt, je, k, xq, xd, i, y, ldy); break;                                         \
            case 1: NAME##_1(wq, wd, jt, je, k, xq, xd, i, y, ldy); break;                                         \
            default: break;                                                                                        \
            }                                                                                                      \
        }                                                                                                          \
    }

AK_Q8_KERNEL(q8_rows_avx2, "avx2,fma", _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), ones))
AK_Q8_KERNEL(q8_rows_vnni, "avx2,fma,avx512vnni,avx512vl", _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, sx))
#endif

typedef void (*q8_rows_fn)(const int8_t *, const float *, int64_t, int64_t, int64_t, const int8_t *, const float *, int64_t,
                           float *, int64_t);

static int force_portable;  // set by tests (ak_q8_set_portable)

static int force_no_vnni;

void ak_q8_set_portable(int on) { force_portable = on != 0; }

void ak_q8_set_no_vnni(int on) { force_no_vnni = on != 0; }

static int has_avx2(void) {
#if defined(__x86_64__)
    static int avx2 = -1;
    if (avx2 < 0) avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return avx2;
#else
    return 0;
#endif
}

static int has_vnni(void) {
#if defined(__x86_64__)
    static int vnni = -1;
    if (vnni < 0) vnni = has_avx2() && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl");
    return vnni && !force_no_vnni;
#else
    return 0;
#endif
}

const char *ak_q8_path(void) { return !ak_uses_avx2() ? "portable" : has_vnni() ? "avx2+vnni" : "avx2"; }

int ak_uses_avx2(void) { return has_avx2() && !force_portable; }

struct q8_job {
    q8_rows_fn rows;
    const int8_t *wq, *xq;
    const float *wd, *xd;
    int64_t n, k, m, ldy;
    float *y;
};

static void q8_part(void *ctx, int part, int parts) {
    const struct q8_job *job = ctx;
    int64_t j0, j1;
    ak_part_range(job->n, 8, part, parts, &j0, &j1);
    if (j0 < j1) job->rows(job->wq, job->wd, j0, j1, job->k, job->xq, job->xd, job->m, job->y, job->ldy);
}

void ak_q8_matmul(const int8_t *wq, const float *wd, int64_t n, int64_t k, const int8_t *xq, const float *xd, int64_t m,
                  float *y, int64_t ldy, int threads) {
    if (n <= 0 || m <= 0) return;
    struct q8_job job = {q8_rows_portable, wq, xq, wd, xd, n, k, m, ldy, y};
#if defined(__x86_64__)
    if (ak_uses_avx2()) job.rows = has_vnni() ? q8_rows_vnni : q8_rows_avx2;
#endif
    const int parts = ak_parts(n, k, m, threads, 8);
    ak_pool_run(parts, q8_part, &job);
}
