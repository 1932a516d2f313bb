import Foundation

/// Bounds on parsing and rendering a chat template. A template is code that arrives with a downloaded model, so it is
/// hostile input: whatever it holds, parsing and rendering end in a value or a `ChatTemplateError`, never a trap, a
/// stack overflow, a hang or an exhausted memory.
public enum ChatTemplateLimits {
    /// Nesting of expressions (parentheses, unary operators) and of blocks (`if`, `for`, `set`).
    public static let nesting = 64
    /// Loop iterations and evaluated expressions in one rendering.
    public static let steps = 2_000_000
    /// Bytes of the output, and of any string value.
    public static let bytes = 16 << 20
    /// Elements of any list or dict value (and of a `range`).
    public static let elements = 1 << 20
    /// Nesting depth of list and dict values.
    public static let valueDepth = 64
    /// Containers visited when a new list or dict value's depth is checked.
    static let depthVisits = 100_000
}

/// What one rendering has spent of `ChatTemplateLimits.steps`.
final class RenderBudget {
    private var steps = 0

    func step() throws {
        steps += 1
        guard steps <= ChatTemplateLimits.steps else {
            throw ChatTemplateError("rendering takes more than \(ChatTemplateLimits.steps) steps (a loop that does not end?)")
        }
    }

    /// A string value, refused beyond `ChatTemplateLimits.bytes`.
    static func string(_ byteCount: Int) throws {
        guard byteCount <= ChatTemplateLimits.bytes else {
            throw ChatTemplateError("a string of more than \(ChatTemplateLimits.bytes) bytes")
        }
    }

    /// A list or dict of `count` elements, refused beyond `ChatTemplateLimits.elements`.
    static func elements(_ count: Int) throws {
        guard count <= ChatTemplateLimits.elements else {
            throw ChatTemplateError("a list of more than \(ChatTemplateLimits.elements) elements")
        }
    }

    /// The elements of a new list or dict value: each must nest less than `ChatTemplateLimits.valueDepth` deep and
    /// hold no namespace inside a list or dict (a namespace stored in itself would make a cycle).
    static func contents(_ values: [JinjaValue]) throws {
        try elements(values.count)
        var visits = 0
        for v in values { try check(v, depth: 1, visits: &visits) }
    }

    /// A value stored in a namespace attribute: no namespace inside it (no cycles) and bounded depth.
    static func stored(_ value: JinjaValue) throws {
        if case .namespace = value { throw ChatTemplateError("a namespace cannot be stored in a namespace") }
        var visits = 0
        try check(value, depth: 0, visits: &visits)
    }

    private static func check(_ v: JinjaValue, depth: Int, visits: inout Int) throws {
        switch v {
        case .list(let l):
            try enter(depth, &visits)
            for x in l { try check(x, depth: depth + 1, visits: &visits) }
        case .dict(let d):
            try enter(depth, &visits)
            for x in d { try check(x.1, depth: depth + 1, visits: &visits) }
        case .namespace where depth > 0:
            throw ChatTemplateError("a namespace cannot be stored in a list, a dict or a namespace")
        default: return
        }
    }

    private static func enter(_ depth: Int, _ visits: inout Int) throws {
        visits += 1
        guard depth < ChatTemplateLimits.valueDepth, visits <= ChatTemplateLimits.depthVisits else {
            throw ChatTemplateError("a value nests lists and dicts deeper than \(ChatTemplateLimits.valueDepth) levels, or is too large to check")
        }
    }
}
