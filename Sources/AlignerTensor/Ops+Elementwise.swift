import Foundation

// MARK: - Broadcasting layout

/// The output shape of NumPy-style broadcasting, or nil when the shapes are incompatible.
public func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
    let r = max(a.count, b.count)
    var out = [Int](repeating: 1, count: r)
    for i in 0..<r {
        let da = i < r - a.count ? 1 : a[i - (r - a.count)]
        let db = i < r - b.count ? 1 : b[i - (r - b.count)]
        guard da == db || da == 1 || db == 1 else { return nil }
        out[i] = da == 1 ? db : da
    }
    return out
}

/// An output shape with the strides of two operands inside it (0 on broadcast axes), with adjacent axes merged where
/// every operand allows it, so that the innermost loop is as long as possible.
struct BroadcastLayout {
    var shape: [Int]
    var strideA: [Int]
    var strideB: [Int]
    var count: Int

    /// Layout of `out` with operands of shapes `a` and `b` broadcast into it.
    init(out: [Int], a: [Int], b: [Int]) {
        func aligned(_ s: [Int]) -> [Int] {
            let st = Tensor.strides(of: s)
            let pad = out.count - s.count
            return (0..<out.count).map { i in i < pad || s[i - pad] == 1 ? 0 : st[i - pad] }
        }
        self.init(out: out, strideA: aligned(a), strideB: aligned(b))
    }

    /// Layout of `out` with explicit per-axis element strides of two operands.
    init(out: [Int], strideA: [Int], strideB: [Int]) {
        var shape: [Int] = []
        var sa: [Int] = []
        var sb: [Int] = []
        for (i, (x, y)) in zip(strideA, strideB).enumerated() where out[i] != 1 {
            if let last = shape.last, sa.last! == x * out[i], sb.last! == y * out[i] {
                shape[shape.count - 1] = last * out[i]
                sa[sa.count - 1] = x
                sb[sb.count - 1] = y
            } else {
                shape.append(out[i]); sa.append(x); sb.append(y)
            }
        }
        if shape.isEmpty { shape = [1]; sa = [0]; sb = [0] }
        self.shape = shape
        self.strideA = sa
        self.strideB = sb
        self.count = out.reduce(1, *)
    }

    /// Calls `body(outOffset, aOffset, bOffset, n)` for runs of the innermost axis covering `range` of output indices.
    @inline(__always)
    func forEachRun(_ range: Range<Int>, _ body: (Int, Int, Int, Int) -> Void) {
        let r = shape.count
        var idx = [Int](repeating: 0, count: r)
        var rem = range.lowerBound
        for d in stride(from: r - 1, through: 0, by: -1) {
            idx[d] = rem % shape[d]
            rem /= shape[d]
        }
        var i = range.lowerBound
        let inner = shape[r - 1]
        while i < range.upperBound {
            let n = min(inner - idx[r - 1], range.upperBound - i)
            var oa = 0
            var ob = 0
            for d in 0..<r {
                oa += idx[d] * strideA[d]
                ob += idx[d] * strideB[d]
            }
            body(i, oa, ob, n)
            i += n
            idx[r - 1] += n
            var d = r - 1
            while d > 0 && idx[d] >= shape[d] {
                idx[d] = 0
                idx[d - 1] += 1
                d -= 1
            }
        }
    }
}

// MARK: - Kernels

protocol BinaryKernel { static func apply(_ a: Float, _ b: Float) -> Float }
enum AddKernel: BinaryKernel { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a + b } }
enum SubKernel: BinaryKernel { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a - b } }
enum MulKernel: BinaryKernel { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a * b } }
enum DivKernel: BinaryKernel { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a / b } }

