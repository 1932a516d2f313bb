import AlignerData
import Foundation

/// The identity warm-up ablation: one two-stage run per warm-up proportion p, from the same initial weights, seed,
/// evaluation set and stage-2 budget, so that the arms differ only in p. Each arm lives in its own folder; a stopped
/// sweep resumes arm by arm.
public final class Sweep {
    public let recipe: Recipe
    public let directory: URL
    public var isTerminal: Bool

    public init(recipe: Recipe, isTerminal: Bool = isatty(STDOUT_FILENO) != 0) {
        self.recipe = recipe
        directory = URL(fileURLWithPath: recipe.outputDir).appendingPathComponent(recipe.name)
        self.isTerminal = isTerminal
    }

    static func armName(_ p: Double) -> String {
        p == p.rounded() ? "arm-p\(Int(p))" : "arm-p" + String(format: "%g", p).replacingOccurrences(of: ".", with: "_")
    }

    /// Runs every arm not yet finished and writes the report. Returns the arms' results in the recipe's order.
    public func run(say: (String) -> Void = { print($0) }) throws -> [RunResult] {
        // One sweep process per folder (each arm's run folder has its own lock too).
        let lock = try RunLock(folder: directory)
        defer { withExtendedLifetime(lock) {} }
        TemporaryFiles.removeStale(in: directory, lockHeld: true)
        try StoreFiles.writeSynced(recipe.jsonData(), to: directory.appendingPathComponent("recipe.json"))
        var results: [RunResult] = []
        var sharedTokenizer = recipe.tokenizer.path
        for p in recipe.sweep.warmupPercents {
            var arm = recipe
            arm.name = Self.armName(p)
            arm.outputDir = directory.path
            arm.data.warmupPercent = p
            arm.tokenizer.path = sharedTokenizer
            let armDir = directory.appendingPathComponent(arm.name)
            let resultURL = armDir.appendingPathComponent("result.json")
            if let data = try? Data(contentsOf: resultURL), let done = try? ResultJSON.decode(RunResult.self, from: data) {
                say("arm p = \(p)%: already finished (\(resultURL.path))")
                results.append(done)
            } else {
                let resume = !CheckpointStore(directory: armDir.appendingPathComponent("checkpoints")).complete(verify: false).isEmpty
                say("arm p = \(p)%: \(resume ? "resuming" : "starting") in \(armDir.path)")
                let trainer = Trainer(recipe: arm, isTerminal: isTerminal)
                results.append(try trainer.run(resume: resume))
            }
            if sharedTokenizer.isEmpty && recipe.model.initFrom == "scratch" {
                sharedTokenizer = armDir.appendingPathComponent("tokenizer.json").path
            }
        }
        let report = Self.markdown(results, recipe: recipe)
        try StoreFiles.writeSynced(Data(report.utf8), to: directory.appendingPathComponent("report.md"))
        try StoreFiles.writeSynced(Data(Self.svg(results).utf8), to: directory.appendingPathComponent("eval-loss.svg"))
        return results
    }

    static func format(_ x: Double) -> String { x.isFinite ? String(format: "%.4f", x) : "–" }


    /// The arm with the lowest eval loss after stage 2.
    public static func winner(_ results: [RunResult]) -> RunResult? {
        results.filter { $0.stages.last?.evalLoss.isFinite == true }.min { $0.stages.last!.evalLoss < $1.stages.last!.evalLoss }
    }

    /// The Markdown report: a table per arm and the winner.
    public static func markdown(_ results: [RunResult], recipe: Recipe) -> String {
        var s = "# Identity warm-up sweep: \(recipe.name)\n\n"
        s += "Data: \(recipe.data.train.joined(separator: ", ")); template \(recipe.data.customTemplate.isEmpty ? recipe.data.template : "custom"); "
        s += "seed \(recipe.seed); model \(recipe.model.initFrom == "scratch" ? "from scratch, hidden \(recipe.model.hiddenSize), \(recipe.model.numHiddenLayers) layers" : recipe.model.initFrom).\n"
        if let r = results.first { s += "Train \(r.trainRecords) records, eval \(r.evalRecords) (held out by question); eval loss before training \(format(r.initialEvalLoss)).\n\n" }
        s += table(results)
        if let w = winner(results) {
            s += "\nLowest eval loss after stage 2: p = \(String(format: "%g", w.warmupPercent))% (\(format(w.stages.last!.evalLoss))).\n"
        }
        s += "\nChart: eval-loss.svg (eval loss against optimiser steps; stage 2 starts at the marked point of each arm).\n"
        return s
    }

