import Foundation
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
            (#"{"hidden_act": "gelu"}"#, "hidden_act"),
            (#"{"attention_bias": true}"#, "attention_bias"),
            (#"{"rope_scaling": {"type": "linear", "factor": 2.0}}"#, "rope_scaling"),
            (#"{"vocab_size": 10, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "head_dim": "x"}"#, "head_dim"),
        ] {
            XCTAssertThrowsError(try decode(json), json) { e in XCTAssertEqual((e as? ConfigError)?.field, field, "\(e)") }
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
}
