import AlignerData
import AlignerFiles
import AlignerRecipes
import Foundation

/// A run's folder and everything kept in it: the lock, checkpoints, metrics, the recipe and inputs it started with,
/// and the result. It holds the lock from `init` until it is released (when the object goes away).
/// The processes of a data-parallel run other than rank 0 open it read-only (`follower`): no lock, nothing written.
public final class RunFolder {
    /// The subfolder of a reward run that holds its reward model (an export, rewritten at every checkpoint).
    public static let rewardModelFolder = "model"

    public let directory: URL
    public let checkpoints: CheckpointStore
    private let lock: RunLock?
    /// Whether this process writes the folder (false for a data-parallel run's ranks other than 0).
    public let writes: Bool
    /// metrics.jsonl, open for appending once `startMetrics` has run.
    public private(set) var metrics: MetricsLog!

    public var metricsURL: URL { directory.appendingPathComponent("metrics.jsonl") }
    public var resultURL: URL { directory.appendingPathComponent("result.json") }
    var inputsURL: URL { directory.appendingPathComponent("inputs.json") }

    /// Takes the folder's lock and removes what killed processes left half-written (reported through `say`).
    public init(directory: URL, say: (String) -> Void) throws {
        self.directory = directory
        writes = true
        lock = try RunLock(folder: directory)
        checkpoints = CheckpointStore(directory: directory.appendingPathComponent("checkpoints"))
        for folder in ["", "checkpoints", "splits"] {
            for name in TemporaryFiles.removeStale(in: directory.appendingPathComponent(folder), lockHeld: true) {
                say("removed \(folder.isEmpty ? "" : folder + "/")\(name), left by an interrupted process")
            }
        }
    }

    /// The folder as a data-parallel run's rank other than 0 sees it: read, never written or locked (rank 0 holds the
    /// lock).
    public init(follower directory: URL) {
        self.directory = directory
        writes = false
        lock = nil
        checkpoints = CheckpointStore(directory: directory.appendingPathComponent("checkpoints"))
    }

    deinit { metrics?.close() }

    /// The checkpoint to continue from: nil for a fresh run. A fresh run in a folder that has checkpoints is refused.
    public func startingPoint(resume: Bool) throws -> URL? {
        if !resume && !checkpoints.complete(verify: false).isEmpty {
            throw RecipeError(key: "name", message: "\(directory.path) already has checkpoints; pass --resume to continue it or choose another name")
        }
        guard resume else { return nil }
        if let newest = checkpoints.newest() { return newest }
        let damaged = checkpoints.complete(verify: false)
        if !damaged.isEmpty {
            let problems = damaged.map { "\($0.lastPathComponent): \(CheckpointStore.verify($0) ?? "?")" }.joined(separator: "; ")
            throw FileError(file: checkpoints.directory.path,
                            message: "no checkpoint is intact (\(problems)); nothing to resume from. Pass --restart to start the run afresh",
                            kind: .badData)
        }
        return nil
    }

    /// The saved result when the checkpoint `latest` ends the run (nothing left to do).
    public func finishedResult(at latest: URL?) -> RunResult? {
        guard let latest,
              let state = try? JSONDecoder().decode(TrainerState.self, from: Data(contentsOf: latest.appendingPathComponent("trainer_state.json"))),
              state.stage == 2 && state.stageDone else { return nil }
        return try? ResultJSON.decode(RunResult.self, from: Data(contentsOf: resultURL))
    }

    /// The recipe the run started with (`recipe.json`), nil for a folder without one.
    func recordedRecipe() throws -> Recipe? {
        let url = directory.appendingPathComponent("recipe.json")
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        return try Recipe.load(path: url.path)
    }

    /// Throws `RecipeError` naming every result-defining key whose value differs from the recipe the run started with
    /// (logging, checkpoint cadence and threads may change).
    public func checkSameRecipe(_ recipe: Recipe, kind: RunKind = .aligner) throws {
        guard let saved = try recordedRecipe() else { return }
        let changed = recipe.differences(from: saved, for: kind)
        guard changed.isEmpty else {
            throw RecipeError(key: changed.count == 1 ? String(changed[0].prefix { $0 != " " }) : "",
                              message: "\(directory.path) was trained with a different recipe; these keys differ (recorded → now): \(changed.joined(separator: ", ")). Use the recipe and overrides it was started with, another name, or --restart to delete it and start afresh")
        }
    }

    /// Deletes everything in the folder but its lock (after --restart); returns whether there was anything.
    public func clear() throws -> Bool {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        var removed = false
        for name in names where name != ".lock" {
            try FileManager.default.removeItem(at: directory.appendingPathComponent(name))
            removed = true
        }
        return removed
    }

