// What the kernels share: the fixed order in which they reduce 8 float lanes to one value (the AVX2 reduction and its
// portable twin, which give the same bits), the choice of path, and the split of a product's outputs between threads.
#ifndef AK_INTERNAL_H
#define AK_INTERNAL_H

#include <stdint.h>

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

/// Whether the AVX2 paths run (the CPU has AVX2 and FMA, and no test forces the portable paths). In Q8.c.
int ak_uses_avx2(void);

/// How many parts a product of m rows, n outputs and inner size k is split into: up to `threads`, at least about 64K
/// multiply-adds each (below that a second thread costs more than it saves), and at least `unit` outputs each.
static inline int ak_parts(int64_t n, int64_t k, int64_t m, int threads, int64_t unit) {
    const int64_t useful = n * k * m / 65536, units = (n + unit - 1) / unit;
    int64_t parts = threads < 1 ? 1 : threads;
    if (useful < parts) parts = useful < 1 ? 1 : useful;
    if (units < parts) parts = units;
    return (int)parts;
}

/// Outputs [*j0, *j1) of part `part` of `parts`: equal shares on multiples of `unit` (parts do not share cache lines of
/// the output), the last one ending at n.
static inline void ak_part_range(int64_t n, int64_t unit, int part, int parts, int64_t *j0, int64_t *j1) {
    const int64_t units = (n + unit - 1) / unit;
    *j0 = units * part / parts * unit;
    *j1 = units * (part + 1) / parts * unit;
    if (*j1 > n) *j1 = n;
}

#endif
