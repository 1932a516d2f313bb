import Foundation

/// A TOML reader for recipes: tables, dotted keys, basic and literal strings (single- and multi-line), integers
/// (decimal, hex, octal, binary, with underscores), floats, booleans, arrays and inline tables; every error names the
/// line and column. Dates, times and arrays of tables are refused: recipes hold none.
///
/// AlignerKit reads recipes with its own parser because TOMLKit's bundled toml++ aborts the process (a C++
/// `assert`) on some malformed files, for example a table header that starts with a comma; the fuzz test of recipes
/// found it, and a dependency's build flags cannot be changed from this package.
struct RecipeTOML {
    struct ParseError: Error {
        let line: Int
        let column: Int
        let message: String
    }

    private let bytes: [UInt8]
    private var i = 0

    private init(_ text: String) { bytes = Array(text.utf8) }

    /// The document as nested dictionaries of String, Int, Double, Bool, [Any] and [String: Any].
    static func parse(_ text: String) throws -> [String: Any] {
        var p = RecipeTOML(text)
        return try p.document()
    }

    // MARK: Positions and errors

    private func fail(_ message: String, at position: Int? = nil) -> ParseError {
        let pos = min(position ?? i, bytes.count)
        var line = 1, column = 1
        for b in bytes[0..<pos] { if b == 0x0A { line += 1; column = 1 } else if b & 0xC0 != 0x80 { column += 1 } }
        return ParseError(line: line, column: column, message: message)
    }

    private var atEnd: Bool { i >= bytes.count }
    private var current: UInt8? { i < bytes.count ? bytes[i] : nil }

    private func peek(_ s: String) -> Bool {
        let u = Array(s.utf8)
        return i + u.count <= bytes.count && Array(bytes[i..<(i + u.count)]) == u
    }

    /// Skips spaces and tabs.
    private mutating func skipBlanks() { while let c = current, c == 0x20 || c == 0x09 { i += 1 } }

    /// Skips blanks, comments and newlines (inside arrays).
    private mutating func skipBlanksCommentsAndNewlines() throws {
        while let c = current {
            if c == 0x20 || c == 0x09 || c == 0x0A { i += 1 } else if c == 0x0D && peek("\r\n") { i += 2 } else if c == UInt8(ascii: "#") { try comment() } else { break }
        }
    }

    private mutating func comment() throws {
        while let c = current, c != 0x0A {
            if c == 0x0D && peek("\r\n") { break }
            if c < 0x20 && c != 0x09 || c == 0x7F { throw fail("control character in a comment") }
            i += 1
        }
    }

    /// After a value or header: blanks, an optional comment, then a newline or the end.
    private mutating func endOfLine() throws {
        skipBlanks()
        if current == UInt8(ascii: "#") { try comment() }
        if atEnd { return }
        if current == 0x0A { i += 1; return }
        if peek("\r\n") { i += 2; return }
        throw fail("expected the end of the line, found '\(String(decoding: [current!], as: UTF8.self))'")
    }

    // MARK: Document

    private mutating func document() throws -> [String: Any] {
        var root: [String: Any] = [:]
        var tablePath: [String] = []
        var definedTables = Set<[String]>()
        while true {
            try skipBlanksCommentsAndNewlines()
            guard let c = current else { break }
            if c == UInt8(ascii: "[") {
                let start = i
                i += 1
                if current == UInt8(ascii: "[") { throw fail("arrays of tables ([[...]]) are not used in recipes") }
                skipBlanks()
                let path = try key()
                skipBlanks()
                guard current == UInt8(ascii: "]") else { throw fail("expected ']' to close the table header") }
                i += 1
                guard definedTables.insert(path).inserted else { throw fail("table [\(path.joined(separator: "."))] is defined twice", at: start) }
                try ensureTable(&root, path, at: start)
                tablePath = path
                try endOfLine()
            } else {
                let start = i
                let k = try key()
                skipBlanks()
                guard current == UInt8(ascii: "=") else { throw fail("expected '=' after the key '\(k.joined(separator: "."))'") }
                i += 1
                skipBlanks()
                let v = try value()
                try insert(&root, tablePath + k, v, at: start)
                try endOfLine()
            }
        }
        return root
    }

    private func ensureTable(_ root: inout [String: Any], _ path: [String], at position: Int) throws {
        guard let first = path.first else { return }
        var sub = root[first] as? [String: Any] ?? [:]
        if root[first] != nil && !(root[first] is [String: Any]) { throw fail("'\(first)' is already a value, not a table", at: position) }
        try ensureTable(&sub, Array(path.dropFirst()), at: position)
        root[first] = sub
    }

