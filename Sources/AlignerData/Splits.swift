import AlignerTensor
import Foundation

/// The evaluation hold-out, the identity warm-up set and the main set, all deterministic from a seed.
public struct DataSplits: Sendable {
    /// Held-out records (no question of theirs appears in training).
    public var eval: [QACRecord]
    /// All training records, Q-A-C.
    public var train: [QACRecord]
    /// p% of the training records with correction := answer (Q-A-A).
    public var warmup: [QACRecord]
    public var warmupPercent: Double
    /// With several sources (`make(sources:)`), how many held-out and training records each gave, in order: `eval`
    /// and `train` hold each source's records together, in this order.
    public var sourceCounts: [(eval: Int, train: Int)] = []

    /// How large the hold-out is.
    public enum HoldOut: Sendable, Equatable {
        case fraction(Double)
        case count(Int)
    }

    /// Splits `records`. Questions are shuffled with the seed and whole questions go to the hold-out until it reaches
    /// its size. The training records are put in a seeded order and the warm-up set is its first round(p% × N)
    /// records, so that for p1 < p2 (same seed) the p1 set is inside the p2 set. `holdOutSeed` (default: `seed`)
    /// chooses the held-out questions alone, so that runs with different seeds can share one evaluation set.
    public static func make(_ records: [QACRecord], holdOut: HoldOut, warmupPercent p: Double, seed: UInt64,
                            holdOutSeed: UInt64? = nil) throws -> DataSplits {
        guard p >= 0 && p <= 100 else { throw SettingError(setting: "data.warmup_percent", message: "\(p) is not within 0...100") }
        let target: Int
        switch holdOut {
        case .fraction(let f):
            guard f >= 0 && f < 1 else { throw SettingError(setting: "data.eval_fraction", message: "\(f) is not within [0, 1)") }
            target = Int((f * Double(records.count)).rounded())
        case .count(let n):
            guard n >= 0 && n < records.count else { throw SettingError(setting: "data.eval_count", message: "\(n) is not below the \(records.count) records") }
            target = n
        }
        var byQuestion: [String: [Int]] = [:]
        var questions: [String] = []
        for (i, r) in records.enumerated() {
            if byQuestion[r.question] == nil { questions.append(r.question) }
            byQuestion[r.question, default: []].append(i)
        }
        var rng = SeededGenerator(seed: holdOutSeed ?? seed)
        questions = seededShuffle(questions, &rng)
        var evalIdx = Set<Int>()
        for q in questions where evalIdx.count < target { evalIdx.formUnion(byQuestion[q]!) }
        let eval = records.indices.filter { evalIdx.contains($0) }.map { records[$0] }
        let train = records.indices.filter { !evalIdx.contains($0) }.map { records[$0] }
        return DataSplits(eval: eval, train: train, warmup: warmupSet(train, percent: p, seed: seed), warmupPercent: p,
                          sourceCounts: [(eval.count, train.count)])
    }

    /// Splits several sources (the files of a recipe, in order): each source is held out on its own, exactly as
    /// `make` holds out a single source (a fraction of each, or, with `.count`, the count in proportion to the sources'
    /// sizes), so that a source's held-out records are the same whatever other sources a run adds. The warm-up set is
    /// drawn from all the training records. One source gives exactly what `make` gives.
    public static func make(sources: [[QACRecord]], holdOut: HoldOut, warmupPercent p: Double, seed: UInt64,
                            holdOutSeed: UInt64? = nil) throws -> DataSplits {
        if sources.count == 1 { return try make(sources[0], holdOut: holdOut, warmupPercent: p, seed: seed, holdOutSeed: holdOutSeed) }
        guard p >= 0 && p <= 100 else { throw SettingError(setting: "data.warmup_percent", message: "\(p) is not within 0...100") }
        let total = sources.reduce(0) { $0 + $1.count }
        var eval: [QACRecord] = [], train: [QACRecord] = [], counts: [(eval: Int, train: Int)] = []
        for source in sources {
            guard !source.isEmpty else {
                counts.append((0, 0))
                continue
            }
            var share = holdOut
            if case .count(let n) = holdOut {
                guard n >= 0 && n < total else { throw SettingError(setting: "data.eval_count", message: "\(n) is not below the \(total) records") }
                share = .count(min(source.count - 1, Int((Double(n) * Double(source.count) / Double(total)).rounded())))
            }
            let part = try make(source, holdOut: share, warmupPercent: 0, seed: seed, holdOutSeed: holdOutSeed)
            eval += part.eval
            train += part.train
            counts.append((part.eval.count, part.train.count))
        }
        return DataSplits(eval: eval, train: train, warmup: warmupSet(train, percent: p, seed: seed), warmupPercent: p, sourceCounts: counts)
    }

    /// The first round(p% × N) training records in a seeded order, as Q-A-A, in their original order (for p1 < p2 with
    /// the same seed, the p1 set is inside the p2 set).
    static func warmupSet(_ train: [QACRecord], percent p: Double, seed: UInt64) -> [QACRecord] {
        var orderRng = SeededGenerator(seed: seed &+ 0x5EED)
        let order = seededShuffle(Array(train.indices), &orderRng)
        let k = Int((p / 100 * Double(train.count)).rounded())
        return order.prefix(k).sorted().map { i in
            QACRecord(question: train[i].question, answer: train[i].answer, correction: train[i].answer)
        }
    }

    /// Writes `eval.jsonl`, `train.jsonl` and `warmup.jsonl` into `directory` (reference field names).
    public func write(to directory: URL) throws {
        try RecordReader.write(eval, to: directory.appendingPathComponent("eval.jsonl").path)
        try RecordReader.write(train, to: directory.appendingPathComponent("train.jsonl").path)
        try RecordReader.write(warmup, to: directory.appendingPathComponent("warmup.jsonl").path)
    }
}

/// Fisher–Yates with AlignerKit's own generator (the standard library's shuffle may change between versions).
public func seededShuffle<T>(_ items: [T], _ rng: inout SeededGenerator) -> [T] {
    var a = items
    if a.count < 2 { return a }
    for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, rng.nextInt(below: i + 1)) }
    return a
}
