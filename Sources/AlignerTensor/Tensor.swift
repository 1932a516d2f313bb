/// A Float32 tensor with contiguous row-major storage and optional reverse-mode gradient tracking.
///
/// Reference semantics, like PyTorch tensors: operations return new tensors; `reshape` returns a view that shares
/// storage. When gradient recording is on (see `withNoGrad`) and an input requires gradients, the result records how
/// to send gradients back to its inputs; `backward()` then accumulates into `.grad` of the leaves.
public final class Tensor: @unchecked Sendable, CustomStringConvertible {
    /// Sizes of each axis; `[]` is a scalar.
    public let shape: [Int]
    /// Number of elements (product of `shape`).
    public let count: Int
    let storage: Storage
    /// First element's offset in `storage` (views made by `reshape` share storage at offset 0).
    let offset: Int

    /// For a leaf, whether `backward()` should compute its gradient; for a result, whether it is part of a graph.
    public internal(set) var requiresGrad: Bool
    /// The accumulated gradient, with the same shape. Leaves keep it; intermediate results release it after use
    /// unless `retainGrad()` was called.
    public internal(set) var grad: Tensor?
    /// The operation that produced this tensor, when recorded.
    var node: Node?
    var retainsGrad = false
    /// An optional name (parameters use Hugging Face names).
    public var name: String?

    // MARK: Creation

    init(shape: [Int], storage: Storage, offset: Int = 0) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        self.shape = shape
        self.count = shape.reduce(1, *)
        precondition(offset + count <= storage.count, "view exceeds its storage")
        self.storage = storage
        self.offset = offset
        self.requiresGrad = false
    }

    /// Uninitialised tensor: callers overwrite every element.
    convenience init(uninitialized shape: [Int]) {
        self.init(shape: shape, storage: Storage(count: shape.reduce(1, *)))
    }

    /// A tensor holding `values` in row-major order.
    public convenience init(_ values: [Float], shape: [Int], requiresGrad: Bool = false) {
        let n = shape.reduce(1, *)
        precondition(values.count == n, "\(values.count) values do not fill shape \(shape) (\(n) elements)")
        self.init(uninitialized: shape)
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: n) }
        self.requiresGrad = requiresGrad
    }

    /// A scalar tensor.
    public convenience init(scalar: Float, requiresGrad: Bool = false) {
        self.init([scalar], shape: [], requiresGrad: requiresGrad)
    }

    public static func zeros(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        full(shape, 0, requiresGrad: requiresGrad)
    }

    public static func ones(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        full(shape, 1, requiresGrad: requiresGrad)
    }

    public static func full(_ shape: [Int], _ value: Float, requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.data.update(repeating: value, count: t.count)
        t.requiresGrad = requiresGrad
        return t
    }

    /// Normal(mean, std) values drawn from `generator` in row-major order.
    public static func randomNormal(
        _ shape: [Int], mean: Float = 0, std: Float = 1, generator: inout SeededGenerator, requiresGrad: Bool = false
    ) -> Tensor {
        let t = Tensor(uninitialized: shape)
        let p = t.data
        for i in 0..<t.count { p[i] = Float(Double(mean) + Double(std) * generator.nextNormal()) }
        t.requiresGrad = requiresGrad
        return t
    }

    /// Uniform values in [low, high) drawn from `generator` in row-major order.
    public static func randomUniform(
        _ shape: [Int], low: Float = 0, high: Float = 1, generator: inout SeededGenerator, requiresGrad: Bool = false
    ) -> Tensor {
        let t = Tensor(uninitialized: shape)
        let p = t.data
        let span = Double(high) - Double(low)
        for i in 0..<t.count { p[i] = Float(Double(low) + span * generator.nextDouble()) }
        t.requiresGrad = requiresGrad
        return t
    }

    deinit { if node != nil { releaseNodeIteratively() } }

    // MARK: Access

    /// The elements (row-major). Mutating through it bypasses autodiff: use for initialisation and optimisers.
    @inline(__always) public var data: UnsafeMutablePointer<Float> { storage.pointer + offset }

    /// A copy of the elements as an array.
    public var scalars: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    /// How many elements are NaN or infinite.
    public var nonFiniteCount: Int {
        let p = data
        var n = 0
        for i in 0..<count where !p[i].isFinite { n += 1 }
        return n
    }

    /// The single element of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "item needs a one-element tensor, shape is \(shape)")
        return data[0]
    }

    public var rank: Int { shape.count }

    /// Whether this tensor was made by the user rather than by a recorded operation.
    public var isLeaf: Bool { node == nil }

    /// Makes this leaf require (or stop requiring) gradients. Returns self for chaining.
    @discardableResult
    public func requiringGrad(_ flag: Bool = true) -> Tensor {
        precondition(isLeaf, "only leaf tensors can change requiresGrad")
        requiresGrad = flag
        return self
    }

    /// Keeps `.grad` of this intermediate result after `backward()`.
    public func retainGrad() { retainsGrad = true }

    /// Sets every element of `.grad` to zero, keeping its buffer.
    public func zeroGrad() { if let g = grad { g.data.update(repeating: 0, count: g.count) } }

    /// Releases `.grad`.
    public func releaseGrad() { grad = nil }

    /// `.grad`, created as zeros when there is none yet (a process whose share of a batch was empty still takes part in
    /// the sum of gradients across processes).
    public func gradOrZeros() -> Tensor {
        _ = gradBuffer()
        return grad!
    }

    /// A copy that does not require gradients and records no history.
    public func detached() -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.data.update(from: data, count: count)
        return t
    }

    /// Copies `other`'s values into this tensor in place (same element count), without recording anything.
    public func assign(from other: Tensor) {
        precondition(other.count == count, "assign: \(other.shape) into \(shape)")
        data.update(from: other.data, count: count)
    }

    public var description: String {
        let shown = scalars.prefix(8).map { "\($0)" }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(shown)\(count > 8 ? ", ..." : "")])"
    }

    /// Row-major strides of `shape`.
    static func strides(of shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            s[i] = acc
            acc *= shape[i]
        }
        return s
    }

    /// Resolves a possibly negative axis.
    @inline(__always) func axis(_ a: Int) -> Int {
        let r = a < 0 ? a + rank : a
        precondition(r >= 0 && r < rank, "axis \(a) out of range for shape \(shape)")
        return r
    }
}
