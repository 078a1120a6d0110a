#!/usr/bin/python3
# certify-venv: runs in golden/.venv (torch_geometric 2.4.0)
"""DARTS-GT: one search epoch in PyTorch/PyG against `certify dartsgt-reproduce --search-only`, in the same run.

usage: golden/.venv/bin/python bench/dartsgt_search_bench.py [--certify .build/release/certify] [--epochs 6] [--rounds 3]

Each side runs --rounds times, interleaved, and its best mean epoch is kept.

Both sides run the reproduction's search setting: the SBM task (48 D_tr and 32 D_val graphs of 10–16 nodes, batches of 16, so an
epoch is 2 (α-step, w-step) pairs), 2 NAS layers with the three operators, d = 8, 2 heads, edge stream, train-mode BatchNorm, no
dropout. PyTorch runs golden/generate/dartsgt.py's layer (PyG 2.4.0 GINEConv / GATv2Conv, torch 1.13, 1 thread) with the official
step order (Adam α on validation; clipped Adam w on training). The graphs are drawn by the Python generator of
docs/dartsgt/make_trained_model.py (same distribution and sizes as the Swift task, not the same graphs).
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "golden", "generate"))
sys.path.insert(0, os.path.join(ROOT, "docs", "dartsgt"))
import dartsgt as G  # noqa: E402
import make_trained_model as M  # noqa: E402


def torch_search(epochs):
    torch = G.deterministic_torch()
    import torch.nn.functional as F
    from torch_geometric.nn import global_mean_pool
    rng = np.random.Generator(np.random.PCG64(0))
    graphs = [M.sbm_graph(rng) for _ in range(80)]
    tr = [tuple(torch.tensor(a) for a in M.batch_of(graphs[i:i + 16])) for i in range(0, 48, 16)]
    va = [tuple(torch.tensor(a) for a in M.batch_of(graphs[i:i + 16])) for i in range(48, 80, 16)]
    inputs = {}
    for l in range(2):
        G.layer_weights(rng, inputs, f"layers.{l}.", M.D, M.HEADS, 1)
        del inputs[f"layers.{l}.alpha"]
    inputs["head.weight"], inputs["head.bias"] = G.lin(rng, 1, M.D)
    w = {k: torch.tensor(v, requires_grad=True) for k, v in inputs.items() if "running" not in k}
    buf = {k: torch.tensor(v) for k, v in inputs.items() if "running" in k}
    alpha = torch.tensor(1e-3 * rng.standard_normal((2, 3)), requires_grad=True)
    lp = {"heads": M.HEADS, "training": 1, "edge_stream": 1}

    def loss(batch):
        x, ei, ea, b, y = batch
        for l in range(2):
            pre = f"layers.{l}."
            t = {k[len(pre):]: v for k, v in {**w, **buf}.items() if k.startswith(pre)}
            t["h"], t["edge_attr"], t["alpha"] = x, ea, alpha[l]
            x = G.nas_layer_reference(torch, F, t, ei, lp)[0]
        pred = F.linear(global_mean_pool(x, b), w["head.weight"], w["head.bias"]).view(-1)
        return F.l1_loss(pred, y.view(-1))

    ctrl = torch.optim.Adam([alpha], 4e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    wopt = torch.optim.Adam(list(w.values()), 0.0025, weight_decay=3e-4)
    start = time.perf_counter()
    for _ in range(epochs):
        for trn, val in zip(tr, va):
            ctrl.zero_grad()
            loss(val).backward()
            ctrl.step()
            wopt.zero_grad()
            loss(trn).backward()
            torch.nn.utils.clip_grad_norm_(list(w.values()) + [alpha], 5.0)
            wopt.step()
    return (time.perf_counter() - start) / epochs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--certify", default=os.path.join(ROOT, ".build", "debug", "certify"))
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3, help="fresh runs of each side (interleaved); each side's best is kept")
    args = ap.parse_args()
    swift, torch_s = float("inf"), float("inf")
    for _ in range(args.rounds):
        out = subprocess.run([args.certify, "dartsgt-reproduce", "--seeds", "0", "--search-only", "--search-epochs", str(args.epochs)],
                             capture_output=True, text=True, check=True).stdout
        swift = min(swift, float([l for l in out.splitlines() if l.startswith("search_seconds_per_epoch")][0].split()[1]))
        torch_s = min(torch_s, torch_search(args.epochs))
    print(f"one search epoch: certify ({os.path.basename(os.path.dirname(args.certify))} build) {swift:.3f} s, "
          f"PyTorch/PyG {torch_s:.3f} s, ratio certify/PyTorch {swift / torch_s:.2f}")


if __name__ == "__main__":
    main()
