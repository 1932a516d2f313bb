import AlignerData
import AlignerFiles
import AlignerDistributed
import AlignerFormats
import AlignerInference
import AlignerMeasures
import AlignerModel
import AlignerOptim
import AlignerRecipes
import AlignerRuns
import AlignerTensor
import Foundation

/// An Aligner as the run lifecycle trains it: evaluation is the held-out eval loss (and, with `train.generate_eval`,
/// the metrics of greedy corrections of the first held-out records); a checkpoint holds the weights (or, for adapters
/// on the untouched pretrained base, a reference to it), the optimiser, the state and the tokenizer files.
public final class AlignerTask: TrainingTask {
    public let recipe: Recipe
    public let model: LlamaModel
    let evalExamples: [Example]
    let padId: Int
    let tokenizerJSON: Data
    /// Further files of every checkpoint (the special tokens in `tokenizer_config.json`, a chat template).
    let extraFiles: [(String, Data)]
    let group: ProcessGroup
    /// Held-out records corrected at each evaluation (`train.generate_eval`), and the Aligner (this model) that does it.
    var generationRecords: [QACRecord] = []
    var generator: AlignerBundle?
    /// Where the last evaluation's corrections are written (`HeldOutCorrections.file` in the run folder; nil: nowhere).
    var correctionsFile: URL?
    /// The pretrained base that adapter checkpoints refer to instead of holding the frozen weights (nil: they hold them).
    var base: BaseReference?

    init(recipe: Recipe, model: LlamaModel, evalExamples: [Example], padId: Int, tokenizerJSON: Data, extraFiles: [(String, Data)],
         group: ProcessGroup) {
        self.recipe = recipe
        self.model = model
        self.evalExamples = evalExamples
        self.padId = padId
        self.tokenizerJSON = tokenizerJSON
        self.extraFiles = extraFiles
        self.group = group
    }

    /// Eval loss of the current weights on the held-out examples. The buffer pool is emptied before and after:
    /// evaluation's shapes are not training's.
    public func evalLoss() throws -> Double {
        let pool = ComputeContext.current.pool
        pool.trim()
        defer { pool.trim() }
        return try Evaluation.loss(model, evalExamples, batchSize: recipe.stage2.batchSize, padId: padId, group: group)
    }

    /// Greedy corrections of the `train.generate_eval` held-out records by the current weights and their metrics
    /// (nil when the recipe asks for none, and on ranks other than 0, which do not generate).
    public func generationMetrics() throws -> CorrectionMetrics? {
        guard let generator, !generationRecords.isEmpty else { return nil }
        let pool = ComputeContext.current.pool
        pool.trim()
        defer { pool.trim() }
        let outputs = try Corrector.corrections(generationRecords.map { ($0.question, $0.answer) }, with: [generator],
                                                options: GenerationOptions(maxNewTokens: recipe.train.generateMaxNewTokens, noRepeatNgramSize: recipe.train.generateNoRepeatNgramSize))
        if let correctionsFile {
            let kept = HeldOutCorrections(generationRecords, corrections: outputs.texts, ended: outputs.ended)
            try AtomicFile.write(ResultJSON.encode(kept), to: correctionsFile)
        }
        return try CorrectionMetrics(outputs: outputs.texts, records: generationRecords)
    }

    public func evaluate() throws -> [String: Any] {
        var fields: [String: Any] = ["eval_loss": try evalLoss()]
        // Rank 0 generates (the only process that has a generator); the others receive its metrics.
        var generation = try group.agree { try generationMetrics() }
        if group.isDistributed { generation = try group.broadcast(generation, as: CorrectionMetrics?.self) }
        if let g = generation { fields.merge(g.fields) { a, _ in a } }
        return fields
    }

    public func describe(_ point: EvalPoint, fields: [String: Any], totalSteps: Int) -> String {
        var line = String(format: "stage %d step %d/%d: eval loss %.4f", point.stage, point.step, totalSteps, point.evalLoss)
        if let g = point.generation {
            line += String(format: "; %d corrections: copy rate %.3f, near-copy %.3f, edit distance to answer %.3f, to reference %.3f",
                           g.generated, g.copyRate, g.nearCopyRate, g.editToAnswer, g.editToReference)
        }
        return line
    }

    public func checkpointFiles(state: TrainerState, optimizer: AdamW) throws -> [(String, Data)] {
        try CheckpointStore.files(model: model, optimizer: optimizer, state: state, recipe: recipe, tokenizerJSON: tokenizerJSON,
                                  extraFiles: extraFiles, base: base)
    }
}
