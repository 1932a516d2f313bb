#!/usr/bin/env python3
"""Checks `aligner handoff --to trl` for real: TRL's first-step loss on the handed-off data, from the initial weights
AlignerKit exported, equals AlignerKit's own first-step loss to 1e-4.

    python3 -m venv .venv-trl && .venv-trl/bin/pip install torch==2.13.0+cpu --index-url https://download.pytorch.org/whl/cpu
    .venv-trl/bin/pip install trl peft pyyaml
    .venv-trl/bin/python scripts/checks/trl_handoff_check.py [--aligner .build/release/aligner]

It runs, on the smoke recipe cut down to a few records (stage 1's batch holds every warm-up record, so that the first
step sees the same examples whatever order TRL's sampler draws them in):
  1. aligner handoff recipes/smoke.toml --to trl WORK/handoff
  2. aligner train (the same recipe and overrides), stopped after its first optimiser step: AlignerKit's loss;
  3. WORK/handoff/train_aligner.py --stages 1 --max-steps 1, on the token ids (--tokenized) and on the texts (TRL
     tokenizes them): TRL's logged loss of that step.
The toolkit and its tests never need Python; this is a check for whoever changes the hand-off.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SETS = ["--set", "data.limit=60", "--set", "data.eval_count=10", "--set", "stage1.batch_size=16", "--set", "stage1.grad_accum=1"]


def run(cmd, env=None, allowed=(0,)):
    print("$ " + " ".join(cmd), flush=True)
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode not in allowed:
        sys.exit(f"failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aligner", default=os.path.join(ROOT, ".build/release/aligner"))
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="trl-handoff-check-")
    try:
        handoff = os.path.join(work, "handoff")
        run([args.aligner, "handoff", "recipes/smoke.toml", "--to", "trl", handoff] + SETS)
        env = dict(os.environ, ALIGNERKIT_STOP_AFTER_STEPS="1")
        run([args.aligner, "train", "recipes/smoke.toml", "--set", f"output_dir={work}", "--set", "name=ours",
             "--set", "train.log_every=1"] + SETS, env=env, allowed=(1,))  # 1: stopped after the requested steps
        with open(os.path.join(work, "ours", "metrics.jsonl")) as f:
            ours = next(json.loads(line) for line in f if '"loss"' in line)
        assert ours["stage"] == 1 and ours["step"] == 1, ours
        with open(os.path.join(handoff, "aligner-handoff.json")) as f:
            warmup = json.load(f)["counts"]["stage1_warmup"]
        print(f"AlignerKit: stage 1 step 1 loss {ours['loss']:.8f} over {warmup} warm-up examples")
        worst = 0.0
        for form in ["tokenized", "text"]:
            out = os.path.join(work, f"trl-{form}")
            cmd = [sys.executable, os.path.join(handoff, "train_aligner.py"), "--stages", "1", "--max-steps", "1",
                   "--output-dir", out, "--set", "logging_steps=1", "--set", 'eval_strategy="no"', "--set", 'save_strategy="no"'] + (["--tokenized"] if form == "tokenized" else [])
            run(cmd)
            with open(os.path.join(out, "stage1", "log_history.json")) as f:
                trl_loss = next(e["loss"] for e in json.load(f) if "loss" in e)
            diff = abs(trl_loss - ours["loss"])
            worst = max(worst, diff)
            print(f"TRL ({form}): stage 1 step 1 loss {trl_loss:.8f}; |difference| {diff:.2e}")
        print("PASS" if worst <= 1e-4 else "FAIL", f"(largest difference {worst:.2e}, tolerance 1e-4)")
        sys.exit(0 if worst <= 1e-4 else 1)
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
