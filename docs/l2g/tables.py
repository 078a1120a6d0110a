#!/usr/bin/python3
"""Generates the measured content of REPRODUCTION.md from experiment.json (written by `certify l2g experiment --json`).

    tables.py            print the generated block
    tables.py --write    rewrite REPRODUCTION.md's block between <!-- generated:results --> and <!-- /generated:results -->
    tables.py --check    exit 1 (and show the difference) unless REPRODUCTION.md is what --write would make

Mean ± standard error over seeds: the sample standard deviation (n − 1) divided by √n, as `certify l2g experiment` prints.
"""
import json
import math
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
doc_path = os.path.join(here, "REPRODUCTION.md")
BEGIN, END = "<!-- generated:results -->", "<!-- /generated:results -->"


def mean_se(xs):
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return f"{m:.3f}"
    v = sum((x - m) ** 2 for x in xs) / (len(xs) - 1)
    return f"{m:.3f} ± {math.sqrt(v / len(xs)):.3f}"


def block(results):
    rows = ["| arm | seeds | AP | AP50 | AP75 | AR10 | identity switches / video | final train loss | train s (mean) |",
            "|---|---|---|---|---|---|---|---|---|"]
    per_seed = []
    for arm in ("L2G-aligner", "plain propagation"):
        a = sorted((r for r in results if r["arm"] == arm), key=lambda r: r["seed"])
        if not a:
            continue
        col = lambda k: [r[k] for r in a]  # noqa: E731
        rows.append(f"| {arm} | {len(a)} | {mean_se(col('ap'))} | {mean_se(col('ap50'))} | {mean_se(col('ap75'))} | "
                    f"{mean_se(col('ar10'))} | {mean_se(col('identitySwitches'))} | {mean_se(col('finalTrainLoss'))} | "
                    f"{sum(col('trainSeconds')) / len(a):.1f} |")
        per_seed.append(f"- {arm}: AP " + " / ".join(f"{x:.3f}" for x in col("ap")) +
                        "; identity switches per video " + " / ".join(f"{x:.2f}" for x in col("identitySwitches")))
    return "\n".join(rows) + "\n\nPer seed (0, 1, 2):\n\n" + "\n".join(per_seed)


def render(doc, results):
    i, j = doc.index(BEGIN), doc.index(END)
    return doc[: i + len(BEGIN)] + "\n" + block(results) + "\n" + doc[j:]


if __name__ == "__main__":
    with open(os.path.join(here, "experiment.json")) as f:
        results = json.load(f)["runs"]
    with open(doc_path) as f:
        doc = f.read()
    fresh = render(doc, results)
    if "--write" in sys.argv:
        with open(doc_path, "w") as f:
            f.write(fresh)
    elif "--check" in sys.argv:
        if fresh != doc:
            import difflib
            sys.stdout.writelines(difflib.unified_diff(doc.splitlines(True), fresh.splitlines(True), "REPRODUCTION.md", "generated"))
            sys.exit(1)
        print("REPRODUCTION.md is up to date")
    else:
        print(block(results))
