#!/usr/bin/env python3
"""Held-out loss of a model trained from an `aligner handoff` folder, computed as AlignerKit computes it.

    python3 scripts/bench/heldout_loss.py HANDOFF MODEL [--base BASE]

HANDOFF is the hand-off folder (its data/eval.tokenized.jsonl: AlignerKit's own token ids and completion masks); MODEL
is a Hugging Face model folder or a PEFT adapter folder (then on BASE, default HANDOFF/model). Prints three means of
the completion tokens' negative log-likelihood:
  token-weighted        sum over every counted token / number of counted tokens: what `aligner train` and
                        `aligner eval` report;
  mean of batch means   the mean of each batch's token-weighted mean, batches of --batch records in file order,
                        each weighted by its record count: what transformers' Trainer reports as eval_loss;
  mean of record means  each record's mean, averaged over records.
The first and second differ by a few per cent on real data (batches of short corrections weigh as much as long ones),
so a TRL eval_loss is compared with AlignerKit's token-weighted loss only through this script.
"""
import argparse
import json
import os

import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("handoff")
    ap.add_argument("model")
    ap.add_argument("--base", default=None, help="base model folder for a PEFT adapter (default: HANDOFF/model)")
    ap.add_argument("--batch", type=int, default=4, help="records per batch for the mean of batch means (default 4)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    records = [json.loads(line) for line in open(os.path.join(args.handoff, "data", "eval.tokenized.jsonl"))]
    if os.path.exists(os.path.join(args.model, "adapter_config.json")):
        from peft import PeftModel
        base = AutoModelForCausalLM.from_pretrained(args.base or os.path.join(args.handoff, "model"), dtype=torch.float32)
        model = PeftModel.from_pretrained(base, args.model)
    else:
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    model.eval()
    sums, counts = [], []
    with torch.no_grad():
        for r in records:
            ids = torch.tensor([r["input_ids"]])
            counted = torch.tensor(r["completion_mask"][1:], dtype=torch.bool)  # token t+1 scored by the logits at t
            logits = model(input_ids=ids).logits[0, :-1]
            nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="none")
            sums.append(float(nll[counted].sum()))
            counts.append(int(counted.sum()))
    token_weighted = sum(sums) / sum(counts)
    batch_means = []
    for i in range(0, len(records), args.batch):
        s, c = sum(sums[i:i + args.batch]), sum(counts[i:i + args.batch])
        batch_means += [s / c] * len(sums[i:i + args.batch])
    batch_mean = sum(batch_means) / len(batch_means)
    record_mean = sum(s / c for s, c in zip(sums, counts) if c) / sum(1 for c in counts if c)
    if args.json:
        print(json.dumps({"records": len(records), "tokens": sum(counts), "token_weighted": token_weighted,
                          "mean_of_batch_means": batch_mean, "mean_of_record_means": record_mean}))
    else:
        print(f"{len(records)} records, {sum(counts)} counted tokens")
        print(f"token-weighted {token_weighted:.4f}   mean of batch means {batch_mean:.4f}   "
              f"mean of record means {record_mean:.4f}")


if __name__ == "__main__":
    main()
