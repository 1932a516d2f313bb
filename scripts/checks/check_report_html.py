#!/usr/bin/env python3
"""Renders report.html in a real browser (headless Chromium, Debian's `chromium`) and checks what it shows.

Without arguments it builds what it checks, in --work (default /tmp/alignerkit-report-check):
  1. a Q-A-C file of the bundled hh-rlhf records where every 4th record's question and answer carry markup
     (`<script>document.title='pwned'</script>`, an <img onerror>, a closing </div>);
  2. a tiny reward model (`aligner reward train`) and a judged sweep (2 proportions x 2 seeds, `aligner sweep`);
  3. `aligner eval --judge` of one arm, with another arm as a control model.
Then, for the sweep's report.html and the eval's report, in Chromium with no network (`unshare -n` when it can):
  - the page's text is rendered after its own script ran (the gallery's "N of N records shown" line);
  - every number of the arm table and the run table equals report.json's (the exact value in data-value, and the
    text shown rounded as the table rounds it);
  - the hostile records are shown as text: the title is unchanged, the only <script> element is the page's own, no
    <img> element comes from the data, and the literal markup appears in the rendered text;
  - the filters work: a link presetting `#flag=F` shows exactly the records where a shown (best-seed) response has F,
    `#seeds=all` shows every seed's response, `#arms=0` only the first arm's;
  - nothing outside the file is referenced (no http/https/file URL in src or href; the CSP forbids all requests).
It saves a screenshot of the sweep's page (--screenshot) and prints what it checked; exit status 1 on any failure.

  python3 scripts/checks/check_report_html.py [--aligner .build/release/aligner] [--screenshot docs/report-html.png]
  python3 scripts/checks/check_report_html.py --report SWEEP/report.html   # check an existing sweep's report only
"""
import argparse
import gzip
import html.parser
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOSTILE = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\"></div>"
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def run(cmd, **kw):
    print("$ " + " ".join(cmd), flush=True)
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        sys.exit(f"{cmd[0]} exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out.stdout


def chromium(args):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        sys.exit("chromium not found: apt-get install -y chromium")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--virtual-time-budget=3000"] + args
    # No network at all when the kernel lets us make a namespace: the page must not need one.
    if os.geteuid() == 0 and shutil.which("unshare"):
        cmd = ["unshare", "-n"] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        sys.exit(f"chromium exited {out.returncode}: {out.stderr[-2000:]}")
    return out.stdout


class Page(html.parser.HTMLParser):
    """The elements and text of a rendered DOM that the checks read."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []          # open elements: (tag, attrs)
        self.title = ""
        self.scripts = 0
        self.imgs = []           # src of every <img>
        self.urls = []           # src/href values
        self.tables = {}         # id -> list of rows, row = list of (key, value, text)
        self.table = None
        self.cell = None
        self.records = []        # per article: {"hidden": bool, "entries": [(arm, best, flags, hidden)], "text": str}
        self.text = []
        self.shown = ""
        self.in_shown = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag not in ("meta", "img", "input", "br", "link"):
            self.stack.append((tag, a))
        if tag == "script":
            self.scripts += 1
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        for k in ("src", "href"):
            if k in a:
                self.urls.append(a[k])
        if tag == "table":
            self.table = a.get("id")
            self.tables[self.table] = []
        if tag == "tr" and self.table is not None:
            self.tables[self.table].append([])
        if tag == "td" and self.table is not None:
            self.cell = [a.get("data-key"), a.get("data-value"), ""]
        if tag == "article":
            self.records.append({"hidden": "hidden" in a, "entries": [], "text": ""})
        if tag == "div" and "entry" in (a.get("class") or "").split() and self.records:
            self.records[-1]["entries"].append((a.get("data-arm"), a.get("data-best"), (a.get("data-flags") or "").split(), "hidden" in a,
                                                a.get("data-seed")))
        if a.get("id") == "shown":
            self.in_shown = True

    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.tables[self.table][-1].append(tuple(self.cell))
            self.cell = None
        if tag == "table":
            self.table = None
        if tag == "p" and self.in_shown:
            self.in_shown = False
        while self.stack:
            t, _ = self.stack.pop()
            if t == tag:
                break

    def handle_data(self, data):
        if self.stack and self.stack[-1][0] == "title":
            self.title += data
        if self.cell is not None:
            self.cell[2] += data
        if self.in_shown:
            self.shown += data
        if self.records and not any(t == "script" for t, _ in self.stack):
            self.records[-1]["text"] += data
        self.text.append(data)


def render(path, fragment=""):
    p = Page()
    p.feed(chromium(["--dump-dom", "file://" + os.path.abspath(path) + fragment]))
    return p


def fmt(x, digits):
    return "–" if x is None else f"{x:.{digits}f}"


def same(a, b):
    return a is None and b is None or a is not None and b is not None and abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(b)))


def check_tables(page, report):
    arms = page.tables.get("arms", [])
    arms = [r for r in arms if r]
    check(len(arms) == len(report["arms"]), f"arm table: {len(arms)} rows for {len(report['arms'])} arms in report.json")
    digits = {"final_eval_loss_mean": 4, "final_eval_loss_sd": 4, "best_eval_loss_mean": 4, "win_rate_mean": 3, "useful_rate_mean": 3,
              "win_rate_sd": 3, "useful_rate_sd": 3, "warmup_percent": None}
    compared, before = 0, len(failures)
    for row, arm in zip(arms, report["arms"]):
        cells = {k: (v, t) for k, v, t in row}
        for key, d in digits.items():
            if key not in arm:
                continue
            expected = arm[key]
            value, text = cells.get(key, (None, None))
            if key.endswith("_sd") and arm.get("seeds") and len(arm["seeds"]) < 2:
                continue
            shown = f"{expected:g}" if d is None else fmt(expected, d)
            ok = same(value, expected) and text == shown
            compared += 1
            if not ok:
                check(False, f"arm p={arm['warmup_percent']} {key}: page {value!r} / {text!r}, report.json {expected!r} ({shown})")
        per_seed = ", ".join(fmt(x, 4) for x in arm["final_eval_loss"])
        if cells.get("final_eval_loss", (None, None))[1] != per_seed:
            check(False, f"arm p={arm['warmup_percent']} per-seed losses: page {cells.get('final_eval_loss')}, report.json {per_seed}")
        compared += 1
    runs = [r for r in page.tables.get("runs", []) if r]
    check(len(runs) == len(report["runs"]), f"run table: {len(runs)} rows for {len(report['runs'])} runs in report.json")
    for row, r in zip(runs, report["runs"]):
        cells = {k: (v, t) for k, v, t in row}
        for key in ("eval_loss_stage1", "eval_loss_stage2", "best_eval_loss", "seed", "tokens_seen"):
            value, text = cells.get(key, (None, None))
            expected = r.get(key)
            shown = fmt(expected, 4) if isinstance(expected, float) or expected is None else str(expected)
            compared += 1
            if not (same(value, expected) and text == shown):
                check(False, f"run {r['arm']} {key}: page {value!r} / {text!r}, report.json {expected!r}")
    check(len(failures) == before, f"{compared} table values equal report.json's (value and rounded text)")


def check_flags(page, report):
    """Each judged run's flag counts in the gallery, over its judged records, equal its rates in report.json."""
    rates = {"refusal": "refusal_rate", "degenerate": "degenerate_rate", "generic": "generic_rate", "unfinished": "unfinished_rate",
             "useful": "useful_rate"}
    compared, before = 0, len(failures)
    for run in report["runs"]:
        n = run.get("judged_records")
        if not n:
            continue
        arm = next(i for i, a in enumerate(report["arms"])
                   if a["warmup_percent"] == run["warmup_percent"] and all(a["grid"].get(k) == json.dumps(run.get(k)) or a["grid"].get(k) == run.get(k)
                                                                        for k in report["grid_keys"]))
        seeded = len(report["seeds"]) > 1 or any(e[4] is not None for r in page.records for e in r["entries"])
        entries = [e for r in page.records for e in r["entries"] if e[0] == str(arm) and (not seeded or e[4] == str(run["seed"]))]
        if len(entries) != n:
            check(False, f"run {run['arm']}: {len(entries)} corrections in the gallery, {n} judged")
            continue
        for flag, key in rates.items():
            if run.get(key) is None:
                continue
            count = sum(flag in e[2] for e in entries)
            compared += 1
            if abs(count / n - run[key]) > 1e-9:
                check(False, f"run {run['arm']}: {count} of {n} corrections flagged {flag} in the gallery, {key} {run[key]} in report.json")
    check(len(failures) == before, f"{compared} flag rates of the gallery equal report.json's (refusal, degenerate, generic, unfinished, useful per run)")


def check_page(path, hostile_expected, title_expected, report=None, seeds=True):
    page = render(path)
    check(page.title == title_expected, f"{os.path.basename(path)}: title {page.title!r} (the data's script did not run)")
    check(page.scripts == 1, f"one <script> element, the page's own (found {page.scripts})")
    check(all(src.startswith("data:image/svg+xml;base64,") for src in page.imgs), f"{len(page.imgs)} <img>, each a data: chart; none from the data")
    external = [u for u in page.urls if u.split(":")[0] in ("http", "https", "file", "ftp") or u.startswith("//")]
    check(not external, f"no URL outside the file (src/href: {len(page.urls)}, external: {external[:3]})")
    n = len(page.records)
    check(n > 0 and page.shown.strip() == f"{n} of {n} records shown", f"script ran: {page.shown.strip()!r} for {n} records")
    if hostile_expected:
        shown_hostile = sum(HOSTILE in r["text"] for r in page.records)
        check(shown_hostile > 0, f"hostile markup shown as text in {shown_hostile} of {n} records")
    if report is not None:
        check_tables(page, report)
        check_flags(page, report)
    # Filters, preset by the link's fragment: the same page rendered again.
    for f in sorted(set(x for r in page.records for e in r["entries"] for x in e[2])):
        expected = sum(any(e[1] == "1" and f in e[2] for e in r["entries"]) for r in page.records)
        filtered = render(path, "#flag=" + f)
        visible = sum(not r["hidden"] for r in filtered.records)
        check(visible == expected and filtered.shown.strip() == f"{expected} of {n} records shown",
              f"#flag={f}: {visible} records shown, expected {expected} ({filtered.shown.strip()!r})")
    entries = sum(len(r["entries"]) for r in page.records)
    best = sum(1 for r in page.records for e in r["entries"] if e[1] == "1")
    visible_at_first = sum(1 for r in page.records for e in r["entries"] if not e[3])
    check(visible_at_first == best, f"at first each arm's best seed: {visible_at_first} responses shown of {entries}")
    if seeds and entries > best:
        every = render(path, "#seeds=all")
        shown = sum(1 for r in every.records for e in r["entries"] if not e[3])
        check(shown == entries, f"#seeds=all: {shown} of {entries} responses shown")
    first = render(path, "#arms=0")
    others = sum(1 for r in first.records for e in r["entries"] if not e[3] and e[0] != "0")
    mine = sum(1 for r in first.records for e in r["entries"] if not e[3] and e[0] == "0")
    check(others == 0 and mine > 0, f"#arms=0: {mine} responses of the first arm shown, {others} of others")
    return page


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aligner", default=os.path.join(ROOT, ".build/release/aligner"))
    ap.add_argument("--work", default="/tmp/alignerkit-report-check")
    ap.add_argument("--screenshot", default=None, help="save a PNG of the sweep's report here")
    ap.add_argument("--report", default=None, help="check this sweep report.html (beside its report.json) instead of building one")
    args = ap.parse_args()

    if args.report:
        report = json.load(open(os.path.join(os.path.dirname(args.report), "report.json")))
        check_page(args.report, False, f"Identity warm-up sweep: {report['sweep']}", report)
        sys.exit(1 if failures else 0)

    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    records = []
    with gzip.open(os.path.join(ROOT, "data/qac/hh-rlhf-harmless-base-test.qac.jsonl.gz"), "rt") as f:
        for i, line in enumerate(f):
            if i >= 240:
                break
            r = json.loads(line)
            if i % 4 == 0:
                r["question"] = HOSTILE + " " + r["question"]
                r["answer"] = r["answer"] + " " + HOSTILE
            records.append(r)
    data = os.path.join(work, "hostile.qac.jsonl")
    with open(data, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    model = """
[tokenizer]
vocab_size = 512
special_tokens = ["<pad>", "<s>", "</s>"]
[model]
hidden_size = 32
intermediate_size = 64
num_hidden_layers = 2
num_attention_heads = 4
num_key_value_heads = 2
max_position_embeddings = 192
"""
    common = f'seed = 7\noutput_dir = "{work}"\n[data]\ntrain = ["{data}"]\neval_count = 30\nmax_length = 192\n'
    with open(os.path.join(work, "rm.toml"), "w") as f:
        f.write('name = "rm"\n' + common + model + "[reward]\nepochs = 1\nlr = 3e-3\nbatch_size = 8\n[train]\ncheckpoint_every = 0\n")
    with open(os.path.join(work, "sweep.toml"), "w") as f:
        f.write('name = "sweep"\n' + common + model
                + "[stage1]\nepochs = 1\nlr = 3e-3\nbatch_size = 8\n[stage2]\nepochs = 2\nlr = 3e-3\nbatch_size = 8\n"
                + "[train]\neval_every = 10\nlog_every = 10\ncheckpoint_every = 0\ngenerate_eval = 4\ngenerate_max_new_tokens = 24\n"
                + f'[sweep]\nwarmup_percents = [0, 20]\nseeds = [1, 2]\njudge = "{work}/rm"\njudge_records = 16\nbest_by = "useful_rate"\n')
    run([args.aligner, "reward", "train", os.path.join(work, "rm.toml")])
    out = run([args.aligner, "sweep", os.path.join(work, "sweep.toml")])
    sweep_html = os.path.join(work, "sweep", "report.html")
    check(f"html:   {sweep_html}" in out, "aligner sweep prints the path of report.html")
    report = json.load(open(os.path.join(work, "sweep", "report.json")))
    print(f"-- {sweep_html}")
    check_page(sweep_html, True, "Identity warm-up sweep: sweep", report)
    if args.screenshot:
        chromium([f"--screenshot={os.path.abspath(args.screenshot)}", "--window-size=1280,1800", "--hide-scrollbars", "file://" + sweep_html])
        check(os.path.getsize(args.screenshot) > 10_000, f"screenshot {args.screenshot} ({os.path.getsize(args.screenshot)} bytes)")

    arm = os.path.join(work, "sweep", "arm-p20-seed1")
    summary = os.path.join(work, "eval-p20.json")
    out = run([args.aligner, "eval", "--checkpoint", arm, os.path.join(arm, "splits/eval.jsonl"), "--generate", "16", "--max-new-tokens", "24",
               "--judge", os.path.join(work, "rm"), "--control-model", os.path.join(work, "sweep", "arm-p0-seed1"), "--fluency-model", "none",
               "--output", summary])
    eval_html = os.path.join(work, "eval-p20.html")
    check(f"report: {eval_html}" in out, "aligner eval prints the path of its report")
    print(f"-- {eval_html}")
    s = json.load(open(summary))
    page = check_page(eval_html, True, f"Evaluation of {s['source']}", None, seeds=False)
    loss_cells = [v for row in page.tables.get("metrics", []) if row and row[0][2] == "correction loss" for (k, v, t) in row if k == "value"]
    check(loss_cells and same(loss_cells[0], s["loss"]), f"eval page's correction loss {loss_cells} equals the summary's {s['loss']}")
    print(f"\n{len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
