import AlignerTensor
import Foundation

/// The Hugging Face architectures one `LlamaModel` implements, each a small set of switches on the Llama block
/// (read from and written to the family's own `config.json` field names):
///
/// | family | class | differences from Llama |
/// |---|---|---|
/// | llama | `LlamaForCausalLM` | (optional `attention_bias`, `mlp_bias`) |
/// | mistral | `MistralForCausalLM` | sliding-window attention (`sliding_window`) |
/// | qwen2 | `Qwen2ForCausalLM` | biases on q, k, v (not o); optional sliding window on upper layers |
/// | qwen3 | `Qwen3ForCausalLM` | RMSNorm per head on q and k (`q_norm`, `k_norm`) before RoPE |
/// | gemma | `GemmaForCausalLM` | embedding × √hidden, RMSNorm with (1 + w), GeGLU (`gelu_pytorch_tanh`) |
/// | phi3 | `Phi3ForCausalLM` | fused `qkv_proj` and `gate_up_proj`; `partial_rotary_factor` |
public enum ModelFamily: String, Codable, Sendable, CaseIterable {
    case llama, mistral, qwen2, qwen3, gemma, phi3

    /// The `architectures` entry transformers writes for the family.
    public var architecture: String {
        switch self {
        case .llama: "LlamaForCausalLM"
        case .mistral: "MistralForCausalLM"
        case .qwen2: "Qwen2ForCausalLM"
        case .qwen3: "Qwen3ForCausalLM"
        case .gemma: "GemmaForCausalLM"
        case .phi3: "Phi3ForCausalLM"
        }
    }
}

/// The MLP's activation (`hidden_act`): SwiGLU with `silu`, GeGLU with the GELU variants.
public enum HiddenActivation: String, Codable, Sendable {
    case silu
    /// `gelu_pytorch_tanh` (also `gelu_new`, `gelu_fast` compute the same function).
    case geluTanh = "gelu_pytorch_tanh"
    /// Exact GELU with erf.
    case gelu
}

/// Rotary-embedding frequency scaling (`rope_parameters` in transformers 5, `rope_scaling` in 4.x), computed as
/// transformers' `ROPE_INIT_FUNCTIONS` do. `dynamic` equals the default within `max_position_embeddings`, the longest
/// sequence AlignerKit processes, so it is kept for export and needs no other change.
public struct RopeScaling: Equatable, Sendable {
    public enum Kind: String, Sendable, CaseIterable { case linear, dynamic, llama3, yarn }
    public var kind: Kind
    public var factor: Double
    /// llama3: `low_freq_factor`, `high_freq_factor`.
    public var lowFreqFactor: Double?
    public var highFreqFactor: Double?
    /// llama3 and yarn: the pretraining context (defaults to max_position_embeddings for yarn).
    public var originalMaxPositionEmbeddings: Int?
    /// yarn: `attention_factor`, `beta_fast`, `beta_slow`, `mscale`, `mscale_all_dim`, `truncate`.
    public var attentionFactor: Double?
    public var betaFast: Double?
    public var betaSlow: Double?
    public var mscale: Double?
    public var mscaleAllDim: Double?
    public var truncate: Bool?

    public init(kind: Kind, factor: Double, lowFreqFactor: Double? = nil, highFreqFactor: Double? = nil,
                originalMaxPositionEmbeddings: Int? = nil, attentionFactor: Double? = nil, betaFast: Double? = nil,
                betaSlow: Double? = nil, mscale: Double? = nil, mscaleAllDim: Double? = nil, truncate: Bool? = nil) {
        self.kind = kind
        self.factor = factor
        self.lowFreqFactor = lowFreqFactor
        self.highFreqFactor = highFreqFactor
        self.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
        self.attentionFactor = attentionFactor
        self.betaFast = betaFast
        self.betaSlow = betaSlow
        self.mscale = mscale
        self.mscaleAllDim = mscaleAllDim
        self.truncate = truncate
    }

