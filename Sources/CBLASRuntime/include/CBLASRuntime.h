#ifndef ALIGNERKIT_CBLASRUNTIME_H
#define ALIGNERKIT_CBLASRUNTIME_H

#include <stddef.h>

/// How the OpenBLAS kernel set was chosen.
typedef enum {
    AK_CORE_FROM_ENVIRONMENT = 0, ///< OPENBLAS_CORETYPE was already set by the user: respected as it is.
    AK_CORE_FROM_CPU_FEATURES = 1, ///< AlignerKit set OPENBLAS_CORETYPE from CPUID features before loading.
    AK_CORE_AUTODETECTED = 2,      ///< No AVX2/AVX-512 found: OpenBLAS's own detection was left alone.
    AK_CORE_PRELOADED = 3          ///< OpenBLAS was already in the process when AlignerKit loaded it.
} ak_core_source;

/// Loads OpenBLAS (once; later calls return the first result). Before the library is loaded, sets
/// OPENBLAS_CORETYPE from the CPU's features unless the environment already sets it: Debian's OpenBLAS 0.3.21
/// misdetects recent CPUs and would run its SSE3 kernels. Returns 0 on success; on failure writes a message to err.
int ak_blas_load(char *err, size_t errlen);

/// The kernel set OpenBLAS runs (e.g. "SkylakeX"), or "unloaded".
const char *ak_blas_corename(void);
/// OpenBLAS's build configuration string.
const char *ak_blas_config(void);
/// How the kernel set was chosen.
ak_core_source ak_blas_core_source(void);
/// The value AlignerKit gave OPENBLAS_CORETYPE, or the user's value, or "" when none.
const char *ak_blas_coretype_requested(void);
/// The path OpenBLAS was loaded from.
const char *ak_blas_library_path(void);

/// 1 when AlignerKit set OPENBLAS_THREAD_TIMEOUT=4 (idle OpenBLAS threads sleep at once instead of spinning).
int ak_blas_thread_timeout_set(void);

int ak_blas_get_threads(void);
void ak_blas_set_threads(int threads);

/// Row-major single-precision GEMM: C = alpha * op(A) * op(B) + beta * C, op(A) is M x K, op(B) is K x N.
void ak_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
              int ldb, float beta, float *C, int ldc);

/// Row-major single-precision GEMV: y = alpha * op(A) * x + beta * y, A is M x N (op(A) is N x M when transposed).
/// Returns 0 (and does nothing) when the library has no cblas_sgemv.
int ak_sgemv(int trans, int M, int N, float alpha, const float *A, int lda, const float *X, int incX, float beta,
             float *Y, int incY);

/// CPU feature flags, for reports.
int ak_cpu_has_avx2_fma(void);
int ak_cpu_has_avx512(void);
int ak_cpu_has_avx512_bf16(void);

/// Returns freed heap memory to the operating system (glibc `malloc_trim(0)`); 1 when some was released.
int ak_malloc_trim(void);
/// Fixes glibc's threshold above which malloc maps memory of its own (unmapped again by free), turning off its dynamic
/// raising of that threshold; returns mallopt's result (1 on success).
int ak_malloc_fixed_mmap_threshold(int bytes);

#endif