    /// The table alone (printed at the end of a sweep).
    public static func table(_ results: [RunResult]) -> String {
        var s = "| p (%) | warm-up records | eval loss after stage 1 | eval loss after stage 2 | best eval loss | tokens seen | wall time |\n"
        s += "|---:|---:|---:|---:|---:|---:|---:|\n"
        for r in results {
            let s1 = r.stages.first { $0.stage == 1 }?.evalLoss ?? .nan
            let s2 = r.stages.first { $0.stage == 2 }?.evalLoss ?? .nan
            s += "| \(String(format: "%g", r.warmupPercent)) | \(r.warmupRecords) | \(format(s1)) | \(format(s2)) | \(format(r.bestEvalLoss)) | \(r.tokensSeen) | \(ProgressPrinter.duration(r.wallSeconds)) |\n"
        }
        return s
    }

    /// An SVG line chart of every arm's eval loss against the global optimiser step.
    public static func svg(_ results: [RunResult]) -> String {
        let (w, h, left, right, top, bottom) = (840.0, 440.0, 70.0, 200.0, 30.0, 50.0)
        let curves = results.map { r in [(Double(0), r.initialEvalLoss)].filter { $0.1.isFinite } + r.evalCurve.map { (Double($0.globalStep), $0.evalLoss) } }
        let xs = curves.flatMap { $0.map(\.0) }, ys = curves.flatMap { $0.map(\.1) }
        let xMax = max(xs.max() ?? 1, 1)
        var yMin = ys.min() ?? 0, yMax = ys.max() ?? 1
        if yMax - yMin < 1e-6 { yMax += 0.5; yMin -= 0.5 }
        let pad = (yMax - yMin) * 0.05
        yMin -= pad; yMax += pad
        func px(_ x: Double) -> Double { left + x / xMax * (w - left - right) }
        func py(_ y: Double) -> Double { top + (yMax - y) / (yMax - yMin) * (h - top - bottom) }
        let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(Int(w / 2 - 60))\" y=\"18\" font-size=\"14\">Eval loss by warm-up proportion</text>\n"
        for i in 0...5 {
            let y = yMin + (yMax - yMin) * Double(i) / 5
            s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", left, py(y), w - right, py(y))
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.3f</text>\n", left - 6, py(y) + 4, y)
            let x = xMax * Double(i) / 5
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n", px(x), h - bottom + 18, Int(x.rounded()))
        }
        s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", left, h - bottom, w - right, h - bottom)
        s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", left, top, left, h - bottom)
        s += "<text x=\"\(Int((left + w - right) / 2))\" y=\"\(Int(h - 10))\" text-anchor=\"middle\">optimiser step (stage 1 + stage 2)</text>\n"
        s += "<text transform=\"translate(18,\(Int(h / 2))) rotate(-90)\" text-anchor=\"middle\">eval loss</text>\n"
        for (i, (r, c)) in zip(results, curves).enumerated() {
            let color = colors[i % colors.count]
            let points = c.map { String(format: "%.1f,%.1f", px($0.0), py($0.1)) }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(points)\"/>\n"
            if let start = r.stages.first(where: { $0.stage == 1 }).map({ Double($0.steps) }), let y = r.evalCurve.last(where: { $0.stage == 1 })?.evalLoss {
                s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%@\"/>\n", px(start), py(y), color as NSString)
            }
            let ly = top + 20 + Double(i) * 20
            s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%@\" stroke-width=\"3\"/>\n", w - right + 15, ly, w - right + 40, ly, color as NSString)
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\">p = %g%% (%@)</text>\n", w - right + 46, ly + 4, r.warmupPercent, format(r.stages.last?.evalLoss ?? .nan) as NSString)
        }
        return s + "</svg>\n"
    }
}
