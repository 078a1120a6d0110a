#!/usr/bin/python3
"""Reference generator for IADG (Zhou et al., CVPR 2023): protocols/iadg/*.yaml.

usage: /usr/bin/python3 golden/generate/iadg.py [--out DIR] [PROTOCOL-ID ...]

Independent references: scikit-learn / SciPy for the metrics (called exactly as the official
utils/metric.py calls them), PyTorch in Float64 for the network pieces (written from the spec
/work/shared/specs/iadg.md, following the official code's behaviour). Every random draw a method
needs (Dirichlet weights, FPS start index, masks, inputs) is drawn here from NumPy PCG64 seeded by
the protocol id and case name and stored as an input of the case, so no golden depends on
PyTorch's RNG stream.

Each generator function receives the case entry and its seeded Generator and returns a dict with
inputs, params, outputs and optionally cotangents, grads (the shared driver writes them).
"""
import argparse
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import GoldenWriter, library_versions, load_protocol, rng_for, ROOT, write_value  # noqa: E402

GEN = {}
REFERENCE = {}


def gen(pid, reference):
    def register(fn):
        GEN[pid] = fn
        REFERENCE[pid] = reference
        return fn
    return register


def torch_case(inputs, params, fn, grad_names, rng):
    """Outputs of fn(**tensors) with PyTorch in Float64; cotangents drawn from rng; gradients of
    Σ outputs ⊙ cotangents with respect to grad_names (common.torch_grads)."""
    import torch
    from common import torch_grads
    outs, cots, grads = torch_grads(torch, fn, inputs, params, grad_names, rng)
    return {"inputs": inputs, "params": params, "outputs": outs, "cotangents": cots, "grads": grads}


# ---------------------------------------------------------------------------------------------
# Shared shape ops written for IADG (protocols/core/slice.yaml, concatenate.yaml).

@gen("core.slice", "torch.narrow (Float64)")
def core_slice(case, rng):
    import torch
    x = rng.standard_normal(case["inputs"]["x"])
    p = {k: np.int64(v) for k, v in case["params"].items()}
    return torch_case({"x": x}, p, lambda x, axis, start, end: {
        "y": torch.narrow(x, int(axis), int(start), int(end) - int(start))}, ["x"], rng)


@gen("core.concatenate", "torch.cat (Float64)")
def core_concatenate(case, rng):
    import torch
    names = [n for n in ("a", "b", "c") if n in case["inputs"]]
    inputs = {n: rng.standard_normal(case["inputs"][n]) for n in names}
    axis = np.int64(case["params"]["axis"])
    return torch_case(inputs, {"axis": axis}, lambda axis, **xs: {
        "y": torch.cat([xs[n] for n in names], dim=int(axis))}, names, rng)


# ---------------------------------------------------------------------------------------------
# iadg.metrics — scikit-learn + SciPy, as utils/metric.py cal_metrics and test.py do it.

