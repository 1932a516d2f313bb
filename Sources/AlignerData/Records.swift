import AlignerErrors
import Foundation

/// Bad input: the file, where in it (JSON Lines line or JSON array index), the field, and what is wrong.
public struct DataError: AlignerError, Equatable {
    public var file: String
    public var line: Int?
    public var index: Int?
    public var field: String?
    public var message: String
    /// `.badData`, or `.missing` when the file does not exist.
    public var kind: FailureKind

    public init(file: String, line: Int? = nil, index: Int? = nil, field: String? = nil, message: String, kind: FailureKind = .badData) {
        self.file = file
        self.line = line
        self.index = index
        self.field = field
        self.message = message
        self.kind = kind
    }

    public var subject: FailureSubject { .file(file) }

    public var description: String {
        var s = file
        if let line { s += ":\(line)" }
        if let index { s += " [record \(index)]" }
        if let field { s += ": field '\(field)'" }
        return s + ": " + message
    }
}

/// A setting of the data pipeline that cannot be used (a split fraction, a batch size, a template): not a file's
/// fault. `setting` names it as the recipe does where there is a recipe key (`data.eval_fraction`).
public struct SettingError: AlignerError, Equatable {
    public let setting: String
    public let message: String
    public init(setting: String, message: String) {
        self.setting = setting
        self.message = message
    }
    public var subject: FailureSubject { .setting(setting) }
    public var kind: FailureKind { .usage }
    public var description: String { "\(setting): \(message)" }
}

/// A question, an upstream answer, and its correction.
public struct QACRecord: Hashable, Sendable {
    public var question: String
    public var answer: String
    public var correction: String

    public init(question: String, answer: String, correction: String) {
        self.question = question
        self.answer = answer
        self.correction = correction
    }

    /// The record as a JSON object with the given field names (one JSON Lines line).
    /// The record as one JSON line in `fields`' names, with `extra` fields (numbers, strings) after them.
    public func jsonLine(_ fields: FieldNames = FieldNames(), extra: [String: Any] = [:]) -> String {
        var object: [String: Any] = extra
        object[fields.question] = question
        object[fields.answer] = answer
        object[fields.correction] = correction
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }
}

/// Names of the three fields in a file (the reference implementation's by default).
public struct FieldNames: Sendable, Equatable {
    public var question = "question"
    public var answer = "answer"
    public var correction = "correction"
    public init(question: String = "question", answer: String = "answer", correction: String = "correction") {
        self.question = question
        self.answer = answer
        self.correction = correction
    }
}

/// What to do with a bad record.
public enum BadRecordPolicy: String, Codable, Sendable, CaseIterable {
    /// Stop at the first bad record with its error (the default).
    case fail
    /// Leave bad records out, counting them by reason.
    case skip
}

/// Records read from a file, with what was left out and why.
public struct RecordLoad: Sendable {
    public var records: [QACRecord] = []
    /// Objects read (good, bad and duplicate).
    public var read = 0
    /// Exact duplicates removed.
    public var duplicates = 0
    /// Bad records skipped, by reason (only under `.skip`).
    public var skipped: [String: Int] = [:]
    /// The first few skipped records' errors, for the report.
    public var examples: [DataError] = []

    public var skippedTotal: Int { skipped.values.reduce(0, +) }
}