    /// A resumed run must be the same run: the same recipe (`checkSameRecipe`, which the trainer calls first) and the
    /// same input files.
    public func checkResumable(inputs: FileFingerprints, from latest: URL, say: (String) -> Void) throws {
        if let data = try? Data(contentsOf: inputsURL), let recorded = try? JSONDecoder().decode(FileFingerprints.self, from: data) {
            if let change = inputs.differences(from: recorded) {
                throw RecipeError(key: "data", message: "cannot resume \(directory.path) from \(latest.lastPathComponent): \(change). Restore the original files, or start a new run (another name)")
            }
        } else {
            say("note: \(inputsURL.path) is missing (a run started by an older AlignerKit); the inputs cannot be compared")
        }
        // The record must be there before any work.
        if let data = try? Data(contentsOf: latest.appendingPathComponent("trainer_state.json")),
           let state = try? JSONDecoder().decode(TrainerState.self, from: data) {
            try checkMetricsForResume(at: state)
        }
    }

    /// Records what a fresh run starts from: its recipe and the fingerprints of its inputs.
    public func recordStart(_ recipe: Recipe, inputs: FileFingerprints) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(encoder.encode(inputs), to: inputsURL)
        try AtomicFile.write(recipe.jsonData(), to: directory.appendingPathComponent("recipe.json"))
    }

    /// Opens metrics.jsonl: emptied for a fresh run; for a resumed one, cut back to the checkpoint being resumed so
    /// that the file reads as one uninterrupted run.
    /// With `tensorBoard`, every line is mirrored as TensorBoard scalars in `tensorboard/`; a resumed run rewrites those
    /// events from the record it keeps, so no step appears twice.
    public func startMetrics(resumingAt state: TrainerState?, tensorBoard: Bool = false) throws {
        guard writes else {
            metrics = MetricsLog(discarding: metricsURL)
            return
        }
        defer { if tensorBoard, metrics != nil { try? startTensorBoard() } }
        if let s = state {
            let keep = MetricsLog.lines(metricsURL).filter { line in
                guard let stage = line.object["stage"] as? Int, let step = line.object["step"] as? Int else { return false }
                return stage < s.stage || (stage == s.stage && step <= s.step)
            }.map(\.text)
            try AtomicFile.write(Data((keep.joined(separator: "\n") + (keep.isEmpty ? "" : "\n")).utf8), to: metricsURL)
        } else {
            try? FileManager.default.removeItem(at: metricsURL)
        }
        metrics = try MetricsLog(url: metricsURL)
    }

    /// A resumed run continues its record: metrics.jsonl must be there and readable up to the checkpoint, since the
    /// checkpoints hold weights and state, not the history of losses and evaluations it would otherwise lose.
    func checkMetricsForResume(at state: TrainerState) throws {
        let howToGoOn = "Restore it from a backup to resume, or pass --restart to train the run afresh"
        guard FileManager.default.fileExists(atPath: metricsURL.path) else {
            throw FileError(file: metricsURL.path, message: "is missing: the checkpoints cannot rebuild the run's losses and evaluations up to stage \(state.stage) step \(state.step). \(howToGoOn)", kind: .missing)
        }
        if let line = MetricsLog.firstDamagedLine(metricsURL) {
            throw FileError(file: metricsURL.path, message: "line \(line) is not a JSON object: the run's record is damaged. \(howToGoOn)", kind: .badData)
        }
        let started = state.stage == 2 || state.step > 0
        let recorded = MetricsLog.lines(metricsURL).contains { line in
            guard let stage = line.object["stage"] as? Int, let step = line.object["step"] as? Int else { return false }
            return stage < state.stage || (stage == state.stage && step <= state.step)
        }
        if started && !recorded {
            throw FileError(file: metricsURL.path, message: "holds nothing up to stage \(state.stage) step \(state.step), the checkpoint being resumed. \(howToGoOn)", kind: .badData)
        }
    }

    /// The folder of the run's TensorBoard events.
    public var tensorBoardURL: URL { directory.appendingPathComponent(Self.tensorBoardFolder) }
    public static let tensorBoardFolder = "tensorboard"

    /// Starts the event file afresh (older ones removed) with every line metrics.jsonl holds now, then mirrors new lines.
    func startTensorBoard() throws {
        TensorBoardWriter.removeEvents(in: tensorBoardURL)
        let board = try TensorBoardWriter(folder: tensorBoardURL)
        for line in MetricsLog.lines(metricsURL) { try MetricsLog.mirror(line.object, to: board) }
        metrics?.board = board
    }

    public func writeResult(_ result: RunResult) throws {
        guard writes else { return }
        try AtomicFile.write(ResultJSON.encode(result), to: resultURL)
    }
}

/// An exclusive lock on a run folder, held while a process writes it. The lock is an `flock` on `.lock` (released by
/// the kernel when the process ends, even by `kill -9`); the file holds the holder's process id for the message.
public final class RunLock {
    public let folder: URL
    private let fd: Int32

    /// Takes the lock or throws `FileError` naming the process that holds it.
    public init(folder: URL) throws {
        self.folder = folder
        try FileSystemFailure.createFolder(folder.path)
        let path = folder.appendingPathComponent(".lock").path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileError(file: path, message: "cannot open the run's lock file: \(String(cString: strerror(errno)))") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = read(fd, &buffer, 31)
            close(fd)
            let holder = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
            throw FileError(file: folder.path, message: "is in use by another AlignerKit process (PID \(holder)); wait for it to finish or stop it first", kind: .inUse)
        }
        ftruncate(fd, 0)
        let pid = "\(getpid())\n"
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
        self.fd = fd
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
