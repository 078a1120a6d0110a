#!/usr/bin/python3
# certify-venv: runs in golden/.venv (scikit-learn 1.3.0, pinned by the official code; `make venv`)
"""Reference generator for IADG (Zhou et al., CVPR 2023): protocols/iadg/*.yaml.

usage: golden/.venv/bin/python golden/generate/iadg.py [--out DIR] [PROTOCOL-ID ...]

Independent references: scikit-learn / SciPy for the metrics (called exactly as the official
utils/metric.py calls them), PyTorch in Float64 for the network pieces (written from the spec
/work/shared/specs/iadg.md, following the official code's behaviour). Every random draw a method
needs (Dirichlet weights, FPS start index, masks, inputs) is drawn here from NumPy PCG64 seeded by
the protocol id and case name and stored as an input of the case, so no golden depends on
PyTorch's RNG stream.

Each generator function receives the case entry and its seeded Generator and returns a dict with
inputs, params, outputs and optionally cotangents, grads (the shared driver writes them).
"""
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import GoldenWriter, library_versions, load_protocol, rng_for, ROOT, write_value, run_main  # noqa: E402

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

PINNED_SKLEARN = "1.3.0"  # the official requirement.txt
LEGACY_PYTHON = "/usr/bin/python3"  # Debian's interpreter, with Debian's scikit-learn 1.2.1

_LEGACY_ROC = """
import io, sys, warnings
import numpy as np, sklearn
from sklearn.metrics import roc_curve
assert sklearn.__version__ < "1.3", sklearn.__version__
d = np.load(io.BytesIO(sys.stdin.buffer.read()))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    fpr, tpr, thr = roc_curve(d["labels"], d["scores"], pos_label=0)
buf = io.BytesIO()
np.savez(buf, fpr=fpr, tpr=tpr, thresholds=thr, version=np.array(sklearn.__version__))
sys.stdout.buffer.write(buf.getvalue())
"""


def legacy_roc_curve(labels, scores):
    """roc_curve of scikit-learn < 1.3 (max(score)+1 for the prepended point), run by Debian's own
    scikit-learn 1.2.1 in its interpreter: the first_threshold = 1 divergence comes from the library
    version that has it, not from a patch."""
    import io
    import subprocess
    buf = io.BytesIO()
    np.savez(buf, labels=np.asarray(labels), scores=np.asarray(scores))
    out = subprocess.run([LEGACY_PYTHON, "-c", _LEGACY_ROC], input=buf.getvalue(), capture_output=True, check=True)
    d = np.load(io.BytesIO(out.stdout))
    return d["fpr"], d["tpr"], d["thresholds"]


def cal_metrics_reference(labels, scores, first_threshold):
    """utils/metric.py cal_metrics(y, s, threshold='auto'), returning every intermediate. first_threshold 0
    is scikit-learn 1.3.0's roc_curve (the official pin; this generator runs in the pinned virtual
    environment), 1 is scikit-learn 1.2.1's (Debian's, in its own interpreter)."""
    import sklearn
    from scipy.interpolate import interp1d
    from scipy.optimize import brentq
    from sklearn.metrics import auc, confusion_matrix, roc_curve

    if sklearn.__version__ != PINNED_SKLEARN:
        raise SystemExit(f"iadg.metrics needs scikit-learn {PINNED_SKLEARN} (found {sklearn.__version__}): "
                         "run the generator through `make goldens` (golden/.venv)")
    if first_threshold == 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fpr, tpr, thresholds = roc_curve(labels, scores, pos_label=0)
    else:
        fpr, tpr, thresholds = legacy_roc_curve(labels, scores)
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
# iadg.aiaw — PyTorch, following utils/cov_settings.py, Shader.forward(cal_covstat) and losses/aiaw_loss.py.

