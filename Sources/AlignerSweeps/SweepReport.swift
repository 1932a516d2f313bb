import AlignerInference
import AlignerMeasures
import AlignerRecipes
import AlignerReports
import AlignerRuns
import Foundation

/// The report of a sweep: per arm (warm-up proportion × grid point) the mean and spread of the final eval loss over
/// seeds, every seed's value, and the paired difference to p = 0 (same seed, same grid point) with a 95% interval;
/// as Markdown, an SVG chart, JSON and CSV (one row per arm and seed).
public struct SweepReport {
    public let recipe: Recipe
    public let results: [Sweep.ArmResult]

    public init(recipe: Recipe, results: [Sweep.ArmResult]) {
        self.recipe = recipe
        self.results = results
    }

    /// The runs of one warm-up proportion at one grid point, over seeds.
    public struct Group {
        public let percent: Double
        public let point: [Recipe.GridAxis.Value]
        public let runs: [Sweep.ArmResult]
        public var finalLoss: SampleSummary { SampleSummary(runs.map { Self.final($0.result) }) }
        public var bestLoss: SampleSummary { SampleSummary(runs.map { $0.result.bestEvalLoss }) }
        /// Paired differences final(p) − final(p = 0) over the seeds both have; nil without a p = 0 arm.
        public var pairedDifference: SampleSummary?

        static func final(_ r: RunResult) -> Double { r.stages.last?.evalLoss ?? .nan }
        /// The judge's verdicts on the runs' corrections (runs without a judgement left out).
        public var judged: [JudgeSummary] { runs.compactMap { $0.judgement?.summary } }
        /// Win rate of correction over answer under `sweep.judge`, over seeds.
        public var winRate: SampleSummary { SampleSummary(judged.map(\.correctionVsAnswer.winRate)) }
        static func winRate(_ r: Sweep.ArmResult) -> Double { r.judgement?.summary.correctionVsAnswer.winRate ?? .nan }
        /// Useful-correction rate (`JudgeSummary`) under `sweep.judge`, over seeds.
        public var usefulRate: SampleSummary { SampleSummary(judged.compactMap { $0.responses.last?.usefulRate }) }
        static func usefulRate(_ r: Sweep.ArmResult) -> Double { r.judgement?.summary.responses.last?.usefulRate ?? .nan }
        /// The judged measure `sweep.best_by` names ("win_rate" or "useful_rate"), over seeds and for one run.
        func judged(by name: BestArmMeasure) -> SampleSummary { name == .usefulRate ? usefulRate : winRate }
        static func judged(_ r: Sweep.ArmResult, by name: BestArmMeasure) -> Double { name == .usefulRate ? usefulRate(r) : winRate(r) }
        /// Generation metrics of the last evaluation of each run (when the recipe generated corrections).
        public var finalGeneration: [CorrectionMetrics] { runs.compactMap { $0.result.evalCurve.last?.generation } }
        public var label: String {
            (["p = \(String(format: "%g", percent))%"] + point.map { "\($0.key) = \($0.json)" }).joined(separator: ", ")
        }
    }

    /// Groups in the order of the grid points, then proportions.
    public var groups: [Group] {
        var order: [String] = []
        var byKey: [String: [Sweep.ArmResult]] = [:]
        for r in results {
            let key = "\(r.arm.pointIndex)|\(r.arm.percent)"
            if byKey[key] == nil { order.append(key) }
            byKey[key, default: []].append(r)
        }
        let sorted = order.sorted { a, b in
            let (ra, rb) = (byKey[a]![0].arm, byKey[b]![0].arm)
            return ra.pointIndex != rb.pointIndex ? ra.pointIndex < rb.pointIndex : ra.percent < rb.percent
        }
        return sorted.map { key in
            let runs = byKey[key]!
            var g = Group(percent: runs[0].arm.percent, point: runs[0].arm.point, runs: runs)
            let base = results.filter { $0.arm.pointIndex == runs[0].arm.pointIndex && $0.arm.percent == 0 }
            if !base.isEmpty {
                let baseBySeed = Dictionary(base.map { ($0.arm.seed, Group.final($0.result)) }, uniquingKeysWith: { a, _ in a })
                g.pairedDifference = SampleSummary(runs.compactMap { r in baseBySeed[r.arm.seed].map { Group.final(r.result) - $0 } })
            }
            return g
        }
    }

