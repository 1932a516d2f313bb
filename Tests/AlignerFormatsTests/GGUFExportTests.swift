@testable import AlignerFormats
@testable import AlignerRuns
import AlignerData
import AlignerFiles
import AlignerGGUF
import AlignerModel
import AlignerSafetensors
import AlignerTensor
import AlignerTokenizers
import Foundation
import XCTest


/// `aligner export --format gguf` and reading the file back, for every family llama.cpp names, on the family fixtures
/// that transformers checked (Tests/AlignerModelTests/Fixtures/families): llama.cpp's architecture and tensor names,
/// Q/K permutation, Gemma's 1 + w norms, Phi-3's fused tensors, partial rotary and linear rope scaling; the
/// tokenizer's tokens, types, merges and special ids; the Aligner's prompt template. (transformers' GGUF loader reads
/// these files too: scripts/checks/check_gguf_export.py.)
final class GGUFExportTests: XCTestCase {
    static let families = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("AlignerModelTests/Fixtures/families")

    var directory: URL!
    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gguf-export-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    /// A byte-level BPE over the first 58 byte symbols with a few merges, and <s>, </s>, <pad> as special tokens (61 of
    /// the fixtures' 64 embedding rows; the rest are written as llama.cpp's [PAD] tokens).
    static func tokenizer() throws -> Tokenizer {
        var vocab: [String: Int] = [:]
        let symbols = (0..<256).map { String(ByteLevel.byteToChar[$0]) }.filter { $0.count == 1 }
        let letters = Array("abcdehilnorst ".unicodeScalars.map { String(ByteLevel.byteToChar[Int($0.value)]) })
        for s in letters + symbols where vocab.count < 54 && vocab[s] == nil { vocab[s] = vocab.count }
        let merges = [("t", "h"), ("th", "e"), ("i", "n"), ("o", "n")]
        for (a, b) in merges { vocab[a + b] = vocab.count }
        let model = try BPEModel(vocab: vocab, merges: merges)
        return Tokenizer(model: model, normalizer: nil, preTokenizer: .byteLevel(addPrefixSpace: false, useRegex: true), decoder: .byteLevel,
                         addedTokens: [AddedToken(id: 58, content: "<s>", special: true), AddedToken(id: 59, content: "</s>", special: true),
                                       AddedToken(id: 60, content: "<pad>", special: true)])
    }

    func bundle(_ name: String, edit: (inout LlamaConfig) -> Void = { _ in }) throws -> AlignerBundle {
        var config = try LlamaConfig.load(from: Self.families.appendingPathComponent(name).appendingPathComponent("config.json"))
        edit(&config)
        let file = try SafetensorsFile(contentsOf: Self.families.appendingPathComponent(name + ".safetensors"))
        var weights: [String: Tensor] = [:]
        for n in file.names where n.hasPrefix("weights.") { weights[String(n.dropFirst("weights.".count))] = try file.tensor(n) }
        let model = try LlamaModel(config: config, weights: weights)
        var template = try PromptTemplate(name: "custom", text: "Q: {question} A: {answer} C:")
        template.input = "{question} | {answer}"
        return AlignerBundle(model: model, tokenizer: try Self.tokenizer(), specialTokens: SpecialTokens(bos: "<s>", eos: "</s>", pad: "<pad>"),
                             template: template, source: directory.appendingPathComponent(name), recipe: nil)
    }

