import AlignerErrors
import CMPIRuntime
import Foundation

/// The text of a NUL-terminated C buffer.
func text(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// A failure of data-parallel training between ranks.
public struct DistributedError: AlignerError {
    public var subject: FailureSubject { .none }
    /// `.internal`: MPI failed, or another rank did (then `status` relays that rank's exit status, which the command
    /// line ends with instead of its own mapping of the kind).
    public var kind: FailureKind { .internal }
    /// Another rank failed first (its own message is in its output); this rank stops with the same exit status.
    public var failedRank: Int?
    /// The exit status to end this rank with.
    public var status: Int32
    public var message: String

    public var description: String { message }
}

/// The processes of a data-parallel job, ranked 0 ..< size. One process alone is `ProcessGroup.single` and every
/// collective is the identity; started by `mpirun`, the group is MPI_COMM_WORLD of Open MPI, loaded at run time.
///
/// Every rank must call the same collectives in the same order with the same sizes (as in MPI).
public final class ProcessGroup: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    /// Ranks on this host (Open MPI's OMPI_COMM_WORLD_LOCAL_SIZE; 1 alone).
    public let localSize: Int
    /// Payload bytes this rank has all-reduced so far (what it sent into sums; a ring all-reduce moves about twice this
    /// over the network per rank).
    public private(set) var bytesAllReduced = 0
    /// The host of each rank (`ALIGNERKIT_HOST`, else the host name), learnt when the job starts; one entry alone.
    public private(set) var hosts: [String] = [ProcessGroup.hostName]
    /// Seconds this rank has spent in the all-reduce of float32 sums (gradients), waiting for the others included.
    public var secondsAllReducing: Double { usesMPI ? ak_mpi_seconds_in_allreduce() : 0 }
    /// Set when an error went through `agree` (every rank knows of it; ending MPI normally is then safe).
    public private(set) var failureIsAgreed = false
    private let usesMPI: Bool

    init(rank: Int, size: Int, localSize: Int, usesMPI: Bool) {
        self.rank = rank
        self.size = size
        self.localSize = localSize
        self.usesMPI = usesMPI
    }

    deinit { bucket?.deallocate() }

    /// One process alone.
    public static let single = ProcessGroup(rank: 0, size: 1, localSize: 1, usesMPI: false)

    /// The group of this process: `single` until `start()` has joined an MPI job.
    nonisolated(unsafe) public private(set) static var current = ProcessGroup.single

    /// Maps an error to the exit status this process would end with (the executable sets it; `agree` shares it so that
    /// every rank ends alike).
    nonisolated(unsafe) public static var exitStatus: (Error) -> Int32 = { _ in 1 }

    /// Rank 0 writes checkpoints, metrics and reports; the others only compute.
    public var isMain: Bool { rank == 0 }
    /// More than one rank.
    public var isDistributed: Bool { size > 1 }

    /// The number of ranks `mpirun` (Open MPI) started this process among, or nil when it was not started by it.
    public static var launchedRanks: Int? {
        ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"].flatMap(Int.init)
    }

    /// Joins the MPI job when `mpirun` started this process (else stays `single`), and makes it `current`.
    /// Throws `DistributedError` when the job cannot start (Open MPI missing or failing).
    @discardableResult
    public static func start() throws -> ProcessGroup {
        guard current === single, let launched = launchedRanks else { return current }
        let env = ProcessInfo.processInfo.environment
        // Waiting ranks sleep between polls instead of spinning on a core the computing ranks need.
        if env["OMPI_MCA_mpi_yield_when_idle"] == nil { setenv("OMPI_MCA_mpi_yield_when_idle", "1", 1) }
        var rank: Int32 = 0, size: Int32 = 0
        var err = [CChar](repeating: 0, count: 1024)
        guard ak_mpi_init(&rank, &size, &err, err.count) == 0 else {
            throw DistributedError(failedRank: nil, status: 69, message: "started by mpirun (\(launched) ranks), but MPI did not start: \(text(err))")
        }
        let local = env["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap(Int.init) ?? Int(size)
        let group = ProcessGroup(rank: Int(rank), size: Int(size), localSize: max(1, local), usesMPI: true)
        try group.startWatchdog(seconds: try collectiveTimeout())
        current = group
        return current
    }

    /// This host's name for messages: `ALIGNERKIT_HOST` when set (a launcher that knows its hosts by other names, or
    /// hosts that share a name), else the system's host name.
    public static var hostName: String {
        if let h = ProcessInfo.processInfo.environment["ALIGNERKIT_HOST"], !h.isEmpty { return h }
        return ProcessInfo.processInfo.hostName
    }

    /// The longest one collective may wait for the other ranks before this rank gives up on them
    /// (`ALIGNERKIT_COLLECTIVE_TIMEOUT`, seconds; default 1800, above rank 0's longest lone work: an evaluation with
    /// generation while the others wait).
    public static let defaultCollectiveTimeout = 1800.0
    static func collectiveTimeout() throws -> Double {
        guard let text = ProcessInfo.processInfo.environment["ALIGNERKIT_COLLECTIVE_TIMEOUT"] else { return defaultCollectiveTimeout }
        guard let seconds = Double(text), seconds.isFinite, seconds >= 1 else {
            throw DistributedError(failedRank: nil, status: 64, message: "ALIGNERKIT_COLLECTIVE_TIMEOUT must be a number of seconds ≥ 1, got '\(text)'")
        }
        return seconds
    }

    /// Learns every rank's host (each broadcasts its own), then arms the watchdog: a collective that waits more than
    /// `seconds` ends this rank with exit status 74 and a message naming it, its host and the ranks it waited for.
    func startWatchdog(seconds: Double) throws {
        var names: [String] = []
        for r in 0..<size {
            let data = try broadcast(r == rank ? Data(Self.hostName.utf8) : nil, from: r)
            names.append(String(decoding: data, as: UTF8.self))
        }
        hosts = names
        let others = (0..<size).filter { $0 != rank }.map { "rank \($0) on host \(names[$0])" }.joined(separator: ", ")
        let message = "rank \(rank) of \(size) on host \(names[rank]): lost the other ranks (\(others)): one of them stopped, or the network link to its host failed. The newest checkpoint in the run's checkpoints/ is complete (resume with --resume, on one host or several); this rank ends"
        ak_mpi_watchdog(seconds, message, 74)
    }

    /// Whether Open MPI can be loaded, and its version line or why not (for `aligner info`).
    public static var availability: (available: Bool, description: String) {
        var err = [CChar](repeating: 0, count: 512)
        guard ak_mpi_load(&err, err.count) == 0 else { return (false, text(err)) }
        return (true, "\(String(validatingCString: ak_mpi_library_version()) ?? "Open MPI") (\(String(validatingCString: ak_mpi_library_path()) ?? ""))")
    }

    private func check(_ body: (UnsafeMutablePointer<CChar>, Int) -> Int32) throws {
        var err = [CChar](repeating: 0, count: 1024)
        let rc = err.withUnsafeMutableBufferPointer { body($0.baseAddress!, $0.count) }
        guard rc == 0 else {
            throw DistributedError(failedRank: nil, status: 70, message: "rank \(rank) of \(size): \(text(err)); another rank has probably stopped")
        }
    }

    /// Sums `count` floats at `buffer` over all ranks, in place.
    public func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        guard usesMPI else { return }
        try check { ak_mpi_allreduce_sum_f32(buffer, Int64(count), $0, $1) }
        bytesAllReduced += count * MemoryLayout<Float>.size
        allReduceCalls += 1
    }

    /// Elements of the bucket small buffers are gathered into (4 Mi floats, 16 MiB), so that one all-reduce sums many
    /// small gradients (a model has hundreds; each MPI call costs latency, most of all between hosts).
    public static let bucketElements = 1 << 22
    /// Calls to MPI_Allreduce this rank has made for float32 buffers.
    public private(set) var allReduceCalls = 0
    private var bucket: UnsafeMutablePointer<Float>?

    /// Sums each of `buffers` (pointer, count) over all ranks, in place: buffers of the bucket's size or more one by one,
    /// smaller ones gathered into the bucket (reused from call to call) and summed together. Every rank must pass
    /// buffers of the same sizes in the same order.
    public func allReduceSum(_ buffers: [(pointer: UnsafeMutablePointer<Float>, count: Int)]) throws {
        guard usesMPI else { return }
        let capacity = Self.bucketElements
        let staging: UnsafeMutablePointer<Float>
        if let bucket { staging = bucket } else {
            staging = .allocate(capacity: capacity)
            bucket = staging
        }
        var pending: [(pointer: UnsafeMutablePointer<Float>, count: Int)] = []
        var filled = 0
        func flush() throws {
            guard filled > 0 else { return }
            try allReduceSum(staging, count: filled)
            var offset = 0
            for b in pending {
                b.pointer.update(from: staging + offset, count: b.count)
                offset += b.count
            }
            pending.removeAll(keepingCapacity: true)
            filled = 0
        }
        for b in buffers where b.count > 0 {
            if b.count >= capacity {
                try allReduceSum(b.pointer, count: b.count)
                continue
            }
            if filled + b.count > capacity { try flush() }
            (staging + filled).update(from: b.pointer, count: b.count)
            pending.append(b)
            filled += b.count
        }
        try flush()
    }

    /// Sums `values` over all ranks, in place.
    public func allReduceSum(_ values: inout [Double]) throws {
        guard usesMPI else { return }
        let n = values.count
        try values.withUnsafeMutableBufferPointer { v in try check { ak_mpi_allreduce_sum_f64(v.baseAddress!, Int64(n), $0, $1) } }
        bytesAllReduced += n * MemoryLayout<Double>.size
    }

    /// Element-wise maximum of `values` over all ranks, in place.
    public func allReduceMax(_ values: inout [Double]) throws {
        guard usesMPI else { return }
        let n = values.count
        try values.withUnsafeMutableBufferPointer { v in try check { ak_mpi_allreduce_max_f64(v.baseAddress!, Int64(n), $0, $1) } }
    }

    /// `data` of rank `root` on every rank (the others pass nil or anything; it is ignored).
    public func broadcast(_ data: Data?, from root: Int = 0) throws -> Data {
        guard usesMPI else { return data ?? Data() }
        var length = [Double(rank == root ? data?.count ?? 0 : 0)]
        try allReduceMax(&length)
        var bytes = rank == root ? [UInt8](data ?? Data()) : [UInt8](repeating: 0, count: Int(length[0]))
        if !bytes.isEmpty {
            let n = bytes.count
            try bytes.withUnsafeMutableBytes { b in try check { ak_mpi_broadcast(b.baseAddress!, Int64(n), Int32(root), $0, $1) } }
        }
        return Data(bytes)
    }

    /// A `Codable` value of rank `root` on every rank.
    public func broadcast<T: Codable>(_ value: T?, from root: Int = 0, as type: T.Type) throws -> T {
        let data = try broadcast(rank == root ? JSONEncoder().encode(value) : nil, from: root)
        return try JSONDecoder().decode(T.self, from: data)
    }

    /// Waits until every rank is here.
    public func barrier() throws {
        guard usesMPI else { return }
        try check { ak_mpi_barrier($0, $1) }
    }

    /// Runs `body` on every rank, then lets every rank know whether any failed. A rank whose body threw rethrows its
    /// error; the others throw `DistributedError` naming the lowest failing rank and carrying its exit status. So a
    /// refusal on one rank (say rank 0 finds the run folder in use) stops every rank at the same point, none waiting.
    public func agree<T>(_ body: () throws -> T) throws -> T {
        let outcome = Result { try body() }
        guard usesMPI else { return try outcome.get() }
        var flags = [0.0, 0.0]  // (size - lowest failing rank, its exit status)
        if case .failure(let error) = outcome { flags = [Double(size - rank), Double(Self.exitStatus(error))] }
        var reduced = [flags[0]]
        try allReduceMax(&reduced)
        if reduced[0] == 0 { return try outcome.get() }
        let failed = size - Int(reduced[0])
        var status = [failed == rank ? flags[1] : 0]
        try allReduceMax(&status)
        failureIsAgreed = true
        if case .failure(let error) = outcome { throw error }
        throw DistributedError(failedRank: failed, status: Int32(status[0]),
                               message: "rank \(rank) of \(size): stopping because rank \(failed) failed (its message is above)")
    }

    /// Marks the error being thrown as known to every rank (training stops that every rank reaches at the same step).
    public func noteAgreedFailure() { failureIsAgreed = true }

    /// Ends this process's part in the job: MPI is finalised when every rank ends alike (`status` 0, or a failure all
    /// ranks agreed on); otherwise MPI_Abort ends every rank with `status`. Does nothing outside MPI.
    public func end(status: Int32) {
        guard usesMPI else { return }
        if status == 0 || failureIsAgreed { ak_mpi_finalize() } else { ak_mpi_abort(status) }
    }
}
