import Foundation

/// 95% intervals for rates and differences.
public enum Intervals {
    /// The normal quantile of a two-sided 95% interval.
    public static let z95 = 1.959964

    /// The 95% Wilson score interval of k successes in n trials ([0, 1] for n = 0).
    public static func wilson(_ k: Int, _ n: Int) -> [Double] {
        guard n > 0 else { return [0, 1] }
        let z = z95, p = Double(k) / Double(n), nn = Double(n)
        let centre = (p + z * z / (2 * nn)) / (1 + z * z / nn)
        let half = z / (1 + z * z / nn) * (p * (1 - p) / nn + z * z / (4 * nn * nn)).squareRoot()
        return [max(0, centre - half), min(1, centre + half)]
    }

    /// The difference of two rates measured on the same records, rate(x) − rate(y), with its 95% interval by
    /// Newcombe's square-and-add (hybrid score) method for paired proportions (Newcombe, Statistics in Medicine 1998,
    /// method 10; as in Fagerland, Lydersen and Laake, "Statistical Analysis of Contingency Tables", chapter 8): Wilson
    /// intervals of both rates, combined through the correlation of the pairs.
    public static func pairedDifference(_ x: [Bool], _ y: [Bool]) -> (difference: Double, interval: [Double]) {
        precondition(x.count == y.count, "paired rates need the same records")
        let n = x.count
        guard n > 0 else { return (0, [-1, 1]) }
        var a = 0, b = 0, c = 0, d = 0  // both, x only, y only, neither
        for (p, q) in zip(x, y) {
            switch (p, q) {
            case (true, true): a += 1
            case (true, false): b += 1
            case (false, true): c += 1
            case (false, false): d += 1
            }
        }
        let nn = Double(n)
        let p1 = Double(a + b) / nn, p2 = Double(a + c) / nn
        let w1 = wilson(a + b, n), w2 = wilson(a + c, n)
        // The correlation of the pairs, with Newcombe's continuity adjustment (0 for 0 ≤ ad − bc ≤ n/2).
        let denominator = (Double(a + b) * Double(c + d) * Double(a + c) * Double(b + d)).squareRoot()
        let ad_bc = Double(a) * Double(d) - Double(b) * Double(c)
        let phi = denominator == 0 ? 0 : ad_bc > nn / 2 ? (ad_bc - nn / 2) / denominator : ad_bc >= 0 ? 0 : ad_bc / denominator
        let lower = ((p1 - w1[0]) * (p1 - w1[0]) - 2 * phi * (p1 - w1[0]) * (w2[1] - p2) + (w2[1] - p2) * (w2[1] - p2)).squareRoot()
        let upper = ((w1[1] - p1) * (w1[1] - p1) - 2 * phi * (w1[1] - p1) * (p2 - w2[0]) + (p2 - w2[0]) * (p2 - w2[0])).squareRoot()
        let diff = p1 - p2
        return (diff, [max(-1, diff - lower), min(1, diff + upper)])
    }

    /// The mean of `values` with its 95% normal interval (mean ± 1.96 sd/√n; the interval is NaN for fewer than 2).
    public static func mean(_ values: [Double]) -> (mean: Double, interval: [Double]) {
        let sample = SampleSummary(values, keepingNonFinite: true)
        guard sample.count > 1 else { return (sample.mean, [.nan, .nan]) }
        let (m, half) = (sample.mean, sample.normalHalfWidth95)
        return (m, [m - half, m + half])
    }
}
