#!/usr/bin/python3
# certify-venv: runs in golden/.venv (torch_geometric 2.4.0 for GINEConv, GATv2Conv, to_dense_batch; `make venv`)
"""Reference generator for DARTS-GT (Chakraborty & Minary, arXiv 2510.14336): protocols/dartsgt/*.yaml.

usage: golden/.venv/bin/python golden/generate/dartsgt.py [--out DIR] [PROTOCOL-ID ...]

Independent references: PyTorch Geometric 2.4.0 (pinned in golden/requirements.txt) for GINEConv and GATv2Conv, called through
torch.nn.utils.stateless.functional_call on the case's weights; PyTorch transcriptions (written from the spec and the official
code's behaviour, not copied) for the GatedGCN layer, the mixed op and the sparse attention; nn.MultiheadAttention for the dense
path; NumPy / SciPy for the explainer metrics. Float64 throughout. Every random draw (graphs, weights, dropout masks) comes
from NumPy PCG64 seeded by the protocol id and case name and is stored as an input.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import GoldenWriter, OPS, deterministic_torch, library_versions, load_protocol, op, rng_for, run_main, torch_grads  # noqa: E402

GENERATOR = "golden/generate/dartsgt.py"


def random_graph(rng, n, e, graphs, self_loops=0, isolated=1):
    """Edges within `graphs` contiguous blocks of nodes; the last node of block 0 is isolated (when the block has ≥ 3 nodes),
    edge 1 repeats edge 0 (a multi-edge), and `self_loops` edges are turned into self-loops."""
    sizes = [n // graphs + (1 if g < n % graphs else 0) for g in range(graphs)]
    starts = np.cumsum([0] + sizes[:-1])
    src, dst = [], []
    for k in range(e):
        g = k % graphs
        lo, size = starts[g], sizes[g]
        usable = size - 1 if (g == 0 and size >= 3 and isolated) else size
        src.append(lo + rng.integers(0, usable))
        dst.append(lo + rng.integers(0, usable))
    if e >= 2:
        src[1], dst[1] = src[0], dst[0]
    for k in range(self_loops):
        dst[2 + k] = src[2 + k]
    batch = np.concatenate([np.full(s, g) for g, s in enumerate(sizes)]).astype(np.int64)
    return np.array([src, dst], dtype=np.int64), batch


def lin(rng, o, i):
    return rng.standard_normal((o, i)) / np.sqrt(i), 0.1 * rng.standard_normal(o)


def keep_mask(rng, shape, p):
    return (rng.random(shape) >= p).astype(np.float64)


# ---------------------------------------------------------------------------------------------------------------
# dartsgt.gnn


def gated_gcn_layer(torch, F, x, edge_index, edge_attr, w, training, dropout_mask, p):
    """GraphGPS GatedGCNLayer (residual, batch norm, ReLU), written from its description: message σ(D x_i + E x_j + C e_ij),
    aggregate Σ σ ⊙ B x_j / (Σ σ + 1e-6), update A x + aggregate, BN → ReLU → dropout → residual."""
    src, dst = edge_index[0], edge_index[1]
    n = x.shape[0]
    ax, bx = F.linear(x, w["gated.A.weight"], w["gated.A.bias"]), F.linear(x, w["gated.B.weight"], w["gated.B.bias"])
    dx, ex = F.linear(x, w["gated.D.weight"], w["gated.D.bias"]), F.linear(x, w["gated.E.weight"], w["gated.E.bias"])
    ce = F.linear(edge_attr, w["gated.C.weight"], w["gated.C.bias"])
    sigma = torch.sigmoid(dx[dst] + ex[src] + ce)
    num = torch.zeros(n, x.shape[1], dtype=x.dtype).index_add(0, dst, sigma * bx[src])
    den = torch.zeros(n, x.shape[1], dtype=x.dtype).index_add(0, dst, sigma)
    h = ax + num / (den + 1e-6)
    rm, rv = w["gated.bn.running_mean"].clone(), w["gated.bn.running_var"].clone()
    h = F.batch_norm(h, rm, rv, w["gated.bn.weight"], w["gated.bn.bias"], training=training, momentum=0.1, eps=1e-5)
    h = F.relu(h)
    if training and dropout_mask is not None:
        h = h * dropout_mask / (1 - p)
    return x + h, rm, rv


@op("dartsgt.gnn")
def gnn(case, rng):
    torch = deterministic_torch()
    import torch.nn.functional as F
    from torch.nn.utils.stateless import functional_call
    import torch_geometric.nn as pygnn
    n, e, d, kind = case["n"], case["e"], case["d"], case["op"]
    edge_index, _ = random_graph(rng, n, e, case["graphs"], case.get("self_loops", 0))
    inputs = {"x": rng.standard_normal((n, d)), "edge_index": edge_index, "edge_attr": rng.standard_normal((e, d))}
    params = dict(case["params"])
    if kind == 0:
        for k in ("0", "2"):
            inputs[f"gine.nn.{k}.weight"], inputs[f"gine.nn.{k}.bias"] = lin(rng, d, d)
    elif kind == 1:
        for k in "ABCDE":
            inputs[f"gated.{k}.weight"], inputs[f"gated.{k}.bias"] = lin(rng, d, d)
        inputs["gated.bn.weight"] = 1 + 0.2 * rng.standard_normal(d)
        inputs["gated.bn.bias"] = 0.1 * rng.standard_normal(d)
        inputs["gated.bn.running_mean"] = 0.3 * rng.standard_normal(d)
        inputs["gated.bn.running_var"] = 0.5 + rng.random(d)
        if params.get("training", 0):
            inputs["gated.dropout_mask"] = keep_mask(rng, (n, d), params["dropout"])
    else:
        hds = params["heads"]
        inputs["gatv2.lin_l.weight"], inputs["gatv2.lin_l.bias"] = lin(rng, d, d)
        inputs["gatv2.lin_r.weight"], inputs["gatv2.lin_r.bias"] = lin(rng, d, d)
        inputs["gatv2.lin_edge.weight"] = lin(rng, d, d)[0]
        inputs["gatv2.att"] = rng.standard_normal((1, hds, d // hds))
        inputs["gatv2.bias"] = 0.1 * rng.standard_normal(d)
    grad_names = [k for k in inputs if inputs[k].dtype == np.float64 and "running" not in k and "mask" not in k]

    def fn(**t):
        ei = torch.tensor(t["edge_index"], dtype=torch.long)
        x, ea = t["x"], t["edge_attr"]
        if kind == 0:
            m = pygnn.GINEConv(torch.nn.Sequential(torch.nn.Linear(d, d), torch.nn.ReLU(), torch.nn.Linear(d, d)), train_eps=False).double()
            w = {k[len("gine."):]: t[k] for k in t if k.startswith("gine.")}
            return {"out": functional_call(m, w, (x, ei, ea))}
        if kind == 1:
            training = bool(params.get("training", 0))
            out, rm, rv = gated_gcn_layer(torch, F, x, ei, ea, t, training, t.get("gated.dropout_mask"), params.get("dropout", 0.0))
            res = {"out": out}
            if training:
                res["gated.bn.new_running_mean"] = rm.detach()
                res["gated.bn.new_running_var"] = rv.detach()
            return res
        hds = params["heads"]
        m = pygnn.GATv2Conv(d, d // hds, heads=hds, edge_dim=d).double()
        w = {k[len("gatv2."):]: t[k] for k in t if k.startswith("gatv2.")}
        return {"out": functional_call(m, w, (x, ei, ea))}

    return inputs, params, fn, grad_names


# ---------------------------------------------------------------------------------------------------------------
# dartsgt.mixed_op


def mixed_op_reference(torch, F, experts, alpha, w, bn_w, bn_b, rm, rv, training, masks, p):
    """NASLayer.forward steps 1–3: norm1_kv per expert, joint standardisation (Tensor.std: unbiased), expert dropout, Σ π_o Ŷ_o."""
    ys = [F.batch_norm(experts[o], rm, rv, bn_w, bn_b, training=training, momentum=0.1, eps=1e-5) for o in range(experts.shape[0])]
    allc = torch.cat(ys, dim=0)
    mu, sd = allc.mean(), allc.std()
    std = [(y - mu) / (sd + 1e-8) for y in ys]
    dropped = [s * masks[o] / (1 - p) for o, s in enumerate(std)] if training and masks is not None else std
    pi = torch.softmax(alpha, -1)
    kv = sum(pi[o] * dropped[o] for o in range(len(dropped)))
    return kv, torch.stack(std), pi


@op("dartsgt.mixed_op")
def mixed_op(case, rng):
    torch = deterministic_torch()
    import torch.nn.functional as F
    n, d, o = case["n"], case["d"], case["o"]
    params = dict(case.get("params", {}))
    training = bool(params.get("training", 0))
    inputs = {"experts": rng.standard_normal((o, n, d)) * (1 + rng.random((o, 1, 1))) + rng.standard_normal((o, 1, 1)),
              "alpha": case.get("alpha_scale", 1.0) * rng.standard_normal(o),
              "bn_kv.weight": 1 + 0.2 * rng.standard_normal(d), "bn_kv.bias": 0.1 * rng.standard_normal(d),
              "bn_kv.running_mean": 0.3 * rng.standard_normal(d), "bn_kv.running_var": 0.5 + rng.random(d)}
    if training:
        inputs["expert_mask"] = keep_mask(rng, (o, n, d), params["expert_dropout"])

    def fn(**t):
        rm, rv = t["bn_kv.running_mean"].clone(), t["bn_kv.running_var"].clone()
        kv, std, pi = mixed_op_reference(torch, F, t["experts"], t["alpha"], None, t["bn_kv.weight"], t["bn_kv.bias"], rm, rv,
                                         training, t.get("expert_mask"), params.get("expert_dropout", 0.0))
        res = {"kv": kv, "standardised": std, "pi": pi}
        if training:
            res["bn_kv.new_running_mean"] = rm.detach()
            res["bn_kv.new_running_var"] = rv.detach()
        return res

    return inputs, params, fn, ["experts", "alpha", "bn_kv.weight", "bn_kv.bias"]


# ---------------------------------------------------------------------------------------------------------------
# dartsgt.attention


def sparse_attention_reference(torch, F, q, kv, edge_index, heads, w, mask, p):
    """SparseGraphAttention.forward: K, V projected from KV, Q = q viewed as heads, scores ⟨K_src, Q_dst⟩/√d_h, the edge
    softmax over dst (max subtracted, + 1e-16), dropout, messages a·V_src summed into dst, W_o."""
    n, d = q.shape
    dh = d // heads
    k = F.linear(kv, w["self_attn.W_k.weight"], w["self_attn.W_k.bias"]).view(-1, heads, dh)
    v = F.linear(kv, w["self_attn.W_v.weight"], w["self_attn.W_v.bias"]).view(-1, heads, dh)
    qq = q.view(-1, heads, dh)
    src, dst = edge_index[0], edge_index[1]
    s = (k[src] * qq[dst]).sum(-1) / np.sqrt(dh)
    smax = torch.full((n, heads), -np.inf, dtype=s.dtype).scatter_reduce(0, dst.view(-1, 1).expand(-1, heads), s.detach(), "amax", include_self=False)
    ex = (s - smax[dst]).exp()
    den = torch.zeros(n, heads, dtype=s.dtype).index_add(0, dst, ex)
    a = ex / (den[dst] + 1e-16)
    au = a * mask / (1 - p) if mask is not None else a
    out = torch.zeros(n, heads, dh, dtype=s.dtype).index_add(0, dst, v[src] * au.unsqueeze(-1))
    return F.linear(out.view(-1, d), w["self_attn.W_o.weight"], w["self_attn.W_o.bias"]), a


@op("dartsgt.attention")
def attention(case, rng):
    torch = deterministic_torch()
    import torch.nn.functional as F
    from torch.nn.utils.stateless import functional_call
    from torch_geometric.utils import to_dense_batch
    n, d = case["n"], case["d"]
    params = dict(case["params"])
    heads = params["heads"]
    inputs = {"h": rng.standard_normal((n, d)), "kv": rng.standard_normal((n, d))}
    dense = params["dense"] == 1
    if not dense:
        edge_index, _ = random_graph(rng, n, case["e"], case["graphs"])
        inputs["edge_index"] = edge_index
        for k in ("W_k", "W_v", "W_o"):
            inputs[f"self_attn.{k}.weight"], inputs[f"self_attn.{k}.bias"] = lin(rng, d, d)
        if params.get("training", 0):
            inputs["attn_mask"] = keep_mask(rng, (case["e"], heads), params["attn_dropout"])
    else:
        _, batch = random_graph(rng, n, 0, case["graphs"])
        inputs["batch"] = batch
        inputs["self_attn.in_proj_weight"] = rng.standard_normal((3 * d, d)) / np.sqrt(d)
        inputs["self_attn.in_proj_bias"] = 0.1 * rng.standard_normal(3 * d)
        inputs["self_attn.out_proj.weight"], inputs["self_attn.out_proj.bias"] = lin(rng, d, d)
        if params.get("q_mlp", 0):
            for k in ("0", "2"):
                inputs[f"q_mlp.{k}.weight"], inputs[f"q_mlp.{k}.bias"] = lin(rng, d, d)
    grad_names = [k for k in inputs if inputs[k].dtype == np.float64 and k != "attn_mask"]

    def fn(**t):
        if not dense:
            ei = torch.tensor(t["edge_index"], dtype=torch.long)
            out, a = sparse_attention_reference(torch, F, t["h"], t["kv"], ei, heads, t, t.get("attn_mask"),
                                                params.get("attn_dropout", 0.0))
            return {"out": out, "attn": a}
        b = torch.tensor(t["batch"], dtype=torch.long)
        h, kv = t["h"], t["kv"]
        if params.get("q_mlp", 0):
            mlp = torch.nn.Sequential(torch.nn.Linear(d, d), torch.nn.ReLU(), torch.nn.Linear(d, d)).double()
            q = functional_call(mlp, {k[len("q_mlp."):]: t[k] for k in t if k.startswith("q_mlp.")}, (h,))
            kv = kv + 0.1 * h
        else:
            q = h
        q_dense, mask = to_dense_batch(q, b)
        kv_dense, _ = to_dense_batch(kv, b)
        mha = torch.nn.MultiheadAttention(d, heads, dropout=0.5, batch_first=True).double().eval()
        w = {k[len("self_attn."):]: t[k] for k in t if k.startswith("self_attn.")}
        out = functional_call(mha, w, (q_dense, kv_dense, kv_dense), {"key_padding_mask": ~mask, "need_weights": False})[0][mask]
        return {"out": out}

    return inputs, params, fn, grad_names


# ---------------------------------------------------------------------------------------------------------------
# dartsgt.layer


def nas_layer_reference(torch, F, t, ei, params, discrete_op=None):
    """NASLayer.forward (sparse, batch_norm, routing 'nas'): experts (GINE and GATv2 through dropout_kv, the GatedGCN with its own
    dropout), norm1_kv per expert, joint standardisation, expert dropout, Σ π Ŷ, SparseGraphAttention(h, kv), dropout_attn + residual,
    norm1_attn, the edge stream, the FF block and norm2."""
    from torch.nn.utils.stateless import functional_call
    import torch_geometric.nn as pygnn
    training = bool(params.get("training", 0))
    p = params.get("dropout", 0.0)
    heads = params["heads"]
    x, ea = t["h"], t["edge_attr"]
    d = x.shape[1]

    def drop(v, name):
        return v * t[name] / (1 - p) if training and name in t else v

    def bn(v, name):
        keep = params.get("update_running", 0)  # train the exported model's running statistics in place
        rm, rv = t[name + ".running_mean"], t[name + ".running_var"]
        return F.batch_norm(v, rm if keep else rm.clone(), rv if keep else rv.clone(), t[name + ".weight"],
                            t[name + ".bias"], training=training, momentum=0.1, eps=1e-5)

    if discrete_op is not None:  # discrete_nas_layer_edge.py: KV = norm1_kv(dropout_kv(GNN_op*(H))), no standardisation
        if discrete_op == 0:
            gine = pygnn.GINEConv(torch.nn.Sequential(torch.nn.Linear(d, d), torch.nn.ReLU(), torch.nn.Linear(d, d)), train_eps=False).double()
            y = drop(functional_call(gine, {k[5:]: t[k] for k in t if k.startswith("gine.nn.")}, (x, ei, ea)), "gine.dropout_kv_mask")
        elif discrete_op == 1:
            y = gated_gcn_layer(torch, F, x, ei, ea, t, training, t.get("gated.dropout_mask"), p)[0]
        else:
            gat = pygnn.GATv2Conv(d, d // heads, heads=heads, edge_dim=d).double()
            y = drop(functional_call(gat, {k[6:]: t[k] for k in t if k.startswith("gatv2.") and "mask" not in k}, (x, ei, ea)),
                     "gatv2.dropout_kv_mask")
        return discrete_tail(torch, F, t, ei, params, x, ea, bn(y, "bn_kv"), drop, bn)

    gine = pygnn.GINEConv(torch.nn.Sequential(torch.nn.Linear(d, d), torch.nn.ReLU(), torch.nn.Linear(d, d)), train_eps=False).double()
    y0 = drop(functional_call(gine, {k[5:]: t[k] for k in t if k.startswith("gine.nn.")}, (x, ei, ea)), "gine.dropout_kv_mask")
    y1 = gated_gcn_layer(torch, F, x, ei, ea, t, training, t.get("gated.dropout_mask"), p)[0]
    gat = pygnn.GATv2Conv(d, d // heads, heads=heads, edge_dim=d).double()
    y2 = drop(functional_call(gat, {k[6:]: t[k] for k in t if k.startswith("gatv2.") and "mask" not in k}, (x, ei, ea)), "gatv2.dropout_kv_mask")
    kv, _, _ = mixed_op_reference(torch, F, torch.stack([y0, y1, y2]), t["alpha"], None, t["bn_kv.weight"], t["bn_kv.bias"],
                                  t["bn_kv.running_mean"].clone(), t["bn_kv.running_var"].clone(), training, t.get("expert_mask"),
                                  params.get("expert_dropout", 0.0))
    return discrete_tail(torch, F, t, ei, params, x, ea, kv, drop, bn)


def discrete_tail(torch, F, t, ei, params, x, ea, kv, drop, bn):
    """Steps 4–6 of the layer: sparse attention, dropout_attn + residual, norm1_attn, the edge stream, the FF block, norm2."""
    heads = params["heads"]
    att, a = sparse_attention_reference(torch, F, x, kv, ei, heads, t, t.get("attn_mask"), params.get("attn_dropout", 0.0))
    h1 = bn(drop(att, "dropout_attn_mask") + x, "norm1_attn")
    if params.get("edge_stream", 0):
        ef = F.relu(F.linear(ea, t["edge_processor.0.weight"], t["edge_processor.0.bias"]))
        ef = drop(ef, "edge_processor.mask_1")
        ef = drop(F.linear(ef, t["edge_processor.3.weight"], t["edge_processor.3.bias"]), "edge_processor.mask_2")
        h1 = h1 + torch.sigmoid(t["edge_gate"]) * torch.zeros_like(x).index_add(0, ei[1], ef)
    ff = drop(F.relu(F.linear(h1, t["ff_linear1.weight"], t["ff_linear1.bias"])), "ff_mask_1")
    ff = drop(F.linear(ff, t["ff_linear2.weight"], t["ff_linear2.bias"]), "ff_mask_2")
    return bn(h1 + ff, "norm2"), kv, a


def layer_weights(rng, inputs, prefix, d, heads, edge_stream):
    """The weights and buffers of one NAS layer under prefix + their module names."""
    def bn_params(name, c):
        inputs[prefix + name + ".weight"] = 1 + 0.2 * rng.standard_normal(c)
        inputs[prefix + name + ".bias"] = 0.1 * rng.standard_normal(c)
        inputs[prefix + name + ".running_mean"] = 0.3 * rng.standard_normal(c)
        inputs[prefix + name + ".running_var"] = 0.5 + rng.random(c)

    for k in ("0", "2"):
        inputs[prefix + f"gine.nn.{k}.weight"], inputs[prefix + f"gine.nn.{k}.bias"] = lin(rng, d, d)
    for k in "ABCDE":
        inputs[prefix + f"gated.{k}.weight"], inputs[prefix + f"gated.{k}.bias"] = lin(rng, d, d)
    bn_params("gated.bn", d)
    inputs[prefix + "gatv2.lin_l.weight"], inputs[prefix + "gatv2.lin_l.bias"] = lin(rng, d, d)
    inputs[prefix + "gatv2.lin_r.weight"], inputs[prefix + "gatv2.lin_r.bias"] = lin(rng, d, d)
    inputs[prefix + "gatv2.lin_edge.weight"] = lin(rng, d, d)[0]
    inputs[prefix + "gatv2.att"] = rng.standard_normal((1, heads, d // heads))
    inputs[prefix + "gatv2.bias"] = 0.1 * rng.standard_normal(d)
    inputs[prefix + "alpha"] = 1e-3 * rng.standard_normal(3) + 0.5 * rng.standard_normal(3)
    bn_params("bn_kv", d)
    for k in ("W_k", "W_v", "W_o"):
        inputs[prefix + f"self_attn.{k}.weight"], inputs[prefix + f"self_attn.{k}.bias"] = lin(rng, d, d)
    bn_params("norm1_attn", d)
    if edge_stream:
        inputs[prefix + "edge_processor.0.weight"], inputs[prefix + "edge_processor.0.bias"] = lin(rng, d, d)
        inputs[prefix + "edge_processor.3.weight"], inputs[prefix + "edge_processor.3.bias"] = lin(rng, d, d)
        inputs[prefix + "edge_gate"] = np.array(0.1)
    inputs[prefix + "ff_linear1.weight"], inputs[prefix + "ff_linear1.bias"] = lin(rng, 2 * d, d)
    inputs[prefix + "ff_linear2.weight"], inputs[prefix + "ff_linear2.bias"] = lin(rng, d, 2 * d)
    bn_params("norm2", d)


@op("dartsgt.layer")
def layer(case, rng):
    torch = deterministic_torch()
    import torch.nn.functional as F
    n, e, d = case["n"], case["e"], case["d"]
    params = dict(case["params"])
    heads, training, p = params["heads"], params.get("training", 0), params.get("dropout", 0.0)
    edge_index, _ = random_graph(rng, n, e, case["graphs"])
    inputs = {"h": rng.standard_normal((n, d)), "edge_index": edge_index, "edge_attr": rng.standard_normal((e, d))}

    layer_weights(rng, inputs, "", d, heads, params.get("edge_stream", 0))
    if training:
        inputs["gated.dropout_mask"] = keep_mask(rng, (n, d), p)
        inputs["gine.dropout_kv_mask"] = keep_mask(rng, (n, d), p)
        inputs["gatv2.dropout_kv_mask"] = keep_mask(rng, (n, d), p)
        inputs["expert_mask"] = keep_mask(rng, (3, n, d), params["expert_dropout"])
        inputs["attn_mask"] = keep_mask(rng, (e, heads), params["attn_dropout"])
        inputs["dropout_attn_mask"] = keep_mask(rng, (n, d), p)
        if params.get("edge_stream", 0):
            inputs["edge_processor.mask_1"] = keep_mask(rng, (e, d), p)
            inputs["edge_processor.mask_2"] = keep_mask(rng, (e, d), p)
        inputs["ff_mask_1"] = keep_mask(rng, (n, 2 * d), p)
        inputs["ff_mask_2"] = keep_mask(rng, (n, d), p)
    grads = [g for g in load_protocol("dartsgt.layer")["grads"] if g in inputs]

    def fn(**t):
        out, kv, a = nas_layer_reference(torch, F, t, torch.tensor(t["edge_index"], dtype=torch.long), params)
        return {"out": out, "kv": kv, "attn": a}

    return inputs, params, fn, grads


# ---------------------------------------------------------------------------------------------------------------
# dartsgt.search


def graph_batch(rng, prefix, n, e, graphs, d, inputs):
    edge_index, batch = random_graph(rng, n, e, graphs)
    inputs[prefix + ".x"] = rng.standard_normal((n, d))
    inputs[prefix + ".edge_index"] = edge_index
    inputs[prefix + ".edge_attr"] = rng.standard_normal((e, d))
    inputs[prefix + ".batch"] = batch
    inputs[prefix + ".y"] = rng.standard_normal(graphs)


def darts_search_reference(torch, F, inputs, groups, heads, steps, edge_stream):
    """DartsTrainerGraphSparse._train_one_epoch with unrolled = False: per step, ctrl_optim.zero_grad, the validation loss backward,
    ctrl_optim.step (Adam lr 4e-4, betas (0.5, 0.999), weight decay 1e-3); model_optim.zero_grad, the training loss backward,
    clip_grad_norm_(model.parameters(), 5) (α is registered in the model, so it is in that list), model_optim.step (Adam lr 0.0025,
    weight decay 3e-4). Model: the NAS layers (train mode, dropout off), global_mean_pool, Linear(d, 1), L1 loss."""
    from torch_geometric.nn import global_mean_pool
    w = {k: torch.tensor(v, requires_grad=True) for k, v in inputs.items() if (k.startswith("layers.") or k.startswith("head.")) and "running" not in k}
    buffers = {k: torch.tensor(v) for k, v in inputs.items() if "running" in k}
    alpha = torch.tensor(inputs["alpha"], requires_grad=True)
    lp = {"heads": heads, "training": 1, "edge_stream": edge_stream}

    def loss(split):
        x = torch.tensor(inputs[split + ".x"])
        ei = torch.tensor(inputs[split + ".edge_index"], dtype=torch.long)
        ea = torch.tensor(inputs[split + ".edge_attr"])
        for l, g in enumerate(groups):
            pre = f"layers.{l}."
            t = {k[len(pre):]: v for k, v in {**w, **buffers}.items() if k.startswith(pre)}
            t["h"], t["edge_attr"], t["alpha"] = x, ea, alpha[g]
            x = nas_layer_reference(torch, F, t, ei, lp)[0]
        pooled = global_mean_pool(x, torch.tensor(inputs[split + ".batch"], dtype=torch.long))
        pred = F.linear(pooled, w["head.weight"], w["head.bias"]).view(-1)
        return F.l1_loss(pred, torch.tensor(inputs[split + ".y"]))

    ctrl = torch.optim.Adam([alpha], 4e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    wopt = torch.optim.Adam(list(w.values()), 0.0025, weight_decay=3e-4)
    alphas, lv, lt = [], [], []
    for _ in range(steps):
        ctrl.zero_grad()
        v = loss("val")
        v.backward()
        ctrl.step()
        wopt.zero_grad()
        tr = loss("train")
        tr.backward()
        torch.nn.utils.clip_grad_norm_(list(w.values()) + [alpha], 5.0)
        wopt.step()
        alphas.append(alpha.detach().clone().numpy())
        lv.append(v.item())
        lt.append(tr.item())
    return alphas, lv, lt, {k: v.detach().numpy() for k, v in w.items()}, alpha.detach().numpy()


def discretise_reference(alpha, groups):
    a = np.asarray(alpha)
    return np.array([int(np.argmax(np.exp(a[g] - a[g].max()) / np.exp(a[g] - a[g].max()).sum())) for g in groups], dtype=np.int64)


@op("dartsgt.search")
def search(case, rng):
    torch = deterministic_torch()
    import torch.nn.functional as F
    d, heads, groups, steps = case["d"], case["params"]["heads"], case["params"]["groups"], case["params"]["steps"]
    edge_stream = case["params"].get("edge_stream", 0)
    params = dict(case["params"])
    params["groups"] = np.array(groups, dtype=np.int64)
    inputs = {}
    graph_batch(rng, "train", case["n_train"], case["e_train"], 3, d, inputs)
    graph_batch(rng, "val", case["n_val"], case["e_val"], 2, d, inputs)
    for l in range(len(groups)):
        layer_weights(rng, inputs, f"layers.{l}.", d, heads, edge_stream)
        del inputs[f"layers.{l}.alpha"]  # α lives in the trainer (one row per group), not in the layer
    inputs["head.weight"], inputs["head.bias"] = lin(rng, 1, d)
    inputs["alpha"] = np.array(case["alpha"], dtype=np.float64) if "alpha" in case else 1e-3 * rng.standard_normal((max(groups) + 1, 3))
    alphas, lv, lt, new, final = darts_search_reference(torch, F, inputs, groups, heads, steps, edge_stream)
    outs = {"selected_initial": discretise_reference(inputs["alpha"], groups), "selected": discretise_reference(final, groups)}
    if steps > 0:
        outs.update({"alphas": np.stack(alphas), "val_loss": np.array(lv), "train_loss": np.array(lt)})
        outs.update({"new." + k: v for k, v in new.items()})
    return inputs, params, (lambda **_: outs), []


# ---------------------------------------------------------------------------------------------------------------
# dartsgt.explain (NumPy / SciPy, written from pk_explainer.py)


def explain_error(pred, y, task):
    if task == 0:
        return float(np.mean(np.abs(pred - y)))
    if task == 1:
        return float(np.mean(np.abs(1 / (1 + np.exp(-pred)) - y)))
    if task == 2:
        return float(np.argmax(pred) != int(y[0]))
    ok = ~np.isnan(y)
    return float(np.mean(np.abs((1 / (1 + np.exp(-pred[ok])) > 0.5).astype(np.float64) - y[ok])))


def explain_reference(pred, y, task, maps, k, stable):
    import scipy.stats as stats
    errors = np.array([explain_error(p, y, task) for p in pred])
    delta = errors[1:] - errors[0]
    heads = [{"m": m, "deviation": float(delta[m])} for m in range(len(delta))]
    ranked = sorted(heads, key=lambda h: h["deviation"], reverse=True)
    pos = [h for h in ranked if h["deviation"] > 0]
    neg = [h for h in ranked if h["deviation"] < 0]
    top = [h["m"] for h in (pos[:k] if len(pos) >= k else pos + neg[:k - len(pos)])]
    sets = []
    for m in top:
        s = np.sum(maps[m], axis=0)
        order = np.argsort(s, kind="stable") if stable else np.argsort(s)
        sets.append(set(order[-max(1, len(s) // 10):].tolist()))
    jac = [len(sets[i] & sets[j]) / len(sets[i] | sets[j]) for i in range(len(sets)) for j in range(i + 1, len(sets))]
    focus = float(np.mean(jac)) if len(sets) >= 2 else 0.0
    corr = []
    for i in range(len(top)):
        for j in range(i + 1, len(top)):
            a, b = maps[top[i]].flatten(), maps[top[j]].flatten()
            corr.append(np.corrcoef(a, b)[0, 1] if np.std(a) > 0 and np.std(b) > 0 else 0.0)
    ent = []
    for mp in maps:
        pooled = np.sum(mp, axis=0)
        tot = pooled.sum()
        if tot > 0:
            pd = pooled / tot
            pd = pd[pd > 0]
            ent.append(float(-np.sum(pd * np.log(pd))))
        else:
            ent.append(0.0)
    if len(ent) >= 3:
        rho = stats.spearmanr(ent, delta)[0]
        rho = 0.0 if np.isnan(rho) else float(rho)
    else:
        rho = 0.0
    return {"errors": errors, "delta": delta, "specialization": np.float64(np.std(delta)),
            "top_heads": np.array(top + [-1] * (k - len(top)), dtype=np.int64), "focus": np.float64(focus),
            "correlation": np.float64(np.mean(corr) if corr else 0.0),
            "head_sum": np.array([np.sum(mp) for mp in maps]), "head_std": np.array([np.std(mp) for mp in maps]),
            "entropy": np.array(ent), "entropy_spearman": np.float64(rho)}


def sparse_map(weights, edge_index, n):
    m = np.zeros((n, n))
    for s, d, w in zip(edge_index[0], edge_index[1], weights):
        m[s, d] = w
    rs = m.sum(axis=1, keepdims=True)
    rs[rs == 0] = 1
    return m / rs


@op("dartsgt.explain")
def explain(case, rng):
    m, t, n, kind = case["m"], case["t"], case["n"], case["kind"]
    params = dict(case["params"])
    task = params["task"]
    base = rng.standard_normal(t)
    if task == 2:
        y = np.array([float(rng.integers(0, t))])
        pred = np.tile(base, (m + 1, 1))
        for r in range(1, m + 1):  # ablations move the logits by small steps: many equal errors (ties in δ)
            pred[r] += rng.integers(-1, 2, t) * 0.7
    else:
        y = rng.standard_normal(t) if task == 0 else (rng.random(t) < 0.5).astype(np.float64)
        if task == 3:
            y[rng.integers(0, t)] = np.nan
        pred = base + 0.3 * rng.standard_normal((m + 1, t))
    for r in range(case.get("zero_heads", 0)):
        pred[1 + r] = pred[0]
    inputs = {"predictions": pred, "y": y}
    if kind == "sparse":
        edge_index, _ = random_graph(rng, n, case["e"], 1, isolated=0)
        w = rng.random((m, case["e"]))
        inputs["attn_edges"], inputs["edge_index"] = w, edge_index
        params["num_nodes"] = n
        maps = [sparse_map(w[h], edge_index, n) for h in range(m)]
    else:
        if kind == "zeros":
            a = np.zeros((m, n, n))
            a[0] = rng.random((n, n))
        else:
            s = rng.standard_normal((m, n, n)) * 2
            a = np.exp(s - s.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
        inputs["attn"] = a
        maps = list(a)
    outs = explain_reference(pred, y, task, maps, params["k_heads"], params.get("stable_ties", 0) == 1)
    return inputs, params, (lambda **_: outs), []


def generate(pid, out_root):
    import scipy
    import torch
    import torch_geometric
    proto = load_protocol(pid)
    w = GoldenWriter(pid, out_root, GENERATOR, library_versions("torch", "torch_geometric", "scipy"))
    for case in proto["cases"]:
        rng = rng_for(pid, case["name"])
        inputs, params, fn, grad_names = OPS[pid](case, rng)
        outs, cots, grads = torch_grads(deterministic_torch(), fn, inputs, params, grad_names, rng)
        w.case(case["name"], inputs, params, outs, cots, grads)
    w.close()
    _ = (scipy, torch, torch_geometric)


if __name__ == "__main__":
    run_main(GENERATOR, generate)
