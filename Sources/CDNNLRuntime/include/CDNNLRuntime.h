// Loads oneDNN (libdnnl.so.2, Debian's libdnnl2) at run time for bfloat16 and float32 matrix products, so that
// AlignerKit builds and runs without it. Built against oneDNN's headers when libdnnl-dev is installed; without them
// every call reports oneDNN as unavailable.
#ifndef CDNNL_RUNTIME_H
#define CDNNL_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

/// Loads oneDNN once; 0 on success, else non-zero with a message in `err`.
int ak_dnnl_load(char *err, size_t errlen);
/// "2.6.3" (after a successful load).
const char *ak_dnnl_version(void);
/// The most capable instruction set oneDNN dispatches to on this CPU ("avx2", "avx512_core_bf16", "avx512_core_amx").
const char *ak_dnnl_isa(void);
/// Threads oneDNN's OpenMP runtime uses.
void ak_dnnl_set_threads(int threads);

/// Row-major C (m x n, float32) = alpha * op(A) * op(B) + beta * C, where op transposes when asked; A and B are
/// float32 (`bf16` 0) or bfloat16 (`bf16` 1, stored as uint16) with float32 accumulation. Returns 0 on success; on
/// failure non-zero with a message in `err`. `impl`, when not NULL, receives the implementation oneDNN chose.
int ak_dnnl_gemm(int bf16, int transA, int transB, int64_t m, int64_t n, int64_t k, float alpha, const void *A, int64_t lda,
                 const void *B, int64_t ldb, float beta, float *C, int64_t ldc, char *impl, size_t impllen, char *err,
                 size_t errlen);

#endif
