import AlignerData
import AlignerDistributed
import AlignerModel
import AlignerOptim
import AlignerRecipes
import AlignerTensor
import Foundation

/// What one optimiser step did.
public struct StepStats: Sendable {
    public var stage: Int
    /// Steps done in this stage, this one included.
    public var step: Int
    public var totalSteps: Int
    /// Token-weighted mean loss over the accumulated micro-batches.
    public var loss: Double
    /// Gradient norm before clipping.
    public var gradNorm: Double
    /// Learning rate used for this step.
    public var learningRate: Double
    /// Real (unpadded) tokens processed.
    public var tokens: Int
    /// Tokens the loss counted.
    public var countedTokens: Int
    /// Some process asked the run to stop after this step (Ctrl-C); every process of a data-parallel run sees the same.
    public var stopRequested = false
    /// Further measures of the step, by their metrics.jsonl name (a reward model's pairwise "accuracy").
    public var extras: [String: Double] = [:]
    /// False when the loss or the gradient was NaN or infinite; the weights were then left unchanged.
    public var isFinite: Bool { loss.isFinite && gradNorm.isFinite }
}

/// One stage's optimisation and nothing else: it draws batches, accumulates token-weighted gradients over
/// `grad_accum` micro-batches, clips, and steps AdamW on the schedule. Evaluation, metrics, checkpoints and stopping
/// are the observers' business (`TrainingObserver`).
///
/// Data-parallel (`group` of several processes): every process draws the same batches and computes its share of the
/// rows of each (`Batch.share`); the gradient sums, loss sums and token counts are summed over the processes before
/// the division by the counted tokens, so that every process takes the update one process takes on the whole batch.
public struct TrainingLoop {
    public let stage: Int
    public let settings: StageSettings
    public let model: LlamaModel
    public let optimizer: AdamW
    public let schedule: LearningRateSchedule
    public let totalSteps: Int
    public let warmupSteps: Int
    public internal(set) var batches: BatchStream
    /// Steps done in this stage.
    public internal(set) var step: Int
    /// Adapter dropout masks derive from this seed, the stage, the step and the micro-batch (so a resumed run draws
    /// the same masks).
    public var dropoutSeed: UInt64 = 0
    /// The processes sharing each batch (one process by default).
    public var group: ProcessGroup = .single

    /// A loop for `settings` over `batches`: a fresh AdamW over the model's trainable parameters (its adapters when
    /// it has them, else every parameter; decay on matrices only) and the stage's schedule.
    public init(stage: Int, settings: StageSettings, model: LlamaModel, batches: BatchStream) {
        self.stage = stage
        self.settings = settings
        self.model = model
        self.batches = batches
        totalSteps = Self.totalSteps(settings, batches)
        warmupSteps = settings.warmupSteps(totalSteps: totalSteps)
        schedule = settings.learningRateSchedule(totalSteps: totalSteps)
        optimizer = AdamW(groups: ParameterGroup.standard(model.trainableParameters, order: model.trainableNames, weightDecay: Float(settings.weightDecay)),
                          beta1: Float(settings.beta1), beta2: Float(settings.beta2), eps: Float(settings.eps))
        step = 0
    }

    /// Steps a stage takes: `steps` when set, else `epochs` passes over the batches.
    public static func totalSteps(_ s: StageSettings, _ stream: BatchStream) -> Int {
        s.totalSteps(batchesPerEpoch: stream.batchesPerEpoch)
    }

    /// Continues a stopped stage: optimiser state, step and batch position from a checkpoint.
    public mutating func restore(optimizer state: [String: Tensor], optimizerStep: Int, step: Int, position: BatchPosition) throws {
        guard (0...totalSteps).contains(step), (0...batches.batchesPerEpoch).contains(position.cursor) else {
            throw SettingError(setting: "checkpoint", message: "step \(step) of \(totalSteps) at batch \(position.cursor) of \(batches.batchesPerEpoch) does not fit this stage")
        }
        try optimizer.load(tensors: state, step: optimizerStep, parameters: model.trainableParameters)
        batches.position = position
        self.step = step
    }

    /// The dropout key of one micro-batch (SplitMix64 finalisation of the four numbers).
    static func dropoutKey(seed: UInt64, stage: Int, step: Int, micro: Int) -> UInt64 {
        var z = seed &+ UInt64(stage) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(step) &* 0xBF58_476D_1CE4_E5B9 &+ UInt64(micro) &* 0x94D0_49BB_1331_11EB
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// One optimiser step. A non-finite loss or gradient leaves the weights unchanged (and the step uncounted).
    public mutating func takeStep() throws -> StepStats {
        var lossSum = 0.0, counted = 0, tokens = 0
        defer {
            model.adapterDropoutSeed = nil
            model.adapterDropoutPositionOffset = 0
        }
        for micro in 0..<settings.gradAccum {
            let whole = batches.next()
            let rows = Batch.share(of: whole.batch, rank: group.rank, ranks: group.size)
            guard !rows.isEmpty else { continue }
            let b = group.isDistributed ? whole.rows(rows) : whole
            model.adapterDropoutSeed = Self.dropoutKey(seed: dropoutSeed, stage: stage, step: step, micro: micro)
            model.adapterDropoutPositionOffset = rows.lowerBound * whole.time
            let loss = try model.loss(ids: b.ids, labels: b.labels, batch: b.batch, time: b.time, attentionMask: b.mask, reduction: .sum)
            loss.backward()
            lossSum += Double(loss.item)
            counted += b.countedTokens
            tokens += b.realTokens
        }
        let params = model.orderedTrainable
        var stopRequested = Interrupt.isRequested
        if group.isDistributed {
            // Sums over the processes: every trainable gradient (zeros where this process had no rows), then the loss
            // sum, the token counts and the stop requests.
            try group.allReduceSum(params.map { p in
                let g = p.gradOrZeros()
                return (g.data, g.count)
            })
            var totals = [lossSum, Double(counted), Double(tokens), stopRequested ? 1 : 0]
            try group.allReduceSum(&totals)
            lossSum = totals[0]
            counted = Int(totals[1])
            tokens = Int(totals[2])
            stopRequested = totals[3] > 0
        }
        scaleGradients(params, by: 1 / Float(max(counted, 1)))
        let norm = Double(clipGradientNorm(params, maxNorm: settings.clip > 0 ? Float(settings.clip) : .infinity))
        let lr = schedule.rate(at: step, base: Float(settings.lr))
        var stats = StepStats(stage: stage, step: step + 1, totalSteps: totalSteps, loss: lossSum / Double(max(counted, 1)),
                              gradNorm: norm, learningRate: Double(lr), tokens: tokens, countedTokens: counted,
                              stopRequested: stopRequested)
        guard stats.isFinite else {
            model.releaseGradients()
            stats.step = step
            return stats
        }
        optimizer.update(model.trainableParameters, lr: lr)
        model.releaseGradients()
        step += 1
        return stats
    }
}

extension TrainingLoop: StageLoop {
    public var position: BatchPosition { batches.position }
}