    private func insert(_ table: inout [String: Any], _ path: [String], _ value: Any, at position: Int) throws {
        if path.count == 1 {
            guard table[path[0]] == nil else { throw fail("key '\(path[0])' is defined twice", at: position) }
            table[path[0]] = value
            return
        }
        if table[path[0]] != nil && !(table[path[0]] is [String: Any]) { throw fail("'\(path[0])' is already a value, not a table", at: position) }
        var sub = table[path[0]] as? [String: Any] ?? [:]
        try insert(&sub, Array(path.dropFirst()), value, at: position)
        table[path[0]] = sub
    }

    // MARK: Keys

    private static func isBare(_ c: UInt8) -> Bool {
        (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
    }

    /// A dotted key: bare or quoted parts separated by dots.
    private mutating func key() throws -> [String] {
        var parts: [String] = []
        while true {
            skipBlanks()
            guard let c = current else { throw fail("expected a key, found the end of the file") }
            if c == UInt8(ascii: "\"") {
                i += 1
                parts.append(try basicString())
            } else if c == UInt8(ascii: "'") {
                i += 1
                parts.append(try literalString())
            } else if Self.isBare(c) {
                let start = i
                while let d = current, Self.isBare(d) { i += 1 }
                parts.append(String(decoding: bytes[start..<i], as: UTF8.self))
            } else {
                throw fail("expected a key, found '\(String(decoding: [c], as: UTF8.self))'")
            }
            skipBlanks()
            if current == UInt8(ascii: ".") { i += 1; continue }
            return parts
        }
    }

    // MARK: Values

    private mutating func value() throws -> Any {
        guard let c = current else { throw fail("expected a value, found the end of the file") }
        switch c {
        case UInt8(ascii: "\""):
            if peek("\"\"\"") { i += 3; return try multilineString(basic: true) }
            i += 1
            return try basicString()
        case UInt8(ascii: "'"):
            if peek("'''") { i += 3; return try multilineString(basic: false) }
            i += 1
            return try literalString()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "{"): return try inlineTable()
        case UInt8(ascii: "t") where peek("true"): i += 4; return true
        case UInt8(ascii: "f") where peek("false"): i += 5; return false
        default: return try number()
        }
    }

    private mutating func array() throws -> [Any] {
        i += 1
        var out: [Any] = []
        while true {
            try skipBlanksCommentsAndNewlines()
            guard let c = current else { throw fail("unterminated array") }
            if c == UInt8(ascii: "]") { i += 1; return out }
            out.append(try value())
            try skipBlanksCommentsAndNewlines()
            if current == UInt8(ascii: ",") { i += 1; continue }
            guard current == UInt8(ascii: "]") else { throw fail("expected ',' or ']' in an array") }
        }
    }

    private mutating func inlineTable() throws -> [String: Any] {
        i += 1
        var out: [String: Any] = [:]
        skipBlanks()
        if current == UInt8(ascii: "}") { i += 1; return out }
        while true {
            skipBlanks()
            let start = i
            let k = try key()
            guard current == UInt8(ascii: "=") else { throw fail("expected '=' in an inline table") }
            i += 1
            skipBlanks()
            try insert(&out, k, try value(), at: start)
            skipBlanks()
            if current == UInt8(ascii: ",") { i += 1; continue }
            guard current == UInt8(ascii: "}") else { throw fail("expected ',' or '}' in an inline table") }
            i += 1
            return out
        }
    }

    /// After the opening quote; returns at the closing one.
    private mutating func basicString() throws -> String {
        var out: [UInt8] = []
        while true {
            guard let c = current else { throw fail("unterminated string") }
            if c == UInt8(ascii: "\"") { i += 1; return try decoded(out) }
            if c == 0x0A || c == 0x0D { throw fail("newline in a single-line string") }
            if c == UInt8(ascii: "\\") {
                i += 1
                try escape(into: &out)
                continue
            }
            if c < 0x20 && c != 0x09 || c == 0x7F { throw fail("control character in a string") }
            out.append(c)
            i += 1
        }
    }

