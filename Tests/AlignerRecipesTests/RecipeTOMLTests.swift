@testable import AlignerRecipes
import XCTest


/// The recipe TOML reader against the TOML forms recipes use, and its errors.
final class RecipeTOMLTests: XCTestCase {
    func testRecipeFormsParse() throws {
        let t = try RecipeTOML.parse("""
        # comment
        name = "a \\"b\\" \\u00fc" # trailing
        seed = 1_234
        hex = 0xff
        [data]
        train = ["x.jsonl",
          'y.jsonl', # second
        ]
        custom_template = \"\"\"
        Q: {question}\\
           A: {answer}\"\"\"
        lit = '''a\\b'''
        warmup_percent = 2.5e1
        [model]
        tie_word_embeddings = true
        sub.key = -3
        inline = { a = 1, b = [1, 2] }
        """)
        XCTAssertEqual(t["name"] as? String, "a \"b\" ü")
        XCTAssertEqual(t["seed"] as? Int, 1234)
        XCTAssertEqual(t["hex"] as? Int, 255)
        let data = try XCTUnwrap(t["data"] as? [String: Any])
        XCTAssertEqual(data["train"] as? [String], ["x.jsonl", "y.jsonl"])
        XCTAssertEqual(data["custom_template"] as? String, "Q: {question}A: {answer}")
        XCTAssertEqual(data["lit"] as? String, "a\\b")
        XCTAssertEqual(data["warmup_percent"] as? Double, 25)
        let model = try XCTUnwrap(t["model"] as? [String: Any])
        XCTAssertEqual(model["tie_word_embeddings"] as? Bool, true)
        XCTAssertEqual((model["sub"] as? [String: Any])?["key"] as? Int, -3)
        XCTAssertEqual(((model["inline"] as? [String: Any])?["b"] as? [Int]), [1, 2])
        XCTAssertTrue((try RecipeTOML.parse("x = nan")["x"] as? Double)?.isNaN == true)
    }

    func testErrorsNameLineAndColumn() {
        for (text, line, fragment) in [("[, \"</s>\"]", 1, "expected a key"), ("a = 1\na = 2", 2, "defined twice"), ("a = \"x", 1, "unterminated"),
                                       ("a = 1 2", 1, "end of the line"), ("a = 1979-05-27", 1, "dates"), ("[a]\n[a]", 2, "defined twice"),
                                       ("a = [1, 2", 1, "expected ',' or ']'"), ("a = 012", 1, "leading zeros"), ("a = 1__2", 1, "not a value"),
                                       ("[[t]]", 1, "arrays of tables"), ("a = \"\\q\"", 1, "invalid escape"), ("a = 99999999999999999999", 1, "out of range")] {
            XCTAssertThrowsError(try RecipeTOML.parse(text), text) { error in
                guard let e = error as? RecipeTOML.ParseError else { return XCTFail("\(error)") }
                XCTAssertEqual(e.line, line, text)
                XCTAssertTrue(e.message.contains(fragment), "\(text): \(e.message)")
            }
        }
    }
}
