import AlignerErrors
import Foundation

/// The one rule for text AlignerKit reads (corpus files, prompt files, standard input): valid UTF-8 or refused, naming
/// the source, the byte offset and the line of the first bad byte; never silently replaced by U+FFFD.
public enum UTF8Text {
    /// `data` as a string; `FileError` (kind `.badData`) naming `source` when it is not valid UTF-8.
    public static func decode(_ data: Data, source: String) throws -> String {
        if let text = String(validating: data, as: UTF8.self) { return text }
        let offset = firstInvalidOffset(data)
        let line = data.prefix(offset).reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) }
        throw FileError(file: source, message: "not valid UTF-8: first bad byte at offset \(offset) (line \(line))", kind: .badData)
    }

    /// The offset of the first byte that does not begin or continue a valid UTF-8 sequence (the data's length when
    /// all of it is valid).
    public static func firstInvalidOffset(_ data: Data) -> Int {
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = data.makeIterator()
        var offset = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let encoded): offset += encoded.count
            case .emptyInput: return offset
            case .error: return offset
            }
        }
    }
}
