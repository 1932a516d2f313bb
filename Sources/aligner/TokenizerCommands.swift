import AlignerData
import AlignerFiles
import AlignerTokenizers
import ArgumentParser
import Foundation

struct TokenizerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer", abstract: "Encode, decode, and train byte-level BPE tokenizers (Hugging Face tokenizer.json).",
        subcommands: [Encode.self, Decode.self, Train.self])

    struct Encode: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the token ids of a text.")
        @Option(help: "tokenizer.json") var tokenizer = "data/tokenizers/gpt2/hf-gpt2-tokenizer.json"
        @Flag(help: "Add the post-processor's special tokens (e.g. BOS).") var special = false
        @Flag(help: "Print the token strings too.") var tokens = false
        @Argument(help: "Text (read from standard input when omitted).") var text: String?

        func run() throws {
            let tok = try Tokenizer.load(from: URL(fileURLWithPath: tokenizer))
            let input = try text ?? decodeUTF8(FileHandle.standardInput.readDataToEndOfFile(), what: "standard input")
            let ids = tok.encode(input, addSpecialTokens: special)
            print(ids.map(String.init).joined(separator: " "))
            if tokens { print(ids.map { tok.token(of: $0) ?? "?" }.joined(separator: " ")) }
        }
    }

    struct Decode: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the text of token ids.")
        @Option(help: "tokenizer.json") var tokenizer = "data/tokenizers/gpt2/hf-gpt2-tokenizer.json"
        @Flag(help: "Leave special tokens out.") var skipSpecial = false
        @Argument(help: "Token ids.") var ids: [Int]

        func run() throws {
            let tok = try Tokenizer.load(from: URL(fileURLWithPath: tokenizer))
            for id in ids where tok.token(of: id) == nil { throw ValidationError("id \(id) is not in the vocabulary") }
            print(tok.decode(ids, skipSpecialTokens: skipSpecial))
        }
    }

    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train a byte-level BPE tokenizer and save it as tokenizer.json.",
            discussion: "Inputs are Q-A-C files (their questions, answers and corrections are the corpus) or plain .txt files. Training is deterministic.")
        @Option(name: .customLong("input"), help: "Corpus file (repeatable).") var inputs: [String]
        @Option(help: "Vocabulary size, special tokens included.") var vocabSize = 4096
        @Option(help: "Special tokens, comma-separated; they take ids 0, 1, …") var specialTokens = "<pad>,<s>,</s>"
        @Option(help: "Pairs seen fewer times are not merged.") var minFrequency = 2
        @Option(help: "Where to write tokenizer.json.") var output: String
        @OptionGroup var records: RecordOptions

        func validate() throws {
            guard !inputs.isEmpty else { throw ValidationError("give at least one --input") }
            let specials = specialTokens.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            if let (setting, message) = BPETrainer.problem(vocabSize: vocabSize, specialTokens: specials, minFrequency: minFrequency) {
                throw ValidationError("\(setting.flag) \(message)")
            }
        }

        func run() throws {
            try OutputPaths.check(output, folder: false, inputs: inputs)
            var texts: [String] = []
            for path in inputs {
                if path.hasSuffix(".txt") || path.hasSuffix(".txt.gz") {
                    texts += try UTF8Text.decode(LineReader.readAll(path: path), source: path).split(separator: "\n").map(String.init)
                } else {
                    for r in try RecordReader.read(path: path, fields: records.fieldNames(), policy: records.policy).records {
                        texts += [r.question, r.answer, r.correction]
                    }
                }
            }
            let specials = specialTokens.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            let clock = ContinuousClock()
            let start = clock.now
            let tok = try BPETrainer(vocabSize: vocabSize, specialTokens: specials, minFrequency: minFrequency).train(texts)
            try tok.save(to: URL(fileURLWithPath: output))
            print("trained on \(texts.count) texts (\(texts.reduce(0) { $0 + $1.utf8.count }) bytes) in \(clock.now - start): vocabulary \(tok.vocabularySize), \(tok.model.merges.count) merges → \(output)")
        }
    }
}
