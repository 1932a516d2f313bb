import AlignerErrors
import AlignerTensor
import Foundation

/// Parameters that share optimiser settings (the usual split: weight decay on matrices, none on norms and embeddings).
public struct ParameterGroup: Sendable {
    public var names: [String]
    public var weightDecay: Float

    public init(names: [String], weightDecay: Float) {
        self.names = names
        self.weightDecay = weightDecay
    }

    /// The usual two groups for a transformer: `weightDecay` on rank-2 weights other than embeddings, none on the rest.
    public static func standard(_ parameters: [String: Tensor], order: [String]? = nil, weightDecay: Float) -> [ParameterGroup] {
        let names = order ?? parameters.keys.sorted()
        let decays = { (n: String) in parameters[n]!.rank >= 2 && !n.contains("embed") }
        return [ParameterGroup(names: names.filter(decays), weightDecay: weightDecay),
                ParameterGroup(names: names.filter { !decays($0) }, weightDecay: 0)]
    }
}

/// AdamW with PyTorch's semantics (`torch.optim.AdamW`): decoupled weight decay `p -= lr·wd·p`, bias-corrected
/// moments, eps added after the square root:
///
///     p ← p·(1 − lr·wd);  m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²
///     p ← p − lr/(1−β1ᵗ) · m / (√v / √(1−β2ᵗ) + eps)
///
/// One fused, vectorised pass per parameter. State (m, v per parameter name, and the step count) is serialisable.
public final class AdamW {
    public var beta1: Float
    public var beta2: Float
    public var eps: Float
    public var groups: [ParameterGroup]
    /// Steps taken.
    public private(set) var step = 0
    /// First and second moments by parameter name, created on a parameter's first update.
    public private(set) var moments: [String: (m: Tensor, v: Tensor)] = [:]

    public init(groups: [ParameterGroup], beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8) {
        self.groups = groups
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
    }

    /// Applies one update with learning rate `lr` to every parameter of every group that has a gradient.
    public func update(_ parameters: [String: Tensor], lr: Float) {
        step += 1
        let bc1 = 1 - Foundation.pow(Double(beta1), Double(step))
        let bc2 = 1 - Foundation.pow(Double(beta2), Double(step))
        let stepSize = Float(Double(lr) / bc1)
        let invSqrtBc2 = Float(1 / bc2.squareRoot())
        let (b1, b2, eps) = (beta1, beta2, self.eps)
        withNoGrad {
            for group in groups {
                let decay = 1 - lr * group.weightDecay
                for name in group.names {
                    guard let p = parameters[name] else { preconditionFailure("AdamW: no parameter named \(name)") }
                    guard let g = p.grad else { continue }
                    let state = moments[name] ?? (Tensor.zeros(p.shape), Tensor.zeros(p.shape))
                    moments[name] = state
                    AdamWKernel.apply(
                        count: p.count, p: p.data, g: g.data, m: state.m.data, v: state.v.data, decay: decay, b1: b1,
                        b2: b2, stepSize: stepSize, invSqrtBc2: invSqrtBc2, eps: eps)
                }
            }
        }
    }

    /// The state as named tensors (`<name>.exp_avg`, `<name>.exp_avg_sq`, PyTorch's names) and the step count.
    public func stateDict() -> (tensors: [String: Tensor], step: Int) {
        var out: [String: Tensor] = [:]
        for (name, s) in moments {
            out[name + ".exp_avg"] = s.m.detached()
            out[name + ".exp_avg_sq"] = s.v.detached()
        }
        return (out, step)
    }

    /// Restores a state written by `stateDict()`; shapes are checked against `parameters`.
    public func load(tensors: [String: Tensor], step: Int, parameters: [String: Tensor]) throws {
        var restored: [String: (m: Tensor, v: Tensor)] = [:]
        for (key, m) in tensors where key.hasSuffix(".exp_avg") {
            let name = String(key.dropLast(".exp_avg".count))
            guard let v = tensors[name + ".exp_avg_sq"] else {
                throw OptimizerStateError(message: "\(name): exp_avg without exp_avg_sq")
            }
            guard let p = parameters[name] else { throw OptimizerStateError(message: "\(name): no such parameter") }
            guard m.shape == p.shape, v.shape == p.shape else {
                throw OptimizerStateError(message: "\(name): state shape \(m.shape) does not match parameter \(p.shape)")
            }
            restored[name] = (m.detached(), v.detached())
        }
        moments = restored
        self.step = step
    }
}

/// A saved optimiser state that does not fit.
public struct OptimizerStateError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { "optimizer state: \(message)" }
}

/// The fused AdamW update over one parameter.
enum AdamWKernel {
    static func apply(
        count n: Int, p: UnsafeMutablePointer<Float>, g: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>,
        v: UnsafeMutablePointer<Float>, decay: Float, b1: Float, b2: Float, stepSize: Float, invSqrtBc2: Float, eps: Float
    ) {
        @inline(__always) func one(_ i: Int) {
            let gi = g[i]
            let mi = b1 * m[i] + (1 - b1) * gi
            let vi = b2 * v[i] + (1 - b2) * gi * gi
            m[i] = mi
            v[i] = vi
            p[i] = p[i] * decay - stepSize * mi / (vi.squareRoot() * invSqrtBc2 + eps)
        }
        typealias V = SIMD8<Float>
        let (vb1, vb2, c1, c2) = (V(repeating: b1), V(repeating: b2), V(repeating: 1 - b1), V(repeating: 1 - b2))
        let (vd, vs, vi2, ve) = (V(repeating: decay), V(repeating: stepSize), V(repeating: invSqrtBc2), V(repeating: eps))
        // Chunks of whole vectors, so an element's arithmetic does not depend on the thread count.
        parallelFor((n + 7) / 8, grain: 2048) { vectors in
            var i = vectors.lowerBound * 8
            let end = min(n, vectors.upperBound * 8)
            while i + 8 <= end {
                let gi = UnsafeRawPointer(g + i).loadUnaligned(as: V.self)
                let mi = vb1 * UnsafeRawPointer(m + i).loadUnaligned(as: V.self) + c1 * gi
                let vv = vb2 * UnsafeRawPointer(v + i).loadUnaligned(as: V.self) + c2 * gi * gi
                UnsafeMutableRawPointer(m + i).storeBytes(of: mi, as: V.self)
                UnsafeMutableRawPointer(v + i).storeBytes(of: vv, as: V.self)
                let raw = UnsafeMutableRawPointer(p + i)
                let pi = raw.loadUnaligned(as: V.self)
                raw.storeBytes(of: pi * vd - vs * mi / (vv.squareRoot() * vi2 + ve), as: V.self)
                i += 8
            }
            while i < end { one(i); i += 1 }
        }
    }
}

extension OptimizerStateError: AlignerError {
    public var subject: FailureSubject { .none }
    public var kind: FailureKind { .badData }
}