def cal_metrics_reference(labels, scores, first_threshold):
    """utils/metric.py cal_metrics(y, s, threshold='auto'), returning every intermediate."""
    from scipy.interpolate import interp1d
    from scipy.optimize import brentq
    from sklearn.metrics import auc, confusion_matrix, roc_curve

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fpr, tpr, thresholds = roc_curve(labels, scores, pos_label=0)
    if first_threshold == 0:
        # scikit-learn >= 1.3 (pinned 1.3.0): np.r_[np.inf, thresholds] instead of thresholds[0] + 1.
        thresholds = thresholds.copy()
        thresholds[0] = np.inf
    area = auc(fpr, tpr)
    eer, info = brentq(lambda x: 1. - x - interp1d(fpr, tpr)(x), 0., 1., full_output=True)
    with np.errstate(invalid="ignore"):
        thre = float(interp1d(fpr, thresholds)(eer))
    prediction = 1 - (np.array(scores) > thre).astype(int)
    res = confusion_matrix(labels, prediction)
    TP, FN = res[0, :]
    FP, TN = res[1, :]
    out = {
        "fpr": fpr, "tpr": tpr, "thresholds": thresholds, "roc_points": np.int64(len(fpr)),
        "auc": np.float64(area), "eer": np.float64(eer), "threshold": np.float64(thre),
        "brent_function_calls": np.int64(info.function_calls),
        "tp": np.int64(TP), "fn": np.int64(FN), "fp": np.int64(FP), "tn": np.int64(TN),
        "apcer": np.float64(float(FP / (TN + FP))), "bpcer": np.float64(float(FN / (FN + TP))),
        "acc": np.float64((TP + TN) / len(labels)),
    }
    out["hter"] = np.float64((out["apcer"] + out["bpcer"]) / 2)
    if info.function_calls > 2:
        # On the early return (f(a) == 0 or f(b) == 0) SciPy's C brentq leaves the iteration counter
        # uninitialised, so the count is only meaningful (and stored) when the loop ran.
        out["brent_iterations"] = np.int64(info.iterations)
    return out


def video_average_reference(scores, labels, videos, scalar_type):
    """test.py: dict keyed by video in first-appearance order; sum(list)/len(list) per video, on
    NumPy scalars of the frame-score dtype (float32 in the official code, where NumPy 1.x promotes
    the Python int 0 + float32 to float64)."""
    prob_dict, label_dict = {}, {}
    for s, y, v in zip(scores, labels, videos):
        s = scalar_type(s)
        prob_dict.setdefault(int(v), []).append(s)
        label_dict.setdefault(int(v), []).append(int(y))
    prob_list, label_list = [], []
    for key in prob_dict:
        prob_list = np.append(prob_list, sum(prob_dict[key]) / len(prob_dict[key]))
        label_list = np.append(label_list, sum(label_dict[key]) / len(label_dict[key]))
    return prob_list.astype(np.float64), label_list


def draw_scores(case, rng):
    kind = case["kind"]
    nr, nf = case.get("n_real", 0), case.get("n_fake", 0)
    if kind == "normal":
        s = np.r_[rng.normal(0.8, 0.3, nr), rng.normal(0.2, 0.3, nf)]
    elif kind == "normal_overlap":
        s = np.r_[rng.normal(0.55, 0.25, nr), rng.normal(0.45, 0.25, nf)]
    elif kind == "grid":
        s = np.r_[np.round(rng.normal(0.7, 0.2, nr), 1), np.round(rng.normal(0.4, 0.2, nf), 1)]
    elif kind == "coarse_grid":
        s = np.r_[rng.integers(1, 5, nr) * 0.25, rng.integers(0, 4, nf) * 0.25]
    elif kind == "separated":
        s = np.r_[rng.uniform(0.9, 1.4, nr), rng.uniform(0.0, 0.8, nf)]
    elif kind == "reversed":
        s = np.r_[rng.uniform(0.0, 0.4, nr), rng.uniform(0.5, 1.4, nf)]
    elif kind == "all_equal":
        s = np.full(nr + nf, 0.7)
    elif kind == "top_tie":
        # the top score is shared by 6 reals and 4 fakes, so the EER lies on the first ROC segment
        s = np.r_[np.full(6, 1.25), rng.uniform(0.5, 1.0, nr - 6), np.full(4, 1.25), rng.uniform(0.0, 0.7, nf - 4)]
    elif kind == "float32_uniform":
        s = np.r_[rng.beta(5, 2, nr), rng.beta(2, 5, nf)].astype(np.float32).astype(np.float64) * 1.5
    else:
        raise ValueError(f"unknown score kind {kind}")
    labels = np.r_[np.zeros(nr, dtype=np.int64), np.ones(nf, dtype=np.int64)]
    perm = rng.permutation(len(s))
    return s[perm], labels[perm]