    /// The judged measure that picks the best arm (`sweep.best_by` = "win_rate" or "useful_rate"), when runs were
    /// judged; nil when the best arm is chosen by eval loss.
    var judgedBest: BestArmMeasure? {
        let name = recipe.sweep.bestBy
        return name != .evalLoss && groups.contains { $0.judged(by: name).mean.isFinite } ? name : nil
    }

    /// The group with the lowest mean final eval loss, or with a judged `sweep.best_by` the highest mean of it.
    public var winner: Group? {
        if let by = judgedBest { return groups.filter { $0.judged(by: by).mean.isFinite }.max { $0.judged(by: by).mean < $1.judged(by: by).mean } }
        return groups.filter { $0.finalLoss.mean.isFinite }.min { $0.finalLoss.mean < $1.finalLoss.mean }
    }

    /// The winner's run (seed) with the lowest final eval loss (the highest judged measure, by one): what
    /// `best-of-sweep:` names.
    public var bestRun: Sweep.ArmResult? { winner.flatMap(bestRun(of:)) }

    /// A group's run (seed) with the lowest final eval loss, or the highest judged `sweep.best_by` when runs were judged.
    public func bestRun(of group: Group) -> Sweep.ArmResult? {
        if let by = judgedBest {
            return group.runs.filter { Group.judged($0, by: by).isFinite }.max { Group.judged($0, by: by) < Group.judged($1, by: by) }
        }
        return group.runs.filter { Group.final($0.result).isFinite }.min { Group.final($0.result) < Group.final($1.result) }
    }

    var gridKeys: [String] { recipe.sweep.grid.map(\.key) }
    var seeds: [Int] { Array(Set(results.map(\.arm.seed))).sorted() }

    static func f4(_ x: Double) -> String { x.isFinite ? String(format: "%.4f", x) : "–" }
    static func signed(_ x: Double) -> String { x.isFinite ? String(format: "%+.4f", x) : "–" }

    // MARK: Markdown

    public func markdown() -> String {
        var s = "# Identity warm-up sweep: \(recipe.name)\n\n"
        s += introduction().map { $0 + "\n" }.joined()
        s += "\n## Final eval loss (after stage 2) by arm\n\n"
        s += columnNotes().map { $0 + "\n\n" }.joined()
        s += armTable().markdown()
        if winner != nil { s += "\n" + winnerSummary() }
        if let b = budgetNote() { s += "\n" + b + "\n" }
        s += "\n## Every run\n\n" + runTable().markdown()
        s += "\nChart: eval-loss.svg (\(Self.chartCaption)). "
        s += "Machine-readable: report.json, report.csv (one row per arm and seed). Read in a browser: report.html (these tables, the chart, and every arm's corrections of the same held-out records).\n"
        return s
    }

    static let chartCaption = "top: eval loss against optimiser steps, mean over seeds with the range shaded; bottom left: the last half of stage 2, aligned at stage 2's start; bottom right: final eval loss per arm, each seed a dot, mean ± sd"

    /// The sweep's data, model, seeds, grid, budget and sizes, one line each.
    func introduction() -> [String] {
        var lines = ["Data: \(recipe.data.train.joined(separator: ", ")); template \(recipe.data.customPromptTemplate.isEmpty ? recipe.data.promptTemplateName : "custom"); "
            + "model \(recipe.model.initFrom == "scratch" ? "from scratch, hidden \(recipe.model.hiddenSize), \(recipe.model.numHiddenLayers) layers" : recipe.model.initFrom)"
            + "; stage 1 \(recipe.stage1.finetune.rawValue), stage 2 \(recipe.stage2.finetune.rawValue); recipe fingerprint \(recipe.fingerprint)."]
        lines.append("Seeds: \(seeds.map(String.init).joined(separator: ", ")) (each drives initialisation, the warm-up subset, data order and dropout; every seed is evaluated on the same held-out questions).")
        if !gridKeys.isEmpty { lines.append("Grid: " + recipe.sweep.grid.map { "\($0.key) ∈ {\($0.values.joined(separator: ", "))}" }.joined(separator: "; ") + ".") }
        lines.append("Budget: \(recipe.train.budget.explanation).")
        if let r = results.first?.result { lines.append("Train \(r.trainRecords) records, eval \(r.evalRecords) (held out by question); eval loss before training \(Self.f4(r.initialEvalLoss)).") }
        return lines
    }

