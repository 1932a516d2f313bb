import AlignerData
@testable import AlignerRecipes
@testable import AlignerRuns
@testable import AlignerSweeps
@testable import AlignerTraining
import Foundation
import TrainingTestSupport
import XCTest


final class SweepTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try temporaryTestDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func testGridReadsFromTOMLAndOverridesAndRoundTrips() throws {
        let url = dir.appendingPathComponent("g.toml")
        try "name = \"g\"\n[sweep]\nseeds = [1, 2]\n[sweep.grid]\n\"stage2.lr\" = [1e-3, 3e-3]\n\"lora.targets\" = [[\"q_proj\"], [\"all-linear\"]]\n"
            .write(to: url, atomically: true, encoding: .utf8)
        let r = try Recipe.load(path: url.path)
        XCTAssertEqual(r.sweep.seeds, [1, 2])
        XCTAssertEqual(r.sweep.grid, [Recipe.GridAxis(key: "lora.targets", values: ["[\"q_proj\"]", "[\"all-linear\"]"]),
                                      Recipe.GridAxis(key: "stage2.lr", values: ["0.001", "0.003"])])
        let back = dir.appendingPathComponent("back.json")
        try r.jsonData().write(to: back)
        XCTAssertEqual(try Recipe.load(path: back.path), r)
        let o = try Recipe.load(path: url.path, overrides: [#"sweep.grid={"stage1.epochs":[1,2]}"#])
        XCTAssertEqual(o.sweep.grid, [Recipe.GridAxis(key: "stage1.epochs", values: ["1", "2"])])
        // Keys the grid may not vary, unknown keys, empty or repeated values are refused by name.
        for (grid, needle) in [(#"{"seed":[1,2]}"#, "sweep.seeds"), (#"{"data.warmup_percent":[1]}"#, "sweep.warmup_percents"),
                               (#"{"stage9.lr":[1]}"#, "not a recipe key"), (#"{"stage2.lr":[]}"#, "at least one value"),
                               (#"{"stage2.lr":[1,1]}"#, "twice"), (#"{"stage2.lr":3}"#, "list of values")] {
            XCTAssertThrowsError(try Recipe.load(path: url.path, overrides: ["sweep.grid=\(grid)"]), grid) {
                XCTAssertEqual(($0 as? RecipeError)?.key, "sweep.grid", "\($0)")
                XCTAssertTrue("\($0)".contains(needle), "\($0)")
            }
        }
        XCTAssertThrowsError(try Recipe.load(path: url.path, overrides: ["sweep.seeds=[3,3]"])) { XCTAssertEqual(($0 as? RecipeError)?.key, "sweep.seeds") }
    }

    func testDifferencesIgnoreOperationalKeysAndNameTheOthers() throws {
        let a = try tinyRecipe("a", in: dir)
        let b = try tinyRecipe("b", in: dir, ["train.threads=1", "train.log_every=1", "train.keep_checkpoints=3", "sweep.seeds=[4]"])
        XCTAssertEqual(a.differences(from: b), [])
        XCTAssertEqual(a.fingerprint, b.fingerprint)
        let c = try tinyRecipe("c", in: dir, ["stage2.epochs=2", "lora.rank=4"])
        XCTAssertEqual(c.differences(from: a), ["lora.rank (16 → 4)", "stage2.epochs (3 → 2)"])
        XCTAssertNotEqual(c.fingerprint, a.fingerprint)
        // An unset split seed is the seed itself.
        let d = try tinyRecipe("d", in: dir, ["data.split_seed=7"])
        XCTAssertEqual(d.differences(from: a), [])
    }

    func testArmsCrossSeedsGridAndProportions() throws {
        let r = try tinyRecipe("s", in: dir, ["sweep.warmup_percents=[0,20]", "sweep.seeds=[11,12]", #"sweep.grid={"stage2.lr":[0.001,0.003]}"#])
        let arms = try Sweep.arms(of: r)
        XCTAssertEqual(arms.map(\.name), [
            "arm-p0-stage2.lr=0.001-seed11", "arm-p20-stage2.lr=0.001-seed11", "arm-p0-stage2.lr=0.003-seed11", "arm-p20-stage2.lr=0.003-seed11",
            "arm-p0-stage2.lr=0.001-seed12", "arm-p20-stage2.lr=0.001-seed12", "arm-p0-stage2.lr=0.003-seed12", "arm-p20-stage2.lr=0.003-seed12",
        ])
        XCTAssertEqual(arms.map(\.recipe.seed), [11, 11, 11, 11, 12, 12, 12, 12])
        XCTAssertTrue(arms.allSatisfy { $0.recipe.data.splitSeed == 7 })  // the sweep's seed: one evaluation set
        XCTAssertEqual(arms.map(\.recipe.stage2.lr), [0.001, 0.001, 0.003, 0.003, 0.001, 0.001, 0.003, 0.003])
        XCTAssertEqual(arms.map(\.recipe.data.warmupPercent), [0, 20, 0, 20, 0, 20, 0, 20])
        // Each grid point's first arm trains the tokenizer; the point's other arms load it.
        XCTAssertEqual(arms[0].recipe.tokenizer.path, "")
        XCTAssertEqual(arms[2].recipe.tokenizer.path, "")
        XCTAssertTrue(arms[1].recipe.tokenizer.path.hasSuffix("s/arm-p0-stage2.lr=0.001-seed11/tokenizer.json"))
        XCTAssertTrue(arms[7].recipe.tokenizer.path.hasSuffix("s/arm-p0-stage2.lr=0.003-seed11/tokenizer.json"))
        XCTAssertTrue(arms.allSatisfy { Recipe.isPlainFolderName($0.name) })
        // Without sweep.seeds the arms keep the recipe's seed and their old names.
        XCTAssertEqual(try Sweep.arms(of: tinyRecipe("t", in: dir, ["sweep.warmup_percents=[0,2.5]"])).map(\.name), ["arm-p0", "arm-p2_5"])
        // A grid value the recipe refuses names the arm and the key.
        XCTAssertThrowsError(try Sweep.arms(of: tinyRecipe("u", in: dir, [#"sweep.grid={"stage2.lr":[0.001,-1]}"#]))) {
            XCTAssertTrue("\($0)".contains("stage2.lr = -1") && "\($0)".contains("must be positive"), "\($0)")
        }
    }

    func testRoundTicks() {
        XCTAssertEqual(AxisTicks(4.1, 7.8).values, [5, 6, 7])
        XCTAssertEqual(AxisTicks(4.1, 7.8).label(5), "5")
        XCTAssertEqual(AxisTicks(2.31, 2.39).values.map { ($0 * 1000).rounded() }, [2320, 2340, 2360, 2380])
        XCTAssertEqual(AxisTicks(2.31, 2.39).label(2.32), "2.32")
        XCTAssertEqual(AxisTicks(0, 116).values, [0, 25, 50, 75, 100])
    }

    /// Two seeds × two proportions: the report has means, spreads and paired differences in Markdown, JSON and CSV;
    /// the same sweep run again reuses every arm; a changed key is refused naming it; --restart retrains.
    func testJudgedSweepReportsWinRatesAndChoosesTheBestArmByThem() throws {
        // A tiny reward model on the same records and held-out questions (same seed and split).
        let rm = RewardTrainer(recipe: try tinyRecipe("rm", in: dir, ["reward.epochs=1", "reward.lr=3e-3", "train.checkpoint_every=0"]), isTerminal: false)
        rm.quiet = true
        _ = try rm.run()
        let overrides = ["sweep.warmup_percents=[0,50]", "sweep.seeds=[1,2]", "stage1.epochs=1", "stage2.epochs=1", "train.generate_max_new_tokens=6",
                         "sweep.judge=\(dir.appendingPathComponent("rm").path)", "sweep.judge_records=10", "sweep.best_by=win_rate"]
        let recipe = try tinyRecipe("judged", in: dir, overrides)
        let sweep = Sweep(recipe: recipe, isTerminal: false)
        var lines: [String] = []
        let results = try sweep.run { lines.append($0) }
        XCTAssertEqual(lines.filter { $0.hasPrefix("judged arm-") }.count, 4, lines.joined(separator: "\n"))
        let judgements = try results.map { try XCTUnwrap($0.judgement) }
        XCTAssertTrue(judgements.allSatisfy { $0.records == 10 && $0.summary.correctionVsReference != nil })
        for j in judgements {
            let c = j.summary.correctionVsAnswer
            XCTAssertEqual(c.wins + c.ties + c.losses, 10)
        }
        // The same answers and references are scored for every run (memoised): one mean answer score.
        XCTAssertEqual(Set(judgements.map(\.summary.meanAnswerScore)).count, 1)
        let report = SweepReport(recipe: recipe, results: results)
        let winner = try XCTUnwrap(report.winner)
        XCTAssertEqual(winner.winRate.mean, report.groups.map(\.winRate.mean).max())
        let best = try XCTUnwrap(report.bestRun)
        XCTAssertEqual(SweepReport.Group.winRate(best), winner.runs.map(SweepReport.Group.winRate).max())
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: sweep.directory.appendingPathComponent("report.json"))) as? [String: Any])
        XCTAssertEqual(json["best_by"] as? String, "win_rate")
        XCTAssertEqual(json["best_run"] as? String, best.result.runDirectory)
        let md = try String(contentsOf: sweep.directory.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(md.contains("| win rate vs answer |") && md.contains("Highest mean win rate"), md)
        let csv = try String(contentsOf: sweep.directory.appendingPathComponent("report.csv"), encoding: .utf8).split(separator: "\n")
        let column = try XCTUnwrap(csv[0].split(separator: ",").firstIndex(of: "win_rate"))
        XCTAssertTrue(csv.dropFirst().allSatisfy { Double($0.split(separator: ",", omittingEmptySubsequences: false)[column]) != nil })
        // report.html: the arm table's numbers are report.json's; every run's corrections of the 10 judged records, with scores.
        let html = try String(contentsOf: sweep.directory.appendingPathComponent("report.html"), encoding: .utf8)
        let arms = try XCTUnwrap(json["arms"] as? [[String: Any]])
        for arm in arms {
            let mean = try XCTUnwrap(arm["win_rate_mean"] as? Double)
            XCTAssertTrue(html.contains("data-key=\"win_rate_mean\" data-value=\"\(mean)\" class=\"num\">\(String(format: "%.3f", mean))</td>"), "\(mean)")
        }
        XCTAssertEqual(html.components(separatedBy: "<article class=\"record\"").count - 1, 10)
        XCTAssertEqual(html.components(separatedBy: "<div class=\"part entry\"").count - 1, 40)  // 10 records × 2 arms × 2 seeds
        XCTAssertEqual(html.components(separatedBy: "data-best=\"1\"").count - 1, 20)  // one seed per arm shown at first
        XCTAssertTrue(html.contains("<option value=\"useful\">useful</option>") && html.contains("<span class=\"score\">score "))
        XCTAssertTrue(try judgements.allSatisfy { try XCTUnwrap($0.corrected).records.count == 10 })
        // Each run's TensorBoard folder holds the judgement's numbers in an event file of their own: the version event
        // and one record per number (TFRecord framing: 8-byte length, 4-byte CRC, the event, 4-byte CRC).
        func judgeEvents(_ run: Sweep.ArmResult) throws -> [Int] {
            let folder = URL(fileURLWithPath: run.result.runDirectory).appendingPathComponent("tensorboard")
            return try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".judge") }.map { name in
                let bytes = [UInt8](try Data(contentsOf: folder.appendingPathComponent(name)))
                var (offset, records) = (0, 0)
                while offset + 12 <= bytes.count {
                    let length = (0..<8).reduce(0) { $0 | Int(bytes[offset + $1]) << (8 * $1) }
                    offset += 12 + length + 4
                    records += 1
                }
                XCTAssertEqual(offset, bytes.count)
                return records
            }
        }
        for (run, j) in zip(results, judgements) { XCTAssertEqual(try judgeEvents(run), [1 + j.scalars.count]) }
        XCTAssertEqual(judgements[0].scalars.first?.0, "useful_rate")
        XCTAssertEqual(judgements[0].scalars.first?.1, judgements[0].summary.responses.last?.usefulRate)
        // Run again: every judgement is reused from its judge.json, and its events are not written twice.
        lines = []
        _ = try Sweep(recipe: recipe, isTerminal: false).run { lines.append($0) }
        XCTAssertEqual(lines.filter { $0.hasPrefix("judged arm-") }.count, 0, lines.joined(separator: "\n"))
        for (run, j) in zip(results, judgements) { XCTAssertEqual(try judgeEvents(run), [1 + j.scalars.count]) }
        // best_by = win_rate without a judge is refused by name.
        XCTAssertThrowsError(try tinyRecipe("x", in: dir, ["sweep.best_by=win_rate"])) { XCTAssertEqual(($0 as? RecipeError)?.key, "sweep.best_by") }
    }

    /// Records holding markup reach report.html as text: the gallery (the last evaluation's corrections, without a
    /// judge) shows the question and answer escaped, and no element comes from the data.
    func testReportHTMLShowsHostileRecordsAsText() throws {
        let hostile = #"<script>document.title='pwned'</script><img src=x onerror="alert(1)">"#
        let source = try RecordReader.read(path: repositoryRoot.appendingPathComponent("data/qac/hh-rlhf-harmless-base-test.qac.jsonl.gz").path,
                                           fields: FieldNames()).records.prefix(120)
        let records = source.map { QACRecord(question: hostile + " " + $0.question, answer: $0.answer + " </div>" + hostile, correction: $0.correction) }
        let data = dir.appendingPathComponent("hostile.jsonl")
        try RecordReader.write(Array(records), to: data.path, fields: FieldNames())
        let recipe = try tinyRecipe("hostile", in: dir, ["data.train=[\"\(data.path)\"]", "sweep.warmup_percents=[0,50]", "stage1.epochs=1", "stage2.epochs=1",
                                                         "train.generate_eval=3", "train.generate_max_new_tokens=4"])
        let sweep = Sweep(recipe: recipe, isTerminal: false)
        _ = try sweep.run { _ in }
        let html = try String(contentsOf: sweep.directory.appendingPathComponent("report.html"), encoding: .utf8)
        XCTAssertEqual(html.components(separatedBy: "<script").count - 1, 1, "only the page's own script")
        XCTAssertFalse(html.contains("<img src=x"))
        // 3 records × question and answer (a folded text shows its head too)
        XCTAssertGreaterThanOrEqual(html.components(separatedBy: "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;").count - 1, 6)
        XCTAssertEqual(html.components(separatedBy: "<div class=\"part entry\"").count - 1, 6)  // 3 records × 2 arms
        XCTAssertTrue(html.contains("the corrections of each run&#39;s last evaluation during training"))
        XCTAssertFalse(html.contains("<option value=\"useful\">"))  // not judged: no useful flag to filter by
        let keptURL = sweep.directory.appendingPathComponent("arm-p0/eval-corrections.json")
        let kept = try ResultJSON.decode(HeldOutCorrections.self, from: Data(contentsOf: keptURL))
        XCTAssertEqual(kept.records.count, 3)
        XCTAssertTrue(kept.records.allSatisfy { $0.question.hasPrefix(hostile) })
        // A damaged file of kept corrections is named, and the page shows the other run's corrections only.
        try Data(contentsOf: keptURL).prefix(40).write(to: keptURL)
        var lines: [String] = []
        _ = try Sweep(recipe: recipe, isTerminal: false).run { lines.append($0) }
        XCTAssertTrue(lines.contains { $0.hasPrefix("note: \(keptURL.path) is damaged") && $0.hasSuffix("leaves out the corrections of arm-p0") }, lines.joined(separator: "\n"))
        let again = try String(contentsOf: sweep.directory.appendingPathComponent("report.html"), encoding: .utf8)
        XCTAssertEqual(again.components(separatedBy: "<div class=\"part entry\"").count - 1, 3)
    }

    func testSeededSweepReportsAndRefusesAChangedRecipe() throws {
        let overrides = ["sweep.warmup_percents=[0,50]", "sweep.seeds=[1,2]", "stage1.epochs=1", "stage2.epochs=1", "data.limit=80", "data.eval_count=16",
                         "train.generate_eval=2", "train.generate_max_new_tokens=4"]
        let recipe = try tinyRecipe("seeds", in: dir, overrides)
        let sweep = Sweep(recipe: recipe, isTerminal: false)
        let results = try sweep.run { _ in }
        XCTAssertEqual(results.map(\.arm.seed), [1, 1, 2, 2])
        XCTAssertEqual(Set(results.map(\.result.evalRecords)), [results[0].result.evalRecords])
        // Different seeds give different initial models (same eval set), so different initial losses.
        XCTAssertNotEqual(results[0].result.initialEvalLoss, results[2].result.initialEvalLoss)
        XCTAssertEqual(results[0].result.initialEvalLoss, results[1].result.initialEvalLoss)
        let report = SweepReport(recipe: recipe, results: results)
        typealias Group = SweepReport.Group
        let g50 = try XCTUnwrap(report.groups.first { $0.percent == 50 })
        let finals = { (p: Double, seed: Int) in results.first { $0.arm.percent == p && $0.arm.seed == seed }!.result.stages.last!.evalLoss }
        XCTAssertEqual(g50.finalLoss.mean, (finals(50, 1) + finals(50, 2)) / 2, accuracy: 1e-12)
        XCTAssertEqual(g50.pairedDifference!.mean, (finals(50, 1) - finals(0, 1) + finals(50, 2) - finals(0, 2)) / 2, accuracy: 1e-12)
        let md = try String(contentsOf: sweep.directory.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(md.contains("Δ vs p = 0") && md.contains("Seeds: 1, 2") && md.contains(SweepReport.f4(g50.finalLoss.mean)), md)
        let csv = try String(contentsOf: sweep.directory.appendingPathComponent("report.csv"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv.count, 5)
        XCTAssertTrue(csv[0].hasPrefix("warmup_percent,seed,arm,"))
        let copyColumn = try XCTUnwrap(csv[0].split(separator: ",").firstIndex(of: "copy_rate"))
        XCTAssertTrue(csv.dropFirst().allSatisfy { Double($0.split(separator: ",", omittingEmptySubsequences: false)[copyColumn]) != nil })
        XCTAssertTrue(md.contains("| copy rate |") && md.contains("greedy corrections of the first 2 held-out records"), md)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: sweep.directory.appendingPathComponent("report.json"))) as? [String: Any])
        XCTAssertEqual((json["runs"] as? [Any])?.count, 4)
        let arm50 = try XCTUnwrap((json["arms"] as? [[String: Any]])?.first { $0["warmup_percent"] as? Double == 50 })
        XCTAssertEqual((arm50["paired_difference_to_p0"] as? [String: Any])?["n"] as? Int, 2)
        let svg = try String(contentsOf: sweep.directory.appendingPathComponent("eval-loss.svg"), encoding: .utf8)
        XCTAssertGreaterThanOrEqual(svg.components(separatedBy: "<polygon").count - 1, 2)  // the seeds' range of each arm over the whole run
        XCTAssertTrue(svg.contains("Last half of stage 2") && svg.contains("Copy rate of greedy corrections"))

        // best-of-sweep: the lowest mean arm, then its best seed, then that run's best checkpoint.
        let winner = try XCTUnwrap(report.winner)
        let bestRun = try XCTUnwrap(winner.runs.min { Group.final($0.result) < Group.final($1.result) })
        let resolved = try RunLocator.resolve("best-of-sweep:" + sweep.directory.path)
        XCTAssertEqual(resolved.standardizedFileURL.path, try XCTUnwrap(bestRun.result.best?.path))
        XCTAssertEqual(RunLocator.pinnedName("best-of-sweep:" + sweep.directory.path, location: resolved.path), resolved.path)

        var again: [String] = []
        _ = try Sweep(recipe: recipe, isTerminal: false).run { again.append($0) }
        XCTAssertEqual(again.filter { $0.contains("already finished") }.count, 4)

        // The README's trap: the same sweep with another stage-2 budget must not reuse the finished arms.
        let changed = try tinyRecipe("seeds", in: dir, overrides + ["stage2.epochs=2"])
        XCTAssertThrowsError(try Sweep(recipe: changed, isTerminal: false).run { _ in }) {
            XCTAssertTrue("\($0)".contains("stage2.epochs (1 → 2)") && "\($0)".contains("arm-p50-seed2") && "\($0)".contains("--restart"), "\($0)")
        }
        let restarted = Sweep(recipe: changed, isTerminal: false)
        restarted.restart = true
        var lines: [String] = []
        let redone = try restarted.run { lines.append($0) }
        XCTAssertEqual(lines.filter { $0.contains("retraining") }.count, 4)
        XCTAssertTrue(redone.allSatisfy { $0.result.recipeFingerprint == $0.arm.recipe.fingerprint })
        XCTAssertTrue(redone.allSatisfy { $0.result.stages.last!.steps > results[0].result.stages.last!.steps })
    }

    func testSweepArmsShareInitAndEvalAndResumeArmByArm() throws {
        let recipe = try tinyRecipe("sweep", in: dir, ["sweep.warmup_percents=[0,50]", "stage2.epochs=1", "stage1.epochs=1"])
        let sweep = Sweep(recipe: recipe, isTerminal: false)
        var lines: [String] = []
        let results = try sweep.run { lines.append($0) }.map(\.result)
        XCTAssertEqual(results.map(\.warmupPercent), [0, 50])
        XCTAssertEqual(results[0].initialEvalLoss, results[1].initialEvalLoss)  // same weights, same eval set
        XCTAssertEqual(results[0].evalRecords, results[1].evalRecords)
        XCTAssertEqual(results[0].stages.last!.steps, results[1].stages.last!.steps)  // same stage-2 budget
        XCTAssertEqual(results[1].stages.map(\.stage), [1, 2])
        let report = try String(contentsOf: sweep.directory.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(report.contains("| 50 |"))
        let svg = try String(contentsOf: sweep.directory.appendingPathComponent("eval-loss.svg"), encoding: .utf8)
        // Each arm is a curve in the whole-run panel, and in the zoomed panel a curve or, with one evaluation there, a dot.
        let zoomed = try XCTUnwrap(svg.components(separatedBy: "Last half of stage 2").last?.components(separatedBy: "Final eval loss per arm").first)
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1 - (zoomed.components(separatedBy: "<polyline").count - 1), 2)
        XCTAssertEqual(zoomed.components(separatedBy: "<polyline").count - 1 + zoomed.components(separatedBy: "<circle").count - 1, 2)
        // Running again reuses finished arms.
        var again: [String] = []
        _ = try Sweep(recipe: recipe, isTerminal: false).run { again.append($0) }
        XCTAssertEqual(again.filter { $0.contains("already finished") }.count, 2)
    }
}
