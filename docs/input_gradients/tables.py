#!/usr/bin/python3
"""Generates the measured content of REPRODUCTION.md from the `certify audit --json` reports in results/.

    tables.py            print the generated tables
    tables.py --write    rewrite REPRODUCTION.md's generated blocks and quoted figures from the results
    tables.py --check    exit 1 (and show what differs) unless REPRODUCTION.md is what --write would make

REPRODUCTION.md holds two kinds of generated content, so that no measured figure is ever typed:
- blocks between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->` (NAME = results, controls or theory);
- quoted figures in the prose, `<!--fig FILE:FIELD FORMAT-->VALUE<!--/fig-->`, for example
  `<!--fig blockmnist10_standard:loc@0.05 pct0-->41<!--/fig-->`. FIELD is one of loc@K (share of the top-k
  coordinates on the null block), diff@K / std@K (DiffROAR mean / std), top@K / bot@K (mean accuracy of the
  models retrained on top-k- / bottom-k-kept data), mtop@K / mbot@K (the mask-only control's mean accuracy),
  chance@K (the test set's majority-class rate), flagged (number of retraining runs at chance),
  acc / racc (the attributed model's clean / robust accuracy),
  CASE.STAT for the theory reports (e.g. TC1.pBottom, TC2.meanAbsCos, TC2.robustAccuracy, tc6.retrained).
  FORMAT is a Python format spec (.3f, +.2f) or pct0 / pct1 (percent, number only).
Quoted figures are checked wherever they are. Inside `<!-- checked -->` … `<!-- /checked -->` (the sections that
report measurements) every decimal number must also be a quoted figure or a setting (k = …, eps …, within …); the
check reports any other. Figures quoted from the paper or the notebooks stay outside the checked sections.
Every report cited must exist and carry a provenance block (commit, command, data, seeds, versions).
"""
import json
import os
import re
import sys

here = os.path.dirname(os.path.abspath(__file__))
results = os.path.join(here, "results")
doc_path = os.path.join(here, "REPRODUCTION.md")
PROVENANCE = ("commit", "command", "data", "seeds", "versions")


def load(name):
    p = os.path.join(results, name + ".json")
    if not os.path.exists(p):
        raise SystemExit(f"tables.py: {os.path.relpath(p, here)} does not exist")
    r = json.load(open(p))
    missing = [k for k in PROVENANCE if not r.get("provenance", {}).get(k)]
    if missing:
        raise SystemExit(f"tables.py: {os.path.relpath(p, here)} has no provenance field(s) {missing}")
    return r


def mean(xs):
    return sum(xs) / len(xs)


def fill_of(r):
    return r.get("settings", {}).get("fill_kind", "constant")


def learner_of(r):
    return "model class" if r.get("settings", {}).get("learner_class", "reference").startswith("model") else "reference"


def flagged(r):
    """Retraining runs that ended at chance, as 'k = K: top seed S' (none recorded in older reports)."""
    return [f"k = {p['k']:g}: {c}" for p in r["diffROAR"] for c in (p.get("chanceRuns") or [])]


def table(title, names, controls=False):
    reps = [(n, load(n)) for n in names]
    ks = [p["k"] for p in reps[0][1]["diffROAR"]]
    out = [f"**{title}**", ""]
    extra = "fill | learner | " if controls else ""
    out.append(f"| run | {extra}model acc. | robust acc. | " + " | ".join(f"k = {k:g}" for k in ks) + " |")
    out.append("|---|" + "---|" * (2 if controls else 0) + "---|---|" + "---|" * len(ks))
    for n, r in reps:
        cells = [f"{p['mean']:+.3f} ± {p['std']:.3f}" for p in r["diffROAR"]]
        ex = f"{fill_of(r)} | {learner_of(r)} | " if controls else ""
        out.append(f"| {n} | {ex}{r['attributedModelAccuracy']:.3f} | {r['attributedModelRobustAccuracy']:.3f} | " + " | ".join(cells) + " |")
    out += ["", "mean accuracy of the retrained models, top-k kept / bottom-k kept:", ""]
    out.append("| run | " + " | ".join(f"k = {k:g}" for k in ks) + " |")
    out.append("|---|" + "---|" * len(ks))
    for n, r in reps:
        out.append(f"| {n} | " + " | ".join(f"{mean(p['accTopKept']):.3f} / {mean(p['accBottomKept']):.3f}" for p in r["diffROAR"]) + " |")
    mo = [(n, r) for n, r in reps if r["diffROAR"][0].get("accMaskOnlyTop") is not None]
    if mo:
        out += ["", "mask-only control: mean accuracy of the learner retrained on the kept indicator alone, top-k / bottom-k "
                    "(chance = the majority-class rate of the test set; well above chance, the mask's shape carries the label):", ""]
        out.append("| run | chance | " + " | ".join(f"k = {k:g}" for k in ks) + " |")
        out.append("|---|---|" + "---|" * len(ks))
        for n, r in mo:
            out.append(f"| {n} | {r['diffROAR'][0]['chance']:.3f} | " + " | ".join(
                f"{mean(p['accMaskOnlyTop']):.3f} / {mean(p['accMaskOnlyBottom']):.3f}" for p in r["diffROAR"]) + " |")
    if controls:
        out += ["", "retraining runs that ended at chance (accuracy ≤ chance + 3 binomial standard errors; kept in the means, listed here):", ""]
        for n, r in reps:
            f = flagged(r)
            out.append(f"- {n}: " + ("; ".join(f) if f else "none"))
    loc = [(n, r) for n, r in reps if r["localization"]]
    if loc:
        out += ["", "localization: share of the top-k coordinates (by |attribution|) in the null block (test set; lower is better):", ""]
        out.append("| run | " + " | ".join(f"k = {k:g}" for k in ks) + " |")
        out.append("|---|" + "---|" * len(ks))
        for n, r in loc:
            out.append(f"| {n} | " + " | ".join(f"{p['nullFraction']:.3f}" for p in r["localization"]) + " |")
    return "\n".join(out)


