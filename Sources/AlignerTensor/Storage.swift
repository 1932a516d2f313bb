import CBLASRuntime
import Foundation
import Synchronization

/// Float32 memory of a tensor: 64-byte aligned, owned by exactly one `Storage`, drawn from the current
/// `ComputeContext`'s pool and returned to that pool when freed.
final class Storage: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int
    let pool: BufferPool

    /// Uninitialised memory for `count` floats.
    init(count: Int) {
        self.count = count
        pool = ComputeContext.current.pool
        self.pointer = pool.take(count)
    }

    /// Zero-filled memory for `count` floats.
    convenience init(zeros count: Int) {
        self.init(count: count)
        pointer.update(repeating: 0, count: count)
    }

    deinit { pool.give(pointer, count) }
}

/// A caching allocator: training repeats the same shapes every step, so freed buffers are kept and handed out again
/// instead of going back to `malloc` (whose large blocks are fresh `mmap`s that page-fault on every step).
///
/// Requests of 1024 floats or more are rounded up to a size class (four per power of two, so at most 25% and on
/// average about 12% over), so that batches of varying length reuse each other's buffers instead of each length
/// keeping its own. The cache holds at most `limitBytes`; past that, freed buffers go back to the system. `trim()`
/// empties it and returns the freed memory to the operating system (between stages, around evaluation).
public final class BufferPool: Sendable {
    public static let shared = BufferPool()

    private struct State {
        var free: [Int: [UInt]] = [:]  // size class (floats) -> buffer addresses
        var cachedBytes = 0
        var limitBytes = 1 << 30
        var inUseBytes = 0
        var peakInUseBytes = 0
    }
    private let state: Mutex<State>

    /// A pool that caches at most `limitBytes` of freed buffers.
    public init(limitBytes: Int = 1 << 30) { state = Mutex(State(limitBytes: limitBytes)) }

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
            let list = s.free.values.flatMap { $0 }
            s.free = [:]
            s.cachedBytes = 0
            return list
        }
        for p in all { free(UnsafeMutableRawPointer(bitPattern: p)) }
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

    func take(_ count: Int) -> UnsafeMutablePointer<Float> {
        let n = Self.sizeClass(count)
        let cached = state.withLock { s -> UInt? in
            s.inUseBytes += n * 4
            s.peakInUseBytes = max(s.peakInUseBytes, s.inUseBytes)
            guard var list = s.free[n], let p = list.popLast() else { return nil }
            s.free[n] = list.isEmpty ? nil : list
            s.cachedBytes -= n * 4
            return p
        }
        if let p = cached { return UnsafeMutablePointer<Float>(bitPattern: p)! }
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, n * MemoryLayout<Float>.stride) == 0, let raw else {
            fatalError("AlignerKit: out of memory allocating \(n * 4) bytes")
        }
        return raw.bindMemory(to: Float.self, capacity: n)
    }

    func give(_ pointer: UnsafeMutablePointer<Float>, _ count: Int) {
        let n = Self.sizeClass(count)
        let address = UInt(bitPattern: pointer)
        let kept = state.withLock { s -> Bool in
            s.inUseBytes -= n * 4
            guard s.cachedBytes + n * 4 <= s.limitBytes else { return false }
            s.free[n, default: []].append(address)
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
