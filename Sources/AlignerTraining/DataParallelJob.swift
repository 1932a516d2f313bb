import AlignerDistributed
import Foundation

/// How a training process takes part in a data-parallel job that mpirun started.
public enum DataParallelJob {
    /// Joins the MPI job (`ProcessGroup.start`). Unless ALIGNERKIT_THREADS or OPENBLAS_NUM_THREADS says otherwise,
    /// each rank takes the host's cores divided among the ranks on it; ranks other than 0 print nothing on standard
    /// output (rank 0 reports for the job; errors still go to standard error); each rank reports a SIGTERM from mpirun.
    public static func join() throws -> ProcessGroup {
        let group = try ProcessGroup.start()
        let env = ProcessInfo.processInfo.environment
        if env["ALIGNERKIT_THREADS"] == nil && env["OPENBLAS_NUM_THREADS"] == nil {
            let online = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
            let threads = max(1, min(ProcessInfo.processInfo.activeProcessorCount, online / group.localSize))
            setenv("ALIGNERKIT_THREADS", "\(threads)", 1)
        }
        if !group.isMain {
            let null = open("/dev/null", O_WRONLY)
            if null >= 0 { dup2(null, STDOUT_FILENO); close(null) }
        }
        if group.isDistributed { Interrupt.installTermination(rank: group.rank, size: group.size) }
        return group
    }
}
