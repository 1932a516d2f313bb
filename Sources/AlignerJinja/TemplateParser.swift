import Foundation

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
    /// Nesting of `if`, `for` and `set` blocks, bounded by `ChatTemplateLimits.nesting`.
    var depth = 0

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
        depth += 1
        defer { depth -= 1 }
        guard depth <= ChatTemplateLimits.nesting else {
            throw ChatTemplateError("blocks nest deeper than \(ChatTemplateLimits.nesting) levels")
        }
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
