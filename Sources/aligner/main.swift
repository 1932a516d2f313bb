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
        subcommands: [Info.self, Bench.self])
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

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Version, BLAS core and threads, cores and memory.")
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try compute.apply()
        let info = ProcessInfo.processInfo
        print("AlignerKit \(AlignerKitVersion.string)")
        print(BLAS.summary)
        print("OpenBLAS: \(BLAS.configuration) (\(BLAS.libraryPath))")
        print("CPU: \(info.activeProcessorCount) cores, \(info.physicalMemory >> 20) MiB memory")
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks.", subcommands: [Kernels.self], defaultSubcommand: Kernels.self)

    struct Kernels: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Times the matrix product and each fused kernel at transformer shapes (GFLOP/s or GB/s).")
        @OptionGroup var compute: ComputeOptions
        @Flag(help: "Shorter timing windows (a smoke run).") var quick = false

        func run() throws {
            try compute.apply()
            print(BLAS.summary)
            print("kernel                     shape                          time/call     rate")
            _ = KernelBenchmark.run(quick: quick) { print($0) }
            print("peak resident memory: \(peakResidentBytes() >> 20) MiB")
        }
    }
}
