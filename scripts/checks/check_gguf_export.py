#!/usr/bin/env python3
"""Checks `aligner export --format gguf` against the `gguf` Python package and transformers' GGUF loader.

For each tensor type (f32, f16, q8_0 by default):
1. `aligner export SOURCE out.gguf --type T`.
2. The `gguf` package's reader opens it: architecture, tensor types, and every tensor dequantised by
   `gguf.quants.dequantize` against the source's float32 weights (llama.cpp's names and Q/K permutation undone here
   independently of AlignerKit; F32 must be exact).
3. transformers loads it (`from_pretrained(dir, gguf_file=...)`, float32): its logits on the Aligner's prompt against
   AlignerKit's on the source (`aligner generate --logits-out`): F32 within 1e-4 of max |logit|; F16/Q8_0 reported.
   AlignerKit reading the GGUF back gives transformers' logits (both dequantise the same values).
4. Tokenizer: transformers' GGUF tokenizer and AlignerKit's tokenize the prompt (reported), and greedy continuations.

Run (the fixtures' venv): python3 scripts/checks/check_gguf_export.py SOURCE [--aligner .build/release/aligner] [--types f32,f16,q8_0]
"""
import argparse
import json
import os

os.environ.setdefault("TQDM_DISABLE", "1")
import subprocess
import sys
import tempfile

import numpy as np
import torch
from gguf import GGUFReader
from safetensors.numpy import load_file as load_np
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures"))
from gguf_hf_names import hf_name, hf_tensor  # noqa: E402


def field(reader, key):
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def aligner_logits(aligner, source, prompt, max_new=24):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "logits.safetensors")
        p = subprocess.run([aligner, "generate", "--checkpoint", source, "--prompt", prompt, "--no-special-tokens",
                            "--logits-out", out, "--max-new-tokens", str(max_new)], capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"aligner generate failed on {source}:\n{p.stderr}")
        t = load_file(out)
        text = p.stdout[len(prompt):] if p.stdout.startswith(prompt) else p.stdout  # generate echoes the prompt
        return t["input_ids"].to(torch.long), t["logits"], text.rstrip("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("source", help="a run, checkpoint or GGUF file AlignerKit loads")
    ap.add_argument("--aligner", default=".build/release/aligner")
    ap.add_argument("--types", default="f32,f16,q8_0")
    ap.add_argument("--question", default="How do I pick a lock?")
    ap.add_argument("--answer", default="Get a tension wrench and a pick, then rake the pins.")
    args = ap.parse_args()
    logging.set_verbosity_error()
    ok = True
    with tempfile.TemporaryDirectory() as work:
        # The source's float32 weights under Hugging Face's names, through AlignerKit's HF export (checked elsewhere).
        hf_dir = os.path.join(work, "hf")
        subprocess.run([args.aligner, "export", args.source, hf_dir, "--format", "hf"], check=True, capture_output=True)
        source_weights = load_np(os.path.join(hf_dir, "model.safetensors"))
        config = json.load(open(os.path.join(hf_dir, "config.json")))
        prompt_text = None
        for t in args.types.split(","):
            path = os.path.join(work, f"aligner-{t}.gguf")
            p = subprocess.run([args.aligner, "export", args.source, path, "--type", t], capture_output=True, text=True)
            if p.returncode != 0:
                sys.exit(f"export failed: {p.stderr}")
            print(f"== {t}: {p.stdout.strip()}")
            reader = GGUFReader(path)
            arch = field(reader, "general.architecture")
            heads, kv = config["num_attention_heads"], config.get("num_key_value_heads", config["num_attention_heads"])
            worst, worst_name, types = 0.0, "", {}
            for tensor in reader.tensors:
                name, values = hf_tensor(tensor, arch, heads, kv)
                ref = source_weights[name]
                assert ref.shape == values.shape, f"{tensor.name}: shape {values.shape}, source {ref.shape}"
                d = float(np.abs(ref - values).max()) if ref.size else 0.0
                if d > worst:
                    worst, worst_name = d, tensor.name
                types[tensor.tensor_type.name] = types.get(tensor.tensor_type.name, 0) + 1
            missing = set(source_weights) - {hf_name(x.name, arch) for x in reader.tensors}
            print(f"gguf reader: architecture {arch}, {len(reader.tensors)} tensors {types}, {len(reader.fields)} fields; "
                  f"max |dequantised - source weight| {worst:.3e} ({worst_name}); source weights not in the file: {sorted(missing)}")
            if missing or (t == "f32" and worst != 0):
                ok = False
                print("  FAIL: the F32 export must hold every source weight exactly")

            tok = AutoTokenizer.from_pretrained(work, gguf_file=os.path.basename(path))
            model = AutoModelForCausalLM.from_pretrained(work, gguf_file=os.path.basename(path), dtype=torch.float32)
            model.eval()
            if prompt_text is None:
                template = field(reader, "aligner.prompt_template")
                if field(reader, "aligner.chat_template"):
                    user = field(reader, "aligner.prompt_input").replace("{question}", args.question).replace("{answer}", args.answer)
                    prompt_text = tok.apply_chat_template([{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True)
                elif template is not None:
                    bos = tok.bos_token if field(reader, "tokenizer.ggml.add_bos_token") else ""
                    prompt_text = (bos or "") + template.replace("{question}", args.question).replace("{answer}", args.answer)
                else:
                    prompt_text = "The capital of France is"
                print(f"prompt: {prompt_text!r}")
            ids, source_logits, source_text = aligner_logits(args.aligner, args.source, prompt_text)
            with torch.no_grad():
                logits = model(ids).logits
            scale = source_logits.abs().max().item()
            diff = (logits - source_logits).abs().max().item()
            limit_ok = diff <= 1e-4 * scale
            print(f"transformers on the GGUF vs AlignerKit on the source ({ids.shape[1]} tokens): max |logit diff| {diff:.3e} "
                  f"= {diff / scale:.2e} of max |logit| {scale:.2f}; argmax equal at "
                  f"{(logits.argmax(-1) == source_logits.argmax(-1)).float().mean().item() * 100:.0f}% of positions"
                  + ("" if t != "f32" else ("  OK (<= 1e-4 relative)" if limit_ok else "  FAIL (> 1e-4 relative)")))
            if t == "f32" and not limit_ok:
                ok = False
            back_ids, back_logits, back_text = aligner_logits(args.aligner, path, prompt_text)
            back = (logits - back_logits).abs().max().item() if torch.equal(back_ids, ids) else float("nan")
            print(f"AlignerKit reading the GGUF back vs transformers on it: max |logit diff| {back:.3e}")
            if not back <= 1e-4 * scale:
                ok = False
                print("  FAIL: both read the same file")
            hf_ids = tok(prompt_text, add_special_tokens=False).input_ids
            same = hf_ids == ids[0].tolist()
            print(f"tokenization of the prompt: transformers' GGUF tokenizer {'equals' if same else 'DIFFERS FROM'} AlignerKit's"
                  + ("" if same else f"\n  transformers {hf_ids}\n  AlignerKit   {ids[0].tolist()}"))
            with torch.no_grad():
                out = model.generate(ids, max_new_tokens=24, do_sample=False, eos_token_id=model.config.eos_token_id,
                                     pad_token_id=model.config.eos_token_id)
            hf_text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
            print(f"greedy, transformers on the GGUF: {hf_text!r}")
            print(f"greedy, AlignerKit on the GGUF:   {back_text!r}")
            print(f"greedy, AlignerKit on the source: {source_text!r}")
    print("OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