    /// The `gguf` package's reading of the exports (scripts/fixtures/make_gguf_export_reading.py).
    nonisolated(unsafe) static let packageReading: [String: Any] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/gguf-export-reading.json")
        let root = (try? JSONSerialization.jsonObject(with: Data(contentsOf: url))) as? [String: Any]
        return root?["files"] as? [String: Any] ?? [:]
    }()

    /// The export at `url` is the file the `gguf` package read when the fixture was written (same size and CRC-32),
    /// and AlignerKit's reader sees what that reader saw: the same tensors (names, types, shapes in ggml's order) and
    /// metadata (keys, types, scalar values); the package's dequantised tensors were `tolerance` or closer to the family
    /// fixture's weights. ALIGNERKIT_GGUF_EXPORT_DIR keeps the exports for the fixture script.
    func checkAgainstTheGGUFPackage(_ url: URL, as name: String, tolerance: Double = 0) throws {
        if let keep = ProcessInfo.processInfo.environment["ALIGNERKIT_GGUF_EXPORT_DIR"] {
            try FileManager.default.createDirectory(atPath: keep, withIntermediateDirectories: true)
            let copy = URL(fileURLWithPath: keep).appendingPathComponent("\(name).gguf")
            try? FileManager.default.removeItem(at: copy)
            try FileManager.default.copyItem(at: url, to: copy)
        }
        let reading = try XCTUnwrap(Self.packageReading[name] as? [String: Any], "\(name): no entry in gguf-export-reading.json")
        let (bytes, crc) = try Checksum.crc32(of: url)
        XCTAssertEqual(bytes, reading["bytes"] as? Int, "\(name): size of the export")
        XCTAssertEqual(Int(crc), reading["crc32"] as? Int, "\(name): CRC-32 of the export (not the bytes the gguf package read)")
        let file = try GGUFFile(contentsOf: url)
        let listed = try XCTUnwrap(reading["tensors"] as? [[String: Any]])
        XCTAssertEqual(file.tensors.map(\.name), listed.map { $0["name"] as? String ?? "" }, name)
        for (t, l) in zip(file.tensors, listed) {
            XCTAssertEqual(t.type.name, l["type"] as? String, "\(name): \(t.name)")
            XCTAssertEqual(Array(t.shape.reversed()), l["shape"] as? [Int], "\(name): \(t.name)")
        }
        let metadata = try XCTUnwrap(reading["metadata"] as? [String: [String: Any]])
        XCTAssertEqual(Set(file.metadata.keys), Set(metadata.keys), name)
        for (key, v) in metadata {
            guard let mine = file.metadata[key] else { continue }
            switch (mine, v["type"] as? String) {
            case (.string(let s), "string"?): XCTAssertEqual(s, v["value"] as? String, "\(name): \(key)")
            case (.bool(let b), "bool"?): XCTAssertEqual(b, v["value"] as? Bool, "\(name): \(key)")
            case (.uint(let u), let type?) where type.hasPrefix("uint"): XCTAssertEqual(Int(u), v["value"] as? Int, "\(name): \(key)")
            case (.int(let i), let type?) where type.hasPrefix("int"): XCTAssertEqual(Int(i), v["value"] as? Int, "\(name): \(key)")
            case (.float(let f), let type?) where type.hasPrefix("float"):
                XCTAssertEqual(f, try XCTUnwrap(v["value"] as? Double), accuracy: abs(f) * 1e-7, "\(name): \(key)")
            case (.array(let a), "array"?): XCTAssertEqual(a.count, v["count"] as? Int, "\(name): \(key)")
            default: XCTFail("\(name): \(key) is \(mine) here, \(v) to the gguf package")
            }
        }
        XCTAssertLessThanOrEqual(try XCTUnwrap(reading["max_abs_difference_to_fixture_weights"] as? Double), tolerance, name)
    }

    func roundTrip(_ name: String, edit: (inout LlamaConfig) -> Void = { _ in }) throws {
        let original = try bundle(name, edit: edit)
        let url = directory.appendingPathComponent("\(name).gguf")
        let summary = try GGUFExport.export(original, to: url, type: .f32)
        // Gemma's norms are stored as 1 + w: subtracting 1 again rounds.
        try checkAgainstTheGGUFPackage(url, as: name, tolerance: original.model.config.family == .gemma ? 1e-7 : 0)
        XCTAssertEqual(summary.tensors, original.model.parameterNames.count, name)
        let file = try GGUFFile(contentsOf: url)
        XCTAssertEqual(file.metadata["general.architecture"]?.stringValue, GGUFLayout.architecture(of: original.model.config.family), name)
        let back = try RunLocator.loadAligner(url.path)
        var expected = original.model.config
        if expected.family == .mistral { expected.family = .llama }
        // Special ids are the tokenizer's (the fixtures' configs name ids of another vocabulary).
        (expected.bosTokenId, expected.eosTokenIds, expected.padTokenId) = (58, [59], 60)
        var got = back.model.config
        // Fields GGUF does not carry: the initialiser's range, the sliding-window settings the export refused to need.
        got.initializerRange = expected.initializerRange
        (got.slidingWindow, got.useSlidingWindow, got.maxWindowLayers, got.layerTypes) =
            (expected.slidingWindow, expected.useSlidingWindow, expected.maxWindowLayers, expected.layerTypes)
        got.rmsNormEps = expected.rmsNormEps
        XCTAssertEqual(got, expected, "\(name): configuration read back")
        XCTAssertEqual(Double(Float(expected.rmsNormEps)), back.model.config.rmsNormEps, name)
        for p in original.model.parameterNames {
            let a = original.model.parameters[p]!, b = try XCTUnwrap(back.model.parameters[p], "\(name): \(p) missing")
            XCTAssertEqual(a.shape, b.shape, "\(name): \(p)")
            let d = zip(a.scalars, b.scalars).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(d, expected.family == .gemma && p.hasSuffix("norm.weight") ? 1e-7 : 0, "\(name): \(p) differs by \(d)")
        }
        let ids = [1, 5, 9, 13, 2, 40, 63, 7]
        let l1 = try withNoGrad { try original.model.forward(ids: ids, batch: 1, time: ids.count) }
        let l2 = try withNoGrad { try back.model.forward(ids: ids, batch: 1, time: ids.count) }
        let d = zip(l1.scalars, l2.scalars).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(d, 1e-5, "\(name): logits of the GGUF read back")
        // The Aligner's prompt and tokenizer survive.
        XCTAssertEqual(back.template.text, original.template.text)
        XCTAssertEqual(back.template.input, original.template.input)
        XCTAssertEqual(try back.exampleBuilder().promptIds(question: "the thin", answer: "on"),
                       try original.exampleBuilder().promptIds(question: "the thin", answer: "on"), name)
        XCTAssertEqual(back.specialTokens, original.specialTokens)
        XCTAssertEqual(back.tokenizer.token(of: 62), "[PAD62]")
    }

    func testLlama() throws { try roundTrip("llama3") { $0.ropeScaling = nil } }
    func testLlamaWithBiasesAndLinearRope() throws { try roundTrip("llama-bias-linear") { $0.hiddenAct = .silu } }
    func testMistralAsLlama() throws { try roundTrip("mistral") { $0.slidingWindow = nil } }
    func testQwen2() throws { try roundTrip("qwen2") { $0.useSlidingWindow = false; $0.layerTypes = nil } }
    func testQwen3() throws { try roundTrip("qwen3") }
    func testGemma() throws { try roundTrip("gemma") }
    func testPhi3() throws { try roundTrip("phi3") }

    func testTokenizerMetadata() throws {
        let b = try bundle("qwen3")
        let url = directory.appendingPathComponent("t.gguf")
        _ = try GGUFExport.export(b, to: url, type: .f32)
        let f = try GGUFFile(contentsOf: url)
        XCTAssertEqual(f.metadata["tokenizer.ggml.model"], .string("gpt2"))
        XCTAssertEqual(f.metadata["tokenizer.ggml.pre"], .string("gpt-2"))
        guard case .array(let tokens)? = f.metadata["tokenizer.ggml.tokens"], case .array(let types)? = f.metadata["tokenizer.ggml.token_type"],
              case .array(let merges)? = f.metadata["tokenizer.ggml.merges"] else { return XCTFail("tokenizer arrays missing") }
        XCTAssertEqual(tokens.count, 64)
        XCTAssertEqual(tokens[58], .string("<s>"))
        XCTAssertEqual(types.map { $0.intValue! }, Array(repeating: 1, count: 58) + [3, 3, 3] + [5, 5, 5])
        XCTAssertEqual(merges, ["t h", "th e", "i n", "o n"].map { .string($0) })
        XCTAssertEqual(f.metadata["tokenizer.ggml.bos_token_id"], .uint(58))
        XCTAssertEqual(f.metadata["tokenizer.ggml.eos_token_id"], .uint(59))
        XCTAssertEqual(f.metadata["tokenizer.ggml.padding_token_id"], .uint(60))
        XCTAssertEqual(f.metadata["tokenizer.ggml.add_bos_token"], .bool(true))  // the prompts start with <s>
        XCTAssertEqual(f.metadata["tokenizer.chat_template"], .string("{{ bos_token }}Q: {{ messages[0]['content'] }} A: {{ messages[1]['content'] }} C:"))
        XCTAssertEqual(f.metadata["qwen3.attention.key_length"], .uint(UInt64(b.model.config.headDim)))
    }

    func testQuantisedExports() throws {
        let b = try bundle("qwen3")
        let ids = [1, 5, 9, 13, 2, 40, 63, 7]
        let reference = try withNoGrad { try b.model.forward(ids: ids, batch: 1, time: ids.count) }
        for (type, tolerance) in [(GGMLType.f16, Float(0.01)), (.bf16, 0.05), (.q8_0, 0.05)] {
            let url = directory.appendingPathComponent("\(type.name).gguf")
            let s = try GGUFExport.export(b, to: url, type: type)
            if type == .q8_0 { try checkAgainstTheGGUFPackage(url, as: "qwen3-q8_0", tolerance: 0.01) }
            XCTAssertEqual(s.typeCounts["F32"], b.model.parameterNames.filter { b.model.parameters[$0]!.shape.count == 1 }.count, type.name)
            let f = try GGUFFile(contentsOf: url)
            XCTAssertEqual(f.info("blk.0.attn_q.weight")?.type, type)
            XCTAssertEqual(f.info("blk.0.attn_norm.weight")?.type, .f32)
            let back = try RunLocator.loadAligner(url.path)
            let logits = try withNoGrad { try back.model.forward(ids: ids, batch: 1, time: ids.count) }
            let d = zip(reference.scalars, logits.scalars).map { abs($0 - $1) }.max()!, scale = reference.scalars.map(abs).max()!
            XCTAssertLessThanOrEqual(d, tolerance * scale, "\(type.name): logits differ by \(d) (max \(scale))")
            XCTAssertGreaterThan(d, 0, "\(type.name) should round something")
        }
    }

    func testRefusals() throws {
        let url = directory.appendingPathComponent("r.gguf")
        XCTAssertThrowsError(try GGUFExport.export(try bundle("llama-yarn") { $0.hiddenAct = .silu }, to: url, type: .f32)) { XCTAssertTrue("\($0)".contains("yarn"), "\($0)") }
        XCTAssertThrowsError(try GGUFExport.export(try bundle("mistral"), to: url, type: .f32)) { XCTAssertTrue("\($0)".contains("sliding window"), "\($0)") }
        XCTAssertThrowsError(try GGUFExport.export(try bundle("qwen2"), to: url, type: .f32)) { XCTAssertTrue("\($0)".contains("sliding-window"), "\($0)") }
        XCTAssertThrowsError(try GGUFExport.export(try bundle("llama-bias-linear"), to: url, type: .f32)) {
            XCTAssertTrue("\($0)".contains("uses silu, this model gelu"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
    }
}