/// out[i] = K(a[..], b[..]) over a broadcast layout; out is contiguous with `layout.count` elements.
@inline(__always)
func broadcastApply<K: BinaryKernel>(
    _: K.Type, _ layout: BroadcastLayout, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
    _ out: UnsafeMutablePointer<Float>
) {
    let ia = layout.strideA.last!
    let ib = layout.strideB.last!
    parallelFor(layout.count, grain: 1 << 15) { range in
        layout.forEachRun(range) { o, oa, ob, n in
            let po = out + o
            let pa = a + oa
            let pb = b + ob
            if ia == 1 && ib == 1 {
                for k in 0..<n { po[k] = K.apply(pa[k], pb[k]) }
            } else if ia == 1 {
                let bv = pb[0]
                for k in 0..<n { po[k] = K.apply(pa[k], bv) }
            } else if ib == 1 {
                let av = pa[0]
                for k in 0..<n { po[k] = K.apply(av, pb[k]) }
            } else {
                for k in 0..<n { po[k] = K.apply(pa[k * ia], pb[k * ib]) }
            }
        }
    }
}

/// Adds `src` (contiguous, shape `from`) into `dst` (shape `to`, which `from` broadcasts from), summing over the
/// broadcast axes: the backward of broadcasting.
func accumulateReduced(_ src: UnsafePointer<Float>, from: [Int], into dst: UnsafeMutablePointer<Float>, to: [Int]) {
    if from == to || from.reduce(1, *) == to.reduce(1, *) {
        let n = from.reduce(1, *)
        parallelFor(n, grain: 1 << 15) { r in for i in r { dst[i] += src[i] } }
        return
    }
    let layout = BroadcastLayout(out: from, a: to, b: from)
    let inner = layout.strideA.last!
    // Runs that map to the same destination would race, so this reduction stays on one thread.
    layout.forEachRun(0..<layout.count) { o, od, _, n in
        let s = src + o
        if inner == 0 {
            var acc: Float = 0
            for k in 0..<n { acc += s[k] }
            dst[od] += acc
        } else {
            let d = dst + od
            for k in 0..<n { d[k * inner] += s[k] }
        }
    }
}

// MARK: - Binary operations with broadcasting

extension Tensor {
    private static func binary<K: BinaryKernel>(_ k: K.Type, _ a: Tensor, _ b: Tensor, _ name: String) -> Tensor {
        guard let shape = broadcastShape(a.shape, b.shape) else {
            preconditionFailure("\(name): shapes \(a.shape) and \(b.shape) do not broadcast")
        }
        let out = Tensor(uninitialized: shape)
        broadcastApply(k, BroadcastLayout(out: shape, a: a.shape, b: b.shape), a.data, b.data, out.data)
        return out
    }

    /// Accumulates `g` (shape of the output) into `t`'s gradient, reducing over broadcast axes.
    @inline(__always)
    static func sendGrad(_ g: Tensor, to t: Tensor) {
        guard t.requiresGrad else { return }
        accumulateReduced(g.data, from: g.shape, into: t.gradBuffer().pointer, to: t.shape)
    }

    public static func + (a: Tensor, b: Tensor) -> Tensor {
        binary(AddKernel.self, a, b, "add").record("add", [a, b]) { out in
            sendGrad(out.grad!, to: a)
            sendGrad(out.grad!, to: b)
        }
    }

    public static func - (a: Tensor, b: Tensor) -> Tensor {
        binary(SubKernel.self, a, b, "sub").record("sub", [a, b]) { out in
            sendGrad(out.grad!, to: a)
            if b.requiresGrad { sendGrad(-out.grad!, to: b) }
        }
    }

    public static func * (a: Tensor, b: Tensor) -> Tensor {
        binary(MulKernel.self, a, b, "mul").record("mul", [a, b]) { out in
            let g = out.grad!
            if a.requiresGrad { sendGrad(binary(MulKernel.self, g, b, "mul"), to: a) }
            if b.requiresGrad { sendGrad(binary(MulKernel.self, g, a, "mul"), to: b) }
        }
    }

