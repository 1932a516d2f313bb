import AlignerFiles
import AlignerMeasures
import Foundation

/// Metrics appended to `metrics.jsonl`, one JSON object per line. Each line is written whole or not at all: when the
/// disk is full the partial line is cut off again and the error names the file. Non-finite numbers are written as
/// `null`, and the line lists their keys under `non_finite`.
public struct MetricsLog {
    let url: URL
    private let fd: Int32
    /// TensorBoard events mirroring every line's numbers (`train.report_to = "tensorboard"`).
    var board: TensorBoardWriter?

    /// A log that encodes lines but writes nothing (the processes of a data-parallel run other than rank 0, which see
    /// the same evaluations read back as rank 0 does).
    init(discarding url: URL) {
        self.url = url
        fd = -1
    }

    init(url: URL) throws {
        self.url = url
        let fd = open(url.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileError(file: url.path, message: "cannot open: \(String(cString: strerror(errno)))") }
        self.fd = fd
    }

    func close() { if fd >= 0 { _ = Foundation.close(fd) } }

    /// The JSON line for `object` (sorted keys; NaN and infinity as null, listed under "non_finite").
    static func line(_ object: [String: Any]) throws -> Data {
        var clean = object
        var nonFinite: [String] = []
        for (k, v) in object {
            if let d = v as? Double, !d.isFinite { clean[k] = NSNull(); nonFinite.append(k) }
            if let f = v as? Float, !f.isFinite { clean[k] = NSNull(); nonFinite.append(k) }
        }
        if !nonFinite.isEmpty { clean["non_finite"] = nonFinite.sorted() }
        return try JSONSerialization.data(withJSONObject: clean, options: [.sortedKeys]) + Data("\n".utf8)
    }

    public func append(_ object: [String: Any]) throws {
        try append(line: Self.line(object))
        if let board { try Self.mirror(object, to: board) }
    }

    /// Writes the numbers of a metrics line to TensorBoard at its `global_step`: `eval_X` as `eval/X`, the rest as
    /// `train/X` (stage and step are the axis, not scalars).
    static func mirror(_ object: [String: Any], to board: TensorBoardWriter, wallTime: Double = Date().timeIntervalSince1970) throws {
        let step = (object["global_step"] as? Int) ?? (object["global_step"] as? NSNumber)?.intValue ?? 0
        for (key, value) in object.sorted(by: { $0.key < $1.key }) where !["stage", "step", "global_step", "non_finite"].contains(key) {
            guard let number = Self.number(value) else { continue }  // (strings and lists are not scalars)
            let tag = key.hasPrefix("eval_") ? "eval/" + key.dropFirst(5) : "train/" + key
            try board.scalar(tag, number, step: step, wallTime: wallTime)
        }
    }

    /// Appends one encoded line.
    private func append(line data: Data) throws {
        guard fd >= 0 else { return }
        let before = lseek(fd, 0, SEEK_END)
        var written = 0
        let failure: Int32? = data.withUnsafeBytes { raw -> Int32? in
            while written < raw.count {
                let n = write(fd, raw.baseAddress! + written, raw.count - written)
                if n < 0 { if errno == EINTR { continue }; return errno }
                if n == 0 { return ENOSPC }
                written += n
            }
            return nil
        }
        if let failure {
            if before >= 0 { ftruncate(fd, before) }
            throw FileError(file: url.path, message: "cannot append metrics: \(String(cString: strerror(failure))) (the file is left as it was before this line)")
        }
    }

    /// Every line of a metrics file with its parsed object (unparsable lines are left out).
    public static func lines(_ url: URL) -> [(text: Substring, object: [String: Any])] {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))).flatMap { $0 as? [String: Any] }.map { (line, $0) }
        }
    }

    /// The number (from 1) of the first line that is not a JSON object, ignoring an unfinished last line (no newline
    /// after it: a write cut short, which reopening the log cuts off); nil when every line reads.
    public static func firstDamagedLine(_ url: URL) -> Int? {
        guard let data = try? Data(contentsOf: url) else { return nil }
        guard let text = String(data: data, encoding: .utf8) else { return 1 }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if !text.hasSuffix("\n") { lines.removeLast() } else if lines.last == "" { lines.removeLast() }
        for (i, line) in lines.enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            if (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] == nil { return i + 1 }
        }
        return nil
    }

    /// A number from a metrics line: null (a non-finite value) reads as NaN.
    public static func number(_ v: Any?) -> Double? {
        if v is NSNull { return .nan }
        if let f = v as? Float { return Double(f) }
        return v as? Double ?? (v as? Int).map(Double.init)
    }

    /// (stage, step, loss) of every training step logged.
    public func trainLosses() -> [(stage: Int, step: Int, loss: Double)] {
        Self.lines(url).compactMap { line in
            let o = line.object
            guard o.keys.contains("loss"), let l = Self.number(o["loss"]), let stage = o["stage"] as? Int, let step = o["step"] as? Int else { return nil }
            return (stage, step, l)
        }
    }

    public func evalPoints() -> [EvalPoint] {
        Self.lines(url).compactMap { Self.evalPoint($0.object) }
    }

    /// The evaluation a metrics line records, if it is one.
    static func evalPoint(_ o: [String: Any]) -> EvalPoint? {
        guard o.keys.contains("eval_loss"), let e = number(o["eval_loss"]), let stage = o["stage"] as? Int,
              let step = o["step"] as? Int, let g = o["global_step"] as? Int else { return nil }
        return EvalPoint(stage: stage, step: step, globalStep: g, evalLoss: e, generation: CorrectionMetrics(fields: o))
    }

    /// Appends an evaluation and returns it as it reads back from the file, so that a run in one process and a resumed
    /// one (which reads its history from the file) see the same numbers to the last bit.
    public func append(evaluation fields: [String: Any]) throws -> EvalPoint {
        let data = try Self.line(fields)
        try append(line: data)
        guard let back = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any], let point = Self.evalPoint(back) else {
            throw FileError(file: url.path, message: "an evaluation line does not read back")
        }
        if let board { try Self.mirror(back, to: board) }
        return point
    }
}

/// Correction metrics in metrics.jsonl (the `gen_*` fields of an evaluation line).
extension CorrectionMetrics {
    /// The metrics as metrics.jsonl fields.
    public var fields: [String: Any] {
        ["gen_count": generated, "gen_copy_rate": copyRate, "gen_near_copy_rate": nearCopyRate,
         "gen_edit_to_answer": editToAnswer, "gen_edit_to_reference": editToReference]
    }

    /// Read back from a metrics.jsonl line (nil when the line has none).
    init?(fields o: [String: Any]) {
        guard let n = o["gen_count"] as? Int, let c = MetricsLog.number(o["gen_copy_rate"]), let near = MetricsLog.number(o["gen_near_copy_rate"]),
              let a = MetricsLog.number(o["gen_edit_to_answer"]), let r = MetricsLog.number(o["gen_edit_to_reference"]) else { return nil }
        self.init(generated: n, copyRate: c, nearCopyRate: near, editToAnswer: a, editToReference: r)
    }
}
