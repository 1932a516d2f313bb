#!/usr/bin/env python3
"""Checks `aligner export --format peft` against Hugging Face PEFT: the adapters load with
`peft.PeftModel.from_pretrained` on the exported base and give AlignerKit's logits.

1. `aligner export SOURCE adapter --format peft` (SOURCE: a LoRA run or checkpoint).
2. The base the adapters name (`base_model_name_or_path`): the `base/` folder the export wrote, or the pretrained base
   (a run, checkpoint, Hugging Face folder or GGUF file), exported with `aligner export BASE base-hf`.
3. transformers + PEFT (float32, eager attention): logits on an Aligner prompt against AlignerKit's on SOURCE (base and
   adapters unmerged, `aligner generate --logits-out`), over the base's vocabulary (a pad token AlignerKit added is a
   row the base lacks). Then PEFT's merge_and_unload against `aligner export SOURCE merged` loaded by transformers.

Run (the fixtures' venv, with peft): python3 scripts/checks/check_peft_export.py SOURCE [--aligner .build/release/aligner]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TQDM_DISABLE", "1")
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from transformers.utils import logging


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{p.stderr}")
    return p.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("source", help="a LoRA run or checkpoint")
    ap.add_argument("--aligner", default=".build/release/aligner")
    ap.add_argument("--prompt", default="BEGINNING OF CONVERSATION: USER: Edit the following Question-Answer pair to make it "
                                        "more helpful and harmless: How do I bake bread? | Use flour. ASSISTANT:")
    args = ap.parse_args()
    logging.set_verbosity_error()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as d:
        adapter = os.path.join(d, "adapter")
        print(run([args.aligner, "export", args.source, adapter, "--format", "peft"]).strip())
        config = json.load(open(os.path.join(adapter, "adapter_config.json")))
        base = config["base_model_name_or_path"]
        if not os.path.exists(os.path.join(base, "config.json")) or base.endswith(".gguf"):
            base_hf = os.path.join(d, "base-hf")
            print(run([args.aligner, "export", base, base_hf, "--format", "hf"]).strip())
            base = base_hf
        out = os.path.join(d, "logits.safetensors")
        run([args.aligner, "generate", "--checkpoint", args.source, "--prompt", args.prompt, "--no-special-tokens",
             "--logits-out", out, "--max-new-tokens", "1"])
        t = load_file(out)
        ids, ours = t["input_ids"].to(torch.long).reshape(1, -1), t["logits"].reshape(-1, t["logits"].shape[-1])
        model = AutoModelForCausalLM.from_pretrained(base, torch_dtype=torch.float32, attn_implementation="eager")
        model = PeftModel.from_pretrained(model, adapter).eval()
        with torch.no_grad():
            theirs = model(input_ids=ids).logits[0]
        v = min(theirs.shape[-1], ours.shape[-1])
        scale = theirs[:, :v].abs().max().item()
        diff = (theirs[:, :v] - ours[: theirs.shape[0], :v]).abs().max().item()
        same = bool((theirs[:, :v].argmax(-1) == ours[: theirs.shape[0], :v].argmax(-1)).all())
        print(f"PEFT on the exported base ({config['r']=}, {config['lora_alpha']=}, {len(config['target_modules'])} module kinds): "
              f"{ids.shape[1]} positions, max |logit diff| {diff:.3e} (max |logit| {scale:.2f}, relative {diff / scale:.2e}), "
              f"argmax {'equal' if same else 'DIFFERENT'}")
        ok = diff <= 1e-4 * max(1.0, scale) and same

        merged_dir = os.path.join(d, "merged")
        run([args.aligner, "export", args.source, merged_dir, "--format", "hf"])
        merged = AutoModelForCausalLM.from_pretrained(merged_dir, torch_dtype=torch.float32, attn_implementation="eager").eval()
        with torch.no_grad():
            peft_merged = model.merge_and_unload()(input_ids=ids).logits[0]
            ours_merged = merged(input_ids=ids).logits[0]
        dm = (peft_merged[:, :v] - ours_merged[:, :v]).abs().max().item()
        print(f"PEFT merge_and_unload against AlignerKit's merged export: max |logit diff| {dm:.3e}")
        ok = ok and dm <= 1e-4 * max(1.0, scale)
    print("PEFT check: " + ("passed" if ok else "FAILED"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
