#!/usr/bin/python3
"""Prints the Markdown tables of REPRODUCTION.md from the `certify audit --json` reports in results/."""
import json
import os
import sys

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def load(name):
    p = os.path.join(here, name + ".json")
    return json.load(open(p)) if os.path.exists(p) else None


def table(title, names):
    reps = [(n, load(n)) for n in names]
    reps = [(n, r) for n, r in reps if r]
    if not reps:
        return
    ks = [p["k"] for p in reps[0][1]["diffROAR"]]
    print(f"\n**{title}**\n")
    print("| run | model acc. | robust acc. | " + " | ".join(f"k = {k:g}" for k in ks) + " |")
    print("|---|---|---|" + "---|" * len(ks))
    for n, r in reps:
        cells = [f"{p['mean']:+.3f} ± {p['std']:.3f}" for p in r["diffROAR"]]
        acc = r.get("attributedModelAccuracy")
        racc = r.get("attributedModelRobustAccuracy")
        print(f"| {n} | {acc:.3f} | {racc:.3f} | " + " | ".join(cells) + " |")
    print("\nmean accuracy of the retrained models, top-k kept / bottom-k kept:\n")
    print("| run | " + " | ".join(f"k = {k:g}" for k in ks) + " |")
    print("|---|" + "---|" * len(ks))
    for n, r in reps:
        cells = [f"{sum(p['accTopKept']) / len(p['accTopKept']):.3f} / {sum(p['accBottomKept']) / len(p['accBottomKept']):.3f}" for p in r["diffROAR"]]
        print(f"| {n} | " + " | ".join(cells) + " |")
    loc = [(n, r) for n, r in reps if r["localization"]]
    if loc:
        print("\nlocalization: share of the top-k coordinates (by |attribution|) in the null block (test set; lower is better):\n")
        print("| run | " + " | ".join(f"k = {k:g}" for k in ks) + " |")
        print("|---|" + "---|" * len(ks))
        for n, r in loc:
            print(f"| {n} | " + " | ".join(f"{p['nullFraction']:.3f}" for p in r["localization"]) + " |")


if __name__ == "__main__":
    table("BlockMNIST from Fashion-MNIST (10 classes), gradient of the true-label logit (the official code)",
          ["blockmnist10_standard", "blockmnist10_robust"])
    table("BlockMNIST from Fashion-MNIST (10 classes), gradient of the predicted-label logit",
          ["blockmnist10_standard_pred", "blockmnist10_robust_pred"])
    table("BlockMNIST from Fashion-MNIST (10 classes), random attribution (control)", ["blockmnist10_random"])
    table("Fashion-MNIST, gradient of the true-label logit (the official code)", ["fmnist_standard", "fmnist_robust"])
    table("Fashion-MNIST, gradient of the predicted-label logit", ["fmnist_standard_pred", "fmnist_robust_pred"])
