#!/usr/bin/env python3
"""Loads a reward model that AlignerKit exported with transformers' AutoModelForSequenceClassification and checks that
its scores on the fixture's batch equal the fixture's (transformers' own model, scripts/fixtures/make_reward_fixture.py);
loads its tokenizer with AutoTokenizer and checks that it is a reward model's own: its special tokens, no chat template
and no Aligner prompt (no aligner_* key).

    ALIGNERKIT_REWARD_EXPORT_DIR=/tmp/reward-export swift test -c release -Xswiftc -enable-testing --filter RewardExportTests
    .venv-fixtures/bin/python scripts/checks/check_reward_export.py /tmp/reward-export
"""
import os
import sys

import torch
from safetensors.torch import load_file
import json

from transformers import AutoModelForSequenceClassification, AutoTokenizer

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
    tok = AutoTokenizer.from_pretrained(folder)
    with open(os.path.join(folder, "tokenizer_config.json")) as f:
        keys = sorted(json.load(f))
    aligner_keys = [k for k in keys if k.startswith("aligner")]
    print(f"{type(tok).__name__}: bos {tok.bos_token!r}, eos {tok.eos_token!r}, pad {tok.pad_token!r}, "
          f"chat template {'present' if tok.chat_template else 'none'}, aligner keys {aligner_keys or 'none'}")
    ids = tok("Q: hi\nA: hello", add_special_tokens=False).input_ids
    print(f"'Q: hi\\nA: hello' -> {len(ids)} tokens")
    own = tok.chat_template is None and not aligner_keys and tok.pad_token == "<pad>" and tok.eos_token == "</s>" and ids
    sys.exit(0 if diff <= 1e-5 and own else 1)


if __name__ == "__main__":
    main()
