extension Tensor {
    /// The same elements with another shape (one axis may be -1); shares storage with `self`.
    public func reshape(_ newShape: [Int]) -> Tensor {
        var target = newShape
        if let i = target.firstIndex(of: -1) {
            let known = target.enumerated().filter { $0.offset != i }.reduce(1) { $0 * $1.element }
            precondition(known > 0 && count % known == 0, "cannot reshape \(shape) to \(newShape)")
            target[i] = count / known
        }
        precondition(target.reduce(1, *) == count, "cannot reshape \(shape) (\(count) elements) to \(newShape)")
        let out = Tensor(shape: target, storage: storage, offset: offset)
        return out.record("reshape", [self]) { out in
            let g = out.grad!.data
            let (d, fresh) = self.gradBuffer()
            if fresh { d.update(from: g, count: self.count) } else { for i in 0..<self.count { d[i] += g[i] } }
        }
    }

    /// Reorders axes: result axis i is input axis `order[i]`. Copies into contiguous storage.
    public func permute(_ order: [Int]) -> Tensor {
        let order = order.map { axis($0) }
        precondition(Set(order).count == rank && order.count == rank, "permute: \(order) is not a permutation")
        let inStrides = Tensor.strides(of: shape)
        let outShape = order.map { shape[$0] }
        let src = order.map { inStrides[$0] }
        let out = Tensor(uninitialized: outShape)
        let layout = BroadcastLayout(out: outShape, strideA: src, strideB: Tensor.strides(of: outShape))
        let x = data, y = out.data
        let ia = layout.strideA.last!
        parallelFor(count, grain: 1 << 15) { range in
            layout.forEachRun(range) { o, oa, _, n in for k in 0..<n { y[o + k] = x[oa + k * ia] } }
        }
        return out.record("permute", [self]) { out in
            let g = out.grad!.data
            let d = self.gradBuffer().pointer
            parallelFor(self.count, grain: 1 << 15) { range in
                layout.forEachRun(range) { o, oa, _, n in for k in 0..<n { d[oa + k * ia] += g[o + k] } }
            }
        }
    }

    /// Swaps two axes (a copy).
    public func transposed(_ a: Int = -2, _ b: Int = -1) -> Tensor {
        var order = Array(0..<rank)
        order.swapAt(axis(a), axis(b))
        return permute(order)
    }

    /// Elements `range` along `axis` (a copy).
    public func slice(axis ax: Int, _ range: Range<Int>) -> Tensor {
        let a = axis(ax)
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[a], "slice \(range) out of 0..<\(shape[a])")
        let outer = shape[..<a].reduce(1, *)
        let inner = shape[(a + 1)...].reduce(1, *)
        let n = shape[a]
        let len = range.count
        var outShape = shape
        outShape[a] = len
        let out = Tensor(uninitialized: outShape)
        let x = data, y = out.data
        for o in 0..<outer {
            (y + o * len * inner).update(from: x + (o * n + range.lowerBound) * inner, count: len * inner)
        }
        return out.record("slice", [self]) { out in
            let g = out.grad!.data
            let d = self.gradBuffer().pointer
            for o in 0..<outer {
                let dst = d + (o * n + range.lowerBound) * inner
                let src = g + o * len * inner
                for i in 0..<(len * inner) { dst[i] += src[i] }
            }
        }
    }

    /// Joins tensors along `axis`; all other axes must match.
    public static func concat(_ parts: [Tensor], axis ax: Int) -> Tensor {
        precondition(!parts.isEmpty, "concat of no tensors")
        let a = parts[0].axis(ax)
        for p in parts {
            precondition(
                p.rank == parts[0].rank
                    && p.shape.enumerated().allSatisfy { $0.offset == a || $0.element == parts[0].shape[$0.offset] },
                "concat: shape \(p.shape) does not match \(parts[0].shape) outside axis \(a)")
        }
        let outer = parts[0].shape[..<a].reduce(1, *)
        let inner = parts[0].shape[(a + 1)...].reduce(1, *)
        let total = parts.reduce(0) { $0 + $1.shape[a] }
        var outShape = parts[0].shape
        outShape[a] = total
        let out = Tensor(uninitialized: outShape)
        var start = 0
        var starts: [Int] = []
        for p in parts {
            starts.append(start)
            let len = p.shape[a]
            for o in 0..<outer {
                (out.data + (o * total + start) * inner).update(from: p.data + o * len * inner, count: len * inner)
            }
            start += len
        }
        return out.record("concat", parts) { out in
            let g = out.grad!.data
            for (p, s) in zip(parts, starts) where p.requiresGrad {
                let len = p.shape[a]
                let d = p.gradBuffer().pointer
                for o in 0..<outer {
                    let src = g + (o * total + s) * inner
                    let dst = d + o * len * inner
                    for i in 0..<(len * inner) { dst[i] += src[i] }
                }
            }
        }
    }

    /// Rows of this tensor (axis 0) picked by `indices`, repeats allowed; the result has shape
    /// `indexShape + shape[1...]` (`indexShape` defaults to `[indices.count]`). The backward scatter-adds, so a row
    /// picked twice receives both gradients; row `frozenRow` (PyTorch's `padding_idx`) receives none.
    /// This is the embedding lookup when `self` is the table.
    public func gatherRows(_ indices: [Int], indexShape: [Int]? = nil, frozenRow: Int? = nil) -> Tensor {
        precondition(rank >= 1, "gatherRows needs at least one axis")
        let rows = shape[0]
        let width = count / max(rows, 1)
        let idxShape = indexShape ?? [indices.count]
        precondition(idxShape.reduce(1, *) == indices.count, "index shape \(idxShape) does not hold \(indices.count)")
        for (i, r) in indices.enumerated() where r < 0 || r >= rows {
            preconditionFailure("gatherRows: index \(r) at position \(i) is outside 0..<\(rows)")
        }
        let out = Tensor(uninitialized: idxShape + Array(shape.dropFirst()))
        let x = data, y = out.data
        indices.withUnsafeBufferPointer { idx in
            parallelFor(idx.count, grain: max(1, (1 << 14) / max(width, 1))) { r in
                for i in r { (y + i * width).update(from: x + idx[i] * width, count: width) }
            }
        }
        return out.record("gather_rows", [self]) { out in
            let g = out.grad!.data
            let d = self.gradBuffer().pointer
            // Threads own disjoint column ranges, so repeated rows never race.
            indices.withUnsafeBufferPointer { idx in
                parallelFor(width, grain: max(1, (1 << 15) / max(idx.count, 1))) { cols in
                    for i in 0..<idx.count where idx[i] != frozenRow {
                        let src = g + i * width
                        let dst = d + idx[i] * width
                        for c in cols { dst[c] += src[c] }
                    }
                }
            }
        }
    }

    /// Embedding lookup: `table` is (vocab, dim), `ids` has shape `idsShape`; result is `idsShape + [dim]`.
    /// As `torch.nn.Embedding(padding_idx:)`, the row `paddingIndex` gets no gradient.
    public static func embedding(_ table: Tensor, ids: [Int], shape idsShape: [Int], paddingIndex: Int? = nil) -> Tensor {
        precondition(table.rank == 2, "embedding table must be (vocab, dim), got \(table.shape)")
        return table.gatherRows(ids, indexShape: idsShape, frozenRow: paddingIndex)
    }
}
