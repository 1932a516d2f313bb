import AlignerOptim
import AlignerSafetensors
import AlignerTensor
import Foundation
import XCTest

@testable import AlignerModel

/// Compares the Swift Llama against Hugging Face transformers on the fixture that
/// `scripts/fixtures/make_llama_fixture.py` writes: logits, loss, every gradient, and 10 AdamW steps.
final class PyTorchFixtureTests: XCTestCase {
    static let fixtureURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tiny_llama.safetensors")

    static let config = LlamaConfig(
        vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2, numAttentionHeads: 4,
        numKeyValueHeads: 2, rmsNormEps: 1e-5, ropeTheta: 10_000, maxPositionEmbeddings: 64, tieWordEmbeddings: false,
        bosTokenId: 1, eosTokenIds: [2], padTokenId: 0, initializerRange: 0.02)

    struct Fixture {
        let file: SafetensorsFile
        let model: LlamaModel
        let ids: [Int]
        let labels: [Int]
        let batch = 2, time = 8

        init() throws {
            file = try SafetensorsFile(contentsOf: PyTorchFixtureTests.fixtureURL)
            var weights: [String: Tensor] = [:]
            for name in file.names where name.hasPrefix("weights.") {
                weights[String(name.dropFirst("weights.".count))] = try file.tensor(name)
            }
            model = try LlamaModel(config: PyTorchFixtureTests.config, weights: weights)
            ids = try file.tensor("input_ids").scalars.map { Int($0) }
            labels = try file.tensor("labels").scalars.map { Int($0) }
        }
    }

    func testLogitsLossAndEveryGradientMatchPyTorch() throws {
        let f = try Fixture()
        XCTAssertEqual(f.file.metadata["num_key_value_heads"], "2")
        let loss = try f.model.loss(ids: f.ids, labels: f.labels, batch: f.batch, time: f.time)
        let logits = try f.model.forward(ids: f.ids, batch: f.batch, time: f.time)
        let (dl, sl) = difference(logits, try f.file.tensor("logits"))
        print(String(format: "logits: max |diff| %.3e (max |logit| %.3f)", dl, sl))
        XCTAssertLessThanOrEqual(dl, 1e-4 * max(1, sl))
        let refLoss = try f.file.tensor("loss").item
        print(String(format: "loss: swift %.7f torch %.7f rel %.2e", loss.item, refLoss, abs(loss.item - refLoss) / refLoss))
        XCTAssertEqual(loss.item, refLoss, accuracy: 1e-5 * refLoss)

        loss.backward()
        for name in f.model.parameterNames {
            let g = try XCTUnwrap(f.model.parameters[name]!.grad, "no gradient for \(name)")
            let (d, s) = difference(g, try f.file.tensor("grad." + name))
            print(String(format: "grad %-45@ max |diff| %.3e  max |grad| %.3e", name as NSString, d, s))
            XCTAssertLessThanOrEqual(d, 1e-4 * s + 1e-7, name)
        }
    }

    func testTenAdamWStepsFollowPyTorch() throws {
        let f = try Fixture()
        let params = f.model.parameters
        let optimizer = AdamW(
            groups: ParameterGroup.standard(params, order: f.model.parameterNames, weightDecay: 0.1),
            beta1: 0.9, beta2: 0.95, eps: 1e-8)
        let schedule = LearningRateSchedule.cosine(warmupSteps: 2, totalSteps: 10)
        let refLosses = try f.file.tensor("trajectory.losses").scalars
        let refNorms = try f.file.tensor("trajectory.grad_norms").scalars
        let refLrs = try f.file.tensor("trajectory.lrs").scalars
        for step in 0..<10 {
            f.model.releaseGradients()
            let loss = try f.model.loss(ids: f.ids, labels: f.labels, batch: f.batch, time: f.time)
            loss.backward()
            let norm = clipGradientNorm(f.model.orderedParameters, maxNorm: 1.0)
            let lr = schedule.rate(at: step, base: 1e-2)
            optimizer.update(params, lr: lr)
            print(String(format: "step %d: loss %.6f (torch %.6f)  norm %.5f (torch %.5f)  lr %.5f (torch %.5f)",
                         step, loss.item, refLosses[step], norm, refNorms[step], lr, refLrs[step]))
            XCTAssertEqual(lr, refLrs[step], accuracy: 1e-7)
            XCTAssertEqual(loss.item, refLosses[step], accuracy: 1e-5 * refLosses[step], "loss at step \(step)")
            XCTAssertEqual(norm, refNorms[step], accuracy: 1e-5 * refNorms[step], "grad norm at step \(step)")
        }
        for name in f.model.parameterNames {
            let (d, s) = difference(params[name]!, try f.file.tensor("final." + name))
            XCTAssertLessThanOrEqual(d, 1e-4 * s, "final \(name)")
        }
    }

