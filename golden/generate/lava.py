#!/usr/bin/python3
"""Reference generator for LAVA (protocols/lava/*.yaml): scikit-learn for the metrics, NumPy/PyTorch in Float64
for rejection, the autoencoder, the heads and the official released models.

usage: /usr/bin/python3 golden/generate/lava.py [--out DIR] [PROTOCOL-ID ...]

Each protocol id has one function registered with @op(<id>). It receives the case entry from the protocol
and a seeded NumPy Generator and returns a dict with inputs, params, outputs and, where gradients are certified,
cotangents and grads (gradients of sum(outputs * cotangents)). Every random draw is an input of the case.
The official-model golden stores only waveforms and logits: the weights are read at generation time from
the fixtures folder (../shared/fixtures/lava relative to the package root, or $CERTIFY_LAVA_FIXTURES).
"""
import argparse
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import OPS, GoldenWriter, library_versions, load_protocol, op, rng_for, ROOT  # noqa: E402

GENERATOR = "golden/generate/lava.py"


def _torch():
    import torch
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    return torch


# ---------------------------------------------------------------------------------------------------------------
# lava.metrics — scikit-learn


def _metric_labels(case, rng):
    n, k, kind = case["n"], case["k"], case["kind"]
    logits = rng.standard_normal((n, k)) * 2.0
    if kind == "perfect":
        y = np.arange(n) % k
        rng.shuffle(y)
        logits = rng.standard_normal((n, k)) * 0.1
        logits[np.arange(n), y] += 5.0
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        return y.astype(np.int64), y.astype(np.int64).copy(), probs
    y = rng.integers(0, k, n)
    # Make the scores informative: lift the true class.
    logits[np.arange(n), y] += 1.5
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    pred = probs.argmax(1)
    if kind == "never_predicted":
        pred = np.where(pred == k - 1, (pred + 1) % k, pred)
    elif kind == "absent":
        # class k−2 absent from y_true and y_pred; class k−1 absent from y_true but predicted sometimes.
        y = np.where(y >= k - 2, rng.integers(0, k - 2, n), y)
        pred = np.where(pred == k - 2, 0, pred)
        pred[rng.choice(n, 4, replace=False)] = k - 1
    elif kind == "ties":
        probs = np.round(probs * 5) / 5  # a few distinct values per column: many tied scores
    return y.astype(np.int64), pred.astype(np.int64), probs


