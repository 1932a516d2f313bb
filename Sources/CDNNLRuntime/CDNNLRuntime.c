// Loads oneDNN at run time (see CDNNLRuntime.h). Matrix products go through oneDNN's matmul primitive; primitives
// are kept per shape (a step repeats the same shapes), memory objects wrap the caller's buffers.
#define _GNU_SOURCE
#include "CDNNLRuntime.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#if __has_include(<oneapi/dnnl/dnnl.h>)
#include <oneapi/dnnl/dnnl.h>
#define AK_HAVE_DNNL 1
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int load_status = -1;
static char load_error[512];
static char version[64] = "";
static char isa[64] = "";

#ifdef AK_HAVE_DNNL
#define AK_FN(name) static __typeof__(&name) p_##name;
AK_FN(dnnl_engine_create)
AK_FN(dnnl_stream_create)
AK_FN(dnnl_stream_wait)
AK_FN(dnnl_memory_desc_init_by_strides)
AK_FN(dnnl_matmul_desc_init)
AK_FN(dnnl_primitive_desc_create)
AK_FN(dnnl_primitive_desc_destroy)
AK_FN(dnnl_primitive_desc_query)
AK_FN(dnnl_primitive_create)
AK_FN(dnnl_primitive_destroy)
AK_FN(dnnl_primitive_execute)
AK_FN(dnnl_primitive_attr_create)
AK_FN(dnnl_primitive_attr_destroy)
AK_FN(dnnl_primitive_attr_set_output_scales)
AK_FN(dnnl_primitive_attr_set_post_ops)
AK_FN(dnnl_post_ops_create)
AK_FN(dnnl_post_ops_destroy)
AK_FN(dnnl_post_ops_append_sum)
AK_FN(dnnl_memory_create)
AK_FN(dnnl_memory_destroy)
AK_FN(dnnl_version)
AK_FN(dnnl_get_effective_cpu_isa)
static void (*p_omp_set_num_threads)(int);
static dnnl_engine_t engine;
static dnnl_stream_t stream;

static const char *isa_name(dnnl_cpu_isa_t v) {
    switch (v) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    default: return "other";
    }
}

