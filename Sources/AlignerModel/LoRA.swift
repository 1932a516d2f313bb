import AlignerTensor
import Foundation

/// Low-rank adapters (LoRA, Hu et al. 2021) as Hugging Face PEFT defines them: a targeted linear layer y = x·Wᵀ + b
/// becomes y = x·Wᵀ + b + scaling · (dropout(x)·Aᵀ)·Bᵀ with A (r, in) and B (out, r), scaling = alpha / r, or
/// alpha / √r with rsLoRA (Kalajdzievski 2023). A starts Kaiming-uniform (bound 1/√in, PEFT's default), B at zero,
/// so a fresh adapter leaves the model unchanged. The base weights are frozen while adapters are attached.
public struct LoRAConfig: Equatable, Sendable, Codable {
    /// r, the adapters' inner size.
    public var rank: Int
    public var alpha: Double
    /// Dropout on the adapters' input during training (0 = none).
    public var dropout: Double
    /// Linear layers to adapt, by module name (`q_proj` … `down_proj`, Phi-3's fused `qkv_proj` and `gate_up_proj`;
    /// the short forms `q`, `k`, `v`, `o`, `gate`, `up`, `down`, `qkv`, `gate_up`), or `all-linear` for every projection
    /// of the blocks (PEFT's spelling; the LM head is never adapted).
    public var targets: [String]
    /// Scaling alpha / √r instead of alpha / r.
    public var rsLoRA: Bool

    public init(rank: Int = 16, alpha: Double = 32, dropout: Double = 0.05, targets: [String] = ["all-linear"], rsLoRA: Bool = false) {
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        self.targets = targets
        self.rsLoRA = rsLoRA
    }

    /// The factor of the low-rank product.
    public var scaling: Double { rsLoRA ? alpha / Double(rank).squareRoot() : alpha / Double(rank) }

    /// Every projection name of a block, unfused and fused.
    public static let projections = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "qkv_proj", "gate_up_proj"]

    /// Checks rank, alpha, dropout and target names (not yet against a model).
    public func validate() throws {
        func fail(_ field: String, _ m: String) -> ModelInputError { ModelInputError(field: "lora." + field, message: m) }
        guard rank >= 1 && rank <= 4096 else { throw fail("rank", "must be within 1...4096, got \(rank)") }
        guard alpha.isFinite && alpha > 0 else { throw fail("alpha", "must be a positive number, got \(alpha)") }
        guard dropout.isFinite && dropout >= 0 && dropout < 1 else { throw fail("dropout", "must be in [0, 1), got \(dropout)") }
        guard !targets.isEmpty else { throw fail("targets", "names no layer (use module names such as q_proj, or all-linear)") }
        for t in targets where t != "all-linear" && Self.moduleName(t) == nil {
            throw fail("targets", "'\(t)' is not a linear layer of a block (known: \(Self.projections.joined(separator: ", ")), all-linear)")
        }
    }

    /// The module name for a target (`q` → `q_proj`), nil when unknown.
    static func moduleName(_ target: String) -> String? {
        let name = target.hasSuffix("_proj") ? target : target + "_proj"
        return projections.contains(name) ? name : nil
    }

    /// The module names this configuration adapts in a model with `available` projections (in PEFT's
    /// `target_modules` spelling). Throws for a target the model does not have, naming what it has.
    public func modules(available: [String]) throws -> [String] {
        if targets.contains("all-linear") { return available }
        var out: [String] = []
        for t in targets {
            guard let name = Self.moduleName(t) else { throw ModelInputError(field: "lora.targets", message: "'\(t)' is not a linear layer of a block") }
            guard available.contains(name) else {
                let hint = ["q_proj", "k_proj", "v_proj"].contains(name) && available.contains("qkv_proj") ? " (this model fuses q, k and v: target qkv_proj)"
                    : ["gate_proj", "up_proj"].contains(name) && available.contains("gate_up_proj") ? " (this model fuses gate and up: target gate_up_proj)" : ""
                throw ModelInputError(field: "lora.targets", message: "this model has no \(name)\(hint); its linear layers are \(available.joined(separator: ", "))")
            }
            if !out.contains(name) { out.append(name) }
        }
        return available.filter(out.contains)
    }
}

/// One adapter of a linear layer: A (r, in) and B (out, r).
struct LowRankAdapter {
    let a: Tensor  // (r, in)
    let b: Tensor  // (out, r)
    /// Position among the model's adapters (decorrelates their dropout masks).
    let index: Int
}

extension LlamaModel {
    /// The projection module names of this model's blocks, in PEFT's order within a layer.
    public var linearModules: [String] {
        config.fusedProjections ? ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
            : ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    }

    /// The Hugging Face module path ("model.layers.3.self_attn.q_proj") of every adapted linear layer's weight name.
    static func modulePath(ofWeight name: String) -> String { String(name.dropLast(".weight".count)) }

    /// Attaches fresh adapters (A Kaiming-uniform from `seed`, B zero) to the layers `config` targets and freezes the
    /// base. Adapter names are PEFT's without its `base_model.model.` prefix: `<module path>.lora_A.weight`.
    public func attachAdapters(_ lora: LoRAConfig, seed: UInt64) throws {
        try attachAdapters(lora, seed: seed) { path, shapeA, shapeB, rng in
            let bound = 1 / Float(shapeA[1]).squareRoot()  // kaiming_uniform_(a=√5): gain √(2/6), bound √3·gain/√in
            return (Tensor.randomUniform(shapeA, low: -bound, high: bound, generator: &rng), Tensor.zeros(shapeB))
        }
    }

