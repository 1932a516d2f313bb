import Foundation

struct RenderContext {
    var scopes: [[String: JinjaValue]]
    let budget = RenderBudget()
    enum Flow: Error { case breakLoop, continueLoop }

    func lookup(_ name: String) -> JinjaValue {
        for s in scopes.reversed() { if let v = s[name] { return v } }
        return .undefined
    }

    mutating func assign(_ name: String, _ value: JinjaValue) { scopes[scopes.count - 1][name] = value }

    mutating func render(_ nodes: [Node], into out: inout String) throws {
        for node in nodes {
            try budget.step()
            switch node {
            case .text(let t): out += t; try RenderBudget.string(out.utf8.count)
            case .output(let e): out += try evaluate(e).text; try RenderBudget.string(out.utf8.count)
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
                    try budget.step()  // an empty body costs a step too
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
                    try RenderBudget.stored(v)
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
        try budget.step()
        switch e {
        case .literal(let v): return v
        case .name(let n): return lookup(n)
        case .list(let items):
            let values = try items.map(evaluate)
            try RenderBudget.contents(values)
            return .list(values)
        case .dict(let pairs):
            let entries = try pairs.map { (try evaluate($0.0).text, try evaluate($0.1)) }
            try RenderBudget.contents(entries.map(\.1))
            return .dict(entries)
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
            case .int(let i):
                let (negated, overflow) = 0.subtractingReportingOverflow(i)
                guard !overflow else { throw ChatTemplateError("-(\(i)) does not fit in 64 bits") }
                return .int(negated)
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
        case "~":
            let (x, y) = (a.text, b.text)
            try RenderBudget.string(x.utf8.count + y.utf8.count)
            return .string(x + y)
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
            case "+":
                try RenderBudget.string(x.utf8.count + y.utf8.count)
                return .string(x + y)
            case "<": return .bool(x < y)
            case ">": return .bool(x > y)
            case "<=": return .bool(x <= y)
            case ">=": return .bool(x >= y)
            default: break
            }
        case (.list(let x), .list(let y)) where op == "+":
            try RenderBudget.elements(x.count + y.count)
            return .list(x + y)
        case (.int(let x), .int(let y)):
            func exact(_ r: (partialValue: Int, overflow: Bool)) throws -> JinjaValue {
                guard !r.overflow else { throw ChatTemplateError("\(x) \(op) \(y) does not fit in 64 bits") }
                return .int(r.partialValue)
            }
            switch op {
            case "+": return try exact(x.addingReportingOverflow(y))
            case "-": return try exact(x.subtractingReportingOverflow(y))
            case "*": return try exact(x.multipliedReportingOverflow(by: y))
            case "/": guard y != 0 else { break }; return .double(Double(x) / Double(y))
            case "//", "%":
                guard y != 0 else { break }
                // Python's floor division and modulo (the remainder takes the divisor's sign).
                if y == -1 { return op == "%" ? .int(0) : try exact(0.subtractingReportingOverflow(x)) }
                var q = x / y, r = x % y
                if r != 0 && (r < 0) != (y < 0) { q -= 1; r += y }
                return .int(op == "%" ? r : q)
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
            if op == "*", case .string(let s) = a, case .int(let n) = b {
                let (bytes, overflow) = s.utf8.count.multipliedReportingOverflow(by: max(0, n))
                try RenderBudget.string(overflow ? Int.max : bytes)
                return .string(String(repeating: s, count: max(0, n)))
            }
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
            guard lo < hi else { return .list([]) }
            let (count, overflow) = hi.subtractingReportingOverflow(lo)
            try RenderBudget.elements(overflow ? Int.max : count)
            return .list((lo..<hi).map { .int($0) })
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
            return .string(try Self.replaced(s, args[0].text, args[1].text))
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

    /// `s` with every `target` replaced by `replacement`, refused when the result would pass the string limit.
    static func replaced(_ s: String, _ target: String, _ replacement: String) throws -> String {
        guard !target.isEmpty else { return s }
        let occurrences = s.components(separatedBy: target).count - 1
        let (grown, overflow) = occurrences.multipliedReportingOverflow(by: max(0, replacement.utf8.count - target.utf8.count))
        try RenderBudget.string(overflow ? Int.max : s.utf8.count + grown)
        return s.replacingOccurrences(of: target, with: replacement)
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
            if case .double(let d) = v {
                guard let i = Int(exactly: d.rounded(.towardZero)) else { throw ChatTemplateError("int of \(d) does not fit in 64 bits") }
                return .int(i)
            }
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
            let texts = l.map(\.text), separator = args.first?.text ?? ""
            try RenderBudget.string(texts.reduce(0) { $0 + $1.utf8.count } + separator.utf8.count * max(0, texts.count - 1))
            return .string(texts.joined(separator: separator))
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
            if case .int(let i)? = (kwargs.first { $0.0 == "indent" }?.1 ?? args.first) {
                guard (0...16).contains(i) else { throw ChatTemplateError("tojson(indent=\(i)): indent must be within 0...16") }
                indent = i
            }
            let json = v.json(indent: indent)
            try RenderBudget.string(json.utf8.count)
            return .string(json)
        case "replace":
            guard args.count >= 2 else { throw ChatTemplateError("replace takes two arguments") }
            return .string(try Self.replaced(v.text, args[0].text, args[1].text))
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
