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

/// A caching allocator: training repeats the same shapes every step, so freed buffers are kept by size and handed out
/// again instead of going back to `malloc` (whose large blocks are fresh `mmap`s that page-fault on every step).
/// The cache holds at most `limitBytes`; past that, freed buffers are released.
public final class BufferPool: Sendable {
    public static let shared = BufferPool()

    private struct State {
        var free: [Int: [UInt]] = [:]  // element count -> buffer addresses
        var cachedBytes = 0
        var limitBytes = 1 << 31
    }
    private let state: Mutex<State>

    /// A pool that caches at most `limitBytes` of freed buffers.
    public init(limitBytes: Int = 1 << 31) { state = Mutex(State(limitBytes: limitBytes)) }

    /// Bytes held in the cache (not in use by any tensor).
    public var cachedBytes: Int { state.withLock { $0.cachedBytes } }

    /// The most the cache may hold; lowering it releases what is over.
    public var limitBytes: Int {
        get { state.withLock { $0.limitBytes } }
        set { state.withLock { $0.limitBytes = newValue }; if newValue == 0 { release() } }
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

    func take(_ count: Int) -> UnsafeMutablePointer<Float> {
        let n = max(count, 1)
        let cached = state.withLock { s -> UInt? in
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
        let n = max(count, 1)
        let address = UInt(bitPattern: pointer)
        let kept = state.withLock { s -> Bool in
            guard s.cachedBytes + n * 4 <= s.limitBytes else { return false }
            s.free[n, default: []].append(address)
            s.cachedBytes += n * 4
            return true
        }
        if !kept { free(pointer) }
    }
}
