import AlignerTensor
import ArgumentParser
import Foundation

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Version, BLAS core and threads, cores and memory.")
    @OptionGroup var compute: ComputeOptions

    func run() throws { compute.context.run { show() } }

    func show() {
        let info = ProcessInfo.processInfo
        print("AlignerKit \(AlignerKitVersion.string)")
        print(BLAS.summary)
        print("OpenBLAS: \(BLAS.configuration) (\(BLAS.libraryPath))")
        print("CPU: \(info.activeProcessorCount) cores, \(info.physicalMemory >> 20) MiB memory")
    }
}

