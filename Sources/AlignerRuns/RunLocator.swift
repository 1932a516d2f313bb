import AlignerFiles
import AlignerFormats
import Foundation

/// Finding a model by the name a user gives: a run folder (its best checkpoint, else its newest intact one), a
/// checkpoint folder, `best-of-sweep:FOLDER`, or a model folder or GGUF file as it is.
public enum RunLocator {
    /// Prefix of a path that names the best run of a sweep: `best-of-sweep:checkpoints/warmup-sweep`.
    public static let bestOfSweepPrefix = "best-of-sweep:"

    /// The run folder of a sweep's best arm, as its report.json names it (`SweepReport.bestRun`: the arm with the lowest
    /// mean final eval loss over seeds, and of its seeds the run with the lowest final eval loss; by win rate instead
    /// with `sweep.best_by = "win_rate"`).
    public static func bestRunOfSweep(_ sweepFolder: String) throws -> URL {
        let reportURL = URL(fileURLWithPath: sweepFolder).appendingPathComponent("report.json")
        guard let data = try? Data(contentsOf: reportURL) else {
            throw FileError(file: reportURL.path, message: "no sweep report (has the sweep in \(sweepFolder) finished?)", kind: .missing)
        }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any], root["arms"] is [Any] else {
            throw FileError(file: reportURL.path, message: "is not a sweep report", kind: .badData)
        }
        guard let best = root["best_run"] as? String else {
            throw FileError(file: reportURL.path, message: "names no best run (no arm has a finite final eval loss, or the report predates best_run: run the sweep again to rewrite it)", kind: .badData)
        }
        return URL(fileURLWithPath: best)
    }

    /// Resolves a run folder to its best checkpoint (`checkpoints/best`, the best stage-2 evaluation by the recipe's
    /// `train.best_metric`) or, without one, its newest intact checkpoint; `best-of-sweep:FOLDER` to the best run of
    /// that sweep, the same way. Checkpoint folders (name one to use another, such as the newest) and other folders
    /// are returned as they are.
    public static func resolve(_ path: String) throws -> URL {
        if path.hasPrefix(bestOfSweepPrefix) {
            return try resolve(bestRunOfSweep(String(path.dropFirst(bestOfSweepPrefix.count))).path)
        }
        let url = URL(fileURLWithPath: path)
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue else {
            throw fm.fileExists(atPath: url.path)
                ? FileError(file: path, message: "is not a folder (a run, a checkpoint or a Hugging Face model directory)", kind: .badData)
                : FileError(file: path, message: "no such folder", kind: .missing)
        }
        let checkpoints = url.appendingPathComponent("checkpoints")
        if fm.fileExists(atPath: checkpoints.path) {
            let store = CheckpointStore(directory: checkpoints)
            if let best = store.best() { return best }
            guard let newest = store.newest() else {
                throw FileError(file: path, message: "has no intact checkpoint", kind: .badData)
            }
            return newest
        }
        if fm.fileExists(atPath: url.appendingPathComponent("manifest.json").path), let problem = CheckpointStore.verify(url) {
            throw FileError(file: path, message: "damaged checkpoint: \(problem)", kind: .badData)
        }
        return url
    }

    /// The name to record for a model that `path` names and that was found at `location`: a sweep's best run is chosen
    /// when a run starts, so `best-of-sweep:FOLDER` is recorded as the run chosen then; any other name as it was given.
    public static func pinnedName(_ path: String, location: String) -> String {
        path.hasPrefix(bestOfSweepPrefix) ? location : path
    }

    /// Where `aligner eval` writes its summary of `input` by default: `eval-<input file name>.json` in the run folder
    /// when `model` is a checkpoint of a run (`<run>/checkpoints/<name>`), in `model` itself when it is another folder,
    /// and beside a GGUF file, named after it (`<name>.eval-<input>.json`).
    public static func evalSummaryURL(model: URL, input: String) -> URL {
        var folder = model
        var name = "eval-\(URL(fileURLWithPath: input).lastPathComponent).json"
        if folder.deletingLastPathComponent().lastPathComponent == "checkpoints" { folder = folder.deletingLastPathComponent().deletingLastPathComponent() }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            name = folder.deletingPathExtension().lastPathComponent + "." + name
            folder = folder.deletingLastPathComponent()
        }
        return folder.appendingPathComponent(name)
    }

    /// The Aligner `path` names (`resolve`), loaded.
    public static func loadAligner(_ path: String) throws -> AlignerBundle {
        try AlignerBundle.load(modelLocation(path))
    }

    /// The file or folder of the model `path` names: a GGUF file as it is, anything else `resolve`d.
    public static func modelLocation(_ path: String) throws -> String {
        PretrainedBase.isGGUF(path) ? path : try resolve(path).path
    }
}