    public static func / (a: Tensor, b: Tensor) -> Tensor {
        binary(DivKernel.self, a, b, "div").record("div", [a, b]) { out in
            let g = out.grad!
            let gOverB = binary(DivKernel.self, g, b, "div")
            if a.requiresGrad { sendGrad(gOverB, to: a) }
            if b.requiresGrad {
                // d(a/b)/db = -(a/b)/b: -g * out / b
                let t = binary(MulKernel.self, gOverB, out, "mul")
                sendGrad(t.affine(scale: -1, shift: 0), to: b)
            }
        }
    }

    // MARK: Scalars

    /// `self * scale + shift`, elementwise.
    public func affine(scale: Float, shift: Float) -> Tensor {
        let out = Tensor(uninitialized: shape)
        let x = data, y = out.data
        parallelFor(count, grain: 1 << 15) { r in for i in r { y[i] = x[i] * scale + shift } }
        return out.record("affine", [self]) { out in
            guard self.requiresGrad else { return }
            let g = out.grad!.data
            let d = self.gradBuffer().pointer
            parallelFor(self.count, grain: 1 << 15) { r in for i in r { d[i] += g[i] * scale } }
        }
    }

    public static func + (a: Tensor, s: Float) -> Tensor { a.affine(scale: 1, shift: s) }
    public static func + (s: Float, a: Tensor) -> Tensor { a.affine(scale: 1, shift: s) }
    public static func - (a: Tensor, s: Float) -> Tensor { a.affine(scale: 1, shift: -s) }
    public static func - (s: Float, a: Tensor) -> Tensor { a.affine(scale: -1, shift: s) }
    public static func * (a: Tensor, s: Float) -> Tensor { a.affine(scale: s, shift: 0) }
    public static func * (s: Float, a: Tensor) -> Tensor { a.affine(scale: s, shift: 0) }
    public static func / (a: Tensor, s: Float) -> Tensor { a.affine(scale: 1 / s, shift: 0) }
    public static prefix func - (a: Tensor) -> Tensor { a.affine(scale: -1, shift: 0) }
}

// MARK: - Unary operations

/// An elementwise function with its derivative, on eight lanes at a time.
protocol UnaryKernel {
    static func forward(_ x: Vec8) -> Vec8
    /// g · dy/dx, given x and y = forward(x).
    static func backward(x: Vec8, y: Vec8, g: Vec8) -> Vec8
}

/// Applies a lane-wise scalar function (for functions with no vector form here).
@inline(__always) func lanes(_ x: Vec8, _ f: (Float) -> Float) -> Vec8 {
    var y = Vec8()
    for i in 0..<8 { y[i] = f(x[i]) }
    return y
}

