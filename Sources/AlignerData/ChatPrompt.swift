import AlignerJinja
import Foundation

/// A chat template with the special-token strings it is rendered with, checked once on a probe message.
public struct ChatPrompt: Sendable {
    public let template: ChatTemplate
    public let bosToken: String?
    public let eosToken: String?
    /// The rendering of a probe message split around it, used if a later rendering fails.
    private let around: (prefix: String, suffix: String)

    /// Parses `source` and checks it as `init(template:...)` does: a template that does not parse, cannot render a user
    /// message or does not show it exactly once throws `SettingError` naming `setting`.
    public init(source: String, bosToken: String?, eosToken: String?, setting: String = "data.chat_template") throws {
        let template: ChatTemplate
        do { template = try ChatTemplate(source) } catch let e as ChatTemplateError {
            throw SettingError(setting: setting, message: "the model's chat template cannot be used: \(e.message)")
        }
        try self.init(template: template, bosToken: bosToken, eosToken: eosToken, setting: setting)
    }

    /// Throws `SettingError` (naming `setting`) when the template cannot render a single user message with the
    /// generation prompt, or does not contain the message exactly once.
    public init(template: ChatTemplate, bosToken: String?, eosToken: String?, setting: String = "data.chat_template") throws {
        self.template = template
        self.bosToken = bosToken
        self.eosToken = eosToken
        let probe = "\u{E000}aligner-user-message\u{E001}"
        let rendered: String
        do {
            rendered = try template.render(messages: [(role: "user", content: probe)], addGenerationPrompt: true, bosToken: bosToken, eosToken: eosToken)
        } catch {
            throw SettingError(setting: setting, message: "the model's chat template cannot render a user message: \(error)")
        }
        let parts = rendered.components(separatedBy: probe)
        guard parts.count == 2 else {
            throw SettingError(setting: setting, message: "the model's chat template does not show the user message exactly once")
        }
        around = (parts[0], parts[1])
    }

    /// One user turn holding `message`, and the generation prompt.
    public func render(_ message: String) -> String {
        (try? template.render(messages: [(role: "user", content: message)], addGenerationPrompt: true, bosToken: bosToken, eosToken: eosToken))
            ?? around.prefix + message + around.suffix
    }
}
