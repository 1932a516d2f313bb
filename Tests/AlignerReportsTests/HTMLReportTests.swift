@testable import AlignerReports
import Foundation
import XCTest

final class HTMLReportTests: XCTestCase {
    func testEscapesEveryTextAndAttribute() {
        XCTAssertEqual(HTMLReport.escape(#"<script>alert("x")</script> & 'y'"#),
                       "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;")
        let hostile = #"</div><script>document.title='pwned'</script><img src=x onerror=alert(1)>"#
        let page = HTMLReport(title: hostile, blocks: [
            .heading(hostile), .paragraph(hostile),
            .table(ReportTable(id: "t\"x", columns: [.init("k\"", hostile, numeric: false)], rows: [[.init(hostile)]])),
            .chart(svg: "<svg xmlns=\"http://www.w3.org/2000/svg\"><text>\(HTMLReport.escape(hostile))</text></svg>", caption: hostile),
            .gallery(.init(arms: [hostile], flags: ["copy"], records: [.init(question: hostile, answer: hostile, reference: hostile,
                                                                                entries: [.init(arm: 0, seed: 1, isBest: true, text: hostile, score: 0.5, flags: ["copy"])])],
                           note: hostile, hasSeeds: true)),
        ]).render(nonce: "abc")
        // The only script element is the page's own; no attribute or tag comes from the data.
        XCTAssertEqual(page.components(separatedBy: "<script").count - 1, 1)
        XCTAssertTrue(page.contains("<script nonce=\"abc\">"))
        XCTAssertFalse(page.contains("<img src=x"))
        XCTAssertFalse(page.contains("onerror=alert(1)>"))
        XCTAssertTrue(page.contains("&lt;/div&gt;&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;"))
        // Every request is forbidden but data: images; scripts only by nonce.
        XCTAssertTrue(page.contains("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'nonce-abc'"))
        XCTAssertFalse(page.contains("http://") && !page.contains("data:image/svg+xml;base64,"))
        // The chart is a data: image, so its text never reaches the page's markup.
        XCTAssertFalse(page.contains("<svg"))
    }

    func testLongTextsFoldAndNumbersKeepTheirValues() throws {
        let long = String(repeating: "word ", count: 200)  // 1,000 characters
        let page = HTMLReport(title: "t", blocks: [.gallery(.init(arms: ["a"], flags: [], records: [.init(question: long, answer: "short")],
                                                              note: "", hasSeeds: false))]).render(nonce: "n")
        XCTAssertTrue(page.contains("<details class=\"text fold\">"))
        XCTAssertTrue(page.contains("(1000 characters: show all)"))
        XCTAssertEqual(page.components(separatedBy: "<details").count - 1, 1)  // the short answer does not fold
        let table = ReportTable(id: "arms", columns: [.init("p", "p (%)"), .init("loss", "eval loss"), .init("seeds", "per seed", numeric: false)],
                                rows: [[.init("20", value: 20), .number(2.123456789), .init("2.1, 2.2")], [.init("0", value: 0), .number(.nan), .init("–")]])
        XCTAssertEqual(table.markdown(), "| p (%) | eval loss | per seed |\n|---:|---:|---|\n| 20 | 2.1235 | 2.1, 2.2 |\n| 0 | – | – |\n")
        let html = HTMLReport(title: "t", blocks: [.table(table)]).render(nonce: "n")
        XCTAssertTrue(html.contains("<td data-key=\"loss\" data-value=\"2.123456789\" class=\"num\">2.1235</td>"), html)
        XCTAssertTrue(html.contains("<td data-key=\"loss\">–</td>"))  // no number: not right-aligned
        // A strong cell: bold in both renderings.
        let verdict = ReportTable(id: "v", columns: [.init("metric", "metric", numeric: false), .init("value", "value")],
                                  rows: [[.init("verdict", strong: true), .init("useful 0.5")]])
        XCTAssertEqual(verdict.markdown(), "| metric | value |\n|---|---:|\n| **verdict** | useful 0.5 |\n")
        XCTAssertTrue(HTMLReport(title: "t", blocks: [.table(verdict)]).render(nonce: "n")
            .contains("<td data-key=\"metric\"><strong>verdict</strong></td><td data-key=\"value\">useful 0.5</td>"))
        // Without a gallery, no script at all.
        XCTAssertFalse(html.contains("<script"))
    }

    func testGalleryMarksBestSeedsAndFlagsForTheFilter() {
        let g = HTMLReport.Gallery(arms: ["p = 0%", "p = 20%"], flags: ["copy", "refusal"], records: [
            .init(question: "q", answer: "a", answerScore: 0.25, reference: "r", referenceScore: 1, entries: [
                .init(arm: 0, seed: 1, isBest: true, text: "a", score: 0.25, flags: ["copy"]),
                .init(arm: 0, seed: 2, isBest: false, text: "b", score: 0.5, flags: []),
                .init(arm: 1, seed: 1, isBest: true, text: "I'm sorry", score: -1, flags: ["refusal", "not-useful"]),
            ]),
        ], note: "n", hasSeeds: true)
        let page = HTMLReport(title: "t", blocks: [.gallery(g)]).render(nonce: "n")
        XCTAssertTrue(page.contains("<div class=\"part entry\" data-arm=\"0\" data-seed=\"1\" data-best=\"1\" data-flags=\"copy\">"))
        XCTAssertTrue(page.contains("<div class=\"part entry\" data-arm=\"0\" data-seed=\"2\" data-best=\"0\" data-flags=\"\" hidden>"))
        XCTAssertTrue(page.contains("data-flags=\"refusal not-useful\""))
        XCTAssertTrue(page.contains("<input type=\"checkbox\" name=\"seeds\">"))
        XCTAssertTrue(page.contains("<option value=\"refusal\">refusal</option>"))
        XCTAssertTrue(page.contains("seed 1 (best)"))
        XCTAssertTrue(page.contains("I&#39;m sorry"))
        XCTAssertTrue(page.contains("<h4>Answer <span class=\"score\">score 0.250</span></h4>"))
    }
}
