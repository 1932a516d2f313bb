import AlignerData
import AlignerFiles
import AlignerFormats
import AlignerMeasures
import AlignerModel
import AlignerRecipes
import AlignerRuns
import AlignerTensor
import AlignerTokenizers
import Foundation

/// A trained reward model used as a judge: it scores responses to questions (higher is better), read as it was
/// trained (its question template, BOS, the response, EOS).
public final class RewardJudge {
    public let model: RewardModel
    public let tokenizer: Tokenizer
    public let specialTokens: SpecialTokens
    /// The folder the reward model was read from.
    public let source: URL
    let builder: RewardExampleBuilder
    /// Keep every score by its (question, response) and score each pair once (a sweep judges the same answers and
    /// references for every run).
    public var memoize = false
    private var memo: [String: Double] = [:]

    /// Loads a reward model folder (an export, `aligner reward train`'s `<run>/model`, or one transformers wrote) or
    /// a reward run folder (its `model/`). Sequences longer than `maxLength` tokens are shortened as in training (the
    /// question loses its beginning first); by default the length the model was trained with (recorded in the folder,
    /// or the run's recipe), else the model's context up to 1024.
    public init(path: String, maxLength: Int? = nil) throws {
        var url = URL(fileURLWithPath: path)
        var trainedLength: Int?
        let inRun = url.appendingPathComponent(RunFolder.rewardModelFolder)
        if FileManager.default.fileExists(atPath: inRun.appendingPathComponent("config.json").path) {
            trainedLength = (try? Recipe.load(path: url.appendingPathComponent("recipe.json").path))?.data.maxLength
            url = inRun
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw FileError(file: path, message: "no such reward model folder", kind: .missing)
        }
        guard isDirectory.boolValue else { throw FileError(file: path, message: "is a file; --judge takes a reward model folder or a reward run folder", kind: .badData) }
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent("config.json").path) else {
            throw FileError(file: path, message: "is not a reward model folder (no config.json, no model/): pass a reward model folder, or the run folder of `aligner reward train`", kind: .badData)
        }
        let loaded = try RewardExport.load(path: url.path)
        (model, tokenizer, specialTokens, source) = (loaded.model, loaded.tokenizer, loaded.specialTokens, url)
        let settings = try RewardExport.settings(in: url)
        let length = maxLength ?? settings.maxLength ?? trainedLength ?? min(loaded.model.config.maxPositionEmbeddings, 1024)
        guard length >= 8 && length <= loaded.model.config.maxPositionEmbeddings else {
            throw SettingError(setting: "max_length", message: "\(length) is not within 8...\(loaded.model.config.maxPositionEmbeddings) (the judge's context)")
        }
        builder = try RewardExampleBuilder(tokenizer: tokenizer, specialTokens: specialTokens, maxLength: length,
                                           template: settings.template)
    }

    /// The score of each (question, response), in order; sequences are batched by length, `batchSize` at a time.
    public func scores(_ items: [(question: String, response: String)], batchSize: Int = 8) throws -> [Double] {
        guard batchSize >= 1 else { throw SettingError(setting: "batch_size", message: "must be at least 1, got \(batchSize)") }
        guard let pad = model.config.padTokenId else { throw SettingError(setting: "pad_token_id", message: "the reward model has none") }
        var out = [Double](repeating: .nan, count: items.count)
        let keys = memoize ? items.map { $0.question + "\u{0}" + $0.response } : []
        var todo = Array(items.indices)
        if memoize {
            todo = todo.filter { i in
                guard let s = memo[keys[i]] else { return true }
                out[i] = s
                return false
            }
        }
        var sequences = [[Int]](repeating: [], count: items.count)
        for i in todo { sequences[i] = builder.sequence(question: items[i].question, response: items[i].response) }
        let order = todo.sorted { sequences[$0].count < sequences[$1].count }
        for start in stride(from: 0, to: order.count, by: batchSize) {
            let rows = Array(order[start..<min(order.count, start + batchSize)])
            let time = rows.map { sequences[$0].count }.max()!
            var ids = [Int](repeating: pad, count: rows.count * time)
            for (r, i) in rows.enumerated() { for (t, id) in sequences[i].enumerated() { ids[r * time + t] = id } }
            let s = try withNoGrad { try model.scores(ids: ids, batch: rows.count, time: time) }.scalars
            for (r, i) in rows.enumerated() {
                out[i] = Double(s[r])
                if memoize { memo[keys[i]] = out[i] }
            }
        }
        return out
    }
}
