import AlignerTokenizers
import Foundation

/// Summary statistics of a list of lengths.
public struct LengthStats: Sendable, Equatable {
    public var count = 0, min = 0, max = 0, median = 0, p95 = 0
    public var mean = 0.0

    public init(_ values: [Int]) {
        guard !values.isEmpty else { return }
        let s = values.sorted()
        count = s.count
        min = s.first!
        max = s.last!
        median = s[s.count / 2]
        p95 = s[Swift.min(s.count - 1, Int((0.95 * Double(s.count)).rounded(.up)) - 1)]
        mean = Double(s.reduce(0, +)) / Double(s.count)
    }

    public var line: String {
        String(format: "min %5d  median %5d  mean %8.1f  p95 %5d  max %6d", min, median, mean, p95, max)
    }
}

/// Record counts and token lengths of a Q-A-C file.
public struct DatasetStats: Sendable {
    /// Counts (`load.records` is empty: the file is streamed).
    public var load: RecordLoad
    public var question, answer, correction, example: LengthStats
    /// Examples longer than `maxLength` (when given).
    public var overLength = 0

    /// Reads `path` and measures token lengths with `tokenizer`; `example` is the full templated example length
    /// (BOS + prompt + correction + EOS).
    public static func compute(path: String, fields: FieldNames, policy: BadRecordPolicy, tokenizer: Tokenizer,
                               template: PromptTemplate, maxLength: Int? = nil) throws -> DatasetStats {
        var q: [Int] = [], a: [Int] = [], c: [Int] = [], e: [Int] = []
        var over = 0
        // Streamed: only the lengths are kept.
        let load = try RecordReader.stream(path: path, fields: fields, policy: policy) { r in
            q.append(tokenizer.encode(r.question).count)
            a.append(tokenizer.encode(r.answer).count)
            let cl = tokenizer.encode(r.correction).count
            c.append(cl)
            let total = 1 + tokenizer.encode(template.render(question: r.question, answer: r.answer)).count + cl + 1
            e.append(total)
            if let maxLength, total > maxLength { over += 1 }
        }
        return DatasetStats(load: load, question: LengthStats(q), answer: LengthStats(a), correction: LengthStats(c),
                            example: LengthStats(e), overLength: over)
    }
}
