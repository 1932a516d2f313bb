// Loads OpenBLAS at run time so that its kernel set can be chosen before the library's constructor runs.
#define _GNU_SOURCE
#include "CBLASRuntime.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h> // declarations only (from the COpenBLAS system-library target); nothing is linked

typedef __typeof__(&cblas_sgemm) sgemm_fn;
typedef __typeof__(&cblas_sgemv) sgemv_fn;
typedef char *(*str_fn)(void);
typedef int (*int_fn)(void);
typedef void (*set_int_fn)(int);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int load_status = -1;
static char load_error[512];
static sgemm_fn p_sgemm;
static sgemv_fn p_sgemv;
static str_fn p_corename, p_config;
static int_fn p_get_threads;
static set_int_fn p_set_threads;
static ak_core_source core_source = AK_CORE_AUTODETECTED;
static char requested[64];
static char library_path[1024];
static int thread_timeout_set_by_us;

int ak_cpu_has_avx2_fma(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

int ak_cpu_has_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512cd");
}

int ak_cpu_has_avx512_bf16(void) {
    __builtin_cpu_init();
    return ak_cpu_has_avx512() && __builtin_cpu_supports("avx512bf16");
}

static int already_loaded_cb(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    (void)data;
    return info->dlpi_name && strstr(info->dlpi_name, "libopenblas") != NULL;
}

static void do_load(void) {
    const char *env = getenv("OPENBLAS_CORETYPE");
    int preloaded = dl_iterate_phdr(already_loaded_cb, NULL);
    if (preloaded) {
        core_source = AK_CORE_PRELOADED;
        snprintf(requested, sizeof requested, "%s", env ? env : "");
    } else if (env && env[0]) {
        core_source = AK_CORE_FROM_ENVIRONMENT;
        snprintf(requested, sizeof requested, "%s", env);
    } else if (ak_cpu_has_avx512()) {
        // SkylakeX is OpenBLAS's AVX-512 kernel set; Cooperlake is the same SGEMM plus BF16 kernels. Later Intel
        // (Sapphire Rapids) and AMD (Zen 4) AVX-512 cores, which 0.3.21 may not know, run these kernels.
        core_source = AK_CORE_FROM_CPU_FEATURES;
        snprintf(requested, sizeof requested, "%s", ak_cpu_has_avx512_bf16() ? "Cooperlake" : "SkylakeX");
        setenv("OPENBLAS_CORETYPE", requested, 1);
    } else if (ak_cpu_has_avx2_fma()) {
        core_source = AK_CORE_FROM_CPU_FEATURES;
        snprintf(requested, sizeof requested, "Haswell");
        setenv("OPENBLAS_CORETYPE", requested, 1);
    } else {
        core_source = AK_CORE_AUTODETECTED;
        requested[0] = 0;
    }

    // Idle OpenBLAS workers spin (sched_yield) for 2^28 cycles by default after each call, taking the core that
    // AlignerKit's own kernels run on next; measured here, letting them sleep at once (the minimum, 4) trains the
    // small reference model about 10% faster. The user's value stands.
    thread_timeout_set_by_us = 0;
    if (!preloaded && !getenv("OPENBLAS_THREAD_TIMEOUT")) {
        setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1);
        thread_timeout_set_by_us = 1;
    }

    const char *candidates[] = {getenv("ALIGNERKIT_OPENBLAS"), "libopenblas.so.0", "libopenblas.so",
                                "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
                                "/usr/lib/aarch64-linux-gnu/libopenblas.so.0"};
    void *handle = NULL;
    char errors[384] = "";
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0] && !handle; i++) {
        if (!candidates[i] || !candidates[i][0]) continue;
        handle = dlopen(candidates[i], RTLD_NOW | RTLD_GLOBAL);
        if (!handle && errors[0] == 0) {
            const char *e = dlerror();
            snprintf(errors, sizeof errors, "%s", e ? e : "unknown dlopen error");
        } else if (handle) {
            snprintf(library_path, sizeof library_path, "%s", candidates[i]);
        }
    }
    if (!handle) {
        snprintf(load_error, sizeof load_error,
                 "cannot load OpenBLAS (%s); install it with `apt-get install libopenblas-dev` or set "
                 "ALIGNERKIT_OPENBLAS to the library's path",
                 errors);
        return;
    }
    struct link_map *map = NULL;
    if (dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map && map->l_name && map->l_name[0])
        snprintf(library_path, sizeof library_path, "%s", map->l_name);
    p_sgemm = (sgemm_fn)dlsym(handle, "cblas_sgemm");
    p_sgemv = (sgemv_fn)dlsym(handle, "cblas_sgemv");
    p_corename = (str_fn)dlsym(handle, "openblas_get_corename");
    p_config = (str_fn)dlsym(handle, "openblas_get_config");
    p_get_threads = (int_fn)dlsym(handle, "openblas_get_num_threads");
    p_set_threads = (set_int_fn)dlsym(handle, "openblas_set_num_threads");
    if (!p_sgemm) {
        snprintf(load_error, sizeof load_error, "%s has no cblas_sgemm symbol", library_path);
        return;
    }
    load_status = 0;
}

int ak_blas_load(char *err, size_t errlen) {
    pthread_once(&once, do_load);
    if (load_status != 0 && err && errlen) snprintf(err, errlen, "%s", load_error);
    return load_status;
}

const char *ak_blas_corename(void) { return (load_status == 0 && p_corename) ? p_corename() : "unloaded"; }
const char *ak_blas_config(void) { return (load_status == 0 && p_config) ? p_config() : "unloaded"; }
ak_core_source ak_blas_core_source(void) { return core_source; }
const char *ak_blas_coretype_requested(void) { return requested; }
const char *ak_blas_library_path(void) { return library_path; }
int ak_blas_thread_timeout_set(void) { return thread_timeout_set_by_us; }
int ak_blas_get_threads(void) { return (load_status == 0 && p_get_threads) ? p_get_threads() : 1; }
void ak_blas_set_threads(int threads) {
    if (load_status == 0 && p_set_threads) p_set_threads(threads);
}

void ak_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
              int ldb, float beta, float *C, int ldc) {
    p_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
            lda, B, ldb, beta, C, ldc);
}

int ak_sgemv(int trans, int M, int N, float alpha, const float *A, int lda, const float *X, int incX, float beta,
             float *Y, int incY) {
    if (!p_sgemv) return 0;
    p_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, M, N, alpha, A, lda, X, incX, beta, Y, incY);
    return 1;
}

#include <malloc.h>
int ak_malloc_trim(void) { return malloc_trim(0); }
int ak_malloc_fixed_mmap_threshold(int bytes) { return mallopt(M_MMAP_THRESHOLD, bytes); }
