#!/usr/bin/env python3
"""Loads a reward model that AlignerKit exported with transformers' AutoModelForSequenceClassification and checks that
its scores on the fixture's batch equal the fixture's (transformers' own model, scripts/fixtures/make_reward_fixture.py).

    ALIGNERKIT_REWARD_EXPORT_DIR=/tmp/reward-export swift test -c release -Xswiftc -enable-testing --filter RewardExportTests
    .venv-fixtures/bin/python scripts/checks/check_reward_export.py /tmp/reward-export
"""
import os
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "/tmp/reward-export"
    fixture = load_file(os.path.join(ROOT, "Tests/AlignerModelTests/Fixtures/tiny_reward.safetensors"))
    model = AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager")
    model.eval()
    ids = fixture["input_ids"].long()
    with torch.no_grad():
        scores = model(input_ids=ids, attention_mask=(ids != model.config.pad_token_id).long()).logits[:, 0]
    diff = (scores - fixture["scores"]).abs().max().item()
    print(f"{type(model).__name__}, num_labels {model.config.num_labels}: scores {[round(s, 6) for s in scores.tolist()]}")
    print(f"largest difference from the fixture's scores: {diff:.2e}")
    sys.exit(0 if diff <= 1e-5 else 1)


if __name__ == "__main__":
    main()
