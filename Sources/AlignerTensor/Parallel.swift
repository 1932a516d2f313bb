import Dispatch

/// Carries a value into a `@Sendable` closure when the caller guarantees the concurrent uses touch disjoint memory.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
}

/// Splits `0..<count` into contiguous chunks run on up to `BLAS.threads` threads. Work below `grain` items per
/// thread runs inline: spreading tiny loops costs more than it saves. `body` is called once per chunk, never per item,
/// and must only write memory that no other chunk writes.
@inline(__always)
public func parallelFor(_ count: Int, grain: Int, _ body: (Range<Int>) -> Void) {
    let threads = BLAS.threads
    let chunks = min(threads, count / max(1, grain))
    if chunks <= 1 {
        if count > 0 { body(0..<count) }
        return
    }
    let context = ComputeContext.current
    withoutActuallyEscaping(body) { body in
        let work = UncheckedSendable(value: body)
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = count * c / chunks
            let hi = count * (c + 1) / chunks
            // Worker threads see the caller's context (its pool for scratch buffers).
            if lo < hi { ComputeContext.$current.withValue(context) { work.value(lo..<hi) } }
        }
    }
}
