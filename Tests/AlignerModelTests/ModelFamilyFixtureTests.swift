import AlignerOptim
import AlignerSafetensors
import AlignerTensor
import Foundation
import XCTest

@testable import AlignerModel

/// Every model family and configuration variant against transformers, on the fixtures that
/// `scripts/fixtures/make_family_fixtures.py` writes: the family's own config.json read as a user's file is, then
/// logits, loss, every gradient, three AdamW steps, and the config.json round trip.
final class ModelFamilyFixtureTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/families")

    struct Case {
        let config: LlamaConfig
        let file: SafetensorsFile
        let model: LlamaModel
        let ids: [Int]
        let labels: [Int]

        init(_ name: String) throws {
            config = try LlamaConfig.load(from: folder.appendingPathComponent(name).appendingPathComponent("config.json"))
            file = try SafetensorsFile(contentsOf: folder.appendingPathComponent(name + ".safetensors"))
            var weights: [String: Tensor] = [:]
            for n in file.names where n.hasPrefix("weights.") { weights[String(n.dropFirst("weights.".count))] = try file.tensor(n) }
            model = try LlamaModel(config: config, weights: weights)
            ids = try file.tensor("input_ids").scalars.map { Int($0) }
            labels = try file.tensor("labels").scalars.map { Int($0) }
        }
    }

    func check(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let c = try Case(name)
        XCTAssertEqual(c.config.parameterCount, c.model.parameters.values.reduce(0) { $0 + $1.count }, "\(name): parameter count")
        XCTAssertEqual(c.model.parameterNames.filter { c.file.names.contains("weights." + $0) }, c.model.parameterNames, name)
        // Hugging Face's named_parameters() order.
        let refOrder = c.file.names.filter { $0.hasPrefix("weights.") }.map { String($0.dropFirst(8)) }
        XCTAssertEqual(Set(refOrder), Set(c.model.parameterNames), "\(name): parameter names")

        let loss = try lossMatchingFixture(c.model, c.file, ids: c.ids, labels: c.labels, name: name, file: file, line: line)
        loss.backward()
        for p in c.model.parameterNames {
            let g = try XCTUnwrap(c.model.parameters[p]!.grad, "\(name): no gradient for \(p)")
            let (d, s) = difference(g, try c.file.tensor("grad." + p))
            XCTAssertLessThanOrEqual(d, 1e-4 * s + 1e-6, "\(name): gradient of \(p) (max |diff| \(d), max |grad| \(s))", file: file, line: line)
        }

        // Three AdamW steps as in the fixture (decay on matrices other than the embedding, clipping at 1).
        let fresh = try Case(name)
        let optimizer = AdamW(groups: ParameterGroup.standard(fresh.model.parameters, order: fresh.model.parameterNames, weightDecay: 0.1),
                              beta1: 0.9, beta2: 0.95, eps: 1e-8)
        let refLosses = try fresh.file.tensor("trajectory.losses").scalars
        for step in 0..<refLosses.count {
            fresh.model.releaseGradients()
            let l = try fresh.model.loss(ids: fresh.ids, labels: fresh.labels, batch: 2, time: 8)
            l.backward()
            _ = clipGradientNorm(fresh.model.orderedParameters, maxNorm: 1.0)
            optimizer.update(fresh.model.parameters, lr: 1e-3)
            XCTAssertEqual(l.item, refLosses[step], accuracy: 1e-5 * refLosses[step], "\(name): loss at step \(step)", file: file, line: line)
        }
        for p in fresh.model.parameterNames {
            let (d, s) = difference(fresh.model.parameters[p]!, try fresh.file.tensor("final." + p))
            XCTAssertLessThanOrEqual(d, 1e-4 * max(s, 1), "\(name): final \(p)", file: file, line: line)
        }

        // config.json written back with the family's field names reads back the same.
        let back = try JSONDecoder().decode(LlamaConfig.self, from: c.config.jsonData())
        XCTAssertEqual(back, c.config, "\(name): config.json round trip", file: file, line: line)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: c.config.jsonData()) as? [String: Any])
        XCTAssertEqual(json["model_type"] as? String, c.config.family.rawValue)
        XCTAssertEqual(json["architectures"] as? [String], [c.config.family.architecture])
    }

    func testLlama3RopeScaling() throws {
        try check("llama3")
        let c = try LlamaConfig.load(from: Self.folder.appendingPathComponent("llama3/config.json"))
        XCTAssertEqual(c.ropeScaling?.kind, .llama3)
        XCTAssertEqual(c.ropeTheta, 500_000)
    }
    func testLlamaBiasesGeGLUAndLinearRope() throws {
        try check("llama-bias-linear")
        let c = try LlamaConfig.load(from: Self.folder.appendingPathComponent("llama-bias-linear/config.json"))
        XCTAssertTrue(c.attentionBias && c.mlpBias)
        XCTAssertEqual(c.hiddenAct, .geluTanh)
    }
    func testLlamaYarnAndExactGELU() throws { try check("llama-yarn") }
    func testLlamaDynamicRope() throws { try check("llama-dynamic") }
    func testMistralSlidingWindowShorterThanTheSequence() throws {
        try check("mistral")
        let c = try LlamaConfig.load(from: Self.folder.appendingPathComponent("mistral/config.json"))
        XCTAssertEqual(c.slidingWindow(layer: 0), 3)
    }
    func testQwen2BiasesAndUpperLayerSlidingWindow() throws {
        try check("qwen2")
        let c = try LlamaConfig.load(from: Self.folder.appendingPathComponent("qwen2/config.json"))
        XCTAssertEqual([c.slidingWindow(layer: 0), c.slidingWindow(layer: 1)], [nil, 4])
    }
    func testQwen3HeadNorms() throws { try check("qwen3") }
    func testGemma() throws { try check("gemma") }
    func testPhi3FusedProjectionsAndPartialRotary() throws {
        try check("phi3")
        let c = try LlamaConfig.load(from: Self.folder.appendingPathComponent("phi3/config.json"))
        XCTAssertEqual(c.rotaryDim, 4)
    }

    /// Generation with the key/value cache equals recomputing the whole sequence, for every family (sliding windows,
    /// biases, fused projections and Gemma's scaling all take the cached path too).
    func testCachedGenerationMatchesRecomputationForEveryFamily() throws {
        for name in ["llama3", "llama-bias-linear", "mistral", "qwen2", "qwen3", "gemma", "phi3"] {
            let c = try Case(name)
            let prompts = [[5, 9, 11, 3, 7, 20], [8, 4]]
            let options = GenerationOptions(maxNewTokens: 10, eosTokenIds: [])
            var uncached = options
            uncached.useCache = false
            XCTAssertEqual(try c.model.generate(prompts: prompts, options: options),
                           try c.model.generate(prompts: prompts, options: uncached), name)
        }
    }
}
