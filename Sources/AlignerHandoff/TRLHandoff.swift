import AlignerData
import AlignerDistributed
import AlignerFiles
import AlignerFormats
import AlignerModel
import AlignerRecipes
import AlignerRuns
import AlignerTensor
import AlignerTraining
import Foundation

/// `aligner handoff RECIPE --to trl OUTDIR`: what a user needs to run a recipe's two-stage Aligner training with
/// Hugging Face TRL on GPUs — the recipe's exact splits as prompt-completion JSON Lines (and as AlignerKit's own token
/// ids), the initial model as a Hugging Face folder, one `SFTConfig` per stage with the recipe's optimiser, schedule,
/// batches and loss masking, a script that runs stage 1 then stage 2 from stage 1's output, and the splits in the JSON
/// form of the PKU-Alignment/aligner repository's training code.
public struct TRLHandoff {
    public let recipe: Recipe
    public let directory: URL

    public init(recipe: Recipe, directory: URL) {
        self.recipe = recipe
        self.directory = directory
    }

    /// What was written.
    public struct Summary: Sendable {
        public var warmup = 0, train = 0, eval = 0
        public var dropped = 0
        public var stages: [Int] = []
        public var parameters = 0
    }

    /// The name of the file that marks a hand-off folder (and describes it to the script).
    public static let manifestName = "aligner-handoff.json"

