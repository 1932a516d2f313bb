import Foundation
import TestSupport
import XCTest

@testable import AlignerModel

final class LlamaConfigTests: XCTestCase {
    /// As transformers 5.24 writes it (`LlamaConfig(...).to_json_string()`).
    let transformers5 = #"""
    {"attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2, "head_dim": 8,
     "hidden_act": "silu", "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 64,
     "max_position_embeddings": 64, "mlp_bias": false, "model_type": "llama", "num_attention_heads": 4,
     "num_hidden_layers": 2, "num_key_value_heads": 2, "pad_token_id": 0, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
     "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}, "tie_word_embeddings": false,
     "transformers_version": "5.24.0", "use_cache": true, "vocab_size": 64}
    """#

    func decode(_ json: String) throws -> LlamaConfig { try JSONDecoder().decode(LlamaConfig.self, from: Data(json.utf8)) }

    func testReadsHuggingFaceConfig() throws {
        let c = try decode(transformers5)
        XCTAssertEqual(c.vocabSize, 64)
        XCTAssertEqual(c.numKeyValueHeads, 2)
        XCTAssertEqual(c.ropeTheta, 500_000)
        XCTAssertEqual(c.eosTokenIds, [2])
        XCTAssertEqual(c.padTokenId, 0)
        XCTAssertEqual(c.headDim, 8)
        XCTAssertNoThrow(try c.validate())
        // transformers 4.x: rope_theta at the top level, eos as a list, no kv heads (defaults to heads).
        let old = try decode(#"{"vocab_size": 10, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "rope_theta": 1234.0, "eos_token_id": [2, 3], "rope_scaling": null}"#)
        XCTAssertEqual(old.ropeTheta, 1234)
        XCTAssertEqual(old.eosTokenIds, [2, 3])
        XCTAssertEqual(old.numKeyValueHeads, 2)
    }

    func testRoundTripThroughConfigJSON() throws {
        let c = LlamaConfig(vocabSize: 100, hiddenSize: 16, intermediateSize: 40, numHiddenLayers: 3, numAttentionHeads: 4,
                            numKeyValueHeads: 1, ropeTheta: 5e5, tieWordEmbeddings: true, padTokenId: 3)
        let data = try c.jsonData()
        let text = String(decoding: data, as: UTF8.self)
        XCTAssertTrue(text.contains("\"LlamaForCausalLM\""))
        XCTAssertTrue(text.contains("\"model_type\" : \"llama\""))
        XCTAssertEqual(try JSONDecoder().decode(LlamaConfig.self, from: data), c)
    }

    func testInvalidConfigurationsNameTheField() throws {
        func expect(_ field: String, _ change: (inout LlamaConfig) -> Void, line: UInt = #line) {
            var c = LlamaConfig(vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2, numAttentionHeads: 4,
                                numKeyValueHeads: 2)
            change(&c)
            XCTAssertThrowsError(try c.validate(), line: line) { e in
                XCTAssertEqual((e as? ConfigError)?.field, field, "\(e)", line: line)
            }
        }
        expect("num_attention_heads") { $0.numAttentionHeads = 5 }
        expect("num_key_value_heads") { $0.numKeyValueHeads = 3 }
        expect("num_attention_heads") { $0.numAttentionHeads = 32 }  // head size 1 is odd
        expect("vocab_size") { $0.vocabSize = 0 }
        expect("hidden_size") { $0.hiddenSize = -4 }
        expect("rms_norm_eps") { $0.rmsNormEps = 0 }
        expect("eos_token_id") { $0.eosTokenIds = [64] }
        expect("pad_token_id") { $0.padTokenId = -1 }
        expect("num_hidden_layers") { $0.numHiddenLayers = 0 }
        expect("head_dim") { $0.explicitHeadDim = 3 }
        expect("head_dim") { $0.explicitHeadDim = -8 }
        for (json, field) in [
            (#"{"hidden_size": 8}"#, "vocab_size"),
            (#"{"vocab_size": "x"}"#, "vocab_size"),
            (#"{"model_type": "gpt2", "vocab_size": 1}"#, "model_type"),
            (#"{"model_type": "gemma2", "vocab_size": 1}"#, "model_type"),
            (#"{"architectures": ["FalconForCausalLM"]}"#, "architectures"),
            (#"{"hidden_act": "relu"}"#, "hidden_act"),
            (#"{"model_type": "mistral", "attention_bias": true}"#, "attention_bias"),
            (#"{"model_type": "qwen2", "mlp_bias": true}"#, "mlp_bias"),
            (#"{"attention_dropout": 0.1}"#, "attention_dropout"),
            (#"{"model_type": "phi3", "resid_pdrop": 0.1}"#, "resid_pdrop"),
            (#"{"model_type": "gemma", "use_bidirectional_attention": true}"#, "use_bidirectional_attention"),
            (#"{"vocab_size": 10, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "rope_scaling": {"type": "longrope", "factor": 2.0}}"#, "rope_scaling"),
            (#"{"vocab_size": 10, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "rope_scaling": {"type": "linear"}}"#, "rope_scaling"),
            (#"{"vocab_size": 10, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "model_type": "phi3", "rope_parameters": {"rope_type": "longrope", "short_factor": [1.0]}}"#, "rope_parameters"),
            (#"{"vocab_size": 10, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "head_dim": "x"}"#, "head_dim"),
        ] {
            XCTAssertThrowsError(try decode(json), json) { e in XCTAssertEqual((e as? ConfigError)?.field, field, "\(e)") }
        }
    }

    /// transformers 4.x files: `rope_scaling` with `type` (or `rope_type`) and `rope_theta` at the top level; it takes
    /// precedence over `rope_parameters`, as transformers 5 reads it. Family defaults fill absent fields.
    func testRopeScalingInTheFormerLayoutAndFamilyDefaults() throws {
        let base = #""vocab_size": 10, "hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2"#
        let old = try decode(#"{\#(base), "rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}"#)
        XCTAssertEqual(old.ropeScaling, RopeScaling(kind: .llama3, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192))
        XCTAssertEqual(old.ropeTheta, 500_000)
        XCTAssertEqual(try decode(#"{\#(base), "rope_scaling": {"type": "linear", "factor": 2.0}}"#).ropeScaling?.kind, .linear)
        XCTAssertThrowsError(try decode(#"{\#(base), "rope_scaling": {"rope_type": "llama3", "factor": 8.0}}"#).validate()) { e in
            XCTAssertEqual((e as? ConfigError)?.field, "rope_parameters", "\(e)")
        }
        let gemma = try decode(#"{\#(base), "model_type": "gemma", "hidden_act": "gelu"}"#)
        XCTAssertEqual(gemma.hiddenAct, .geluTanh)  // Gemma's legacy "gelu" is the tanh form
        XCTAssertEqual(gemma.headDim, 256)
        XCTAssertTrue(gemma.tieWordEmbeddings)
        XCTAssertEqual(try decode(#"{\#(base), "model_type": "qwen3"}"#).headDim, 128)
        XCTAssertEqual(try decode(#"{\#(base), "model_type": "phi3"}"#).rmsNormEps, 1e-5)
        let mistral = try decode(#"{\#(base), "model_type": "mistral"}"#)
        XCTAssertEqual(mistral.slidingWindow(layer: 1), 4096)
        XCTAssertNil(try decode(#"{\#(base), "model_type": "mistral", "sliding_window": null}"#).slidingWindow(layer: 1))
        XCTAssertNil(try decode(#"{\#(base), "model_type": "qwen2", "sliding_window": 32}"#).slidingWindow(layer: 1))  // use_sliding_window false
        XCTAssertEqual(try decode(#"{\#(base), "architectures": ["Qwen2ForCausalLM"]}"#).family, .qwen2)
        // Partial rotary only for Phi-3.
        XCTAssertThrowsError(try decode(#"{\#(base), "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5}}"#).validate()) { e in
            XCTAssertEqual((e as? ConfigError)?.field, "partial_rotary_factor", "\(e)")
        }
    }

    func testLoadFromFileReportsThePath() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("config-\(UUID()).json")
        try Data(#"{"vocab_size": 10, "hidden_size": 6, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 4}"#.utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        XCTAssertThrowsError(try LlamaConfig.load(from: url)) { e in
            XCTAssertEqual((e as? ConfigError)?.field, "num_attention_heads")
        }
    }

    /// Random mutations of every family's config.json (as transformers writes them): each decodes and validates or is
    /// refused with `ConfigError` (or a JSON error), never a trap.
    func testMutatedFamilyConfigsDecodeOrAreRefused() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/families")
        var m = Mutator(seed: 21)
        var accepted = 0, refused = 0
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() where !name.hasSuffix(".safetensors") {
            let valid = Array(try Data(contentsOf: folder.appendingPathComponent(name).appendingPathComponent("config.json")))
            for _ in 0..<80 {
                do {
                    let c = try JSONDecoder().decode(LlamaConfig.self, from: Data(m.mutate(valid)))
                    try c.validate()
                    _ = c.ropeTable()
                    accepted += 1
                } catch is ConfigError { refused += 1 } catch is DecodingError { refused += 1 }
            }
        }
        XCTAssertGreaterThan(refused, 50)
        XCTAssertGreaterThan(accepted, 50)
    }

    /// Every family's config.json with extreme integers (negative sizes, 2^31, 2^62, Int.max, Int.min): refused or
    /// accepted, and what is accepted has a parameter count and memory estimate without overflow.
    func testExtremeSizesInConfigsAreRefusedNotTrapped() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/families")
        var m = Mutator(seed: 27)
        var accepted = 0, refused = 0
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() where !name.hasSuffix(".safetensors") {
            let valid = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent(name).appendingPathComponent("config.json")))
            for _ in 0..<80 {
                do {
                    let c = try JSONDecoder().decode(LlamaConfig.self, from: JSONSerialization.data(withJSONObject: m.extremeNumbers(valid)))
                    try c.validate()
                    XCTAssertGreaterThan(c.parameterCount, 0)
                    XCTAssertTrue(c.memoryEstimate(training: true, batch: 4, time: 64).isFinite)
                    accepted += 1
                } catch is ConfigError { refused += 1 } catch is DecodingError { refused += 1 }
            }
        }
        XCTAssertGreaterThan(refused, 100)
        XCTAssertGreaterThan(accepted, 10)
    }
}
