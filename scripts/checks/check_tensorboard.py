#!/usr/bin/env python3
"""Reads a run folder's TensorBoard events with TensorBoard's own EventAccumulator and checks that every number of its
metrics.jsonl is there, at its global step, with the same value (float32), and that no step appears twice; in a
judged sweep's run, also every number of its judge.json (judge/X at the run's last global step).

    python3 scripts/checks/check_tensorboard.py RUN_FOLDER      # needs: pip install tensorboard==2.21.0

`eval_X` in metrics.jsonl is the scalar `eval/X`, every other number `train/X`; stage and step are the axis.
"""
import json
import math
import os
import struct
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def main():
    run = sys.argv[1]
    acc = EventAccumulator(os.path.join(run, "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    events = {t: acc.Scalars(t) for t in tags}
    problems, checked = [], 0
    for tag, evs in events.items():
        steps = [e.step for e in evs]
        if len(steps) != len(set(steps)):
            problems.append(f"{tag}: a step appears twice")
    for line in open(os.path.join(run, "metrics.jsonl")):
        o = json.loads(line)
        step = o.get("global_step", 0)
        for key, value in o.items():
            if key in ("stage", "step", "global_step", "non_finite") or isinstance(value, bool) or isinstance(value, str):
                continue
            if value is None:
                value = math.nan
            if not isinstance(value, (int, float)):
                continue
            tag = "eval/" + key[5:] if key.startswith("eval_") else "train/" + key
            found = [e.value for e in events.get(tag, []) if e.step == step]
            expected = f32(float(value))
            if not found:
                problems.append(f"{tag} at step {step}: missing")
            elif not (found[0] == expected or (math.isnan(found[0]) and math.isnan(expected))):
                problems.append(f"{tag} at step {step}: {found[0]} in TensorBoard, {expected} in metrics.jsonl")
            checked += 1
    # A sweep's judgement of the run (judge.json): its numbers as judge/X at the run's last global step.
    judge_path = os.path.join(run, "judge.json")
    judged = 0
    if os.path.exists(judge_path):
        j = json.load(open(judge_path))["summary"]
        last = max(json.loads(line).get("global_step", 0) for line in open(os.path.join(run, "metrics.jsonl")))
        c = j["responses"][-1]
        expected = {"useful_rate": c["usefulRate"], "useful_low": c["usefulInterval"][0], "useful_high": c["usefulInterval"][1],
                    "refusal_rate": c["measures"]["refusalRate"], "degenerate_rate": c["measures"]["degenerateRate"],
                    "generic_rate": c["measures"]["genericRate"], "win_rate": j["correctionVsAnswer"]["winRate"],
                    "tie_rate": j["correctionVsAnswer"]["tieRate"], "lose_rate": j["correctionVsAnswer"]["loseRate"],
                    "mean_score_change": j["correctionVsAnswer"]["meanChange"], "mean_answer_score": j["meanAnswerScore"],
                    "mean_correction_score": j["meanCorrectionScore"]}
        if c["measures"].get("unfinishedRate") is not None:
            expected["unfinished_rate"] = c["measures"]["unfinishedRate"]
        if j.get("correctionVsReference"):
            expected["win_rate_vs_reference"] = j["correctionVsReference"]["winRate"]
        if j.get("meanReferenceScore") is not None:
            expected["mean_reference_score"] = j["meanReferenceScore"]
        for name, short in (("answer (copy control)", "copy"), ("fixed refusal", "refusal"), ("reference", "reference")):
            for x in j["responses"][:-1]:
                if x["name"] == name:
                    expected[short + "_useful_rate"] = x["usefulRate"]
        for name, value in expected.items():
            found = [e.value for e in events.get("judge/" + name, []) if e.step == last]
            if not found:
                problems.append(f"judge/{name} at step {last}: missing")
            elif found[0] != f32(float(value)):
                problems.append(f"judge/{name} at step {last}: {found[0]} in TensorBoard, {value} in judge.json")
            judged += 1
    print(f"{run}: {len(tags)} scalar tags, {sum(len(v) for v in events.values())} events; "
          f"{checked} numbers of metrics.jsonl and {judged} of judge.json checked, {len(problems)} problems")
    for p in problems[:20]:
        print("  " + p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
