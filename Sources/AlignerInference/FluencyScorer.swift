import AlignerData
import AlignerFormats
import AlignerModel
import AlignerTensor
import Foundation

/// Fluency of texts as a reference language model reads them: the mean per-token loss (nats) of each text after the
/// model's prompt prefix (its post-processor's tokens, or the BOS token), as `transformers` computes a causal-LM loss
/// with the prefix masked. Lower reads more fluently to that model; a repetition or a garbled text scores high, a
/// fixed short refusal low, so fluency is reported beside the other measures, never alone.
public struct FluencyScorer {
    public let bundle: AlignerBundle
    /// How the model is named in reports (its path).
    public let name: String
    /// Texts longer than this many tokens are cut (the model's context, at most 512).
    public let maxTokens: Int

    public init(_ bundle: AlignerBundle, name: String) {
        self.bundle = bundle
        self.name = name
        maxTokens = min(512, bundle.model.config.maxPositionEmbeddings)
    }

    /// The mean per-token loss of each text (NaN for a text without tokens).
    public func losses(_ texts: [String]) throws -> [Double] {
        let tokenizer = bundle.tokenizer
        let bos = bundle.specialTokens.bos.flatMap { tokenizer.id(of: $0) }
        let prefix = tokenizer.hasPostProcessor ? tokenizer.prefixIds : (bos.map { [$0] } ?? [])
        return try texts.map { text in
            let body = Array(tokenizer.encode(text).prefix(maxTokens - prefix.count))
            // Without a prefix the first token has nothing to be predicted from: it is not counted.
            guard !body.isEmpty, prefix.count + body.count >= 2 else { return .nan }
            let ids = prefix + body
            let labels = [Int](repeating: -100, count: prefix.count) + body
            let loss = try withNoGrad { try bundle.model.loss(ids: ids, labels: labels, batch: 1, time: ids.count) }
            return Double(loss.item)
        }
    }

    /// The mean over texts with tokens of their mean per-token loss.
    public func meanLoss(_ texts: [String]) throws -> Double {
        let finite = try losses(texts).filter(\.isFinite)
        return finite.isEmpty ? .nan : finite.reduce(0, +) / Double(finite.count)
    }
}
