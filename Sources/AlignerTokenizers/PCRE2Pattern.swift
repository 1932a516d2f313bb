import CPCRE2
import Foundation

/// A regular expression compiled by PCRE2 (Debian's `libpcre2-8`): UTF-8 subjects, Unicode properties (`\p{L}`,
/// `\p{N}`), `(?i:...)`, look-ahead, compiled to machine code by PCRE2's JIT when available. Hugging Face tokenizers
/// write their `Split` and `Replace` patterns for Oniguruma; PCRE2 reads the same syntax for the patterns these files
/// use. Matching is thread-safe (each call has its own match data).
public final class PCRE2Pattern: @unchecked Sendable, Equatable, CustomStringConvertible {
    /// The pattern as written.
    public let source: String
    /// Whether `source` is matched literally (a Hugging Face `{"String": ...}` pattern) rather than as a regex.
    public let isLiteral: Bool
    private let code: OpaquePointer
    /// Whether the JIT compiled the pattern (matching falls back to the interpreter otherwise).
    public let usesJIT: Bool

    /// Compiles `source`; throws `TokenizerError.invalid` with PCRE2's message and the offset of the error.
    public init(_ source: String, literal: Bool = false) throws {
        self.source = source
        isLiteral = literal
        var errorCode: Int32 = 0
        var errorOffset = 0
        let options = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP)
        let compiled = source.utf8CString.withUnsafeBufferPointer { p in
            p.baseAddress!.withMemoryRebound(to: UInt8.self, capacity: p.count) {
                pcre2_compile_8($0, p.count - 1, options, &errorCode, &errorOffset, nil)
            }
        }
        guard let compiled else {
            var buffer = [UInt8](repeating: 0, count: 256)
            let n = pcre2_get_error_message_8(errorCode, &buffer, buffer.count)
            let message = n > 0 ? String(decoding: buffer.prefix(Int(n)), as: UTF8.self) : "error \(errorCode)"
            throw TokenizerError.invalid("regular expression \(String(reflecting: source)) does not compile at offset \(errorOffset): \(message)")
        }
        code = compiled
        usesJIT = pcre2_jit_compile_8(compiled, PCRE2_JIT_COMPLETE) == 0
    }

    deinit { pcre2_code_free_8(code) }

    public static func == (a: PCRE2Pattern, b: PCRE2Pattern) -> Bool { a.source == b.source && a.isLiteral == b.isLiteral }

    public var description: String { isLiteral ? "literal \(String(reflecting: source))" : "regex \(String(reflecting: source))" }

    /// Byte ranges (in the UTF-8 of `text`) of the non-overlapping matches, left to right, as Oniguruma's `find_iter`
    /// gives them: after an empty match the search resumes one character further.
    public func matches(in text: String) -> [Range<Int>] {
        var text = text
        return text.withUTF8 { utf8 in matches(utf8) }
    }

    func matches(_ utf8: UnsafeBufferPointer<UInt8>) -> [Range<Int>] {
        // An empty buffer may have no base address; PCRE2 needs a valid pointer even for length 0.
        guard let subject = utf8.baseAddress, !utf8.isEmpty else { return emptySubjectMatches() }
        guard let data = pcre2_match_data_create_from_pattern_8(code, nil) else { return [] }
        defer { pcre2_match_data_free_8(data) }
        var out: [Range<Int>] = []
        let length = utf8.count
        var start = 0
        while start <= length {
            var rc = pcre2_match_8(code, subject, length, start, 0, data, nil)
            if rc < 0 && rc != PCRE2_ERROR_NOMATCH && usesJIT {
                // JIT stack or other JIT limits: the interpreter has its own (heap) limits.
                rc = pcre2_match_8(code, subject, length, start, PCRE2_NO_JIT, data, nil)
            }
            if rc < 0 { break }
            let ovector = pcre2_get_ovector_pointer_8(data)!
            let (s, e) = (Int(ovector[0]), Int(ovector[1]))
            out.append(s..<e)
            if e > s {
                start = e
            } else {
                // Empty match: the next search starts one character (UTF-8 sequence) further.
                guard e < length else { break }
                var next = e + 1
                while next < length && utf8[next] & 0xC0 == 0x80 { next += 1 }
                start = next
            }
        }
        return out
    }

    /// Matches in the empty text (an empty match, when the pattern allows one).
    private func emptySubjectMatches() -> [Range<Int>] {
        var byte: UInt8 = 0
        guard let data = pcre2_match_data_create_from_pattern_8(code, nil) else { return [] }
        defer { pcre2_match_data_free_8(data) }
        return pcre2_match_8(code, &byte, 0, 0, 0, data, nil) >= 0 ? [0..<0] : []
    }
}