    /// What the generation and judge columns of the arm table mean (when there are such columns).
    func columnNotes() -> [String] {
        var notes: [String] = []
        if let n = results.first?.result.evalCurve.last?.generation?.generated {
            notes.append("Generation columns: greedy corrections of the first \(n) held-out records at the last evaluation, means over seeds; near copy = normalised edit distance to the answer ≤ \(CorrectionMetrics.nearCopyThreshold).")
        }
        if let j = results.compactMap(\.judgement).first {
            notes.append("Judge columns: each run's Aligner (its best checkpoint, else its newest) corrects the first \(j.records) held-out records greedily (at most \(j.maxNewTokens) new tokens); the reward model \(j.judge) scores answer, correction and reference. Win = the correction scores higher than the answer by more than \(j.tieMargin) (equal texts tie); rates are means over seeds.\n"
                + JudgeSummary.usefulRuleText(tieMargin: j.tieMargin) + " "
                + "Controls on the same records and judge: " + j.summary.responses.dropLast().map { x in
                    String(format: "%@ useful %.3f [%.3f, %.3f] (refusal rate %.3f, degenerate %.3f)", x.name, x.usefulRate, x.usefulInterval[0], x.usefulInterval[1],
                           x.measures.refusalRate, x.measures.degenerateRate)
                }.joined(separator: "; ") + ". \"vs copy\" and \"vs refusal\" count the seeds whose corrections beat that control (paired useful-rate difference with a 95% interval above 0).")
        }
        return notes
    }

    /// How the budget treats the arms with a warm-up (nil when every arm has p = 0).
    func budgetNote() -> String? {
        guard groups.contains(where: { $0.percent > 0 }) else { return nil }
        switch recipe.train.budget {
        case .additive:
            return "Budget additive: every arm has the same stage-2 budget; stage 1 comes on top, so arms with a larger p train more steps in all (tokens seen per run below). Set train.budget = \"fixed_steps\" or \"fixed_tokens\" to separate the warm-up's effect from more training."
        case .fixedSteps:
            return "Budget fixed_steps: every arm takes the optimiser steps of stage 2 alone; stage 2 is shortened by stage 1's steps (tokens seen per run below)."
        case .fixedTokens:
            return "Budget fixed_tokens: every arm sees at most the tokens of stage 2 alone; stage 2 is shortened by what stage 1 saw (tokens seen per run below)."
        }
    }

    /// The best arm in words (by `sweep.best_by`), with the verdict against p = 0 when chosen by eval loss.
    public func winnerSummary() -> String {
        guard let w = winner else { return "" }
        if let by = judgedBest {
            let v = w.judged(by: by)
            return "Highest mean \(by == .usefulRate ? "useful-correction rate" : "win rate of correction over answer"): \(w.label) (\(String(format: "%.3f", v.mean))"
                + (v.count > 1 ? String(format: " ± %.3f sd over %d seeds).\n", v.standardDeviation, v.count) : ", one seed).\n")
        }
        return "Lowest mean eval loss after stage 2: \(w.label) (\(Self.f4(w.finalLoss.mean))"
            + (w.finalLoss.count > 1 ? String(format: " ± %.4f sd over %d seeds).\n", w.finalLoss.standardDeviation, w.finalLoss.count) : ", one seed).\n")
            + verdict(w)
    }

    /// Whether the winner is distinguishable from p = 0, in words.
    public func verdict(_ w: Group) -> String {
        guard w.finalLoss.count > 1 else { return "One seed per arm: the differences cannot be told from seed noise; run more seeds (sweep.seeds).\n" }
        var s = ""
        if let d = w.pairedDifference, w.percent != 0, d.count > 1 {
            let (lo, hi) = (d.mean - d.halfWidth95, d.mean + d.halfWidth95)
            s += String(format: "Against p = 0 with the same seeds, its loss differs by %+.4f (95%% interval %+.4f to %+.4f): ", d.mean, lo, hi)
            s += hi < 0 ? "better than no warm-up beyond seed noise.\n" : lo > 0 ? "worse than no warm-up beyond seed noise.\n" : "not distinguishable from no warm-up at this number of seeds.\n"
        }
        return s
    }

