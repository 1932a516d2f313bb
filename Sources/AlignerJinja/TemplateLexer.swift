import Foundation

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