/// Reads Q-A-C records from JSON (an array) or JSON Lines files, optionally gzip-compressed. JSON Lines is streamed
/// line by line; a JSON array is parsed whole.
public enum RecordReader {
    /// Whether the file holds a JSON array (first non-space byte `[`) rather than JSON Lines.
    static func isJSONArray(_ path: String) throws -> Bool {
        let r = try LineReader(path: path)
        while let line = try r.next() {
            if let b = line.first(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D && $0 != 0xEF && $0 != 0xBB && $0 != 0xBF }) {
                return b == UInt8(ascii: "[")
            }
        }
        return false
    }

    /// Calls `body` with each JSON object of the file and its location (line for JSON Lines, index for arrays).
    /// Malformed JSON or UTF-8 reaches `body` as an error value so that the caller's policy decides.
    public static func forEachObject(
        path: String, _ body: (_ line: Int?, _ index: Int?, Result<[String: Any], DataError>) throws -> Void
    ) throws {
        if try isJSONArray(path) {
            let data = try LineReader.readAll(path: path)
            guard String(data: data, encoding: .utf8) != nil else {
                throw DataError(file: path, message: "invalid UTF-8")
            }
            let parsed: Any
            do { parsed = try JSONSerialization.jsonObject(with: data) } catch {
                throw DataError(file: path, message: "invalid JSON: \(describe(error))")
            }
            guard let array = parsed as? [Any] else { throw DataError(file: path, message: "expected a JSON array") }
            for (i, item) in array.enumerated() {
                if let object = item as? [String: Any] { try body(nil, i, .success(object)) }
                else { try body(nil, i, .failure(DataError(file: path, index: i, message: "not a JSON object"))) }
            }
            return
        }
        let reader = try LineReader(path: path)
        var n = 0
        while let line = try reader.next() {
            n += 1
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            guard String(bytes: line, encoding: .utf8) != nil else {
                try body(n, nil, .failure(DataError(file: path, line: n, message: "invalid UTF-8")))
                continue
            }
            let parsed: Any
            do { parsed = try JSONSerialization.jsonObject(with: Data(line)) } catch {
                try body(n, nil, .failure(DataError(file: path, line: n, message: "invalid JSON: \(describe(error))")))
                continue
            }
            if let object = parsed as? [String: Any] { try body(n, nil, .success(object)) }
            else { try body(n, nil, .failure(DataError(file: path, line: n, message: "not a JSON object"))) }
        }
    }

    static func describe(_ error: Error) -> String {
        let text = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? error.localizedDescription
        return text.isEmpty ? "\(error)" : text
    }

    /// A string field of an object, or the error that names it.
    static func string(_ object: [String: Any], _ field: String, file: String, line: Int?, index: Int?) -> Result<String, DataError> {
        guard let value = object[field] else {
            return .failure(DataError(file: file, line: line, index: index, field: field, message: "missing"))
        }
        guard let s = value as? String else {
            let kind = value is NSNull ? "null" : value is [Any] ? "an array" : value is [String: Any] ? "an object" : "a number or boolean"
            return .failure(DataError(file: file, line: line, index: index, field: field, message: "is \(kind), not a string"))
        }
        return .success(s)
    }

    /// Reads every record of `path`. Under `.fail` the first bad record throws its `DataError`; under `.skip` bad
    /// records are counted by reason. Exact duplicates are removed and counted either way.
    /// With `requireCorrection` false (questions with upstream answers to be corrected), a missing correction field
    /// reads as "".
    public static func read(path: String, fields: FieldNames = FieldNames(), policy: BadRecordPolicy = .fail,
                            requireCorrection: Bool = true) throws -> RecordLoad {
        var records: [QACRecord] = []
        var load = try stream(path: path, fields: fields, policy: policy, requireCorrection: requireCorrection) { records.append($0) }
        load.records = records
        return load
    }

    /// Calls `body` with each good, first-seen record of `path`, in file order, without keeping the records: a JSON
    /// Lines file of any size is read in bounded memory (duplicates are recognised by a 64-bit hash of the three
    /// fields). Returns the counts (its `records` is empty). Errors and policy as `read`.
    @discardableResult
    public static func stream(path: String, fields: FieldNames = FieldNames(), policy: BadRecordPolicy = .fail,
                              requireCorrection: Bool = true, _ body: (QACRecord) throws -> Void) throws -> RecordLoad {
        var load = RecordLoad()
        var seen = Set<Int>()
        func reject(_ e: DataError, reason: String) throws {
            if policy == .fail { throw e }
            load.skipped[reason, default: 0] += 1
            if load.examples.count < 10 { load.examples.append(e) }
        }
        try forEachObject(path: path) { line, index, result in
            load.read += 1
            let object: [String: Any]
            switch result {
            case .failure(let e): try reject(e, reason: e.message.hasPrefix("invalid JSON") ? "invalid JSON" : e.message); return
            case .success(let o): object = o
            }
            var values: [String] = []
            for f in [fields.question, fields.answer, fields.correction] {
                if !requireCorrection && f == fields.correction && object[f] == nil { values.append(""); continue }
                switch string(object, f, file: path, line: line, index: index) {
                case .success(let s): values.append(s)
                case .failure(let e): try reject(e, reason: "field '\(f)' \(e.message)"); return
                }
            }
            for (f, v) in [(fields.question, values[0]), (fields.correction, values[2])]
            where v.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty && (requireCorrection || f == fields.question) {
                try reject(DataError(file: path, line: line, index: index, field: f, message: "is empty"), reason: "field '\(f)' is empty")
                return
            }
            let record = QACRecord(question: values[0], answer: values[1], correction: values[2])
            if !seen.insert(record.hashValue).inserted { load.duplicates += 1; return }
            try body(record)
        }
        return load
    }

    /// Writes records as JSON Lines (gzip when the path ends in `.gz`), atomically.
    /// Writes `records` as JSON Lines (gzip for a .gz path); `extras[i]` adds fields to record i's line.
    public static func write(_ records: [QACRecord], to path: String, fields: FieldNames = FieldNames(), extras: [[String: Any]]? = nil) throws {
        precondition(extras == nil || extras!.count == records.count, "RecordReader.write: one extra object per record")
        let w = try LineWriter(path: path)
        for (i, r) in records.enumerated() { try w.write(line: r.jsonLine(fields, extra: extras?[i] ?? [:])) }
        try w.close()
    }
}
