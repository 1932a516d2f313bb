@testable import AlignerRecipes
import Foundation
import TrainingTestSupport
import XCTest

final class RecipeDocumentationTests: XCTestCase {
    /// recipes/README.md documents every key the recipe format reads: as `section.key`, or as `key` in a table row
    /// whose first key is of the same section (rows like "| `train.generate_eval`, `generate_max_new_tokens` |") or in
    /// the paragraph of the section's keys ("Stage keys (`stage1.` and `stage2.`): `epochs` ..."; reward runs take "the
    /// same stage keys").
    func testEveryRecipeKeyIsDocumented() throws {
        let text = try String(contentsOf: repositoryRoot.appendingPathComponent("recipes/README.md"), encoding: .utf8)
        let rows = text.split(separator: "\n").filter { $0.hasPrefix("| `") }.map(String.init)
        let paragraphs = text.components(separatedBy: "\n\n")
        let stageParagraph = try XCTUnwrap(paragraphs.first { $0.hasPrefix("Stage keys (`stage1.` and `stage2.`)") })
        XCTAssertTrue(paragraphs.contains { $0.hasPrefix("Reward keys (`reward.`): the same stage keys") })
        let missing = Recipe.fields.map(\.key).filter { key in
            if text.contains("`\(key)`") { return false }
            let parts = key.split(separator: ".", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { return true }
            let (section, name) = (parts[0], "`\(parts[1])`")
            if rows.contains(where: { $0.hasPrefix("| `\(section).") && $0.contains(name) }) { return false }
            return !(["stage1", "stage2", "reward"].contains(section) && stageParagraph.contains(name))
        }
        XCTAssertEqual(missing, [], "recipe keys recipes/README.md does not document")
    }
}
