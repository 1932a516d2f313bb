import AlignerFiles
import Foundation

/// Turns preference data into Q-A-C records: the rejected (worse) response is the answer, the chosen (better) one
/// the correction, as the Aligner paper trains on HH-RLHF and PKU-SafeRLHF.
public enum PreferenceConversion {
    /// Counts of a conversion.
    public struct Report: Sendable, Equatable {
        public var read = 0
        public var written = 0
        public var duplicates = 0
        public var skipped: [String: Int] = [:]
        public var skippedTotal: Int { skipped.values.reduce(0, +) }
        /// The first `listedLimit` skipped records, each as "line N: reason" (or "record N: reason" in a JSON array).
        public var skippedRecords: [String] = []
        public static let listedLimit = 100

        public var summary: String {
            var s = "read \(read), wrote \(written), duplicates removed \(duplicates), skipped \(skippedTotal)"
            if !skipped.isEmpty { s += " (" + skipped.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + ")" }
            return s
        }

        /// The skipped records, one per line (the first `listedLimit`, then how many more).
        public var skippedList: String {
            var lines = skippedRecords.map { "  skipped \($0)" }
            if skippedTotal > skippedRecords.count { lines.append("  … and \(skippedTotal - skippedRecords.count) more") }
            return lines.joined(separator: "\n")
        }
    }

    public enum Format: String, CaseIterable, Sendable {
        /// Anthropic hh-rlhf: `chosen` and `rejected` transcripts.
        case hhRLHF = "hh-rlhf"
        /// A prompt with two responses: `response` as [better, worse], or `response_0`/`response_1` with a field naming
        /// the better one (PKU-SafeRLHF's `better_response_id` / `safer_response_id`).
        case pairwise
    }

    static let assistantMarker = "\n\nAssistant:"

    /// One hh-rlhf pair, or the reason it is skipped. Both transcripts are split at their last "\n\nAssistant:";
    /// when the prefixes are equal, the prefix is the question (the dialogue so far), the rejected final turn the
    /// answer and the chosen final turn the correction.
    public static func hhRLHF(chosen: String, rejected: String) -> Result<QACRecord, DataError> {
        guard let c = chosen.range(of: assistantMarker, options: .backwards),
              let r = rejected.range(of: assistantMarker, options: .backwards)
        else { return .failure(DataError(file: "", message: "no \"\\n\\nAssistant:\" turn")) }
        let prefix = chosen[..<c.lowerBound], otherPrefix = rejected[..<r.lowerBound]
        guard prefix == otherPrefix else { return .failure(DataError(file: "", message: "dialogue prefixes differ")) }
        let question = prefix.trimmingCharacters(in: .whitespacesAndNewlines)
        let answer = rejected[r.upperBound...].trimmingCharacters(in: .whitespacesAndNewlines)
        let correction = chosen[c.upperBound...].trimmingCharacters(in: .whitespacesAndNewlines)
        if question.isEmpty { return .failure(DataError(file: "", field: "question", message: "is empty")) }
        if correction.isEmpty { return .failure(DataError(file: "", field: "correction", message: "is empty")) }
        return .success(QACRecord(question: question, answer: answer, correction: correction))
    }

