import AlignerRecipes
import AlignerTraining
import Foundation

/// Helpers the tests of the upper modules share: a tiny recipe on the bundled corpus, a quiet trainer, a temporary folder.

/// The repository's root folder.
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A recipe small enough for a test: 120 records of the bundled corpus, a 2-layer 32-wide model.
public func tinyRecipe(_ name: String, in dir: URL, _ overrides: [String] = []) throws -> Recipe {
    let toml = """
    name = "\(name)"
    seed = 7
    output_dir = "\(dir.path)"
    [data]
    train = ["\(repositoryRoot.appendingPathComponent("data/qac/hh-rlhf-harmless-base-test.qac.jsonl.gz").path)"]
    eval_count = 24
    max_length = 160
    warmup_percent = 25
    limit = 120
    [tokenizer]
    vocab_size = 512
    [model]
    hidden_size = 32
    intermediate_size = 64
    num_hidden_layers = 2
    num_attention_heads = 4
    num_key_value_heads = 2
    max_position_embeddings = 160
    [stage1]
    epochs = 2
    lr = 3e-3
    batch_size = 8
    [stage2]
    epochs = 3
    lr = 3e-3
    batch_size = 8
    grad_accum = 2
    [train]
    eval_every = 5
    log_every = 5
    checkpoint_every = 4
    keep_checkpoints = 50
    threads = 2
    """
    let url = dir.appendingPathComponent("\(name).toml")
    try toml.write(to: url, atomically: true, encoding: .utf8)
    return try Recipe.load(path: url.path, overrides: overrides)
}

/// A trainer that prints nothing.
public func quietTrainer(_ r: Recipe) -> Trainer {
    let t = Trainer(recipe: r, isTerminal: false)
    t.quiet = true
    return t
}

/// A fresh folder under the temporary directory.
public func temporaryTestDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("alignerkit-train-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