def draw_video_frames(case, rng):
    nv = case["n_videos"]
    lo, hi = case["frames"]
    vids, labels, scores = [], [], []
    for v in range(nv):
        y = v % 2 if v < 2 else int(rng.integers(0, 2))
        n = int(rng.integers(lo, hi + 1))
        mu = rng.normal(0.6 if y == 0 else 0.4, 0.12)
        if case["kind"] == "video_grid":  # ties between frames and between videos
            fr = np.round(rng.normal(mu, 0.15, n), 1)
        else:
            fr = rng.normal(mu, 0.2, n).astype(np.float32).astype(np.float64)
        vids += [1000 + 7 * v] * n
        labels += [y] * n
        scores += list(fr)
    vids, labels, scores = np.array(vids, dtype=np.int64), np.array(labels, dtype=np.int64), np.array(scores)
    perm = rng.permutation(len(scores))  # frames arrive interleaved; first appearance fixes the video order
    return scores[perm], labels[perm], vids[perm]


@gen("iadg.metrics", "scikit-learn roc_curve/auc/confusion_matrix + SciPy brentq/interp1d (utils/metric.py cal_metrics)")
def metrics(case, rng):
    p = case["params"]
    first = int(p["first_threshold"])
    params = {"first_threshold": np.int64(first)}
    if case["kind"].startswith("video"):
        scores, labels, videos = draw_video_frames(case, rng)
        params["video_level"] = True
        scalar_type = np.float32 if case.get("frame_dtype") == "float32" else np.float64
        vs, vl = video_average_reference(scores, labels, videos, scalar_type)
        out = cal_metrics_reference(vl, vs, first)
        out["video_scores"] = vs
        out["video_labels"] = vl.astype(np.int64)
        inputs = {"scores": scores, "labels": labels, "videos": videos}
    else:
        scores, labels = draw_scores(case, rng)
        out = cal_metrics_reference(labels, scores, first)
        inputs = {"scores": scores, "labels": labels}
    if not case.get("store_roc", True):
        for k in ("fpr", "tpr", "thresholds"):
            del out[k]
    return {"inputs": inputs, "params": params, "outputs": out}


# ---------------------------------------------------------------------------------------------

LIBS = {"iadg.metrics": ("sklearn", "scipy")}
COMPRESS_MIN = 20000  # datasets with more elements are written gzip-compressed (shuffle filter)


def write_case(w, name, d):
    """Like GoldenWriter.case, but large arrays are stored chunked and compressed."""
    import h5py  # noqa: F401
    from common import case_seed
    g = w.file.create_group(name)
    g.attrs["seed"] = np.int64(case_seed(w.pid, name))
    for section in ("inputs", "params", "outputs", "cotangents", "grads"):
        values = d.get(section)
        if values is None:
            continue
        sg = g.create_group(section)
        for k, v in values.items():
            if isinstance(v, np.ndarray) and v.size >= COMPRESS_MIN:
                dt = np.int64 if np.issubdtype(v.dtype, np.integer) else np.float64
                sg.create_dataset(k, data=v.astype(dt), compression="gzip", compression_opts=9, shuffle=True)
            else:
                write_value(sg, k, v)


def generate(pid, out_root):
    proto = load_protocol(pid)
    libs = LIBS.get(pid, ("torch",))
    w = GoldenWriter(pid, out_root, "golden/generate/iadg.py", REFERENCE[pid] + "; " + library_versions(*libs))
    for case in proto["cases"]:
        rng = rng_for(pid, case["name"])
        write_case(w, case["name"], GEN[pid](case, rng))
    w.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "golden"))
    ap.add_argument("ids", nargs="*")
    args = ap.parse_args()
    for pid in args.ids or sorted(GEN):
        if pid not in GEN:
            sys.exit(f"iadg.py: no generator for protocol '{pid}'")
        generate(pid, args.out)


if __name__ == "__main__":
    main()
