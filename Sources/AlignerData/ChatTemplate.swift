import Foundation

/// A chat template that cannot be parsed or rendered (a construct outside the supported Jinja subset, a template's
/// own `raise_exception`, a type error).
public struct ChatTemplateError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "chat template: \(message)" }
}

/// A Hugging Face chat template (Jinja), rendered as transformers renders it (`trim_blocks`, `lstrip_blocks`, loop
/// controls) for the subset of Jinja that model chat templates use: `{{ }}` output, `{% if/elif/else %}`,
/// `{% for x in ... %}` with `loop.*` and `break`/`continue`, `{% set %}` (also `namespace` attributes), whitespace
/// control (`{%-`, `-%}`), expressions with `and/or/not`, comparisons, `in`, `is defined/none/string/...`, `+ - * /
/// // % ~`, conditional expressions, subscripts and slices, string and dict methods (`strip`, `startswith`, `get`,
/// `items`, ...), filters (`trim`, `length`, `tojson`, `upper`, `lower`, `default`, `join`, ...), and the functions
/// `raise_exception`, `range`, `namespace` and `strftime_now`. Anything else is refused with a `ChatTemplateError`
/// that names it, when the template is parsed.
public struct ChatTemplate: Sendable {
    public let source: String
    let nodes: [Node]

    /// Parses `source`; throws `ChatTemplateError` for syntax outside the supported subset.
    public init(_ source: String) throws {
        self.source = source
        var parser = TemplateParser(tokens: try TemplateLexer.tokens(source))
        nodes = try parser.parseBlock(until: [])
    }

    /// Renders `messages` (each a role and content) with the variables transformers passes: `messages`,
    /// `add_generation_prompt`, `bos_token`, `eos_token` and any `extra`.
    public func render(messages: [(role: String, content: String)], addGenerationPrompt: Bool, bosToken: String?, eosToken: String?,
                       extra: [String: JinjaValue] = [:]) throws -> String {
        var scope: [String: JinjaValue] = extra
        scope["messages"] = .list(messages.map { .dict([("role", .string($0.role)), ("content", .string($0.content))]) })
        scope["add_generation_prompt"] = .bool(addGenerationPrompt)
        scope["bos_token"] = bosToken.map(JinjaValue.string) ?? .undefined
        scope["eos_token"] = eosToken.map(JinjaValue.string) ?? .undefined
        var context = RenderContext(scopes: [scope])
        var out = ""
        try context.render(nodes, into: &out)
        return out
    }
}

// MARK: - Values

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

// MARK: - Lexing the template

enum TemplateToken: Equatable {
    case text(String)
    case output(String)
    case statement(String)
}

enum TemplateLexer {
    /// Splits a template into text, `{{ }}` and `{% %}` parts, applying whitespace control, `trim_blocks` (the first
    /// newline after a block tag is removed) and `lstrip_blocks` (spaces and tabs before a block tag on its line are
    /// removed), as transformers configures Jinja.
    static func tokens(_ source: String) throws -> [TemplateToken] {
        var s = Array(source.unicodeScalars)
        // Jinja drops one newline at the very end of a template (keep_trailing_newline is off).
        if s.last == "\n" { s.removeLast() }
        var out: [TemplateToken] = []
        var text = String.UnicodeScalarView()
        var i = 0
        var trimNextLeading = false  // after `-%}` / `-}}`: strip all whitespace before the next text
        var trimNewline = false  // after `%}`: trim_blocks
        func flushText() {
            if !text.isEmpty { out.append(.text(String(text))) }
            text = String.UnicodeScalarView()
        }
        while i < s.count {
            if s[i] == "{", i + 1 < s.count, s[i + 1] == "{" || s[i + 1] == "%" || s[i + 1] == "#" {
                let kind = s[i + 1]
                let close: Unicode.Scalar = kind == "{" ? "}" : (kind == "%" ? "%" : "#")
                var j = i + 2
                let stripBefore = j < s.count && s[j] == "-"
                if stripBefore || (j < s.count && s[j] == "+") { j += 1 }
                // Find the closing delimiter, skipping string literals.
                var k = j
                var quote: Unicode.Scalar?
                while k + 1 < s.count {
                    if let q = quote {
                        if s[k] == "\\" { k += 2; continue }
                        if s[k] == q { quote = nil }
                    } else if kind != "#" && (s[k] == "'" || s[k] == "\"") {
                        quote = s[k]
                    } else if s[k] == close && s[k + 1] == "}" {
                        break
                    }
                    k += 1
                }
                guard k + 1 < s.count else { throw ChatTemplateError("unclosed '{\(kind)' tag") }
                var bodyEnd = k
                let stripAfter = bodyEnd > j && s[bodyEnd - 1] == "-"
                if stripAfter || (bodyEnd > j && s[bodyEnd - 1] == "+") { bodyEnd -= 1 }
                // Whitespace before the tag.
                if stripBefore {
                    while let last = text.last, last.properties.isWhitespace { text.removeLast() }
                } else if kind != "{" {
                    // lstrip_blocks: spaces/tabs between the start of the tag's source line and the tag are removed.
                    var b = i - 1, blanks = 0
                    while b >= 0 && (s[b] == " " || s[b] == "\t") { b -= 1; blanks += 1 }
                    if b < 0 || s[b] == "\n" {
                        for _ in 0..<blanks where text.last == " " || text.last == "\t" { text.removeLast() }
                    }
                }
                flushText()
                let body = String(String.UnicodeScalarView(s[j..<bodyEnd])).trimmingCharacters(in: .whitespacesAndNewlines)
                switch kind {
                case "{": out.append(.output(body))
                case "%": out.append(.statement(body))
                default: break
                }
                i = k + 2
                trimNextLeading = stripAfter
                trimNewline = kind != "{"
                continue
            }
            if trimNextLeading {
                if s[i].properties.isWhitespace { i += 1; continue }
                trimNextLeading = false
            }
            if trimNewline {
                trimNewline = false
                if s[i] == "\n" { i += 1; continue }
            }
            text.append(s[i])
            i += 1
        }
        flushText()
        return out
    }

}

