import AlignerOptim
import AlignerSafetensors
import AlignerTensor
import Foundation
import XCTest

@testable import AlignerModel

/// Low-rank adapters against Hugging Face PEFT, on the fixtures `scripts/fixtures/make_lora_fixtures.py` writes
/// (Llama with every projection, Qwen2 with q and v only, Phi-3's fused layers with rsLoRA): logits, loss, the
/// gradient of every A and B (and none for the frozen base), five AdamW steps, and the merged weights.
final class LoRATests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/lora")
    static let prefix = "base_model.model."

    struct Case {
        let file: SafetensorsFile
        let model: LlamaModel
        let lora: LoRAConfig
        let ids: [Int]
        let labels: [Int]

        init(_ name: String) throws {
            let config = try LlamaConfig.load(from: folder.appendingPathComponent(name).appendingPathComponent("config.json"))
            file = try SafetensorsFile(contentsOf: folder.appendingPathComponent(name + ".safetensors"))
            var weights: [String: Tensor] = [:], adapters: [String: Tensor] = [:]
            for n in file.names where n.hasPrefix("weights.") { weights[String(n.dropFirst("weights.".count))] = try file.tensor(n) }
            for n in file.names where n.hasPrefix("adapter.") {
                adapters[String(n.dropFirst("adapter.".count + LoRATests.prefix.count))] = try file.tensor(n)
            }
            let meta = try JSONSerialization.jsonObject(with: Data(file.metadata["lora"]!.utf8)) as! [String: Any]
            lora = LoRAConfig(rank: meta["r"] as! Int, alpha: (meta["lora_alpha"] as! NSNumber).doubleValue, dropout: 0,
                              targets: meta["target_modules"] as! [String], rsLoRA: meta["use_rslora"] as! Bool)
            model = try LlamaModel(config: config, weights: weights)
            try model.attachAdapters(lora, weights: adapters)
            ids = try file.tensor("input_ids").scalars.map { Int($0) }
            labels = try file.tensor("labels").scalars.map { Int($0) }
        }
    }

    func check(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let c = try Case(name)
        let refAdapters = c.file.names.filter { $0.hasPrefix("adapter.") }.map { String($0.dropFirst("adapter.".count + Self.prefix.count)) }
        XCTAssertEqual(Set(c.model.adapterNames), Set(refAdapters), "\(name): adapter names", file: file, line: line)
        XCTAssertEqual(c.model.trainableNames, c.model.adapterNames)

        let loss = try lossMatchingFixture(c.model, c.file, ids: c.ids, labels: c.labels, name: name, file: file, line: line)
        loss.backward()
        for p in c.model.adapterNames {
            let g = try XCTUnwrap(c.model.adapters[p]!.grad, "\(name): no gradient for \(p)")
            let (d, s) = difference(g, try c.file.tensor("grad." + Self.prefix + p))
            XCTAssertLessThanOrEqual(d, 1e-4 * s + 1e-6, "\(name): gradient of \(p) (max |diff| \(d), max |grad| \(s))", file: file, line: line)
        }
        for p in c.model.parameterNames { XCTAssertNil(c.model.parameters[p]!.grad, "\(name): the frozen \(p) got a gradient") }

        // Five AdamW steps on the adapters alone (no decay, clipping at 1, lr 1e-2).
        let fresh = try Case(name)
        let optimizer = AdamW(groups: [ParameterGroup(names: fresh.model.trainableNames, weightDecay: 0)], beta1: 0.9, beta2: 0.95, eps: 1e-8)
        let refLosses = try fresh.file.tensor("trajectory.losses").scalars
        let refNorms = try fresh.file.tensor("trajectory.grad_norms").scalars
        for step in 0..<refLosses.count {
            fresh.model.releaseGradients()
            let l = try fresh.model.loss(ids: fresh.ids, labels: fresh.labels, batch: 2, time: 8)
            l.backward()
            let norm = clipGradientNorm(fresh.model.orderedTrainable, maxNorm: 1)
            optimizer.update(fresh.model.trainableParameters, lr: 1e-2)
            XCTAssertEqual(l.item, refLosses[step], accuracy: 1e-5 * refLosses[step], "\(name): loss at step \(step)", file: file, line: line)
            XCTAssertEqual(norm, refNorms[step], accuracy: 1e-4 * refNorms[step], "\(name): norm at step \(step)", file: file, line: line)
        }
        for p in fresh.model.adapterNames {
            let (d, s) = difference(fresh.model.adapters[p]!, try fresh.file.tensor("final." + Self.prefix + p))
            XCTAssertLessThanOrEqual(d, 1e-4 * s, "\(name): final \(p)", file: file, line: line)
        }

        // Merging PEFT's trained adapters: the merged weights are PEFT's merge_and_unload, and give the adapters' logits.
        let merging = try Case(name)
        var trained: [String: Tensor] = [:]
        for p in merging.model.adapterNames { trained[p] = try merging.file.tensor("final." + Self.prefix + p) }
        merging.model.detachAdapters()
        try merging.model.attachAdapters(merging.lora, weights: trained)
        let unmerged = try merging.model.forward(ids: merging.ids, batch: 2, time: 8)
        let merged = merging.model.mergedWeights()
        for p in merging.model.parameterNames {
            let (d, s) = difference(merged[p]!, try merging.file.tensor("merged." + p))
            XCTAssertLessThanOrEqual(d, 1e-4 * max(1, s), "\(name): merged \(p)", file: file, line: line)
        }
        merging.model.mergeAdapters()
        let (du, su) = difference(try merging.model.forward(ids: merging.ids, batch: 2, time: 8), unmerged)
        XCTAssertLessThanOrEqual(du, 1e-5 * max(1, su), "\(name): merging changed the logits", file: file, line: line)
        XCTAssertNil(merging.model.lora)
        XCTAssertEqual(merging.model.trainableNames, merging.model.parameterNames)
        XCTAssertTrue(merging.model.parameters.values.allSatisfy(\.requiresGrad))
        let after = try merging.model.forward(ids: merging.ids, batch: 2, time: 8)
        let (dm, sm) = difference(after, try merging.file.tensor("merged.logits"))
        XCTAssertLessThanOrEqual(dm, 1e-4 * max(1, sm), "\(name): merged logits", file: file, line: line)
    }

    func testLlamaEveryProjectionMatchesPEFT() throws { try check("llama") }
    func testQwen2QueryValueSubsetMatchesPEFT() throws { try check("qwen2-qv") }
    func testPhi3FusedLayersWithRsLoRAMatchPEFT() throws { try check("phi3-rslora") }

    func testFreshAdaptersLeaveTheModelUnchangedAndFreezeTheBase() throws {
        let config = LlamaConfig(vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 2, numAttentionHeads: 2,
                                 numKeyValueHeads: 1, maxPositionEmbeddings: 32)
        let model = try LlamaModel(config: config, seed: 3)
        let ids = Array(0..<12).map { ($0 * 7) % 40 }
        let before = try model.forward(ids: ids, batch: 2, time: 6).scalars
        try model.attachAdapters(LoRAConfig(rank: 4, alpha: 8, dropout: 0.1, targets: ["q", "v", "down"]), seed: 9)
        XCTAssertEqual(model.adapterNames.count, 2 * 3 * 2)
        XCTAssertEqual(model.adapters["model.layers.1.mlp.down_proj.lora_A.weight"]!.shape, [4, 24])
        XCTAssertEqual(model.adapters["model.layers.1.mlp.down_proj.lora_B.weight"]!.shape, [16, 4])
        let a = model.adapters["model.layers.0.self_attn.q_proj.lora_A.weight"]!.scalars
        XCTAssertTrue(a.allSatisfy { abs($0) <= 1 / Float(16).squareRoot() } && Set(a).count == a.count, "Kaiming-uniform A")
        XCTAssertEqual(try model.forward(ids: ids, batch: 2, time: 6).scalars, before, "B = 0: the model is unchanged")
        XCTAssertTrue(model.parameters.values.allSatisfy { !$0.requiresGrad })
        // Dropout: on only with a key, the same key gives the same masks.
        for p in model.adapterNames where p.contains("lora_B") { model.adapters[p]!.assign(from: Tensor.full(model.adapters[p]!.shape, 0.5)) }
        let plain = try model.forward(ids: ids, batch: 2, time: 6).scalars
        model.adapterDropoutSeed = 77
        let d1 = try model.forward(ids: ids, batch: 2, time: 6).scalars, d2 = try model.forward(ids: ids, batch: 2, time: 6).scalars
        model.adapterDropoutSeed = 78
        let d3 = try model.forward(ids: ids, batch: 2, time: 6).scalars
        model.adapterDropoutSeed = nil
        XCTAssertEqual(d1, d2)
        XCTAssertNotEqual(d1, plain)
        XCTAssertNotEqual(d1, d3)
        XCTAssertEqual(try model.forward(ids: ids, batch: 2, time: 6).scalars, plain)
    }

    func testBadConfigurationsAreRefusedByName() throws {
        let config = LlamaConfig(vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 1, numAttentionHeads: 2,
                                 numKeyValueHeads: 1, maxPositionEmbeddings: 32, family: .phi3)
        let model = try LlamaModel(config: config, seed: 3)
        func message(_ lora: LoRAConfig) -> String {
            do { try model.attachAdapters(lora, seed: 1); return "attached" } catch { return "\(error)" }
        }
        XCTAssertTrue(message(LoRAConfig(rank: 0)).contains("lora.rank"))
        XCTAssertTrue(message(LoRAConfig(alpha: .nan)).contains("lora.alpha"))
        XCTAssertTrue(message(LoRAConfig(dropout: 1)).contains("lora.dropout"))
        XCTAssertTrue(message(LoRAConfig(targets: [])).contains("lora.targets"))
        XCTAssertTrue(message(LoRAConfig(targets: ["lm_head"])).contains("'lm_head' is not a linear layer"))
        XCTAssertTrue(message(LoRAConfig(targets: ["q_proj"])).contains("target qkv_proj"), message(LoRAConfig(targets: ["q_proj"])))
        XCTAssertNil(model.lora)
        XCTAssertEqual(message(LoRAConfig(targets: ["all-linear"])), "attached")
        XCTAssertEqual(model.adapterNames.count, 4 * 2)
        XCTAssertTrue(message(LoRAConfig()).contains("already has adapters"))
        // Weights that do not fit: missing, misshapen, extra.
        let fresh = try LlamaModel(config: config, seed: 3)
        var weights = model.adapters
        weights.removeValue(forKey: "model.layers.0.mlp.down_proj.lora_B.weight")
        XCTAssertThrowsError(try fresh.attachAdapters(LoRAConfig(targets: ["all-linear"]), weights: weights)) { XCTAssertTrue("\($0)".contains("down_proj.lora_B.weight': missing")) }
        weights = model.adapters
        weights["model.layers.0.mlp.down_proj.lora_B.weight"] = Tensor.zeros([3, 3])
        XCTAssertThrowsError(try fresh.attachAdapters(LoRAConfig(targets: ["all-linear"]), weights: weights)) { XCTAssertTrue("\($0)".contains("shape [3, 3]")) }
        weights = model.adapters
        XCTAssertThrowsError(try fresh.attachAdapters(LoRAConfig(targets: ["o_proj"]), weights: weights)) { XCTAssertTrue("\($0)".contains("unexpected")) }
        XCTAssertNil(fresh.lora)
        XCTAssertTrue(fresh.parameters.values.allSatisfy(\.requiresGrad))
    }
}