    private mutating func escape(into out: inout [UInt8]) throws {
        guard let e = current else { throw fail("unterminated escape") }
        i += 1
        switch e {
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "\""): out.append(0x22)
        case UInt8(ascii: "\\"): out.append(0x5C)
        case UInt8(ascii: "u"), UInt8(ascii: "U"):
            let n = e == UInt8(ascii: "u") ? 4 : 8
            guard i + n <= bytes.count, let code = UInt32(String(decoding: bytes[i..<(i + n)], as: UTF8.self), radix: 16),
                  let scalar = Unicode.Scalar(code) else { throw fail("invalid \\\(e == UInt8(ascii: "u") ? "u" : "U") escape") }
            out.append(contentsOf: Array(String(Character(scalar)).utf8))
            i += n
        default: throw fail("invalid escape '\\\(String(decoding: [e], as: UTF8.self))'")
        }
    }

    private mutating func literalString() throws -> String {
        let start = i
        while let c = current, c != UInt8(ascii: "'") {
            if c == 0x0A || c == 0x0D { throw fail("newline in a single-line string") }
            if c < 0x20 && c != 0x09 || c == 0x7F { throw fail("control character in a string") }
            i += 1
        }
        guard current == UInt8(ascii: "'") else { throw fail("unterminated string") }
        let s = try decoded(Array(bytes[start..<i]))
        i += 1
        return s
    }

    /// After the opening delimiter; a newline right after it is dropped.
    private mutating func multilineString(basic: Bool) throws -> String {
        if peek("\r\n") { i += 2 } else if current == 0x0A { i += 1 }
        let close = basic ? "\"\"\"" : "'''"
        var out: [UInt8] = []
        while true {
            guard let c = current else { throw fail("unterminated multi-line string") }
            if peek(close) {
                i += 3
                // Up to two more quotes belong to the content.
                var extra = 0
                while extra < 2, current == Array(close.utf8)[0] { out.append(current!); i += 1; extra += 1 }
                return try decoded(out)
            }
            if basic && c == UInt8(ascii: "\\") {
                i += 1
                // A backslash at the end of a line trims the newline and the whitespace after it.
                var j = i
                while j < bytes.count, bytes[j] == 0x20 || bytes[j] == 0x09 { j += 1 }
                if j < bytes.count, bytes[j] == 0x0A || bytes[j] == 0x0D {
                    i = j
                    while let d = current, d == 0x20 || d == 0x09 || d == 0x0A || d == 0x0D { i += 1 }
                    continue
                }
                try escape(into: &out)
                continue
            }
            if c < 0x20 && c != 0x09 && c != 0x0A && c != 0x0D || c == 0x7F { throw fail("control character in a string") }
            out.append(c)
            i += 1
        }
    }

    private func decoded(_ raw: [UInt8]) throws -> String {
        guard let s = String(validating: raw, as: UTF8.self) else { throw fail("a string is not valid UTF-8") }
        return s
    }

    /// Integers, floats, inf and nan; dates and times are refused.
    private mutating func number() throws -> Any {
        let start = i
        while let c = current, !(c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D || c == UInt8(ascii: ",") || c == UInt8(ascii: "]")
                                  || c == UInt8(ascii: "}") || c == UInt8(ascii: "#")) { i += 1 }
        let token = String(decoding: bytes[start..<i], as: UTF8.self)
        func bad() -> ParseError { fail("'\(token)' is not a value (string, number, boolean, array or table)", at: start) }
        guard !token.isEmpty else { throw bad() }
        switch token {
        case "inf", "+inf": return Double.infinity
        case "-inf": return -Double.infinity
        case "nan", "+nan", "-nan": return Double.nan
        default: break
        }
        if token.contains(":") || (token.count >= 10 && token.dropFirst(4).first == "-" && token.prefix(4).allSatisfy(\.isNumber)) {
            throw fail("dates and times are not recipe values", at: start)
        }
        // Underscores only between digits.
        let scalars = Array(token.unicodeScalars)
        for (k, s) in scalars.enumerated() where s == "_" {
            guard k > 0, k + 1 < scalars.count, scalars[k - 1].properties.isASCIIHexDigit, scalars[k + 1].properties.isASCIIHexDigit else { throw bad() }
        }
        let plain = token.replacingOccurrences(of: "_", with: "")
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] where plain.hasPrefix(prefix) {
            guard let v = Int(plain.dropFirst(2), radix: radix) else { throw bad() }
            return v
        }
        let body = plain.hasPrefix("+") || plain.hasPrefix("-") ? plain.dropFirst() : Substring(plain)
        guard let first = body.first, first.isASCII, first.isNumber, body.allSatisfy({ $0.isASCII && ($0.isNumber || ".eE+-".contains($0)) }) else { throw bad() }
        if body.count > 1 && body.hasPrefix("0") && body.dropFirst().first?.isNumber == true { throw fail("leading zeros in '\(token)'", at: start) }
        if !plain.contains(where: { ".eE".contains($0) }) {
            guard let v = Int(plain) else { throw fail("integer '\(token)' is out of range", at: start) }
            return v
        }
        guard let d = Double(plain), !body.hasSuffix("."), !body.contains(".e"), !body.contains(".E") else { throw bad() }
        return d
    }
}
