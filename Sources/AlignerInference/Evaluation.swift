import AlignerData
import AlignerDistributed
import AlignerModel
import AlignerTensor

/// Evaluation of a model on examples (no gradients).
public enum Evaluation {
    /// Token-weighted mean loss of the corrections of `examples`, in batches of `batchSize`. With a `group` of several
    /// processes each computes every size-th batch and the sums are added up, so every process returns the same number.
    public static func loss(_ model: LlamaModel, _ examples: [Example], batchSize: Int, padId: Int, group: ProcessGroup = .single) throws -> Double {
        guard batchSize >= 1 else { throw SettingError(setting: "batch_size", message: "must be at least 1, got \(batchSize)") }
        var total = 0.0, counted = 0
        let stream = try BatchStream(examples: examples, size: .examples(batchSize), seed: 0, padId: padId, groupWindow: 1)
        for (index, start) in stride(from: 0, to: examples.count, by: batchSize).enumerated() where index % group.size == group.rank {
            let b = stream.pad(Array(start..<min(examples.count, start + batchSize)))
            let loss = try withNoGrad {
                try model.loss(ids: b.ids, labels: b.labels, batch: b.batch, time: b.time, attentionMask: b.mask, reduction: .sum)
            }
            total += Double(loss.item)
            counted += b.countedTokens
        }
        if group.isDistributed {
            var sums = [total, Double(counted)]
            try group.allReduceSum(&sums)
            (total, counted) = (sums[0], Int(sums[1]))
        }
        return total / Double(max(counted, 1))
    }
}
