import AlignerFiles
import AlignerRecipes
import AlignerData
import AlignerTokenizers
import ArgumentParser
import Foundation

/// Options naming the fields of a Q-A-C file and the bad-record policy.
struct RecordOptions: ParsableArguments {
    @Option(help: "Field names question,answer,correction.") var fields = "question,answer,correction"
    @Flag(help: "Skip bad records (and report them) instead of stopping at the first.") var skipBad = false

    func fieldNames() throws -> FieldNames {
        let parts = fields.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty }) else {
            throw ValidationError("--fields needs three comma-separated names, got '\(fields)'")
        }
        return FieldNames(question: parts[0], answer: parts[1], correction: parts[2])
    }
    var policy: BadRecordPolicy { skipBad ? .skip : .fail }
}

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "Q-A-C datasets: statistics and conversion from preference data.",
        subcommands: [Stats.self, Convert.self, Empathy.self])

    struct Empathy: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "empathy",
            abstract: "Q-A-C records from an EmpatheticDialogues CSV: situation + opening line as the question, the listener's reply as the correction, a curt reply by rule as the answer.")
        @Argument(help: "EmpatheticDialogues CSV (conv_id,utterance_idx,prompt,utterance).") var input: String
        @Argument(help: "Output JSON Lines (.gz to compress).") var output: String

        func run() throws {
            try OutputPaths.check(output, folder: false, inputs: [input])
            let (records, conversations, skipped) = try EmpatheticDialogues.convert(csvPath: input)
            try RecordReader.write(records, to: output)
            print("\(input): \(conversations) conversations → \(records.count) records (\(skipped) without an opening line and a reply) → \(output)")
        }
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record counts, duplicates, bad records and token lengths of a Q-A-C file.")
        @Argument(help: "A JSON array or JSON Lines file (optionally .gz).") var file: String
        @OptionGroup var records: RecordOptions
        @Option(help: "tokenizer.json used to count tokens.") var tokenizer = "data/tokenizers/gpt2/hf-gpt2-tokenizer.json"
        @Option(help: "Prompt template: v1, v2, empathy.") var template = "v1"
        @Option(help: "Also count examples longer than this many tokens.") var maxLength: Int?

        func validate() throws {
            if let maxLength, maxLength < 1 { throw ValidationError("--max-length must be at least 1, got \(maxLength)") }
        }

        func run() throws {
            let tok = try Tokenizer.load(from: URL(fileURLWithPath: tokenizer))
            let s = try DatasetStats.compute(path: file, fields: records.fieldNames(), policy: records.policy, tokenizer: tok,
                                             template: PromptTemplate.named(template), maxLength: maxLength)
            print("\(file): \(s.load.read) read, \(s.question.count) records, \(s.load.duplicates) exact duplicates removed, \(s.load.skippedTotal) bad records skipped")
            for (reason, n) in s.load.skipped.sorted(by: { $0.key < $1.key }) { print("  skipped \(n): \(reason)") }
            for e in s.load.examples.prefix(3) { print("  e.g. \(e)") }
            print("token lengths (\(tokenizer), template \(template)):")
            print("  question    \(s.question.line)")
            print("  answer      \(s.answer.line)")
            print("  correction  \(s.correction.line)")
            print("  example     \(s.example.line)")
            if let maxLength { print("  \(s.overLength) examples longer than \(maxLength) tokens") }
        }
    }

    struct Convert: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Convert preference data to Q-A-C JSON Lines (answer = worse response, correction = better).",
            discussion: """
            hh-rlhf: {chosen, rejected} transcripts split at their last "\\n\\nAssistant:"; a pair whose dialogue \
            prefixes differ cannot be converted.
            pairwise: {prompt, response: [better, worse]}, or {prompt, response_0, response_1} with --better-field \
            naming the field that holds the better one's index (PKU-SafeRLHF: better_response_id or safer_response_id).
            A record that cannot be converted stops the conversion (its line and reason), unless --skip-bad: then it \
            is skipped, counted and listed.
            """)
        @Argument(help: "Input file (JSON or JSON Lines, optionally .gz).") var input: String
        @Argument(help: "Output JSON Lines file (.gz to compress).") var output: String
        @Option(help: "hh-rlhf or pairwise.") var format: String
        @Option(help: "Prompt field (pairwise).") var promptField = "prompt"
        @Option(help: "Field with the index (0/1) of the better response (pairwise with response_0/response_1).") var betterField: String?
        @Flag(help: "Skip records that cannot be converted (and list them) instead of stopping at the first.") var skipBad = false

        func run() throws {
            guard let f = PreferenceConversion.Format(rawValue: format) else {
                throw ValidationError("--format must be hh-rlhf or pairwise, got '\(format)'")
            }
            try OutputPaths.check(output, folder: false, inputs: [input])
            let report = try PreferenceConversion.convert(input: input, output: output, format: f, promptField: promptField,
                                                          betterField: betterField, policy: skipBad ? .skip : .fail)
            print("\(input) → \(output): \(report.summary)")
            if !report.skippedRecords.isEmpty { print(report.skippedList) }
        }
    }
}
