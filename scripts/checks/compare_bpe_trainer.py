#!/usr/bin/env python3
"""Compares AlignerKit's byte-level BPE trainer with Hugging Face tokenizers' BpeTrainer on the same corpus.

Usage: python3 scripts/checks/compare_bpe_trainer.py [--vocab-size 2048] [--corpus data/qac/hh-rlhf-harmless-base-test.qac.jsonl.gz]
Needs `tokenizers` (pinned: 0.23.3) and a release build of `aligner`. Trains both on the questions, answers and
corrections of the corpus (special tokens <pad>, <s>, </s>; min frequency 2; GPT-2 byte-level split without a prefix
space) and prints how far the vocabularies, the merge lists and the encodings of the corpus agree.
"""
import argparse, gzip, json, os, subprocess, sys, tempfile

from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers

ap = argparse.ArgumentParser()
ap.add_argument("--vocab-size", type=int, default=2048)
ap.add_argument("--corpus", default="data/qac/hh-rlhf-harmless-base-test.qac.jsonl.gz")
ap.add_argument("--aligner", default=".build/release/aligner")
args = ap.parse_args()

texts = []
with gzip.open(args.corpus, "rt", encoding="utf-8") as f:
    for line in f:
        r = json.loads(line)
        texts += [r["question"], r["answer"], r["correction"]]
specials = ["<pad>", "<s>", "</s>"]

hf = Tokenizer(models.BPE())
hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
hf.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=args.vocab_size, min_frequency=2, special_tokens=specials, show_progress=False,
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
hf.train_from_iterator(texts, trainer=trainer)

with tempfile.TemporaryDirectory() as d:
    ours_path = os.path.join(d, "ours.json")
    subprocess.run([args.aligner, "tokenizer", "train", "--input", args.corpus, "--vocab-size", str(args.vocab_size),
                    "--special-tokens", ",".join(specials), "--min-frequency", "2", "--output", ours_path], check=True,
                   stdout=subprocess.DEVNULL)
    ours_json = json.load(open(ours_path))
    ours = Tokenizer.from_file(ours_path)
hf_json = json.loads(hf.to_str())

def merges(j):
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in j["model"]["merges"]]

hv, ov = hf_json["model"]["vocab"], ours_json["model"]["vocab"]
hm, om = merges(hf_json), merges(ours_json)
prefix = next((i for i, (a, b) in enumerate(zip(hm, om)) if a != b), min(len(hm), len(om)))
print(f"corpus: {len(texts)} texts from {args.corpus}; vocabulary size asked {args.vocab_size}")
print(f"vocabulary: HF {len(hv)}, AlignerKit {len(ov)}; tokens in both {len(set(hv) & set(ov))}")
print(f"merges: HF {len(hm)}, AlignerKit {len(om)}; same merge set {len(set(hm) & set(om))}; identical prefix of the merge list {prefix}")
if prefix < min(len(hm), len(om)):
    print(f"  first difference at merge {prefix}: HF {hm[prefix]} vs AlignerKit {om[prefix]}")
same_ids = same_len = 0
total_hf = total_ours = 0
for t in texts:
    a, b = hf.encode(t), ours.encode(t)
    total_hf += len(a.ids); total_ours += len(b.ids)
    same_len += len(a.ids) == len(b.ids)
    same_ids += a.tokens == b.tokens
print(f"encodings of the corpus: identical tokens for {same_ids}/{len(texts)} texts, same length for {same_len}; "
      f"tokens in all: HF {total_hf}, AlignerKit {total_ours} ({(total_ours / total_hf - 1) * 100:+.3f}%)")
