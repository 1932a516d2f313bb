// swift-tools-version:6.0
// AlignerKit: training Aligners (Q-A-C residual correction models) in Swift on CPU.
//
// Dependencies point one way only (README, "Module map"; each target below declares exactly what its files import):
//   AlignerErrors (the error protocol; imports nothing), used by every module that throws
//   AlignerFiles (atomic writes, checksums, fingerprints, temporary files; Foundation and zlib only)
//   COpenBLAS (headers) -> CBLASRuntime (loads OpenBLAS), CDNNLRuntime (loads oneDNN), CKernels (Q8_0 products)
//   -> AlignerTensor (tensors, autodiff, kernels)
//   -> AlignerSafetensors, AlignerGGUF (file formats), AlignerModel (Llama), AlignerOptim (AdamW, schedules, clipping)
//   AlignerTokenizers (tokenizer.json BPE), AlignerJinja (chat templates) -> AlignerData (records, templates, splits, batches)
//   CMPIRuntime (loads Open MPI) -> AlignerDistributed (ranks and collectives)
//   AlignerMeasures (refusals, degeneration, edit distances, 95% intervals; Foundation only)
//   AlignerReports (self-contained HTML reports: tables, charts, the corrections gallery; Foundation only)
//   -> AlignerRecipes -> AlignerFormats (model files) -> AlignerRuns (run store) -> AlignerInference (correct, eval, judge)
//   -> AlignerTraining (both trainers) -> AlignerSweeps, AlignerHandoff -> aligner (executable: parses, calls, prints)
//   AlignerBench (benchmarks) -> aligner
import PackageDescription

import Foundation

/// Release builds. Only the kernel module (AlignerTensor: tensors, autodiff and the fused kernels, whose inner loops
/// are bounds-checked by construction) is built with `-Ounchecked`; every other module keeps Swift's checks at `-O`,
/// and public entry points (the model, data, training and the command line) validate their input and throw before
/// anything reaches a kernel. Measured on 2026-11-29 (AMD EPYC, 2 threads, the main job's model for 150 steps, two
/// interleaved rounds): AlignerTensor at `-Ounchecked` trained at 11,341 and 12,905 tokens/s, at `-O` at 10,988 and
/// 12,219 (about 4% slower), with identical weights; so the kernels keep `-Ounchecked`. Whole-module optimisation everywhere, and on x86-64 the
/// Haswell level (AVX2 + FMA + BMI2, x86-64-v3: Intel since 2013, AMD since 2015), so that SIMD kernels use 256-bit
/// registers. Set ALIGNERKIT_PORTABLE=1 when building for an older x86-64 CPU.
var cpuFlags: [String] = []
#if arch(x86_64)
if ProcessInfo.processInfo.environment["ALIGNERKIT_PORTABLE"] == nil {
    cpuFlags = ["-target-cpu", "haswell"]
}
#endif
let kernelFlags: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"] + cpuFlags, .when(configuration: .release))]
let optimize: [SwiftSetting] = [.unsafeFlags(["-O", "-wmo"] + cpuFlags, .when(configuration: .release))]