    /// One row per arm: mean ± sd over seeds, each seed's value, the paired difference to p = 0; generation and judge
    /// columns when the runs have them. Column keys are report.json's where it has the number.
    public func armTable() -> ReportTable {
        typealias Column = ReportTable.Column
        typealias Cell = ReportTable.Cell
        let generated = groups.contains { !$0.finalGeneration.isEmpty }
        let judged = groups.contains { !$0.judged.isEmpty }
        var columns = [Column("warmup_percent", "p (%)")] + gridKeys.map { Column("grid:" + $0, $0) }
        columns += [Column("seed_count", "seeds"), Column("final_eval_loss_mean", "eval loss mean"), Column("final_eval_loss_sd", "sd"),
                    Column("final_eval_loss", "per seed", numeric: false), Column("paired_difference_mean", "Δ vs p = 0 (paired)"),
                    Column("paired_difference_ci95", "95% interval of Δ", numeric: false), Column("best_eval_loss_mean", "best eval loss mean"),
                    Column("warmup_records", "warm-up records")]
        if generated {
            columns += [Column("copy_rate", "copy rate"), Column("near_copy_rate", "near-copy rate"), Column("edit_to_answer", "edit distance to answer"),
                        Column("edit_to_reference", "edit distance to reference")]
        }
        if judged {
            columns += [Column("useful_rate_mean", "useful rate"), Column("useful_rate_sd", "sd"), Column("beats_copy", "beats copy"),
                        Column("beats_refusal", "beats refusal"), Column("refusal_rate", "refusal rate"), Column("degenerate_rate", "degenerate"),
                        Column("generic_rate", "generic"), Column("unfinished_rate", "unfinished"), Column("win_rate_mean", "win rate vs answer"),
                        Column("win_rate_sd", "sd"), Column("tie_rate", "tie"), Column("lose_rate", "lose"), Column("mean_score_change", "mean score change"),
                        Column("win_rate_vs_reference", "win rate vs reference")]
        }
        var rows: [[Cell]] = []
        for g in groups {
            let f = g.finalLoss
            let d = g.pairedDifference
            let interval = d.map { $0.count > 1 ? String(format: "%+.4f … %+.4f", $0.mean - $0.halfWidth95, $0.mean + $0.halfWidth95) : "–" } ?? "–"
            var row = [Cell(String(format: "%g", g.percent), value: g.percent)] + g.point.map { Cell($0.json, value: Double($0.json)) }
            row += [Cell("\(f.count)", value: Double(f.count)), .number(f.mean), .number(f.standardDeviation),
                    Cell(g.runs.map { Self.f4(Group.final($0.result)) }.joined(separator: ", ")),
                    g.percent == 0 ? Cell("0", value: 0) : d.map { Cell(Self.signed($0.mean), value: $0.mean.isFinite ? $0.mean : nil) } ?? Cell("–"),
                    Cell(g.percent == 0 ? "–" : interval), .number(g.bestLoss.mean), Cell("\(g.runs[0].result.warmupRecords)", value: Double(g.runs[0].result.warmupRecords))]
            if generated {
                let m = g.finalGeneration
                func mean(_ f: (CorrectionMetrics) -> Double) -> Cell { m.isEmpty ? Cell("–") : .number(m.map(f).reduce(0, +) / Double(m.count), "%.3f") }
                row += [mean(\.copyRate), mean(\.nearCopyRate), mean(\.editToAnswer), mean(\.editToReference)]
            }
            if judged {
                let j = g.judged
                func mean(_ f: (JudgeSummary) -> Double?, _ format: String = "%.3f") -> Cell {
                    let v = j.compactMap(f)
                    return v.isEmpty ? Cell("–") : .number(v.reduce(0, +) / Double(v.count), format)
                }
                func beats(_ control: String) -> Cell {
                    let n = j.filter { $0.verdicts.first { $0.control == control }?.outcome == .beats }.count
                    return Cell("\(n)/\(j.count)", value: Double(n))
                }
                func sd(_ x: SampleSummary) -> Cell { x.count > 1 ? .number(x.standardDeviation, "%.3f") : Cell("–") }
                row += [mean { $0.responses.last?.usefulRate }, sd(g.usefulRate), beats(JudgeSummary.copyName), beats(JudgeSummary.refusalName),
                        mean { $0.responses.last?.measures.refusalRate }, mean { $0.responses.last?.measures.degenerateRate },
                        mean { $0.responses.last?.measures.genericRate }, mean { $0.responses.last?.measures.unfinishedRate },
                        mean { $0.correctionVsAnswer.winRate }, sd(g.winRate), mean { $0.correctionVsAnswer.tieRate }, mean { $0.correctionVsAnswer.loseRate },
                        mean({ $0.correctionVsAnswer.meanChange }, "%+.4f"), mean { $0.correctionVsReference?.winRate }]
            }
            rows.append(row)
        }
        return ReportTable(id: "arms", columns: columns, rows: rows)
    }

