import Foundation

/// A value of a chat template's evaluation.
public indirect enum JinjaValue: Sendable, Equatable {
    case undefined, none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([JinjaValue])
    /// Keys in insertion order, as Python dicts keep them.
    case dict([(String, JinjaValue)])
    case namespace(NamespaceBox)

    public static func == (a: JinjaValue, b: JinjaValue) -> Bool {
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.int(let x), .int(let y)): return x == y
        case (.double(let x), .double(let y)): return x == y
        case (.int(let x), .double(let y)), (.double(let y), .int(let x)): return Double(x) == y
        case (.string(let x), .string(let y)): return x == y
        case (.list(let x), .list(let y)): return x == y
        case (.dict(let x), .dict(let y)): return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case (.namespace(let x), .namespace(let y)): return x === y
        default: return false
        }
    }

    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .list(let l): return !l.isEmpty
        case .dict(let d): return !d.isEmpty
        case .namespace: return true
        }
    }

    /// The text `{{ }}` prints (Python's `str`).
    var text: String {
        switch self {
        case .undefined: return ""
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return d == d.rounded() && abs(d) < 1e16 ? String(format: "%.1f", d) : String(d)
        case .string(let s): return s
        case .list(let l): return "[" + l.map(\.repr).joined(separator: ", ") + "]"
        case .dict(let d): return "{" + d.map { "'\($0.0)': \($0.1.repr)" }.joined(separator: ", ") + "}"
        case .namespace: return "<Namespace>"
        }
    }

    /// Python's `repr`.
    var repr: String {
        if case .string(let s) = self { return "'" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'" }
        return text
    }

    /// JSON as Python's `json.dumps` writes it (the `tojson` filter: ", " and ": " separators, non-ASCII kept).
    func json(indent: Int?, level: Int = 0) -> String {
        func pad(_ l: Int) -> String { indent.map { "\n" + String(repeating: " ", count: $0 * l) } ?? "" }
        switch self {
        case .undefined, .none: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int, .double: return text
        case .string(let s):
            var out = "\""
            for u in s.unicodeScalars {
                switch u {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                default:
                    if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
                }
            }
            return out + "\""
        case .list(let l):
            if l.isEmpty { return "[]" }
            let sep = indent == nil ? ", " : ","
            return "[" + l.map { pad(level + 1) + $0.json(indent: indent, level: level + 1) }.joined(separator: sep) + pad(level) + "]"
        case .dict(let d):
            if d.isEmpty { return "{}" }
            let sep = indent == nil ? ", " : ","
            return "{" + d.map { pad(level + 1) + JinjaValue.string($0.0).json(indent: nil) + ": " + $0.1.json(indent: indent, level: level + 1) }
                .joined(separator: sep) + pad(level) + "}"
        case .namespace(let n): return JinjaValue.dict(n.values).json(indent: indent, level: level)
        }
    }
}

/// The mutable attributes of a `namespace(...)`.
public final class NamespaceBox: @unchecked Sendable {
    var values: [(String, JinjaValue)]
    init(_ values: [(String, JinjaValue)]) { self.values = values }
    subscript(key: String) -> JinjaValue {
        get { values.first { $0.0 == key }?.1 ?? .undefined }
        set {
            if let i = values.firstIndex(where: { $0.0 == key }) { values[i].1 = newValue } else { values.append((key, newValue)) }
        }
    }
}


extension JinjaValue {
    var number: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }
}
