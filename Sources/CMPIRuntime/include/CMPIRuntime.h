// Loads Open MPI (libmpi.so.40, Debian's libopenmpi3) at run time, so that AlignerKit builds and runs as one process
// without it. Only what data-parallel training needs: start-up, rank and size, in-place sum all-reduce of float32 and
// float64 buffers, byte broadcast, barrier, finalise and abort. Open MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM)
// are the addresses of its exported predefined objects, which is what makes loading it without its headers possible.
#ifndef CMPI_RUNTIME_H
#define CMPI_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

/// Loads the library once (without starting MPI); 0 on success, else non-zero with a message in `err`.
int ak_mpi_load(char *err, size_t errlen);
/// The library's version line ("Open MPI v4.1.4, package: Debian OpenMPI, ...") after a successful load.
const char *ak_mpi_library_version(void);
/// The file that was loaded.
const char *ak_mpi_library_path(void);

/// Starts MPI (MPI_Init_thread, funneled) with errors returned rather than fatal; 0 on success.
int ak_mpi_init(int *rank, int *size, char *err, size_t errlen);
/// Whether `ak_mpi_init` succeeded and MPI has not been finalised or aborted.
int ak_mpi_active(void);

/// Sums `count` float32 values across all ranks, in place; 0 on success, else an MPI error with a message.
int ak_mpi_allreduce_sum_f32(float *buffer, int64_t count, char *err, size_t errlen);
/// Sums `count` float64 values across all ranks, in place.
int ak_mpi_allreduce_sum_f64(double *buffer, int64_t count, char *err, size_t errlen);
/// Maximum of `count` float64 values across all ranks, in place.
int ak_mpi_allreduce_max_f64(double *buffer, int64_t count, char *err, size_t errlen);
/// Broadcasts `count` bytes from `root`.
int ak_mpi_broadcast(void *buffer, int64_t count, int root, char *err, size_t errlen);
/// Waits for every rank.
int ak_mpi_barrier(char *err, size_t errlen);
/// Starts the collectives' watchdog: when one MPI call of this process waits more than `seconds` (the other ranks do
/// not arrive: a rank stopped, or the network link to its host failed), it writes `message` and the call's name and
/// wait to standard error and ends this process with `status` (`_exit`: a call stuck on a dead link never returns, and
/// MPI cannot be finalised then). `message` is copied; a later call replaces it.
void ak_mpi_watchdog(double seconds, const char *message, int status);
/// Seconds this process has spent inside MPI calls that sum float32 buffers (waiting for the other ranks included).
double ak_mpi_seconds_in_allreduce(void);

/// Ends MPI normally (every rank must call it).
void ak_mpi_finalize(void);
/// Ends every rank of the job with `status` (MPI_Abort); does not return.
void ak_mpi_abort(int status);

#endif
