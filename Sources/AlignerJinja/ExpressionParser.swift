import Foundation

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
                    let literal = String(String.UnicodeScalarView(s[i..<j]))
                    guard let value = Double(literal.replacingOccurrences(of: "_", with: "")), value.isFinite else {
                        throw ChatTemplateError("number \(literal) cannot be read")
                    }
                    out.append(.double(value))
                } else {
                    let literal = String(String.UnicodeScalarView(s[i..<j]))
                    guard let value = Int(literal.replacingOccurrences(of: "_", with: "")) else {
                        throw ChatTemplateError("integer \(literal.prefix(40)) does not fit in 64 bits")
                    }
                    out.append(.int(value))
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
    /// Nesting of the expression being parsed (parentheses, unary operators, conditional expressions), bounded by
    /// `ChatTemplateLimits.nesting` so that neither parsing nor evaluation recurses without bound.
    var depth = 0

    mutating func nest() throws {
        depth += 1
        guard depth <= ChatTemplateLimits.nesting else {
            throw ChatTemplateError("expression nests deeper than \(ChatTemplateLimits.nesting) levels in '\(source.prefix(80))'")
        }
    }

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
        try nest()
        defer { depth -= 1 }
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
        if acceptName("not") {
            try nest()
            defer { depth -= 1 }
            return .unary("not", try parseNot())
        }
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
        if accept("-") || accept("+") {
            let negate = tokens[i - 1] == .op("-")
            try nest()
            defer { depth -= 1 }
            return negate ? .unary("-", try parseUnary()) : try parseUnary()
        }
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
