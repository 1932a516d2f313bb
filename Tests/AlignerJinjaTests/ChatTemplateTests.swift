import Foundation
import XCTest

import AlignerJinja

/// Chat templates as model repositories ship them, rendered as transformers renders them
/// (scripts/fixtures/make_chat_template_fixtures.py): identical text, or an error where the template raises.
final class ChatTemplateTests: XCTestCase {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/chat_templates.json")

    func testRendersAsTransformersDoes() throws {
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixture)) as? [String: Any])
        let sources = try XCTUnwrap(root["templates"] as? [String: String])
        let templates = try sources.mapValues { try ChatTemplate($0) }
        let cases = try XCTUnwrap(root["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 48)
        for c in cases {
            let name = c["template"] as! String
            let messages = (c["messages"] as! [[String: String]]).map { (role: $0["role"]!, content: $0["content"]!) }
            let generation = c["add_generation_prompt"] as! Bool
            let label = "\(name), \(messages.count) messages, generation prompt \(generation)"
            if let expected = c["rendered"] as? String {
                XCTAssertEqual(try templates[name]!.render(messages: messages, addGenerationPrompt: generation, bosToken: "<s>", eosToken: "</s>"), expected, label)
            } else {
                XCTAssertThrowsError(try templates[name]!.render(messages: messages, addGenerationPrompt: generation, bosToken: "<s>", eosToken: "</s>"), label) { e in
                    XCTAssertTrue("\(e)".contains(c["error"] as! String), "\(e)")
                }
            }
        }
    }

    func testUnsupportedConstructsAreNamed() {
        for (source, named) in [("{% macro m() %}x{% endmacro %}", "macro"), ("{{ x | wordwrap }}", "wordwrap"), ("{{ x | escape }}", "escape"),
                                ("{% if x %}", "endif"), ("{{ 'a' ", "unclosed"), ("{% for x in y recursive %}{% endfor %}", "recursive")] {
            XCTAssertThrowsError(try ChatTemplate(source).render(messages: [], addGenerationPrompt: false, bosToken: nil, eosToken: nil), source) { e in
                XCTAssertTrue("\(e)".contains(named), "\(source): \(e)")
            }
        }
    }
}