    public func write(say: @escaping (String) -> Void = { print($0) }) throws -> Summary {
        let trainer = Trainer(recipe: recipe, runDirectory: directory, isTerminal: false)
        try OutputPaths.check(directory.path, folder: true, inputs: trainer.inputPaths())
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: directory.path, isDirectory: &isDirectory) && !isDirectory.boolValue {
            throw RecipeError(key: "", message: "\(directory.path) is a file, not a folder; name a new or empty folder for the hand-off")
        }
        if let names = try? fm.contentsOfDirectory(atPath: directory.path), !names.isEmpty,
           !names.contains(Self.manifestName) {
            throw RecipeError(key: "", message: "\(directory.path) is not empty and holds no earlier hand-off (\(Self.manifestName)); choose an empty or new folder")
        }
        try FileSystemFailure.createFolder(directory.path)
        trainer.group = .single
        trainer.progress = ProgressPrinter(every: 0, isTerminal: false)
        let prepared = try trainer.prepare(checkMemory: false)  // the recipe trains on the GPU host, not here
        let builder = try ExampleBuilder(tokenizer: prepared.tokenizer, template: recipe.promptTemplate(), specialTokens: prepared.specials,
                                         maxLength: recipe.data.maxLength, chat: prepared.chat)
        let eos = prepared.specials.eos!
        var summary = Summary()
        let data = directory.appendingPathComponent("data")
        try FileSystemFailure.createFolder(data.path)
        // Stage 1 trains on the warm-up records as Q-A-A (their splits already hold the answer as the correction); the
        // completion is the target as AlignerKit trains on it (an identity target is the answer as the prompt shows it).
        for (name, records) in [("stage1-warmup", prepared.splits.warmup), ("stage2-train", prepared.splits.train), ("eval", prepared.splits.eval)] {
            var text = Data(), tokens = Data(), kept: [[String: String]] = []
            for r in records {
                guard let (example, prompt, target) = builder.buildWithText(r) else { summary.dropped += 1; continue }
                text += try jsonLine(["prompt": prompt, "completion": target + eos])
                let mask = example.labels.map { $0 == -100 ? 0 : 1 }
                tokens += try jsonLine(["input_ids": example.ids, "completion_mask": mask])
                kept.append(["question": r.question, "answer": r.answer, "correction": r.correction])
            }
            try AtomicFile.write(text, to: data.appendingPathComponent("\(name).jsonl"))
            try AtomicFile.write(tokens, to: data.appendingPathComponent("\(name).tokenized.jsonl"))
            let pku = directory.appendingPathComponent("pku-aligner")
            try FileSystemFailure.createFolder(pku.path)
            try AtomicFile.write(JSONSerialization.data(withJSONObject: kept, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]),
                                       to: pku.appendingPathComponent("\(name).json"))
            switch name {
            case "stage1-warmup": summary.warmup = kept.count
            case "stage2-train": summary.train = kept.count
            default: summary.eval = kept.count
            }
        }
        // The initial weights: the pretrained base (with the pad token AlignerKit adds), or the seed's random ones.
        let model = try prepared.initialWeights.map { try LlamaModel(config: prepared.config, weights: $0) }
            ?? LlamaModel(config: prepared.config, seed: UInt64(recipe.seed))
        summary.parameters = prepared.config.parameterCount
        let bundle = AlignerBundle(model: model, tokenizer: prepared.tokenizer, specialTokens: prepared.specials, template: try recipe.promptTemplate(),
                                   source: directory, recipe: recipe, chat: prepared.chat)
        try HuggingFaceExport.export(bundle, to: directory.appendingPathComponent("model"))

        // Stage 2's settings as AlignerKit plans them (shortened under a fixed `train.budget`).
        let planned = Dictionary(try trainer.plannedStages(prepared).stages.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
        let stage2 = planned[2] ?? recipe.stage2
        let stages = summary.warmup > 0 ? [(1, recipe.stage1, summary.warmup, "stage1-warmup"), (2, stage2, summary.train, "stage2-train")]
                                        : [(2, stage2, summary.train, "stage2-train")]
        var manifestStages: [[String: Any]] = []
        for (number, s, count, file) in stages {
            let config = sftConfig(stage: number, settings: s, examples: count)
            try AtomicFile.write(Data(Self.yaml(config).utf8), to: directory.appendingPathComponent("stage\(number).yaml"))
            manifestStages.append(["stage": number, "config": "stage\(number).yaml", "train": "data/\(file).jsonl",
                                   "train_tokenized": "data/\(file).tokenized.jsonl", "finetune": s.finetune.rawValue, "examples": count])
            summary.stages.append(number)
        }
        let lora = recipe.lora
        let manifest: [String: Any] = [
            "format": "alignerkit-trl-handoff", "version": 1, "recipe": recipe.name, "recipe_fingerprint": recipe.fingerprint,
            "model": "model", "eval": "data/eval.jsonl", "eval_tokenized": "data/eval.tokenized.jsonl", "stages": manifestStages,
            "eos_token": eos, "pad_token": prepared.specials.pad ?? eos, "template": try recipe.promptTemplate().text,
            "lora": ["r": lora.rank, "lora_alpha": lora.alpha, "lora_dropout": lora.dropout, "use_rslora": lora.rslora,
                     "target_modules": lora.targets == ["all-linear"] ? "all-linear" : lora.targets as Any],
            "counts": ["stage1_warmup": summary.warmup, "stage2_train": summary.train, "eval": summary.eval, "dropped": summary.dropped],
        ]
        try AtomicFile.write(JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]),
                                   to: directory.appendingPathComponent(Self.manifestName))
        try AtomicFile.write(recipe.jsonData(), to: directory.appendingPathComponent("recipe.json"))
        try AtomicFile.write(Data(HandoffFiles.script.utf8), to: directory.appendingPathComponent("train_aligner.py"))
        chmod(directory.appendingPathComponent("train_aligner.py").path, 0o755)
        try AtomicFile.write(Data(HandoffFiles.deepSpeed.utf8), to: directory.appendingPathComponent("ds_zero2.json"))
        try AtomicFile.write(Data(readme(summary).utf8), to: directory.appendingPathComponent("README.md"))
        if stages.contains(where: { $0.1.batchTokens > 0 }) {
            say("note: batches by token budget (batch_tokens) have no TRL equivalent; the configs use batch_tokens / data.max_length examples per batch")
        }
        return summary
    }

    func jsonLine(_ object: [String: Any]) throws -> Data {
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) + Data("\n".utf8)
    }

    /// The `SFTConfig` arguments of a stage (in key order), as the recipe trains it.
    func sftConfig(stage: Int, settings s: StageSettings, examples: Int) -> [(String, Any)] {
        let batch = s.batchTokens > 0 ? max(1, s.batchTokens / recipe.data.maxLength) : s.batchSize
        let warmup = s.warmupSteps(totalSteps: s.totalSteps(batchesPerEpoch: (examples + batch - 1) / batch))
        var c: [(String, Any)] = [
            ("output_dir", "trl-output/stage\(stage)"),
            ("seed", recipe.seed),
            ("learning_rate", s.lr),
        ]
        if s.steps > 0 { c.append(("max_steps", s.steps)) } else { c.append(("num_train_epochs", s.epochs)) }
        c += [
            ("per_device_train_batch_size", batch),
            ("per_device_eval_batch_size", recipe.stage2.batchSize),
            ("gradient_accumulation_steps", s.gradAccum),
            ("optim", "adamw_torch"),
            ("adam_beta1", s.beta1), ("adam_beta2", s.beta2), ("adam_epsilon", s.eps),
            ("weight_decay", s.weightDecay),
            ("max_grad_norm", s.clip),
        ]
        if s.schedule == .constant {
            c.append(("lr_scheduler_type", "constant_with_warmup"))
        } else if s.minLRRatio > 0 {
            c.append(("lr_scheduler_type", "cosine_with_min_lr"))
            c.append(("lr_scheduler_kwargs", ["min_lr_rate": s.minLRRatio]))
        } else {
            c.append(("lr_scheduler_type", "cosine"))
        }
        c += [
            ("warmup_steps", warmup),
            ("max_length", recipe.data.maxLength),
            ("completion_only_loss", true),
            ("packing", false),
            ("logging_steps", max(1, recipe.train.logEvery)),
            ("eval_strategy", recipe.train.evalEvery > 0 ? "steps" : "epoch"),
        ]
        if recipe.train.evalEvery > 0 { c.append(("eval_steps", recipe.train.evalEvery)) }
        c += [
            ("save_strategy", recipe.train.checkpointEvery > 0 ? "steps" : "epoch"),
        ]
        if recipe.train.checkpointEvery > 0 { c.append(("save_steps", recipe.train.checkpointEvery)) }
        c += [("save_total_limit", max(1, recipe.train.keepCheckpoints)), ("bf16", recipe.train.precision == .bf16), ("report_to", "none")]
        return c
    }

    /// A flat YAML document of `pairs` (numbers, booleans, strings, one level of nesting).
    static func yaml(_ pairs: [(String, Any)]) -> String {
        func scalar(_ v: Any) -> String {
            switch v {
            case let b as Bool: return b ? "true" : "false"
            case let i as Int: return "\(i)"
            case let d as Double:
                // YAML 1.1 (PyYAML) reads a float only with a dot: 1.0e-08, not 1e-08.
                if d == d.rounded() && abs(d) < 1e15 { return String(format: "%.1f", d) }
                let t = "\(d)"
                return t.contains(".") || !t.contains("e") ? t : t.replacingOccurrences(of: "e", with: ".0e")
            case let s as String: return "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
            default: return "\(v)"
            }
        }
        var out = "# SFTConfig for TRL, written by `aligner handoff` (AlignerKit). Loaded by train_aligner.py.\n"
        for (k, v) in pairs {
            if let d = v as? [String: Double] {
                out += "\(k):\n" + d.keys.sorted().map { "  \($0): \(scalar(d[$0]!))\n" }.joined()
            } else {
                out += "\(k): \(scalar(v))\n"
            }
        }
        return out
    }

    func readme(_ s: Summary) -> String {
        """
        # Hand-off of `\(recipe.name)` to Hugging Face TRL

        Written by `aligner handoff` (AlignerKit \(AlignerKitVersion.string)); recipe fingerprint \(recipe.fingerprint).

        - `model/`: the initial weights in Hugging Face's Llama layout (\(s.parameters) parameters\(recipe.model.initFrom == "scratch" ? ", random from seed \(recipe.seed)" : ", from \(recipe.model.initFrom)")), with the tokenizer.
        - `data/*.jsonl`: TRL's prompt-completion form, one record per line: `prompt` = the rendered template (the question and answer
          shortened exactly as AlignerKit shortens them to fit `max_length` = \(recipe.data.maxLength)), `completion` = the target + EOS (the correction; in stage1-warmup, the answer as the prompt shows it, shortened with it).
          `stage1-warmup` (\(s.warmup) identity warm-up records, Q-A-A), `stage2-train` (\(s.train), Q-A-C), `eval` (\(s.eval), held out by question).
          \(s.dropped) records whose correction alone does not fit were left out, as AlignerKit leaves them out.
        - `data/*.tokenized.jsonl`: the same examples as AlignerKit's token ids (`input_ids`, `completion_mask`); TRL uses them as they are.
        - `stage1.yaml`, `stage2.yaml`: `SFTConfig` per stage (AdamW, betas, eps, weight decay, clipping, schedule and warm-up steps,
          batch size, gradient accumulation, epochs or steps, loss on completion tokens only, no packing).
        - `train_aligner.py`: stage 1 from `model/`, then stage 2 from stage 1's output (LoRA adapters are continued when both stages use LoRA).
        - `pku-aligner/*.json`: the same records as JSON arrays of `{question, answer, correction}`, the form the dataset classes of the
          PKU-Alignment/aligner repository read.

        Run (the `SFTConfig` batch size is per device; divide it, or gradient accumulation, by the number of GPUs to keep the global batch):

            pip install trl peft pyyaml
            python train_aligner.py                          # one GPU or CPU
            accelerate launch --num_processes 8 train_aligner.py
            accelerate launch --use_deepspeed --deepspeed_config_file ds_zero2.json --num_processes 8 train_aligner.py
            python train_aligner.py --tokenized              # AlignerKit's token ids instead of TRL's tokenization of the texts

        """
    }
}