CONTROL_GROUPS = [
    ("BlockMNIST from Fashion-MNIST (10 classes, 8 000 / 2 000 images), true-label logit gradient: constant fill vs ROAD, with the mask-only control",
     ["bmf_standard_constant", "bmf_standard_road", "bmf_robust_constant", "bmf_robust_road"]),
    ("The same with the attributed model's class as the learner (ROAD fill)", ["bmf_standard_road_model", "bmf_robust_road_model"]),
    ("BlockMNIST from scikit-learn's handwritten digits (10 classes), true-label logit gradient: constant fill vs ROAD, with the mask-only control",
     ["bmd_standard_constant", "bmd_standard_road", "bmd_standard_road_nonoise", "bmd_robust_constant", "bmd_robust_road", "bmd_random_road"]),
]


def controls_block():
    return "\n\n".join(table(t, n, controls=True) for t, n in CONTROL_GROUPS)


def results_block():
    groups = [
        ("BlockMNIST from Fashion-MNIST (10 classes), gradient of the true-label logit (the official code)",
         ["blockmnist10_standard", "blockmnist10_robust"]),
        ("BlockMNIST from Fashion-MNIST (10 classes), gradient of the predicted-label logit",
         ["blockmnist10_standard_pred", "blockmnist10_robust_pred"]),
        ("BlockMNIST from Fashion-MNIST (10 classes), random attribution (control)", ["blockmnist10_random"]),
        ("Fashion-MNIST, gradient of the true-label logit (the official code)", ["fmnist_standard", "fmnist_robust"]),
        ("Fashion-MNIST, gradient of the predicted-label logit", ["fmnist_standard_pred", "fmnist_robust_pred"]),
    ]
    return "\n\n".join(table(t, n) for t, n in groups)