def aiaw_class_statistic(torch, org, aug, eps, use_std):
    """One batch, one class: var over cat(org, aug) of the strict upper triangle of each Gram matrix."""
    s = torch.cat((org, aug), dim=0)
    n, c, h, w = s.shape
    s = s.contiguous().view(n, c, -1)
    g = torch.bmm(s, s.transpose(1, 2)).div(h * w - 1) + eps * torch.eye(c, dtype=torch.float64)
    v = torch.var(g * torch.ones(c, c, dtype=torch.float64).triu(diagonal=1), dim=0)
    return torch.sqrt(v) if use_std else v


class AIAWStatistics:
    """cov_settings.CovMatrix_AIAW_*: running sum and batch count, never reset by the code."""

    def __init__(self, torch, dim, ratio):
        self.torch, self.dim, self.ratio = torch, dim, ratio
        self.cov, self.count = None, 0

    def add(self, v):
        self.cov = v if self.cov is None else self.cov + v
        self.count += 1

    def set_mask(self):
        torch = self.torch
        self.cov = self.cov / self.count
        flat = torch.flatten(self.cov)
        k = int(self.ratio * flat.size()[0])
        values, idx = torch.topk(flat, k=k)
        rest = torch.sort(flat, descending=True).values
        if k < flat.numel() and not rest[k - 1] > rest[k] * (1 + 1e-8):
            raise RuntimeError(f"topk boundary tie or near-tie ({rest[k - 1]} vs {rest[k]}); choose other data")
        m = torch.zeros(self.dim * self.dim, dtype=torch.float64)
        m[idx] = 1
        return m.view(self.dim, self.dim)


def aiaw_loss_reference(torch, f, mask_real, mask_fake, eps, own_half):
    bs = f.shape[0]
    parts = (f[:int(bs / 2)], f[int(bs / 2):])
    sums = []
    for x, m in zip(parts, (mask_real, mask_fake)):
        b, c, h, w = x.shape
        x = x.contiguous().view(b, c, -1)
        g = torch.bmm(x, x.transpose(1, 2)).div(h * w - 1) + eps * torch.eye(c, dtype=torch.float64)
        off = torch.sum(torch.abs(g * m), dim=(1, 2), keepdim=True) - 0
        sums.append((torch.clamp(torch.div(off, torch.sum(m)), min=0), b))
    (lr, b_real), (lf, b_fake) = sums
    loss_real = torch.sum(lr) / (b_real if own_half else b_fake)
    loss_fake = torch.sum(lf) / b_fake
    return (loss_real + loss_fake) / 2


def aiaw_features(rng, shape):
    """org features and a style-shifted aug view (per-sample, per-channel affine + noise), on a 1/64 grid."""
    org = rng.standard_normal(shape)
    scale = rng.uniform(0.5, 2.0, shape[:-2] + (1, 1))
    shift = rng.normal(0, 0.5, shape[:-2] + (1, 1))
    aug = org * scale + shift + 0.3 * rng.standard_normal(shape)
    return np.round(org * 64) / 64, np.round(aug * 64) / 64