// MARK: - Expressions

indirect enum Expr: @unchecked Sendable {
    case literal(JinjaValue)
    case name(String)
    case list([Expr])
    case dict([(Expr, Expr)])
    case attribute(Expr, String)
    case `subscript`(Expr, Expr)
    case slice(Expr, Expr?, Expr?)
    case call(Expr, [Expr], [(String, Expr)])
    case filter(Expr, String, [Expr], [(String, Expr)])
    case test(Expr, String, Bool, [Expr])
    case unary(String, Expr)
    case binary(String, Expr, Expr)
    case conditional(Expr, Expr, Expr?)
}

enum ExprToken: Equatable {
    case name(String), string(String), int(Int), double(Double), op(String)
}

struct ExprLexer {
    static let operators = ["//", "==", "!=", "<=", ">=", "(", ")", "[", "]", "{", "}", ",", ":", ".", "|", "+", "-", "*", "/", "%",
                            "~", "<", ">", "="]

    static func tokens(_ source: String) throws -> [ExprToken] {
        let s = Array(source.unicodeScalars)
        var out: [ExprToken] = []
        var i = 0
        while i < s.count {
            let c = s[i]
            if c.properties.isWhitespace { i += 1; continue }
            if c == "'" || c == "\"" {
                var v = String.UnicodeScalarView()
                var j = i + 1
                while j < s.count && s[j] != c {
                    if s[j] == "\\" && j + 1 < s.count {
                        j += 1
                        switch s[j] {
                        case "n": v.append("\n")
                        case "t": v.append("\t")
                        case "r": v.append("\r")
                        default: v.append(s[j])
                        }
                    } else {
                        v.append(s[j])
                    }
                    j += 1
                }
                guard j < s.count else { throw ChatTemplateError("unterminated string in '\(source)'") }
                out.append(.string(String(v)))
                i = j + 1
                continue
            }
            if c.properties.numericType != nil && c.isASCII {
                var j = i
                while j < s.count && (s[j].isASCII && s[j].properties.numericType != nil || s[j] == "_") { j += 1 }
                if j + 1 < s.count && s[j] == "." && s[j + 1].isASCII && s[j + 1].properties.numericType != nil {
                    j += 1
                    while j < s.count && s[j].isASCII && s[j].properties.numericType != nil { j += 1 }
                    out.append(.double(Double(String(String.UnicodeScalarView(s[i..<j])))!))
                } else {
                    out.append(.int(Int(String(String.UnicodeScalarView(s[i..<j])).replacingOccurrences(of: "_", with: ""))!))
                }
                i = j
                continue
            }
            if c.properties.isAlphabetic || c == "_" {
                var j = i
                while j < s.count && (s[j].properties.isAlphabetic || s[j] == "_" || (s[j].isASCII && s[j].properties.numericType != nil)) { j += 1 }
                out.append(.name(String(String.UnicodeScalarView(s[i..<j]))))
                i = j
                continue
            }
            guard let op = operators.first(where: { op in
                let u = Array(op.unicodeScalars)
                return i + u.count <= s.count && Array(s[i..<(i + u.count)]) == u
            }) else { throw ChatTemplateError("unexpected character '\(c)' in '\(source)'") }
            out.append(.op(op))
            i += op.unicodeScalars.count
        }
        return out
    }
}

