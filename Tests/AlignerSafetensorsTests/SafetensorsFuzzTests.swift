import AlignerTensor
import Foundation
import TestSupport
import XCTest

@testable import AlignerSafetensors

/// Random mutations of a valid file: every mutant is read or refused with `SafetensorsError`, never a trap.
final class SafetensorsFuzzTests: XCTestCase {
    func testMutatedFilesAreReadOrRefused() throws {
        let valid = try SafetensorsWriter.encode(
            ["a.weight": Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3]), "b": Tensor([7], shape: []), "c": Tensor.zeros([0, 2])],
            metadata: ["format": "pt"])
        var m = Mutator(seed: 1)
        var refused = 0
        for _ in 0..<3000 {
            let mutant = Data(m.mutate(Array(valid)))
            do {
                let f = try SafetensorsFile(data: mutant, name: "mutant")
                for name in f.names { _ = try f.tensor(name).scalars }
            } catch is SafetensorsError { refused += 1 }
        }
        XCTAssertGreaterThan(refused, 1000)
    }

    func testRepeatedTensorNamesAreRefused() throws {
        let header = #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w" :{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        var file = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(Data(header.utf8))
        file.append(Data([0, 0, 128, 63]))
        XCTAssertThrowsError(try SafetensorsFile(data: file, name: "dup.safetensors")) { error in
            XCTAssertEqual("\(error)", "dup.safetensors: header names tensor 'w' more than once")
        }
        // Keys inside an entry, or escaped differently, do not count as repeats of a top-level key.
        XCTAssertNil(SafetensorsFile.firstRepeatedTopLevelKey(Array(#"{"a":{"a":1},"b\"":{"a":2}}"#.utf8)))
        XCTAssertEqual(SafetensorsFile.firstRepeatedTopLevelKey(Array(#"{"x\"y":1, "x\"y" :2}"#.utf8)), "x\"y")
    }
}

/// Headers whose shapes and offsets hold extreme integers (negative, 2^31, 2^62, Int.max: products that overflow):
/// refused with `SafetensorsError`, never an arithmetic trap.
final class SafetensorsExtremeValueTests: XCTestCase {
    func file(header: Any, data: Int) throws -> Data {
        let json = try JSONSerialization.data(withJSONObject: header)
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        return out + json + Data(count: data)
    }

    func testExtremeShapesAndOffsetsAreRefused() throws {
        for shape in [[1 << 31, 1 << 31], [1 << 62], [Int.max, 2], [1 << 31, 1 << 31, 4], [-1, 4]] {
            let header: [String: Any] = ["w": ["dtype": "F32", "shape": shape, "data_offsets": [0, 16]]]
            XCTAssertThrowsError(try SafetensorsFile(data: file(header: header, data: 16), name: "x.safetensors"), "\(shape)") { e in
                XCTAssertTrue(e is SafetensorsError, "\(e)")
            }
        }
        let valid: [String: Any] = ["a": ["dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]],
                                    "b": ["dtype": "BF16", "shape": [4], "data_offsets": [16, 24]]]
        var m = Mutator(seed: 31)
        var refused = 0
        for _ in 0..<2000 {
            do {
                let f = try SafetensorsFile(data: file(header: m.extremeNumbers(valid), data: 24), name: "x.safetensors")
                for name in f.names { _ = try f.tensor(name).scalars }
            } catch is SafetensorsError { refused += 1 }
        }
        XCTAssertGreaterThan(refused, 1500)
    }
}