    /// Throws `ConfigError` (field `rope_parameters`) for values the formulas cannot use.
    func validate() throws {
        func fail(_ m: String) -> ConfigError { ConfigError(field: "rope_parameters", message: m) }
        guard factor.isFinite, factor > 0 else { throw fail("factor must be a positive number, got \(factor)") }
        if kind == .llama3 {
            guard let low = lowFreqFactor, let high = highFreqFactor, originalMaxPositionEmbeddings != nil else {
                throw fail("rope_type 'llama3' needs low_freq_factor, high_freq_factor and original_max_position_embeddings")
            }
            guard low > 0, high > low else { throw fail("llama3 needs 0 < low_freq_factor < high_freq_factor, got \(low) and \(high)") }
        }
        if let o = originalMaxPositionEmbeddings, o <= 0 { throw fail("original_max_position_embeddings must be positive, got \(o)") }
        for (name, v) in [("attention_factor", attentionFactor), ("beta_fast", betaFast), ("beta_slow", betaSlow)] {
            if let v, !(v.isFinite && v > 0) { throw fail("\(name) must be a positive number, got \(v)") }
        }
    }

    /// Inverse frequencies for a rotary size `dim` and base `theta`, and the attention scaling of cos/sin, in Float32
    /// as transformers computes them.
    func inverseFrequencies(dim: Int, theta: Double, maxPositionEmbeddings: Int) -> (inv: [Float], scaling: Float) {
        let base = RopeTable.defaultInverseFrequencies(rotaryDim: dim, theta: Float(theta))
        let factorF = Float(factor)
        switch kind {
        case .dynamic:
            return (base, 1)
        case .linear:
            return (base.map { $0 / factorF }, 1)
        case .llama3:
            let old = Float(originalMaxPositionEmbeddings!), low = Float(lowFreqFactor!), high = Float(highFreqFactor!)
            let lowWavelen = old / low, highWavelen = old / high
            return (base.map { f in
                let wavelen = 2 * Float.pi / f
                let scaled = wavelen > lowWavelen ? f / factorF : f
                if wavelen < highWavelen || wavelen > lowWavelen { return scaled }
                let smooth = (old / wavelen - low) / (high - low)
                return (1 - smooth) * scaled / factorF + smooth * scaled
            }, 1)
        case .yarn:
            func mscaleOf(_ scale: Double, _ m: Double = 1) -> Double { scale <= 1 ? 1 : 0.1 * m * Foundation.log(scale) + 1 }
            let attention: Double
            if let a = attentionFactor {
                attention = a
            } else if let m = mscale, let all = mscaleAllDim, m != 0, all != 0 {
                attention = mscaleOf(factor, m) / mscaleOf(factor, all)
            } else {
                attention = mscaleOf(factor)
            }
            let original = Double(originalMaxPositionEmbeddings ?? maxPositionEmbeddings)
            let fast = betaFast ?? 32, slow = betaSlow ?? 1
            func correctionDim(_ rotations: Double) -> Double {
                Double(dim) * Foundation.log(original / (rotations * 2 * Double.pi)) / (2 * Foundation.log(theta))
            }
            var low = correctionDim(fast), high = correctionDim(slow)
            if truncate ?? true { low = low.rounded(.down); high = high.rounded(.up) }
            low = max(low, 0)
            high = min(high, Double(dim - 1))
            if low == high { high += 0.001 }
            let (lowF, highF) = (Float(low), Float(high))
            let inv = base.indices.map { i -> Float in
                let posFreq = Foundation.pow(Float(theta), Float(2 * i) / Float(dim))
                let extrapolation = 1 / posFreq, interpolation = 1 / (factorF * posFreq)
                let ramp = min(max((Float(i) - lowF) / (highF - lowF), 0), 1)
                let extrapolationFactor = 1 - ramp
                return interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor
            }
            return (inv, Float(attention))
        }
    }
}
