#!/usr/bin/python3
"""The PyTorch CPU equivalent of `certify audit --method gradient --model standard` (issue 6, item 9).

usage: /usr/bin/python3 bench/audit_bench.py --data BLOCKMNIST.h5 [--jobs 2] [--threads 1] [--dtype float64|float32] [--json OUT]

Same data (a `certify blockmnist export` file), same pipeline and settings as Certify's defaults:
  attributed model  MLP D-256-256-C, PyTorch default init, SGD lr 0.05 momentum 0.9, batch 128,
                    6 epochs, cosine multiplier 0.5(1 + cos(pi·epoch/epochs)) per epoch, CE mean
  attribution       gradient of the true-label logit
  masking           priority = argsort(-|A|, stable); m = round((1 - k)·D); fill = training mean
  DiffROAR          k in {0.05, 0.1, 0.2, 0.5, 1}, keep top / bottom, 3 seeds; learner MLP D-128-128-C,
                    SGD lr 0.05 momentum 0.9, batch 128, 4 epochs, cosine; accuracy of the final model
As Certify does, the 30 retraining runs go `--jobs` at a time (worker processes, fork), each with
`--threads` intra-op threads (default 1; run with OPENBLAS_NUM_THREADS=1); `--jobs 1 --threads 2` is
the plain sequential alternative. Random streams differ from Certify's (PyTorch's RNG), so accuracies
agree only statistically; the timing is the point.
"""
import argparse
import json
import math
import time

import multiprocessing

import h5py
import numpy as np
import torch
import torch.nn.functional as F


def mlp(sizes, dtype):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]).to(dtype))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(torch.nn.Flatten(), *layers)


def train(model, x, y, epochs, batch, lr, momentum, gen):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    n = x.shape[0]
    for epoch in range(epochs):
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, batch):
            idx = perm[s:s + batch]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model


def accuracy(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).double().mean().item()


def logit_gradients(model, x, y, batch=500):
    out = []
    for s in range(0, x.shape[0], batch):
        xb = x[s:s + batch].clone().requires_grad_(True)
        model(xb).gather(1, y[s:s + batch].reshape(-1, 1)).sum().backward()
        out.append(xb.grad.detach())
    return torch.cat(out)


def unmask(x, order, k, keep_top, fill):
    n = x.shape[0]
    D = order.shape[1]
    K = D - int(round((1.0 - k) * D))
    sel = order[:, :K] if keep_top else order[:, D - K:]
    flat = np.full((n, D), fill)
    np.put_along_axis(flat, sel, np.take_along_axis(x.reshape(n, D), sel, axis=1), axis=1)
    return flat.reshape(x.shape)


# The masked data sets, shared with forked workers (no pickling of large arrays).
ARMS = {}


def retrain(job):
    k, keep_top, seed, D, C, dtype_name, threads = job
    torch.set_num_threads(threads)
    dtype = torch.float64 if dtype_name == "float64" else torch.float32
    mtr, mte, ytr, yte = ARMS[(k, keep_top)]
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    m = train(mlp([D, 128, 128, C], dtype), mtr, ytr, 4, 128, 0.05, 0.9, g)
    return accuracy(m, mte, yte)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dtype = torch.float64 if a.dtype == "float64" else torch.float32
    t0 = time.time()
    with h5py.File(a.data) as f:
        scale = float(f.attrs.get("pixel_scale", 1.0))
        xtr = f["train/images"][()].astype(np.float64) * scale
        ytr = f["train/labels"][()].astype(np.int64)
        xte = f["test/images"][()].astype(np.float64) * scale
        yte = f["test/labels"][()].astype(np.int64)
    D = int(np.prod(xtr.shape[1:]))
    C = int(max(ytr.max(), yte.max()) + 1)
    gen = torch.Generator().manual_seed(1234)
    torch.manual_seed(1234)
    Xtr, Ytr = torch.tensor(xtr, dtype=dtype), torch.tensor(ytr)
    Xte, Yte = torch.tensor(xte, dtype=dtype), torch.tensor(yte)
    model = train(mlp([D, 256, 256, C], dtype), Xtr, Ytr, 6, 128, 0.05, 0.9, gen)
    acc = accuracy(model, Xte, Yte)
    t_model = time.time() - t0
    atr = logit_gradients(model, Xtr, Ytr).numpy()
    ate = logit_gradients(model, Xte, Yte).numpy()
    otr = np.argsort(-np.abs(atr.reshape(atr.shape[0], -1)), axis=1, kind="stable")
    ote = np.argsort(-np.abs(ate.reshape(ate.shape[0], -1)), axis=1, kind="stable")
    fill = float(xtr.mean())
    results = []
    ks = [0.05, 0.1, 0.2, 0.5, 1.0]
    for k in ks:
        ARMS.clear()
        for keep_top in (True, False):
            ARMS[(k, keep_top)] = (torch.tensor(unmask(xtr, otr, k, keep_top, fill), dtype=dtype), torch.tensor(unmask(xte, ote, k, keep_top, fill), dtype=dtype), Ytr, Yte)
        jobs = [(k, keep_top, seed, D, C, a.dtype, a.threads) for keep_top in (True, False) for seed in range(3)]
        if a.jobs > 1:
            with multiprocessing.get_context("fork").Pool(a.jobs) as pool:
                accs = pool.map(retrain, jobs, chunksize=1)
        else:
            accs = [retrain(j) for j in jobs]
        arms = {True: accs[:3], False: accs[3:]}
        diffs = [t - b for b in arms[False] for t in arms[True]]
        results.append({"k": k, "mean": float(np.mean(diffs)), "std": float(np.std(diffs)),
                        "acc_top_kept": arms[True], "acc_bottom_kept": arms[False]})
        print(f"k = {k:.2f}: DiffROAR {np.mean(diffs):+.4f} ± {np.std(diffs):.4f}", flush=True)
    total = time.time() - t0
    print(f"attributed model accuracy {acc:.4f}; model {t_model:.1f} s; total {total:.1f} s ({a.dtype}, {a.jobs} jobs × {a.threads} threads)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"seconds": total, "model_seconds": t_model, "accuracy": acc, "dtype": a.dtype,
                       "threads": a.threads, "jobs": a.jobs, "torch": torch.__version__, "diffroar": results}, f, indent=1)


if __name__ == "__main__":
    main()
