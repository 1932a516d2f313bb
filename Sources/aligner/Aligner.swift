import AlignerBench
import AlignerTensor
import ArgumentParser
import Foundation

@main
struct Aligner: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aligner",
        abstract: "AlignerKit: train Aligners (Q-A-C residual correction models) on CPU.",
        version: AlignerKitVersion.string,
        subcommands: [
            TrainCommand.self, SweepCommand.self, FinetuneCommand.self, CorrectCommand.self, GenerateCommand.self, EvalCommand.self,
            ExportCommand.self, Info.self, DataCommand.self, TokenizerCommand.self, Bench.self,
        ])
}

/// Options shared by commands that compute.
struct ComputeOptions: ParsableArguments {
    @Option(help: "Threads for BLAS and AlignerKit's kernels (default: ALIGNERKIT_THREADS, OPENBLAS_NUM_THREADS, or all cores).")
    var threads: Int?

    func apply() throws {
        if let threads {
            guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
            BLAS.threads = threads
        }
    }
}