/// Files of a hand-off that do not depend on the recipe.
enum HandoffFiles {
    static let deepSpeed = """
        {
          "zero_optimization": {"stage": 2, "overlap_comm": true, "contiguous_gradients": true},
          "bf16": {"enabled": "auto"},
          "gradient_accumulation_steps": "auto",
          "gradient_clipping": "auto",
          "train_batch_size": "auto",
          "train_micro_batch_size_per_gpu": "auto"
        }

        """

    static let script = #"""
        #!/usr/bin/env python3
        """Two-stage Aligner training with Hugging Face TRL, as handed off by AlignerKit (`aligner handoff`).

        Stage 1 (identity warm-up, Q-A-A) trains from model/; stage 2 (Q-A-C) from stage 1's output. Configuration:
        aligner-handoff.json and stage1.yaml / stage2.yaml (SFTConfig). Works with `accelerate launch` and DeepSpeed.
        """
        import argparse
        import json
        import os

        import yaml
        from datasets import load_dataset
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import SFTConfig, SFTTrainer

        HERE = os.path.dirname(os.path.abspath(__file__))


        def main():
            ap = argparse.ArgumentParser(description=__doc__)
            ap.add_argument("--model", default=os.path.join(HERE, "model"), help="initial model (default: model/)")
            ap.add_argument("--output-dir", default=os.path.join(HERE, "trl-output"))
            ap.add_argument("--tokenized", action="store_true",
                            help="train on AlignerKit's token ids (data/*.tokenized.jsonl) instead of the texts")
            ap.add_argument("--stages", default=None, help="stages to run, e.g. 1 or 2 (default: all)")
            ap.add_argument("--max-steps", type=int, default=None, help="stop each stage after this many steps (checks)")
            ap.add_argument("--deepspeed", default=None, help="a DeepSpeed config, e.g. ds_zero2.json")
            ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="override an SFTConfig field in every stage (YAML value)")
            args = ap.parse_args()
            with open(os.path.join(HERE, "aligner-handoff.json")) as f:
                handoff = json.load(f)
            wanted = None if args.stages is None else {int(s) for s in args.stages.split(",")}
            model_path, previous = args.model, None
            for stage in handoff["stages"]:
                number = stage["stage"]
                out = os.path.join(args.output_dir, f"stage{number}")
                if wanted is not None and number not in wanted:
                    if os.path.isdir(out):
                        model_path, previous = out, stage
                    continue
                with open(os.path.join(HERE, stage["config"])) as f:
                    fields = yaml.safe_load(f)
                for item in args.set:
                    key, value = item.split("=", 1)
                    fields[key] = yaml.safe_load(value)
                fields["output_dir"] = out
                if args.max_steps is not None:
                    fields["max_steps"] = args.max_steps
                if args.deepspeed:
                    fields["deepspeed"] = args.deepspeed
                config = SFTConfig(**fields)
                key = "train_tokenized" if args.tokenized else "train"
                eval_key = "eval_tokenized" if args.tokenized else "eval"
                data = load_dataset("json", data_files={"train": os.path.join(HERE, stage[key]),
                                                        "eval": os.path.join(HERE, handoff[eval_key])})
                tokenizer = AutoTokenizer.from_pretrained(model_path)
                model, peft_config = load_model(model_path, stage, previous, handoff["lora"])
                trainer = SFTTrainer(model=model, args=config, train_dataset=data["train"], eval_dataset=data["eval"],
                                     processing_class=tokenizer, peft_config=peft_config)
                trainer.train()
                trainer.save_model(out)
                tokenizer.save_pretrained(out)
                with open(os.path.join(out, "log_history.json"), "w") as f:
                    json.dump(trainer.state.log_history, f, indent=1)
                model_path, previous = out, stage


        def load_model(path, stage, previous, lora):
            """The model a stage starts from: stage 2 continues stage 1's LoRA adapters when both use LoRA, merges them
            before a full stage, and puts fresh adapters on a fully trained model."""
            peft_config = None
            continuing = previous is not None and previous["finetune"] == "lora"
            if continuing:
                from peft import AutoPeftModelForCausalLM
                model = AutoPeftModelForCausalLM.from_pretrained(path, is_trainable=stage["finetune"] == "lora")
                if stage["finetune"] != "lora":
                    model = model.merge_and_unload()
                return model, None
            model = AutoModelForCausalLM.from_pretrained(path)
            if stage["finetune"] == "lora":
                from peft import LoraConfig
                peft_config = LoraConfig(r=lora["r"], lora_alpha=lora["lora_alpha"], lora_dropout=lora["lora_dropout"],
                                         use_rslora=lora["use_rslora"], target_modules=lora["target_modules"],
                                         task_type="CAUSAL_LM")
            return model, peft_config


        if __name__ == "__main__":
            main()

        """#
}
