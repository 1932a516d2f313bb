#!/usr/bin/env python3
"""Greedy generation from a GGUF file: transformers (gguf_file=...) against `aligner generate --checkpoint FILE`.
Prints both continuations and the prompt ids; exits non-zero when they differ.
Run: python3 scripts/checks/check_gguf_generate.py [--file models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf]
     [--prompt "The capital of France is"] [--tokens 20] [--aligner .build/release/aligner]
Needs torch, transformers, gguf, accelerate.
"""
import argparse
import os
import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", default=os.path.join(ROOT, "models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--prompt", default="The capital of France is")
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--aligner", default=os.path.join(ROOT, ".build/release/aligner"))
    args = ap.parse_args()
    logging.set_verbosity_error()
    folder, name = os.path.split(os.path.abspath(args.file))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()
    ids = tok(args.prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=args.tokens, do_sample=False)
    full = tok.decode(out[0], skip_special_tokens=True)
    theirs = full[len(tok.decode(ids[0], skip_special_tokens=True)):]
    run = subprocess.run([args.aligner, "generate", "--checkpoint", args.file, "--prompt", args.prompt,
                          "--max-new-tokens", str(args.tokens)], capture_output=True, text=True)
    if run.returncode != 0:
        print(f"aligner generate failed: {run.stderr.strip()}")
        return 1
    ours = run.stdout[len(args.prompt):-1] if run.stdout.startswith(args.prompt) else run.stdout
    print(f"prompt ids (transformers): {ids[0].tolist()}")
    print(f"transformers: {theirs!r}")
    print(f"AlignerKit:   {ours!r}")
    print("same text" if ours == theirs else "TEXT DIFFERS")
    return 0 if ours == theirs else 1


if __name__ == "__main__":
    sys.exit(main())
