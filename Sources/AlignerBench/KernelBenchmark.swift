import AlignerTensor
import Foundation

/// One timed kernel: name, shape description, seconds per call, and the work it does.
public struct KernelTiming: Sendable {
    public let name: String
    public let shape: String
    public let seconds: Double
    /// Floating-point operations per call (0 when the kernel is memory-bound and reported in GB/s).
    public let flops: Double
    /// Bytes read and written per call (the minimum traffic).
    public let bytes: Double

    public var line: String {
        let ms = String(format: "%9.3f ms", seconds * 1e3)
        let rate = flops > 0
            ? String(format: "%8.1f GFLOP/s", flops / seconds / 1e9)
            : String(format: "%8.1f GB/s   ", bytes / seconds / 1e9)
        return "\(name.padding(toLength: 26, withPad: " ", startingAt: 0)) \(shape.padding(toLength: 30, withPad: " ", startingAt: 0)) \(ms) \(rate)"
    }
}

/// Times the matrix product and each fused kernel at transformer shapes.
public enum KernelBenchmark {
    /// Calls `body` until `minSeconds` have passed (after `warmup` calls) and returns the median seconds per call.
    public static func time(warmup: Int = 2, minSeconds: Double = 0.4, minRuns: Int = 5, _ body: () -> Void) -> Double {
        for _ in 0..<warmup { body() }
        var samples: [Double] = []
        let clock = ContinuousClock()
        let start = clock.now
        while samples.count < minRuns || (clock.now - start) < .seconds(minSeconds) {
            let t0 = clock.now
            body()
            let d = clock.now - t0
            samples.append(d.inSeconds)
            if samples.count > 10_000 { break }
        }
        samples.sort()
        return samples[samples.count / 2]
    }

