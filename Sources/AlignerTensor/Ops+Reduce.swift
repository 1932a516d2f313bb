/// Sums a contiguous (outer, n, inner) block over its middle axis into (outer, inner), scaled by `scale`.
func sumMiddleAxis(
    _ x: UnsafePointer<Float>, outer: Int, n: Int, inner: Int, scale: Float, into y: UnsafeMutablePointer<Float>
) {
    if inner == 1 {
        parallelFor(outer, grain: max(1, (1 << 15) / max(n, 1))) { r in
            for o in r {
                let row = x + o * n
                var acc = SIMD8<Float>()
                var k = 0
                while k + 8 <= n {
                    acc += UnsafeRawPointer(row + k).loadUnaligned(as: SIMD8<Float>.self)
                    k += 8
                }
                var s = acc.sum()
                while k < n { s += row[k]; k += 1 }
                y[o] = s * scale
            }
        }
    } else {
        parallelFor(outer, grain: max(1, (1 << 15) / max(n * inner, 1))) { r in
            for o in r {
                let dst = y + o * inner
                dst.update(repeating: 0, count: inner)
                for k in 0..<n {
                    let src = x + (o * n + k) * inner
                    for i in 0..<inner { dst[i] += src[i] }
                }
                if scale != 1 { for i in 0..<inner { dst[i] *= scale } }
            }
        }
    }
}

/// Adds `src` (shape `from`, broadcastable to `to`) into contiguous `dst` of shape `to`, scaled by `scale`.
func accumulateBroadcast(
    _ src: UnsafePointer<Float>, from: [Int], into dst: UnsafeMutablePointer<Float>, to: [Int], scale: Float = 1
) {
    let layout = BroadcastLayout(out: to, a: from, b: to)
    let ia = layout.strideA.last!
    parallelFor(layout.count, grain: 1 << 15) { range in
        layout.forEachRun(range) { o, oa, _, n in
            let d = dst + o
            if ia == 0 {
                let v = src[oa] * scale
                for k in 0..<n { d[k] += v }
            } else {
                let s = src + oa
                for k in 0..<n { d[k] += s[k * ia] * scale }
            }
        }
    }
}

extension Tensor {
    private func reduceSum(axes: [Int], keepDims: Bool, scale: Float, name: String) -> Tensor {
        let resolved = Set(axes.map { axis($0) }).sorted()
        var keptShape = shape
        var current: Tensor = self
        var first = true
        for a in resolved.reversed() {
            let outer = keptShape[..<a].reduce(1, *)
            let n = keptShape[a]
            let inner = keptShape[(a + 1)...].reduce(1, *)
            keptShape[a] = 1
            let next = Tensor(uninitialized: keptShape)
            sumMiddleAxis(current.data, outer: outer, n: n, inner: inner, scale: first ? scale : 1, into: next.data)
            current = next
            first = false
        }
        if resolved.isEmpty { current = detached(); if scale != 1 { for i in 0..<count { current.data[i] *= scale } } }
        let outShape = keepDims ? keptShape : shape.enumerated().filter { !resolved.contains($0.offset) }.map(\.element)
        let out = Tensor(shape: outShape, storage: current.storage, offset: current.offset)
        let inputShape = shape
        return out.record(name, [self]) { out in
            accumulateBroadcast(
                out.grad!.data, from: keptShape, into: self.gradBuffer().pointer, to: inputShape, scale: scale)
        }
    }

    /// Sum over `axes` (all axes when nil).
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        reduceSum(axes: axes ?? Array(0..<rank), keepDims: keepDims, scale: 1, name: "sum")
    }

    /// Mean over `axes` (all axes when nil).
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = axes ?? Array(0..<rank)
        let n = Set(ax.map { axis($0) }).reduce(1) { $0 * shape[$1] }
        return reduceSum(axes: ax, keepDims: keepDims, scale: 1 / Float(max(n, 1)), name: "mean")
    }
}
