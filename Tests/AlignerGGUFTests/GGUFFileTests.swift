import AlignerSafetensors
import AlignerTensor
import Foundation
import TestSupport
import XCTest

@testable import AlignerGGUF

/// GGUF reading against the `gguf` Python package (scripts/fixtures/make_gguf_fixtures.py): metadata of every value
/// type, and every supported tensor type dequantised exactly as `gguf.quants.dequantize` does.
final class GGUFFileTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    func testMetadataOfEveryValueType() throws {
        let f = try GGUFFile(contentsOf: Self.fixtures.appendingPathComponent("quants.gguf"))
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.metadata["general.architecture"], .string("llama"))
        XCTAssertEqual(f.metadata["test.u8"], .uint(200))
        XCTAssertEqual(f.metadata["test.i8"], .int(-100))
        XCTAssertEqual(f.metadata["test.u16"], .uint(60000))
        XCTAssertEqual(f.metadata["test.i16"], .int(-30000))
        XCTAssertEqual(f.metadata["test.u32"], .uint(4_000_000_000))
        XCTAssertEqual(f.metadata["test.i32"], .int(-2_000_000_000))
        XCTAssertEqual(f.metadata["test.f32"], .float(0.5))
        XCTAssertEqual(f.metadata["test.bool"], .bool(true))
        XCTAssertEqual(f.metadata["test.string"], .string("héllo ✓"))
        XCTAssertEqual(f.metadata["test.array"], .array([.int(1), .int(2), .int(3)]))
        XCTAssertEqual(f.metadata["test.strings"], .array([.string("a"), .string("bc")]))
        XCTAssertEqual(f.metadata["test.u64"], .uint(1 << 40))
        XCTAssertEqual(f.metadata["test.i64"], .int(-(1 << 40)))
        XCTAssertEqual(f.metadata["test.f64"], .float(0.1))
    }

    func testEveryTensorTypeDequantisesAsTheGGUFPackage() throws {
        let f = try GGUFFile(contentsOf: Self.fixtures.appendingPathComponent("quants.gguf"))
        let reference = try SafetensorsFile(contentsOf: Self.fixtures.appendingPathComponent("quants-reference.safetensors"))
        XCTAssertEqual(Set(f.tensors.map(\.type)), Set(GGMLType.allCases))
        for t in f.tensors {
            let ours = try f.tensor(t.name), theirs = try reference.tensor(t.name)
            XCTAssertEqual(ours.shape, t.type.block.elements == 256 ? [3, 512] : [3, 64], t.name)
            XCTAssertEqual(ours.shape, theirs.shape, t.name)
            XCTAssertEqual(ours.scalars, theirs.scalars, "\(t.name) (\(t.type.name)) differs from gguf.quants.dequantize")
        }
    }

    /// Truncations and random mutations of the file: each reads or is refused with `GGUFError`; what reads
    /// dequantises every tensor without trapping.
    func testMalformedFilesAreRefused() throws {
        let valid = Array(try Data(contentsOf: Self.fixtures.appendingPathComponent("quants.gguf")))
        let end = try GGUFFile(data: Data(valid)).tensors.map { $0.offset + $0.byteCount }.max()!
        for cut in [0, 3, 4, 8, 16, 24, 40, 100, 600, end - 1] {
            XCTAssertThrowsError(try GGUFFile(data: Data(valid.prefix(cut))), "cut at \(cut)") { XCTAssertTrue($0 is GGUFError, "\($0)") }
        }
        var bigEndian = valid
        bigEndian[4...7] = [0, 0, 0, 3]
        XCTAssertThrowsError(try GGUFFile(data: Data(bigEndian))) { XCTAssertTrue("\($0)".contains("version"), "\($0)") }
        var m = Mutator(seed: 5)
        var read = 0, refused = 0
        for _ in 0..<400 {
            do {
                let f = try GGUFFile(data: Data(m.mutate(valid)))
                for t in f.tensors { _ = try f.tensor(t.name) }
                read += 1
            } catch is GGUFError { refused += 1 }
        }
        XCTAssertGreaterThan(refused, 50)
        XCTAssertGreaterThan(read, 10)
    }
}
