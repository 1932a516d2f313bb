import Foundation

/// A self-contained HTML report: one file with its styles, its charts (SVG as `data:` images) and a small script that
/// filters the gallery; nothing is fetched (a Content-Security-Policy forbids every request and any script but the
/// report's own, by nonce). Every text from data or recipes is escaped, so a record holding `<script>` shows as text.
public struct HTMLReport: Sendable {
    public var title: String
    public var blocks: [Block]

    public init(title: String, blocks: [Block] = []) {
        self.title = title
        self.blocks = blocks
    }

    /// One part of the page, in order.
    public enum Block: Sendable {
        /// A section heading (level 2).
        case heading(String)
        /// A paragraph of plain text.
        case paragraph(String)
        case table(ReportTable)
        /// An SVG chart, embedded as a `data:` image (its own text cannot reach the page), with a caption.
        case chart(svg: String, caption: String)
        case gallery(Gallery)
    }

    /// Held-out records side by side: the question, the answer, the reference and every arm's response, each with its
    /// judge score and flags; filterable by arm and by flag, one seed per arm (the best) or every seed.
    public struct Gallery: Sendable {
        /// Arm labels in order; entries name their arm by index.
        public var arms: [String]
        /// Flag names offered in the filter (`ResponseFlags.vocabulary`).
        public var flags: [String]
        public var records: [Record]
        /// What the gallery shows, in words (above it).
        public var note: String
        /// Whether arms have several seeds (then the "every seed" switch is offered).
        public var hasSeeds: Bool

        public init(arms: [String], flags: [String], records: [Record], note: String, hasSeeds: Bool) {
            (self.arms, self.flags, self.records, self.note, self.hasSeeds) = (arms, flags, records, note, hasSeeds)
        }

        public struct Record: Sendable {
            public var question: String
            public var answer: String
            public var answerScore: Double?
            public var reference: String?
            public var referenceScore: Double?
            public var entries: [Entry]
            public init(question: String, answer: String, answerScore: Double? = nil, reference: String? = nil, referenceScore: Double? = nil,
                        entries: [Entry] = []) {
                (self.question, self.answer, self.answerScore, self.reference, self.referenceScore, self.entries) =
                    (question, answer, answerScore, reference, referenceScore, entries)
            }
        }

        /// One arm's (one seed's) response to a record.
        public struct Entry: Sendable {
            public var arm: Int
            /// The seed, or nil when the arm has one run.
            public var seed: Int?
            /// Shown when only each arm's best seed is.
            public var isBest: Bool
            public var text: String
            public var score: Double?
            public var flags: [String]
            public init(arm: Int, seed: Int?, isBest: Bool, text: String, score: Double?, flags: [String]) {
                (self.arm, self.seed, self.isBest, self.text, self.score, self.flags) = (arm, seed, isBest, text, score, flags)
            }
        }
    }

    /// Texts longer than this fold: their first `foldHead` characters show, the rest on demand.
    public static let foldAbove = 600, foldHead = 360

    /// `text` with HTML's five special characters escaped (for text and attribute values alike).
    public static func escape(_ text: String) -> String {
        var s = ""
        s.reserveCapacity(text.utf8.count)
        for c in text.unicodeScalars {
            switch c {
            case "&": s += "&amp;"
            case "<": s += "&lt;"
            case ">": s += "&gt;"
            case "\"": s += "&quot;"
            case "'": s += "&#39;"
            case "\u{0}": s += "\u{FFFD}"
            default: s.unicodeScalars.append(c)
            }
        }
        return s
    }

