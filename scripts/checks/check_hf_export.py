#!/usr/bin/env python3
"""Checks an `aligner export` directory against Python transformers.

1. AutoModelForCausalLM / AutoTokenizer load it with no missing, unexpected or mismatched weights.
2. The chat template renders the same prompt as AlignerKit's template, and both tokenize it to the same ids.
3. transformers' logits on that prompt match AlignerKit's (`aligner generate --logits-out`) to 1e-4.
4. Greedy generation gives the same tokens.

Run: python3 scripts/checks/check_hf_export.py EXPORT_DIR [--aligner .build/release/aligner]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("export_dir")
    ap.add_argument("--aligner", default=".build/release/aligner")
    ap.add_argument("--question", default="How do I pick a lock?")
    ap.add_argument("--answer", default="Get a tension wrench and a pick, then rake the pins.")
    args = ap.parse_args()

    logging.set_verbosity_warning()
    tok = AutoTokenizer.from_pretrained(args.export_dir)
    model, info = AutoModelForCausalLM.from_pretrained(args.export_dir, output_loading_info=True, dtype=torch.float32)
    model.eval()
    problems = {k: v for k, v in info.items() if v and k != "error_msgs"} | ({"error_msgs": info["error_msgs"]} if info.get("error_msgs") else {})
    print(f"loaded {type(model).__name__} ({sum(p.numel() for p in model.parameters())} parameters), {type(tok).__name__} "
          f"(vocabulary {len(tok)}); loading info: {json.dumps({k: list(v) for k, v in info.items()})}")
    assert not problems, f"weights not matched: {problems}"

    prompt = tok.apply_chat_template([{"role": "user", "content": args.question},
                                      {"role": "assistant", "content": args.answer}], tokenize=False)
    config = json.load(open(os.path.join(args.export_dir, "tokenizer_config.json")))
    expected = (tok.bos_token or "") + config["aligner_prompt_template"].replace("{question}", args.question).replace("{answer}", args.answer)
    print(f"prompt: {prompt!r}")
    assert prompt == expected, f"chat template renders {prompt!r}, AlignerKit's template {expected!r}"
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids

    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "logits.safetensors")
        gen = subprocess.run([args.aligner, "generate", "--checkpoint", args.export_dir, "--prompt", prompt,
                              "--logits-out", out, "--max-new-tokens", "20"], capture_output=True, text=True, check=True)
        theirs = load_file(out)
    swift_ids = theirs["input_ids"].to(torch.long)
    assert torch.equal(swift_ids, ids), f"token ids differ:\n transformers {ids.tolist()}\n AlignerKit   {swift_ids.tolist()}"
    with torch.no_grad():
        logits = model(ids).logits
    diff = (logits - theirs["logits"]).abs().max().item()
    print(f"prompt of {ids.shape[1]} tokens: max |logit difference| transformers vs AlignerKit = {diff:.3e} "
          f"(max |logit| {logits.abs().max().item():.3f})")
    assert diff <= 1e-4, "logits differ by more than 1e-4"

    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=20, do_sample=False, pad_token_id=tok.pad_token_id)
    text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    swift_text = gen.stdout[len(prompt):].split("\n\n")[0] if gen.stdout.startswith(prompt) else gen.stdout
    print(f"transformers greedy: {text!r}")
    print(f"AlignerKit greedy:   {swift_text.strip()!r}")
    assert text.strip() == swift_text.strip(), "greedy continuations differ"
    print("OK: the export loads in transformers without warnings about weights, and matches AlignerKit")


if __name__ == "__main__":
    sys.exit(main())