    /// Converts `input` to JSON Lines Q-A-C at `output`. A record that cannot be converted (malformed JSON, a missing
    /// or mistyped field, no assistant turn, dialogue prefixes that differ, an empty question or correction) stops the
    /// conversion with its line and reason, as every reader does, unless `policy` is `.skip`: then it is skipped,
    /// counted by reason and listed (`Report.skippedRecords`). Nothing is written when the conversion stops.
    public static func convert(
        input: String, output: String, format: Format, promptField: String = "prompt", betterField: String? = nil,
        policy: BadRecordPolicy = .fail
    ) throws -> Report {
        var report = Report()
        var seen = Set<Int>()  // hashes of written records: the output is streamed, not kept
        let writer = try LineWriter(path: output)
        try RecordReader.forEachObject(path: input) { line, index, result in
            report.read += 1
            func skip(_ reason: String, field: String? = nil) throws {
                let said = field.map { "field '\($0)' \(reason)" } ?? reason
                if policy == .fail {
                    throw DataError(file: input, line: line, index: index, field: field,
                                    message: "\(reason) (pass --skip-bad to skip such records and list them)")
                }
                report.skipped[said, default: 0] += 1
                if report.skippedRecords.count < Report.listedLimit {
                    report.skippedRecords.append("\(line.map { "line \($0)" } ?? "record \(index ?? 0)"): \(said)")
                }
            }
            let object: [String: Any]
            switch result {
            case .failure(let e):
                if policy == .fail { throw e }
                try skip(e.message.hasPrefix("invalid JSON") ? "invalid JSON" : e.message)
                return
            case .success(let o): object = o
            }
            func field(_ name: String) throws -> String? {
                switch RecordReader.string(object, name, file: input, line: line, index: index) {
                case .success(let s): return s
                case .failure(let e):
                    if policy == .fail { throw e }
                    try skip(e.message, field: name)
                    return nil
                }
            }
            let converted: Result<QACRecord, DataError>
            switch format {
            case .hhRLHF:
                guard let chosen = try field("chosen"), let rejected = try field("rejected") else { return }
                converted = hhRLHF(chosen: chosen, rejected: rejected)
            case .pairwise:
                guard let prompt = try field(promptField) else { return }
                if let pair = object["response"] as? [String] {
                    guard pair.count == 2 else { try skip("does not hold two strings", field: "response"); return }
                    converted = pairwise(prompt: prompt, better: pair[0], worse: pair[1])
                } else if let betterField, let r0 = object["response_0"] as? String, let r1 = object["response_1"] as? String {
                    guard let better = object[betterField] as? Int, better == 0 || better == 1 else {
                        try skip("is not 0 or 1", field: betterField); return
                    }
                    converted = pairwise(prompt: prompt, better: better == 0 ? r0 : r1, worse: better == 0 ? r1 : r0)
                } else {
                    try skip(betterField == nil ? "no 'response' pair (pass --better-field for response_0/response_1)" : "no 'response_0' and 'response_1' strings")
                    return
                }
            }
            switch converted {
            case .success(let record):
                if !seen.insert(record.hashValue).inserted { report.duplicates += 1; return }
                try writer.write(line: record.jsonLine())
                report.written += 1
            case .failure(let e):
                try skip(e.message, field: e.field)
            }
        }
        try writer.close()
        return report
    }

    static func pairwise(prompt: String, better: String, worse: String) -> Result<QACRecord, DataError> {
        let q = prompt.trimmingCharacters(in: .whitespacesAndNewlines)
        let c = better.trimmingCharacters(in: .whitespacesAndNewlines)
        if q.isEmpty { return .failure(DataError(file: "", field: "question", message: "is empty")) }
        if c.isEmpty { return .failure(DataError(file: "", field: "correction", message: "is empty")) }
        return .success(QACRecord(question: q, answer: worse.trimmingCharacters(in: .whitespacesAndNewlines), correction: c))
    }
}

/// Q-A-C records from EmpatheticDialogues conversations (`conv_id,utterance_idx,prompt,utterance`, `_comma_` for
/// commas): the question is the speaker's situation and opening line, the correction the listener's real reply, and
/// the answer a curt, detached reply chosen by rule (see `detachedReplies`), so that an Aligner learns to turn an
/// unempathetic answer into an empathetic one.
public enum EmpatheticDialogues {
    /// The rule's answers; conversation k (in file order) gets reply k mod count.
    public static let detachedReplies = [
        "Okay.", "I see. What else?", "That is how it goes.", "Fine. Anything else?", "Noted.", "Why are you telling me this?",
    ]

    public static func convert(csvPath: String) throws -> (records: [QACRecord], conversations: Int, skipped: Int) {
        let text = try UTF8Text.decode(LineReader.readAll(path: csvPath), source: csvPath)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: true)
        guard let header = lines.first, header.hasPrefix("conv_id,utterance_idx,prompt,utterance") else {
            throw DataError(file: csvPath, line: 1, message: "expected the header conv_id,utterance_idx,prompt,utterance")
        }
        lines.removeFirst()
        var order: [String] = []
        var turns: [String: [Int: (prompt: String, utterance: String)]] = [:]
        for (n, line) in lines.enumerated() {
            let parts = line.split(separator: ",", maxSplits: 3, omittingEmptySubsequences: false)
            guard parts.count == 4, let idx = Int(parts[1]) else {
                throw DataError(file: csvPath, line: n + 2, message: "expected four comma-separated columns")
            }
            func clean(_ s: Substring) -> String {
                s.replacingOccurrences(of: "_comma_", with: ",").trimmingCharacters(in: .whitespacesAndNewlines)
            }
            let id = String(parts[0])
            if turns[id] == nil { order.append(id) }
            turns[id, default: [:]][idx] = (clean(parts[2]), clean(parts[3]))
        }
        var records: [QACRecord] = []
        var skipped = 0
        for (k, id) in order.enumerated() {
            guard let first = turns[id]?[1], let reply = turns[id]?[2], !first.utterance.isEmpty, !reply.utterance.isEmpty else {
                skipped += 1
                continue
            }
            records.append(QACRecord(question: "\(first.prompt)\n\(first.utterance)",
                                     answer: detachedReplies[k % detachedReplies.count], correction: reply.utterance))
        }
        return (records, order.count, skipped)
    }
}
