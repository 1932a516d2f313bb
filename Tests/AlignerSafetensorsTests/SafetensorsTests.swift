import AlignerTensor
import Foundation
import XCTest

@testable import AlignerSafetensors

final class SafetensorsTests: XCTestCase {
    /// Builds a file from a header string and raw data bytes.
    private func file(header: String, data: [UInt8], declaredLength: UInt64? = nil) -> Data {
        var out = Data()
        let h = Data(header.utf8)
        withUnsafeBytes(of: (declaredLength ?? UInt64(h.count)).littleEndian) { out.append(contentsOf: $0) }
        out.append(h)
        out.append(contentsOf: data)
        return out
    }

    private func expectError(_ data: Data, contains fragment: String, line: UInt = #line) {
        XCTAssertThrowsError(try SafetensorsFile(data: data, name: "bad.safetensors"), line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(fragment), "'\(text)' does not mention '\(fragment)'", line: line)
            XCTAssertTrue(text.hasPrefix("bad.safetensors"), line: line)
        }
    }

    func testRoundTripWithMetadata() throws {
        let a = Tensor([1, -2.5, 3e-8, 4e8, 0, -0], shape: [2, 3])
        let b = Tensor([7], shape: [])
        let c = Tensor.zeros([0, 4])
        let data = try SafetensorsWriter.encode(["b": b, "a.weight": a, "empty": c], metadata: ["format": "pt", "note": "ü"])
        let headerLength = data.prefix(8).withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        XCTAssertEqual((8 + headerLength) % 8, 0, "data section starts 8-byte aligned")
        let f = try SafetensorsFile(data: data)
        XCTAssertEqual(f.names, ["a.weight", "b", "empty"])
        XCTAssertEqual(f.metadata, ["format": "pt", "note": "ü"])
        XCTAssertEqual(try f.tensor("a.weight").scalars, a.scalars)
        XCTAssertEqual(try f.tensor("a.weight").shape, [2, 3])
        XCTAssertEqual(try f.tensor("b").shape, [])
        XCTAssertEqual(try f.tensor("b").item, 7)
        XCTAssertEqual(try f.tensor("empty").shape, [0, 4])
        XCTAssertThrowsError(try f.tensor("missing"))
    }

    func testAtomicWriteToDisk() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("model.safetensors")
        try SafetensorsWriter.write(["w": Tensor([1, 2], shape: [2])], to: url)
        try SafetensorsWriter.write(["w": Tensor([3, 4], shape: [2])], to: url)
        XCTAssertEqual(try SafetensorsFile(contentsOf: url).tensor("w").scalars, [3, 4])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["model.safetensors"])
    }

    func testHalfAndBFloat16() throws {
        // F16: 1.0 = 0x3C00, -2.0 = 0xC000, 0.5 = 0x3800. BF16: 1.0 = 0x3F80, -3.0 = 0xC040.
        let f16: [UInt8] = [0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38]
        let bf16: [UInt8] = [0x80, 0x3F, 0x40, 0xC0]
        let header = #"{"h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},"b":{"dtype":"BF16","shape":[2,1],"data_offsets":[6,10]}}"#
        let f = try SafetensorsFile(data: file(header: header, data: f16 + bf16))
        XCTAssertEqual(try f.tensor("h").scalars, [1, -2, 0.5])
        XCTAssertEqual(try f.tensor("b").scalars, [1, -3])
        XCTAssertEqual(try f.tensor("b").shape, [2, 1])
    }

    func testMalformedFilesAreRejectedWithAReason() {
        let four: [UInt8] = [0, 0, 128, 63]  // 1.0f
        expectError(Data([1, 2, 3]), contains: "shorter than the 8-byte header length")
        expectError(file(header: "{}", data: [], declaredLength: 1 << 40), contains: "exceeds")
        expectError(file(header: "{}", data: [], declaredLength: 50), contains: "runs past the end")
        expectError(file(header: "{\"a\":", data: []), contains: "not well-formed JSON")
        expectError(file(header: "[1,2]", data: []), contains: "not a JSON object")
        var bad = file(header: "{}  ", data: [])
        bad[9] = 0xFF
        expectError(bad, contains: "not valid UTF-8")
        expectError(file(header: #"{"a":{"shape":[1],"data_offsets":[0,4]}}"#, data: four), contains: "missing dtype")
        expectError(file(header: #"{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, data: four + four),
                    contains: "I64 is not supported")
        expectError(file(header: #"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: four),
                    contains: "non-negative")
        expectError(file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}"#, data: four),
                    contains: "outside the 4-byte data section")
        expectError(file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, data: four + four),
                    contains: "outside")
        expectError(file(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, data: four),
                    contains: "needs 8 bytes but its range holds 4")
        expectError(file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: four + four),
                    contains: "belong to no tensor")
        expectError(file(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                         data: four + four), contains: "overlaps")
        expectError(file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: four + four),
                    contains: "trailing bytes")
        expectError(file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#, data: four),
                    contains: "data_offsets must be two integers")
        expectError(file(header: #"{"__metadata__":{"k":1}}"#, data: []), contains: "is not a string")
        expectError(file(header: #"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}}"#, data: four),
                    contains: "overflows")
    }

    func testTruncatedRealFileFails() throws {
        let data = try SafetensorsWriter.encode(["w": Tensor.ones([16])])
        for cut in [1, 8, 20, data.count - 1] {
            XCTAssertThrowsError(try SafetensorsFile(data: data.prefix(cut)), "cut at \(cut)")
        }
    }
}

final class PythonWrittenSafetensorsTests: XCTestCase {
    /// Written by the Python `safetensors` package (scripts/fixtures/make_llama_fixture.py).
    func testReadsF32F16AndBF16WrittenByPython() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/dtypes.safetensors")
        let f = try SafetensorsFile(contentsOf: url)
        XCTAssertEqual(f.metadata["format"], "pt")
        XCTAssertEqual(f.entries["f16"]?.dtype, .f16)
        XCTAssertEqual(f.entries["bf16"]?.dtype, .bf16)
        XCTAssertEqual(try f.tensor("f16").scalars, try f.tensor("f16_as_f32").scalars)
        XCTAssertEqual(try f.tensor("bf16").scalars, try f.tensor("bf16_as_f32").scalars)
        XCTAssertEqual(try f.tensor("f32").shape, [3, 5])
        XCTAssertNotEqual(try f.tensor("f32").scalars, try f.tensor("bf16_as_f32").scalars)
    }
}
