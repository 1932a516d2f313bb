// Loads Open MPI at run time (see CMPIRuntime.h).
#define _GNU_SOURCE
#include "CMPIRuntime.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef void *ak_handle;  // MPI_Comm, MPI_Datatype, MPI_Op, MPI_Errhandler: pointers in Open MPI's ABI

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int load_status = -1;
static char load_error[512];
static char library_version[512] = "";
static char library_path[256] = "";
static int active = 0;

static int (*p_MPI_Init_thread)(int *, char ***, int, int *);
static int (*p_MPI_Initialized)(int *);
static int (*p_MPI_Comm_rank)(ak_handle, int *);
static int (*p_MPI_Comm_size)(ak_handle, int *);
static int (*p_MPI_Comm_set_errhandler)(ak_handle, ak_handle);
static int (*p_MPI_Allreduce)(const void *, void *, int, ak_handle, ak_handle, ak_handle);
static int (*p_MPI_Bcast)(void *, int, ak_handle, int, ak_handle);
static int (*p_MPI_Barrier)(ak_handle);
static int (*p_MPI_Finalize)(void);
static int (*p_MPI_Abort)(ak_handle, int);
static int (*p_MPI_Get_library_version)(char *, int *);
static int (*p_MPI_Error_string)(int, char *, int *);
static ak_handle comm_world, type_float, type_double, type_byte, op_sum, op_max, errors_return;

#define AK_MPI_IN_PLACE ((void *)1)  // Open MPI's MPI_IN_PLACE
#define AK_MPI_THREAD_FUNNELED 1

static void load(void) {
    const char *names[] = {"libmpi.so.40", "libmpi.so"};
    void *h = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !h; i++) {
        // RTLD_GLOBAL: Open MPI's plug-ins (dlopened by libmpi itself) resolve libmpi's symbols globally.
        h = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
        if (h) snprintf(library_path, sizeof library_path, "%s", names[i]);
    }
    if (!h) {
        snprintf(load_error, sizeof load_error, "Open MPI is not installed (libmpi.so.40 not found; apt-get install libopenmpi3 openmpi-bin)");
        load_status = 1;
        return;
    }
#define AK_SYM(var, name)                                                                                              \
    var = dlsym(h, name);                                                                                              \
    if (!var) {                                                                                                        \
        snprintf(load_error, sizeof load_error, "%s lacks %s (Open MPI 4 or 5 expected; MPICH is not supported)",      \
                 library_path, name);                                                                                  \
        load_status = 2;                                                                                               \
        return;                                                                                                        \
    }
    AK_SYM(p_MPI_Init_thread, "MPI_Init_thread")
    AK_SYM(p_MPI_Initialized, "MPI_Initialized")
    AK_SYM(p_MPI_Comm_rank, "MPI_Comm_rank")
    AK_SYM(p_MPI_Comm_size, "MPI_Comm_size")
    AK_SYM(p_MPI_Comm_set_errhandler, "MPI_Comm_set_errhandler")
    AK_SYM(p_MPI_Allreduce, "MPI_Allreduce")
    AK_SYM(p_MPI_Bcast, "MPI_Bcast")
    AK_SYM(p_MPI_Barrier, "MPI_Barrier")
    AK_SYM(p_MPI_Finalize, "MPI_Finalize")
    AK_SYM(p_MPI_Abort, "MPI_Abort")
    AK_SYM(p_MPI_Get_library_version, "MPI_Get_library_version")
    AK_SYM(p_MPI_Error_string, "MPI_Error_string")
    AK_SYM(comm_world, "ompi_mpi_comm_world")
    AK_SYM(type_float, "ompi_mpi_float")
    AK_SYM(type_double, "ompi_mpi_double")
    AK_SYM(type_byte, "ompi_mpi_byte")
    AK_SYM(op_sum, "ompi_mpi_op_sum")
    AK_SYM(op_max, "ompi_mpi_op_max")
    AK_SYM(errors_return, "ompi_mpi_errors_return")
    char buffer[8192];  // MPI_MAX_LIBRARY_VERSION_STRING is 256 in Open MPI; room to spare
    int length = 0;
    if (p_MPI_Get_library_version(buffer, &length) == 0) {
        buffer[length < (int)sizeof buffer ? length : (int)sizeof buffer - 1] = 0;
        char *newline = strchr(buffer, '\n');
        if (newline) *newline = 0;
        snprintf(library_version, sizeof library_version, "%s", buffer);
    }
    load_status = 0;
}

int ak_mpi_load(char *err, size_t errlen) {
    pthread_once(&once, load);
    if (load_status != 0 && err && errlen) snprintf(err, errlen, "%s", load_error);
    return load_status;
}

const char *ak_mpi_library_version(void) { return library_version; }
const char *ak_mpi_library_path(void) { return library_path; }
int ak_mpi_active(void) { return active; }

static int fail(int code, const char *what, char *err, size_t errlen) {
    if (!err || !errlen) return code;
    char text[512] = "";
    int length = 0;
    if (p_MPI_Error_string && p_MPI_Error_string(code, text, &length) == 0) text[length < 511 ? length : 511] = 0;
    snprintf(err, errlen, "%s failed: %s (MPI error %d)", what, text, code);
    return code;
}

