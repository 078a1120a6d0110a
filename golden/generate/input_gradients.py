#!/usr/bin/python3
# certify-venv: runs in golden/.venv (Captum 0.6.0 for the attribution cases it can certify; `make venv`)
"""Reference generator for "Do Input Gradients Highlight Discriminative Features?" (NeurIPS 2021):
protocols/input_gradients/*.yaml, with NumPy (masks, BlockMNIST, localization, DiffROAR pooling),
SciPy's sparse direct solver (ROAD's noisy linear imputation), PyTorch autograd in Float64 (attributions,
PGD) and Captum (the captum_* attribution cases).

usage: golden/.venv/bin/python golden/generate/input_gradients.py [--out DIR] [PROTOCOL-ID ...]

Same contract as core.py: each @op(<protocol id>) function receives the protocol case and a seeded
NumPy Generator (PCG64 from crc32('<id>/<case>')) and returns (inputs, params, fn, grad_names). Every
random draw a method needs (coins, noise, random starts, random attributions) is drawn here with
NumPy and stored as an input, so no golden depends on PyTorch's RNG. Written independently of the
Swift implementation, from the protocol equations and the official code's semantics (spec part A).
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import OPS, GoldenWriter, library_versions, load_protocol, op, rng_for, run_main, torch_generator, ROOT  # noqa: E402

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
# ROAD noisy linear imputation (SciPy sparse direct solve)

# (row offset, column offset, weight): ROAD's 8-neighbour weights, 1/6 direct and 1/12 diagonal (ICML 2022 §4;
# the weights and the additive noise were read in tleemann/road_evaluation road/imputations.py; no code copied).
ROAD_NEIGHBOURS = [(dr, dc, (1.0 / 12.0 if dr != 0 and dc != 0 else 1.0 / 6.0))
                   for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]


def road_plane(img, kept, noise, fallback):
    """One [H, W] plane: every removed pixel is the weighted mean of its in-image neighbours (kept values
    fixed), all removed pixels solved at once with scipy.sparse.linalg.spsolve; then + noise."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla
    H, W = img.shape
    out = img.copy()
    removed = np.flatnonzero(kept.reshape(-1) == 0)
    if removed.size == 0:
        return out
    if removed.size == H * W:  # nothing kept: the system is singular; Certify's fallback
        return fallback + noise
    var = -np.ones(H * W, dtype=np.int64)
    var[removed] = np.arange(removed.size)
    rows, cols, vals = [], [], []
    rhs = np.zeros(removed.size)
    flat = img.reshape(-1)
    for i, p in enumerate(removed):
        r, c = divmod(int(p), W)
        total = 0.0
        for dr, dc, w in ROAD_NEIGHBOURS:
            rr, cc = r + dr, c + dc
            if not (0 <= rr < H and 0 <= cc < W):
                continue
            total += w
            q = rr * W + cc
            if var[q] < 0:
                rhs[i] += w * flat[q]
            else:
                rows.append(i); cols.append(int(var[q])); vals.append(-w)
        rows.append(i); cols.append(i); vals.append(total)
    A = sp.csc_matrix((vals, (rows, cols)), shape=(removed.size, removed.size))
    sol = spla.spsolve(A, rhs)
    o = out.reshape(-1)
    o[removed] = sol + noise.reshape(-1)[removed]
    return out


