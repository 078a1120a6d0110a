#!/usr/bin/python3
# certify-venv: runs in golden/.venv (torch_geometric 2.4.0; `make venv`)
"""A small trained discrete DARTS-GT model for `certify graph-audit`, and the PyTorch reference of its audit.

usage: golden/.venv/bin/python docs/dartsgt/make_trained_model.py [--out docs/dartsgt] [--seed 0]

1. A seeded stochastic-block-model task (CLUSTER-like, generated here): each graph has 10–16 nodes in 2 or 3 communities
   (p_in 0.5, p_out 0.08); node features are a noisy one-hot of the community (3 channels) plus noise; edge features carry a noisy
   same-community flag; the regression target is the share of intra-community edges.
2. A discrete DARTS-GT model (2 sparse layers, ops [GINE, GATV2], 2 heads, d = 8, edge stream, mean pooling, head
   Linear(8, 4)–ReLU–Linear(4, 1)) trained with Adam (lr 0.01, 150 full-batch steps, train-mode BatchNorm, no dropout) in Float64
   with the layer of golden/generate/dartsgt.py (nas_layer_reference, discrete_op).
3. Exported in graph-audit's layout: model.h5 and data.h5 (20 test graphs), and audit_reference.h5: the PyTorch model's output per
   graph with every head ablated (W_k, W_v rows and W_o columns zeroed, as pk_explainer.py::mask_attention_head), its δ, and the
   NumPy explainer (explain_reference) on the PyTorch attention maps, for the end-to-end test of the Swift audit.
"""
import argparse
import os
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "golden", "generate"))
import dartsgt as G  # noqa: E402

D, HEADS, OPS = 8, 2, [0, 2]


def sbm_graph(rng):
    n = int(rng.integers(10, 17))
    k = int(rng.integers(2, 4))
    comm = rng.integers(0, k, n)
    src, dst = [], []
    for i in range(n):
        for j in range(n):
            if i != j and rng.random() < (0.5 if comm[i] == comm[j] else 0.08):
                src.append(j)
                dst.append(i)
    if not src:
        src, dst = [0], [1]
    src, dst = np.array(src), np.array(dst)
    x = 0.5 * rng.standard_normal((n, D))
    x[np.arange(n), comm] += 1.0
    same = (comm[src] == comm[dst]).astype(np.float64)
    ea = 0.5 * rng.standard_normal((len(src), D))
    ea[:, 0] += same
    return x, np.stack([src, dst]).astype(np.int64), ea, np.array([same.mean()])


def batch_of(graphs):
    xs, eis, eas, bs, ys, off = [], [], [], [], [], 0
    for g, (x, ei, ea, y) in enumerate(graphs):
        xs.append(x); eis.append(ei + off); eas.append(ea); bs.append(np.full(len(x), g)); ys.append(y)
        off += len(x)
    return np.concatenate(xs), np.concatenate(eis, 1), np.concatenate(eas), np.concatenate(bs).astype(np.int64), np.stack(ys)