struct ExprParser {
    var tokens: [ExprToken]
    var i = 0
    let source: String

    init(_ source: String) throws {
        self.source = source
        tokens = try ExprLexer.tokens(source)
    }

    var atEnd: Bool { i >= tokens.count }
    func peek(_ k: Int = 0) -> ExprToken? { i + k < tokens.count ? tokens[i + k] : nil }
    mutating func accept(_ op: String) -> Bool {
        if peek() == .op(op) { i += 1; return true }
        return false
    }
    mutating func acceptName(_ n: String) -> Bool {
        if peek() == .name(n) { i += 1; return true }
        return false
    }
    mutating func expect(_ op: String) throws {
        guard accept(op) else { throw ChatTemplateError("expected '\(op)' in '\(source)'") }
    }
    mutating func name() throws -> String {
        guard case .name(let n) = peek() else { throw ChatTemplateError("expected a name in '\(source)'") }
        i += 1
        return n
    }

    mutating func parseExpression() throws -> Expr {
        let value = try parseOr()
        if acceptName("if") {
            let condition = try parseOr()
            let otherwise = acceptName("else") ? try parseExpression() : nil
            return .conditional(condition, value, otherwise)
        }
        return value
    }
    /// One left-associative level: `next (op next)*` for the operators `ops` (symbols, or keywords such as `or`).
    mutating func parseLeft(_ ops: Set<String>, _ next: (inout ExprParser) throws -> Expr) throws -> Expr {
        var e = try next(&self)
        while let t = peek() {
            let op: String
            switch t {
            case .op(let o) where ops.contains(o): op = o
            case .name(let n) where ops.contains(n): op = n
            default: return e
            }
            i += 1
            e = .binary(op, e, try next(&self))
        }
        return e
    }
    mutating func parseOr() throws -> Expr { try parseLeft(["or"]) { try $0.parseAnd() } }
    mutating func parseAnd() throws -> Expr { try parseLeft(["and"]) { try $0.parseNot() } }
    mutating func parseNot() throws -> Expr {
        if acceptName("not") { return .unary("not", try parseNot()) }
        return try parseCompare()
    }
    mutating func parseCompare() throws -> Expr {
        var e = try parseAdd()
        while true {
            if case .op(let op) = peek(), ["==", "!=", "<", ">", "<=", ">="].contains(op) {
                i += 1
                e = .binary(op, e, try parseAdd())
            } else if acceptName("in") {
                e = .binary("in", e, try parseAdd())
            } else if peek() == .name("not") && peek(1) == .name("in") {
                i += 2
                e = .unary("not", .binary("in", e, try parseAdd()))
            } else if acceptName("is") {
                let negated = acceptName("not")
                let test = try name()
                var args: [Expr] = []
                if accept("(") {
                    while !accept(")") { args.append(try parseExpression()); _ = accept(",") }
                } else if case .string = peek() {
                    args.append(try parsePrimary())
                } else if case .int = peek() {
                    args.append(try parsePrimary())
                }
                e = .test(e, test, negated, args)
            } else {
                return e
            }
        }
    }
    mutating func parseAdd() throws -> Expr { try parseLeft(["+", "-"]) { try $0.parseConcat() } }
    mutating func parseConcat() throws -> Expr { try parseLeft(["~"]) { try $0.parseMul() } }
    mutating func parseMul() throws -> Expr { try parseLeft(["*", "/", "//", "%"]) { try $0.parseUnary() } }
    mutating func parseUnary() throws -> Expr {
        if accept("-") { return .unary("-", try parseUnary()) }
        if accept("+") { return try parseUnary() }
        return try parseFilters(try parsePostfix(try parsePrimary()))
    }
    mutating func parseArguments() throws -> ([Expr], [(String, Expr)]) {
        var args: [Expr] = [], kwargs: [(String, Expr)] = []
        while !accept(")") {
            if case .name(let n) = peek(), peek(1) == .op("=") {
                i += 2
                kwargs.append((n, try parseExpression()))
            } else {
                args.append(try parseExpression())
            }
            if !accept(",") { try expect(")"); break }
        }
        return (args, kwargs)
    }
    mutating func parseFilters(_ base: Expr) throws -> Expr {
        var e = base
        while accept("|") {
            let f = try name()
            var args: [Expr] = [], kwargs: [(String, Expr)] = []
            if accept("(") { (args, kwargs) = try parseArguments() }
            e = try parsePostfix(.filter(e, f, args, kwargs))
        }
        return e
    }
    mutating func parsePostfix(_ base: Expr) throws -> Expr {
        var e = base
        while true {
            if accept(".") {
                e = .attribute(e, try name())
            } else if accept("[") {
                var start: Expr?, stop: Expr?
                if !accept(":") {
                    start = try parseExpression()
                    if accept("]") { e = .subscript(e, start!); continue }
                    try expect(":")
                }
                if peek() != .op("]") && peek() != .op(":") { stop = try parseExpression() }
                if accept(":") { throw ChatTemplateError("slice steps are not supported in '\(source)'") }
                try expect("]")
                e = .slice(e, start, stop)
            } else if accept("(") {
                let (args, kwargs) = try parseArguments()
                e = .call(e, args, kwargs)
            } else {
                return e
            }
        }
    }
    mutating func parsePrimary() throws -> Expr {
        guard let t = peek() else { throw ChatTemplateError("expression ends early: '\(source)'") }
        i += 1
        switch t {
        case .string(var s):
            while case .string(let more) = peek() { s += more; i += 1 }  // adjacent literals concatenate
            return .literal(.string(s))
        case .int(let v): return .literal(.int(v))
        case .double(let v): return .literal(.double(v))
        case .name(let n):
            switch n {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(n)
            }
        case .op("("):
            let e = try parseExpression()
            if accept(",") {  // a tuple: treated as a list
                var items = [e]
                while !accept(")") { items.append(try parseExpression()); _ = accept(",") }
                return .list(items)
            }
            try expect(")")
            return e
        case .op("["):
            var items: [Expr] = []
            while !accept("]") { items.append(try parseExpression()); if !accept(",") { try expect("]"); break } }
            return .list(items)
        case .op("{"):
            var pairs: [(Expr, Expr)] = []
            while !accept("}") {
                let k = try parseExpression()
                try expect(":")
                pairs.append((k, try parseExpression()))
                if !accept(",") { try expect("}"); break }
            }
            return .dict(pairs)
        case .op(let op): throw ChatTemplateError("unexpected '\(op)' in '\(source)'")
        }
    }
}

