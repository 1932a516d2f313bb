import Foundation

/// Summary statistics of a sample: mean, sample standard deviation and a 95% Student-t interval of the mean.
public struct SampleSummary: Sendable, Equatable {
    public let values: [Double]
    public var count: Int { values.count }
    public var mean: Double { values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count) }
    /// Sample standard deviation (n − 1); NaN below two values.
    public var standardDeviation: Double {
        guard values.count > 1 else { return .nan }
        let m = mean
        return (values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(values.count - 1)).squareRoot()
    }
    /// Half-width of the 95% confidence interval of the mean (t distribution, n − 1 degrees of freedom).
    public var halfWidth95: Double {
        guard values.count > 1 else { return .nan }
        return Self.t975(degreesOfFreedom: values.count - 1) * standardDeviation / Double(values.count).squareRoot()
    }

    /// Half-width of the 95% normal interval of the mean (1.96 sd/√n), for samples large enough that t is not needed.
    public var normalHalfWidth95: Double {
        guard values.count > 1 else { return .nan }
        return Intervals.z95 * standardDeviation / Double(values.count).squareRoot()
    }

    /// The finite values of `values` (a diverged run's NaN is left out), or with `keepingNonFinite` all of them.
    public init(_ values: [Double], keepingNonFinite: Bool = false) { self.values = keepingNonFinite ? values : values.filter(\.isFinite) }

    /// The 0.975 quantile of Student's t distribution.
    static func t975(degreesOfFreedom df: Int) -> Double {
        let table = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
                     2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
        if df >= 1 && df <= table.count { return table[df - 1] }
        return df <= 60 ? 2.000 : df <= 120 ? 1.980 : 1.960
    }
}
