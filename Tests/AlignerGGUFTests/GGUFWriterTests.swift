import AlignerSafetensors
import AlignerTensor
import Foundation
import XCTest

@testable import AlignerGGUF

/// GGUF writing: quantisation byte for byte as the `gguf` Python package's `gguf.quants.quantize`
/// (scripts/fixtures/make_gguf_fixtures.py), and files that the reader reads back exactly.
final class GGUFWriterTests: XCTestCase {
    static let fixtures = GGUFFileTests.fixtures

    func testEncodingMatchesTheGGUFPackageByteForByte() throws {
        let f = try GGUFFile(contentsOf: Self.fixtures.appendingPathComponent("quants.gguf"))
        let values = try SafetensorsFile(contentsOf: Self.fixtures.appendingPathComponent("quants-reference.safetensors")).tensor("values")
        XCTAssertEqual(values.shape, [3, 64])
        for type in GGUFWriter.writableTypes {
            let ours = try GGUFWriter.encode(UnsafeBufferPointer(start: values.data, count: values.count), as: type)
            let theirs = try XCTUnwrap(f.rawBytes("t.\(type.name.lowercased())"))
            XCTAssertEqual(ours, Array(theirs), "\(type.name) differs from gguf.quants.quantize")
        }
    }

    func testQ8_0RoundsHalfwayAwayFromZeroAndKeepsZeroBlocks() throws {
        // max 127 gives d = 1: 0.5 → 1, -2.5 → -3, 1.5 → 2; a zero block stores d = 0 and zeros.
        var v = [Float](repeating: 0, count: 64)
        v[0] = 127; v[1] = 0.5; v[2] = -2.5; v[3] = 1.5; v[4] = -0.49
        let bytes = try v.withUnsafeBufferPointer { try GGUFWriter.encode($0, as: .q8_0) }
        XCTAssertEqual(bytes.count, 68)
        XCTAssertEqual(Array(bytes[0..<2]), [0x00, 0x3c])  // f16 1.0
        XCTAssertEqual(bytes[2...6].map { Int8(bitPattern: $0) }, [127, 1, -3, 2, 0])
        XCTAssertEqual(Array(bytes[34..<68]), [UInt8](repeating: 0, count: 34))
        XCTAssertThrowsError(try [Float](repeating: 1, count: 48).withUnsafeBufferPointer { try GGUFWriter.encode($0, as: .q8_0) })
    }

    func testWrittenFilesReadBack() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gguf-writer-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("t.gguf")
        let w = Tensor.zeros([3, 64]), norm = Tensor.zeros([64])
        for i in 0..<w.count { w.data[i] = Float(i % 17) * 0.37 - 2 }
        for i in 0..<norm.count { norm.data[i] = 1 + Float(i) / 64 }
        let metadata: [(String, GGUFMetadataValue)] = [
            ("general.architecture", .string("llama")), ("a.u32", .uint32(7)), ("a.i32", .int32(-7)), ("a.f32", .float32(0.25)),
            ("a.bool", .bool(true)), ("a.u64", .uint64(1 << 40)), ("a.f64", .float64(0.1)), ("a.strings", .strings(["x", "é ✓"])),
            ("a.i32s", .int32s([1, -2])), ("a.f32s", .float32s([0.5, -1])),
        ]
        let tensors = [GGUFTensorSource(name: "norm", values: norm, type: .f32)]
            + GGUFWriter.writableTypes.map { GGUFTensorSource(name: "w.\($0.name)", values: w, type: $0) }
        try GGUFWriter.write(metadata: metadata, tensors: tensors, to: url)
        let f = try GGUFFile(contentsOf: url)
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.keys, metadata.map(\.0))
        XCTAssertEqual(f.metadata["a.u32"], .uint(7))
        XCTAssertEqual(f.metadata["a.i32"], .int(-7))
        XCTAssertEqual(f.metadata["a.f32"], .float(0.25))
        XCTAssertEqual(f.metadata["a.bool"], .bool(true))
        XCTAssertEqual(f.metadata["a.u64"], .uint(1 << 40))
        XCTAssertEqual(f.metadata["a.f64"], .float(0.1))
        XCTAssertEqual(f.metadata["a.strings"], .array([.string("x"), .string("é ✓")]))
        XCTAssertEqual(f.metadata["a.i32s"], .array([.int(1), .int(-2)]))
        XCTAssertEqual(f.metadata["a.f32s"], .array([.float(0.5), .float(-1)]))
        XCTAssertEqual(f.tensors.map(\.name), tensors.map(\.name))
        XCTAssertEqual(try f.tensor("norm").scalars, norm.scalars)
        XCTAssertEqual(try f.tensor("w.F32").scalars, w.scalars)
        for type in GGUFWriter.writableTypes {
            XCTAssertEqual(f.info("w.\(type.name)")?.shape, [3, 64])
            XCTAssertEqual((f.info("w.\(type.name)")?.offset ?? 1) % 32, 0, "tensor data aligned to 32 bytes")
            let back = try f.tensor("w.\(type.name)")
            let err = zip(back.scalars, w.scalars).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(err, type == .q8_0 ? 0.02 : type == .bf16 ? 0.02 : type == .f16 ? 0.002 : 0, type.name)
        }
    }

    func testRefusalsLeaveTheOldFileInPlace() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gguf-writer-refuse-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("t.gguf")
        try GGUFWriter.write(metadata: [("k", .uint32(1))], tensors: [], to: url)
        let before = try Data(contentsOf: url)
        let odd = Tensor.zeros([2, 48])
        XCTAssertThrowsError(try GGUFWriter.write(metadata: [], tensors: [GGUFTensorSource(name: "w", values: odd, type: .q8_0)], to: url)) {
            XCTAssertTrue("\($0)".contains("blocks of 32"), "\($0)")
        }
        XCTAssertThrowsError(try GGUFWriter.write(metadata: [("k", .uint32(1)), ("k", .uint32(2))], tensors: [], to: url)) {
            XCTAssertTrue("\($0)".contains("twice"), "\($0)")
        }
        XCTAssertThrowsError(try GGUFWriter.write(metadata: [], tensors: [GGUFTensorSource(name: "w", values: odd, type: .q4_0)], to: url))
        XCTAssertEqual(try Data(contentsOf: url), before)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["t.gguf"], "no temporary file left behind")
    }

    /// The Q8_0 blocks inference holds (`Q8Matrix`) are the bytes a Q8_0 GGUF file stores for the same values.
    func testInferenceQ8MatrixHoldsTheBlocksTheWriterStores() throws {
        var rng = SeededGenerator(seed: 21)
        let w = Tensor((0..<(6 * 96)).map { _ in Float(Int(rng.next() % 4001) - 2000) / 700 }, shape: [6, 96])
        let bytes = try w.scalars.withUnsafeBufferPointer { try GGUFWriter.encode($0, as: .q8_0) }
        let q = Q8Matrix(quantizing: w)
        for r in 0..<6 {
            for b in 0..<3 {
                let block = Array(bytes[((r * 3 + b) * 34)..<((r * 3 + b + 1) * 34)])
                let half = Float16(bitPattern: UInt16(block[0]) | UInt16(block[1]) << 8)
                XCTAssertEqual(q.scales(row: r)[b], Float(half), "row \(r) block \(b): scale")
                XCTAssertEqual(Array(q.quants(row: r)[(b * 32)..<(b * 32 + 32)]), block[2...].map { Int8(bitPattern: $0) }, "row \(r) block \(b)")
            }
        }
    }
}
