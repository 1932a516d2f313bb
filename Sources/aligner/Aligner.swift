import AlignerTraining
import AlignerErrors
import AlignerGGUF
import AlignerBench
import AlignerData
import AlignerFiles
import AlignerDistributed
import AlignerModel
import AlignerOptim
import AlignerSafetensors
import AlignerTensor
import AlignerTokenizers
import ArgumentParser
import Foundation

@main
struct Aligner: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aligner",
        abstract: "AlignerKit: train Aligners (Q-A-C residual correction models) on CPU.",
        discussion: ExitStatus.documentation,
        version: AlignerKitVersion.string,
        subcommands: [
            TrainCommand.self, SweepCommand.self, FinetuneCommand.self, CorrectCommand.self, GenerateCommand.self, EvalCommand.self,
            ExportCommand.self, HandoffCommand.self, RewardCommand.self, Info.self, DataCommand.self, TokenizerCommand.self, GGUFCommand.self, Bench.self,
        ])

    /// Parses, runs, and maps errors to the exit codes of `ExitStatus`, with one line on standard error. Started by
    /// mpirun, the process first joins the MPI job (`ProcessGroup.start`) and ends its part in it on the way out.
    static func main() {
        var command: ParsableCommand
        do { command = try parseAsRoot() } catch { exit(withError: error) }
        ProcessGroup.exitStatus = { error in
            if let d = error as? DistributedError { return d.status }
            return ExitStatus(for: error)?.rawValue ?? (error is ValidationError ? ExitStatus.usage.rawValue : exitCode(for: error).rawValue)
        }
        let group: ProcessGroup
        do { group = try joinMPIJob(for: command) } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            Foundation.exit(ProcessGroup.exitStatus(error))
        }
        do {
            try command.run()
            group.end(status: 0)
        } catch {
            // A Foundation file error that no layer named is said in plain words, with its path (one mapping).
            let error = FileSystemFailure.plain(error) ?? error
            let status = ProcessGroup.exitStatus(error)
            let prefix = group.isDistributed && !(error is DistributedError) ? "rank \(group.rank) of \(group.size): " : ""
            if let d = error as? DistributedError {
                FileHandle.standardError.write(Data("error: \(d)\n".utf8))
            } else if ExitStatus(for: error) != nil {
                FileHandle.standardError.write(Data("error: \(prefix)\(error)\n".utf8))
            } else if let v = error as? ValidationError {
                // Found while running (a recipe value, an input file): the message is the help; no usage block.
                FileHandle.standardError.write(Data("error: \(prefix)\(v.message)\n".utf8))
            } else if group.isDistributed {
                let text = fullMessage(for: error)
                if !text.isEmpty { FileHandle.standardError.write(Data("error: \(prefix)\(text)\n".utf8)) }
            } else {
                exit(withError: error)
            }
            group.end(status: status)
            Foundation.exit(status)
        }
    }

    /// Joins the MPI job when mpirun started this process (`DataParallelJob.join`): only the training commands run
    /// data-parallel.
    static func joinMPIJob(for command: ParsableCommand) throws -> ProcessGroup {
        guard let ranks = ProcessGroup.launchedRanks else { return .single }
        guard command is TrainCommand || command is SweepCommand || command is FinetuneCommand || command is RewardTrainCommand else {
            if ranks == 1 { return .single }
            throw ValidationError("only train, sweep, finetune and reward train run data-parallel under mpirun; run this command as one process")
        }
        return try DataParallelJob.join()
    }
}

/// Exit codes, one convention for every command (after BSD's sysexits.h).
enum ExitStatus: Int32 {
    /// Training stopped early: it diverged (a message names the last good checkpoint).
    case stopped = 1
    /// A wrong command line, option or recipe value.
    case usage = 64
    /// Bad input data: a record, a model file, a configuration, a tokenizer.
    case dataError = 65
    /// An input file or folder does not exist.
    case noInput = 66
    /// Not enough memory for the model or the run (refused before allocating).
    case unavailable = 69
    /// An error inside AlignerKit.
    case software = 70
    /// Reading or writing failed (a full disk, permissions).
    case ioError = 74
    /// The run folder is in use by another process; try again when it has finished.
    case tempFail = 75
    /// Interrupted with Ctrl-C (a checkpoint was written).
    case interrupted = 130

    static let documentation = """
        Exit status: 0 success; 1 training stopped (diverged); 64 wrong command line, option or recipe value, or an \
        output that would overwrite an input; 65 bad input data; 66 missing input file; 69 not enough memory; \
        70 internal error; 74 read/write failure (e.g. disk full, read-only file system; a data-parallel rank that lost \
        the others); 75 run folder in use by another process; 130 interrupted (checkpoint written).
        """

    /// The status of a kind of failure.
    init(_ kind: FailureKind) {
        switch kind {
        case .usage: self = .usage
        case .badData: self = .dataError
        case .missing: self = .noInput
        case .memory: self = .unavailable
        case .io: self = .ioError
        case .inUse: self = .tempFail
        case .stopped: self = .stopped
        case .interrupted: self = .interrupted
        case .internal: self = .software
        }
    }

    /// The status for an error AlignerKit (by its kind) or Foundation threw; nil for the argument parser's own (it
    /// prints usage itself).
    init?(for error: Error) {
        switch error {
        case let e as AlignerError: self.init(e.kind)
        case let e as CocoaError:
            self = [.fileNoSuchFile, .fileReadNoSuchFile].contains(e.code) ? .noInput : .ioError
        case is ValidationError, is ExitCode, is CleanExit: return nil
        default:
            // Foundation's file errors; anything else is the argument parser's own (help, usage), which it reports.
            let ns = error as NSError
            guard ns.domain == NSPOSIXErrorDomain || ns.domain == NSCocoaErrorDomain else { return nil }
            self = .ioError
        }
    }
}

/// Options shared by commands that compute.
struct ComputeOptions: ParsableArguments {
    @Option(help: "Threads for BLAS and AlignerKit's kernels (default: ALIGNERKIT_THREADS, OPENBLAS_NUM_THREADS, or all cores).")
    var threads: Int?

    func validate() throws {
        if let threads, !(1...1024).contains(threads) { throw ValidationError("--threads must be within 1...1024, got \(threads)") }
    }

    /// The compute context these options ask for.
    var context: ComputeContext { threads.map { ComputeContext(threads: $0) } ?? .standard }
}


/// Text from bytes that must be UTF-8 (`UTF8Text`, the rule every text input follows); `what` names the source.
func decodeUTF8(_ data: Data, what: String) throws -> String {
    try UTF8Text.decode(data, source: what)
}

/// A whole file that must be UTF-8 text.
func readUTF8File(_ path: String, what: String) throws -> String {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw DataError(file: path, message: "no such file (\(what))", kind: .missing) }
    guard !isDir.boolValue else { throw FileError(file: path, message: "cannot read (\(what)): it is a folder, not a file", kind: .usage) }
    try FileSystemFailure.checkInputFile(path, what: what)
    let data: Data
    do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
        throw FileSystemFailure.error(error, path: path, action: "read (\(what))")
    }
    return try decodeUTF8(data, what: path)
}