int ak_mpi_init(int *rank, int *size, char *err, size_t errlen) {
    if (ak_mpi_load(err, errlen) != 0) return -1;
    int provided = 0, rc;
    if ((rc = p_MPI_Init_thread(NULL, NULL, AK_MPI_THREAD_FUNNELED, &provided)) != 0) return fail(rc, "MPI_Init_thread", err, errlen);
    active = 1;
    if ((rc = p_MPI_Comm_set_errhandler(comm_world, errors_return)) != 0) return fail(rc, "MPI_Comm_set_errhandler", err, errlen);
    if ((rc = p_MPI_Comm_rank(comm_world, rank)) != 0) return fail(rc, "MPI_Comm_rank", err, errlen);
    if ((rc = p_MPI_Comm_size(comm_world, size)) != 0) return fail(rc, "MPI_Comm_size", err, errlen);
    return 0;
}

// The watchdog: each MPI call records when it started (`call_started`, 0 when none is in progress); a thread polls it.
static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static double watch_seconds = 0;
static int watch_status = 74;
static char watch_message[2048] = "";
static const char *call_name = "";
static double call_started = 0;
static double allreduce_seconds = 0;
static int watch_running = 0;

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void *watch(void *unused) {
    (void)unused;
    for (;;) {
        struct timespec pause = {0, 200 * 1000 * 1000};
        nanosleep(&pause, NULL);
        pthread_mutex_lock(&watch_lock);
        double started = call_started, limit = watch_seconds;
        if (started > 0 && limit > 0 && now_seconds() - started > limit) {
            char line[2600];
            int n = snprintf(line, sizeof line, "error: %s: %s has waited %.0f s for the other ranks (ALIGNERKIT_COLLECTIVE_TIMEOUT=%.0f)\n",
                             watch_message, call_name, now_seconds() - started, limit);
            if (n > 0) { ssize_t w = write(2, line, (size_t)(n < (int)sizeof line ? n : (int)sizeof line - 1)); (void)w; }
            _exit(watch_status);
        }
        pthread_mutex_unlock(&watch_lock);
    }
    return NULL;
}

void ak_mpi_watchdog(double seconds, const char *message, int status) {
    pthread_mutex_lock(&watch_lock);
    watch_seconds = seconds;
    watch_status = status;
    snprintf(watch_message, sizeof watch_message, "%s", message ? message : "");
    int start = !watch_running && seconds > 0;
    if (start) watch_running = 1;
    pthread_mutex_unlock(&watch_lock);
    if (start) {
        pthread_t thread;
        if (pthread_create(&thread, NULL, watch, NULL) == 0) pthread_detach(thread);
    }
}

static void call_begin(const char *name) {
    pthread_mutex_lock(&watch_lock);
    call_name = name;
    call_started = now_seconds();
    pthread_mutex_unlock(&watch_lock);
}

static double call_end(void) {
    pthread_mutex_lock(&watch_lock);
    double waited = now_seconds() - call_started;
    call_started = 0;
    pthread_mutex_unlock(&watch_lock);
    return waited;
}

double ak_mpi_seconds_in_allreduce(void) { return allreduce_seconds; }

// MPI counts are int: long buffers go in pieces of at most 2^30 elements.
#define AK_CHUNK ((int64_t)1 << 30)

static int allreduce(void *buffer, int64_t count, size_t width, ak_handle type, ak_handle op, const char *what, char *err, size_t errlen) {
    if (!active) { snprintf(err, errlen, "%s: MPI is not running", what); return -1; }
    for (int64_t start = 0; start < count; start += AK_CHUNK) {
        int n = (int)(count - start < AK_CHUNK ? count - start : AK_CHUNK);
        call_begin(what);
        int rc = p_MPI_Allreduce(AK_MPI_IN_PLACE, (char *)buffer + start * width, n, type, op, comm_world);
        double waited = call_end();
        if (type == type_float) allreduce_seconds += waited;
        if (rc != 0) return fail(rc, what, err, errlen);
    }
    return 0;
}

int ak_mpi_allreduce_sum_f32(float *buffer, int64_t count, char *err, size_t errlen) {
    return allreduce(buffer, count, sizeof(float), type_float, op_sum, "MPI_Allreduce (sum of float32)", err, errlen);
}

int ak_mpi_allreduce_sum_f64(double *buffer, int64_t count, char *err, size_t errlen) {
    return allreduce(buffer, count, sizeof(double), type_double, op_sum, "MPI_Allreduce (sum of float64)", err, errlen);
}

int ak_mpi_allreduce_max_f64(double *buffer, int64_t count, char *err, size_t errlen) {
    return allreduce(buffer, count, sizeof(double), type_double, op_max, "MPI_Allreduce (max of float64)", err, errlen);
}

int ak_mpi_broadcast(void *buffer, int64_t count, int root, char *err, size_t errlen) {
    if (!active) { snprintf(err, errlen, "MPI_Bcast: MPI is not running"); return -1; }
    for (int64_t start = 0; start < count; start += AK_CHUNK) {
        int n = (int)(count - start < AK_CHUNK ? count - start : AK_CHUNK);
        call_begin("MPI_Bcast");
        int rc = p_MPI_Bcast((char *)buffer + start, n, type_byte, root, comm_world);
        call_end();
        if (rc != 0) return fail(rc, "MPI_Bcast", err, errlen);
    }
    return 0;
}

int ak_mpi_barrier(char *err, size_t errlen) {
    if (!active) { snprintf(err, errlen, "MPI_Barrier: MPI is not running"); return -1; }
    call_begin("MPI_Barrier");
    int rc = p_MPI_Barrier(comm_world);
    call_end();
    return rc == 0 ? 0 : fail(rc, "MPI_Barrier", err, errlen);
}

void ak_mpi_finalize(void) {
    if (!active) return;
    active = 0;
    call_begin("MPI_Finalize");
    p_MPI_Finalize();
    call_end();
}

void ak_mpi_abort(int status) {
    if (active) p_MPI_Abort(comm_world, status);
    _exit(status);
}
