import AlignerTensor
import Foundation

/// A right-padded batch in the layout `LlamaModel.loss` takes.
public struct Batch: Sendable, Equatable {
    public var batch: Int
    public var time: Int
    /// (batch × time) ids, pads at the end of each row.
    public var ids: [Int]
    /// (batch × time) labels, -100 on prompt tokens and pads.
    public var labels: [Int]
    /// (batch × time) attention mask, false on pads.
    public var mask: [Bool]
    /// Indices of the examples in the stream's list.
    public var examples: [Int]
    /// Real (unpadded) tokens: the positions the attention mask keeps.
    public var realTokens: Int { mask.reduce(0) { $0 + ($1 ? 1 : 0) } }
    /// Tokens the loss counts (labels 1…T−1 not -100 in each row).
    public var countedTokens: Int {
        var n = 0
        for b in 0..<batch { for t in 1..<time where labels[b * time + t] != -100 { n += 1 } }
        return n
    }
}

extension Batch {
    /// Rows `rows` of this batch, with its width (`time`) kept, so that positions line up with the whole batch's.
    public func rows(_ rows: Range<Int>) -> Batch {
        precondition(rows.lowerBound >= 0 && rows.upperBound <= batch, "rows \(rows) of a batch of \(batch)")
        let cells = (rows.lowerBound * time)..<(rows.upperBound * time)
        return Batch(batch: rows.count, time: time, ids: Array(ids[cells]), labels: Array(labels[cells]), mask: Array(mask[cells]),
                     examples: Array(examples[rows]))
    }

    /// The rows process `rank` of `ranks` takes: contiguous parts as equal as can be (the first `batch % ranks` parts
    /// one row longer); empty when there are fewer rows than processes.
    public static func share(of rows: Int, rank: Int, ranks: Int) -> Range<Int> {
        let base = rows / ranks, extra = rows % ranks
        let start = rank * base + min(rank, extra)
        return start..<(start + base + (rank < extra ? 1 : 0))
    }
}

/// Where a batch stream stands: a small value saved in checkpoints so that a run resumes exactly.
public struct BatchPosition: Codable, Sendable, Equatable {
    public var epoch = 0
    /// Batches already taken in this epoch.
    public var cursor = 0
    public init(epoch: Int = 0, cursor: Int = 0) {
        self.epoch = epoch
        self.cursor = cursor
    }
}

/// Batches of examples, shuffled anew each epoch from the seed, grouped by length to cut padding.
public struct BatchStream: Sendable {
    public enum Size: Sendable, Equatable {
        /// A fixed number of examples per batch.
        case examples(Int)
        /// As many examples as fit in `tokens` = batch × longest row.
        case tokens(Int)
    }

    public let examples: [Example]
    public let size: Size
    public let seed: UInt64
    public let padId: Int
    /// Group examples of similar length within windows of this many batches (1 = no grouping).
    public let groupWindow: Int
    public var position = BatchPosition()
    private var cachedPlan: (epoch: Int, batches: [[Int]])?

    public init(examples: [Example], size: Size, seed: UInt64, padId: Int, groupWindow: Int = 50) throws {
        guard !examples.isEmpty else { throw SettingError(setting: "batches", message: "no examples to batch") }
        switch size {
        case .examples(let n): guard n > 0 else { throw SettingError(setting: "batch_size", message: "must be positive") }
        case .tokens(let n):
            let longest = examples.map(\.count).max()!
            guard n >= longest else { throw SettingError(setting: "batch_tokens", message: "\(n) is below the longest example (\(longest) tokens)") }
        }
        self.examples = examples
        self.size = size
        self.seed = seed
        self.padId = padId
        self.groupWindow = max(1, groupWindow)
    }

    /// The batches of `epoch` as lists of example indices: a seeded permutation, cut into windows that are sorted by
    /// length and packed into batches, the batches then shuffled (so lengths vary from step to step).
    public func plan(epoch: Int) -> [[Int]] {
        var rng = SeededGenerator(seed: seed ^ (0x9E37_79B9_7F4A_7C15 &* UInt64(epoch + 1)))
        let order = seededShuffle(Array(examples.indices), &rng)
        let windowSize: Int
        switch size {
        case .examples(let n): windowSize = n * groupWindow
        case .tokens(let t): windowSize = max(1, t / max(1, examples.map(\.count).reduce(0, +) / examples.count)) * groupWindow
        }
        var batches: [[Int]] = []
        var start = 0
        while start < order.count {
            let window = order[start..<min(order.count, start + windowSize)]
            let sorted = groupWindow > 1 ? window.sorted { (examples[$0].count, $0) > (examples[$1].count, $1) } : Array(window)
            var current: [Int] = []
            var longest = 0
            for i in sorted {
                switch size {
                case .examples(let n):
                    current.append(i)
                    if current.count == n { batches.append(current); current = [] }
                case .tokens(let t):
                    let l = max(longest, examples[i].count)
                    if !current.isEmpty && l * (current.count + 1) > t { batches.append(current); current = []; longest = 0 }
                    current.append(i)
                    longest = max(longest, examples[i].count)
                }
            }
            if !current.isEmpty { batches.append(current) }
            start += windowSize
        }
        return groupWindow > 1 ? seededShuffle(batches, &rng) : batches
    }

    /// Batches per epoch.
    public var batchesPerEpoch: Int { plan(epoch: 0).count }

    /// The next batch; moves to the next epoch when this one is done.
    public mutating func next() -> Batch {
        func planFor(_ epoch: Int) -> [[Int]] {
            if let c = cachedPlan, c.epoch == epoch { return c.batches }
            let p = plan(epoch: epoch)
            cachedPlan = (epoch, p)
            return p
        }
        var batches = planFor(position.epoch)
        if position.cursor >= batches.count {
            position = BatchPosition(epoch: position.epoch + 1, cursor: 0)
            batches = planFor(position.epoch)
        }
        let chosen = batches[position.cursor]
        position.cursor += 1
        return pad(chosen)
    }

    /// The batch of the given examples, right-padded.
    public func pad(_ indices: [Int]) -> Batch {
        let time = indices.map { examples[$0].count }.max()!
        var ids: [Int] = [], labels: [Int] = [], mask: [Bool] = []
        ids.reserveCapacity(indices.count * time)
        for i in indices {
            let e = examples[i]
            let pad = time - e.count
            ids += e.ids + [Int](repeating: padId, count: pad)
            labels += e.labels + [Int](repeating: -100, count: pad)
            mask += [Bool](repeating: true, count: e.count) + [Bool](repeating: false, count: pad)
        }
        return Batch(batch: indices.count, time: time, ids: ids, labels: labels, mask: mask, examples: indices)
    }
}