// MARK: - Statements

indirect enum Node: @unchecked Sendable {
    case text(String)
    case output(Expr)
    case conditional([(Expr, [Node])], [Node]?)
    case loop(targets: [String], iterable: Expr, filter: Expr?, body: [Node], otherwise: [Node]?)
    case set(target: String, attribute: String?, value: Expr)
    case setBlock(target: String, body: [Node])
    case breakLoop, continueLoop
}

struct TemplateParser {
    let tokens: [TemplateToken]
    var i = 0

    init(tokens: [TemplateToken]) { self.tokens = tokens }

    /// Nodes up to one of the statements named in `until` (returned unconsumed: the caller reads it).
    mutating func parseBlock(until: Set<String>) throws -> [Node] {
        var nodes: [Node] = []
        while i < tokens.count {
            switch tokens[i] {
            case .text(let t):
                nodes.append(.text(t))
                i += 1
            case .output(let source):
                var p = try ExprParser(source)
                let e = try p.parseExpression()
                guard p.atEnd else { throw ChatTemplateError("cannot parse '{{ \(source) }}'") }
                nodes.append(.output(e))
                i += 1
            case .statement(let source):
                let keyword = String(source.prefix { !$0.isWhitespace })
                if until.contains(keyword) { return nodes }
                i += 1
                nodes.append(try parseStatement(keyword, String(source.dropFirst(keyword.count))))
            }
        }
        if !until.isEmpty { throw ChatTemplateError("missing {% \(until.sorted().joined(separator: " / ")) %}") }
        return nodes
    }

    mutating func nextStatement() -> (String, String)? {
        guard i < tokens.count, case .statement(let source) = tokens[i] else { return nil }
        let k = String(source.prefix { !$0.isWhitespace })
        return (k, String(source.dropFirst(k.count)))
    }

