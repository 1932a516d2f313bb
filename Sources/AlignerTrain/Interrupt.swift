import Foundation

/// Ctrl-C handling: the first SIGINT asks the trainer to checkpoint and stop after the current step; a second one
/// ends the process at once.
public enum Interrupt {
    nonisolated(unsafe) static var requested: sig_atomic_t = 0

    /// Installs the handler (idempotent).
    public static func install() {
        signal(SIGINT) { _ in
            if Interrupt.requested != 0 { _exit(130) }
            Interrupt.requested = 1
            let msg = "\ninterrupt: finishing this step and writing a checkpoint (Ctrl-C again to quit at once)\n"
            _ = msg.withCString { write(2, $0, strlen($0)) }
        }
    }

    public static var isRequested: Bool { requested != 0 }
}
