import AlignerTensor
import Foundation

/// Declares a model's parameters as the model is built, in the spirit of candle's `VarBuilder`: one call gives the
/// Hugging Face name, the shape and the tensor together, so names are written once, in the order Hugging Face's
/// `named_parameters()` lists them. Freezing, adapters and other model families hook in here.
///
/// The tensors come from one of two sources: weights by name (each checked for presence, shape and finite values;
/// `finish()` then refuses names nobody declared), or a seeded initialisation (matrices normal(0, std) drawn in
/// declaration order from one generator, biases at 0, norm weights at 1 (at 0 for Gemma's offset norms), as Hugging
/// Face initialises these models).
public final class ParameterBuilder {
    enum Source {
        case weights([String: Tensor])
        case random(SeededGenerator, std: Float)
    }

    private var source: Source
    /// Declared names in order, with their tensors.
    public private(set) var names: [String] = []
    public private(set) var tensors: [String: Tensor] = [:]

    /// Parameters taken from `weights` (Hugging Face names).
    public init(weights: [String: Tensor]) { source = .weights(weights) }

    /// Parameters drawn from `seed`.
    public init(seed: UInt64, std: Float) { source = .random(SeededGenerator(seed: seed), std: std) }

    /// The scope under `prefix` ("model.layers.3").
    public func scope(_ prefix: String) -> ParameterScope { ParameterScope(builder: self, prefix: prefix) }

    /// The root scope.
    public var root: ParameterScope { ParameterScope(builder: self, prefix: "") }

    /// How a seeded parameter starts.
    enum Initial { case normal, ones, zeros }

    /// Declares `name` with `shape`; seeded parameters start as `initial` says.
    func declare(_ name: String, shape: [Int], initial: Initial) throws -> Tensor {
        let t: Tensor
        switch source {
        case .weights(let weights):
            guard let w = weights[name] else { throw WeightError(name: name, message: "missing") }
            guard w.shape == shape else { throw WeightError(name: name, message: "shape \(w.shape), expected \(shape)") }
            let bad = w.nonFiniteCount
            guard bad == 0 else { throw WeightError(name: name, message: "\(bad) of its \(w.count) values are NaN or infinite") }
            t = w.isLeaf && !w.requiresGrad ? w : w.detached()
        case .random(var rng, let std):
            switch initial {
            case .normal: t = Tensor.randomNormal(shape, std: std, generator: &rng)
            case .ones: t = Tensor.ones(shape)
            case .zeros: t = Tensor.zeros(shape)
            }
            source = .random(rng, std: std)
        }
        guard tensors[name] == nil else { throw WeightError(name: name, message: "declared twice") }
        t.name = name
        t.requiringGrad(true)
        names.append(name)
        tensors[name] = t
        return t
    }

    /// Refuses weights that no declaration took, except those `ignorable` accepts (buffers, tied heads).
    public func finish(ignoring ignorable: (String) -> Bool = { _ in false }) throws {
        guard case .weights(let weights) = source else { return }
        for name in weights.keys.sorted() where tensors[name] == nil && !ignorable(name) {
            throw WeightError(name: name, message: "unexpected (not a parameter of this configuration)")
        }
    }
}

/// A name prefix within a `ParameterBuilder`.
public struct ParameterScope {
    let builder: ParameterBuilder
    public let prefix: String

    func qualified(_ name: String) -> String { prefix.isEmpty ? name : prefix + "." + name }

    /// A nested scope ("layers" then "3" gives "model.layers.3").
    public func scope(_ name: String) -> ParameterScope { ParameterScope(builder: builder, prefix: qualified(name)) }

    /// `name.weight` of a linear layer without bias: (out, in), as PyTorch stores it.
    public func linear(_ name: String, out: Int, in inputs: Int) throws -> Tensor {
        try builder.declare(qualified(name) + ".weight", shape: [out, inputs], initial: .normal)
    }

    /// `name.weight` (out, in) and, when `bias`, `name.bias` (out) of a linear layer, in PyTorch's order.
    public func linear(_ name: String, out: Int, in inputs: Int, bias: Bool) throws -> (weight: Tensor, bias: Tensor?) {
        let w = try linear(name, out: out, in: inputs)
        return (w, bias ? try builder.declare(qualified(name) + ".bias", shape: [out], initial: .zeros) : nil)
    }

    /// `name.weight` of an embedding table: (count, width).
    public func embedding(_ name: String, count: Int, width: Int) throws -> Tensor {
        try builder.declare(qualified(name) + ".weight", shape: [count, width], initial: .normal)
    }

    /// `name.weight` of a norm: (size), initialised to 1, or to 0 when the norm adds 1 to its weights (`offset`).
    public func norm(_ name: String, size: Int, offset: Bool = false) throws -> Tensor {
        try builder.declare(qualified(name) + ".weight", shape: [size], initial: offset ? .zeros : .ones)
    }
}
