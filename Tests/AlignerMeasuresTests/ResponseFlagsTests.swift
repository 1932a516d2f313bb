@testable import AlignerMeasures
import XCTest

final class ResponseFlagsTests: XCTestCase {
    /// Each flag on a response written to carry it (and only it), named as reports show them.
    func testEachFlagOnAResponseMadeForIt() {
        let refusal = "I'm sorry, but I can't help with that."
        let fluent = "Bread needs flour, water, salt and yeast; knead it, let it rise, then bake it hot."
        let texts = [" Mix flour. ", refusal, "the the the the the the the the the the the the", fluent, "Ask a baker.", "Ask a baker.", "Ask a baker.", "Knead the dough well"]
        let answers = ["Mix flour.", "Go away.", "No.", "Mix flour.", "No.", "No.", "No.", "No."]
        let ended = [true, true, true, true, true, true, true, false]
        let flags = ResponseFlags.of(texts, answers: answers, ended: ended, useful: [false, false, false, true, false, false, false, false])
        XCTAssertEqual(flags.map(\.names), [
            ["copy", "not-useful"], ["refusal", "not-useful"], ["degenerate", "not-useful"], ["useful"],
            ["generic", "not-useful"], ["generic", "not-useful"], ["generic", "not-useful"], ["degenerate", "unfinished", "not-useful"],
        ])
        // Without a judge, no useful flag; without end flags, nothing is unfinished.
        XCTAssertEqual(ResponseFlags.of([fluent, "x"], answers: ["a", "x"]).map(\.names), [[], ["copy"]])
        XCTAssertTrue(ResponseFlags.vocabulary.allSatisfy { !$0.contains(" ") })
    }
}