def theory_block():
    r = load("theory_full")
    out = ["| case | whose result | claim | holds | converged | clean acc. | robust acc. | P_top | P_bot | signal mass | mass on R | "
           "CV of \\|g\\| on R | \\|g_j*\\| / mean on R | noise / R | mean \\|cos(g, x)\\| |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in r["cases"]:
        res, s = c["result"], c["result"]["statistics"]
        conv = "yes" if res.get("converged") else "no"
        out.append(f"| {c['name']} | {c.get('source', '')} | {c['claim']} | {'yes' if c['holds'] else 'NO'} | {conv} | {res['cleanAccuracy']:.3f} | "
                   f"{res['robustAccuracy']:.3f} | {s['pTop']:.3f} | {s['pBottom']:.3f} | {s['signalMass']:.3f} | {s['relevantMass']:.3f} | "
                   f"{s.get('relevantCV', float('nan')):.3f} | {s.get('signalToRelevantMean', float('nan')):.3f} | "
                   f"{s.get('noiseToRelevantMean', float('nan')):.3f} | {s['meanAbsCos']:.3f} |")
    srcs = r.get("sources") or {}
    for name in ("TC3", "TC4", "TC6"):
        if name in srcs:
            out.append(f"\n{name}: {srcs[name]}.")
    t = r["tc6"]
    holds = abs(t["retrained"] - t["identity"]) <= t["tolerance"]
    out += ["", f"TC6 (retrained DiffROAR with one kept coordinate = (P_top − P_bot)/2): identity {t['identity']:.3f}, "
                f"retrained {t['retrained']:.3f}, tolerance {t['tolerance']:g}: {'holds' if holds else 'does NOT hold'}."]
    return "\n".join(out)


BLOCKS = {"results": results_block, "controls": controls_block, "theory": theory_block}


def field(name, path):
    r = load(name)
    m = re.fullmatch(r"(loc|diff|std|top|bot|mtop|mbot|chance)@([0-9.]+)", path)
    if m:
        kind, k = m.group(1), float(m.group(2))
        pts = r["localization"] if kind == "loc" else r["diffROAR"]
        p = next((p for p in pts if abs(p["k"] - k) < 1e-12), None)
        if p is None:
            raise KeyError(f"no k = {k:g} in {name}")
        return {"loc": lambda: p["nullFraction"], "diff": lambda: p["mean"], "std": lambda: p["std"],
                "top": lambda: mean(p["accTopKept"]), "bot": lambda: mean(p["accBottomKept"]),
                "mtop": lambda: mean(p["accMaskOnlyTop"]), "mbot": lambda: mean(p["accMaskOnlyBottom"]),
                "chance": lambda: p["chance"]}[kind]()
    if path == "flagged":
        return len(flagged(r))
    if path == "acc":
        return r["attributedModelAccuracy"]
    if path == "racc":
        return r["attributedModelRobustAccuracy"]
    case, _, stat = path.partition(".")
    if case == "tc6":
        return r["tc6"][stat]
    c = next(c for c in r["cases"] if c["name"] == case)
    return c["result"]["statistics"][stat] if stat in c["result"]["statistics"] else c["result"][stat]


def fmt(value, spec):
    if spec.startswith("pct"):
        return f"{100 * value:.{int(spec[3:])}f}"
    return format(value, spec)


FIG = re.compile(r"<!--fig (\w+):(\S+?) (\S+?)-->(.*?)<!--/fig-->")


def render(doc):
    """The document with every generated block and quoted figure recomputed from the results."""
    for name, make in BLOCKS.items():
        pat = re.compile(rf"<!-- generated:{name} -->.*?<!-- /generated:{name} -->", re.S)
        if len(pat.findall(doc)) != 1:
            raise SystemExit(f"tables.py: REPRODUCTION.md needs exactly one generated:{name} block")
        block = f"<!-- generated:{name} -->\n{make()}\n<!-- /generated:{name} -->"
        doc = pat.sub(lambda m: block, doc)

    def quote(m):
        try:
            v = fmt(field(m.group(1), m.group(2)), m.group(3))
        except (KeyError, StopIteration, ValueError) as e:
            raise SystemExit(f"tables.py: cannot resolve {m.group(0)!r}: {e}")
        return f"<!--fig {m.group(1)}:{m.group(2)} {m.group(3)}-->{v}<!--/fig-->"
    return FIG.sub(quote, doc)


# A decimal number in checked prose that is not a quoted figure must be a setting: preceded by one of these.
SETTING = re.compile(r"(k = |k ≤ |k ≥ |k < |within |eps |eps = |lr |step |width |batch |tolerance |of |noise |σ |k ∈ \{[^}]*)$")


def unquoted_figures(doc):
    problems = []
    for block in re.findall(r"<!-- checked -->(.*?)<!-- /checked -->", doc, re.S):
        text = re.sub(r"<!-- generated:(\w+) -->.*?<!-- /generated:\1 -->", "", block, flags=re.S)
        text = FIG.sub("FIG", text)
        for m in re.finditer(r"[+−-]?\d+\.\d+", text):
            if not SETTING.search(text[max(0, m.start() - 40):m.start()]):
                line = text[:m.start()].count("\n")
                problems.append(f"unquoted figure {m.group(0)!r} in: {text.splitlines()[line].strip()[:120]}")
    return problems


def main(argv):
    if "--write" in argv or "--check" in argv:
        doc = open(doc_path, encoding="utf-8").read()
        new = render(doc)
        problems = unquoted_figures(new)
        if "--write" in argv:
            if new != doc:
                open(doc_path, "w", encoding="utf-8").write(new)
                print("tables.py: rewrote REPRODUCTION.md")
        elif new != doc:
            a, b = doc.splitlines(), new.splitlines()
            first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            problems.insert(0, f"REPRODUCTION.md differs from its results at line {first + 1}:\n"
                               f"  file:      {a[first] if first < len(a) else '(end)'}\n"
                               f"  generated: {b[first] if first < len(b) else '(end)'}\n"
                               "run docs/input_gradients/tables.py --write")
        for p in problems:
            print("tables.py: " + p, file=sys.stderr)
        return 1 if problems else 0
    print(results_block())
    print()
    print(controls_block())
    print()
    print(theory_block())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