    /// One row per run (arm and seed).
    public func runTable() -> ReportTable {
        typealias Column = ReportTable.Column
        typealias Cell = ReportTable.Cell
        let columns = [Column("warmup_percent", "p (%)")] + gridKeys.map { Column("grid:" + $0, $0) }
            + [Column("seed", "seed"), Column("warmup_records", "warm-up records"), Column("eval_loss_stage1", "eval loss after stage 1"),
               Column("eval_loss_stage2", "eval loss after stage 2"), Column("best_eval_loss", "best eval loss"), Column("tokens_seen", "tokens seen"),
               Column("wall_seconds", "wall time")]
        let rows = results.map { r -> [Cell] in
            let res = r.result
            let s1 = res.stages.first { $0.stage == 1 }?.evalLoss ?? .nan
            let s2 = res.stages.first { $0.stage == 2 }?.evalLoss ?? .nan
            return [Cell(String(format: "%g", r.arm.percent), value: r.arm.percent)] + r.arm.point.map { Cell($0.json, value: Double($0.json)) }
                + [Cell("\(r.arm.seed)", value: Double(r.arm.seed)), Cell("\(res.warmupRecords)", value: Double(res.warmupRecords)), .number(s1), .number(s2),
                   .number(res.bestEvalLoss), Cell("\(res.tokensSeen)", value: Double(res.tokensSeen)),
                   Cell(ProgressPrinter.duration(res.wallSeconds), value: res.wallSeconds)]
        }
        return ReportTable(id: "runs", columns: columns, rows: rows)
    }

    // MARK: JSON and CSV

    /// `report.json`: the recipe's name and fingerprint, one object per arm (summary) and one per run.
    public func json() throws -> Data {
        func num(_ x: Double) -> Any { x.isFinite ? x : NSNull() }
        let groupObjects: [[String: Any]] = groups.map { g in
            var o: [String: Any] = ["warmup_percent": g.percent, "grid": Dictionary(uniqueKeysWithValues: g.point.map { ($0.key, $0.json) }),
                                    "seeds": g.runs.map(\.arm.seed), "final_eval_loss": g.runs.map { num(Group.final($0.result)) },
                                    "final_eval_loss_mean": num(g.finalLoss.mean), "final_eval_loss_sd": num(g.finalLoss.standardDeviation),
                                    "best_eval_loss_mean": num(g.bestLoss.mean)]
            if !g.judged.isEmpty {
                o["win_rate"] = g.runs.map { num(Group.winRate($0)) }
                o["win_rate_mean"] = num(g.winRate.mean)
                o["win_rate_sd"] = num(g.winRate.standardDeviation)
                o["useful_rate"] = g.runs.map { num(Group.usefulRate($0)) }
                o["useful_rate_mean"] = num(g.usefulRate.mean)
                o["useful_rate_sd"] = num(g.usefulRate.standardDeviation)
            }
            if let d = g.pairedDifference {
                o["paired_difference_to_p0"] = ["mean": num(d.mean), "sd": num(d.standardDeviation), "ci95_low": num(d.mean - d.halfWidth95),
                                                "ci95_high": num(d.mean + d.halfWidth95), "n": d.count]
            }
            return o
        }
        let object: [String: Any] = ["sweep": recipe.name, "recipe_fingerprint": recipe.fingerprint, "grid_keys": gridKeys, "best_by": (judgedBest ?? .evalLoss).rawValue,
                                     "budget": recipe.train.budget.rawValue,
                                     "best_run": bestRun.map { $0.result.runDirectory as Any } ?? NSNull(),
                                     "seeds": seeds, "arms": groupObjects, "runs": rows().map { Dictionary(uniqueKeysWithValues: zip(csvHeader, $0.map { $0 ?? NSNull() })) }]
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }

