import AlignerMeasures
import AlignerRuns
import Foundation

/// Round axis ticks: steps of 1, 2, 2.5 or 5 × 10^k, about `count` of them across [lo, hi].
struct AxisTicks {
    let values: [Double]
    let decimals: Int

    init(_ lo: Double, _ hi: Double, count: Int = 5) {
        let span = max(hi - lo, 1e-12)
        let raw = span / Double(max(count, 1))
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        var v: [Double] = []
        var x = (lo / step).rounded(.up) * step
        while x <= hi + step * 1e-9 { v.append(abs(x) < step * 1e-9 ? 0 : x); x += step }
        values = v
        // As many decimals as the step needs (0.25 → 2, 25 → 0).
        decimals = (0...8).first { d in let scaled = step * pow(10, Double(d)); return abs(scaled - scaled.rounded()) < 1e-6 * max(1, scaled) } ?? 8
    }

    func label(_ x: Double) -> String { String(format: "%.\(decimals)f", x) }
}

/// One panel of the chart: a plotting rectangle with data ranges and axes.
struct ChartPanel {
    let x, y, width, height: Double
    let xRange: ClosedRange<Double>
    let yRange: ClosedRange<Double>

    func px(_ v: Double) -> Double { x + (v - xRange.lowerBound) / max(xRange.upperBound - xRange.lowerBound, 1e-12) * width }
    func py(_ v: Double) -> Double { y + (yRange.upperBound - v) / max(yRange.upperBound - yRange.lowerBound, 1e-12) * height }

    /// Frame, round ticks and grid lines, axis titles.
    func axes(title: String, xLabel: String, yLabel: String, xTicks: Bool = true) -> String {
        var s = String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" font-weight=\"bold\">%@</text>\n", x, y - 8, title as NSString)
        let yt = AxisTicks(yRange.lowerBound, yRange.upperBound)
        for v in yt.values {
            s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", x, py(v), x + width, py(v))
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%@</text>\n", x - 5, py(v) + 4, yt.label(v) as NSString)
        }
        if xTicks {
            let xt = AxisTicks(xRange.lowerBound, xRange.upperBound)
            for v in xt.values {
                s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>\n", px(v), y + height + 16, xt.label(v) as NSString)
            }
        }
        s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"black\"/>\n", x, y, width, height)
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>\n", x + width / 2, y + height + 34, xLabel as NSString)
        s += String(format: "<text transform=\"translate(%.1f,%.1f) rotate(-90)\" text-anchor=\"middle\">%@</text>\n", x - 48, y + height / 2, yLabel as NSString)
        return s
    }
}

extension SweepReport {
    static let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

    /// Mean, minimum and maximum over the runs at every x that all runs have.
    static func band(_ curves: [[(Double, Double)]]) -> [(x: Double, mean: Double, lo: Double, hi: Double)] {
        guard let first = curves.first else { return [] }
        let maps = curves.map { Dictionary($0.map { ($0.0, $0.1) }, uniquingKeysWith: { _, b in b }) }
        return first.map(\.0).compactMap { x in
            let ys = maps.compactMap { $0[x] }.filter(\.isFinite)
            guard ys.count == maps.count, !ys.isEmpty else { return nil }
            return (x, ys.reduce(0, +) / Double(ys.count), ys.min()!, ys.max()!)
        }
    }

    static func padded(_ lo: Double, _ hi: Double) -> ClosedRange<Double> {
        guard lo.isFinite, hi.isFinite else { return 0...1 }
        let pad = max((hi - lo) * 0.06, 1e-4)
        return (lo - pad)...(hi + pad)
    }

