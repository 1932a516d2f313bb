import AlignerData
import AlignerDistributed
import AlignerModel
import AlignerOptim
import AlignerRecipes
import AlignerTensor
import Foundation

/// Bradley-Terry training of a reward model: `settings.batchSize` pairs per micro-batch, `grad_accum` micro-batches
/// per step (the loss is the mean over all the step's pairs), clipping, AdamW on every parameter (decay on matrices)
/// on the stage's schedule. Pairs are reshuffled each epoch from the seed.
public struct RewardTrainingLoop {
    public let model: RewardModel
    public let settings: StageSettings
    public let optimizer: AdamW
    public let schedule: LearningRateSchedule
    public let totalSteps: Int
    public let pairs: [PreferencePair]
    public let seed: UInt64
    /// Steps done.
    public internal(set) var step = 0
    /// Where the pair stream stands (epoch, pairs taken in it).
    public internal(set) var position = BatchPosition()
    /// Adapter dropout masks derive from this seed, the step and the micro-batch (a resumed run draws the same).
    public var dropoutSeed: UInt64 = 0
    /// The processes sharing each step's pairs (one process by default): each scores its share of every
    /// micro-batch's pairs, padded as the whole micro-batch is, and the gradients and counts are summed over them.
    public var group: ProcessGroup = .single
    /// Linear warm-up steps of the schedule.
    public var warmupSteps: Int { settings.warmupSteps(totalSteps: totalSteps) }
    /// Micro-batches (of `settings.batchSize` pairs) per pass over the pairs.
    public var batchesPerEpoch: Int { (pairs.count + settings.batchSize - 1) / settings.batchSize }

    public init(model: RewardModel, pairs: [PreferencePair], settings: StageSettings, seed: UInt64) throws {
        guard !pairs.isEmpty else { throw SettingError(setting: "data", message: "no preference pairs to train on") }
        guard settings.batchSize >= 1, settings.gradAccum >= 1 else {
            throw SettingError(setting: "batch_size", message: "batch_size and grad_accum must be at least 1")
        }
        self.model = model
        self.pairs = pairs
        self.settings = settings
        self.seed = seed
        totalSteps = settings.totalSteps(batchesPerEpoch: (pairs.count + settings.batchSize - 1) / settings.batchSize)
        schedule = settings.learningRateSchedule(totalSteps: totalSteps)
        optimizer = AdamW(groups: ParameterGroup.standard(model.trainableParameters, order: model.trainableNames, weightDecay: Float(settings.weightDecay)),
                          beta1: Float(settings.beta1), beta2: Float(settings.beta2), eps: Float(settings.eps))
    }

    /// Continues a stopped run: optimiser state, step and pair-stream position from a checkpoint.
    public mutating func restore(optimizer state: [String: Tensor], optimizerStep: Int, step: Int, position: BatchPosition) throws {
        guard (0...totalSteps).contains(step), (0...pairs.count).contains(position.cursor) else {
            throw SettingError(setting: "checkpoint", message: "step \(step) of \(totalSteps) at pair \(position.cursor) of \(pairs.count) does not fit this run")
        }
        try optimizer.load(tensors: state, step: optimizerStep, parameters: model.trainableParameters)
        self.position = position
        self.step = step
    }

    /// Batches per chunk of similar lengths (`order(epoch:)`).
    static let chunkBatches = 16

    /// The order of the pairs in `epoch`: shuffled from the seed, then, within chunks of `chunkBatches` batches,
    /// sorted by the pair's longer sequence, cut into batches and the full batches shuffled again; a batch is padded
    /// to its longest row, so similar lengths save most of the padding. The epoch's short last batch stays last.
    func order(epoch: Int) -> [Int] {
        var rng = SeededGenerator(seed: seed ^ (0xA5A5_5A5A_0F0F_F0F0 &* UInt64(epoch + 1)))
        let shuffled = seededShuffle(Array(pairs.indices), &rng)
        let size = settings.batchSize, chunk = size * Self.chunkBatches
        var out: [Int] = []
        out.reserveCapacity(shuffled.count)
        for start in stride(from: 0, to: shuffled.count, by: chunk) {
            // (length, place in the shuffle): a total order, so the result does not depend on the sort's stability.
            let part = (start..<min(shuffled.count, start + chunk)).sorted { a, b in
                let (la, lb) = (max(pairs[shuffled[a]].better.count, pairs[shuffled[a]].worse.count),
                                max(pairs[shuffled[b]].better.count, pairs[shuffled[b]].worse.count))
                return la != lb ? la < lb : a < b
            }.map { shuffled[$0] }
            var batches = stride(from: 0, to: part.count, by: size).map { Array(part[$0..<min(part.count, $0 + size)]) }
            let last = batches.last!.count < size ? batches.removeLast() : nil
            batches = seededShuffle(batches, &rng)
            out += batches.joined()
            if let last { out += last }
        }
        return out
    }

    /// The current epoch's order (computed once per epoch).
    var orderCache: (epoch: Int, order: [Int])?