@gen("iadg.aiaw", "PyTorch (Float64): cov_settings.py accumulator + topk, Shader statistics pass, aiaw_loss.py")
def aiaw(case, rng):
    import torch
    data = rng_for("iadg.aiaw", case["data_case"]) if "data_case" in case else rng
    src = next(c for c in load_protocol("iadg.aiaw")["cases"] if c["name"] == case.get("data_case", case["name"]))
    e, t, b, c, h, w = src["stats"] if "stats" in src else (0, 0) + tuple(src["loss_features"])
    lb = src["loss_features"][0]
    inputs = {}
    if e:
        so, sa = aiaw_features(data, (e, t, b, c, h, w))
        if case["params"].get("mask_mode", 0) == 0:
            inputs["stat_org"], inputs["stat_aug"] = so, sa
    fo, fa = aiaw_features(data, (lb, c, h, w))
    inputs["f_org"], inputs["f_aug"] = fo, fa
    p = case["params"]
    params = {
        "ratio_real": np.float64(p.get("ratio_real", 3 / 1000)), "ratio_fake": np.float64(p.get("ratio_fake", 0.6 / 1000)),
        "eps_stat": np.float64(1e-7), "eps_loss": np.float64(1e-5),
        "accumulation": np.int64(p.get("accumulation", 0)), "statistic": np.int64(p.get("statistic", 0)),
        "divisor": np.int64(p.get("divisor", 0)), "mask_mode": np.int64(p.get("mask_mode", 0)),
    }
    out = {}
    if params["mask_mode"] == 0:
        st = {cls: AIAWStatistics(torch, c, float(params["ratio_" + cls])) for cls in ("real", "fake")}
        masks = {"real": [], "fake": []}
        for ei in range(e):
            if params["accumulation"] == 1:
                for cls in st:
                    st[cls].cov, st[cls].count = None, 0
            for ti in range(t):
                o, a = torch.tensor(so[ei, ti]), torch.tensor(sa[ei, ti])
                half = int(b / 2)
                for cls, sl in (("real", slice(0, half)), ("fake", slice(half, b))):
                    st[cls].add(aiaw_class_statistic(torch, o[sl], a[sl], 1e-7, params["statistic"] == 1))
            for cls in st:
                masks[cls].append(st[cls].set_mask())
        mask_real, mask_fake = masks["real"][-1], masks["fake"][-1]
        out = {"cov_real": st["real"].cov.numpy(), "cov_fake": st["fake"].cov.numpy(),
               "epoch_masks_real": torch.stack(masks["real"]).numpy().astype(np.int64),
               "epoch_masks_fake": torch.stack(masks["fake"]).numpy().astype(np.int64)}
    elif params["mask_mode"] == 2:
        # masks given by the caller: 0/1 at any positions (diagonal entries bring in eps_loss), at least one 1
        given = []
        for _ in ("real", "fake"):
            m = (data.random((c, c)) < 0.3).astype(np.int64)
            m[0, 1] = 1
            given.append(m)
        params["mask_real"], params["mask_fake"] = given
        mask_real, mask_fake = (torch.tensor(m, dtype=torch.float64) for m in given)
    else:
        mask_real = mask_fake = torch.ones(c, c, dtype=torch.float64).triu(diagonal=1)
    out["mask_real"] = mask_real.numpy().astype(np.int64)
    out["mask_fake"] = mask_fake.numpy().astype(np.int64)
    out["num_sensitive_real"] = np.int64(mask_real.sum().item())
    out["num_sensitive_fake"] = np.int64(mask_fake.sum().item())
    own = params["divisor"] == 1

    def fn(f_org, f_aug, **_):
        lo = aiaw_loss_reference(torch, f_org, mask_real, mask_fake, 1e-5, own)
        la = aiaw_loss_reference(torch, f_aug, mask_real, mask_fake, 1e-5, own)
        return {"loss_org": lo, "loss_aug": la, "loss": lo + la}
    d = torch_case(inputs, params, fn, ["f_org", "f_aug"], rng)
    if not case.get("store_cov", True):
        del out["cov_real"], out["cov_fake"]
    d["outputs"].update(out)
    return d


# ---------------------------------------------------------------------------------------------
# iadg.csa / iadg.fps — PyTorch, following models/framework.py CSA/CSABlock and utils/fps.py.

def csa_layer_reference(torch, x, labels, w, pm_pos, ps_pos, pm_neg, ps_neg, eps):
    """One CSA: detached statistics, per-sample Dirichlet weights times the category's prototypes, AdaIN."""
    mu = torch.mean(x, dim=[2, 3], keepdim=True).detach()
    var = torch.var(x, dim=[2, 3], keepdim=True).detach()
    xn = (x - mu) / torch.sqrt(var + eps)
    means, stds = [], []
    for i in range(x.shape[0]):
        pm, ps = (pm_pos, ps_pos) if int(labels[i]) == 0 else (pm_neg, ps_neg)
        means.append(w[i].unsqueeze(dim=0) @ pm)
        stds.append(w[i].unsqueeze(dim=0) @ ps)
    nm, ns = torch.cat(means, dim=0), torch.cat(stds, dim=0)
    return xn * ns.unsqueeze(2).unsqueeze(3) + nm.unsqueeze(2).unsqueeze(3), nm, ns


