import Foundation

/// Levenshtein distance between texts, over Unicode scalars.
public enum EditDistance {
    /// The number of scalar insertions, deletions and substitutions that turn `a` into `b`.
    public static func between(_ a: String, _ b: String) -> Int {
        let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
        if x.isEmpty { return y.count }
        if y.isEmpty { return x.count }
        var previous = Array(0...y.count), current = [Int](repeating: 0, count: y.count + 1)  // (|y| + 1): one row of the table
        for i in 1...x.count {
            current[0] = i
            for j in 1...y.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[y.count]
    }

    /// The distance divided by the longer length (0 = identical, 1 = nothing in common); 0 for two empty strings.
    public static func normalized(_ a: String, _ b: String) -> Double {
        let n = max(a.unicodeScalars.count, b.unicodeScalars.count)
        return n == 0 ? 0 : Double(between(a, b)) / Double(n)
    }
}
