#!/usr/bin/env python3
"""Runs an `aligner export --format gguf` file in llama.cpp (through the PyPI package llama-cpp-python, which builds
llama.cpp from source) and compares it with AlignerKit reading the same file:
1. llama.cpp loads it (architecture, tensors, tokenizer, chat template from the metadata);
2. its tokenization of the Aligner's prompt against AlignerKit's;
3. its logits on AlignerKit's ids against AlignerKit's (`aligner generate --logits-out`), relative to max |logit|;
4. greedy continuations of both.

Install: pip install llama-cpp-python (builds llama.cpp with cmake and a C++ compiler; about 40 minutes on 2 busy
cores here), then: python3 scripts/checks/check_gguf_llama_cpp.py FILE.gguf [--aligner .build/release/aligner]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
from gguf import GGUFReader
from llama_cpp import Llama
from safetensors.numpy import load_file


def field(reader, key):
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("--aligner", default=".build/release/aligner")
    ap.add_argument("--question", default="How do I pick a lock?")
    ap.add_argument("--answer", default="Get a tension wrench and a pick, then rake the pins.")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    args = ap.parse_args()

    reader = GGUFReader(args.gguf)
    template = field(reader, "aligner.prompt_template")
    if template is None:
        prompt = "The capital of France is"
    elif field(reader, "aligner.chat_template"):
        from jinja2 import Environment
        user = field(reader, "aligner.prompt_input").replace("{question}", args.question).replace("{answer}", args.answer)
        env = Environment(trim_blocks=True, lstrip_blocks=True)
        prompt = env.from_string(field(reader, "tokenizer.chat_template")).render(
            messages=[{"role": "user", "content": user}], add_generation_prompt=True)
    else:
        prompt = template.replace("{question}", args.question).replace("{answer}", args.answer)
    print(f"prompt: {prompt!r}")

    llm = Llama(model_path=args.gguf, n_ctx=1024, logits_all=True, verbose=False, n_threads=2, seed=0)
    print(f"llama.cpp {getattr(__import__('llama_cpp'), '__version__', '?')}: loaded {args.gguf} "
          f"({llm.n_vocab()} tokens, context {llm.n_ctx()}, metadata architecture {llm.metadata.get('general.architecture')})")
    add_bos = bool(field(reader, "tokenizer.ggml.add_bos_token"))
    cpp_ids = llm.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True)

    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "logits.safetensors")
        g = subprocess.run([args.aligner, "generate", "--checkpoint", args.gguf, "--prompt", prompt, "--logits-out", out,
                            "--max-new-tokens", str(args.max_new_tokens)], capture_output=True, text=True)
        if g.returncode != 0:
            sys.exit(f"aligner generate failed: {g.stderr}")
        ours = load_file(out)
    ids = [int(x) for x in ours["input_ids"].reshape(-1)]
    same = ids == cpp_ids
    print(f"tokenization: llama.cpp {'equals' if same else 'DIFFERS FROM'} AlignerKit ({len(ids)} tokens)"
          + ("" if same else f"\n  llama.cpp  {cpp_ids}\n  AlignerKit {ids}"))

    llm.reset()
    llm.eval(ids)
    cpp_logits = np.array(llm.scores[:len(ids)], dtype=np.float32)
    logits = ours["logits"].reshape(len(ids), -1)
    scale = float(np.abs(logits).max())
    diff = float(np.abs(cpp_logits - logits).max())
    argmax = float((cpp_logits.argmax(-1) == logits.argmax(-1)).mean())
    print(f"logits on AlignerKit's ids: max |llama.cpp - AlignerKit| = {diff:.3e} ({diff / scale:.2e} of max |logit| {scale:.2f}); "
          f"argmax equal at {argmax * 100:.0f}% of positions")

    llm.reset()
    text = []
    for tok in llm.generate(ids, temp=0.0, top_k=1, reset=True):
        if tok == llm.token_eos() or len(text) >= args.max_new_tokens:
            break
        text.append(tok)
    cpp_text = llm.detokenize(text).decode("utf-8", errors="replace")
    ours_text = g.stdout[len(prompt):] if g.stdout.startswith(prompt) else g.stdout
    print(f"greedy, llama.cpp:  {cpp_text!r}")
    print(f"greedy, AlignerKit: {ours_text.rstrip(chr(10))!r}")
    ok = argmax >= 0.9
    print("OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