@op("input_gradients.road")
def road(case, rng):
    shape = shp(case, "x")
    H, W = shape[-2], shape[-1]
    kind = opt(case, "image", "normal")
    if kind == "linear":
        a, br, bc = rng.standard_normal(3)
        plane = a + br * np.arange(H)[:, None] + bc * np.arange(W)[None, :]
        x = np.broadcast_to(plane, shape).copy()
    elif kind == "pixels":
        x = rng.integers(0, 256, size=shape).astype(np.float64) / 255.0
    else:
        x = rng.standard_normal(shape)
    p_kept = float(opt(case, "p_kept", 0.5))
    kept = (rng.random(shape) < p_kept).astype(np.int64)
    if opt(case, "border_kept"):
        kept[..., 0, :] = 1; kept[..., -1, :] = 1; kept[..., :, 0] = 1; kept[..., :, -1] = 1
    if opt(case, "first_plane_empty"):
        kept.reshape((-1, H, W))[0] = 0
    sigma = float(opt(case, "sigma", 0.01))
    noise = sigma * rng.standard_normal(shape)
    fallback = float(x.mean())
    planes_x, planes_k, planes_n = x.reshape(-1, H, W), kept.reshape(-1, H, W), noise.reshape(-1, H, W)
    out = np.stack([road_plane(planes_x[q], planes_k[q], planes_n[q], fallback) for q in range(planes_x.shape[0])]).reshape(shape)
    outs = {"imputed": out}
    return {"x": x, "kept": kept, "noise": noise}, {"fallback": np.float64(fallback)}, lambda **_: outs, []


# ---------------------------------------------------------------------------------------------
# attributions and PGD (PyTorch autograd, Float64, functional MLP)