def grid(a, q=256):
    """Values on a 1/q grid: exact in binary and compressible, so large inputs stay small on disk."""
    return np.round(np.asarray(a) * q) / q


def csa_inputs(rng, shape, labels, styles, blocks):
    b, c = shape[0], shape[1]
    x = grid(rng.standard_normal(shape) * rng.uniform(0.5, 2.0, (b, c, 1, 1)) + rng.normal(0, 1, (b, c, 1, 1)))
    weights = np.stack([rng.dirichlet(np.full(styles, 1.0 / styles), size=b) for _ in range(blocks)])
    return {"x": x, "labels": np.array(labels, dtype=np.int64), "weights": weights,
            "proto_mean_pos": grid(rng.normal(0, 1, (styles, c))), "proto_std_pos": grid(rng.uniform(0.3, 1.5, (styles, c))),
            "proto_mean_neg": grid(rng.normal(0, 1, (styles, c))), "proto_std_neg": grid(rng.uniform(0.3, 1.5, (styles, c)))}


@gen("iadg.csa", "PyTorch (Float64): CSA/CSABlock of models/framework.py; Dirichlet weights from NumPy")
def csa(case, rng):
    import torch
    src = next(c for c in load_protocol("iadg.csa")["cases"] if c["name"] == case.get("data_case", case["name"]))
    data = rng_for("iadg.csa", src["name"])
    inputs = csa_inputs(data, tuple(src["shape"]), src["labels"], src["styles"], src["blocks"])
    form = int(case["params"].get("form", 0))
    params = {"eps": np.float64(1e-5), "form": np.int64(form)}

    def fn(x, labels, weights, proto_mean_pos, proto_std_pos, proto_mean_neg, proto_std_neg, **_):
        y, nms, nss = x, [], []
        for k in range(weights.shape[0]):
            out, nm, ns = csa_layer_reference(torch, y, labels, weights[k], proto_mean_pos, proto_std_pos,
                                              proto_mean_neg, proto_std_neg, 1e-5)
            y = y + out if form == 0 else out
            nms.append(nm)
            nss.append(ns)
        return {"y": y, "new_mean": torch.stack(nms), "new_std": torch.stack(nss)}
    return torch_case(inputs, params, fn, ["x"], rng)


@gen("iadg.fps", "PyTorch (Float64): validate_for_prototype style statistics + utils/fps.py farthest_point_sample_tensor")
def fps(case, rng):
    import torch
    f = grid(rng.standard_normal(case["shape"]) * rng.uniform(0.5, 2.0, tuple(case["shape"][:2]) + (1, 1))
             + rng.normal(0, 1, tuple(case["shape"][:2]) + (1, 1)))
    f = f * case.get("scale", 1.0)
    p = case["params"]
    L, start = int(p["num_styles"]), int(p["start"])
    feats = torch.tensor(f)
    mean = feats.mean(dim=[2, 3])
    sig = (feats.var(dim=[2, 3]) + 1e-5).sqrt()
    styles = torch.stack((mean, sig), dim=1).reshape(f.shape[0], -1)
    n = styles.shape[0]
    centroids = torch.zeros((L,), dtype=torch.long)
    distance = torch.ones((n,), dtype=torch.float64) * 1e10
    farthest = start
    for i in range(L):
        centroids[i] = farthest
        d = torch.sum((styles - styles[farthest, :]) ** 2, dim=-1)
        mask = d < distance
        distance[mask] = d[mask]
        farthest = torch.argmax(distance, dim=-1)
    sel = styles[centroids].reshape(L, 2, -1)
    return {"inputs": {"features": f},
            "params": {"num_styles": np.int64(L), "start": np.int64(start), "eps": np.float64(1e-5)},
            "outputs": {"styles": styles.numpy(), "indices": centroids.numpy().astype(np.int64),
                        "distance": distance.numpy(), "proto_mean": sel[:, 0].numpy(), "proto_std": sel[:, 1].numpy()}}


