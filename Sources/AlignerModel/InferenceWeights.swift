import AlignerTensor

/// The type of the weights matrix products read while a model generates. Training, `forward`, `loss` and evaluation
/// losses always use the float32 parameters; only generation (and `withInferenceWeights`) reads these.
public enum InferenceWeights: String, Sendable, CaseIterable {
    /// The float32 parameters themselves.
    case f32
    /// Every linear weight and the language-model head held as Q8_0 (8-bit blocks of 32, llama.cpp's format), the
    /// activations quantised to Q8_0 per row: a quarter of the bytes per decoding step. Matrices whose input width is
    /// not a multiple of 32 stay float32. Decoding steps read these; a prompt's prefill longer than `decodeRows`
    /// tokens runs on the float32 parameters (for a model read from a Q8_0 file, the same values as its blocks).
    case q8_0
}

extension LlamaModel {
    /// Chooses the weights generation reads (`.q8_0` quantises every linear weight and the head once, now; `.f32`
    /// drops the quantised copies). The float32 parameters are kept either way (training and losses use them).
    public func setInferenceWeights(_ type: InferenceWeights) {
        inferenceWeightType = type
        quantized = [:]
        guard type == .q8_0 else { return }
        for w in decodedMatrices where Q8Matrix.canQuantize(w) { quantized[ObjectIdentifier(w)] = Q8Matrix(quantizing: w) }
    }

    /// Every matrix a decoding step multiplies with: each block's linear weights, then the head.
    var decodedMatrices: [Tensor] {
        blocks.flatMap { w in [w.q, w.k, w.v, w.qkv, w.o, w.gate, w.up, w.gateUp, w.down].compactMap { $0 } } + [head]
    }

    /// Bytes of weights a decoding step reads: every linear weight and the head once (as Q8_0 where quantised, float32
    /// otherwise), plus the norms.
    public var inferenceWeightBytes: Int {
        let norms = blocks.reduce(finalNorm.count) { $0 + $1.inputNorm.count + $1.postNorm.count }
        return decodedMatrices.reduce(4 * norms) { $0 + (quantized[ObjectIdentifier($1)]?.byteCount ?? 4 * $1.count) }
    }

    /// Runs `body` without recording gradients, with matrix products reading the inference weights
    /// (`setInferenceWeights`): what generation does. `forward` inside it gives the logits generation sees.
    public func withInferenceWeights<R>(_ body: () throws -> R) rethrows -> R {
        try withNoGrad {
            let previous = readsInferenceWeights
            readsInferenceWeights = true
            defer { readsInferenceWeights = previous }
            return try body()
        }
    }

    /// Products of at most this many rows (every decoding step of up to 64 sequences, and prompts this short) read
    /// the inference weights through the row kernels; longer ones (a prompt's prefill) run as one float32 GEMM on the
    /// parameters, which is faster there. Each prompt is prefilled alone, so results still do not depend on the slots.
    public static let decodeRows = 64

    /// x (…, in) times weight (out, in)ᵀ in generation, without bias: the Q8_0 copy or the float32 row kernel for a
    /// few rows; nil for many rows (the caller's GEMM).
    @inline(__always) func inferenceProduct(_ x: Tensor, _ weight: Tensor) -> Tensor? {
        let rows = x.count / max(weight.shape[1], 1)
        guard rows <= Self.decodeRows else { return nil }
        if let q = quantized[ObjectIdentifier(weight)] { return x.matmul(q8: q) }
        return x.matmul(rows: weight)
    }

    /// Logits (…, vocab) of final normalised hidden states (…, C): the head, read as generation reads weights.
    func headLogits(_ normed: Tensor) -> Tensor {
        if readsInferenceWeights, let y = inferenceProduct(normed, head) { return y }
        return normed.matmul(head, transposeOther: true)
    }
}
