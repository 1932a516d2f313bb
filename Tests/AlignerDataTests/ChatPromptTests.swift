import XCTest

@testable import AlignerData

/// `ChatPrompt(source:)`: a template that does not parse, or cannot render a user message, is a `SettingError` naming
/// the setting it came from.
final class ChatPromptSourceTests: XCTestCase {
    func testUnusableTemplatesNameTheSetting() {
        XCTAssertThrowsError(try ChatPrompt(source: "{% for m in messages %}", bosToken: nil, eosToken: nil, setting: "--chat-template")) {
            XCTAssertEqual(($0 as? SettingError)?.setting, "--chat-template", "\($0)")
        }
        XCTAssertThrowsError(try ChatPrompt(source: "{{ messages[0]['content'] | frobnicate }}", bosToken: nil, eosToken: nil)) {
            XCTAssertEqual(($0 as? SettingError)?.setting, "data.chat_template", "\($0)")
        }
        XCTAssertThrowsError(try ChatPrompt(source: "no message here", bosToken: nil, eosToken: nil)) { XCTAssertTrue("\($0)".contains("exactly once"), "\($0)") }
        XCTAssertEqual(try ChatPrompt(source: "<{{ messages[0]['content'] }}>", bosToken: nil, eosToken: nil).render("hi"), "<hi>")
    }
}
