@testable import AlignerFormats
import AlignerModel
import AlignerTensor
import Foundation
import XCTest

/// The weight sources every loader reads through, on transformers' own folders (the hf-tiny fixtures).
final class WeightSourceTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    func testFoldersPickTheirBackendAndNamesMatchTheTensors() throws {
        let single = Self.fixtures.appendingPathComponent("hf-tiny"), sharded = Self.fixtures.appendingPathComponent("hf-tiny-sharded")
        let config = try LlamaConfig.load(from: single.appendingPathComponent("config.json"))
        let a = try ModelFolderWeights.source(in: single, config: config)
        let b = try ModelFolderWeights.source(in: sharded, config: config)
        XCTAssertTrue(a is SafetensorsWeights, "\(type(of: a))")
        XCTAssertTrue(b is ShardedSafetensorsWeights, "\(type(of: b))")
        let (wa, wb) = (try a.weights(), try b.weights())
        XCTAssertEqual(try a.names().sorted(), wa.keys.sorted())
        XCTAssertEqual(try b.names().sorted(), wb.keys.sorted())
        // The same model saved twice by transformers (float32, and bfloat16 in shards): the same names and shapes,
        // values within bf16's rounding.
        XCTAssertEqual(wa.keys.sorted(), wb.keys.sorted())
        for (name, t) in wa {
            XCTAssertEqual(t.shape, wb[name]!.shape, name)
            for (x, y) in zip(t.scalars, wb[name]!.scalars) { XCTAssertEqual(x, y, accuracy: 0.01 * max(1, abs(x)), name) }
        }
        // A model built from the source has its tensors; a wrong shape or a missing tensor is refused by name.
        let model = try LlamaModel(config: config, weights: wa)
        try a.assign(model.parameterNames, to: model.parameters)
        XCTAssertThrowsError(try a.assign(["model.norm.weight", "no.such.weight"], to: model.parameters)) {
            XCTAssertEqual(($0 as? WeightError)?.name, "no.such.weight", "\($0)")
        }
        let narrow = try LlamaModel(config: { var c = config; c.intermediateSize += 1; return c }(), seed: 1)
        XCTAssertThrowsError(try a.assign(narrow.parameterNames, to: narrow.parameters)) {
            XCTAssertTrue(($0 as? WeightError)?.name.contains("mlp") == true, "\($0)")
        }
        // A folder without weights names itself.
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("weights-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: empty) }
        XCTAssertThrowsError(try ModelFolderWeights.source(in: empty, config: config)) { XCTAssertTrue("\($0)".contains("neither model.safetensors"), "\($0)") }
    }
}
