#!/usr/bin/python3
# certify-venv: runs in golden/.venv (torch_geometric 2.4.0)
"""The consequence of the official explainer's Float32 (divergence explainer_dtype of dartsgt.explain): the example model of
docs/dartsgt/model.h5 run in Float32 and in Float64 on docs/dartsgt/data.h5, every head ablated, and the explainer on both.

usage: golden/.venv/bin/python docs/dartsgt/float32_consequence.py
"""
import os
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "golden", "generate"))
sys.path.insert(0, HERE)
import dartsgt as G  # noqa: E402
import make_trained_model as M  # noqa: E402


def main():
    torch = G.deterministic_torch()
    import torch.nn.functional as F
    f = h5py.File(os.path.join(HERE, "model.h5"))
    w = {}
    for l in range(2):
        for k, v in f[f"layers/{l}"].items():
            w[f"layers.{l}.{k}"] = v[()]
    for i in range(2):
        w[f"head.{i}.weight"], w[f"head.{i}.bias"] = f[f"head/{i}/weight"][()], f[f"head/{i}/bias"][()]
    d = h5py.File(os.path.join(HERE, "data.h5"))
    x, ei, ea, b, y = (d[k][()] for k in ("x", "edge_index", "edge_attr", "batch", "y"))
    results = {}
    double = torch.nn.Module.double
    for dtype in (torch.float64, torch.float32):
        # The generator's layer builds its PyG modules with .double(); for the Float32 run they must stay Float32 (GINEConv's
        # eps buffer would otherwise promote the aggregate to Float64).
        torch.nn.Module.double = double if dtype == torch.float64 else torch.nn.Module.float
        t = {k: torch.tensor(v, dtype=dtype) for k, v in w.items()}
        deltas, spec = [], []
        for g in range(int(b.max()) + 1):
            nodes = np.where(b == g)[0]
            mask = np.isin(ei[0], nodes)
            gei = ei[:, mask] - nodes[0]
            args = (torch.tensor(x[nodes], dtype=dtype), torch.tensor(gei), torch.tensor(ea[mask], dtype=dtype),
                    torch.zeros(len(nodes), dtype=torch.long))
            with torch.no_grad():
                rows = [M.forward(torch, F, t, *args, training=False)[0].double().numpy().reshape(-1)]
                for l in range(2):
                    for m in range(2):
                        rows.append(M.forward(torch, F, t, *args, training=False, ablate=(l, m))[0].double().numpy().reshape(-1))
            errs = np.abs(np.stack(rows)[:, 0] - y[g, 0])
            deltas.append(errs[1:] - errs[0])
            spec.append(np.std(deltas[-1]))
        results[dtype] = (np.stack(deltas), np.array(spec))
    d64, s64 = results[torch.float64]
    d32, s32 = results[torch.float32]
    top64, top32 = d64.argmax(1), d32.argmax(1)
    print(f"max |δ32 − δ64| = {np.abs(d32 - d64).max():.3g} (max |δ| {np.abs(d64).max():.3g}); "
          f"max |S32 − S64| = {np.abs(s32 - s64).max():.3g}; top-1 head changed on {(top64 != top32).sum()} of {len(top64)} graphs")


if __name__ == "__main__":
    main()