static void load(void) {
    void *h = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = dlopen("libdnnl.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(load_error, sizeof load_error, "oneDNN is not installed (libdnnl.so.2 not found; apt-get install libdnnl2)");
        load_status = 1;
        return;
    }
#define AK_LOAD(name)                                                                                                  \
    p_##name = (__typeof__(p_##name))dlsym(h, #name);                                                                  \
    if (!p_##name) {                                                                                                   \
        snprintf(load_error, sizeof load_error, "oneDNN lacks %s (version 2.x expected)", #name);                      \
        load_status = 2;                                                                                               \
        return;                                                                                                        \
    }
    AK_LOAD(dnnl_engine_create)
    AK_LOAD(dnnl_stream_create)
    AK_LOAD(dnnl_stream_wait)
    AK_LOAD(dnnl_memory_desc_init_by_strides)
    AK_LOAD(dnnl_matmul_desc_init)
    AK_LOAD(dnnl_primitive_desc_create)
    AK_LOAD(dnnl_primitive_desc_destroy)
    AK_LOAD(dnnl_primitive_desc_query)
    AK_LOAD(dnnl_primitive_create)
    AK_LOAD(dnnl_primitive_destroy)
    AK_LOAD(dnnl_primitive_execute)
    AK_LOAD(dnnl_primitive_attr_create)
    AK_LOAD(dnnl_primitive_attr_destroy)
    AK_LOAD(dnnl_primitive_attr_set_output_scales)
    AK_LOAD(dnnl_primitive_attr_set_post_ops)
    AK_LOAD(dnnl_post_ops_create)
    AK_LOAD(dnnl_post_ops_destroy)
    AK_LOAD(dnnl_post_ops_append_sum)
    AK_LOAD(dnnl_memory_create)
    AK_LOAD(dnnl_memory_destroy)
    AK_LOAD(dnnl_version)
    AK_LOAD(dnnl_get_effective_cpu_isa)
    p_omp_set_num_threads = (void (*)(int))dlsym(h, "omp_set_num_threads");
    const dnnl_version_t *v = p_dnnl_version();
    if (v->major != 2) {
        snprintf(load_error, sizeof load_error, "oneDNN %d.%d.%d found; AlignerKit uses the 2.x API", v->major, v->minor, v->patch);
        load_status = 3;
        return;
    }
    snprintf(version, sizeof version, "%d.%d.%d", v->major, v->minor, v->patch);
    snprintf(isa, sizeof isa, "%s", isa_name(p_dnnl_get_effective_cpu_isa()));
    if (p_dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success ||
        p_dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success) {
        snprintf(load_error, sizeof load_error, "oneDNN %s: cannot create a CPU engine and stream", version);
        load_status = 4;
        return;
    }
    load_status = 0;
}

/// One cached primitive per shape, transposition, data type and alpha/beta.
typedef struct {
    int used, bf16, ta, tb;
    int64_t m, n, k, lda, ldb, ldc;
    float alpha, beta;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    dnnl_memory_desc_t a, b, c;
    char impl[64];
} entry;
#define AK_CACHE 256
static entry cache[AK_CACHE];
static int next_slot;

static int make(entry *e, char *err, size_t errlen) {
    dnnl_data_type_t dt = e->bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_dims_t ad = {e->m, e->k}, as = {e->ta ? 1 : e->lda, e->ta ? e->lda : 1};
    dnnl_dims_t bd = {e->k, e->n}, bs = {e->tb ? 1 : e->ldb, e->tb ? e->ldb : 1};
    dnnl_dims_t cd = {e->m, e->n}, cs = {e->ldc, 1};
    if (p_dnnl_memory_desc_init_by_strides(&e->a, 2, ad, dt, as) != dnnl_success ||
        p_dnnl_memory_desc_init_by_strides(&e->b, 2, bd, dt, bs) != dnnl_success ||
        p_dnnl_memory_desc_init_by_strides(&e->c, 2, cd, dnnl_f32, cs) != dnnl_success) {
        snprintf(err, errlen, "oneDNN: cannot describe a %lldx%lldx%lld product", (long long)e->m, (long long)e->n, (long long)e->k);
        return 1;
    }
    dnnl_matmul_desc_t md;
    if (p_dnnl_matmul_desc_init(&md, &e->a, &e->b, NULL, &e->c) != dnnl_success) {
        snprintf(err, errlen, "oneDNN: matmul descriptor refused");
        return 1;
    }
    dnnl_primitive_attr_t attr;
    p_dnnl_primitive_attr_create(&attr);
    if (e->alpha != 1) p_dnnl_primitive_attr_set_output_scales(attr, 1, 0, &e->alpha);
    dnnl_post_ops_t po = NULL;
    if (e->beta != 0) {
        p_dnnl_post_ops_create(&po);
        p_dnnl_post_ops_append_sum(po, e->beta);
        p_dnnl_primitive_attr_set_post_ops(attr, po);
    }
    dnnl_status_t s = p_dnnl_primitive_desc_create(&e->pd, &md, attr, engine, NULL);
    p_dnnl_primitive_attr_destroy(attr);
    if (po) p_dnnl_post_ops_destroy(po);
    if (s != dnnl_success) {
        snprintf(err, errlen, "oneDNN: no %s matmul implementation for %lldx%lldx%lld on this CPU (%s)", e->bf16 ? "bf16" : "f32",
                 (long long)e->m, (long long)e->n, (long long)e->k, isa);
        return 1;
    }
    if (p_dnnl_primitive_create(&e->prim, e->pd) != dnnl_success) {
        p_dnnl_primitive_desc_destroy(e->pd);
        snprintf(err, errlen, "oneDNN: cannot create the matmul primitive");
        return 1;
    }
    const char *name = NULL;
    if (p_dnnl_primitive_desc_query(e->pd, dnnl_query_impl_info_str, 0, &name) == dnnl_success && name)
        snprintf(e->impl, sizeof e->impl, "%s", name);
    else
        snprintf(e->impl, sizeof e->impl, "?");
    e->used = 1;
    return 0;
}
#endif

int ak_dnnl_load(char *err, size_t errlen) {
#ifdef AK_HAVE_DNNL
    pthread_once(&once, load);
    if (load_status != 0 && err) snprintf(err, errlen, "%s", load_error);
    return load_status;
#else
    if (err) snprintf(err, errlen, "built without oneDNN's headers (apt-get install libdnnl-dev, then rebuild)");
    return 5;
#endif
}

const char *ak_dnnl_version(void) { return version; }
const char *ak_dnnl_isa(void) { return isa; }

void ak_dnnl_set_threads(int threads) {
#ifdef AK_HAVE_DNNL
    if (ak_dnnl_load(NULL, 0) == 0 && p_omp_set_num_threads) p_omp_set_num_threads(threads);
#else
    (void)threads;
#endif
}

int ak_dnnl_gemm(int bf16, int transA, int transB, int64_t m, int64_t n, int64_t k, float alpha, const void *A, int64_t lda,
                 const void *B, int64_t ldb, float beta, float *C, int64_t ldc, char *impl, size_t impllen, char *err,
                 size_t errlen) {
#ifdef AK_HAVE_DNNL
    if (ak_dnnl_load(err, errlen) != 0) return 1;
    pthread_mutex_lock(&lock);
    entry *e = NULL;
    for (int i = 0; i < AK_CACHE; i++) {
        entry *c = &cache[i];
        if (c->used && c->bf16 == bf16 && c->ta == transA && c->tb == transB && c->m == m && c->n == n && c->k == k &&
            c->lda == lda && c->ldb == ldb && c->ldc == ldc && c->alpha == alpha && c->beta == beta) {
            e = c;
            break;
        }
    }
    if (!e) {
        e = &cache[next_slot];
        next_slot = (next_slot + 1) % AK_CACHE;
        if (e->used) {
            p_dnnl_primitive_destroy(e->prim);
            p_dnnl_primitive_desc_destroy(e->pd);
            e->used = 0;
        }
        *e = (entry){.bf16 = bf16, .ta = transA, .tb = transB, .m = m, .n = n, .k = k, .lda = lda, .ldb = ldb, .ldc = ldc,
                     .alpha = alpha, .beta = beta};
        if (make(e, err, errlen) != 0) {
            e->used = 0;
            pthread_mutex_unlock(&lock);
            return 1;
        }
    }
    dnnl_memory_t ma, mb, mc;
    p_dnnl_memory_create(&ma, &e->a, engine, (void *)A);
    p_dnnl_memory_create(&mb, &e->b, engine, (void *)B);
    p_dnnl_memory_create(&mc, &e->c, engine, C);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}};
    dnnl_status_t s = p_dnnl_primitive_execute(e->prim, stream, 3, args);
    if (s == dnnl_success) s = p_dnnl_stream_wait(stream);
    p_dnnl_memory_destroy(ma);
    p_dnnl_memory_destroy(mb);
    p_dnnl_memory_destroy(mc);
    if (impl) snprintf(impl, impllen, "%s", e->impl);
    pthread_mutex_unlock(&lock);
    if (s != dnnl_success) {
        snprintf(err, errlen, "oneDNN: matmul failed (status %d)", (int)s);
        return 1;
    }
    return 0;
#else
    (void)bf16; (void)transA; (void)transB; (void)m; (void)n; (void)k; (void)alpha; (void)A; (void)lda; (void)B; (void)ldb;
    (void)beta; (void)C; (void)ldc; (void)impl; (void)impllen;
    return ak_dnnl_load(err, errlen);
#endif
}