    mutating func parseStatement(_ keyword: String, _ rest: String) throws -> Node {
        switch keyword {
        case "if":
            var branches: [(Expr, [Node])] = []
            var condition = try expression(rest)
            while true {
                let body = try parseBlock(until: ["elif", "else", "endif"])
                branches.append((condition, body))
                guard let (k, r) = nextStatement() else { throw ChatTemplateError("missing {% endif %}") }
                i += 1
                switch k {
                case "elif": condition = try expression(r)
                case "else":
                    let otherwise = try parseBlock(until: ["endif"])
                    i += 1
                    return .conditional(branches, otherwise)
                default: return .conditional(branches, nil)
                }
            }
        case "for":
            guard let inRange = rest.range(of: " in ") else { throw ChatTemplateError("cannot parse '{% for\(rest) %}'") }
            let targets = rest[..<inRange.lowerBound].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            var p = try ExprParser(String(rest[inRange.upperBound...]))
            let iterable = try p.parseOr()
            var filter: Expr?
            if p.acceptName("if") { filter = try p.parseExpression() }
            if p.acceptName("recursive") { throw ChatTemplateError("recursive loops are not supported") }
            guard p.atEnd else { throw ChatTemplateError("cannot parse '{% for\(rest) %}'") }
            let body = try parseBlock(until: ["else", "endfor"])
            var otherwise: [Node]?
            if nextStatement()?.0 == "else" {
                i += 1
                otherwise = try parseBlock(until: ["endfor"])
            }
            i += 1
            return .loop(targets: targets, iterable: iterable, filter: filter, body: body, otherwise: otherwise)
        case "set":
            guard let eq = rest.firstIndex(of: "=") else {
                let target = rest.trimmingCharacters(in: .whitespaces)
                let body = try parseBlock(until: ["endset"])
                i += 1
                return .setBlock(target: target, body: body)
            }
            let target = rest[..<eq].trimmingCharacters(in: .whitespaces)
            let value = try expression(String(rest[rest.index(after: eq)...]))
            let parts = target.split(separator: ".").map(String.init)
            guard parts.count <= 2, !parts.isEmpty, !target.contains(",") else { throw ChatTemplateError("cannot assign to '\(target)'") }
            return .set(target: parts[0], attribute: parts.count == 2 ? parts[1] : nil, value: value)
        case "break": return .breakLoop
        case "continue": return .continueLoop
        case "generation", "endgeneration":
            // transformers' assistant-mask tags: no output of their own.
            return .text("")
        default:
            throw ChatTemplateError("'{% \(keyword) %}' is not supported (if, for, set, break, continue)")
        }
    }

    func expression(_ source: String) throws -> Expr {
        var p = try ExprParser(source)
        let e = try p.parseExpression()
        guard p.atEnd else { throw ChatTemplateError("cannot parse '\(source.trimmingCharacters(in: .whitespaces))'") }
        return e
    }
}

// MARK: - Rendering

struct RenderContext {
    var scopes: [[String: JinjaValue]]
    enum Flow: Error { case breakLoop, continueLoop }

    func lookup(_ name: String) -> JinjaValue {
        for s in scopes.reversed() { if let v = s[name] { return v } }
        return .undefined
    }

    mutating func assign(_ name: String, _ value: JinjaValue) { scopes[scopes.count - 1][name] = value }

    mutating func render(_ nodes: [Node], into out: inout String) throws {
        for node in nodes {
            switch node {
            case .text(let t): out += t
            case .output(let e): out += try evaluate(e).text
            case .conditional(let branches, let otherwise):
                var taken = false
                for (condition, body) in branches where try evaluate(condition).truthy {
                    try render(body, into: &out)
                    taken = true
                    break
                }
                if !taken, let otherwise { try render(otherwise, into: &out) }
            case .loop(let targets, let iterable, let filter, let body, let otherwise):
                var items: [JinjaValue]
                switch try evaluate(iterable) {
                case .list(let l): items = l
                case .dict(let d): items = d.map { .string($0.0) }
                case .string(let s): items = s.map { .string(String($0)) }
                case .undefined, .none: items = []
                default: throw ChatTemplateError("cannot loop over a non-sequence")
                }
                func bind(_ item: JinjaValue, into scope: inout [String: JinjaValue]) throws {
                    if targets.count == 1 { scope[targets[0]] = item; return }
                    guard case .list(let parts) = item, parts.count == targets.count else {
                        throw ChatTemplateError("cannot unpack into \(targets.joined(separator: ", "))")
                    }
                    for (t, v) in zip(targets, parts) { scope[t] = v }
                }
                if let filter {
                    items = try items.filter { item in
                        var scope: [String: JinjaValue] = [:]
                        try bind(item, into: &scope)
                        scopes.append(scope)
                        defer { scopes.removeLast() }
                        return try evaluate(filter).truthy
                    }
                }
                if items.isEmpty, let otherwise { try render(otherwise, into: &out); continue }
                for (index, item) in items.enumerated() {
                    var scope: [String: JinjaValue] = [:]
                    try bind(item, into: &scope)
                    scope["loop"] = .dict([
                        ("index0", .int(index)), ("index", .int(index + 1)), ("first", .bool(index == 0)),
                        ("last", .bool(index == items.count - 1)), ("length", .int(items.count)),
                        ("revindex", .int(items.count - index)), ("revindex0", .int(items.count - index - 1)),
                        ("previtem", index > 0 ? items[index - 1] : .undefined),
                        ("nextitem", index + 1 < items.count ? items[index + 1] : .undefined),
                    ])
                    scopes.append(scope)
                    defer { scopes.removeLast() }
                    do { try render(body, into: &out) } catch Flow.breakLoop { break } catch Flow.continueLoop { continue }
                }
            case .set(let target, let attribute, let value):
                let v = try evaluate(value)
                if let attribute {
                    guard case .namespace(let ns) = lookup(target) else { throw ChatTemplateError("'\(target)' is not a namespace") }
                    ns[attribute] = v
                } else {
                    assign(target, v)
                }
            case .setBlock(let target, let body):
                var captured = ""
                try render(body, into: &captured)
                assign(target, .string(captured))
            case .breakLoop: throw Flow.breakLoop
            case .continueLoop: throw Flow.continueLoop
            }
        }
    }

