// The fixed order in which the kernels reduce 8 float lanes to one value: the AVX2 reduction and its portable twin,
// which give the same bits.
#ifndef AK_LANES_H
#define AK_LANES_H

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/// ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)).
static inline float ak_sum8(const float *l) {
    return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}

#if defined(__x86_64__)
/// The same sum of the 8 lanes of v.
__attribute__((target("avx2,fma"))) static inline float ak_hsum8(__m256 v) {
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));  // l0+l4, l1+l5, l2+l6, l3+l7
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));                                      // (l0+l4)+(l2+l6), (l1+l5)+(l3+l7)
    return _mm_cvtss_f32(_mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1)));
}
#endif

#endif