/// Activation checkpointing per block gives the same loss and the same gradients as keeping every activation, for a
/// full model and for adapters with dropout.
final class ActivationCheckpointingTests: XCTestCase {
    func testSameLossAndGradientsWithAndWithoutCheckpointing() throws {
        let config = LlamaConfig(vocabSize: 50, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 3, numAttentionHeads: 4,
                                 numKeyValueHeads: 2, maxPositionEmbeddings: 32, padTokenId: 0)
        let ids = (0..<20).map { ($0 * 13 + 5) % 50 }, labels = ids.enumerated().map { $0.offset < 4 ? -100 : $0.element }
        let mask = (0..<20).map { $0 != 19 }
        for lora in [false, true] {
            var results: [(loss: Float, grads: [String: [Float]])] = []
            for checkpointing in [false, true] {
                let model = try LlamaModel(config: config, seed: 5)
                if lora {
                    try model.attachAdapters(LoRAConfig(rank: 2, alpha: 4, dropout: 0.25, targets: ["all-linear"]), seed: 6)
                    for p in model.adapterNames where p.contains("lora_B") { model.adapters[p]!.assign(from: Tensor.full(model.adapters[p]!.shape, 0.1)) }
                    model.adapterDropoutSeed = 99
                }
                model.activationCheckpointing = checkpointing
                let loss = try model.loss(ids: ids, labels: labels, batch: 2, time: 10, attentionMask: mask)
                loss.backward()
                var grads: [String: [Float]] = [:]
                for (name, t) in model.trainableParameters { grads[name] = try XCTUnwrap(t.grad, name).scalars }
                results.append((loss.item, grads))
            }
            XCTAssertEqual(results[0].loss, results[1].loss, "lora \(lora)")
            XCTAssertEqual(results[0].grads.keys.sorted(), results[1].grads.keys.sorted())
            for (name, g) in results[0].grads { XCTAssertEqual(g, results[1].grads[name]!, "lora \(lora): \(name)") }
        }
    }
}