    func evaluate(_ e: Expr) throws -> JinjaValue {
        switch e {
        case .literal(let v): return v
        case .name(let n): return lookup(n)
        case .list(let items): return .list(try items.map(evaluate))
        case .dict(let pairs): return .dict(try pairs.map { (try evaluate($0.0).text, try evaluate($0.1)) })
        case .attribute(let base, let name): return member(try evaluate(base), name)
        case .subscript(let base, let index): return try item(try evaluate(base), try evaluate(index))
        case .slice(let base, let start, let stop):
            let v = try evaluate(base)
            let a = try start.map(evaluate), b = try stop.map(evaluate)
            func bounds(_ n: Int) -> Range<Int> {
                func clamp(_ x: JinjaValue?, _ d: Int) -> Int {
                    guard case .int(let i) = x else { return d }
                    return max(0, min(n, i < 0 ? n + i : i))
                }
                let lo = clamp(a, 0), hi = clamp(b, n)
                return lo..<max(lo, hi)
            }
            switch v {
            case .list(let l): return .list(Array(l[bounds(l.count)]))
            case .string(let s):
                let chars = Array(s)
                return .string(String(chars[bounds(chars.count)]))
            default: throw ChatTemplateError("cannot slice this value")
            }
        case .call(let callee, let args, let kwargs):
            return try call(callee, try args.map(evaluate), try kwargs.map { ($0.0, try evaluate($0.1)) })
        case .filter(let base, let name, let args, let kwargs):
            return try applyFilter(name, try evaluate(base), try args.map(evaluate), try kwargs.map { ($0.0, try evaluate($0.1)) })
        case .test(let base, let name, let negated, let args):
            let result = try test(name, try evaluate(base), try args.map(evaluate))
            return .bool(negated ? !result : result)
        case .unary(let op, let x):
            let v = try evaluate(x)
            if op == "not" { return .bool(!v.truthy) }
            switch v {
            case .int(let i): return .int(-i)
            case .double(let d): return .double(-d)
            default: throw ChatTemplateError("cannot negate this value")
            }
        case .binary(let op, let l, let r):
            if op == "and" { let a = try evaluate(l); return a.truthy ? try evaluate(r) : a }
            if op == "or" { let a = try evaluate(l); return a.truthy ? a : try evaluate(r) }
            return try binary(op, try evaluate(l), try evaluate(r))
        case .conditional(let condition, let value, let otherwise):
            return try evaluate(condition).truthy ? try evaluate(value) : try otherwise.map(evaluate) ?? .undefined
        }
    }

    func member(_ v: JinjaValue, _ name: String) -> JinjaValue {
        switch v {
        case .dict(let d): return d.first { $0.0 == name }?.1 ?? .undefined
        case .namespace(let ns): return ns[name]
        default: return .undefined
        }
    }

    func item(_ v: JinjaValue, _ index: JinjaValue) throws -> JinjaValue {
        switch (v, index) {
        case (.list(let l), .int(let i)):
            let k = i < 0 ? l.count + i : i
            return l.indices.contains(k) ? l[k] : .undefined
        case (.string(let s), .int(let i)):
            let chars = Array(s)
            let k = i < 0 ? chars.count + i : i
            return chars.indices.contains(k) ? .string(String(chars[k])) : .undefined
        case (.dict, .string(let key)), (.namespace, .string(let key)): return member(v, key)
        case (.undefined, _): return .undefined
        default: return .undefined
        }
    }