    /// Runs every kernel benchmark, printing each line through `report` as it finishes.
    public static func run(quick: Bool = false, report: (String) -> Void) -> [KernelTiming] {
        var rng = SeededGenerator(seed: 1)
        let minSeconds = quick ? 0.05 : 0.4
        var results: [KernelTiming] = []
        func emit(_ t: KernelTiming) { results.append(t); report(t.line) }
        func rand(_ shape: [Int], grad: Bool = false) -> Tensor {
            Tensor.randomNormal(shape, generator: &rng, requiresGrad: grad)
        }
        func timeForwardBackward(_ name: String, _ shape: String, flops: (Double, Double) = (0, 0),
                                 bytes: (Double, Double), inputs: [Tensor], _ f: () -> Tensor) {
            let fwd = time(minSeconds: minSeconds) { withNoGrad { _ = f() } }
            emit(KernelTiming(name: name + " fwd", shape: shape, seconds: fwd, flops: flops.0, bytes: bytes.0))
            var probe: Tensor? = nil
            let total = time(minSeconds: minSeconds) {
                let out = f()
                if probe == nil { probe = Tensor.ones(out.shape) }
                out.backward(gradient: probe!)
                for x in inputs { x.releaseGrad() }
            }
            emit(KernelTiming(name: name + " bwd", shape: shape, seconds: max(total - fwd, 1e-9), flops: flops.1,
                              bytes: bytes.1))
        }

        // Matrix products at a linear layer's shape: (2048 x 256) by (256 x 768).
        let (m, k, n) = (2048, 256, 768)
        let mmFlops = 2.0 * Double(m * n * k)
        do {
            let a = rand([m, k]), b = rand([k, n]), bt = rand([n, k]), at = rand([k, m])
            let shape = "\(m)x\(k) · \(k)x\(n)"
            emit(KernelTiming(name: "matmul NN", shape: shape, seconds: time(minSeconds: minSeconds) {
                _ = a.matmul(b) }, flops: mmFlops, bytes: 0))
            emit(KernelTiming(name: "matmul NT (x·Wᵀ)", shape: shape, seconds: time(minSeconds: minSeconds) {
                _ = a.matmul(bt, transposeOther: true) }, flops: mmFlops, bytes: 0))
            emit(KernelTiming(name: "matmul TN (xᵀ·g)", shape: shape, seconds: time(minSeconds: minSeconds) {
                _ = at.matmul(b, transposeSelf: true) }, flops: mmFlops, bytes: 0))
        }

        // GEMM engines on SmolLM2-135M's linear layers (batch 4 × 256 tokens): OpenBLAS and oneDNN in float32, oneDNN
        // in bf16 where this CPU has a bf16 matmul, and the emulated bf16 products used elsewhere.
        for (m, k, n) in [(1024, 576, 576), (1024, 576, 1536), (1024, 1536, 576)] {
            let flops = 2.0 * Double(m * n * k)
            let x = rand([m, k]), w = rand([n, k])
            let shape = "\(m)x\(k) · (\(n)x\(k))ᵀ"
            emit(KernelTiming(name: "sgemm OpenBLAS", shape: shape, seconds: time(minSeconds: minSeconds) {
                _ = x.matmul(w, transposeOther: true) }, flops: flops, bytes: 0))
            if OneDNN.isAvailable {
                OneDNN.setThreads(BLAS.threads)
                emit(KernelTiming(name: "sgemm oneDNN", shape: shape, seconds: time(minSeconds: minSeconds) {
                    _ = try? OneDNN.linearF32(x, w) }, flops: flops, bytes: 0))
            }
            let label = MatmulPrecision.bf16IsNative ? "bf16 oneDNN" : "bf16 emulated"
            emit(KernelTiming(name: label, shape: shape, seconds: time(minSeconds: minSeconds) {
                ComputeContext.current.with(matmul: .bf16).run { _ = x.matmul(w, transposeOther: true) } }, flops: flops, bytes: 0))
        }

        let rows = 2048, width = 768
        let f4 = 4.0
        do {
            let x = rand([rows, width], grad: true), y = rand([rows, width], grad: true)
            let bytes = f4 * Double(rows * width)
            timeForwardBackward("add", "\(rows)x\(width)", bytes: (3 * bytes, 4 * bytes), inputs: [x, y]) { x + y }
            timeForwardBackward("silu", "\(rows)x\(width)", bytes: (2 * bytes, 4 * bytes), inputs: [x]) { x.silu() }
            timeForwardBackward("gelu (tanh)", "\(rows)x\(width)", bytes: (2 * bytes, 4 * bytes), inputs: [x]) {
                x.gelu(approximate: .tanh) }
            timeForwardBackward("softmax", "\(rows)x\(width)", bytes: (2 * bytes, 4 * bytes), inputs: [x]) { x.softmax() }
        }
        do {
            let c = 256
            let x = rand([rows, c], grad: true)
            let w = Tensor.ones([c], requiresGrad: true), bias = Tensor.zeros([c], requiresGrad: true)
            let bytes = f4 * Double(rows * c)
            timeForwardBackward("rmsnorm", "\(rows)x\(c)", bytes: (2 * bytes, 4 * bytes), inputs: [x, w]) {
                Tensor.rmsNorm(x, weight: w, eps: 1e-5) }
            timeForwardBackward("layernorm", "\(rows)x\(c)", bytes: (2 * bytes, 4 * bytes), inputs: [x, w, bias]) {
                Tensor.layerNorm(x, weight: w, bias: bias, eps: 1e-5) }
        }
        do {
            let vocab = 4096
            let logits = rand([rows, vocab], grad: true)
            let targets = (0..<rows).map { i in i % 7 == 0 ? -100 : (i * 31) % vocab }
            let bytes = f4 * Double(rows * vocab)
            timeForwardBackward("cross-entropy", "\(rows)x\(vocab)", bytes: (bytes, 3 * bytes), inputs: [logits]) {
                Tensor.crossEntropy(logits, targets: targets) }
            let table = rand([vocab, 256], grad: true)
            let ids = (0..<rows).map { ($0 * 7919) % vocab }
            let eb = f4 * Double(rows * 256)
            timeForwardBackward("embedding", "\(rows) ids, \(vocab)x256", bytes: (2 * eb, 3 * eb), inputs: [table]) {
                Tensor.embedding(table, ids: ids, shape: [rows]) }
        }
        do {
            let (b, h, t, d) = (8, 8, 256, 32)
            let q = rand([b, h, t, d], grad: true), k = rand([b, h, t, d], grad: true), v = rand([b, h, t, d], grad: true)
            let table = RopeTable(headDim: d, theta: 10_000, positions: t)
            let pos = Array(0..<t)
            let rb = f4 * Double(b * h * t * d)
            timeForwardBackward("rope", "\(b)x\(h)x\(t)x\(d)", bytes: (2 * rb, 3 * rb), inputs: [q]) {
                q.rope(positions: pos, table: table) }
            // Full (unmasked) products: QKᵀ and PV forward, four products backward.
            let fl = 2.0 * 2.0 * Double(b * h * t * t * d)
            timeForwardBackward("attention (causal)", "B\(b) H\(h) T\(t) D\(d)", flops: (fl, 2 * fl), bytes: (0, 0),
                                inputs: [q, k, v]) {
                Tensor.attention(q: q, k: k, v: v, causal: true) }
        }
        return results
    }
}

