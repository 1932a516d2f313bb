import AlignerErrors
import Foundation
/// A chat template that cannot be parsed or rendered (a construct outside the supported Jinja subset, a template's
/// own `raise_exception`, a type error).
public struct ChatTemplateError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "chat template: \(message)" }
}

/// A Hugging Face chat template (Jinja), rendered as transformers renders it (`trim_blocks`, `lstrip_blocks`, loop
/// controls) for the subset of Jinja that model chat templates use: `{{ }}` output, `{% if/elif/else %}`,
/// `{% for x in ... %}` with `loop.*` and `break`/`continue`, `{% set %}` (also `namespace` attributes), whitespace
/// control (`{%-`, `-%}`), expressions with `and/or/not`, comparisons, `in`, `is defined/none/string/...`, `+ - * /
/// // % ~`, conditional expressions, subscripts and slices, string and dict methods (`strip`, `startswith`, `get`,
/// `items`, ...), filters (`trim`, `length`, `tojson`, `upper`, `lower`, `default`, `join`, ...), and the functions
/// `raise_exception`, `range`, `namespace` and `strftime_now`. Anything else is refused with a `ChatTemplateError`
/// that names it, when the template is parsed.
public struct ChatTemplate: Sendable {
    public let source: String
    let nodes: [Node]

    /// Parses `source`; throws `ChatTemplateError` for syntax outside the supported subset.
    public init(_ source: String) throws {
        self.source = source
        var parser = TemplateParser(tokens: try TemplateLexer.tokens(source))
        nodes = try parser.parseBlock(until: [])
    }

    /// Renders `messages` (each a role and content) with the variables transformers passes: `messages`,
    /// `add_generation_prompt`, `bos_token`, `eos_token` and any `extra`.
    public func render(messages: [(role: String, content: String)], addGenerationPrompt: Bool, bosToken: String?, eosToken: String?,
                       extra: [String: JinjaValue] = [:]) throws -> String {
        var scope: [String: JinjaValue] = extra
        scope["messages"] = .list(messages.map { .dict([("role", .string($0.role)), ("content", .string($0.content))]) })
        scope["add_generation_prompt"] = .bool(addGenerationPrompt)
        scope["bos_token"] = bosToken.map(JinjaValue.string) ?? .undefined
        scope["eos_token"] = eosToken.map(JinjaValue.string) ?? .undefined
        var context = RenderContext(scopes: [scope])
        var out = ""
        try context.render(nodes, into: &out)
        return out
    }
}

extension ChatTemplateError: AlignerError {
    public var subject: FailureSubject { .none }
    public var kind: FailureKind { .badData }
}
