/// Text of generated tokens as they arrive, decoded in the context of the prompt: the continuation is the decoded
/// prompt-plus-tokens minus the decoded prompt, so that decoders which treat the start of a text specially
/// (SentencePiece's Metaspace drops the first token's leading space) keep the space at the prompt/continuation
/// boundary, and a multi-byte character split across tokens is held back until it is complete.
public struct StreamingDecoder {
    public let tokenizer: Tokenizer
    public let skipSpecialTokens: Bool
    private let prompt: [Int]
    private let promptText: String
    private var produced: [Int] = []
    /// The continuation emitted so far.
    public private(set) var text = ""

    /// Prompt tokens kept as context: enough for a decoder to see that the continuation does not start the text, and
    /// for a character split across byte tokens to meet its first bytes; decoding stays independent of prompt length.
    static let contextTokens = 8

    public init(tokenizer: Tokenizer, prompt: [Int], skipSpecialTokens: Bool = true) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
        self.prompt = Array(prompt.suffix(Self.contextTokens))
        promptText = tokenizer.decode(self.prompt, skipSpecialTokens: skipSpecialTokens)
    }

    /// Adds one generated token; returns the new text it completes (possibly empty).
    public mutating func push(_ id: Int) -> String {
        produced.append(id)
        let full = tokenizer.decode(prompt + produced, skipSpecialTokens: skipSpecialTokens)
        guard full.hasPrefix(promptText) else { return "" }
        let continuation = String(full.dropFirst(promptText.count))
        // Hold back an incomplete character (byte fallback or byte-level pieces decode to U+FFFD until complete).
        guard continuation.hasPrefix(text), !continuation.hasSuffix("\u{FFFD}") else { return "" }
        let new = String(continuation.dropFirst(text.count))
        text = continuation
        return new
    }

    /// The text held back when generation ends (an incomplete character decodes to U+FFFD, as a full decode gives),
    /// so that everything emitted equals the decoded prompt-plus-tokens minus the decoded prompt.
    public mutating func finish() -> String {
        let full = tokenizer.decode(prompt + produced, skipSpecialTokens: skipSpecialTokens)
        guard full.hasPrefix(promptText) else { return "" }
        let continuation = String(full.dropFirst(promptText.count))
        guard continuation.hasPrefix(text) else { return "" }
        let rest = String(continuation.dropFirst(text.count))
        text = continuation
        return rest
    }
}
