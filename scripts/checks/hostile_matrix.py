#!/usr/bin/env python3
"""Hostile inputs and faults against the built `aligner`, by class (issue 27): every case must end within its time
limit, with an exit status from the documented table, never a signal, and without Foundation's error text.

    python3 scripts/checks/hostile_matrix.py [--aligner .build/release/aligner] [--keep]

Prints one line per case (class, exit status, seconds, the first line of the message) and a summary; exits 1 when a
case traps, hangs, leaks Foundation text, uses an undocumented status or does not refuse what it must refuse.
Needs the repository's bundled data and test fixtures; writes only under a temporary folder.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

DOCUMENTED = {0, 1, 64, 65, 66, 69, 70, 74, 75, 130}
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(ROOT, "Tests/AlignerFormatsTests/Fixtures/hf-tiny")
RAW = os.path.join(ROOT, "data/qac/raw/hh-rlhf-harmless-base-test.jsonl.gz")
QAC = os.path.join(ROOT, "data/qac/hh-rlhf-harmless-base-test.qac.jsonl.gz")


def model_copy(tmp, name, edit):
    path = os.path.join(tmp, name)
    shutil.copytree(TINY, path)
    edit(path)
    return path


def edit_json(path, file, change):
    p = os.path.join(path, file)
    d = json.load(open(p)) if os.path.exists(p) else {}
    change(d)
    json.dump(d, open(p, "w"))


def edit_safetensors_shape(path, shape):
    p = os.path.join(path, "model.safetensors")
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    k = sorted(k for k in h if k != "__metadata__")[0]
    h[k]["shape"] = shape
    hb = json.dumps(h).encode()
    open(p, "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aligner", default=os.path.join(ROOT, ".build/release/aligner"))
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="hostile-")
    a = args.aligner
    qa = os.path.join(tmp, "qa.jsonl")
    open(qa, "w").write('{"question": "Q?", "answer": "A."}\n')
    afile = os.path.join(tmp, "afile")
    open(afile, "w").write("x")
    folder = os.path.join(tmp, "afolder")
    os.makedirs(folder)
    fifo = os.path.join(tmp, "fifo")
    os.mkfifo(fifo)
    bad_utf8 = os.path.join(tmp, "bad.txt")
    open(bad_utf8, "wb").write(b"ok\n\xff\xfe\n")
    run = ["--set", f"output_dir={tmp}", "--set", "data.limit=120", "--set", "data.eval_count=20", "--set", "model.hidden_size=32",
           "--set", "model.intermediate_size=64", "--set", "stage1.steps=2", "--set", "stage2.steps=3", "--set", "train.checkpoint_every=1"]

    cases = []  # (class, argv, expected statuses or None for "any documented non-zero", timeout)

    def case(cls, argv, expect, limit=60):
        cases.append((cls, argv, expect, limit))

    # Hostile sizes and values in downloaded files.
    for shape in ([2**31, 2**31], [2**62], [-1, 4]):
        m = model_copy(tmp, f"shape{len(cases)}", lambda p, s=shape: edit_safetensors_shape(p, s))
        case("sizes", [a, "generate", "--checkpoint", m, "--prompt", "hi"], {65})
    for ident in (-5, 2**40):
        def neg(p, i=ident):
            def change(d):
                k = sorted(d["model"]["vocab"])[3]
                d["model"]["vocab"][k] = i
            edit_json(p, "tokenizer.json", change)
        case("sizes", [a, "generate", "--checkpoint", model_copy(tmp, f"ids{len(cases)}", neg), "--prompt", "hi"], {65})
    for key, value in (("num_hidden_layers", 2**62), ("hidden_size", -64), ("vocab_size", 2**31), ("head_dim", 2**40)):
        m = model_copy(tmp, f"cfg{len(cases)}", lambda p, k=key, v=value: edit_json(p, "config.json", lambda d: d.__setitem__(k, v)))
        case("sizes", [a, "generate", "--checkpoint", m, "--prompt", "hi"], {65})
    for template in ("{{ 99999999999999999999 }}", "{{ " + "(" * 500 + "1" + ")" * 500 + " }}",
                     "{% for i in range(9999999999) %}x{% endfor %}", "{% set ns = namespace(x=1) %}{% set ns.x = ns %}{{ ns.x }}",
                     "{{ 'a' * 9223372036854775807 }}", "{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}"):
        m = model_copy(tmp, f"tpl{len(cases)}", lambda p, t=template: edit_json(p, "tokenizer_config.json", lambda d: d.__setitem__("chat_template", t)))
        case("templates", [a, "correct", "--checkpoint", m, qa, os.path.join(tmp, f"c{len(cases)}.jsonl"), "--chat-template", "base",
                           "--max-new-tokens", "2"], {64, 65}, 30)

    # Outputs that would destroy inputs, and outputs something is in the way of.
    qa_copy = os.path.join(tmp, "qa-copy.jsonl")
    shutil.copy(qa, qa_copy)
    model = model_copy(tmp, "model", lambda p: None)
    case("outputs", [a, "export", model, model], {64})
    case("outputs", [a, "export", model, os.path.join(model, "sub")], {64})
    case("outputs", [a, "export", model, tmp], {64})
    case("outputs", [a, "data", "convert", RAW, RAW, "--format", "hh-rlhf"], {64})
    case("outputs", [a, "correct", "--checkpoint", model, qa_copy, qa_copy], {64})
    case("outputs", [a, "tokenizer", "train", "--input", qa_copy, "--output", qa_copy], {64})
    case("outputs", [a, "generate", "--checkpoint", model, "--prompt", "hi", "--logits-out", os.path.join(model, "x.safetensors")], {64})
    for out in (os.path.join(afile, "x.jsonl"), folder, fifo, "/dev/null", os.path.join(tmp, "n" * 300)):
        case("outputs", [a, "data", "convert", RAW, out, "--format", "hh-rlhf"], {74})
        case("outputs", [a, "correct", "--checkpoint", model, qa_copy, out], {74})
    case("outputs", [a, "train", "recipes/smoke.toml", "--set", f"output_dir={afile}"] + run[2:], {74})

    # Inputs: missing, folders, devices, pipes, bad text.
    for inp in (os.path.join(tmp, "absent.jsonl"), folder, fifo, "/dev/zero"):
        case("inputs", [a, "data", "stats", inp], {64, 65, 66}, 20)
        case("inputs", [a, "train", inp], {64, 66}, 20)
        case("inputs", [a, "tokenizer", "encode", "--tokenizer", inp, "hi"], {64, 65, 66}, 20)
        case("inputs", [a, "generate", "--checkpoint", model, "--prompt-file", inp], {64, 66}, 20)
    case("inputs", [a, "tokenizer", "train", "--input", bad_utf8, "--output", os.path.join(tmp, "t.json")], {65})
    case("inputs", [a, "train", "recipes/smoke.toml", "--set", "tokenizer.min_frequency=-5"], {64})
    case("inputs", [a, "train", "recipes/smoke.toml", "--set", "=5"], {64})
    case("inputs", [a, "tokenizer", "train", "--input", qa, "--output", os.path.join(tmp, "t2.json"), "--special-tokens", "<a>,<a>"], {64})

    failures = 0
    for cls, argv, expect, limit in cases:
        start = time.time()
        try:
            p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=limit, errors="replace")
            status, text = p.returncode, p.stdout + p.stderr
        except subprocess.TimeoutExpired:
            status, text = None, ""
        seconds = time.time() - start
        first = next((l for l in text.splitlines() if l.startswith("error:")), text.strip().splitlines()[-1] if text.strip() else "")
        verdict = "ok"
        if status is None:
            verdict = "HANG"
        elif status < 0:
            verdict = f"SIGNAL {-status}"
        elif "Error Domain=" in text:
            verdict = "FOUNDATION TEXT"
        elif status not in DOCUMENTED:
            verdict = f"UNDOCUMENTED {status}"
        elif expect is not None and status not in expect:
            verdict = f"EXPECTED {sorted(expect)}"
        if verdict != "ok":
            failures += 1
        shown = " ".join(x.replace(tmp, "$TMP").replace(ROOT + "/", "") for x in argv[1:])[:90]
        print(f"{verdict:>16}  {cls:9} {status!s:>4} {seconds:5.1f}s  {shown}  | {first[:110]}")
    print(f"\n{len(cases)} cases: {len(cases) - failures} as documented, {failures} not")
    # The pipe and devices must still be what they were.
    for special in (fifo, "/dev/null", "/dev/zero"):
        if not (os.path.exists(special) and not os.path.isfile(special)):
            print(f"{special} was replaced by a file")
            failures += 1
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
