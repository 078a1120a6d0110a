#!/usr/bin/python3
"""Generates the measured content of REPRODUCTION.md from the `certify distill --reproduce --json` reports in results/.

    tables.py            print the generated blocks
    tables.py --write    rewrite REPRODUCTION.md's generated blocks from the results
    tables.py --check    exit 1 (and show what differs) unless REPRODUCTION.md is what --write would make

Generated blocks sit between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->` (NAME = results, claims, sweep,
timing, factor1); no measured figure is typed by hand. Every report must carry a provenance block (commit, command, data, seeds,
versions). bench/nrrdd_torch.json (the PyTorch side of the speed comparison) is read when present.
"""
import json
import math
import os
import re
import sys

here = os.path.dirname(os.path.abspath(__file__))
results = os.path.join(here, "results")
doc_path = os.path.join(here, "REPRODUCTION.md")
bench_path = os.path.join(here, "..", "..", "bench", "nrrdd_torch.json")
PROVENANCE = ("commit", "command", "data", "seeds", "versions")
MAIN = "ipc10"


def load(name):
    p = os.path.join(results, name + ".json")
    if not os.path.exists(p):
        raise SystemExit(f"tables.py: {os.path.relpath(p, here)} does not exist")
    r = json.load(open(p))
    missing = [k for k in PROVENANCE if not r.get("provenance", {}).get(k)]
    if missing:
        raise SystemExit(f"tables.py: {name}.json has no provenance {missing}")
    return r


def stats(vals):
    m = sum(vals) / len(vals)
    se = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1) / len(vals)) if len(vals) > 1 else float("nan")
    return m, se


def acc(r, c, k):
    return [a["accuracy"] for a in r["arms"] if a["construction"] == c and a["labels"] == k]


def paired(r, c1, k1, c2, k2):
    """Per-seed differences (c1,k1) − (c2,k2)."""
    a = {x["seed"]: x["accuracy"] for x in r["arms"] if x["construction"] == c1 and x["labels"] == k1}
    b = {x["seed"]: x["accuracy"] for x in r["arms"] if x["construction"] == c2 and x["labels"] == k2}
    return [a[s] - b[s] for s in sorted(a) if s in b]


def fmt_se(se):
    return "–" if math.isnan(se) else f"{se:.4f}"


def block_results(r):
    cfg = r["config"]
    rows = ["| construction | labels | test accuracy (mean ± SE) | seeds | stored label numbers | per seed |", "|---|---|---|---|---|---|"]
    for c in ("random", "rded", "nrrdd"):
        for k in ("onehot", "dbr", "soft"):
            v = acc(r, c, k)
            if not v:
                continue
            m, se = stats(v)
            stored = next(a["stored_numbers"] for a in r["arms"] if a["construction"] == c and a["labels"] == k)
            rows.append(f"| {c} | {k} | {m:.4f} ± {fmt_se(se)} | {len(v)} | {stored:,} | {', '.join(f'{x:.4f}' for x in v)} |")
    rows.append("")
    rows.append(f"Teacher test accuracy {r['teacher_accuracy']:.4f}. Settings: IPC {cfg['ipc']}, factor {cfg['factor']}, mipc {cfg['mipc']}, "
                f"{cfg['num_crops']} crops, ε {cfg['epsilon']}, η {cfg['eta']}, {cfg['nrr_steps']} NRR steps ({cfg['nrr_optimizer']}), "
                f"α_bn {cfg['alpha_bn']}, α_dbr {cfg['alpha_dbr']}, DBR τ {cfg['dbr_tau']} ({cfg['distance']}, {cfg['dbr_loss']}), KD τ {cfg['kd_tau']}, "
                f"{cfg['student_epochs']} student epochs, batch {cfg['batch_size']}, test images {cfg['test_limit']}. "
                f"Label storage: one-hot 0 extra numbers, DBR 2 per instance per epoch, soft labels 10 per instance per epoch "
                f"(DBR/soft = {2 / 10:.0%}).")
    return "\n".join(rows)


def verdict(diffs, name):
    if len(diffs) < 2:
        return f"inconclusive (one seed: difference {diffs[0]:+.4f})" if diffs else "not run"
    m, se = stats(diffs)
    if m - 2 * se > 0:
        return f"holds: mean paired difference {m:+.4f} ± {se:.4f} (> 2 SE)"
    if m + 2 * se < 0:
        return f"not reproduced (reversed): mean paired difference {m:+.4f} ± {se:.4f}"
    return f"not reproduced (within noise): mean paired difference {m:+.4f} ± {se:.4f}"


