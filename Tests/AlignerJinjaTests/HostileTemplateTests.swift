import Foundation
import XCTest

import AlignerJinja
import TestSupport

/// A chat template arrives with a downloaded model: whatever it holds, parsing and rendering end in a value or a
/// `ChatTemplateError`, never a trap, a stack overflow, a hang or an exhausted memory (`ChatTemplateLimits`).
final class HostileTemplateTests: XCTestCase {
    func render(_ source: String) throws -> String {
        try ChatTemplate(source).render(messages: [(role: "user", content: "hi"), (role: "assistant", content: "hello")],
                                        addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>")
    }

    func assertRefused(_ source: String, saying needle: String, file: StaticString = #filePath, line: UInt = #line) {
        let clock = ContinuousClock(), start = clock.now
        XCTAssertThrowsError(try render(source), source, file: file, line: line) { e in
            XCTAssertTrue(e is ChatTemplateError && "\(e)".contains(needle), "\(source): \(e)", file: file, line: line)
        }
        XCTAssertLessThan(clock.now - start, .seconds(10), "\(source) took too long to refuse", file: file, line: line)
    }

    func testValuesThatDoNotFitAreErrors() throws {
        assertRefused("{{ 99999999999999999999 }}", saying: "does not fit in 64 bits")
        assertRefused("{{ 9223372036854775807 + 1 }}", saying: "does not fit in 64 bits")
        assertRefused("{{ -9223372036854775807 - 2 }}", saying: "does not fit in 64 bits")
        assertRefused("{{ 4611686018427387904 * 4 }}", saying: "does not fit in 64 bits")
        assertRefused("{{ -(-9223372036854775807 - 1) }}", saying: "does not fit in 64 bits")
        assertRefused("{{ (-9223372036854775807 - 1) // -1 }}", saying: "does not fit in 64 bits")
        // Python's floor division and modulo, exactly in integers.
        XCTAssertEqual(try render("{{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ (-9223372036854775807 - 1) % -1 }} {{ 9223372036854775807 // 2 }}"),
                       "-4 2 -2 0 4611686018427387903")
        XCTAssertEqual(try render("{{ 2.9 | int }} {{ -2.9 | int }}"), "2 -2")
        assertRefused("{{ (99999999999.0 * 99999999999.0 * 99999999999.0) | int }}", saying: "does not fit in 64 bits")
    }

    func testNestingIsBounded() {
        let deep = ChatTemplateLimits.nesting + 10
        assertRefused("{{ " + String(repeating: "(", count: deep) + "1" + String(repeating: ")", count: deep) + " }}", saying: "nests deeper")
        assertRefused("{{ " + String(repeating: "not ", count: deep) + "x }}", saying: "nests deeper")
        assertRefused("{{ " + String(repeating: "- ", count: 100_000) + "1 }}", saying: "nests deeper")
        assertRefused(String(repeating: "{% if true %}", count: deep) + "x" + String(repeating: "{% endif %}", count: deep), saying: "nest deeper")
        // Values nested by a loop, and a namespace stored in itself (a cycle).
        assertRefused("{% set ns = namespace(x=[]) %}{% for i in range(200) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x | tojson }}",
                      saying: "nests lists and dicts deeper")
        assertRefused("{% set ns = namespace(x=1) %}{% set ns.x = ns %}{{ ns.x }}", saying: "namespace cannot be stored")
        assertRefused("{% set ns = namespace(x=1) %}{% set ns.x = [ns] %}{{ ns.x | tojson }}", saying: "namespace cannot be stored")
        // Doubling a shared value: memory stays small, checking it would not.
        assertRefused("{% set ns = namespace(x=[1]) %}{% for i in range(100) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}{{ ns.x | length }}",
                      saying: "deeper than")
    }

    func testWorkAndSizeAreBounded() throws {
        assertRefused("{% for i in range(999999999999) %}{% endfor %}", saying: "more than")
        assertRefused("{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}", saying: "more than")
        assertRefused("{{ 'a' * 9223372036854775807 }}", saying: "more than")
        assertRefused("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", saying: "more than")
        assertRefused("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
                      saying: "more than")
        assertRefused("{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}", saying: "more than")
        assertRefused("{{ ('a' * 1000000) | replace('a', 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb') }}", saying: "more than")
        assertRefused("{{ messages | tojson(indent=1000000000) }}", saying: "indent")
        // Within the limits, the same constructs work.
        XCTAssertEqual(try render("{{ 'ab' * 3 }}{% for i in range(3) %}{{ i }}{% endfor %}{{ [1, [2, [3]]] | tojson }}"), "ababab012[1, [2, [3]]]")
    }

    /// Mutated real templates and random token soups: every one parses and renders, or is refused with an error.
    func testFuzzedTemplatesEndInAValueOrAnError() throws {
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: ChatTemplateTests.fixture)) as? [String: Any])
        let sources = try XCTUnwrap(root["templates"] as? [String: String]).sorted { $0.key < $1.key }.map(\.value)
        var m = Mutator(seed: 27)
        let clock = ContinuousClock(), start = clock.now
        var rendered = 0, refused = 0
        let pieces = ["{{", "}}", "{%", "%}", "{#", "#}", "-", "+", "*", "//", "%", "(", ")", "[", "]", "{", "}", ",", ":", ".", "|", "~",
                      "if", "elif", "else", "endif", "for", "in", "endfor", "set", "endset", "not", "and", "or", "is", "defined", "loop",
                      "range(", "namespace(", "messages", "message", "ns", "x", "'a'", "\"b\"", "0", "1", "-1", "99999999999999999999",
                      "1.5", "9223372036854775807", "tojson", "length", "join", "replace(", "int", "items", "break", "continue", " ", "\n"]
        func attempt(_ source: String) {
            do { _ = try render(source); rendered += 1 } catch is ChatTemplateError { refused += 1 } catch {
                XCTFail("\(source): not a ChatTemplateError: \(error)")
            }
        }
        for i in 0..<3000 {
            let base = Array(sources[i % sources.count].utf8)
            attempt(String(decoding: m.mutate(base), as: UTF8.self))
        }
        for _ in 0..<3000 {
            attempt((0..<(1 + m.below(40))).map { _ in pieces[m.below(pieces.count)] }.joined())
        }
        print("fuzzed templates: \(rendered) rendered, \(refused) refused in \(clock.now - start)")
        XCTAssertGreaterThan(rendered, 100)
        XCTAssertGreaterThan(refused, 100)
    }
}