@op("lava.metrics")
def metrics(case, rng):
    from sklearn.metrics import (accuracy_score, auc, average_precision_score, confusion_matrix, f1_score,
                                 precision_recall_fscore_support, roc_curve)
    from sklearn.preprocessing import label_binarize
    y, pred, scores = _metric_labels(case, rng)
    k = scores.shape[1]
    macro_labels = int(case.get("params", {}).get("macro_labels", 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f, s = precision_recall_fscore_support(y, pred, labels=list(range(k)), zero_division=0)
        labels = None if macro_labels == 0 else list(range(k))
        macro = f1_score(y, pred, labels=labels, average="macro", zero_division=0)
        yb = label_binarize(y, classes=list(range(k)))
        rocs, aps = [], []
        for i in range(k):
            fpr, tpr, _ = roc_curve(yb[:, i], scores[:, i])
            rocs.append(auc(fpr, tpr))
            aps.append(average_precision_score(yb[:, i], scores[:, i]) + 0.0)  # −0.0 → 0.0
    params = {} if "macro_labels" not in case.get("params", {}) else {"macro_labels": np.int64(macro_labels)}
    return dict(inputs={"y_true": y, "y_pred": pred, "scores": scores}, params=params,
                outputs={"precision": p, "recall": r, "f1": f, "support": s.astype(np.int64),
                         "confusion": confusion_matrix(y, pred, labels=list(range(k))).astype(np.int64),
                         "macro_f1": np.float64(macro), "accuracy": np.float64(accuracy_score(y, pred)),
                         "roc_auc": np.array(rocs, dtype=np.float64), "average_precision": np.array(aps, dtype=np.float64)})


# ---------------------------------------------------------------------------------------------------------------
# lava.rejection — transcription of the official decision rule, τ search and cascade


def _decide(torch, logits, tau):
    probs = torch.softmax(torch.tensor(logits, dtype=torch.float64), dim=1)
    conf, pred = probs.max(dim=1)
    conf = conf.numpy()
    pred = pred.numpy().astype(np.int64)
    return conf, np.where(conf >= tau, pred, -1).astype(np.int64)


def _search(conf, pred, true, min_cov, points):
    thresholds = np.linspace(0.0, 1.0, points)
    best, tau = 0, 0
    cov_curve = np.zeros(points)
    acc_curve = np.full(points, np.nan)
    for i, t in enumerate(thresholds):
        mask = conf >= t
        if np.sum(mask) == 0:
            continue
        acc = np.mean(pred[mask] == true[mask])
        cov = np.sum(mask) / len(true)
        cov_curve[i], acc_curve[i] = cov, acc
        if cov >= min_cov and acc > best:
            best, tau = acc, t
    return np.float64(tau), cov_curve, acc_curve


def _search_set(case, rng, m):
    kind = case["kind"]
    grid = np.linspace(0.0, 1.0, int(case.get("params", {}).get("grid_points", 500)))
    true = rng.integers(0, 3, m)
    if kind == "all_wrong":
        conf = rng.uniform(0.34, 1.0, m)
        pred = (true + 1) % 3
    elif kind == "plateau":
        # every prediction right: accuracy 1 at every t, so the first t (0) already sets best = 1 → τ = 0 ... unless
        # a wrong low-confidence sample lowers the accuracy at small t; here the wrong ones sit below 0.5.
        conf = rng.uniform(0.34, 1.0, m)
        pred = true.copy()
        wrong = conf < 0.5
        pred[wrong] = (true[wrong] + 1) % 3
    else:
        conf = rng.uniform(0.34, 1.0, m)
        right = rng.uniform(size=m) < conf  # confident samples are more often right
        pred = np.where(right, true, (true + 1 + rng.integers(0, 2, m)) % 3)
    if kind == "grid_ties":
        idx = rng.choice(m, m // 2, replace=False)
        conf[idx] = grid[rng.integers(170, 480, len(idx))]  # exactly on the grid: accepted at that t (≥)
    return conf, pred.astype(np.int64), true.astype(np.int64)


@op("lava.rejection")
def rejection(case, rng):
    torch = _torch()
    n, m = case["n"], case["m"]
    la = rng.standard_normal((n, 3)) * 2.5
    lr = rng.standard_normal((n, 6)) * 3.0
    la[rng.choice(n, min(n, 3), replace=False)] += 7.0  # a few more confident ones
    if case["kind"] == "grid_ties":
        # A logit row whose confidence is exactly tau_ada would need exact exp arithmetic; ties are tested in the search set.
        pass
    prm = case.get("params", {})
    tau_ada, tau_admr = float(prm["tau_ada"]), float(prm["tau_admr"])
    cascade = int(prm.get("cascade", 0))
    min_cov = float(prm.get("min_coverage", 0.8))
    points = int(prm.get("grid_points", 500))
    conf_a, dec_a = _decide(torch, la, tau_ada)
    conf_r_all, dec_r_all = _decide(torch, lr, tau_admr)
    runs = dec_a != -1 if cascade == 0 else dec_a == 0
    conf_r = np.where(runs, conf_r_all, np.nan)
    dec_r = np.where(runs, dec_r_all, -2).astype(np.int64)
    sc, sp, st = _search_set(case, rng, m)
    tau, cov, acc = _search(sc, sp, st, min_cov, points)
    params = {"tau_ada": np.float64(tau_ada), "tau_admr": np.float64(tau_admr)}
    for key in ("cascade", "grid_points"):
        if key in prm:
            params[key] = np.int64(prm[key])
    if "min_coverage" in prm:
        params["min_coverage"] = np.float64(prm["min_coverage"])
    return dict(inputs={"logits_ada": la, "logits_admr": lr, "search_confidence": sc, "search_pred": sp, "search_true": st},
                params=params,
                outputs={"confidence_ada": conf_a, "decision_ada": dec_a, "confidence_admr": conf_r, "decision_admr": dec_r,
                         "tau": tau, "coverage_curve": cov, "accuracy_curve": acc})


# ---------------------------------------------------------------------------------------------------------------
# lava.resample — scipy.signal.resample_poly


@op("lava.resample")
def resample(case, rng):
    import math
    from scipy.signal import resample_poly
    n = case["n"]
    prm = case["params"]
    rate = int(prm["orig_rate"])
    target = int(prm.get("target_rate", 16000))
    t = np.arange(n) / rate
    freqs = rng.uniform(50, rate / 2 * 0.95, 4)  # some above the output Nyquist: aliasing must be filtered
    x = sum(rng.uniform(0.1, 0.4) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in freqs)
    x = x + 0.05 * rng.standard_normal(n)
    g = math.gcd(rate, target)
    y = resample_poly(x, target // g, rate // g)
    params = {"orig_rate": np.int64(rate)}
    if "target_rate" in prm:
        params["target_rate"] = np.int64(target)
    return dict(inputs={"x": x}, params=params, outputs={"y": np.asarray(y, dtype=np.float64)})


# ---------------------------------------------------------------------------------------------------------------

REFERENCES = {
    "lava.resample": ("scipy",),
    "lava.metrics": ("sklearn",),
    "lava.rejection": ("torch",),
}


def generate(pid, out_root):
    proto = load_protocol(pid)
    libs = REFERENCES.get(pid, ("torch",))
    w = GoldenWriter(pid, out_root, GENERATOR, library_versions(*libs))
    extra = OPS[pid].__dict__.get("file_attrs")
    if extra:
        for k, v in extra().items():
            w.file.attrs[k] = v
    for case in proto["cases"]:
        rng = rng_for(pid, case["name"])
        r = OPS[pid](case, rng)
        w.case(case["name"], r["inputs"], r.get("params", {}), r["outputs"], r.get("cotangents"), r.get("grads"), r.get("attrs"))
    w.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "golden"))
    ap.add_argument("ids", nargs="*")
    args = ap.parse_args()
    ids = args.ids or sorted(OPS)
    for pid in ids:
        if pid not in OPS:
            sys.exit(f"lava.py: no generator for protocol '{pid}'")
        generate(pid, args.out)


if __name__ == "__main__":
    main()