def mlp_params(rng, D, hidden, classes):
    """PyTorch-default-scale fixed weights: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    sizes = [D] + list(hidden) + [classes]
    params = {}
    for l in range(len(sizes) - 1):
        b = 1.0 / np.sqrt(sizes[l])
        params[f"fc{l + 1}.weight"] = rng.uniform(-b, b, size=(sizes[l + 1], sizes[l]))
        params[f"fc{l + 1}.bias"] = rng.uniform(-b, b, size=(sizes[l + 1],))
    return params


def mlp_forward(t, x):
    h = x.reshape(x.shape[0], -1)
    layers = sum(1 for k in t if k.endswith(".weight") and k.startswith("fc"))
    for l in range(1, layers + 1):
        h = F.linear(h, t[f"fc{l}.weight"], t[f"fc{l}.bias"])
        if l < layers:
            h = torch.relu(h)
    return h


def target_sum(t, x, y, target):
    out = mlp_forward(t, x)
    yt = torch.tensor(y, dtype=torch.long)
    if target == "logit":
        return out.gather(1, yt.reshape(-1, 1)).sum()
    if target == "softmax":
        return F.softmax(out, dim=1).gather(1, yt.reshape(-1, 1)).sum()
    if target == "loss":
        return F.cross_entropy(out, yt, reduction="sum")
    raise ValueError(target)


def input_grad(t, x, y, target):
    xg = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(target_sum(t, xg, y, target), xg)
    return g


@op("input_gradients.attributions")
def attributions(case, rng):
    xs = shp(case, "x")
    n = xs[0]
    D = int(np.prod(xs[1:]))
    classes = int(opt(case, "classes"))
    params = mlp_params(rng, D, opt(case, "hidden"), classes)
    x = rng.standard_normal(xs)
    y = rng.integers(0, classes, size=n).astype(np.int64)
    method, target = par(case, "method"), par(case, "target")
    inputs = {"x": x, "y": y}
    if method == "smoothgrad":
        inputs["noise"] = 0.15 * (x.reshape(n, -1).max(1) - x.reshape(n, -1).min(1)).reshape((1, n) + (1,) * (len(xs) - 1)) \
            * rng.standard_normal(shp(case, "noise"))
    if method == "integrated_gradients":
        inputs["baseline"] = np.zeros(xs) if opt(case, "zero_baseline") else 0.5 * rng.standard_normal(xs)
    if method == "random":
        inputs["random"] = rng.standard_normal(xs)
    steps = int(case["params"].get("steps", 0))
    p = {**params, "method": method, "target": target}
    if method == "integrated_gradients":
        p["steps"] = np.int64(steps)

    if opt(case, "reference") == "captum":
        return inputs, p, captum_attributions(method, target, y, steps), []

    def fn(**t):
        xt = t["x"]
        if method == "gradient":
            a = input_grad(t, xt, y, target)
        elif method == "gradient_x_input":
            a = xt * input_grad(t, xt, y, target)
        elif method == "smoothgrad":
            noise = t["noise"]
            a = sum(input_grad(t, xt + noise[s], y, target) for s in range(noise.shape[0])) / noise.shape[0]
        elif method == "integrated_gradients":
            base = t["baseline"]
            acc = sum(input_grad(t, base + (j / steps) * (xt - base), y, target) for j in range(1, steps + 1))
            a = (xt - base) * (acc / steps)
        elif method == "random":
            a = t["random"]
        else:
            raise ValueError(method)
        return {"attributions": a}
    return inputs, p, fn, []


CAPTUM_VERSION = "0.6.0"


def captum_attributions(method, target, y, steps):
    """The attribution as Captum computes it (IntegratedGradients with the right Riemann rule; NoiseTunnel
    'smoothgrad' over Saliency with abs=False), on the same functional MLP. Where Captum's definitions differ
    from the protocol's, the difference is removed here and recorded as a divergence in the protocol:
    - Captum builds its Riemann alphas and step sizes with the default dtype (float32): the call runs with
      torch's default dtype set to float64 (divergence captum_float32_alphas);
    - NoiseTunnel draws its own N(0, σ²) noise with torch.normal and one σ per input tensor: the case's stored
      noise (NumPy-drawn, per-example σ) is handed to it by replacing torch.normal inside Captum's noise tunnel
      for the call (divergence captum_smoothgrad_noise);
    - Saliency takes |∇| by default: abs=False gives the signed gradient the protocol defines."""
    import captum
    from captum.attr import IntegratedGradients, NoiseTunnel, Saliency
    from captum.attr._core import noise_tunnel
    if captum.__version__ != CAPTUM_VERSION:
        raise SystemExit(f"the captum cases need Captum {CAPTUM_VERSION} (found {captum.__version__}): run `make goldens` (golden/.venv)")
    yt = torch.tensor(y, dtype=torch.long)

    def forward(inp, labels=None):
        out = mlp_forward(params_t, inp)
        if target == "softmax":
            return F.softmax(out, dim=1)
        if target == "loss":
            return F.cross_entropy(out, labels, reduction="none")
        return out

    params_t = {}

    def fn(**t):
        params_t.clear()
        params_t.update({k: v for k, v in t.items() if k.startswith("fc")})
        xt = t["x"]
        kwargs = {"additional_forward_args": (yt,), "target": None} if target == "loss" else {"target": yt}
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            if method == "integrated_gradients":
                a = IntegratedGradients(forward).attribute(xt, baselines=t["baseline"], n_steps=steps,
                                                            method="riemann_right", **kwargs)
            elif method == "smoothgrad":
                noise = t["noise"]  # [N, n, ...]; NoiseTunnel repeats each example N times (repeat_interleave)
                N = noise.shape[0]
                flat = noise.transpose(0, 1).reshape((noise.shape[1] * N,) + tuple(noise.shape[2:]))
                real_normal = noise_tunnel.torch.normal

                def stored_noise(mean, std, *a, **k):
                    assert tuple(std.shape) == tuple(flat.shape), (std.shape, flat.shape)
                    return flat.clone()
                noise_tunnel.torch.normal = stored_noise
                try:
                    a = NoiseTunnel(Saliency(forward)).attribute(xt, nt_type="smoothgrad", nt_samples=N, stdevs=1.0,
                                                                 abs=False, **kwargs)
                finally:
                    noise_tunnel.torch.normal = real_normal
            else:
                raise ValueError(f"no Captum reference for method {method}")
        finally:
            torch.set_default_dtype(previous)
        return {"attributions": a.detach()}
    return fn


def pgd_reference(t, x, y, norm, eps, lr, iters, rand_eps, lo, hi, noise, scaling):
    """The step rules of ptb_utils.PGD_Attack ('untargeted', minimal=False), starts given."""
    yt = torch.tensor(y, dtype=torch.long)
    if eps == 0.0:
        return torch.zeros_like(x), None

    def norms(v):
        return v.reshape(v.shape[0], -1).norm(dim=1).reshape((-1,) + (1,) * (v.dim() - 1))

    paths, best, best_loss = [], None, None
    for r in range(noise.shape[0]):
        if norm == "linf":
            delta = noise[r].clone()
        else:
            u = noise[r]
            delta = float(scaling[r]) * (rand_eps * u / (norms(u) + 1e-15))
        path = [delta.clone()]
        for _ in range(iters):
            d = delta.detach().clone().requires_grad_(True)
            L = -1 * F.cross_entropy(mlp_forward(t, x + d), yt)
            (g,) = torch.autograd.grad(L, d)
            if norm == "linf":
                delta = (d.detach() - lr * g.sign()).clamp(-eps, eps)
            else:
                g = g / (norms(g) + 1e-15)
                delta = d.detach() - lr * g
                delta = eps * delta / norms(delta).clamp(min=eps)
            delta = torch.max(lo - x, torch.min(hi - x, delta))
            path.append(delta.clone())
        paths.append(torch.stack(path))
        with torch.no_grad():
            loss = F.cross_entropy(mlp_forward(t, x + delta), yt, reduction="none")
        if best is None:
            best, best_loss = delta.clone(), loss
        else:
            flag = loss >= best_loss
            best[flag] = delta[flag]
            best_loss = torch.max(best_loss, loss)
    return best, torch.stack(paths)


@op("input_gradients.pgd")
def pgd(case, rng):
    n, D = shp(case, "x")
    classes = int(opt(case, "classes"))
    R = int(opt(case, "restarts"))
    params = mlp_params(rng, D, opt(case, "hidden"), classes)
    p = case["params"]
    if opt(case, "synthetic"):
        y = rng.integers(0, 2, size=n).astype(np.int64)
        x = np.zeros((n, D))
        x[np.arange(n), rng.integers(0, D, size=n)] = 2.0 * y - 1.0
    elif opt(case, "unit_box"):
        x = rng.uniform(0.0, 1.0, size=(n, D))
        y = rng.integers(0, classes, size=n).astype(np.int64)
    else:
        x = rng.standard_normal((n, D))
        y = rng.integers(0, classes, size=n).astype(np.int64)
    rand_eps = float(p["rand_eps"])
    noise = rng.uniform(-rand_eps, rand_eps, size=(R, n, D)) if rand_eps > 0 else np.zeros((R, n, D))
    scaling = rng.uniform(0.0, 1.0, size=R)
    prm = {**params, "norm": p["norm"], "eps": np.float64(p["eps"]), "step_size": np.float64(p["step_size"]),
           "iterations": np.int64(p["iterations"]), "rand_eps": np.float64(rand_eps),
           "lower": np.float64(p["lower"]), "upper": np.float64(p["upper"])}

    def fn(**t):
        delta, paths = pgd_reference(t, t["x"], y, p["norm"], float(p["eps"]), float(p["step_size"]), int(p["iterations"]),
                                     rand_eps, float(p["lower"]), float(p["upper"]), t["noise"], scaling)
        out = {"delta": delta}
        if paths is not None:
            out["path"] = paths
        return out
    return {"x": x, "y": y, "noise": noise, "scaling": scaling}, prm, fn, []


# ---------------------------------------------------------------------------------------------
# driver

_torch_generate = torch_generator(torch, "golden/generate/input_gradients.py")


def generate(pid, out_root):
    if pid != "input_gradients.road":
        return _torch_generate(pid, out_root)
    # no autograd involved: SciPy's sparse direct solve is the reference
    proto = load_protocol(pid)
    w = GoldenWriter(pid, out_root, "golden/generate/input_gradients.py", library_versions("scipy"))
    for case in proto["cases"]:
        inputs, params, fn, _ = OPS[pid](case, rng_for(pid, case["name"]))
        w.case(case["name"], inputs, params, fn())
    w.close()


if __name__ == "__main__":
    run_main("input_gradients.py", generate)