def init_weights(rng):
    w = {}
    for l, op in enumerate(OPS):
        G.layer_weights(rng, w, f"layers.{l}.", D, HEADS, 1)
        del w[f"layers.{l}.alpha"]
        for k in list(w):
            if k.startswith(f"layers.{l}.") and "running_mean" in k:
                w[k] = np.zeros(D)
            if k.startswith(f"layers.{l}.") and "running_var" in k:
                w[k] = np.ones(D)
    w["head.0.weight"], w["head.0.bias"] = G.lin(rng, D // 2, D)
    w["head.1.weight"], w["head.1.bias"] = G.lin(rng, 1, D // 2)
    return w


def forward(torch, F, t, x, ei, ea, batch, training, ablate=None):
    from torch_geometric.nn import global_mean_pool
    h = x
    maps = []
    dh = D // HEADS
    for l, op in enumerate(OPS):
        pre = f"layers.{l}."
        tl = {k[len(pre):]: v for k, v in t.items() if k.startswith(pre)}
        if ablate is not None and ablate[0] == l:
            m = ablate[1]
            for n in ("self_attn.W_k.weight", "self_attn.W_v.weight"):
                tl[n] = tl[n].clone()
                tl[n][m * dh:(m + 1) * dh, :] = 0
            tl["self_attn.W_o.weight"] = tl["self_attn.W_o.weight"].clone()
            tl["self_attn.W_o.weight"][:, m * dh:(m + 1) * dh] = 0
        tl["h"], tl["edge_attr"] = h, ea
        params = {"heads": HEADS, "training": int(training), "edge_stream": 1, "update_running": int(training)}
        h, _, a = G.nas_layer_reference(torch, F, tl, ei, params, discrete_op=op)
        maps.append(a)
    z = global_mean_pool(h, batch)
    z = F.linear(F.relu(F.linear(z, t["head.0.weight"], t["head.0.bias"])), t["head.1.weight"], t["head.1.bias"])
    return z, maps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch = G.deterministic_torch()
    import torch.nn.functional as F
    rng = np.random.Generator(np.random.PCG64(args.seed))
    train = [sbm_graph(rng) for _ in range(60)]
    test = [sbm_graph(rng) for _ in range(20)]
    w = init_weights(rng)
    t = {k: torch.tensor(v, requires_grad=("running" not in k)) for k, v in w.items()}
    x, ei, ea, b, y = (torch.tensor(a) for a in batch_of(train))
    opt = torch.optim.Adam([v for k, v in t.items() if "running" not in k], lr=0.01)
    for step in range(150):
        opt.zero_grad()
        pred, _ = forward(torch, F, t, x, ei, ea, b, training=True)
        loss = F.l1_loss(pred, y)
        loss.backward()
        opt.step()
    print(f"final train L1 {loss.item():.4f}")
    with h5py.File(os.path.join(args.out, "model.h5"), "w") as f:
        for k, v in {"heads": HEADS, "edge_stream": 1, "pooling": 0, "task": 0}.items():
            f[f"config/{k}"] = np.int64(v)
        f["ops"] = np.array(OPS, dtype=np.int64)
        for k, v in t.items():
            a = v.detach().numpy()
            if k.startswith("layers."):
                _, l, name = k.split(".", 2)
                f[f"layers/{l}/{name}"] = a
            else:
                _, i, kind = k.split(".")
                f[f"head/{i}/{kind}"] = a
        f.attrs["provenance"] = f"docs/dartsgt/make_trained_model.py --seed {args.seed}; {G.library_versions('torch', 'torch_geometric')}"
    tx, tei, tea, tb, ty = batch_of(test)
    with h5py.File(os.path.join(args.out, "data.h5"), "w") as f:
        f["x"], f["edge_index"], f["edge_attr"], f["batch"], f["y"] = tx, tei, tea, tb, ty
    # the PyTorch reference of the audit, graph by graph (eval mode)
    M = len(OPS) * HEADS
    deltas, spec, focus, preds = [], [], [], []
    with torch.no_grad():
        for (gx, gei, gea, gy) in test:
            args_g = (torch.tensor(gx), torch.tensor(gei), torch.tensor(gea), torch.zeros(len(gx), dtype=torch.long))
            full, maps = forward(torch, F, t, *args_g, training=False)
            rows = [full.numpy().reshape(-1)]
            for l in range(len(OPS)):
                for m in range(HEADS):
                    rows.append(forward(torch, F, t, *args_g, training=False, ablate=(l, m))[0].numpy().reshape(-1))
            mats = [G.sparse_map(maps[l][:, m].numpy(), gei, len(gx)) for l in range(len(OPS)) for m in range(HEADS)]
            r = G.explain_reference(np.stack(rows), gy, 0, mats, 1, False)
            deltas.append(r["delta"]); spec.append(r["specialization"]); focus.append(r["focus"]); preds.append(np.stack(rows))
    with h5py.File(os.path.join(args.out, "audit_reference.h5"), "w") as f:
        f["predictions"], f["delta"] = np.stack(preds), np.stack(deltas)
        f["specialization"], f["focus"] = np.array(spec), np.array(focus)
        f.attrs["k_heads"] = 1
        f.attrs["provenance"] = f"docs/dartsgt/make_trained_model.py --seed {args.seed}; PyTorch ablation + NumPy explainer; {G.library_versions('torch', 'torch_geometric', 'scipy')}"
    print(f"wrote model.h5, data.h5, audit_reference.h5 under {args.out}; M = {M} heads")


if __name__ == "__main__":
    main()