# ---------------------------------------------------------------------------------------------
# iadg.dkg — PyTorch, following models/dkg_module.py DKGModule.forward.

def dkg_reference(torch, x, conv_kernel_weight, conv_kernel_bias, conv_k_weight, conv_k_bias, conv_static_weight,
                  conv_static_bias, fuse_weight, fuse_bias, k, padding, stride):
    F = torch.nn.functional
    n, c, h, w = x.shape
    x1, x2 = x[:, :int(c / 2)], x[:, int(c / 2):]
    g = F.adaptive_avg_pool2d(x1, 1)
    kernel = F.conv2d(g.permute(0, 2, 1, 3).contiguous(), conv_kernel_weight, conv_kernel_bias).permute(0, 3, 2, 1)
    outs, kernels = [], []
    for i in range(n):
        gk = F.conv2d(kernel[i:i + 1], conv_k_weight, conv_k_bias)
        gk = gk.reshape(gk.size(2), gk.size(1), k, k)
        kernels.append(gk.reshape(1, -1, k, k))
        f_one = F.pad(x1[i:i + 1], (padding, padding, padding, padding), mode="constant", value=0)
        outs.append(F.conv2d(f_one, gk, stride=stride, groups=int(c / 2)))
    z_dyn = torch.cat(outs, dim=0)
    z_sta = F.conv2d(x2, conv_static_weight, conv_static_bias, padding=1)
    y = F.conv2d(torch.cat([z_dyn, z_sta], dim=1), fuse_weight, fuse_bias)
    return {"y": y, "dynamic": z_dyn, "kernels": torch.cat(kernels, dim=0)}


def conv_init(rng, out_c, in_c, kh, kw):
    """Kaiming-normal-like weight (std √(2/fan_in)) and a uniform bias (PyTorch's default bound 1/√fan_in)."""
    fan = in_c * kh * kw
    return rng.normal(0, np.sqrt(2.0 / fan), (out_c, in_c, kh, kw)), rng.uniform(-1, 1, out_c) / np.sqrt(fan)