    /// Attaches adapters with the given weights (names as `adapterNames`: `<module path>.lora_A.weight`, `.lora_B.weight`),
    /// each checked for presence, shape and finite values; extra names are an error.
    public func attachAdapters(_ lora: LoRAConfig, weights: [String: Tensor]) throws {
        var used = Set<String>()
        try attachAdapters(lora, seed: 0) { path, shapeA, shapeB, _ in
            func take(_ name: String, _ shape: [Int]) throws -> Tensor {
                guard let t = weights[name] else { throw WeightError(name: name, message: "missing") }
                guard t.shape == shape else { throw WeightError(name: name, message: "shape \(t.shape), expected \(shape)") }
                let bad = t.nonFiniteCount
                guard bad == 0 else { throw WeightError(name: name, message: "\(bad) of its \(t.count) values are NaN or infinite") }
                used.insert(name)
                return t.detached()
            }
            return (try take(path + ".lora_A.weight", shapeA), try take(path + ".lora_B.weight", shapeB))
        }
        if let extra = weights.keys.sorted().first(where: { !used.contains($0) }) {
            detachAdapters()
            throw WeightError(name: extra, message: "unexpected (no adapted layer has this name with lora \(lora.targets))")
        }
    }

    private func attachAdapters(
        _ lora: LoRAConfig, seed: UInt64, make: (String, [Int], [Int], inout SeededGenerator) throws -> (Tensor, Tensor)
    ) throws {
        guard self.lora == nil else { throw ModelInputError(field: "lora", message: "the model already has adapters; merge or detach them first") }
        try lora.validate()
        let modules = Set(try lora.modules(available: linearModules))
        var rng = SeededGenerator(seed: seed)
        var names: [String] = [], tensors: [String: Tensor] = [:], byWeight: [ObjectIdentifier: LowRankAdapter] = [:]
        for name in parameterNames where name.hasSuffix(".weight") {
            let path = Self.modulePath(ofWeight: name)
            guard let module = path.split(separator: ".").last, modules.contains(String(module)), path.contains(".layers.") else { continue }
            let w = parameters[name]!  // (out, in)
            let (a, b) = try make(path, [lora.rank, w.shape[1]], [w.shape[0], lora.rank], &rng)
            for (suffix, t) in [(".lora_A.weight", a), (".lora_B.weight", b)] {
                t.name = path + suffix
                t.requiringGrad(true)
                names.append(path + suffix)
                tensors[path + suffix] = t
            }
            byWeight[ObjectIdentifier(w)] = LowRankAdapter(a: a, b: b, index: byWeight.count)
        }
        self.lora = lora
        adapterNames = names
        adapters = tensors
        adapterByWeight = byWeight
        for p in parameters.values { p.requiringGrad(false) }
    }

    /// Removes the adapters without merging them and makes the base trainable again.
    public func detachAdapters() {
        lora = nil
        adapterNames = []
        adapters = [:]
        adapterByWeight = [:]
        for p in parameters.values { p.requiringGrad(true) }
    }

    /// Adds scaling · B·A into each adapted weight (PEFT's `merge_and_unload`), removes the adapters and makes the base
    /// trainable again.
    public func mergeAdapters() {
        guard lora != nil else { return }
        let merged = mergedWeights()
        for name in parameterNames where merged[name]! !== parameters[name]! { parameters[name]!.assign(from: merged[name]!) }
        detachAdapters()
    }

    /// A copy of the weights with the adapters merged in (the model is unchanged), for export.
    public func mergedWeights() -> [String: Tensor] {
        guard let lora else { return parameters }
        let scale = Float(lora.scaling)
        var out: [String: Tensor] = [:]
        withNoGrad {
            for name in parameterNames {
                let w = parameters[name]!
                guard let ad = adapterByWeight[ObjectIdentifier(w)] else { out[name] = w; continue }
                let merged = w.detached(), delta = ad.b.matmul(ad.a)  // (out, in)
                let p = merged.data, d = delta.data
                for i in 0..<merged.count { p[i] += scale * d[i] }
                merged.name = name
                out[name] = merged
            }
        }
        return out
    }

    /// The parameters training updates: the adapters when attached, else every parameter.
    public var trainableParameters: [String: Tensor] { lora != nil ? adapters : parameters }
    /// Their names in order (`adapterNames` or `parameterNames`).
    public var trainableNames: [String] { lora != nil ? adapterNames : parameterNames }
    /// `trainableParameters` in `trainableNames` order.
    public var orderedTrainable: [Tensor] { trainableNames.map { trainableParameters[$0]! } }

    /// x (…, in) through the linear layer `weight` (out, in) with its bias and its low-rank adapter, when it has one:
    /// (…, out). Adapter dropout is on while `adapterDropoutSeed` is set.
    func adapted(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor? {
        guard let lora, let ad = adapterByWeight[ObjectIdentifier(weight)] else { return nil }
        let p = adapterDropoutSeed == nil ? 0 : Float(lora.dropout)
        let key = (adapterDropoutSeed ?? 0) &+ UInt64(ad.index) &* 0x9E37_79B9_7F4A_7C15
        return Tensor.lowRankLinear(x, weight: weight, bias: bias, a: ad.a, b: ad.b, scale: Float(lora.scaling), dropout: p, dropoutKey: key,
                                   dropoutRowOffset: adapterDropoutPositionOffset)
    }
}
