import AlignerGGUF
import ArgumentParser
import Foundation

struct GGUFCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gguf", abstract: "GGUF files (llama.cpp's format).", subcommands: [Inspect.self])

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a GGUF file's version, metadata and tensors (name, type, shape), after validating it.")
        @Argument(help: "The .gguf file.") var file: String
        @Flag(help: "Dequantise every tensor as well (checks that all of them read).") var dequantise = false

        func run() throws {
            let f = try GGUFFile(contentsOf: URL(fileURLWithPath: file))
            print("GGUF version \(f.version), alignment \(f.alignment), \(f.keys.count) metadata keys, \(f.tensors.count) tensors")
            for key in f.keys {
                let v = f.metadata[key]!
                print("  \(key) = \(Self.summary(v))")
            }
            var counts: [String: Int] = [:]
            for t in f.tensors {
                counts[t.type.name, default: 0] += 1
                print("  tensor \(t.name) \(t.type.name) \(t.shape)")
                if dequantise {
                    let x = try f.tensor(t.name)
                    guard x.nonFiniteCount == 0 else { throw GGUFError(file: file, message: "tensor '\(t.name)' dequantises to non-finite values") }
                }
            }
            print("tensor types: " + counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }

        static func summary(_ v: GGUFValue) -> String {
            switch v {
            case .string(let s): return String(reflecting: s.count > 120 ? String(s.prefix(120)) + "…" : s)
            case .array(let items):
                let head = items.prefix(5).map(summary).joined(separator: ", ")
                return "[\(head)\(items.count > 5 ? ", … (\(items.count) items)" : "")]"
            case .uint(let x): return String(x)
            case .int(let x): return String(x)
            case .float(let x): return String(x)
            case .bool(let b): return String(b)
            }
        }
    }
}
