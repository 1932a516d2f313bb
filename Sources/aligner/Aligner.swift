import AlignerGGUF
import AlignerBench
import AlignerData
import AlignerModel
import AlignerOptim
import AlignerSafetensors
import AlignerTensor
import AlignerTokenizers
import AlignerTrain
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
            ExportCommand.self, Info.self, DataCommand.self, TokenizerCommand.self, GGUFCommand.self, Bench.self,
        ])

    /// Parses, runs, and maps errors to the exit codes of `ExitStatus`, with one line on standard error.
    static func main() {
        var command: ParsableCommand
        do { command = try parseAsRoot() } catch { exit(withError: error) }
        do {
            try command.run()
        } catch {
            if let status = ExitStatus(for: error) {
                FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                Foundation.exit(status.rawValue)
            }
            if let v = error as? ValidationError {
                // Found while running (a recipe value, an input file): the message is the help; no usage block.
                FileHandle.standardError.write(Data("error: \(v.message)\n".utf8))
                Foundation.exit(ExitStatus.usage.rawValue)
            }
            exit(withError: error)
        }
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
        Exit status: 0 success; 1 training stopped (diverged); 64 wrong command line, option or recipe value; \
        65 bad input data; 66 missing input file; 69 not enough memory; 70 internal error; 74 read/write failure \
        (e.g. disk full); 75 run folder in use by another process; 130 interrupted (checkpoint written).
        """

    /// The status for one of AlignerKit's errors; nil for the argument parser's own (it prints usage itself).
    init?(for error: Error) {
        func missing(_ message: String) -> Bool { message.hasPrefix("no such file") }
        switch error {
        case is RecipeError, is ModelInputError, is SettingError: self = .usage
        case let e as DataError: self = missing(e.message) ? .noInput : .dataError
        case let e as StoreError:
            switch e.kind {
            case .io: self = .ioError
            case .badContent: self = .dataError
            case .missing: self = .noInput
            case .inUse: self = .tempFail
            }
        case is ConfigError, is WeightError, is SafetensorsError, is TokenizerError, is OptimizerStateError: self = .dataError
        case let e as GGUFError: self = e.message == "no such file" ? .noInput : .dataError
        case is MemoryError: self = .unavailable
        case let stop as TrainingStop:
            if case .interrupted = stop { self = .interrupted } else { self = .stopped }
        case let e as CocoaError:
            self = [.fileNoSuchFile, .fileReadNoSuchFile].contains(e.code) ? .noInput : .ioError
        case is ValidationError, is ExitCode, is CleanExit: return nil
        default:
            let ns = error as NSError
            if ns.domain == NSPOSIXErrorDomain || ns.domain == NSCocoaErrorDomain { self = .ioError; return }
            if String(describing: type(of: error)).hasPrefix("Aligner") { self = .software; return }
            return nil
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


/// Text from bytes that must be UTF-8; `what` names the source in the error.
func decodeUTF8(_ data: Data, what: String) throws -> String {
    guard let s = String(validating: data, as: UTF8.self) else {
        let valid = String(decoding: data, as: UTF8.self)
        let offset = zip(valid.utf8, data).prefix { $0 == $1 }.count
        throw ValidationError("\(what) is not valid UTF-8 (first bad byte at offset \(offset))")
    }
    return s
}

/// A whole file that must be UTF-8 text.
func readUTF8File(_ path: String, what: String) throws -> String {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw DataError(file: path, message: "no such file (\(what))") }
    guard !isDir.boolValue else { throw ValidationError("\(what) \(path) is a folder, not a file") }
    let data: Data
    do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
        throw ValidationError("\(what) \(path): cannot read: \(error.localizedDescription)")
    }
    return try decodeUTF8(data, what: "\(what) \(path)")
}
