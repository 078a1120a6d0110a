#!/usr/bin/python3
"""Reference generator for "Do Input Gradients Highlight Discriminative Features?" (NeurIPS 2021):
protocols/input_gradients/*.yaml, with NumPy (masks, BlockMNIST, localization, DiffROAR pooling) and
PyTorch autograd in Float64 (attributions, PGD).

usage: /usr/bin/python3 golden/generate/input_gradients.py [--out DIR] [PROTOCOL-ID ...]

Same contract as core.py: each @op(<protocol id>) function receives the protocol case and a seeded
NumPy Generator (PCG64 from crc32('<id>/<case>')) and returns (inputs, params, fn, grad_names). Every
random draw a method needs (coins, noise, random starts, random attributions) is drawn here with
NumPy and stored as an input, so no golden depends on PyTorch's RNG. Written independently of the
Swift implementation, from the protocol equations and the official code's semantics (spec part A).
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import OPS, GoldenWriter, library_versions, load_protocol, op, rng_for, torch_grads, ROOT  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
F64 = torch.float64


def shp(case, name):
    return [int(s) for s in case["inputs"][name]]


def par(case, name):
    return case["params"][name]


def opt(case, name, default=None):
    return (case.get("options") or {}).get(name, default)


# ---------------------------------------------------------------------------------------------
# masks, BlockMNIST, localization, pooling (NumPy)

def priority_order(A):
    n = A.shape[0]
    return np.argsort(-np.abs(A.reshape(n, -1)), axis=1, kind="stable")


def kept_count(k, D):
    return D - int(round((1.0 - k) * D))  # Python 3 round: half to even, on the float64 product


@op("input_gradients.masks")
def masks(case, rng):
    shape = shp(case, "x")
    x = rng.standard_normal(shape)
    if opt(case, "ties"):
        A = rng.integers(-2, 3, size=shape).astype(np.float64)
    else:
        A = rng.standard_normal(shape)
    k = float(par(case, "k"))
    keep_top = int(par(case, "keep_top"))
    fill = float(x.mean())
    n = shape[0]
    D = int(np.prod(shape[1:]))
    order = priority_order(A)
    K = kept_count(k, D)
    sel = order[:, :K] if keep_top else order[:, D - K:]
    kept = np.zeros((n, D), dtype=np.int64)
    np.put_along_axis(kept, sel, 1, axis=1)
    kept = kept.reshape(shape)
    masked = np.where(kept == 1, x, fill)
    outs = {"masked": masked, "kept": kept, "order": order.astype(np.int64)}
    return ({"x": x, "attributions": A},
            {"k": np.float64(k), "keep_top": np.int64(keep_top), "fill": np.float64(fill)},
            lambda **_: outs, [])


def null_block(R, C, f, l, v, t):
    b = np.zeros((R, C))
    b[f:l + 1, f:l + 1] = v
    if f + t <= l - t:
        b[f + t:l + 1 - t, f + t:l + 1 - t] = 0.0
    return b


@op("input_gradients.blockmnist")
def blockmnist(case, rng):
    n, R, C = shp(case, "signal")
    # signal blocks quantised like u8 pixels / 255
    signal = rng.integers(0, 256, size=(n, R, C)).astype(np.float64) / 255.0
    top = (rng.random(n) < 0.5).astype(np.int64)
    p = case["params"]
    f, l, v, t = int(p["null_first"]), int(p["null_last"]), float(p["null_value"]), int(p["null_thickness"])
    top_only = bool(p["top_only"])
    nb = null_block(R, C, f, l, v, t)
    eff = np.ones(n, dtype=np.int64) if top_only else top
    images = np.stack([np.concatenate([signal[i], nb] if eff[i] else [nb, signal[i]], axis=0) for i in range(n)])
    mask = np.stack([np.concatenate([np.zeros((R, C)), np.ones((R, C))] if eff[i] else [np.ones((R, C)), np.zeros((R, C))], axis=0)
                     for i in range(n)]).astype(np.int64)
    outs = {"images": images, "null_block": nb, "null_mask": mask}
    params = {"null_first": np.int64(f), "null_last": np.int64(l), "null_value": np.float64(v),
              "null_thickness": np.int64(t), "top_only": top_only}
    return {"signal": signal, "signal_top": top}, params, lambda **_: outs, []


@op("input_gradients.localization")
def localization(case, rng):
    n, H, C = shp(case, "attributions")
    if opt(case, "ties"):
        A = rng.integers(-2, 3, size=(n, H, C)).astype(np.float64)
    else:
        A = rng.standard_normal((n, H, C))
    if opt(case, "zero_first_row"):
        A[0] = 0.0
    top = (rng.random(n) < 0.5).astype(np.int64)
    k = float(par(case, "k"))
    R = H // 2
    null = np.zeros((n, H, C), dtype=bool)
    for i in range(n):
        if top[i]:
            null[i, R:] = True
        else:
            null[i, :R] = True
    D = H * C
    K = kept_count(k, D)
    order = priority_order(A)[:, :K]
    absA = np.abs(A.reshape(n, D))
    nullf = null.reshape(n, D)
    in_null = np.take_along_axis(nullf, order, axis=1)
    mags = np.take_along_axis(absA, order, axis=1)
    frac = in_null.sum(axis=1) / K
    tot = mags.sum(axis=1)
    share = np.where(tot > 0, (mags * in_null).sum(axis=1) / np.where(tot > 0, tot, 1.0), frac)
    outs = {"null_fraction": frac.astype(np.float64), "null_mass_share": share.astype(np.float64)}
    return {"attributions": A, "signal_top": top}, {"k": np.float64(k)}, lambda **_: outs, []


@op("input_gradients.diffroar")
def diffroar(case, rng):
    r1 = shp(case, "acc_top_kept")[0]
    r2 = shp(case, "acc_bottom_kept")[0]
    # accuracies on a 1000-example test set
    top = rng.integers(600, 1001, size=r1) / 1000.0
    bot = rng.integers(400, 901, size=r2) / 1000.0
    diffs = -np.subtract.outer(bot, top).reshape(-1)
    outs = {"diffs": diffs, "mean": np.float64(diffs.mean()), "std": np.float64(np.std(diffs))}
    return {"acc_top_kept": top, "acc_bottom_kept": bot}, {}, lambda **_: outs, []


# ---------------------------------------------------------------------------------------------
# driver

def generate(pid, out_root):
    proto = load_protocol(pid)
    w = GoldenWriter(pid, out_root, "golden/generate/input_gradients.py", library_versions("torch"))
    for case in proto["cases"]:
        rng = rng_for(pid, case["name"])
        inputs, params, fn, grad_names = OPS[pid](case, rng)
        outs, cots, grads = torch_grads(torch, fn, inputs, params, grad_names, rng)
        w.case(case["name"], inputs, params, outs, cots, grads)
    w.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "golden"))
    ap.add_argument("ids", nargs="*")
    args = ap.parse_args()
    ids = args.ids or sorted(OPS)
    for pid in ids:
        if pid not in OPS:
            sys.exit(f"input_gradients.py: no generator for protocol '{pid}'")
        generate(pid, args.out)


if __name__ == "__main__":
    main()
