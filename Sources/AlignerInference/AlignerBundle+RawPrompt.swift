import AlignerData
import AlignerFormats
import AlignerModel
import Foundation

/// A model continuing a text as it is (`aligner generate`): no prompt template, the tokenizer's own special tokens.
extension AlignerBundle {
    /// The ids of `text` as a prompt: encoded with the tokenizer's post-processor special tokens when
    /// `addSpecialTokens` (as transformers does by default), with the BOS token put first when `forceBOS` and it is not
    /// there already. Refused (`setting` names the option) when it has no token or leaves no room in the context.
    public func rawPromptIds(_ text: String, addSpecialTokens: Bool, forceBOS: Bool, setting: String = "--prompt") throws -> [Int] {
        var ids = tokenizer.encode(text, addSpecialTokens: addSpecialTokens)
        if forceBOS, let b = specialTokens.bos.flatMap({ tokenizer.id(of: $0) }), ids.first != b { ids.insert(b, at: 0) }
        guard !ids.isEmpty else { throw SettingError(setting: setting, message: "the prompt has no tokens") }
        let context = model.config.maxPositionEmbeddings
        guard ids.count < context else {
            throw SettingError(setting: setting, message: "the prompt has \(ids.count) tokens; the model's context is \(context) (max_position_embeddings), which leaves no room to generate: shorten the prompt")
        }
        return ids
    }

    /// `options` for continuing a prompt of `promptLength` tokens: the model's end-of-sequence ids, and at most the
    /// new tokens the context leaves (`note` says when `maxNewTokens` was lowered).
    public func generationOptions(_ options: GenerationOptions, promptLength: Int) -> (options: GenerationOptions, note: String?) {
        var o = options
        o.eosTokenIds = eosIds
        let context = model.config.maxPositionEmbeddings
        guard o.maxNewTokens > context - promptLength else { return (o, nil) }
        let note = "--max-new-tokens \(o.maxNewTokens) lowered to \(context - promptLength): the prompt's \(promptLength) tokens and the new ones must fit the context of \(context)"
        o.maxNewTokens = context - promptLength
        return (o, note)
    }
}