    func binary(_ op: String, _ a: JinjaValue, _ b: JinjaValue) throws -> JinjaValue {
        switch op {
        case "==": return .bool(a == b)
        case "!=": return .bool(a != b)
        case "~": return .string(a.text + b.text)
        case "in":
            switch b {
            case .string(let s): return .bool(s.contains(a.text))
            case .list(let l): return .bool(l.contains(a))
            case .dict(let d): return .bool(d.contains { $0.0 == a.text })
            case .undefined, .none: throw ChatTemplateError("'in' on an undefined value")
            default: return .bool(false)
            }
        default: break
        }
        switch (a, b) {
        case (.string(let x), .string(let y)):
            switch op {
            case "+": return .string(x + y)
            case "<": return .bool(x < y)
            case ">": return .bool(x > y)
            case "<=": return .bool(x <= y)
            case ">=": return .bool(x >= y)
            default: break
            }
        case (.list(let x), .list(let y)) where op == "+": return .list(x + y)
        case (.int(let x), .int(let y)):
            switch op {
            case "+": return .int(x + y)
            case "-": return .int(x - y)
            case "*": return .int(x * y)
            case "/": guard y != 0 else { break }; return .double(Double(x) / Double(y))
            case "//": guard y != 0 else { break }; return .int(Int((Double(x) / Double(y)).rounded(.down)))
            case "%": guard y != 0 else { break }; return .int(((x % y) + y) % y)
            case "<": return .bool(x < y)
            case ">": return .bool(x > y)
            case "<=": return .bool(x <= y)
            case ">=": return .bool(x >= y)
            default: break
            }
        default:
            if let x = a.number, let y = b.number {
                switch op {
                case "+": return .double(x + y)
                case "-": return .double(x - y)
                case "*": return .double(x * y)
                case "/": return .double(x / y)
                case "<": return .bool(x < y)
                case ">": return .bool(x > y)
                case "<=": return .bool(x <= y)
                case ">=": return .bool(x >= y)
                default: break
                }
            }
            if op == "*", case .string(let s) = a, case .int(let n) = b { return .string(String(repeating: s, count: max(0, n))) }
        }
        throw ChatTemplateError("cannot apply '\(op)' to \(a.repr) and \(b.repr)")
    }

