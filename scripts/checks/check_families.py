#!/usr/bin/env python3
"""Checks every model family end to end against Python transformers, as a user would meet it.

For each case of scripts/fixtures/make_family_fixtures.py (Llama with rope scaling/biases/GELU, Mistral, Qwen2, Qwen3,
Gemma, Phi-3) it writes a tiny random model with transformers' save_pretrained plus a byte-level BPE tokenizer.json
(BOS added by its post-processor), and one Llama-2-style directory with a SentencePiece-like tokenizer; then:
1. `aligner generate --checkpoint DIR` with no flags: the prompt's token ids equal `tokenizer(text)["input_ids"]`,
   logits match transformers' (max |diff|), and the greedy text equals transformers' `generate` (KV cache on both sides).
2. `aligner export DIR OUT`: transformers loads OUT with no missing, unexpected or mismatched weights, its config has the
   family's model_type and architecture, and its logits equal the original model's.
Prints one line per case and exits non-zero on the first mismatch.

Run: python3 scripts/checks/check_families.py [--aligner .build/release/aligner]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from transformers.utils import logging

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
from make_family_fixtures import BASE, CASES, randomize  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VOCAB = 320
PROMPT = "The Aligner corrects the answer: a lock is"


def tokenizer_files(folder):
    lines = []
    with open(os.path.join(ROOT, "data/README.md"), encoding="utf-8") as f:
        lines += f.read().splitlines()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB - 8, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(lines + [PROMPT] * 3, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    tok.save(os.path.join(folder, "tokenizer.json"))
    fast = PreTrainedTokenizerFast(tokenizer_file=os.path.join(folder, "tokenizer.json"), bos_token="<s>",
                                   eos_token="</s>", pad_token="<pad>")
    fast.save_pretrained(folder)
    return fast


def sentencepiece_tokenizer_files(folder):
    """The Llama-2-style tokenizer of the tokenizer tests (Metaspace, byte fallback, BOS from the post-processor)."""
    src = os.path.join(ROOT, "Tests/AlignerTokenizersTests/Fixtures/llama-metaspace.tokenizer.json")
    fast = PreTrainedTokenizerFast(tokenizer_file=src, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(folder)
    return fast


def cases():
    for name, (config_class, model_class, extra) in CASES.items():
        yield name, config_class, model_class, {**extra, "vocab_size": VOCAB}, tokenizer_files, PROMPT
    # A Llama-2-style directory: SentencePiece-like tokenizer whose decoder drops the first space of a text.
    yield ("llama2-sentencepiece", LlamaConfig, LlamaForCausalLM, {"vocab_size": 400}, sentencepiece_tokenizer_files,
           "Lily wanted to")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aligner", default=os.path.join(ROOT, ".build/release/aligner"))
    args = ap.parse_args()
    logging.set_verbosity_error()
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, config_class, model_class, extra, make_tokenizer, prompt) in enumerate(cases()):
            torch.manual_seed(100 + i)
            config = config_class(**{**BASE, **extra, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0})
            model = model_class(config)
            randomize(model, gemma=config.model_type == "gemma")
            model.eval()
            src, out = os.path.join(tmp, name), os.path.join(tmp, name + "-export")
            model.save_pretrained(src)
            tok = make_tokenizer(src)
            ids = tok(prompt, return_tensors="pt").input_ids

            # 1. generate with no flags.
            logits_file = os.path.join(tmp, name + "-logits.safetensors")
            gen = subprocess.run([args.aligner, "generate", "--checkpoint", src, "--prompt", prompt, "--logits-out",
                                  logits_file, "--max-new-tokens", "16"], capture_output=True, text=True)
            if gen.returncode != 0:
                print(f"{name}: aligner generate failed: {gen.stderr.strip()}")
                failures += 1
                continue
            theirs = load_file(logits_file)
            same_ids = torch.equal(theirs["input_ids"].to(torch.long), ids)
            with torch.no_grad():
                ref = model(ids).logits
                greedy = model.generate(ids, max_new_tokens=16, do_sample=False, pad_token_id=0, eos_token_id=2)
            logit_diff = (ref - theirs["logits"]).abs().max().item() if same_ids else float("nan")
            # The continuation as text: decode(all) minus decode(prompt), so that a boundary space counts.
            prompt_text = tok.decode(ids[0], skip_special_tokens=True)
            text = tok.decode(greedy[0], skip_special_tokens=True)[len(prompt_text):]
            swift_text = gen.stdout[len(prompt):-1] if gen.stdout.startswith(prompt) else gen.stdout
            same_text = text == swift_text

            # 2. export and load in transformers.
            exp = subprocess.run([args.aligner, "export", src, out], capture_output=True, text=True)
            if exp.returncode != 0:
                print(f"{name}: aligner export failed: {exp.stderr.strip()}")
                failures += 1
                continue
            loaded, info = AutoModelForCausalLM.from_pretrained(out, output_loading_info=True, dtype=torch.float32)
            loaded.eval()
            problems = {k: list(v) for k, v in info.items() if v}
            saved = json.load(open(os.path.join(out, "config.json")))
            with torch.no_grad():
                export_diff = (loaded(ids).logits - ref).abs().max().item()
            ok = (same_ids and logit_diff <= 1e-4 and same_text and not problems and export_diff <= 1e-5
                  and type(loaded) is model_class and saved["model_type"] == config.model_type)
            failures += 0 if ok else 1
            print(f"{'OK ' if ok else 'BAD'} {name:18} ids {'equal' if same_ids else 'DIFFER'}; generate logits "
                  f"max|diff| {logit_diff:.1e} (max |logit| {ref.abs().max().item():.1f}); greedy text "
                  f"{'equal' if same_text else 'DIFFERS'}; export -> {type(loaded).__name__}, loading problems "
                  f"{problems or 'none'}, logits max|diff| {export_diff:.1e}")
            if not same_text:
                print(f"    transformers: {text!r}\n    AlignerKit:   {swift_text!r}")
    print("all families match transformers" if failures == 0 else f"{failures} case(s) differ")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
