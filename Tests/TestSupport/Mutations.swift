import Foundation

/// Deterministic random mutations of valid files, for the parsers' fuzz tests: each test feeds mutants of a valid
/// input to a parser for a bounded number of iterations and asserts that it returns a result or throws, never traps.
public struct Mutator {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// SplitMix64.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(next() % UInt64(n)) }

    /// Bytes that parsers treat specially: digits, signs, brackets, quotes, separators, escapes, high bytes.
    static let interesting: [UInt8] = Array("0123456789-+.eE[]{}\":,\\ntu/ \n\r\t".utf8) + [0x00, 0x7F, 0x80, 0xC3, 0xFF]

    /// One to four edits: flip a bit, replace, insert or delete a byte, duplicate or drop a span, truncate.
    public mutating func mutate(_ input: [UInt8]) -> [UInt8] {
        var b = input
        for _ in 0...below(4) {
            let i = below(max(b.count, 1))
            switch below(7) {
            case 0 where !b.isEmpty: b[i] ^= UInt8(1 << below(8))
            case 1 where !b.isEmpty: b[i] = Self.interesting[below(Self.interesting.count)]
            case 2: b.insert(Self.interesting[below(Self.interesting.count)], at: min(i, b.count))
            case 3 where !b.isEmpty: b.remove(at: i)
            case 4 where !b.isEmpty:
                let n = min(1 + below(16), b.count - i)
                b.insert(contentsOf: b[i..<(i + n)], at: i)
            case 5 where !b.isEmpty: b.removeSubrange(i..<min(b.count, i + 1 + below(16)))
            case 6: b = Array(b.prefix(below(b.count + 1)))
            default: break
            }
        }
        return b
    }

    /// Integers at the edges of what sizes, offsets and ids can hold: negative, 32-bit and 64-bit limits, and values
    /// whose products overflow.
    public static let extremeIntegers: [Int] = [-1, -2, Int(Int32.min), Int(Int32.max), 1 << 31, 1 << 32, 1 << 40, 1 << 62, Int.max, Int.min, 0,
                                                -(1 << 62), 3_000_000_000]

    /// A JSON value (as `JSONSerialization` reads it) with one to four of its integers replaced by extreme ones
    /// (`extremeIntegers`): the values a file can hold that byte mutations rarely produce.
    public mutating func extremeNumbers(_ json: Any) -> Any {
        var paths: [[AnyHashable]] = []
        func collect(_ v: Any, _ path: [AnyHashable]) {
            if let d = v as? [String: Any] { for (k, x) in d { collect(x, path + [k]) } }
            else if let a = v as? [Any] { for (i, x) in a.enumerated() { collect(x, path + [i]) } }
            else if let n = v as? NSNumber, Double(truncating: n) == Double(n.int64Value) { paths.append(path) }  // (booleans too)
        }
        collect(json, [])
        guard !paths.isEmpty else { return json }
        func replace(_ v: Any, _ path: ArraySlice<AnyHashable>, _ value: Int) -> Any {
            guard let key = path.first else { return value }
            if var d = v as? [String: Any], let k = key as? String { d[k] = replace(d[k]!, path.dropFirst(), value); return d }
            if var a = v as? [Any], let i = key as? Int { a[i] = replace(a[i], path.dropFirst(), value); return a }
            return v
        }
        var out = json
        for _ in 0...below(4) {
            out = replace(out, paths[below(paths.count)][...], Self.extremeIntegers[below(Self.extremeIntegers.count)])
        }
        return out
    }
}
