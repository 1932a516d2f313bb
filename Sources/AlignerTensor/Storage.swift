import CBLASRuntime
import Foundation
import Synchronization

/// Float32 memory of a tensor: 64-byte aligned, owned by exactly one `Storage`, drawn from the current
/// `ComputeContext`'s pool and returned to that pool when freed.
final class Storage: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int
    /// The floats the buffer really holds (its size class, at least `count`): what the pool files it under when freed.
    private let capacity: Int
    let pool: BufferPool

    /// Uninitialised memory for `count` floats.
    init(count: Int) {
        self.count = count
        pool = ComputeContext.current.pool
        (pointer, capacity) = pool.take(count)
    }

    /// Zero-filled memory for `count` floats.
    convenience init(zeros count: Int) {
        self.init(count: count)
        pointer.update(repeating: 0, count: count)
    }

    deinit { pool.give(pointer, capacity: capacity) }
}

/// A caching allocator: training repeats the same shapes every step, so freed buffers are kept and handed out again
/// instead of going back to `malloc` (whose large blocks are fresh `mmap`s that page-fault on every step).
///
/// Requests of 1024 floats or more are rounded up to a size class (four per power of two, so at most 25% and on
/// average about 12% over), so that batches of varying length reuse each other's buffers instead of each length
/// keeping its own, and a request may take a cached buffer of up to 1.5 times its size. Training loops call
/// `endStep()` after each step, which frees what the step left untaken, and a request that nothing cached fits first
/// frees as much of what earlier steps left: the cache holds about one step's buffers, not the leftovers of every batch
/// length seen (a SmolLM2 LoRA run on batches of varying length peaked at 4.7 GB with 3.2 GB in use; 3.1 GB since).
/// The cache holds at most `limitBytes`; past that, freed buffers go back to the system. `trim()` empties it and
/// returns the freed memory to the operating system (between stages, around evaluation).
public final class BufferPool: Sendable {
    public static let shared = BufferPool()

    private struct State {
        var free: [Int: [(address: UInt, step: Int)]] = [:]  // size class (floats) -> buffers, with the step they came back in
        var step = 0                   // steps ended (`endStep`)
        var cachedBytes = 0
        var staleBytes = 0             // of cachedBytes: buffers that came back before this step began
        var limitBytes = 1 << 30
        var inUseBytes = 0
        var peakInUseBytes = 0
    }
    private let state: Mutex<State>

    /// A pool that caches at most `limitBytes` of freed buffers.
    public init(limitBytes: Int = 1 << 30) {
        state = Mutex(State(limitBytes: limitBytes))
        Self.mapLargeBlocks
    }

    /// glibc raises its `mmap` threshold each time a mapped block is freed (up to 32 MiB), after which freed buffers
    /// stay in its heap: a training run whose batches vary in length kept 2.4 GB resident that neither the pool nor any
    /// tensor held. A fixed threshold keeps large blocks mapped, so what the pool frees goes back to the system.
    private static let mapLargeBlocks: Void = { _ = ak_malloc_fixed_mmap_threshold(256 << 10) }()

    /// Bytes held in the cache (not in use by any tensor).
    public var cachedBytes: Int { state.withLock { $0.cachedBytes } }
    /// Bytes of buffers in use by tensors now, and the most there have been.
    public var inUseBytes: Int { state.withLock { $0.inUseBytes } }
    public var peakInUseBytes: Int { state.withLock { $0.peakInUseBytes } }

    /// The most the cache may hold; lowering it releases what is over.
    public var limitBytes: Int {
        get { state.withLock { $0.limitBytes } }
        set {
            state.withLock { $0.limitBytes = newValue }
            if cachedBytes > newValue { release() }
        }
    }

    /// Frees every cached buffer.
    public func release() {
        let all = state.withLock { s -> [UInt] in
            let list = s.free.values.flatMap { $0.map(\.address) }
            s.free = [:]
            s.cachedBytes = 0
            s.staleBytes = 0
            return list
        }
        for p in all { free(UnsafeMutableRawPointer(bitPattern: p)) }
    }

    /// Marks the end of a training step: frees the cached buffers that no request took during the step now ending
    /// (they came back before it began), such as those of a longer batch than the ones since. Buffers that came back
    /// during this step stay for the next.
    public func endStep() {
        let stale = state.withLock { s -> [UInt] in
            let stale = Self.removeStale(&s, atLeast: .max)
            s.step += 1
            s.staleBytes = s.cachedBytes  // everything cached now came back before the next step began
            return stale
        }
        for p in stale { free(UnsafeMutableRawPointer(bitPattern: p)) }
    }

