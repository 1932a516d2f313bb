import Foundation
import XCTest

/// A run's TensorBoard events (`train.report_to = "tensorboard"`, the default) hold every number of its metrics.jsonl
/// at its global step, and a resumed run rewrites them so that no step appears twice (issue 28). The encoding itself is
/// checked byte for byte against TensorBoard's writer in `TensorBoardEventsTests`; TensorBoard's own reader is run on
/// a real run by `scripts/checks/check_tensorboard.py`.
final class TensorBoardRunTests: CLITestCase {
    /// (tag, step) → value of every scalar event in the run's event files, and how many events there were.
    func scalars(_ run: URL) throws -> (values: [String: Float], count: Int) {
        let folder = run.appendingPathComponent("tensorboard")
        var values: [String: Float] = [:], count = 0
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) where name.hasPrefix("events.out.tfevents.") {
            let bytes = Array(try Data(contentsOf: folder.appendingPathComponent(name)))
            var i = 0
            while i + 12 <= bytes.count {
                let length = (0..<8).reduce(0) { $0 | Int(bytes[i + $1]) << (8 * $1) }
                let event = Array(bytes[(i + 12)..<(i + 12 + length)])
                i += 16 + length
                // Event: 1 wall_time (64-bit), 2 step (varint), 3 file_version, 5 summary { 1 value { 1 tag, 2 simple_value } }.
                var j = 0, step = 0, tag = "", value: Float?
                func varint(_ b: [UInt8], _ k: inout Int) -> Int {
                    var v = 0, shift = 0
                    while true { let x = b[k]; k += 1; v |= Int(x & 0x7F) << shift; shift += 7; if x & 0x80 == 0 { return v } }
                }
                while j < event.count {
                    let key = event[j]; j += 1
                    switch key {
                    case 0x09: j += 8
                    case 0x10: step = varint(event, &j)
                    case 0x1A: j += varint(event, &j)
                    case 0x2A:
                        let end = varint(event, &j) + j
                        var k = j + 1  // Summary.value (0x0a)
                        let valueEnd = varint(event, &k) + k
                        while k < valueEnd {
                            let field = event[k]; k += 1
                            if field == 0x0A { let n = varint(event, &k); tag = String(decoding: event[k..<(k + n)], as: UTF8.self); k += n }
                            if field == 0x15 {
                                value = Float(bitPattern: (0..<4).reduce(UInt32(0)) { $0 | UInt32(event[k + $1]) << (8 * UInt32($1)) }); k += 4
                            }
                        }
                        j = end
                    default: XCTFail("unexpected field \(key)"); return (values, count)
                    }
                }
                if let value {
                    XCTAssertNil(values["\(tag)@\(step)"], "\(tag) at step \(step) appears twice")
                    values["\(tag)@\(step)"] = value
                    count += 1
                }
            }
        }
        return (values, count)
    }

    /// Every number of metrics.jsonl, as the events should hold it.
    func expected(_ run: URL) throws -> [String: Float] {
        var out: [String: Float] = [:]
        for line in try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n") {
            let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let step = o["global_step"] as? Int ?? 0
            for (key, value) in o where !["stage", "step", "global_step", "non_finite"].contains(key) {
                let tag = key.hasPrefix("eval_") ? "eval/" + key.dropFirst(5) : "train/" + key
                if value is NSNull { out["\(tag)@\(step)"] = .nan } else if let n = value as? NSNumber { out["\(tag)@\(step)"] = n.floatValue }
            }
        }
        return out
    }

    func testEventsHoldTheMetricsAndAResumeDoesNotRepeatSteps() throws {
        let data = try dataCopy()
        let common = ["train", "recipes/smoke.toml"] + tinyRun(data.path) + ["--set", "stage2.steps=8", "--set", "train.eval_every=3", "--set", "train.log_every=1"]
        try run(common.map { $0 == "name=r" ? "name=whole" : $0 })
        try run(common, expect: 1, environment: ["ALIGNERKIT_STOP_AFTER_STEPS": "6"])
        try run(common + ["--resume"])
        for name in ["whole", "r"] {
            let folder = dir.appendingPathComponent(name)
            let (values, count) = try scalars(folder)
            let want = try expected(folder)
            XCTAssertEqual(count, want.count, name)
            XCTAssertEqual(Set(values.keys), Set(want.keys), name)
            for (k, v) in want { XCTAssertTrue(values[k] == v || (v.isNaN && values[k]?.isNaN == true), "\(name) \(k): \(String(describing: values[k])) vs \(v)") }
            XCTAssertNotNil(values["eval/loss@0"], name)
            XCTAssertNotNil(values["train/loss@1"], name)
        }
        // Off when the recipe says so.
        try run(common.map { $0 == "name=r" ? "name=off" : $0 } + ["--set", "train.report_to=none"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("off/tensorboard").path))
        try assertFails(common + ["--set", "train.report_to=wandb"], status: 64, saying: "train.report_to")
    }
}