@gen("iadg.dkg", "PyTorch (Float64): models/dkg_module.py DKGModule.forward")
def dkg(case, rng):
    import torch
    n, c, h, w = case["x"]
    p = case["params"]
    k, pad, stride = int(p["k"]), int(p["padding"]), int(p["stride"])
    x = rng.standard_normal((n, c, h, w)) + rng.normal(0, 1, (n, c, 1, 1))
    ckw, ckb = conv_init(rng, k * k, 1, 1, 1)
    kw, kb = conv_init(rng, 1, 1, 1, 1)
    sw, sb = conv_init(rng, c // 2, c // 2, 3, 3)
    fw, fb = conv_init(rng, case["planes"], c, 1, 1)
    params = {"conv_kernel_weight": ckw, "conv_kernel_bias": ckb, "conv_k_weight": kw, "conv_k_bias": kb,
              "conv_static_weight": sw, "conv_static_bias": sb, "fuse_weight": fw, "fuse_bias": fb,
              "k": np.int64(k), "padding": np.int64(pad), "stride": np.int64(stride)}
    names = ["x"] + [q for q in params if q not in ("k", "padding", "stride")]
    return torch_case({"x": x}, params, lambda k, padding, stride, **t: dkg_reference(torch, k=int(k), padding=int(padding),
                                                                                      stride=int(stride), **t), names, rng)


# ---------------------------------------------------------------------------------------------
# iadg.network — PyTorch, following models/framework.py, models/base_block.py and train.py's loss.

def network_param_shapes(widths, in_channels=3):
    """state_dict names and shapes of the Framework's learnable parameters (the unused DKG conv1 omitted)."""
    inc, mid, dkg_out, block_out, c1, c2, c3, d1, d2 = widths
    feat = 3 * block_out
    shapes = {}

    def conv(prefix, cin, cout):
        shapes[prefix + ".conv.weight"] = (cout, cin, 3, 3)
        shapes[prefix + ".conv.bias"] = (cout,)

    def dkg(prefix, cin, cout):
        shapes[prefix + ".conv_kernel.weight"] = (9, 1, 1, 1)
        shapes[prefix + ".conv_kernel.bias"] = (9,)
        shapes[prefix + ".conv_k.weight"] = (1, 1, 1, 1)
        shapes[prefix + ".conv_k.bias"] = (1,)
        shapes[prefix + ".conv_static.weight"] = (cin // 2, cin // 2, 3, 3)
        shapes[prefix + ".conv_static.bias"] = (cin // 2,)
        shapes[prefix + ".fuse.weight"] = (cout, cin, 1, 1)
        shapes[prefix + ".fuse.bias"] = (cout,)

    conv("FeatExtractor.inc", in_channels, inc)
    cin = inc
    for d in (1, 2, 3):
        pre = f"FeatExtractor.down{d}"
        conv(pre + ".conv_block1_gate", cin, mid)
        dkg(pre + ".conv_block2_gate.conv", mid, dkg_out)
        conv(pre + ".conv_block3_gate", dkg_out, block_out)
        cin = block_out
    conv("Classifier.conv_block1", feat, c1)
    conv("Classifier.conv_block2", c1, c2)
    conv("Classifier.conv_block3", c2, c3)
    shapes["Classifier.fc.weight"] = (2, c3)
    shapes["Classifier.fc.bias"] = (2,)
    conv("DepthEstmator.conv_block1", feat, d1)
    conv("DepthEstmator.conv_block2", d1, d2)
    conv("DepthEstmator.conv_block3", d2, 1)
    shapes["Shader.conv_final.0.weight"] = (feat, feat, 3, 3)
    shapes["Shader.conv_final.1.weight"] = (feat,)
    shapes["Shader.conv_final.1.bias"] = (feat,)
    return shapes


def network_reference(torch, P, x, labels, depth_gt, csa_weights, protos, mask_real, mask_fake, running_mean, running_var,
                      loss_weights, form=0):
    F = torch.nn.functional

    def conv_block(h, pre):
        return F.relu(F.instance_norm(F.conv2d(h, P[pre + ".conv.weight"], P[pre + ".conv.bias"], padding=1), eps=1e-5))

    def dkg_block(h, pre):
        t = {k: P[pre + ".conv." + k.replace("__", ".")] for k in
             ("conv_kernel__weight", "conv_kernel__bias", "conv_k__weight", "conv_k__bias", "conv_static__weight",
              "conv_static__bias", "fuse__weight", "fuse__bias")}
        y = dkg_reference(torch, h, *t.values(), k=3, padding=1, stride=1)["y"]
        return F.relu(F.instance_norm(y, eps=1e-5))

    def basic(h, pre):
        h = conv_block(h, pre + ".conv_block1_gate")
        h = dkg_block(h, pre + ".conv_block2_gate")
        return F.max_pool2d(conv_block(h, pre + ".conv_block3_gate"), 2)

    x0 = conv_block(x, "FeatExtractor.inc")
    x1 = basic(x0, "FeatExtractor.down1")
    x2 = basic(x1, "FeatExtractor.down2")
    x3 = basic(x2, "FeatExtractor.down3")
    s = x3.shape[-1]
    catfeat = torch.cat([F.adaptive_avg_pool2d(x1, s), F.adaptive_avg_pool2d(x2, s), x3], 1)

    def classifier(f):
        h = F.max_pool2d(conv_block(f, "Classifier.conv_block1"), 2)
        h = F.max_pool2d(conv_block(h, "Classifier.conv_block2"), 2)
        h = F.adaptive_avg_pool2d(conv_block(h, "Classifier.conv_block3"), 1)
        return F.linear(h.view(h.size(0), -1), P["Classifier.fc.weight"], P["Classifier.fc.bias"])

    def depth(f):
        return conv_block(conv_block(conv_block(f, "DepthEstmator.conv_block1"), "DepthEstmator.conv_block2"),
                          "DepthEstmator.conv_block3")

    rm, rv = running_mean.clone(), running_var.clone()

    def conv_final(f):
        y = F.conv2d(f, P["Shader.conv_final.0.weight"], None, padding=1)
        return F.batch_norm(y, rm, rv, P["Shader.conv_final.1.weight"], P["Shader.conv_final.1.bias"], training=True,
                            momentum=0.1, eps=1e-5)

    logits_org, depth_org = classifier(catfeat), depth(catfeat)
    aug = catfeat
    for k in range(csa_weights.shape[0]):
        out, _, _ = csa_layer_reference(torch, aug, labels, csa_weights[k], *protos, 1e-5)
        aug = aug + out if form == 0 else out
    fea_aug = conv_final(aug)
    fea_org = conv_final(catfeat)
    logits_aug, depth_aug = classifier(fea_aug), depth(fea_aug)
    ce, mse = torch.nn.CrossEntropyLoss(), torch.nn.MSELoss()
    comp = {
        "loss_cls": ce(logits_org, labels), "loss_depth": mse(depth_org.squeeze(), depth_gt),
        "loss_cls_aug": ce(logits_aug, labels), "loss_depth_aug": mse(depth_aug.squeeze(), depth_gt),
        "loss_aiaw_org": aiaw_loss_reference(torch, fea_org, mask_real, mask_fake, 1e-5, False),
        "loss_aiaw_aug": aiaw_loss_reference(torch, fea_aug, mask_real, mask_fake, 1e-5, False),
    }
    w = loss_weights
    loss = comp["loss_cls"] + comp["loss_depth"] * w[0]
    loss = loss + comp["loss_cls_aug"] * w[1] + comp["loss_depth_aug"] * w[2]
    loss = loss + comp["loss_aiaw_org"] * w[3] + comp["loss_aiaw_aug"] * w[4]
    score = torch.softmax(logits_org, dim=1)[:, 0] + depth_org.reshape(x.shape[0], -1).mean(dim=1)
    return loss, comp, {"logits_org": logits_org, "depth_org": depth_org, "logits_aug": logits_aug, "depth_aug": depth_aug,
                        "catfeat": catfeat, "scores": score, "bn_running_mean": rm, "bn_running_var": rv}


def random_upper_mask(rng, c, k):
    iu = np.triu_indices(c, 1)
    pick = rng.choice(len(iu[0]), size=k, replace=False)
    m = np.zeros((c, c))
    m[iu[0][pick], iu[1][pick]] = 1
    return m


@gen("iadg.network", "PyTorch (Float64): models/framework.py Framework (train mode, apply_shade, apply_wt) + train.py loss")
def network(case, rng):
    import torch
    widths = list(case["widths"])
    n_real, n_fake, size = case["n_real"], case["n_fake"], case["image_size"]
    b = n_real + n_fake
    feat = 3 * widths[3]
    shapes = network_param_shapes(widths)
    params = {}
    for name, shp in shapes.items():
        if name.endswith("conv_final.1.weight"):
            params[name] = grid(rng.uniform(0.02, 1.0, shp), 4096)
        elif name.endswith("conv_final.1.bias"):
            params[name] = grid(rng.normal(0, 0.1, shp), 4096)
        elif name.endswith(".weight") and len(shp) == 4:
            params[name] = grid(rng.normal(0, np.sqrt(2.0 / np.prod(shp[1:])), shp), 4096)
        elif name.endswith(".weight"):
            params[name] = grid(rng.uniform(-1, 1, shp) / np.sqrt(shp[1]), 4096)
        else:
            fan = np.prod(shapes[name[:-len("bias")] + "weight"][1:])
            params[name] = grid(rng.uniform(-1, 1, shp) / np.sqrt(fan), 4096)
    L = case["styles"]
    labels = np.r_[np.zeros(n_real, dtype=np.int64), np.ones(n_fake, dtype=np.int64)]
    depth_gt = np.r_[grid(rng.uniform(0, 1, (n_real, size // 8, size // 8))), np.zeros((n_fake, size // 8, size // 8))]
    inputs = {
        "x": grid(rng.uniform(-1, 1, (b, 3, size, size)), 128), "labels": labels, "depth_gt": depth_gt,
        "csa_weights": np.stack([rng.dirichlet(np.full(L, 1.0 / L), size=b) for _ in range(2)]),
        "proto_mean_pos": grid(rng.uniform(0, 1, (L, feat))), "proto_std_pos": grid(rng.uniform(0.05, 0.6, (L, feat))),
        "proto_mean_neg": grid(rng.uniform(0, 1, (L, feat))), "proto_std_neg": grid(rng.uniform(0.05, 0.6, (L, feat))),
        "mask_real": random_upper_mask(rng, feat, case["k_real"]), "mask_fake": random_upper_mask(rng, feat, case["k_fake"]),
        "bn_running_mean": np.zeros(feat), "bn_running_var": np.ones(feat),
    }
    lw = [0.1, 1.0, 0.1, 1.0, 1.0]
    allp = {**params, "widths": np.array(widths, dtype=np.int64), "csa_form": np.int64(case.get("csa_form", 0)),
            "w_depth": np.float64(lw[0]), "w_cls_aug": np.float64(lw[1]), "w_depth_aug": np.float64(lw[2]),
            "w_aiaw_org": np.float64(lw[3]), "w_aiaw_aug": np.float64(lw[4])}
    T = {k: torch.tensor(v, requires_grad=(k in case["grads"])) for k, v in params.items()}
    xt = torch.tensor(inputs["x"], requires_grad=True)  # the x gradient is stored only when the case lists it
    loss, comp, extra = network_reference(
        torch, T, xt, torch.tensor(labels), torch.tensor(depth_gt), torch.tensor(inputs["csa_weights"]),
        [torch.tensor(inputs[k]) for k in ("proto_mean_pos", "proto_std_pos", "proto_mean_neg", "proto_std_neg")],
        torch.tensor(inputs["mask_real"]), torch.tensor(inputs["mask_fake"]), torch.tensor(inputs["bn_running_mean"]),
        torch.tensor(inputs["bn_running_var"]), lw, int(case.get("csa_form", 0)))
    wrt = [xt] + [T[k] for k in case["grads"] if k != "x"]
    gs = torch.autograd.grad(loss, wrt)
    grads = {"x": gs[0].numpy()} if "x" in case["grads"] else {}
    grads.update({k: g.numpy() for k, g in zip([k for k in case["grads"] if k != "x"], gs[1:])})
    outputs = {"loss": loss.detach().numpy()}
    outputs.update({k: v.detach().numpy() for k, v in comp.items()})
    outputs.update({k: v.detach().numpy() for k, v in extra.items()})
    return {"inputs": inputs, "params": allp, "outputs": outputs, "cotangents": {"loss": np.float64(1.0)}, "grads": grads}


# ---------------------------------------------------------------------------------------------

LIBS = {"iadg.metrics": ("sklearn", "scipy")}
LEGACY_NOTE = {"iadg.metrics": "; first_threshold = 1 cases: roc_curve of Debian's scikit-learn 1.2.1 (/usr/bin/python3)"}
COMPRESS_MIN = 512  # datasets with at least this many elements are written gzip-compressed (shuffle filter)


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
    w = GoldenWriter(pid, out_root, "golden/generate/iadg.py", REFERENCE[pid] + "; " + library_versions(*libs) + LEGACY_NOTE.get(pid, ""))
    for case in proto["cases"]:
        rng = rng_for(pid, case["name"])
        write_case(w, case["name"], GEN[pid](case, rng))
    w.close()


if __name__ == "__main__":
    run_main("iadg.py", generate, GEN)