    mutating func currentOrder() -> [Int] {
        if let c = orderCache, c.epoch == position.epoch { return c.order }
        let o = order(epoch: position.epoch)
        orderCache = (position.epoch, o)
        return o
    }

    mutating func nextPairs() -> [PreferencePair] {
        var out: [PreferencePair] = []
        var order = currentOrder()
        while out.count < settings.batchSize {
            if position.cursor >= order.count {
                if !out.isEmpty { break }  // an epoch's last, shorter batch
                position = BatchPosition(epoch: position.epoch + 1, cursor: 0)
                order = currentOrder()
            }
            out.append(pairs[order[position.cursor]])
            position.cursor += 1
        }
        return out
    }

    /// One optimiser step; a non-finite loss or gradient leaves the weights unchanged and the step uncounted. The
    /// loss is the mean over the step's pairs, reported with the pairwise accuracy (`extras["accuracy"]`: the better
    /// response scored higher, ties half) and, as `countedTokens`, the pairs.
    public mutating func takeStep() throws -> StepStats {
        guard let pad = model.config.padTokenId else { throw SettingError(setting: "pad_token_id", message: "the reward model has none") }
        let micro = (0..<settings.gradAccum).map { _ in nextPairs() }
        let total = Double(micro.reduce(0) { $0 + $1.count })
        var lossSum = 0.0, right = 0.0, tokens = 0
        defer { model.decoder.adapterDropoutSeed = nil; model.decoder.adapterDropoutPositionOffset = 0 }
        for (k, part) in micro.enumerated() {
            let b = RewardExampleBuilder.batch(part, padId: pad)  // (2P × T): the better responses' rows, then the worse ones'
            let p = part.count
            let key = TrainingLoop.dropoutKey(seed: dropoutSeed, stage: 3, step: step, micro: k)
            // This process's pairs; its better and worse rows, each a contiguous block of the whole batch, are scored
            // apart with the whole batch's positions (so that adapter dropout draws the masks one process draws).
            let share = group.isDistributed ? Batch.share(of: p, rank: group.rank, ranks: group.size) : 0..<p
            guard !share.isEmpty else { continue }
            func scores(firstRow: Int) throws -> Tensor {
                model.decoder.adapterDropoutSeed = key
                model.decoder.adapterDropoutPositionOffset = firstRow * b.time
                let rows = Array(b.ids[(firstRow * b.time)..<((firstRow + share.count) * b.time)])
                return try model.scores(ids: rows, batch: share.count, time: b.time)
            }
            let better: Tensor, worse: Tensor
            if share.count == p {
                model.decoder.adapterDropoutSeed = key
                model.decoder.adapterDropoutPositionOffset = 0
                let s = try model.scores(ids: b.ids, batch: b.batch, time: b.time)  // (2P)
                (better, worse) = (s.slice(axis: 0, 0..<p), s.slice(axis: 0, p..<(2 * p)))
            } else {
                (better, worse) = (try scores(firstRow: share.lowerBound), try scores(firstRow: p + share.lowerBound))
            }
            let n = share.count
            let loss = RewardModel.pairwiseLoss(better: better, worse: worse) * Float(Double(n) / total)
            loss.backward()
            lossSum += Double(loss.item)
            let (vb, vw) = (better.scalars, worse.scalars)
            for i in 0..<n { right += vb[i] > vw[i] ? 1 : vb[i] == vw[i] ? 0.5 : 0 }
            for row in Array(share) + share.map({ p + $0 }) {
                tokens += b.ids[(row * b.time)..<((row + 1) * b.time)].reduce(0) { $0 + ($1 != pad ? 1 : 0) }
            }
        }
        let params = model.trainableParameters
        let ordered = model.trainableNames.map { params[$0]! }
        defer { for p in ordered { p.releaseGrad() } }
        var stopRequested = Interrupt.isRequested
        if group.isDistributed {
            // Sums over the processes: every gradient (zeros where this process scored no pair), then the loss, the
            // pairs scored right, the tokens and the stop requests.
            try group.allReduceSum(ordered.map { p in
                let g = p.gradOrZeros()
                return (g.data, g.count)
            })
            var totals = [lossSum, right, Double(tokens), stopRequested ? 1 : 0]
            try group.allReduceSum(&totals)
            (lossSum, right, tokens, stopRequested) = (totals[0], totals[1], Int(totals[2]), totals[3] > 0)
        }
        let norm = Double(clipGradientNorm(ordered, maxNorm: settings.clip > 0 ? Float(settings.clip) : .infinity))
        let lr = schedule.rate(at: step, base: Float(settings.lr))
        var stats = StepStats(stage: 1, step: step + 1, totalSteps: totalSteps, loss: lossSum, gradNorm: norm, learningRate: Double(lr),
                              tokens: tokens, countedTokens: Int(total), stopRequested: stopRequested, extras: ["accuracy": right / total])
        guard stats.isFinite else {
            stats.step = step
            return stats
        }
        optimizer.update(params, lr: lr)
        step += 1
        return stats
    }
}

extension RewardTrainingLoop: StageLoop {}
