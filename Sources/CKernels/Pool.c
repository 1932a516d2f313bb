// A persistent pool of worker threads for back-to-back small jobs (a decoding step runs about 200 matrix products of
// a millisecond or less; waking threads through the kernel for each costs tens of microseconds). Parts of a job are
// claimed from a shared counter by whoever comes first, the caller included: a worker that is descheduled (a loaded
// machine) delays nothing, its parts are taken by the caller. Workers spin on the job counter for a short while after
// each job, yielding the core, then sleep on a condition variable.
#include "CKernels.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define AK_PAUSE() _mm_pause()
#else
#define AK_PAUSE() ((void)0)
#endif

#define AK_POOL_MAX 64
/// Spins (with pause) before yielding, and yields before sleeping: about a third of a millisecond in all.
#define AK_SPIN_PAUSES 2048
#define AK_SPIN_YIELDS 256

// The job word: job number (32 bits) | parts (16 bits) | next part to claim (16 bits).
#define JOB_OF(s) ((unsigned)((s) >> 32))
#define PARTS_OF(s) ((int)(((s) >> 16) & 0xffff))
#define NEXT_OF(s) ((int)((s) & 0xffff))

static struct {
    pthread_mutex_t lock;  // guards starting workers and the sleep/wake handshake
    pthread_cond_t wake;
    int workers;            // threads started so far (changed only by the caller holding `busy`)
    _Atomic uint64_t state; // the job word
    atomic_int done;        // parts of the current job finished
    atomic_int sleeping;    // workers waiting on `wake`
    atomic_flag busy;       // a job is running (the pool is not re-entrant)
    void (*fn)(void *, int, int);  // the current job, stable until all its parts are done
    void *ctx;
    unsigned start_job[AK_POOL_MAX];  // the job number when each worker was created (its first job comes after)
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, ATOMIC_FLAG_INIT, 0, 0, {0}};

/// Claims the next unclaimed part of job `job`; -1 when it has none left (or a newer job was posted).
static int claim(unsigned job) {
    uint64_t s = atomic_load(&pool.state);
    for (;;) {
        if (JOB_OF(s) != job || NEXT_OF(s) >= PARTS_OF(s)) return -1;
        if (atomic_compare_exchange_weak(&pool.state, &s, s + 1)) return NEXT_OF(s);
    }
}

/// Runs parts of job `job` until none is left to claim.
static void work(unsigned job, int parts) {
    int part;
    while ((part = claim(job)) >= 0) {
        // The claim precedes the job's completion, so fn and ctx are still this job's.
        pool.fn(pool.ctx, part, parts);
        atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
    }
}

static void *worker_main(void *arg) {
    const int index = (int)(intptr_t)arg;
    unsigned seen = pool.start_job[index];
    for (;;) {
        uint64_t s;
        int spins = 0;
        while (JOB_OF(s = atomic_load_explicit(&pool.state, memory_order_acquire)) == seen) {
            if (spins < AK_SPIN_PAUSES) { AK_PAUSE(); spins++; }
            else if (spins < AK_SPIN_PAUSES + AK_SPIN_YIELDS) { sched_yield(); spins++; }
            else {
                pthread_mutex_lock(&pool.lock);
                atomic_fetch_add(&pool.sleeping, 1);
                while (JOB_OF(atomic_load(&pool.state)) == seen) pthread_cond_wait(&pool.wake, &pool.lock);
                atomic_fetch_sub(&pool.sleeping, 1);
                pthread_mutex_unlock(&pool.lock);
                spins = 0;
            }
        }
        seen = JOB_OF(s);
        work(seen, PARTS_OF(s));
    }
    return 0;
}

/// Starts workers until there are `n`; returns how many there are.
static int ensure_workers(int n) {
    if (pool.workers >= n) return pool.workers;
    pthread_mutex_lock(&pool.lock);
    while (pool.workers < n) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pool.start_job[pool.workers + 1] = JOB_OF(atomic_load(&pool.state));
        int failed = pthread_create(&t, &attr, worker_main, (void *)(intptr_t)(pool.workers + 1));
        pthread_attr_destroy(&attr);
        if (failed) break;
        pool.workers++;
    }
    int have = pool.workers;
    pthread_mutex_unlock(&pool.lock);
    return have;
}

void ak_pool_run(int parts, void (*fn)(void *ctx, int part, int parts), void *ctx) {
    if (parts > AK_POOL_MAX) parts = AK_POOL_MAX;
    if (parts <= 1 || atomic_flag_test_and_set(&pool.busy)) {
        // One part, or the pool is in use (another thread, or a job calling back in): all on this thread.
        int n = parts < 1 ? 1 : parts;
        for (int i = 0; i < n; i++) fn(ctx, i, n);
        return;
    }
    ensure_workers(parts - 1);
    pool.fn = fn;
    pool.ctx = ctx;
    atomic_store(&pool.done, 0);
    const unsigned job = JOB_OF(atomic_load(&pool.state)) + 1;
    // Sequentially consistent: a worker about to sleep either sees the new job or is counted in `sleeping` below.
    atomic_store(&pool.state, ((uint64_t)job << 32) | ((uint64_t)parts << 16));
    if (atomic_load(&pool.sleeping) > 0) {
        pthread_mutex_lock(&pool.lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.lock);
    }
    work(job, parts);
    // Parts a worker claimed and is still running: spin briefly, then give the core up (it may be waiting for it).
    for (int spins = 0; atomic_load_explicit(&pool.done, memory_order_acquire) < parts; spins++) {
        if (spins < AK_SPIN_PAUSES) AK_PAUSE(); else sched_yield();
    }
    atomic_flag_clear(&pool.busy);
}