def block_claims(r):
    lines = ["| claim | comparison (paired over seeds) | verdict |", "|---|---|---|"]
    for k in ("soft", "dbr", "onehot"):
        lines.append(f"| NRR-DD ≥ RDED ({k} labels) | nrrdd − rded | {verdict(paired(r, 'nrrdd', k, 'rded', k), '')} |")
    lines.append(f"| DBR > one-hot (NRR-DD set) | dbr − onehot | {verdict(paired(r, 'nrrdd', 'dbr', 'nrrdd', 'onehot'), '')} |")
    lines.append(f"| soft > DBR (NRR-DD set) | soft − dbr | {verdict(paired(r, 'nrrdd', 'soft', 'nrrdd', 'dbr'), '')} |")
    lines.append(f"| DBR > one-hot (RDED set) | dbr − onehot | {verdict(paired(r, 'rded', 'dbr', 'rded', 'onehot'), '')} |")
    lines.append(f"| distilled > random real (soft labels) | nrrdd − random | {verdict(paired(r, 'nrrdd', 'soft', 'random', 'soft'), '')} |")
    return "\n".join(lines)


def block_sweep(r):
    if not r.get("sweep"):
        return "No sweep in this report."
    rows = ["| construction | labels | ε | α_dbr | test accuracy (seed 0) |", "|---|---|---|---|---|"]
    base = [a for a in r["arms"] if a["seed"] == 0 and a["construction"] in ("nrrdd", "random") and a["labels"] in ("dbr", "soft")]
    for a in sorted(base + r["sweep"], key=lambda a: (a["construction"], a["labels"], a["epsilon"], a["alpha_dbr"])):
        if a["construction"] == "random" and a["labels"] != "dbr":
            continue
        rows.append(f"| {a['construction']} | {a['labels']} | {a['epsilon']} | {a['alpha_dbr'] if a['labels'] == 'dbr' else '–'} | {a['accuracy']:.4f} |")
    return "\n".join(rows)


def block_timing(r):
    lines = [f"Whole run (all arms, {len(set(a['seed'] for a in r['arms']))} seed(s){', with the sweep' if r.get('sweep') else ''}): "
             f"{r['seconds'] / 60:.1f} min on this machine (2 cores shared with other jobs). Teacher training {r['teacher_seconds']:.1f} s; "
             f"one NRR pass (one class) {r['nrr_seconds_per_class']:.2f} s."]
    if os.path.exists(bench_path):
        b = json.load(open(bench_path))
        lines.append("")
        lines.append("| step | Certify (Swift, Float64) | PyTorch CPU (Float64, 1 thread) | ratio Certify / PyTorch |")
        lines.append("|---|---|---|---|")
        lines.append(f"| teacher training | {r['teacher_seconds']:.1f} s | {b['teacher_seconds']:.1f} s | {r['teacher_seconds'] / b['teacher_seconds']:.2f} |")
        lines.append(f"| one NRR pass (one class) | {r['nrr_seconds_per_class']:.2f} s | {b['nrr_seconds_per_class']:.2f} s | "
                     f"{r['nrr_seconds_per_class'] / b['nrr_seconds_per_class']:.2f} |")
    return "\n".join(lines)


def blocks():
    r = load(MAIN)
    out = {"results": block_results(r), "claims": block_claims(r), "sweep": block_sweep(r), "timing": block_timing(r)}
    if os.path.exists(os.path.join(results, "ipc10_factor1.json")):
        f1 = load("ipc10_factor1")
        out["factor1"] = block_results(f1) + "\n\n" + block_claims(f1)
    else:
        out["factor1"] = "Not run."
    return out


def render(text, gen):
    for name, body in gen.items():
        pat = re.compile(rf"(<!-- generated:{name} -->\n).*?(\n<!-- /generated:{name} -->)", re.S)
        if not pat.search(text):
            raise SystemExit(f"tables.py: REPRODUCTION.md has no generated:{name} block")
        text = pat.sub(lambda m: m.group(1) + body + m.group(2), text)
    return text


def main(argv):
    gen = blocks()
    if "--write" in argv or "--check" in argv:
        text = open(doc_path).read()
        new = render(text, gen)
        if "--write" in argv:
            open(doc_path, "w").write(new)
            return 0
        if new != text:
            import difflib
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True), "REPRODUCTION.md", "generated"))
            print("REPRODUCTION.md is stale: run docs/nrrdd/tables.py --write")
            return 1
        return 0
    for k, v in gen.items():
        print(f"== {k}\n{v}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
