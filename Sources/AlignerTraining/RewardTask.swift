import AlignerData
import AlignerFormats
import AlignerModel
import AlignerOptim
import AlignerRecipes
import AlignerRuns
import AlignerTokenizers
import AlignerSafetensors
import AlignerTensor
import Foundation

/// A reward model as the run lifecycle trains it: evaluation is the held-out pairs' accuracy, mean margin and loss;
/// a checkpoint holds the sequence-classification weights (with LoRA, the adapters and the head, referring to the
/// untouched pretrained base), the optimiser, the state and the tokenizer files.
public final class RewardTask: TrainingTask {
    public let recipe: Recipe
    public let model: RewardModel
    let eval: [PreferencePair]
    let evalBatch: Int
    let tokenizerJSON: Data
    let specials: SpecialTokens
    /// The pretrained base a LoRA checkpoint refers to (nil: checkpoints hold the decoder's weights).
    let base: BaseReference?
    /// The margins of the held-out pairs at the last evaluation.
    public private(set) var lastMargins: [Double]?

    init(recipe: Recipe, model: RewardModel, eval: [PreferencePair], evalBatch: Int, tokenizerJSON: Data, specials: SpecialTokens,
         base: BaseReference?) {
        self.recipe = recipe
        self.model = model
        self.eval = eval
        self.evalBatch = evalBatch
        self.tokenizerJSON = tokenizerJSON
        self.specials = specials
        self.base = base
    }

    /// The held-out evaluation of the current weights, as metrics.jsonl fields; every process of a data-parallel run
    /// scores every pair (the same numbers).
    public func evaluate() throws -> [String: Any] {
        let margins = try RewardEvaluation.margins(model, eval, batchSize: evalBatch)
        lastMargins = margins
        let e = RewardEvaluation.summary(of: margins)
        return ["eval_accuracy": e.accuracy, "eval_margin": e.meanMargin, "eval_loss": e.loss, "eval_pairs": e.pairs]
    }

    public func describe(_ point: EvalPoint, fields: [String: Any], totalSteps: Int) -> String {
        String(format: "step %d: held-out pairwise accuracy %.4f (%d pairs), mean margin %.4f, loss %.4f", point.step,
               fields["eval_accuracy"] as? Double ?? .nan, fields["eval_pairs"] as? Int ?? 0, fields["eval_margin"] as? Double ?? .nan, point.evalLoss)
    }

    public func checkpointFiles(state: TrainerState, optimizer: AdamW) throws -> [(String, Data)] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var files: [(String, Data)] = []
        let referToBase = model.decoder.lora != nil ? base : nil
        if let referToBase { files.append((BaseReference.file, try encoder.encode(referToBase))) }
        files.append(("model.safetensors", try SafetensorsWriter.encode(referToBase != nil ? [RewardModel.scoreName: model.score] : model.parameters,
                                                                         metadata: ["format": "pt"])))
        if model.decoder.lora != nil { files += try PEFTAdapter.files(of: model.decoder, base: base?.path) }
        return files + (try CheckpointStore.trainingFiles(optimizer: optimizer, state: state, config: model.config, recipe: recipe,
                                                          tokenizerJSON: tokenizerJSON))
            + (try CheckpointStore.tokenizerFiles(specials: specials, chat: nil))
    }
}