    /// The curves and the band of each group in `panel`.
    static func drawBands(_ bands: [[(x: Double, mean: Double, lo: Double, hi: Double)]], in panel: ChartPanel) -> String {
        var s = ""
        for (i, b) in bands.enumerated() where !b.isEmpty {
            let color = colors[i % colors.count]
            if b.count == 1, let p = b.first {
                // A single evaluation: a dot, and the seeds' range as a bar.
                s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%@\" stroke-width=\"2\"/>\n",
                            panel.px(p.x) + Double(i) * 3, panel.py(p.lo), panel.px(p.x) + Double(i) * 3, panel.py(p.hi), color as NSString)
                s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%@\"/>\n", panel.px(p.x) + Double(i) * 3, panel.py(p.mean), color as NSString)
                continue
            }
            if b.contains(where: { $0.hi > $0.lo }) {
                let upper = b.map { String(format: "%.1f,%.1f", panel.px($0.x), panel.py($0.hi)) }
                let lower = b.reversed().map { String(format: "%.1f,%.1f", panel.px($0.x), panel.py($0.lo)) }
                s += "<polygon fill=\"\(color)\" fill-opacity=\"0.15\" stroke=\"none\" points=\"\((upper + lower).joined(separator: " "))\"/>\n"
            }
            let points = b.map { String(format: "%.1f,%.1f", panel.px($0.x), panel.py($0.mean)) }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(points)\"/>\n"
        }
        return s
    }

    /// The SVG chart: (top) eval loss against the global optimiser step, mean over seeds with the range shaded, a dot
    /// where stage 2 starts; (bottom left) the last half of stage 2 against the stage-2 step, zoomed; (bottom right)
    /// the final eval loss of every run per arm with mean ± sd.
    public func svg() -> String {
        let groups = self.groups
        let generated = results.contains { $0.result.evalCurve.contains { $0.generation != nil } }
        let (w, h) = (980.0, generated ? 1060.0 : 760.0)
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        let seedCount = seeds.count
        s += "<text x=\"20\" y=\"22\" font-size=\"15\">Identity warm-up sweep \(recipe.name): eval loss by arm (\(seedCount) seed\(seedCount == 1 ? "" : "s")\(seedCount > 1 ? ", mean and range" : ""))</text>\n"

        // Top: whole runs.
        let full = groups.map { g in
            Self.band(g.runs.map { r in [(0.0, r.result.initialEvalLoss)] + r.result.evalCurve.map { (Double($0.globalStep), $0.evalLoss) } })
        }
        let fy = full.flatMap { $0.flatMap { [$0.lo, $0.hi] } }.filter(\.isFinite)
        let fx = full.flatMap { $0.map(\.x) }
        let top = ChartPanel(x: 80, y: 60, width: 640, height: 270, xRange: 0...max(fx.max() ?? 1, 1),
                             yRange: Self.padded(fy.min() ?? 0, fy.max() ?? 1))
        s += top.axes(title: "Whole run (stage 1 + stage 2)", xLabel: "optimiser step", yLabel: "eval loss")
        s += Self.drawBands(full, in: top)
        for (i, g) in groups.enumerated() {
            // Stage 2 starts after stage 1's steps (the same for every seed of an arm).
            if let r = g.runs.first?.result, let s1 = r.stages.first(where: { $0.stage == 1 }),
               let b = full[i].last(where: { $0.x <= Double(s1.steps) }), s1.steps > 0 {
                s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%@\"/>\n", top.px(b.x), top.py(b.mean), Self.colors[i % Self.colors.count] as NSString)
            }
        }
        // Legend.
        for (i, g) in groups.enumerated() {
            let ly = 70 + Double(i) * 18
            let color = Self.colors[i % Self.colors.count]
            s += String(format: "<line x1=\"740\" y1=\"%.1f\" x2=\"765\" y2=\"%.1f\" stroke=\"%@\" stroke-width=\"3\"/>\n", ly, ly, color as NSString)
            let f = g.finalLoss
            let text = g.label + " (" + Self.f4(f.mean) + (f.count > 1 ? String(format: " ± %.4f", f.standardDeviation) : "") + ")"
            s += String(format: "<text x=\"771\" y=\"%.1f\">%@</text>\n", ly + 4, escapeXML(text) as NSString)
        }

        // Bottom left: the last half of stage 2, aligned at stage 2's start.
        let tails = groups.map { g -> [(x: Double, mean: Double, lo: Double, hi: Double)] in
            let curves = g.runs.map { r in r.result.evalCurve.filter { $0.stage == 2 }.map { (Double($0.step), $0.evalLoss) } }
            let steps = Double(g.runs.first?.result.stages.first { $0.stage == 2 }?.steps ?? 0)
            return Self.band(curves).filter { $0.x >= steps / 2 }
        }
        let ty = tails.flatMap { $0.flatMap { [$0.lo, $0.hi] } }.filter(\.isFinite)
        let tx = tails.flatMap { $0.map(\.x) }
        let left = ChartPanel(x: 80, y: 420, width: 460, height: 260,
                              xRange: (tx.max() ?? 1) > (tx.min() ?? 0) ? (tx.min() ?? 0)...(tx.max() ?? 1) : ((tx.min() ?? 0) - 1)...((tx.min() ?? 0) + 1),
                              yRange: Self.padded(ty.min() ?? 0, ty.max() ?? 1))
        s += left.axes(title: "Last half of stage 2 (zoomed)", xLabel: "stage-2 step", yLabel: "eval loss")
        s += Self.drawBands(tails, in: left)

        // Bottom right: final eval loss per arm, every seed a dot, mean ± sd.
        let finals = groups.map { $0.runs.map { Group.final($0.result) }.filter(\.isFinite) }
        let all = finals.flatMap { $0 } + groups.flatMap { g -> [Double] in
            let f = g.finalLoss
            return f.count > 1 ? [f.mean - f.standardDeviation, f.mean + f.standardDeviation] : []
        }
        let right = ChartPanel(x: 640, y: 420, width: 300, height: 260, xRange: -0.5...(Double(max(groups.count, 1)) - 0.5),
                               yRange: Self.padded(all.min() ?? 0, all.max() ?? 1))
        s += right.axes(title: "Final eval loss per arm", xLabel: "arm (colour as above)", yLabel: "eval loss", xTicks: false)
        for (i, g) in groups.enumerated() {
            let color = Self.colors[i % Self.colors.count]
            let cx = right.px(Double(i))
            for (j, v) in finals[i].enumerated() {
                let jitter = (Double(j) - Double(finals[i].count - 1) / 2) * 4
                s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%@\" fill-opacity=\"0.6\"/>\n", cx + jitter, right.py(v), color as NSString)
            }
            let f = g.finalLoss
            if f.count > 1 {
                s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%@\" stroke-width=\"2\"/>\n",
                            cx + 12, right.py(f.mean - f.standardDeviation), cx + 12, right.py(f.mean + f.standardDeviation), color as NSString)
            }
            if f.mean.isFinite {
                s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"8\" height=\"3\" fill=\"%@\"/>\n", cx + 8, right.py(f.mean) - 1.5, color as NSString)
            }
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g%%</text>\n", cx, right.y + right.height + 16, g.percent)
        }
        // Bottom row, when corrections were generated: their copy rate and edit distance to the reference over the run.
        if generated {
            func curves(_ f: (CorrectionMetrics) -> Double) -> [[(x: Double, mean: Double, lo: Double, hi: Double)]] {
                groups.map { g in
                    Self.band(g.runs.map { r in
                        ([EvalPoint(stage: 0, step: 0, globalStep: 0, evalLoss: r.result.initialEvalLoss, generation: r.result.initialGeneration)] + r.result.evalCurve)
                            .compactMap { p in p.generation.map { (Double(p.globalStep), f($0)) } }
                    })
                }
            }
            for (i, (title, f)) in [("Copy rate of greedy corrections", { (m: CorrectionMetrics) in m.copyRate }),
                                    ("Edit distance to the reference", { (m: CorrectionMetrics) in m.editToReference })].enumerated() {
                let bands = curves(f)
                let ys = bands.flatMap { $0.flatMap { [$0.lo, $0.hi] } }.filter(\.isFinite)
                let panel = ChartPanel(x: i == 0 ? 80 : 560, y: 770, width: 380, height: 220, xRange: top.xRange,
                                       yRange: Self.padded(min(ys.min() ?? 0, i == 0 ? 0 : 1), max(ys.max() ?? 1, i == 0 ? 0.1 : 0)))
                s += panel.axes(title: title, xLabel: "optimiser step", yLabel: i == 0 ? "share of outputs = answer" : "normalised edit distance")
                s += Self.drawBands(bands, in: panel)
            }
        }
        return s + "</svg>\n"
    }
}

/// Text safe inside SVG/XML elements.
func escapeXML(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
}