    /// `head_dim` 16 where hidden_size / num_attention_heads is 8 (tied embeddings), from
    /// `scripts/fixtures/make_llama_head_dim_fixture.py`: logits, loss and every gradient.
    func testHeadDimOtherThanHiddenOverHeadsMatchesPyTorch() throws {
        let url = Self.fixtureURL.deletingLastPathComponent().appendingPathComponent("tiny_llama_head_dim.safetensors")
        let file = try SafetensorsFile(contentsOf: url)
        XCTAssertEqual(file.metadata["head_dim"], "16")
        let config = LlamaConfig(
            vocabSize: 64, hiddenSize: 32, intermediateSize: 48, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2,
            rmsNormEps: 1e-6, ropeTheta: 10_000, maxPositionEmbeddings: 64, tieWordEmbeddings: true, bosTokenId: 1,
            eosTokenIds: [2], padTokenId: 0, initializerRange: 0.02, headDim: 16)
        var weights: [String: Tensor] = [:]
        for name in file.names where name.hasPrefix("weights.") { weights[String(name.dropFirst("weights.".count))] = try file.tensor(name) }
        let model = try LlamaModel(config: config, weights: weights)
        XCTAssertEqual(model.parameters["model.layers.0.self_attn.q_proj.weight"]!.shape, [64, 32])
        XCTAssertEqual(model.parameters["model.layers.0.self_attn.o_proj.weight"]!.shape, [32, 64])
        XCTAssertEqual(config.parameterCount, model.parameters.values.reduce(0) { $0 + $1.count })
        let ids = try file.tensor("input_ids").scalars.map { Int($0) }, labels = try file.tensor("labels").scalars.map { Int($0) }
        let loss = try model.loss(ids: ids, labels: labels, batch: 2, time: 8)
        let logits = try model.forward(ids: ids, batch: 2, time: 8)
        let (dl, sl) = difference(logits, try file.tensor("logits"))
        XCTAssertLessThanOrEqual(dl, 1e-4 * max(1, sl))
        let refLoss = try file.tensor("loss").item
        XCTAssertEqual(loss.item, refLoss, accuracy: 1e-5 * refLoss)
        loss.backward()
        for name in model.parameterNames {
            let g = try XCTUnwrap(model.parameters[name]!.grad, name)
            let (d, s) = difference(g, try file.tensor("grad." + name))
            XCTAssertLessThanOrEqual(d, 1e-4 * max(1, s), "gradient of \(name): max |diff| \(d), max |grad| \(s)")
        }
        // config.json round trip keeps head_dim.
        let back = try JSONDecoder().decode(LlamaConfig.self, from: config.jsonData())
        XCTAssertEqual(back.headDim, 16)
        XCTAssertEqual(back, config)
    }
}

/// Largest |a − b| and the largest |b|, for comparisons with a reference (the shapes must agree).
func difference(_ a: Tensor, _ b: Tensor, file: StaticString = #filePath, line: UInt = #line) -> (diff: Float, scale: Float) {
    XCTAssertEqual(a.shape, b.shape, file: file, line: line)
    var d: Float = 0, s: Float = 0
    for (x, y) in zip(a.scalars, b.scalars) { d = max(d, abs(x - y)); s = max(s, abs(y)) }
    return (d, s)
}

/// The model's loss on a fixture's batch (2 × 8), after checking its logits (1e-4 of max |logit|) and loss (1e-5
/// relative) against the fixture's `logits` and `loss`.
func lossMatchingFixture(_ model: LlamaModel, _ fixture: SafetensorsFile, ids: [Int], labels: [Int], name: String,
                         file: StaticString = #filePath, line: UInt = #line) throws -> Tensor {
    let loss = try model.loss(ids: ids, labels: labels, batch: 2, time: 8)
    let logits = try model.forward(ids: ids, batch: 2, time: 8)
    let (dl, sl) = difference(logits, try fixture.tensor("logits"))
    let refLoss = try fixture.tensor("loss").item
    print(String(format: "%@: logits max |diff| %.2e (max |logit| %.2f), loss %.7f vs %.7f", name, dl, sl, loss.item, refLoss))
    XCTAssertLessThanOrEqual(dl, 1e-4 * max(1, sl), "\(name): logits", file: file, line: line)
    XCTAssertEqual(loss.item, refLoss, accuracy: 1e-5 * refLoss, "\(name): loss", file: file, line: line)
    return loss
}
