#!/usr/bin/python3
"""Reference generator for NRR-DD, "Enhancing Dataset Distillation via Non-Critical Region Refinement"
(Tran et al., CVPR 2025), and the RDED pipeline it builds on (LINs-lab/RDED @ 3f6453d):
protocols/nrrdd/*.yaml, with PyTorch (autograd, conv2d, batch_norm, interpolate incl. antialias,
kl_div, cross_entropy) in Float64.

usage: /usr/bin/python3 golden/generate/nrrdd.py [--out DIR] [PROTOCOL-ID ...]

Same contract as core.py: each @op(<protocol id>) function receives the protocol case and a seeded
NumPy Generator (PCG64 from crc32('<id>/<case>')) and returns (inputs, params, fn, grad_names). Every
random draw (boxes, CutMix λ and centre, permutations, shuffles) is drawn here with NumPy and stored as
an input, so no golden depends on PyTorch's RNG. Written from the protocol equations and the RDED
code's semantics (spec part B), independently of the Swift implementation; no official code copied.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import OPS, op, run_main, torch_generator  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
F64 = torch.float64


def shp(case, name):
    return [int(s) for s in case["inputs"][name]]


def par(case, name, default=None):
    return (case.get("params") or {}).get(name, default)


def opt(case, name, default=None):
    return (case.get("options") or {}).get(name, default)


def T(a):
    return a if torch.is_tensor(a) else torch.tensor(np.asarray(a), dtype=F64)


# ---------------------------------------------------------------------------------------------
# The teacher: conv3x3-BN-ReLU-avgpool2-conv3x3-BN-ReLU-GAP-Linear, BN in evaluation mode.

def draw_teacher(rng, cin, c1, c2, classes, c3=None):
    t = {}
    widths = [c1, c2] + ([c3] if c3 else [])
    prev = cin
    for i, c in enumerate(widths, start=1):
        t[f"t_conv{i}_weight"] = rng.standard_normal((c, prev, 3, 3)) * (0.5 if i == 1 else 0.3)
        t[f"t_conv{i}_bias"] = rng.standard_normal(c) * 0.1
        t[f"t_bn{i}_weight"] = rng.uniform(0.5, 1.5, c)
        t[f"t_bn{i}_bias"] = rng.standard_normal(c) * 0.1
        t[f"t_bn{i}_running_mean"] = rng.standard_normal(c) * 0.2
        t[f"t_bn{i}_running_var"] = rng.uniform(0.5, 2.0, c)
        prev = c
    t["t_fc_weight"] = rng.standard_normal((classes, prev))
    t["t_fc_bias"] = rng.standard_normal(classes) * 0.1
    return t


def teacher_forward(t, x):
    """Blocks conv3x3(pad 1)-BN(eval)-ReLU with avg_pool2d(2) between blocks, then GAP-Linear.
    Returns (logits, features F before GAP, [input of each BN])."""
    h, bn_in = x, []
    blocks = 3 if "t_conv3_weight" in t else 2
    for i in range(1, blocks + 1):
        if i > 1:
            h = F.avg_pool2d(h, 2)
        a = F.conv2d(h, T(t[f"t_conv{i}_weight"]), T(t[f"t_conv{i}_bias"]), padding=1)
        bn_in.append(a)
        h = F.relu(F.batch_norm(a, T(t[f"t_bn{i}_running_mean"]), T(t[f"t_bn{i}_running_var"]), T(t[f"t_bn{i}_weight"]),
                                T(t[f"t_bn{i}_bias"]), training=False, eps=1e-5))
    z = F.linear(h.mean(dim=(2, 3)), T(t["t_fc_weight"]), T(t["t_fc_bias"]))
    return z, h, bn_in


def cam_maps(feat, fc_w, y, H, W):
    """Zhou et al. CAM: A = sum_k w[y,k] F_k; C = ReLU(A), min-max per map (constant -> 0), bilinear to H x W."""
    w = fc_w[torch.as_tensor(y, dtype=torch.long)]                     # [N, K]
    A = torch.einsum("nk,nkhw->nhw", w, feat)
    C = torch.relu(A)
    lo = C.amin(dim=(1, 2), keepdim=True)
    hi = C.amax(dim=(1, 2), keepdim=True)
    rng_ = hi - lo
    C = torch.where(rng_ > 0, (C - lo) / torch.where(rng_ > 0, rng_, torch.ones_like(rng_)), torch.zeros_like(C))
    up = F.interpolate(C[:, None], size=(H, W), mode="bilinear", align_corners=False)[:, 0]
    return A, up


def box_ratio(C, top, left, h, w):
    total = C.sum()
    if total == 0:
        return 0.0
    return float(C[top:top + h, left:left + w].sum() / total)


# ---------------------------------------------------------------------------------------------

@op("nrrdd.cam")
def cam(case, rng):
    n, k, h, w = shp(case, "features")
    classes = shp(case, "fc_weight")[0]
    H, W = int(par(case, "height")), int(par(case, "width"))
    feat = np.maximum(rng.standard_normal((n, k, h, w)), 0) if opt(case, "relu_features", True) else rng.standard_normal((n, k, h, w))
    if opt(case, "constant_map"):
        feat = np.ones((n, k, h, w))
    fc_w = rng.standard_normal((classes, k))
    fc_b = rng.standard_normal(classes) * 0.1
    y = rng.integers(0, classes, n).astype(np.int64)
    boxes = []
    for _ in range(n):
        bh, bw = int(rng.integers(1, H + 1)), int(rng.integers(1, W + 1))
        boxes.append([int(rng.integers(0, H - bh + 1)), int(rng.integers(0, W - bw + 1)), bh, bw])
    boxes = np.array(boxes, dtype=np.int64)

    def fn(features, fc_weight, fc_bias, labels, boxes, height, width):
        z = F.linear(features.mean(dim=(2, 3)), fc_weight, fc_bias)
        A, C = cam_maps(features.detach(), fc_weight.detach(), labels, H, W)
        A_grad = torch.einsum("nk,nkhw->nhw", fc_weight[torch.as_tensor(labels, dtype=torch.long)], features)
        ratio = torch.tensor([box_ratio(C[i], *[int(v) for v in boxes[i]]) for i in range(n)], dtype=F64)
        return {"cam_raw": A_grad, "logits": z, "cam": C, "ratio": ratio}
    return ({"features": feat, "fc_weight": fc_w, "fc_bias": fc_b, "labels": y, "boxes": boxes},
            {"height": np.int64(H), "width": np.int64(W)}, fn, ["features", "fc_weight", "fc_bias"])


@op("nrrdd.stitching")
def stitching(case, rng):
    shape = shp(case, "crops")
    size, factor, ipc = int(par(case, "size")), int(par(case, "factor")), int(par(case, "ipc"))
    crops = rng.standard_normal(shape)

    def fn(crops, size, factor, ipc):
        # RDED synthesize/utils.py::mix_images, in Float64
        s, rem = int(size) // int(factor), int(size) % int(factor)
        c = crops.shape[1]
        out = torch.zeros((ipc, c, size, size), dtype=F64)
        k, h_loc = 0, 0
        cells = []
        for i in range(factor):
            h_r = s + 1 if i < rem else s
            cells.append(h_r)
            w_loc = 0
            for j in range(factor):
                w_r = s + 1 if j < rem else s
                part = F.interpolate(crops[k * ipc:(k + 1) * ipc], size=(h_r, w_r))  # mode 'nearest'
                out[:, :, h_loc:h_loc + h_r, w_loc:w_loc + w_r] = part
                w_loc += w_r
                k += 1
            h_loc += h_r
        return {"mixed": out, "cell_sizes": np.array(cells, dtype=np.int64)}
    return {"crops": crops}, {"size": np.int64(size), "factor": np.int64(factor), "ipc": np.int64(ipc)}, fn, ["crops"]


def distances(logits, y, tau, kind):
    p = torch.softmax(logits / tau, dim=1)
    if kind == 0:
        return -torch.log_softmax(logits / tau, dim=1).gather(1, y.view(-1, 1))[:, 0]
    e = F.one_hot(y, logits.shape[1]).to(F64)
    return torch.sqrt(((p - e) ** 2).sum(dim=1))


@op("nrrdd.dbr")
def dbr(case, rng):
    n, k = shp(case, "student_logits")
    scale = float(opt(case, "scale", 2.0))
    zt = rng.standard_normal((n, k)) * scale
    zs = rng.standard_normal((n, k)) * scale
    y_org = rng.integers(0, k, n).astype(np.int64)
    y_aug = rng.integers(0, k, n).astype(np.int64)
    if opt(case, "same_labels"):
        y_aug = y_org.copy()
    H, W = int(par(case, "height")), int(par(case, "width"))
    x1, x2 = sorted(rng.integers(0, H + 1, 2).tolist())
    y1, y2 = sorted(rng.integers(0, W + 1, 2).tolist())
    bbox = np.array([x1, y1, x2, y2], dtype=np.int64)
    tau, dist, lossk, alpha = float(par(case, "tau")), int(par(case, "distance")), int(par(case, "dbr_loss")), float(par(case, "alpha_dbr"))

    def fn(teacher_logits, student_logits, y_org, y_aug, bbox, height, width, tau, distance, dbr_loss, alpha_dbr):
        yo, ya = torch.as_tensor(y_org, dtype=torch.long), torch.as_tensor(y_aug, dtype=torch.long)
        dT = torch.stack([distances(teacher_logits, yo, tau, dist), distances(teacher_logits, ya, tau, dist)], 1)
        dS = torch.stack([distances(student_logits, yo, tau, dist), distances(student_logits, ya, tau, dist)], 1)
        diff = dS - dT
        l_dbr = (diff.abs().sum(1) if lossk == 0 else (diff ** 2).sum(1)).mean()
        lam = 1.0 - float((bbox[2] - bbox[0]) * (bbox[3] - bbox[1])) / float(H * W)
        l_sce = lam * F.cross_entropy(student_logits, yo) + (1 - lam) * F.cross_entropy(student_logits, ya)
        return {"d_teacher": dT, "d_student": dS, "l_dbr": l_dbr, "l_sce": l_sce, "loss": l_sce + alpha * l_dbr,
                "lam_eff": np.float64(lam)}
    return ({"teacher_logits": zt, "student_logits": zs, "y_org": y_org, "y_aug": y_aug, "bbox": bbox},
            {"height": np.int64(H), "width": np.int64(W), "tau": np.float64(tau), "distance": np.int64(dist),
             "dbr_loss": np.int64(lossk), "alpha_dbr": np.float64(alpha)}, fn, ["student_logits"])


def rded_bbox(H, W, lam, cx, cy):
    # validation/utils.py::rand_bbox with the draws given: W = size[2], H = size[3] in RDED's naming
    Wd, Hd = H, W
    cut_rat = np.sqrt(1.0 - lam)
    cut_w, cut_h = int(Wd * cut_rat), int(Hd * cut_rat)
    bbx1 = int(np.clip(cx - cut_w // 2, 0, Wd))
    bby1 = int(np.clip(cy - cut_h // 2, 0, Hd))
    bbx2 = int(np.clip(cx + cut_w // 2, 0, Wd))
    bby2 = int(np.clip(cy + cut_h // 2, 0, Hd))
    return bbx1, bby1, bbx2, bby2


def shuffle_strips(img, factor, perm, code_remainder):
    """One pass of ShufflePatches.shuffle_weight over the last axis with random.shuffle replaced by perm."""
    w = img.shape[-1]
    tw = w // factor
    patches = []
    for i in range(factor):
        start = i * tw
        last = (start == factor - 1) if code_remainder else (i == factor - 1)
        patches.append(img[..., start:] if last else img[..., start:start + tw])
    return torch.cat([patches[p] for p in perm], -1)


@op("nrrdd.relabel")
def relabel(case, rng):
    n, c, H, W = shp(case, "images")
    k = shp(case, "student_logits")[1]
    factor = int(par(case, "factor"))
    images = rng.standard_normal((n, c, H, W))
    rand_index = rng.permutation(n).astype(np.int64)
    lam = float(rng.beta(1.0, 1.0)) if opt(case, "lam") is None else float(opt(case, "lam"))
    cx, cy = int(rng.integers(0, H)), int(rng.integers(0, W))
    zs = rng.standard_normal((n, k)) * 3
    zt = rng.standard_normal((n, k)) * 3
    img = rng.standard_normal(shp(case, "shuffle_image"))
    perm_w = rng.permutation(factor).astype(np.int64)
    perm_h = rng.permutation(factor).astype(np.int64)
    tau = float(par(case, "tau"))
    epoch, epochs = int(par(case, "epoch")), int(par(case, "epochs"))
    code_rem = int(par(case, "shuffle_remainder", 0)) == 0

    def fn(images, rand_index, lam, cx, cy, student_logits, teacher_logits, shuffle_image, perm_w, perm_h, **_):
        x1, y1, x2, y2 = rded_bbox(H, W, float(lam), int(cx), int(cy))
        mixed = images.clone()
        mixed[:, :, x1:x2, y1:y2] = images[torch.as_tensor(rand_index)][:, :, x1:x2, y1:y2]
        lam_eff = 1.0 - (x2 - x1) * (y2 - y1) / float(H * W)
        kd = F.kl_div(F.log_softmax(student_logits / tau, dim=1), F.softmax(teacher_logits / tau, dim=1), reduction="batchmean")
        s = shuffle_strips(shuffle_image, factor, perm_w.tolist(), code_rem).permute(0, 2, 1)
        s = shuffle_strips(s, factor, perm_h.tolist(), code_rem).permute(0, 2, 1)
        mult = 0.5 * (1.0 + math.cos(math.pi * epoch / epochs / 2)) if epoch <= epochs else 0.0
        return {"mixed": mixed, "bbox": np.array([x1, y1, x2, y2], dtype=np.int64), "lam_eff": np.float64(lam_eff),
                "kd_loss": kd, "shuffled": s, "lr_multiplier": np.float64(mult)}
    params = {"factor": np.int64(factor), "tau": np.float64(tau), "epoch": np.int64(epoch), "epochs": np.int64(epochs)}
    if par(case, "shuffle_remainder") is not None:
        params["shuffle_remainder"] = np.int64(par(case, "shuffle_remainder"))
    return ({"images": images, "rand_index": rand_index, "lam": np.float64(lam), "cx": np.int64(cx), "cy": np.int64(cy),
             "student_logits": zs, "teacher_logits": zt, "shuffle_image": img, "perm_w": perm_w, "perm_h": perm_h},
            params, fn, ["student_logits"])


def bn_loss(bn_inputs, t, first_mult):
    total = 0
    for l, a in enumerate(bn_inputs):
        nch = a.shape[1]
        mean = a.mean(dim=(0, 2, 3))
        var = a.permute(1, 0, 2, 3).reshape(nch, -1).var(1, unbiased=False)
        rm, rv = T(t[f"t_bn{l + 1}_running_mean"]), T(t[f"t_bn{l + 1}_running_var"])
        term = torch.norm(rv - var, 2) + torch.norm(rm - mean, 2)
        total = total + (first_mult if l == 0 else 1.0) * term
    return total


@op("nrrdd.refinement")
def refinement(case, rng):
    n, c, H, W = shp(case, "x")
    classes = int(opt(case, "classes", 4))
    c1, c2 = int(opt(case, "c1", 3)), int(opt(case, "c2", 4))
    t = draw_teacher(rng, c, c1, c2, classes, opt(case, "c3"))
    x0 = rng.standard_normal((n, c, H, W))
    y = rng.integers(0, classes, n).astype(np.int64)
    eps_, eta, steps = float(par(case, "epsilon")), float(par(case, "eta")), int(par(case, "steps"))
    alpha, first = float(par(case, "alpha_bn")), float(par(case, "first_bn_multiplier", 10.0))
    optimizer = int(par(case, "optimizer", 0))
    recompute = int(par(case, "recompute_cam", 0))
    clip = int(par(case, "clip", 0))
    lo, hi = float(par(case, "clip_min", -1.0)), float(par(case, "clip_max", 1.0))
    b1, b2, aeps = 0.9, 0.999, 1e-8
    yt = torch.as_tensor(y, dtype=torch.long)

    def objective(x):
        z, feat, bnin = teacher_forward(t, x)
        ce = F.cross_entropy(z, yt)
        lbn = bn_loss(bnin, t, first)
        return ce, lbn, ce + alpha * lbn, feat

    def mask_of(feat):
        _, C = cam_maps(feat.detach(), T(t["t_fc_weight"]), y, H, W)
        return torch.clamp(eps_ - C, min=0)[:, None]

    def fn(x, **_):
        ce0, lbn0, L0, feat0 = objective(x)
        M0 = mask_of(feat0)
        xc = x.detach().clone()
        M = M0
        m = torch.zeros_like(xc)
        v = torch.zeros_like(xc)
        losses = []
        for step in range(1, steps + 1):
            xv = xc.clone().requires_grad_(True)
            _, _, L, feat = objective(xv)
            g, = torch.autograd.grad(L, xv)
            losses.append(float(L))
            if recompute:
                M = mask_of(feat)
            if optimizer == 0:
                upd = eta * g
            else:
                m = b1 * m + (1 - b1) * g
                v = b2 * v + (1 - b2) * g * g
                bc1, bc2 = 1 - b1 ** step, 1 - b2 ** step
                denom = (v.sqrt() / math.sqrt(bc2)) + aeps
                upd = (eta / bc1) * (m / denom)
            xn = xc - M * upd
            if clip:
                xn = torch.where(M > 0, xn.clamp(lo, hi), xn)
            xc = torch.where(M > 0, xn, xc)
        return {"refined": xc, "mask": M0, "losses": np.array(losses), "objective": L0, "ce": ce0, "l_bn": lbn0}
    params = {"epsilon": np.float64(eps_), "eta": np.float64(eta), "steps": np.int64(steps), "alpha_bn": np.float64(alpha)}
    for name, cast in (("first_bn_multiplier", np.float64), ("optimizer", np.int64), ("recompute_cam", np.int64),
                       ("clip", np.int64), ("clip_min", np.float64), ("clip_max", np.float64)):
        if par(case, name) is not None:
            params[name] = cast(par(case, name))
    return {"x": x0, "labels": y, **t}, params, fn, ["x"]


@op("nrrdd.selection")
def selection(case, rng):
    N, c, H, W = shp(case, "images")
    m = int(opt(case, "crops_per_image", 3))
    classes = int(opt(case, "classes", 4))
    size, factor, n_keep = int(par(case, "size")), int(par(case, "factor")), int(par(case, "n"))
    order = int(par(case, "order", 0))
    t = draw_teacher(rng, c, 3, 4, classes, opt(case, "c3"))
    images = rng.standard_normal((N, c, H, W))
    labels = rng.integers(0, classes, N).astype(np.int64)
    boxes = np.zeros((N, m, 4), dtype=np.int64)
    for i in range(N):
        for j in range(m):
            bh = int(rng.integers(max(1, H // 4), H + 1))
            bw = bh if opt(case, "square", True) else int(rng.integers(max(1, W // 4), W + 1))
            bw = min(bw, W)
            boxes[i, j] = [int(rng.integers(0, H - bh + 1)), int(rng.integers(0, W - bw + 1)), bh, bw]
    s = size // factor

    def fn(images, labels, boxes, **_):
        yt = torch.as_tensor(labels, dtype=torch.long)
        crops = torch.zeros((N, m, c, s, s), dtype=F64)
        for i in range(N):
            for j in range(m):
                tp, lf, bh, bw = [int(v) for v in boxes[i, j]]
                crop = images[i:i + 1, :, tp:tp + bh, lf:lf + bw]
                crops[i, j] = F.interpolate(crop, size=(s, s), mode="bilinear", align_corners=False, antialias=True)[0]
        flat = crops.reshape(N * m, c, s, s)
        pv, ph = size - s, size - s
        padded = F.pad(flat, (ph // 2, ph - ph // 2, pv // 2, pv - pv // 2))
        z, _, _ = teacher_forward(t, padded)
        lab = yt.repeat_interleave(m)
        scores = (-torch.log(torch.softmax(z, dim=1).gather(1, lab.view(-1, 1))))[:, 0].reshape(N, m)
        _, feat, _ = teacher_forward(t, images)
        _, C = cam_maps(feat, T(t["t_fc_weight"]), labels, H, W)
        ratios = torch.tensor([[box_ratio(C[i], *[int(v) for v in boxes[i, j]]) for j in range(m)] for i in range(N)], dtype=F64)
        sc, ra = scores.numpy(), ratios.numpy()
        if order == 0:
            chosen = np.array([int(np.argmin(sc[i])) for i in range(N)])          # first index on ties
            key = sc[np.arange(N), chosen]
            selected = np.argsort(key, kind="stable")[:n_keep]
        else:
            chosen = np.array([int(np.argmax(ra[i])) for i in range(N)])
            key = sc[np.arange(N), chosen]
            selected = np.argsort(-key, kind="stable")[:n_keep]
        out = crops[torch.as_tensor(selected), torch.as_tensor(chosen[selected])]
        return {"scores": scores, "ratios": ratios, "chosen": chosen.astype(np.int64), "selected": selected.astype(np.int64),
                "crops": out}
    params = {"size": np.int64(size), "factor": np.int64(factor), "n": np.int64(n_keep)}
    if par(case, "order") is not None:
        params["order"] = np.int64(order)
    return {"images": images, "labels": labels, "boxes": boxes, **t}, params, fn, []


generate = torch_generator(torch, "golden/generate/nrrdd.py")

if __name__ == "__main__":
    run_main("nrrdd.py", generate)
