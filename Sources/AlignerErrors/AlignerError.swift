/// What went wrong, in the terms a caller acts on; the command line maps each kind to one exit status.
public enum FailureKind: Sendable, Equatable, CaseIterable {
    /// A wrong command line, option, recipe value or model input.
    case usage
    /// Bad input data: a record, a model file, a configuration, a tokenizer, a damaged checkpoint.
    case badData
    /// An input file or folder does not exist.
    case missing
    /// Not enough memory for the model or the run (refused before allocating).
    case memory
    /// Reading or writing failed (a full disk, permissions).
    case io
    /// The run folder is in use by another process.
    case inUse
    /// Training stopped early (it diverged).
    case stopped
    /// Interrupted (Ctrl-C or SIGTERM); a checkpoint was written.
    case interrupted
    /// An error inside AlignerKit.
    case `internal`
}

/// What an error names as bad: a file (with its line, record and field when known), a setting (a recipe key or a
/// command-line flag), a field of a structure (a configuration field, a weight, an argument), or nothing more precise.
public enum FailureSubject: Sendable, Equatable {
    case file(String)
    case setting(String)
    case field(String)
    case none
}

/// The one protocol of AlignerKit's errors: each says what is bad and its kind, and its `description` is the whole
/// message (it names the subject). Every module's errors conform; nothing downstream reads a message's text or an
/// error's type name to decide what kind of failure it is.
public protocol AlignerError: Error, CustomStringConvertible {
    /// What is bad.
    var subject: FailureSubject { get }
    /// The kind of failure.
    var kind: FailureKind { get }
}
