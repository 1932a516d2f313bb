import Foundation

/// A prompt template: text with `{question}` and `{answer}` placeholders. The built-in ones (`v1`, the default, `v2`,
/// `empathy`) are data, read from `templates.json`; custom ones come from recipes.
public struct PromptTemplate: Sendable, Equatable {
    public var name: String
    public var text: String
    /// The instruction alone (a built-in template's input, without the "BEGINNING OF CONVERSATION: USER: ...
    /// ASSISTANT:" wrapper): the user message when the prompt goes through a model's chat template. nil for custom
    /// templates, whose whole text is the user message then.
    public var input: String?

    /// A custom template; it must hold both placeholders.
    public init(name: String = "custom", text: String) throws {
        for p in ["{question}", "{answer}"] where !text.contains(p) {
            throw SettingError(setting: "template '\(name)'", message: "has no \(p) placeholder")
        }
        self.name = name
        self.text = text
    }

    /// `templates.json`: the conversation wrapper (with `{input}`) and the built-in inputs by name.
    static let resource: (wrapper: String, inputs: [String: String]) = {
        guard let url = Bundle.module.url(forResource: "templates", withExtension: "json"),
              let data = try? Data(contentsOf: url),
              let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let wrapper = root["wrapper"] as? String, let inputs = root["inputs"] as? [String: String]
        else { fatalError("AlignerData: the templates.json resource is missing or malformed") }
        return (wrapper, inputs)
    }()

    /// The conversation wrapper of the built-in templates, in which a reward model reads a question: "BEGINNING OF
    /// CONVERSATION: USER: {input} ASSISTANT:" — the response follows.
    public static var conversationWrapper: String { resource.wrapper }

    /// A question in the conversation wrapper (braces in the question are left alone).
    public static func conversation(question: String) -> String {
        fill(conversationQuestionTemplate, question: question, answer: "")
    }

    /// The conversation wrapper with a {question} placeholder: "BEGINNING OF CONVERSATION: USER: {question} ASSISTANT:".
    public static var conversationQuestionTemplate: String { conversationWrapper.replacingOccurrences(of: "{input}", with: "{question}") }

    /// `template` ("conversation" for the wrapper, else a text with {question}) filled with `question` in one pass.
    public static func question(_ question: String, in template: String) -> String {
        fill(template == "conversation" ? conversationQuestionTemplate : template, question: question, answer: "")
    }

    /// The built-in templates by name.
    public static let builtIn: [String: PromptTemplate] = {
        let (wrapper, inputs) = resource
        var out: [String: PromptTemplate] = [:]
        for (name, input) in inputs {
            var t = try! PromptTemplate(name: name, text: wrapper.replacingOccurrences(of: "{input}", with: input))
            t.input = input
            out[name] = t
        }
        return out
    }()

    /// A built-in template by name (`v1`, `v2`, `empathy`).
    public static func named(_ name: String) throws -> PromptTemplate {
        guard let t = builtIn[name] else {
            throw SettingError(setting: "data.template", message: "unknown template '\(name)' (built in: \(builtIn.keys.sorted().joined(separator: ", ")))")
        }
        return t
    }

    public static var v1: PromptTemplate { builtIn["v1"]! }

    /// The prompt for a question and answer. Placeholders are filled in one pass, so braces inside the question or
    /// answer are left alone.
    public func render(question: String, answer: String) -> String { Self.fill(text, question: question, answer: answer) }

    /// The user message for a chat template: the input (or, for custom templates, the text) filled in.
    public func userMessage(question: String, answer: String) -> String {
        Self.fill(input ?? text, question: question, answer: answer)
    }

    static func fill(_ text: String, question: String, answer: String) -> String {
        var out = ""
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{") {
            out += rest[..<open]
            let tail = rest[open...]
            if tail.hasPrefix("{question}") { out += question; rest = tail.dropFirst(10) }
            else if tail.hasPrefix("{answer}") { out += answer; rest = tail.dropFirst(8) }
            else { out.append("{"); rest = tail.dropFirst() }
        }
        return out + rest
    }
}
