import Foundation

/// Ctrl-C handling: the first SIGINT asks the trainer to checkpoint and stop after the current step; a second one
/// ends the process at once.
public enum Interrupt {
    nonisolated(unsafe) static var requested: sig_atomic_t = 0
    /// The line a data-parallel process writes when mpirun ends it (set before the handler is installed; the handler
    /// only writes it).
    nonisolated(unsafe) static var terminationMessage: UnsafeMutablePointer<CChar>?

    /// Installs the handler (idempotent).
    public static func install() {
        signal(SIGINT) { _ in
            if Interrupt.requested != 0 { _exit(130) }
            Interrupt.requested = 1
            let msg = "\ninterrupt: finishing this step and writing a checkpoint (Ctrl-C again to quit at once)\n"
            _ = msg.withCString { write(2, $0, strlen($0)) }
        }
    }

    /// For a process of a data-parallel run: SIGTERM (what mpirun sends every rank when one of them dies, fails or is
    /// killed) writes one line naming this rank and ends the process at once. Nothing half-written survives:
    /// checkpoints become visible only when complete, so the newest one is intact.
    public static func installTermination(rank: Int, size: Int) {
        let text = "rank \(rank) of \(size): ended by mpirun (SIGTERM): another rank failed, was killed or the job was interrupted; "
            + "the newest checkpoint in the run's checkpoints/ is complete (resume with --resume)\n"
        terminationMessage = strdup(text)
        signal(SIGTERM) { _ in
            if let m = Interrupt.terminationMessage { _ = write(2, m, strlen(m)) }
            _exit(143)
        }
        // mpirun forwards SIGUSR1 to every rank (it ends them on Ctrl-C): the way to stop a data-parallel run with a
        // checkpoint. Like a first Ctrl-C: all ranks stop after the step they agree on.
        signal(SIGUSR1) { _ in
            if Interrupt.requested != 0 { return }
            Interrupt.requested = 1
            let msg = "\ninterrupt (SIGUSR1): finishing this step and writing a checkpoint\n"
            _ = msg.withCString { write(2, $0, strlen($0)) }
        }
    }

    public static var isRequested: Bool { requested != 0 }
}