    /// A fresh random nonce for the page's script.
    public static func randomNonce() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
    }

    /// The page as HTML text.
    public func render(nonce: String = HTMLReport.randomNonce()) -> String {
        var s = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        s += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'nonce-\(nonce)'\">\n"
        s += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        s += "<title>\(Self.escape(title))</title>\n<style>\(Self.style)</style>\n</head>\n<body>\n"
        s += "<h1>\(Self.escape(title))</h1>\n"
        var hasGallery = false
        for block in blocks {
            switch block {
            case .heading(let h): s += "<h2>\(Self.escape(h))</h2>\n"
            case .paragraph(let p): s += "<p>\(Self.escape(p))</p>\n"
            case .table(let t): s += Self.render(t)
            case .chart(let svg, let caption):
                s += "<figure><img alt=\"\(Self.escape(caption))\" src=\"data:image/svg+xml;base64,\(Data(svg.utf8).base64EncodedString())\">"
                s += "<figcaption>\(Self.escape(caption))</figcaption></figure>\n"
            case .gallery(let g):
                hasGallery = true
                s += Self.render(g)
            }
        }
        if hasGallery { s += "<script nonce=\"\(nonce)\">\(Self.script)</script>\n" }
        s += "</body>\n</html>\n"
        return s
    }

    static func render(_ t: ReportTable) -> String {
        var s = "<div class=\"scroll\"><table id=\"\(escape(t.id))\">\n<thead><tr>"
        for c in t.columns { s += "<th data-key=\"\(escape(c.key))\"\(c.numeric ? " class=\"num\"" : "")>\(escape(c.title))</th>" }
        s += "</tr></thead>\n<tbody>\n"
        for row in t.rows {
            s += "<tr>"
            for (c, cell) in zip(t.columns, row) {
                s += "<td data-key=\"\(escape(c.key))\""
                if let v = cell.value { s += " data-value=\"\(v)\"" }
                s += c.numeric && cell.value != nil ? " class=\"num\">" : ">"  // a long text in a numeric column reads left to right
                s += cell.strong ? "<strong>\(escape(cell.text))</strong></td>" : escape(cell.text) + "</td>"
            }
            s += "</tr>\n"
        }
        return s + "</tbody></table></div>\n"
    }

    /// A text block: escaped, newlines kept (CSS), folded when long.
    static func text(_ text: String) -> String {
        if text.isEmpty { return "<div class=\"text empty\">(empty)</div>" }
        let count = text.count
        guard count > foldAbove else { return "<div class=\"text\">\(escape(text))</div>" }
        let head = String(text.prefix(foldHead))
        return "<details class=\"text fold\"><summary><span class=\"head\">\(escape(head))…</span> <span class=\"more\">(\(count) characters: show all)</span></summary>"
            + "<div class=\"text\">\(escape(text))</div></details>"
    }

    static func score(_ x: Double?) -> String {
        guard let x, x.isFinite else { return "" }
        return " <span class=\"score\">score \(String(format: "%.3f", x))</span>"
    }

    static func render(_ g: Gallery) -> String {
        var s = "<section id=\"gallery\">\n<p>\(escape(g.note))</p>\n<form id=\"filters\"><fieldset><legend>Arms</legend>"
        for (i, arm) in g.arms.enumerated() {
            s += "<label><input type=\"checkbox\" name=\"arm\" value=\"\(i)\" checked> \(escape(arm))</label> "
        }
        s += "</fieldset><fieldset><legend>Flag</legend><label>show records where a shown response is <select name=\"flag\"><option value=\"\">any</option>"
        for f in g.flags { s += "<option value=\"\(escape(f))\">\(escape(f))</option>" }
        s += "</select></label>"
        if g.hasSeeds { s += " <label><input type=\"checkbox\" name=\"seeds\"> every seed (else each arm's best seed)</label>" }
        s += "</fieldset></form>\n<p id=\"shown\">\(g.records.count) of \(g.records.count) records shown</p>\n"
        for (k, r) in g.records.enumerated() {
            s += "<article class=\"record\" data-index=\"\(k)\">\n<h3>Record \(k + 1)</h3>\n"
            s += "<div class=\"part question\"><h4>Question</h4>\(text(r.question))</div>\n"
            s += "<div class=\"part answer\"><h4>Answer\(score(r.answerScore))</h4>\(text(r.answer))</div>\n"
            if let ref = r.reference { s += "<div class=\"part reference\"><h4>Reference correction\(score(r.referenceScore))</h4>\(text(ref))</div>\n" }
            for e in r.entries {
                let arm = e.arm < g.arms.count ? g.arms[e.arm] : "arm \(e.arm)"
                let flags = e.flags.map(escape).joined(separator: " ")
                s += "<div class=\"part entry\" data-arm=\"\(e.arm)\"\(e.seed.map { " data-seed=\"\($0)\"" } ?? "") data-best=\"\(e.isBest ? 1 : 0)\" data-flags=\"\(flags)\"\(e.isBest ? "" : " hidden")>"
                s += "<h4><span class=\"arm\">\(escape(arm))</span>\(e.seed.map { " · seed \($0)\(e.isBest && g.hasSeeds ? " (best)" : "")" } ?? "")\(score(e.score))"
                s += e.flags.map { " <span class=\"flag \(escape($0))\">\(escape($0))</span>" }.joined() + "</h4>"
                s += text(e.text) + "</div>\n"
            }
            s += "</article>\n"
        }
        return s + "</section>\n"
    }

    static let style = """
    body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:1180px;padding:0 1em;color:#1b1f24;background:#fff}
    h1{font-size:1.5em}h2{margin-top:1.6em;border-bottom:1px solid #d0d7de}h3{margin:.2em 0}h4{margin:.1em 0 .3em;font-size:.9em;color:#444}
    .scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.85em}th,td{border:1px solid #d0d7de;padding:.25em .5em;vertical-align:top}
    th{background:#f3f5f7}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
    figure{margin:1em 0}figure img{max-width:100%;border:1px solid #d0d7de}figcaption{font-size:.85em;color:#555}
    form{display:flex;flex-wrap:wrap;gap:.6em;margin:.6em 0}fieldset{border:1px solid #d0d7de;padding:.3em .7em}
    article.record{border:1px solid #d0d7de;border-radius:6px;margin:1em 0;padding:.6em .9em}
    .part{margin:.4em 0;padding:.4em .6em;border-left:4px solid #d0d7de;background:#fafbfc}
    .question{border-color:#8c959f}.answer{border-color:#bf8700}.reference{border-color:#1a7f37}.entry{border-color:#0969da;background:#f6f9ff}
    .text{white-space:pre-wrap;overflow-wrap:anywhere}.text.empty{color:#888;font-style:italic}
    details.fold>summary{cursor:pointer;list-style:none}details.fold[open]>summary .head{display:none}.more{color:#0969da;font-size:.85em}
    .score{font-weight:normal;color:#555;margin-left:.5em}.arm{font-weight:600;color:#0a3069}
    .flag{display:inline-block;margin-left:.35em;padding:0 .45em;border-radius:9px;font-size:.8em;font-weight:600;background:#eaeef2;color:#24292f}
    .flag.copy{background:#fff1c2}.flag.refusal{background:#ffd8d3}.flag.degenerate,.flag.unfinished{background:#ffe2cc}
    .flag.generic{background:#e8ddff}.flag.useful{background:#cdf5d6}.flag.not-useful{background:#eaeef2}
    [hidden]{display:none!important}
    """

    /// Shows each response whose arm is ticked (its best seed, or every seed), and each record that has a shown response
    /// carrying the chosen flag. A link may preset the filters: `report.html#flag=refusal&arms=0,2&seeds=all`.
    static let script = """
    (function(){
    var form=document.getElementById('filters');if(!form)return;
    location.hash.slice(1).split('&').forEach(function(kv){var p=kv.split('='),k=decodeURIComponent(p[0]),v=decodeURIComponent(p[1]||'');
    if(k==='flag'){var s=form.querySelector('select[name=flag]');for(var i=0;i<s.options.length;i++)if(s.options[i].value===v)s.value=v;}
    if(k==='seeds'&&v==='all'){var c=form.querySelector('input[name=seeds]');if(c)c.checked=true;}
    if(k==='arms'){var on={};v.split(',').forEach(function(a){on[a]=true;});form.querySelectorAll('input[name=arm]').forEach(function(c){c.checked=on[c.value]===true;});}});
    function update(){
    var arms={};form.querySelectorAll('input[name=arm]').forEach(function(c){if(c.checked)arms[c.value]=true;});
    var flag=form.querySelector('select[name=flag]').value;
    var seeds=form.querySelector('input[name=seeds]');var every=seeds?seeds.checked:true;
    var shown=0,total=0;
    document.querySelectorAll('article.record').forEach(function(r){
    total++;var match=false;
    r.querySelectorAll('.entry').forEach(function(e){
    var visible=arms[e.dataset.arm]===true&&(every||e.dataset.best==='1');e.hidden=!visible;
    if(visible&&(flag===''||(' '+e.dataset.flags+' ').indexOf(' '+flag+' ')>=0))match=true;});
    if(flag===''&&r.querySelectorAll('.entry').length===0)match=true;
    r.hidden=!match;if(match)shown++;});
    document.getElementById('shown').textContent=shown+' of '+total+' records shown';}
    form.addEventListener('change',update);update();})();
    """
}