    func call(_ callee: Expr, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws -> JinjaValue {
        if case .attribute(let base, let method) = callee {
            return try callMethod(try evaluate(base), method, args)
        }
        guard case .name(let name) = callee else { throw ChatTemplateError("cannot call this expression") }
        switch name {
        case "raise_exception":
            throw ChatTemplateError("the template raised: \(args.first?.text ?? "")")
        case "range":
            let ints = args.compactMap { v -> Int? in if case .int(let i) = v { return i }; return nil }
            guard ints.count == args.count, !ints.isEmpty else { throw ChatTemplateError("range() takes integers") }
            let (lo, hi) = ints.count == 1 ? (0, ints[0]) : (ints[0], ints[1])
            return .list(lo < hi ? (lo..<hi).map { .int($0) } : [])
        case "namespace":
            var values: [(String, JinjaValue)] = []
            if case .dict(let d)? = args.first { values = d }
            return .namespace(NamespaceBox(values + kwargs))
        case "strftime_now":
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            let python = args.first?.text ?? ""
            let map: [Character: String] = ["d": "dd", "b": "MMM", "B": "MMMM", "Y": "yyyy", "m": "MM", "y": "yy", "H": "HH", "M": "mm", "S": "ss", "A": "EEEE", "a": "EEE"]
            var format = "", percent = false
            for ch in python {
                if percent { format += map[ch] ?? String(ch); percent = false } else if ch == "%" { percent = true } else { format += "'\(ch)'" }
            }
            formatter.dateFormat = format
            return .string(formatter.string(from: Date()))
        default:
            throw ChatTemplateError("function '\(name)' is not supported (raise_exception, range, namespace, strftime_now)")
        }
    }

    func callMethod(_ v: JinjaValue, _ method: String, _ args: [JinjaValue]) throws -> JinjaValue {
        switch (v, method) {
        case (.string(let s), "strip"): return .string(pythonStrip(s, args.first?.text, leading: true, trailing: true))
        case (.string(let s), "lstrip"): return .string(pythonStrip(s, args.first?.text, leading: true, trailing: false))
        case (.string(let s), "rstrip"): return .string(pythonStrip(s, args.first?.text, leading: false, trailing: true))
        case (.string(let s), "upper"): return .string(s.uppercased())
        case (.string(let s), "lower"): return .string(s.lowercased())
        case (.string(let s), "title"): return .string(s.capitalized)
        case (.string(let s), "capitalize"): return .string(s.prefix(1).uppercased() + s.dropFirst().lowercased())
        case (.string(let s), "startswith"): return .bool(s.hasPrefix(args.first?.text ?? ""))
        case (.string(let s), "endswith"): return .bool(s.hasSuffix(args.first?.text ?? ""))
        case (.string(let s), "replace"):
            guard args.count >= 2 else { throw ChatTemplateError("replace() takes two arguments") }
            return .string(s.replacingOccurrences(of: args[0].text, with: args[1].text))
        case (.string(let s), "split"):
            if let sep = args.first, case .string(let separator) = sep {
                return .list(s.components(separatedBy: separator).map { .string($0) })
            }
            return .list(s.split(whereSeparator: { $0.isWhitespace }).map { .string(String($0)) })
        case (.dict(let d), "get"): return d.first { $0.0 == args.first?.text }?.1 ?? (args.count > 1 ? args[1] : .none)
        case (.dict(let d), "items"): return .list(d.map { .list([.string($0.0), $0.1]) })
        case (.dict(let d), "keys"): return .list(d.map { .string($0.0) })
        case (.dict(let d), "values"): return .list(d.map(\.1))
        default: throw ChatTemplateError("method '\(method)' is not supported on \(v.repr)")
        }
    }

    func pythonStrip(_ s: String, _ chars: String?, leading: Bool, trailing: Bool) -> String {
        let set = chars.map { Set($0) }
        func strip(_ c: Character) -> Bool { set.map { $0.contains(c) } ?? c.isWhitespace }
        var sub = Substring(s)
        if leading { while let f = sub.first, strip(f) { sub = sub.dropFirst() } }
        if trailing { while let l = sub.last, strip(l) { sub = sub.dropLast() } }
        return String(sub)
    }

    func applyFilter(_ name: String, _ v: JinjaValue, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws -> JinjaValue {
        switch name {
        case "trim": return .string(pythonStrip(v.text, args.first.map(\.text), leading: true, trailing: true))
        case "length", "count":
            switch v {
            case .string(let s): return .int(s.count)
            case .list(let l): return .int(l.count)
            case .dict(let d): return .int(d.count)
            default: throw ChatTemplateError("length of a value without one")
            }
        case "upper": return .string(v.text.uppercased())
        case "lower": return .string(v.text.lowercased())
        case "capitalize": return .string(v.text.prefix(1).uppercased() + v.text.dropFirst().lowercased())
        case "title": return .string(v.text.capitalized)
        case "string": return .string(v.text)
        case "safe": return v  // (escape and e are not implemented: refused below)
        case "int":
            if case .double(let d) = v { return .int(Int(d)) }
            return .int(Int(v.text.trimmingCharacters(in: .whitespaces)) ?? 0)
        case "default", "d":
            let fallback = args.first ?? .string("")
            let boolean = args.count > 1 ? args[1].truthy : (kwargs.first { $0.0 == "boolean" }?.1.truthy ?? false)
            if case .undefined = v { return fallback }
            return boolean && !v.truthy ? fallback : v
        case "first":
            if case .list(let l) = v { return l.first ?? .undefined }
            return v.text.first.map { .string(String($0)) } ?? .undefined
        case "last":
            if case .list(let l) = v { return l.last ?? .undefined }
            return v.text.last.map { .string(String($0)) } ?? .undefined
        case "join":
            guard case .list(let l) = v else { return v }
            return .string(l.map(\.text).joined(separator: args.first?.text ?? ""))
        case "list":
            switch v {
            case .list: return v
            case .string(let s): return .list(s.map { .string(String($0)) })
            case .dict(let d): return .list(d.map { .string($0.0) })
            default: throw ChatTemplateError("list of a value that is not a sequence")
            }
        case "items":
            guard case .dict(let d) = v else { throw ChatTemplateError("items of a value that is not a mapping") }
            return .list(d.map { .list([.string($0.0), $0.1]) })
        case "tojson":
            var indent: Int?
            if case .int(let i)? = (kwargs.first { $0.0 == "indent" }?.1 ?? args.first) { indent = i }
            return .string(v.json(indent: indent))
        case "replace":
            guard args.count >= 2 else { throw ChatTemplateError("replace takes two arguments") }
            return .string(v.text.replacingOccurrences(of: args[0].text, with: args[1].text))
        default:
            throw ChatTemplateError("filter '\(name)' is not supported")
        }
    }

    func test(_ name: String, _ v: JinjaValue, _ args: [JinjaValue]) throws -> Bool {
        switch name {
        case "defined": if case .undefined = v { return false }; return true
        case "undefined": if case .undefined = v { return true }; return false
        case "none": if case .none = v { return true }; return false
        case "string": if case .string = v { return true }; return false
        case "number", "integer", "float":
            switch v {
            case .int: return name != "float"
            case .double: return name != "integer"
            default: return false
            }
        case "boolean": if case .bool = v { return true }; return false
        case "mapping": if case .dict = v { return true }; return false
        case "sequence", "iterable":
            switch v {
            case .list, .string, .dict: return true
            default: return false
            }
        case "true": return v == .bool(true)
        case "false": return v == .bool(false)
        case "even", "odd":
            guard case .int(let i) = v else { throw ChatTemplateError("'\(name)' of a non-integer") }
            return (i % 2 == 0) == (name == "even")
        case "equalto", "eq", "sameas": return v == (args.first ?? .undefined)
        default: throw ChatTemplateError("test '\(name)' is not supported")
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
