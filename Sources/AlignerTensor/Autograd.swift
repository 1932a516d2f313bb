import Foundation

/// A recorded operation: its inputs and the function that sends the output's gradient back to them.
final class Node {
    let name: String
    var inputs: [Tensor]
    /// Called with the output tensor, whose `.grad` is set; accumulates into the inputs' gradients.
    var backward: ((Tensor) -> Void)?

    init(name: String, inputs: [Tensor], backward: @escaping (Tensor) -> Void) {
        self.name = name
        self.inputs = inputs
        self.backward = backward
    }
}

/// Per-thread state for releasing graphs without recursion (see `Tensor.deinit`).
final class TeardownState {
    var active = false
    var pending: [Node] = []

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { pointer in
            if let pointer { Unmanaged<TeardownState>.fromOpaque(pointer).release() }
        }
        return key
    }()

    /// This thread's state.
    static var current: TeardownState {
        if let p = pthread_getspecific(key) { return Unmanaged<TeardownState>.fromOpaque(p).takeUnretainedValue() }
        let s = TeardownState()
        pthread_setspecific(key, Unmanaged.passRetained(s).toOpaque())
        return s
    }
}

/// Whether operations record gradients in the current task (true unless inside `withNoGrad`).
public enum GradMode {
    @TaskLocal public static var isEnabled = true
}

/// Runs `body` without recording any operation (inference, optimiser updates).
public func withNoGrad<R>(_ body: () throws -> R) rethrows -> R {
    try GradMode.$isEnabled.withValue(false, operation: body)
}

extension Tensor {
    /// Releases this tensor's recorded node without recursing through the graph: a chain of a million operations
    /// dropped without `backward()` would otherwise free itself one stack frame per node. Nodes released while a
    /// teardown is under way on this thread are queued and freed by the outermost one.
    func releaseNodeIteratively() {
        guard let n = node else { return }
        let s = TeardownState.current
        s.pending.append(n)
        node = nil
        if s.active { return }
        s.active = true
        while !s.pending.isEmpty { s.pending.removeLast() }
        s.active = false
    }

    /// Whether an op on `inputs` should record a node.
    @inline(__always)
    static func needsGrad(_ inputs: [Tensor]) -> Bool {
        GradMode.isEnabled && inputs.contains { $0.requiresGrad }
    }

    /// Records `backward` as the way this result's gradient flows to `inputs` (when any of them requires grad).
    @inline(__always)
    func record(_ name: String, _ inputs: [Tensor], _ backward: @escaping (Tensor) -> Void) -> Tensor {
        if Tensor.needsGrad(inputs) {
            requiresGrad = true
            node = Node(name: name, inputs: inputs, backward: backward)
        }
        return self
    }

    /// The gradient buffer of this tensor for accumulation, created zero-filled when absent. `fresh` says it was just
    /// created (kernels that can overwrite instead of add, such as GEMM with beta 0, use it).
    @inline(__always)
    func gradBuffer() -> (pointer: UnsafeMutablePointer<Float>, fresh: Bool) {
        if let g = grad { return (g.data, false) }
        let g = Tensor(shape: shape, storage: Storage(zeros: count))
        grad = g
        return (g.data, true)
    }

    /// Reverse-mode differentiation from this tensor. A non-scalar needs `gradient` of the same shape; a scalar
    /// defaults to 1. Gradients accumulate (`+=`) into `.grad` of every leaf that requires them. The graph is freed
    /// afterwards unless `retainGraph` is true. The walk is iterative, so graphs of any depth are fine.
    public func backward(gradient: Tensor? = nil, retainGraph: Bool = false) {
        precondition(requiresGrad, "backward() on a tensor that does not require gradients")
        if let gradient {
            precondition(gradient.shape == shape, "gradient shape \(gradient.shape) differs from \(shape)")
        } else {
            precondition(count == 1, "backward() without a gradient needs a one-element tensor, shape is \(shape)")
        }

        // Post-order depth-first walk with an explicit stack gives inputs before the results that use them.
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Tensor, Bool)] = [(self, false)]
        while let (t, expanded) = stack.popLast() {
            if expanded { order.append(t); continue }
            if !visited.insert(ObjectIdentifier(t)).inserted { continue }
            stack.append((t, true))
            if let node = t.node {
                for input in node.inputs where input.requiresGrad && !visited.contains(ObjectIdentifier(input)) {
                    stack.append((input, false))
                }
            }
        }

        let (seed, fresh) = gradBuffer()
        if let gradient {
            if fresh { seed.update(from: gradient.data, count: count) }
            else { for i in 0..<count { seed[i] += gradient.data[i] } }
        } else {
            seed[0] += 1
        }

        withNoGrad {
            for t in order.reversed() {
                guard let node = t.node else { continue }
                if t.grad != nil, let backward = node.backward { backward(t) }
                if !t.retainsGrad { t.grad = nil }
                if !retainGraph {
                    node.backward = nil
                    node.inputs = []
                    t.node = nil
                }
            }
        }
    }
}

extension Tensor {
    /// Activation checkpointing (PyTorch's `torch.utils.checkpoint`): runs `body` on `x` without recording, keeping
    /// only `x`; the backward pass runs `body` again with recording on and sends the gradient through that graph, to
    /// `x` and to the leaves `body` uses (`parameters`, which decide whether a graph is needed at all). `body` must
    /// compute the same function both times (deterministic kernels, dropout from fixed keys). Memory: one call's
    /// intermediate results at a time instead of all of them, for one more forward pass.
    public static func checkpoint(_ x: Tensor, parameters: [Tensor], _ body: @escaping (Tensor) -> Tensor) -> Tensor {
        guard GradMode.isEnabled, x.requiresGrad || parameters.contains(where: \.requiresGrad) else { return body(x) }
        let y = withNoGrad { body(x) }
        return y.record("checkpoint", [x] + parameters) { out in
            // A leaf sharing x's storage (x is alive: this node holds it).
            let leaf = Tensor(shape: x.shape, storage: x.storage, offset: x.offset)
            leaf.requiresGrad = x.requiresGrad
            let again = GradMode.$isEnabled.withValue(true) { body(leaf) }
            if again.requiresGrad { again.backward(gradient: out.grad!) }
            if let g = leaf.grad { Tensor.sendGrad(g, to: x) }
        }
    }
}