enum ExpKernel: UnaryKernel {
    @inline(__always) static func forward(_ x: Vec8) -> Vec8 { vexp(x) }
    @inline(__always) static func backward(x: Vec8, y: Vec8, g: Vec8) -> Vec8 { g * y }
}
enum LogKernel: UnaryKernel {
    @inline(__always) static func forward(_ x: Vec8) -> Vec8 { lanes(x) { Foundation.log($0) } }
    @inline(__always) static func backward(x: Vec8, y: Vec8, g: Vec8) -> Vec8 { g / x }
}
enum SqrtKernel: UnaryKernel {
    @inline(__always) static func forward(_ x: Vec8) -> Vec8 { x.squareRoot() }
    @inline(__always) static func backward(x: Vec8, y: Vec8, g: Vec8) -> Vec8 { g * 0.5 / y }
}
enum RsqrtKernel: UnaryKernel {
    @inline(__always) static func forward(_ x: Vec8) -> Vec8 { 1 / x.squareRoot() }
    @inline(__always) static func backward(x: Vec8, y: Vec8, g: Vec8) -> Vec8 { -0.5 * g * y * y * y }
}
enum SquareKernel: UnaryKernel {
    @inline(__always) static func forward(_ x: Vec8) -> Vec8 { x * x }
    @inline(__always) static func backward(x: Vec8, y: Vec8, g: Vec8) -> Vec8 { 2 * x * g }
}
enum ReciprocalKernel: UnaryKernel {
    @inline(__always) static func forward(_ x: Vec8) -> Vec8 { 1 / x }
    @inline(__always) static func backward(x: Vec8, y: Vec8, g: Vec8) -> Vec8 { -g * y * y }
}
enum SiLUKernel: UnaryKernel {
    @inline(__always) static func forward(_ x: Vec8) -> Vec8 { x * vsigmoid(x) }
    @inline(__always) static func backward(x: Vec8, y: Vec8, g: Vec8) -> Vec8 {
        let s = vsigmoid(x)
        return g * s * (1 + x * (1 - s))
    }
}
/// log σ(x) = min(x, 0) − log(1 + e^−|x|), finite for any x (the Bradley-Terry loss is −log σ(r_better − r_worse)).
enum LogSigmoidKernel: UnaryKernel {
    @inline(__always) static func forward(_ x: Vec8) -> Vec8 { lanes(x) { min($0, 0) - Foundation.log1p(Foundation.exp(-abs($0))) } }
    /// d/dx log σ(x) = σ(−x).
    @inline(__always) static func backward(x: Vec8, y: Vec8, g: Vec8) -> Vec8 { g * vsigmoid(-x) }
}
/// GELU, tanh approximation: 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))).
enum GELUTanhKernel: UnaryKernel {
    static let c: Float = 0.797_884_560_802_865_4  // √(2/π)
    static let k: Float = 0.044715
    @inline(__always) static func inner(_ x: Vec8) -> Vec8 {
        let x3: Vec8 = x * x * x
        return c * (x + k * x3)
    }
    @inline(__always) static func forward(_ x: Vec8) -> Vec8 {
        let t: Vec8 = vtanh(inner(x))
        return 0.5 * x * (1 + t)
    }
    @inline(__always) static func backward(x: Vec8, y: Vec8, g: Vec8) -> Vec8 {
        let t: Vec8 = vtanh(inner(x))
        let du: Vec8 = c * (1 + 3 * k * x * x)
        let dt: Vec8 = 0.5 * x * (1 - t * t) * du
        return g * (0.5 * (1 + t) + dt)
    }
}
/// GELU, exact: 0.5 x (1 + erf(x / √2)).
enum GELUErfKernel: UnaryKernel {
    @inline(__always) static func forward(_ x: Vec8) -> Vec8 {
        0.5 * x * (1 + lanes(x * 0.707_106_781_186_547_6) { Foundation.erf($0) })
    }
    @inline(__always) static func backward(x: Vec8, y: Vec8, g: Vec8) -> Vec8 {
        let cdf = 0.5 * (1 + lanes(x * 0.707_106_781_186_547_6) { Foundation.erf($0) })
        let pdf = vexp(-0.5 * x * x) * 0.398_942_280_401_432_7  // 1/√(2π)
        return g * (cdf + x * pdf)
    }
}

/// Loads up to 8 floats (the rest of the lanes are `fill`).
@inline(__always) func loadPartial(_ p: UnsafePointer<Float>, _ n: Int, fill: Float = 0) -> Vec8 {
    var v = Vec8(repeating: fill)
    for k in 0..<n { v[k] = p[k] }
    return v
}

/// Which GELU formula to use (PyTorch's `approximate="tanh"` or `"none"`).
public enum GELUApproximation: Sendable { case tanh, none }

extension Tensor {
    private func unary<K: UnaryKernel>(_: K.Type, _ name: String) -> Tensor {
        let out = Tensor(uninitialized: shape)
        let x = UnsafePointer(data), y = out.data
        // Chunks are whole vectors so that every element is computed the same way wherever a chunk starts.
        let vectors = (count + 7) / 8
        parallelFor(vectors, grain: 1 << 11) { r in
            for v in r {
                let i = v * 8
                if i + 8 <= count { y.store(K.forward(x.vec8(i)), at: i) } else {
                    let f = K.forward(loadPartial(x + i, count - i))
                    for k in 0..<(count - i) { y[i + k] = f[k] }
                }
            }
        }
        return out.record(name, [self]) { out in
            let g = UnsafePointer(out.grad!.data)
            let y = UnsafePointer(out.data)
            let d = self.gradBuffer().pointer
            parallelFor(vectors, grain: 1 << 11) { r in
                for v in r {
                    let i = v * 8
                    if i + 8 <= self.count {
                        d.store(d.vec8(i) + K.backward(x: x.vec8(i), y: y.vec8(i), g: g.vec8(i)), at: i)
                    } else {
                        let n = self.count - i
                        let b = K.backward(
                            x: loadPartial(x + i, n, fill: 1), y: loadPartial(y + i, n, fill: 1), g: loadPartial(g + i, n))
                        for k in 0..<n { d[i + k] += b[k] }
                    }
                }
            }
        }
    }

