import AlignerDistributed
import AlignerTensor
import ArgumentParser
import Foundation

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Version, BLAS core and threads, oneDNN and the bf16 engine, cores and memory.")
    @OptionGroup var compute: ComputeOptions

    func run() throws { compute.context.run { show() } }

    func show() {
        let info = ProcessInfo.processInfo
        print("AlignerKit \(AlignerKitVersion.string)")
        print(BLAS.summary)
        print("OpenBLAS: \(BLAS.configuration) (\(BLAS.libraryPath))")
        if OneDNN.isAvailable {
            print("oneDNN: \(OneDNN.version), instruction set \(OneDNN.isa)")
        } else {
            print("oneDNN: not available (\(OneDNN.unavailableReason ?? ""))")
        }
        print("fp32 matrix products: OpenBLAS (\(BLAS.coreName))")
        print("bf16 matrix products (train.precision = \"bf16\"): \(MatmulPrecision.bf16Engine)")
        print("generation: decoding steps (up to 64 rows) through AlignerKit's \(Q8Matrix.kernelPath) kernels, float32 or Q8_0 (--inference-weights); prompts through OpenBLAS")
        let mpi = ProcessGroup.availability
        let launcher = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) }
        print(mpi.available
              ? "MPI: \(mpi.description); data-parallel training: mpirun -np N aligner train|sweep|finetune RECIPE\(launcher == nil ? " (mpirun not found: apt-get install openmpi-bin)" : "")"
              : "MPI: not available (\(mpi.description)); training runs as one process")
        print("CPU: \(info.activeProcessorCount) cores, \(info.physicalMemory >> 20) MiB memory")
    }
}