    var csvHeader: [String] {
        ["warmup_percent"] + gridKeys + ["seed", "arm", "warmup_records", "train_records", "eval_records", "initial_eval_loss",
                                         "eval_loss_stage1", "eval_loss_stage2", "best_eval_loss", "copy_rate", "near_copy_rate", "edit_to_answer",
                                         "edit_to_reference", "judged_records", "win_rate", "tie_rate", "lose_rate", "mean_score_change",
                                         "win_rate_vs_reference", "useful_rate", "useful_low", "useful_high", "vs_copy", "vs_refusal",
                                         "refusal_rate", "degenerate_rate", "generic_rate", "unfinished_rate", "tokens_seen", "wall_seconds", "recipe_fingerprint", "run_directory"]
    }

    /// One row per run, as values (nil = missing).
    func rows() -> [[Any?]] {
        func num(_ x: Double) -> Any? { x.isFinite ? x : nil }
        return results.map { r in
            let res = r.result
            let byKey = Dictionary(uniqueKeysWithValues: r.arm.point.map { ($0.key, $0.json) })
            let grid: [Any?] = gridKeys.map { key in byKey[key].map(Recipe.jsonValue) }
            let s1 = res.stages.first { $0.stage == 1 }?.evalLoss ?? .nan
            let s2 = res.stages.first { $0.stage == 2 }?.evalLoss ?? .nan
            let g = res.evalCurve.last?.generation
            let j = r.judgement?.summary
            return [r.arm.percent] + grid + [r.arm.seed, r.arm.name, res.warmupRecords, res.trainRecords, res.evalRecords, num(res.initialEvalLoss),
                                              num(s1), num(s2), num(res.bestEvalLoss), g.map { num($0.copyRate) } ?? nil, g.map { num($0.nearCopyRate) } ?? nil,
                                              g.map { num($0.editToAnswer) } ?? nil, g.map { num($0.editToReference) } ?? nil,
                                              j.map { $0.records }, j.map { num($0.correctionVsAnswer.winRate) } ?? nil,
                                              j.map { num($0.correctionVsAnswer.tieRate) } ?? nil, j.map { num($0.correctionVsAnswer.loseRate) } ?? nil,
                                              j.map { num($0.correctionVsAnswer.meanChange) } ?? nil, j.flatMap { $0.correctionVsReference.map { num($0.winRate) } } ?? nil,
                                              j?.responses.last.map { num($0.usefulRate) } ?? nil, j?.responses.last.map { num($0.usefulInterval[0]) } ?? nil,
                                              j?.responses.last.map { num($0.usefulInterval[1]) } ?? nil,
                                              j?.verdicts.first { $0.control == JudgeSummary.copyName }?.outcome.rawValue,
                                              j?.verdicts.first { $0.control == JudgeSummary.refusalName }?.outcome.rawValue,
                                              j?.responses.last.map { num($0.measures.refusalRate) } ?? nil, j?.responses.last.map { num($0.measures.degenerateRate) } ?? nil,
                                              j?.responses.last.map { num($0.measures.genericRate) } ?? nil,
                                              j?.responses.last?.measures.unfinishedRate.flatMap { num($0) },
                                              res.tokensSeen, res.wallSeconds, res.recipeFingerprint, res.runDirectory]
        }
    }

    /// `report.csv` (RFC 4180 quoting).
    public func csv() -> String {
        func field(_ v: Any?) -> String {
            guard let v else { return "" }
            var text: String
            if let d = v as? Double { text = d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d) } else if let a = v as? [Any] {
                text = (try? JSONSerialization.data(withJSONObject: a)).map { String(decoding: $0, as: UTF8.self) } ?? "\(a)"
            } else { text = "\(v)" }
            if text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) { text = "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
            return text
        }
        return ([csvHeader.map(field)] + rows().map { $0.map(field) }).map { $0.joined(separator: ",") }.joined(separator: "\n") + "\n"
    }
}
