#!/usr/bin/env bash
# End to end on real data against the tool a user would pick instead: one recipe trained by `aligner train` and, handed
# off with `aligner handoff --to trl`, by TRL's SFTTrainer on the same CPU, for the same steps. Prints wall time, real
# (non-padding) tokens per second, peak memory and the final held-out loss of each.
#
#   scripts/bench/trl_end_to_end.sh [RECIPE] [--set KEY=VALUE ...]
#
# Default recipe: recipes/smollm2-aligner-lora.toml (needs scripts/fetch-base-models). Extra --set overrides go to both
# sides (e.g. --set stage1.steps=20 --set stage2.steps=40 for a shorter comparison). Environment: PYTHON (a Python with
# torch, transformers, peft, trl, datasets and pyyaml; default python3), OUT (scratch folder, default /tmp/trl-e2e).
# TRL runs on AlignerKit's own token ids (`train_aligner.py --tokenized`), so both sides see the same examples.
# Held-out losses are compared token-weighted, as AlignerKit reports them: TRL's final model is scored by
# heldout_loss.py (TRL's own eval_loss, a mean of per-batch means, is printed beside it; it is a few per cent lower).
set -euo pipefail
cd "$(dirname "$0")/../.."
recipe=${1:-recipes/smollm2-aligner-lora.toml}
[ $# -ge 1 ] && shift
out=${OUT:-/tmp/trl-e2e}
python=${PYTHON:-python3}
aligner=.build/release/aligner
[ -x "$aligner" ] || swift build -c release --product aligner
rm -rf "$out" && mkdir -p "$out"
name=trl-e2e-$(basename "$recipe" .toml)
sets=("$@" --set "name=$name" --set "output_dir=$out/aligner")
"$aligner" handoff "$recipe" "${sets[@]}" --to trl "$out/handoff" > "$out/handoff.log"

/usr/bin/time -f "%e %M" -o "$out/trl.time" "$python" "$out/handoff/train_aligner.py" --tokenized > "$out/trl.log" 2>&1
/usr/bin/time -f "%e %M" -o "$out/aligner.time" "$aligner" train "$recipe" "${sets[@]}" > "$out/aligner.log" 2>&1
final=$(ls -d "$out"/handoff/trl-output/stage* | sort | tail -1)
"$python" scripts/bench/heldout_loss.py "$out/handoff" "$final" --json > "$out/trl-heldout.json" 2> "$out/trl-heldout.log"

"$python" - "$out" "$name" <<'PY'
import glob, json, os, sys
out, name = sys.argv[1], sys.argv[2]
def timing(path):
    wall, kb = open(path).read().split()[-2:]
    return float(wall), int(kb) / 1024
rows = []
# TRL: each stage's log_history; num_tokens counts the attention mask (non-padding tokens).
tokens = 0.0
trl_own = None
for stage in sorted(glob.glob(os.path.join(out, "handoff", "trl-output", "stage*", "log_history.json"))):
    history = json.load(open(stage))
    tokens += max(h.get("num_tokens", 0) for h in history)
    evals = [h["eval_loss"] for h in history if "eval_loss" in h]
    trl_own = evals[-1] if evals else trl_own
token_weighted = json.load(open(os.path.join(out, "trl-heldout.json")))["token_weighted"]
wall, mib = timing(os.path.join(out, "trl.time"))
rows.append(("TRL SFTTrainer", wall, tokens, tokens / wall, mib, token_weighted, trl_own))
result = json.load(open(os.path.join(out, "aligner", name, "result.json")))
metrics = [json.loads(l) for l in open(os.path.join(out, "aligner", name, "metrics.jsonl"))]
evals = [m["eval_loss"] for m in metrics if "eval_loss" in m]
wall, mib = timing(os.path.join(out, "aligner.time"))
rows.append(("aligner train", wall, result["tokensSeen"], result["tokensSeen"] / wall, mib, evals[-1] if evals else float("nan"), None))
# Real tokens over the whole wall of each process (loading and evaluations included on both sides).
print("| trainer | wall (s) | real tokens trained | real tokens/s (over the wall) | peak RSS (MiB) | final held-out loss, token-weighted | TRL's eval_loss (mean of batch means) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for r in rows:
    own = "-" if r[6] is None else f"{r[6]:.4f}"
    print(f"| {r[0]} | {r[1]:.0f} | {r[2]:.0f} | {r[3]:.1f} | {r[4]:.0f} | {r[5]:.4f} | {own} |")
PY