    /// Takes out of the cache buffers that came back before the current step began, largest classes first, until at
    /// least `bytes` are out (all of them for `.max`); returns their addresses, to be freed outside the lock.
    private static func removeStale(_ s: inout State, atLeast bytes: Int) -> [UInt] {
        var stale: [UInt] = [], removed = 0
        for c in s.free.keys.sorted(by: >) where removed < bytes {
            var kept: [(address: UInt, step: Int)] = []
            for e in s.free[c]! {
                if removed < bytes && e.step != s.step {
                    stale.append(e.address)
                    removed += c * 4
                } else {
                    kept.append(e)
                }
            }
            s.free[c] = kept.isEmpty ? nil : kept
        }
        s.cachedBytes -= removed
        s.staleBytes -= removed
        return stale
    }

    /// Frees every cached buffer and gives the memory back to the operating system (`malloc_trim`).
    public func trim() {
        release()
        _ = ak_malloc_trim()
    }

    /// The size class of a request of `count` floats: exact below 1024, else rounded up to 1, 1.25, 1.5 or 1.75
    /// times a power of two.
    @inline(__always) static func sizeClass(_ count: Int) -> Int {
        let n = max(count, 1)
        if n < 1024 { return n }
        let top = Int.bitWidth - 1 - n.leadingZeroBitCount  // 2^top <= n
        let quarter = 1 << (top - 2)
        return (n + quarter - 1) / quarter * quarter
    }

    /// The size class after `n` (a size class).
    @inline(__always) static func nextSizeClass(_ n: Int) -> Int { sizeClass(n < 1024 ? n + 1 : n + (1 << (Int.bitWidth - 3 - n.leadingZeroBitCount))) }

    /// A buffer for `count` floats and the floats it holds: a cached one of `count`'s size class, else the smallest
    /// cached one of a larger class up to 1.5 times the size, else a new one. Batches whose length varies from step to
    /// step would otherwise keep the previous step's buffers idle while allocating new ones: so before allocating, as
    /// many bytes of buffers that came back before this step began and are still untaken are freed (largest first).
    func take(_ count: Int) -> (pointer: UnsafeMutablePointer<Float>, capacity: Int) {
        let n = Self.sizeClass(count)
        var stale: [UInt] = []
        let cached = state.withLock { s -> (UInt, Int)? in
            var hit: (UInt, Int)?
            var c = n
            while c * 2 <= n * 3 {
                if let (p, step) = s.free[c]?.popLast() {  // in place: a copy of a long list per request is quadratic
                    if s.free[c]!.isEmpty { s.free[c] = nil }
                    s.cachedBytes -= c * 4
                    if step != s.step { s.staleBytes -= c * 4 }
                    hit = (p, c)
                    break
                }
                if n < 1024 || s.free.isEmpty { break }
                c = Self.nextSizeClass(c)
            }
            s.inUseBytes += (hit?.1 ?? n) * 4
            s.peakInUseBytes = max(s.peakInUseBytes, s.inUseBytes)
            if hit == nil && n >= 1024 && s.staleBytes > 0 { stale = Self.removeStale(&s, atLeast: n * 4) }
            return hit
        }
        if let (p, c) = cached { return (UnsafeMutablePointer<Float>(bitPattern: p)!, c) }
        for p in stale { free(UnsafeMutableRawPointer(bitPattern: p)) }
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, n * MemoryLayout<Float>.stride) == 0, let raw else {
            fatalError("AlignerKit: out of memory allocating \(n * 4) bytes")
        }
        return (raw.bindMemory(to: Float.self, capacity: n), n)
    }

    /// Takes back a buffer of `capacity` floats (its size class, as `take` returned it).
    func give(_ pointer: UnsafeMutablePointer<Float>, capacity n: Int) {
        let address = UInt(bitPattern: pointer)
        let kept = state.withLock { s -> Bool in
            s.inUseBytes -= n * 4
            guard s.cachedBytes + n * 4 <= s.limitBytes else { return false }
            s.free[n, default: []].append((address, s.step))
            s.cachedBytes += n * 4
            return true
        }
        if !kept { free(pointer) }
    }
}

/// Peak resident memory of this process in bytes (Linux `ru_maxrss`).
public func peakResidentBytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss * 1024
}
