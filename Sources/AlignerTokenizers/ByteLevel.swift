/// GPT-2's byte-level alphabet: every byte maps to a printable Unicode character (printable Latin-1 bytes to
/// themselves, the others to U+0100 onwards), so that byte strings become vocabulary strings without spaces or controls.
public enum ByteLevel {
    /// byte → character.
    public static let byteToChar: [Character] = {
        var printable: [Int] = Array(33...126) + Array(161...172) + Array(174...255)
        var chars = [Int](repeating: 0, count: 256)
        for b in printable { chars[b] = b }
        var n = 0
        for b in 0..<256 where !printable.contains(b) {
            chars[b] = 256 + n
            n += 1
        }
        printable.removeAll()
        return chars.map { Character(Unicode.Scalar(UInt32($0))!) }
    }()

    /// byte → the character's Unicode scalar value.
    public static let byteToScalar: [UInt32] = byteToChar.map { $0.unicodeScalars.first!.value }

    /// character scalar value → byte (nil for characters outside the alphabet).
    public static let scalarToByte: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (b, s) in byteToScalar.enumerated() { map[s] = UInt8(b) }
        return map
    }()

    /// The byte-level string of UTF-8 bytes.
    @inline(__always)
    public static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(Unicode.Scalar(byteToScalar[Int(b)])!) }
        return String(s)
    }

    /// The bytes of a byte-level string; characters outside the alphabet are kept as their own UTF-8.
    public static func decode(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        for s in text.unicodeScalars {
            if let b = scalarToByte[s.value] { out.append(b) } else { out += Array(String(s).utf8) }
        }
        return out
    }
}

/// The split GPT-2 applies before BPE (its regular expression
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`), written as a scanner over Unicode
/// scalars: the alternatives are tried in order at each position, as the regular expression engine does.
public enum GPT2Split {
    enum Kind: UInt8 { case letter, number, space, other }

    @inline(__always)
    static func kind(_ s: Unicode.Scalar) -> Kind {
        if s.value < 128 {
            let v = s.value
            if (v >= 65 && v <= 90) || (v >= 97 && v <= 122) { return .letter }
            if v >= 48 && v <= 57 { return .number }
            if v == 32 || (v >= 9 && v <= 13) { return .space }
            return .other
        }
        let p = s.properties
        if p.isWhitespace { return .space }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    /// The pieces of `text`, as ranges of its Unicode scalars.
    public static func split(_ text: String) -> [Substring] {
        let scalars = Array(text.unicodeScalars)
        let kinds = scalars.map(kind)
        let n = scalars.count
        var indices: [String.Index] = []
        indices.reserveCapacity(n + 1)
        var idx = text.unicodeScalars.startIndex
        for _ in 0..<n {
            indices.append(idx)
            idx = text.unicodeScalars.index(after: idx)
        }
        indices.append(text.unicodeScalars.endIndex)
        var pieces: [Substring] = []
        var i = 0
        func take(_ end: Int) { pieces.append(text[indices[i]..<indices[end]]); i = end }
        while i < n {
            let c = scalars[i]
            // 's 't 're 've 'm 'll 'd
            if c == "'" && i + 1 < n {
                let a = scalars[i + 1]
                if a == "s" || a == "t" || a == "m" || a == "d" { take(i + 2); continue }
                if i + 2 < n {
                    let b = scalars[i + 2]
                    if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") { take(i + 3); continue }
                }
            }
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
            var start = i
            if c == " " && i + 1 < n && kinds[i + 1] != .space { start = i + 1 }
            let k = kinds[start]
            if k != .space {
                var j = start + 1
                while j < n && kinds[j] == k { j += 1 }
                take(j)
                continue
            }
            // `\s+(?!\S)` then `\s+`
            var j = i + 1
            while j < n && kinds[j] == .space { j += 1 }
            if j < n && j - i > 1 { j -= 1 }  // leave the last space to prefix the next word
            take(j)
        }
        return pieces
    }
}
