import Foundation
import XCTest

@testable import AlignerRuns

/// AlignerKit's TensorBoard event encoding against a file written by TensorBoard's own writer
/// (`scripts/fixtures/make_tensorboard_fixture.py`, TensorBoard 2.21.0): the same events give the same bytes.
final class TensorBoardEventsTests: XCTestCase {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/tensorboard.tfevents")

    /// The events of the fixture script, in order.
    static let scalars: [(wall: Double, step: Int64, tag: String, value: Float)] = [
        (1765140000.25, 0, "train/loss", 2.5),
        (1765140001.5, 1, "train/loss", 0.0),
        (0.0, 2, "train/learning_rate", 3e-4),
        (1765140002.75, 10, "eval/loss", -1.25),
        (1765140003.0, (1 << 40) + 7, "train/grad_norm", .infinity),
        (1765140004.0, 11, String(repeating: "x", count: 200), .nan),
        (1765140005.125, 12, "généré/tokens_per_s", 315.5),
    ]

    func testEventsAreTensorBoardsBytes() throws {
        var bytes = TensorBoardEvents.record(TensorBoardEvents.fileVersionEvent(wallTime: 1765139999.0))
        for s in Self.scalars {
            bytes += TensorBoardEvents.record(TensorBoardEvents.scalarEvent(tag: s.tag, value: s.value, step: s.step, wallTime: s.wall))
        }
        XCTAssertEqual(Data(bytes), try Data(contentsOf: Self.fixture))
    }

    func testCRC32CKnownValues() {
        // RFC 3720's test vectors for CRC-32C.
        XCTAssertEqual(TensorBoardEvents.crc32c([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(TensorBoardEvents.crc32c([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(TensorBoardEvents.crc32c(Array("123456789".utf8)), 0xE306_9283)
    }

    func testWriterAppendsFramedEvents() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tb-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let w = try TensorBoardWriter(folder: folder, wallTime: 1765139999.0)
        try w.scalar("train/loss", 2.5, step: 0, wallTime: 1765140000.25)
        try w.scalar("train/loss", 0.0, step: 1, wallTime: 1765140001.5)
        let expected = Array(try Data(contentsOf: Self.fixture))
        let written = Array(try Data(contentsOf: w.url))
        XCTAssertTrue(w.url.lastPathComponent.hasPrefix("events.out.tfevents.1765139999."))
        // The fixture's first three records.
        var offset = 0
        for _ in 0..<3 {
            let length = expected[offset..<(offset + 8)].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            offset += 16 + length
        }
        XCTAssertEqual(written, Array(expected[0..<offset]))
    }
}
