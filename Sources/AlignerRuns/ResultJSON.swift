import AlignerData
import AlignerErrors
import AlignerFiles
import Foundation

/// JSON for results that may hold NaN or infinity (a diverged loss, an empty stage): such numbers are written as
/// `null`, and read back as NaN, so that writing a summary never fails because of a value.
public enum ResultJSON {
    private static let sentinel = "\u{1}non-finite\u{1}"

    /// Pretty-printed JSON with sorted keys; non-finite numbers become `null`.
    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: sentinel, negativeInfinity: sentinel, nan: sentinel)
        let text = String(decoding: try encoder.encode(value), as: UTF8.self)
        let escaped = String(decoding: try JSONEncoder().encode(sentinel), as: UTF8.self)
        return Data(text.replacingOccurrences(of: escaped, with: "null").utf8)
    }

    /// Decodes JSON written by `encode`; `null` where a number is expected reads as NaN.
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        do { return try JSONDecoder().decode(type, from: data) } catch {
            // Retry with nulls as NaN (optional fields that are null stay absent only when they were left out).
            guard let tree = try? JSONSerialization.jsonObject(with: data) else { throw error }
            func fill(_ v: Any) -> Any {
                if v is NSNull { return "NaN" }
                if let a = v as? [Any] { return a.map(fill) }
                if let o = v as? [String: Any] { return o.mapValues(fill) }
                return v
            }
            let decoder = JSONDecoder()
            decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
            return try decoder.decode(type, from: JSONSerialization.data(withJSONObject: fill(tree)))
        }
    }
}