let package = Package(
    name: "AlignerKit",
    products: [
        .library(name: "AlignerErrors", targets: ["AlignerErrors"]),
        .library(name: "AlignerFiles", targets: ["AlignerFiles"]),
        .library(name: "AlignerTensor", targets: ["AlignerTensor"]),
        .library(name: "AlignerSafetensors", targets: ["AlignerSafetensors"]),
        .library(name: "AlignerGGUF", targets: ["AlignerGGUF"]),
        .library(name: "AlignerModel", targets: ["AlignerModel"]),
        .library(name: "AlignerOptim", targets: ["AlignerOptim"]),
        .library(name: "AlignerTokenizers", targets: ["AlignerTokenizers"]),
        .library(name: "AlignerJinja", targets: ["AlignerJinja"]),
        .library(name: "AlignerData", targets: ["AlignerData"]),
        .library(name: "AlignerDistributed", targets: ["AlignerDistributed"]),
        .library(name: "AlignerMeasures", targets: ["AlignerMeasures"]),
        .library(name: "AlignerReports", targets: ["AlignerReports"]),
        .library(name: "AlignerRecipes", targets: ["AlignerRecipes"]),
        .library(name: "AlignerFormats", targets: ["AlignerFormats"]),
        .library(name: "AlignerRuns", targets: ["AlignerRuns"]),
        .library(name: "AlignerInference", targets: ["AlignerInference"]),
        .library(name: "AlignerTraining", targets: ["AlignerTraining"]),
        .library(name: "AlignerSweeps", targets: ["AlignerSweeps"]),
        .library(name: "AlignerHandoff", targets: ["AlignerHandoff"]),
        .executable(name: "aligner", targets: ["aligner"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // OpenBLAS's CBLAS header. Deliberately no `pkgConfig: "openblas"`: its `-lopenblas` would make the loader
        // map OpenBLAS before `main`, and OpenBLAS picks its kernels (OPENBLAS_CORETYPE) at that moment. CBLASRuntime
        // loads it with dlopen once the kernel set is chosen; Debian puts cblas.h on the default include path.
        .systemLibrary(
            name: "COpenBLAS",
            providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(
            name: "CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(
            name: "CPCRE2", pkgConfig: "libpcre2-8",
            providers: [.apt(["libpcre2-dev"])]),
        .target(name: "CBLASRuntime", dependencies: ["COpenBLAS"]),
        // oneDNN (bf16 and f32 matrix products), loaded with dlopen when present; its headers (libdnnl-dev) are used
        // when installed at build time, else the target builds without them and reports oneDNN as unavailable.
        .target(name: "CDNNLRuntime"),
        // Open MPI (data-parallel training under mpirun), loaded with dlopen when present; no headers needed to build.
        .target(name: "CMPIRuntime"),
        // The error protocol every module's errors conform to: what is bad and the kind of failure. Imports nothing.
        .target(name: "AlignerErrors", swiftSettings: optimize),
        .target(name: "AlignerDistributed", dependencies: ["AlignerErrors", "CMPIRuntime"], swiftSettings: optimize),
        // Kernels no library provides (Q8_0 products with fused dequantisation, the pool that runs them); AVX2 chosen at
        // run time, a portable path with the same results elsewhere.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "AlignerTensor", dependencies: ["CBLASRuntime", "CDNNLRuntime", "CKernels"], swiftSettings: kernelFlags),
        // Writing files atomically (temporary file, flush, rename, folder sync), CRC-32, stale temporary files.
        .target(name: "AlignerFiles", dependencies: ["AlignerErrors", "CZlib"], swiftSettings: optimize),
        .target(name: "AlignerSafetensors", dependencies: ["AlignerErrors", "AlignerFiles", "AlignerTensor"], swiftSettings: optimize),
        .target(name: "AlignerGGUF", dependencies: ["AlignerErrors", "AlignerFiles", "AlignerTensor"], swiftSettings: optimize),
        .target(name: "AlignerModel", dependencies: ["AlignerErrors", "AlignerFiles", "AlignerTensor"], swiftSettings: optimize),
        .target(name: "AlignerTokenizers", dependencies: ["AlignerErrors", "AlignerFiles", "CPCRE2"], swiftSettings: optimize),
        // Hugging Face chat templates: the subset of Jinja that model repositories ship, rendered as transformers does.
        .target(name: "AlignerJinja", dependencies: ["AlignerErrors"], swiftSettings: optimize),
        .target(
            name: "AlignerData", dependencies: ["AlignerErrors", "AlignerFiles", "AlignerTokenizers", "AlignerJinja", "AlignerTensor", "CZlib"],
            resources: [.copy("Resources/templates.json"), .copy("Resources/non-answers.json")], swiftSettings: optimize),
        .target(name: "AlignerOptim", dependencies: ["AlignerErrors", "AlignerTensor"], swiftSettings: optimize),
        // Measures of responses (refusals, degeneration) and 95% intervals; knows nothing of models or data files.
        .target(name: "AlignerMeasures", swiftSettings: optimize),
        // Self-contained HTML reports (escaped text, embedded charts, a gallery filtered by a nonce'd script); knows
        // nothing of models, runs or sweeps.
        .target(name: "AlignerReports", swiftSettings: optimize),
        // Recipes: the TOML reader, every key with its default, check and closed set of values.
        .target(name: "AlignerRecipes", dependencies: ["AlignerData", "AlignerErrors", "AlignerFiles", "AlignerModel", "AlignerOptim", "AlignerTensor", "AlignerTokenizers"], swiftSettings: optimize),
        // Model files: Hugging Face folders, GGUF models, PEFT adapters, reward models, exports; AlignerBundle (a loaded Aligner).
        .target(name: "AlignerFormats", dependencies: ["AlignerData", "AlignerFiles", "AlignerGGUF", "AlignerModel", "AlignerRecipes", "AlignerSafetensors", "AlignerTensor", "AlignerTokenizers"], swiftSettings: optimize),
        // The run store: run folder and lock, checkpoints, metrics, results, progress lines; locating runs and sweeps by name.
        .target(name: "AlignerRuns", dependencies: ["AlignerData", "AlignerErrors", "AlignerFiles", "AlignerFormats", "AlignerMeasures", "AlignerModel", "AlignerOptim", "AlignerRecipes", "AlignerSafetensors", "AlignerTensor", "AlignerTokenizers"], swiftSettings: optimize),
        // Using models: corrections, evaluation (loss, generation metrics, controls), the reward judge, fluency.
        .target(name: "AlignerInference", dependencies: ["AlignerData", "AlignerDistributed", "AlignerFiles", "AlignerFormats", "AlignerMeasures", "AlignerModel", "AlignerRecipes", "AlignerReports", "AlignerRuns", "AlignerTensor", "AlignerTokenizers"], swiftSettings: optimize),
        // The Aligner and reward trainers: training loop, observers, run preparation, interrupts.
        .target(name: "AlignerTraining", dependencies: ["AlignerData", "AlignerDistributed", "AlignerErrors", "AlignerFiles", "AlignerFormats", "AlignerInference", "AlignerMeasures", "AlignerModel", "AlignerOptim", "AlignerRecipes", "AlignerRuns", "AlignerSafetensors", "AlignerTensor", "AlignerTokenizers"], swiftSettings: optimize),
        // Warm-up sweeps: the plan of arms, their runs, judging, report.json, report.md, the chart and report.html.
        .target(name: "AlignerSweeps", dependencies: ["AlignerData", "AlignerDistributed", "AlignerFiles", "AlignerInference", "AlignerMeasures", "AlignerModel", "AlignerRecipes", "AlignerReports", "AlignerRuns", "AlignerTraining"], swiftSettings: optimize),
        // The hand-off of a recipe to TRL (splits, configs, model folder, script).
        .target(name: "AlignerHandoff", dependencies: ["AlignerData", "AlignerDistributed", "AlignerFiles", "AlignerFormats", "AlignerModel", "AlignerRecipes", "AlignerRuns", "AlignerTensor", "AlignerTraining"], swiftSettings: optimize),
        .target(
            name: "AlignerBench", dependencies: ["AlignerTensor", "AlignerModel", "AlignerOptim", "AlignerTokenizers"],
            swiftSettings: optimize),
        .executableTarget(
            name: "aligner",
            dependencies: [
                "AlignerErrors", "AlignerTensor", "AlignerGGUF",
                "AlignerBench", "AlignerDistributed",
                "AlignerData",
                "AlignerTokenizers",
                "AlignerMeasures", "AlignerFiles", "AlignerModel", "AlignerOptim", "AlignerSafetensors",
                "AlignerRecipes", "AlignerFormats", "AlignerRuns", "AlignerInference", "AlignerTraining", "AlignerSweeps", "AlignerHandoff",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: optimize),
        // Random mutations of valid files for the parsers' fuzz tests.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        // A tiny recipe, a quiet trainer and a temporary folder for the tests of the modules from recipes up.
        .target(name: "TrainingTestSupport", dependencies: ["AlignerRecipes", "AlignerTraining"], path: "Tests/TrainingTestSupport"),
        .testTarget(name: "AlignerFilesTests", dependencies: ["AlignerErrors", "AlignerFiles"]),
        .testTarget(name: "AlignerTensorTests", dependencies: ["AlignerTensor"]),
        .testTarget(name: "AlignerSafetensorsTests", dependencies: ["AlignerSafetensors", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "AlignerGGUFTests", dependencies: ["AlignerGGUF", "AlignerSafetensors", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(
            name: "AlignerModelTests", dependencies: ["AlignerModel", "AlignerOptim", "AlignerSafetensors", "TestSupport"],
            exclude: ["Fixtures"]),
        .testTarget(name: "AlignerOptimTests", dependencies: ["AlignerOptim"]),
        .testTarget(name: "AlignerTokenizersTests", dependencies: ["AlignerTokenizers", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "AlignerJinjaTests", dependencies: ["AlignerJinja", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "AlignerDataTests", dependencies: ["AlignerData", "AlignerErrors", "TestSupport"]),
        .testTarget(name: "AlignerRecipesTests", dependencies: ["AlignerData", "AlignerModel", "AlignerRecipes", "AlignerRuns", "AlignerSweeps", "AlignerTraining", "TrainingTestSupport"]),
        .testTarget(name: "AlignerFormatsTests", dependencies: ["AlignerData", "AlignerFiles", "AlignerFormats", "AlignerGGUF", "AlignerInference", "AlignerMeasures", "AlignerModel", "AlignerRecipes", "AlignerRuns", "AlignerSafetensors", "AlignerTensor", "AlignerTokenizers", "TrainingTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "AlignerRunsTests", dependencies: ["AlignerData", "AlignerFiles", "AlignerInference", "AlignerModel", "AlignerRecipes", "AlignerRuns", "TestSupport", "TrainingTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "AlignerInferenceTests", dependencies: ["AlignerData", "AlignerInference", "AlignerMeasures", "AlignerReports", "AlignerModel", "AlignerRecipes", "AlignerRuns", "AlignerTensor", "AlignerTraining"]),
        .testTarget(name: "AlignerTrainingTests", dependencies: ["AlignerData", "AlignerFormats", "AlignerInference", "AlignerMeasures", "AlignerModel", "AlignerRecipes", "AlignerRuns", "AlignerSafetensors", "AlignerSweeps", "AlignerTensor", "AlignerTokenizers", "AlignerTraining", "TrainingTestSupport"]),
        .testTarget(name: "AlignerSweepsTests", dependencies: ["AlignerData", "AlignerRecipes", "AlignerRuns", "AlignerSweeps", "AlignerTraining", "TrainingTestSupport"]),
        .testTarget(name: "AlignerMeasuresTests", dependencies: ["AlignerMeasures"]),
        .testTarget(name: "AlignerReportsTests", dependencies: ["AlignerReports"]),
        // Runs the built executable as a user would (the dependency makes `swift test` build it).
        .testTarget(name: "alignerTests", dependencies: ["aligner"]),
    ]
)