    public func exp() -> Tensor { unary(ExpKernel.self, "exp") }
    public func log() -> Tensor { unary(LogKernel.self, "log") }
    public func sqrt() -> Tensor { unary(SqrtKernel.self, "sqrt") }
    public func rsqrt() -> Tensor { unary(RsqrtKernel.self, "rsqrt") }
    public func square() -> Tensor { unary(SquareKernel.self, "square") }
    public func reciprocal() -> Tensor { unary(ReciprocalKernel.self, "reciprocal") }
    /// x · sigmoid(x).
    public func silu() -> Tensor { unary(SiLUKernel.self, "silu") }
    /// log sigmoid(x), stable for large |x| (PyTorch's `F.logsigmoid`).
    public func logSigmoid() -> Tensor { unary(LogSigmoidKernel.self, "log_sigmoid") }
    public func gelu(approximate: GELUApproximation = .none) -> Tensor {
        approximate == .tanh ? unary(GELUTanhKernel.self, "gelu_tanh") : unary(GELUErfKernel.self, "gelu")
    }
}

// MARK: - SwiGLU

extension Tensor {
    /// SwiGLU's gating, fused: `silu(gate) * up` (same shapes), as in Llama's MLP `down(silu(gate(x)) * up(x))`.
    public static func swiglu(gate: Tensor, up: Tensor) -> Tensor {
        precondition(gate.shape == up.shape, "swiglu: gate \(gate.shape) and up \(up.shape) differ")
        let n = gate.count
        let out = Tensor(uninitialized: gate.shape)
        let gp = UnsafePointer(gate.data), up_ = UnsafePointer(up.data), o = out.data
        let vectors = (n + 7) / 8
        parallelFor(vectors, grain: 1 << 11) { r in
            for v in r {
                let i = v * 8
                if i + 8 <= n {
                    let x = gp.vec8(i)
                    o.store(x * vsigmoid(x) * up_.vec8(i), at: i)
                } else {
                    let x = loadPartial(gp + i, n - i), u = loadPartial(up_ + i, n - i)
                    let y = x * vsigmoid(x) * u
                    for k in 0..<(n - i) { o[i + k] = y[k] }
                }
            }
        }
        return out.record("swiglu", [gate, up]) { out in
            let g = UnsafePointer(out.grad!.data)
            let dg = gate.requiresGrad ? gate.gradBuffer().pointer : nil
            let du = up.requiresGrad ? up.gradBuffer().pointer : nil
            parallelFor(vectors, grain: 1 << 11) { r in
                for v in r {
                    let i = v * 8
                    let m = min(8, n - i)
                    let full = m == 8
                    let x = full ? gp.vec8(i) : loadPartial(gp + i, m)
                    let u = full ? up_.vec8(i) : loadPartial(up_ + i, m)
                    let gv = full ? g.vec8(i) : loadPartial(g + i, m)
                    let s = vsigmoid(x)
                    let silu = x * s
                    let dGate = gv * u * s * (1 + x * (1 - s))
                    let dUp = gv * silu
                    if full {
                        if let dg { dg.store(dg.vec8(i) + dGate, at: i) }
                        if let du { du.store(du.vec8(i) + dUp, at: i) }
                    } else {
                        for k in 0..<m {
                            dg?[i + k] += dGate[k]
                            du?[i + k] += dUp[k]
                        }
                    }
                }
            }
        }
    }
}
