/// A table of a report, rendered as Markdown (report.md) and HTML (report.html) from the same cells; numeric cells
/// carry their exact value (HTML's `data-value`) beside the text shown.
public struct ReportTable: Sendable {
    public var id: String
    public var columns: [Column]
    public var rows: [[Cell]]

    public init(id: String, columns: [Column] = [], rows: [[Cell]] = []) {
        (self.id, self.columns, self.rows) = (id, columns, rows)
    }

    /// A column: its key (HTML's `data-key`, stable for scripts; the names of report.json where it has them), its
    /// title, and whether it holds numbers (right-aligned).
    public struct Column: Sendable {
        public var key: String
        public var title: String
        public var numeric: Bool
        public init(_ key: String, _ title: String, numeric: Bool = true) {
            (self.key, self.title, self.numeric) = (key, title, numeric)
        }
    }

    /// A cell: its text and, for a number, the value.
    public struct Cell: Sendable {
        public var text: String
        public var value: Double?
        /// Shown in bold (Markdown `**`, HTML `<strong>`).
        public var strong: Bool
        public init(_ text: String, value: Double? = nil, strong: Bool = false) {
            (self.text, self.value, self.strong) = (text, value, strong)
        }
        /// A number shown with `format` ("–" when missing or not finite).
        public static func number(_ x: Double?, _ format: String = "%.4f") -> Cell {
            guard let x, x.isFinite else { return Cell("–") }
            return Cell(String(format: format, x), value: x)
        }
    }

    /// The table as GitHub Markdown: numeric columns right-aligned.
    public func markdown() -> String {
        var s = "|" + columns.map { " \($0.title) |" }.joined() + "\n"
        s += "|" + columns.map { $0.numeric ? "---:|" : "---|" }.joined() + "\n"
        for row in rows { s += "|" + row.map { $0.strong ? " **\($0.text)** |" : " \($0.text) |" }.joined() + "\n" }
        return s
    }
}
