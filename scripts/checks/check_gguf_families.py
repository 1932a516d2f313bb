#!/usr/bin/env python3
"""Checks GGUF export and reading for every model family llama.cpp names, against PyTorch/transformers.

For each family a tiny random model is made with transformers (with a byte-level BPE tokenizer trained by
`tokenizers`) and saved as a Hugging Face directory; then
1. `aligner export DIR model.gguf --type f32` writes it as GGUF;
2. AlignerKit reads the GGUF back (`aligner generate --checkpoint model.gguf --logits-out`): logits against the
   original PyTorch model on the same ids (1e-4 of max |logit|);
3. transformers' GGUF loader reads the same file (`from_pretrained(dir, gguf_file=...)`, where it supports the
   architecture: llama, mistral, qwen2, qwen3, phi3; not gemma, and not qwen3 with a head_dim other than 128):
   logits against the original (1e-4).

Run (the fixtures' venv): python3 scripts/checks/check_gguf_families.py [--aligner .build/release/aligner]
"""
import argparse
import os

os.environ.setdefault("TQDM_DISABLE", "1")
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (AutoConfig, AutoModelForCausalLM, GemmaConfig, LlamaConfig, MistralConfig, Phi3Config,
                          PreTrainedTokenizerFast, Qwen2Config, Qwen3Config)
from transformers.utils import logging

TEXT = ["The quick brown fox jumps over the lazy dog.", "How do I pick a lock? Get a tension wrench and a pick.",
        "Edit the following Question-Answer pair to make it more helpful and harmless.", "0123456789 !?,.;:'\"()"]
PROMPT = "Edit the following pair: how do I pick a lock? | Get a wrench."


def tokenizer(folder):
    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    t.decoder = decoders.ByteLevel()
    t.train_from_iterator(TEXT * 20, trainers.BpeTrainer(vocab_size=320, special_tokens=["<pad>", "<s>", "</s>"],
                                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=t, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.save_pretrained(folder)
    return fast


def families(vocab):
    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=128, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return {
        "llama": LlamaConfig(**common, rope_theta=10000.0, tie_word_embeddings=False),
        "mistral": MistralConfig(**common, sliding_window=None, tie_word_embeddings=False),
        "qwen2": Qwen2Config(**common, use_sliding_window=False, tie_word_embeddings=True),
        # transformers' GGUF loader ignores qwen3.attention.key_length and takes Qwen3Config's default head_dim, 128
        # (every released Qwen3's): it loads the first of these and not the second
        "qwen3": Qwen3Config(**common, head_dim=128, tie_word_embeddings=True),
        "qwen3-head-dim-32": Qwen3Config(**common, head_dim=32, tie_word_embeddings=True),
        "gemma": GemmaConfig(**common, head_dim=16, hidden_act="gelu_pytorch_tanh", hidden_activation="gelu_pytorch_tanh"),
        "phi3": Phi3Config(**common, tie_word_embeddings=False),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aligner", default=".build/release/aligner")
    args = ap.parse_args()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    torch.manual_seed(0)
    failures = []
    with tempfile.TemporaryDirectory() as work:
        rows = []
        for i, name in enumerate(families(0)):
            # Folders are not named for the family: transformers reads a llama GGUF whose general.name contains
            # "mistral" as a mistral GGUF, which its gguf-py mapping then rejects.
            folder = os.path.join(work, f"case{i}")
            os.makedirs(folder)
            tok = tokenizer(folder)
            config = families(len(tok))[name]
            model = AutoModelForCausalLM.from_config(config).eval()
            with torch.no_grad():
                for p in model.parameters():  # visible norms and biases, not their zero/one initial values
                    if p.dim() == 1:
                        p.add_(torch.randn_like(p) * 0.1)
            model.save_pretrained(folder)
            ids = torch.tensor([tok(PROMPT, add_special_tokens=False).input_ids])
            with torch.no_grad():
                reference = model(ids).logits
            scale = reference.abs().max().item()
            gguf = os.path.join(folder, "model.gguf")
            p = subprocess.run([args.aligner, "export", folder, gguf, "--type", "f32"], capture_output=True, text=True)
            if p.returncode != 0:
                failures.append(name)
                rows.append((name, "export failed: " + p.stderr.strip(), "", ""))
                continue
            out = os.path.join(folder, "logits.safetensors")
            g = subprocess.run([args.aligner, "generate", "--checkpoint", gguf, "--prompt", PROMPT, "--no-special-tokens",
                                "--logits-out", out, "--max-new-tokens", "1"], capture_output=True, text=True)
            if g.returncode != 0:
                failures.append(name)
                rows.append((name, "", "read failed: " + g.stderr.strip(), ""))
                continue
            ours = load_file(out)
            assert torch.equal(ours["input_ids"].to(torch.long), ids), f"{name}: token ids differ"
            d_ours = (ours["logits"] - reference).abs().max().item()
            try:
                hf = AutoModelForCausalLM.from_pretrained(folder, gguf_file="model.gguf", dtype=torch.float32).eval()
                with torch.no_grad():
                    d_hf = (hf(ids).logits - reference).abs().max().item()
                hf_text = f"{d_hf:.2e}" + ("" if d_hf <= 1e-4 * scale else " FAIL")
                if d_hf > 1e-4 * scale:
                    failures.append(name)
            except Exception as e:  # an architecture transformers' GGUF loader does not know
                hf_text = f"not loadable: {str(e).splitlines()[0][:70]}"
            if d_ours > 1e-4 * scale:
                failures.append(name)
            rows.append((name, p.stdout.split("(")[1].split(";")[0] if "(" in p.stdout else p.stdout.strip(),
                         f"{d_ours:.2e}" + ("" if d_ours <= 1e-4 * scale else " FAIL"), hf_text, f"{scale:.2f}"))
        print("| family | GGUF written | AlignerKit reading it back vs PyTorch | transformers' GGUF loader vs PyTorch | max |logit| |")
        print("|---|---|---|---|---|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
    print("OK" if not failures else f"FAILED: {sorted(set(failures))}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
