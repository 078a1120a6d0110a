#!/usr/bin/python3
# certify-venv: runs in golden/.venv (pycocotools 2.0.8 for the YouTube-VIS AP; `make venv`)
"""Reference generator for Local2Global (protocols/l2g/*.yaml): pycocotools' COCOeval with the two documented
YouTube-VIS changes (spatio-temporal mask IoU, the 128²/256² area ranges) for l2g.vis_ap; SciPy's
linear_sum_assignment and PyTorch (grid_sample, cross_entropy, binary_cross_entropy_with_logits,
MultiheadAttention, LayerNorm, Linear) in Float64 for the matcher, the losses, the aligner and the propagation.

usage: golden/.venv/bin/python golden/generate/l2g.py [--out DIR] [PROTOCOL-ID ...]

Each protocol id has one function registered with @op(<id>); it receives the case entry from the protocol and a
seeded NumPy Generator and returns a dict with inputs, params, outputs and, where gradients are certified,
cotangents and grads. Every random draw is an input of the case. No output of Certify is read.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import GoldenWriter, OPS, deterministic_torch, library_versions, load_protocol, op, rng_for, run_main, torch_grads  # noqa: E402

GENERATOR = "golden/generate/l2g.py"


# ---------------------------------------------------------------------------------------------------------------
# l2g.vis_ap — pycocotools COCOeval with the spatio-temporal IoU and the YouTube-VIS area ranges

def rle_counts(mask):
    """Uncompressed COCO RLE counts of a dense [H, W] mask: column-major runs, starting with zeros."""
    flat = np.asarray(mask, dtype=np.uint8).flatten(order="F")
    edges = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    runs = np.diff(edges).tolist()
    return ([0] + runs) if flat.size and flat[0] == 1 else runs


def _blob(rng, h, w, cy, cx, ry, rx, kind):
    yy, xx = np.mgrid[0:h, 0:w]
    if kind == 0:
        m = ((yy - cy) / max(ry, 0.5)) ** 2 + ((xx - cx) / max(rx, 0.5)) ** 2 <= 1.0
    else:
        m = (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)
    return m


def _track(rng, t, h, w, empty_prob, scale):
    """A moving shape over t frames; some frames empty."""
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    vy, vx = rng.normal(0, 1.5, 2)
    ry, rx = rng.uniform(0.1, 0.35, 2) * np.array([h, w]) * scale
    kind = int(rng.integers(0, 2))
    frames = []
    for f in range(t):
        if rng.uniform() < empty_prob:
            frames.append(np.zeros((h, w), bool))
            continue
        frames.append(_blob(rng, h, w, cy + vy * f, cx + vx * f, ry, rx, kind))
    return frames


def _perturb(rng, frames, flip, shift):
    out = []
    for m in frames:
        m2 = np.roll(m, (int(rng.integers(-shift, shift + 1)), int(rng.integers(-shift, shift + 1))), axis=(0, 1))
        noise = rng.uniform(size=m.shape) < flip
        out.append(np.logical_xor(m2, noise & (rng.uniform(size=m.shape) < 0.5)))
    return out


def _vis_dataset(case, rng):
    V, K, T, H, W = case["videos"], case["categories"], case["frames"], case["height"], case["width"]
    kind = case["kind"]
    gts, dts = [], []
    empty_prob = 0.3 if kind == "empty_frames" else 0.05
    scale = case.get("scale", 1.0)
    for v in range(V):
        ng = int(rng.integers(1, case.get("max_gt", 4) + 1))
        for _ in range(ng):
            c = int(rng.integers(1, K + (0 if kind == "category_without_gt" else 1)))
            crowd = kind == "crowd" and rng.uniform() < 0.3
            fr = _track(rng, T, H, W, empty_prob, scale)
            if kind == "area_ranges":
                side = int(rng.choice([120, 128, 129, 200, 256, 257, 290]))
                fr = [np.zeros((H, W), bool) for _ in range(T)]
                y0, x0 = int(rng.integers(0, H - side)), int(rng.integers(0, W - side))
                for f in range(T):
                    if f == 0 or rng.uniform() < 0.7:
                        fr[f][y0:y0 + side, x0:x0 + side] = True
            gts.append(dict(video=v, cat=c, crowd=int(crowd), frames=fr))
            if kind == "videos_without_detections" and v % 2 == 1:
                continue
            for _ in range(int(rng.integers(0, 3))):
                dfr = _perturb(rng, fr, case.get("flip", 0.01), case.get("shift", 1))
                dc = c if rng.uniform() < 0.85 else int(rng.integers(1, K + 1))
                dts.append(dict(video=v, cat=dc, score=float(rng.uniform()), frames=dfr))
        if kind == "videos_without_detections" and v % 2 == 1:
            continue
        for _ in range(int(rng.integers(0, case.get("max_fp", 3) + 1))):
            dts.append(dict(video=v, cat=int(rng.integers(1, K + 1)), score=float(rng.uniform() * 0.8),
                            frames=_track(rng, T, H, W, empty_prob, scale)))
    if kind == "many_detections":
        g = gts[0]
        for _ in range(130):
            dts.append(dict(video=g["video"], cat=g["cat"], score=float(rng.uniform()),
                            frames=_perturb(rng, g["frames"], 0.05, 3)))
    if kind == "perfect":
        dts = [dict(video=g["video"], cat=g["cat"], score=float(rng.uniform() * 0.5 + 0.5), frames=g["frames"]) for g in gts]
    if kind in ("score_ties", "many_detections"):
        for d in dts:
            d["score"] = float(np.round(d["score"] * 4) / 4)
    order = rng.permutation(len(dts))
    dts = [dts[i] for i in order]
    return V, K, T, H, W, gts, dts


def _flat(tracks, T):
    counts, offsets = [], [0]
    for tr in tracks:
        for f in range(T):
            counts += rle_counts(tr["frames"][f])
            offsets.append(len(counts))
    return np.array(counts, np.float64), np.array(offsets, np.float64)


def spatio_temporal_eval_class():
    """COCOeval with the YouTube-VIS changes: a track's IoU sums per-frame intersections and unions of pycocotools masks
    (annotations carry their per-frame compressed RLEs, None for absent frames, under "segs")."""
    from pycocotools import mask as mask_utils
    from pycocotools.cocoeval import COCOeval

    class SpatioTemporalEval(COCOeval):
        """COCOeval with the YouTube-VIS changes: a track's IoU sums per-frame intersections and unions."""

        def computeIoU(self, imgId, catId):
            gt, dt = self._gts[imgId, catId], self._dts[imgId, catId]
            if not gt and not dt:
                return []
            dt = [dt[i] for i in np.argsort([-d["score"] for d in dt], kind="mergesort")][: self.params.maxDets[-1]]
            out = np.zeros((len(dt), len(gt)))
            for a, d in enumerate(dt):
                for b, g in enumerate(gt):
                    inter = union = 0.0
                    for ds, gs in zip(d["segs"], g["segs"]):
                        da = mask_utils.area(ds) if ds is not None else 0
                        ga = mask_utils.area(gs) if gs is not None else 0
                        if da and ga:
                            inter += mask_utils.area(mask_utils.merge([ds, gs], intersect=True))
                            union += mask_utils.area(mask_utils.merge([ds, gs], intersect=False))
                        elif ga:
                            union += ga
                        elif da:
                            union += da
                    out[a, b] = inter / union if union > 0 else 0.0
            return out

    return SpatioTemporalEval


YTVIS_AREA_RANGES = [[0 ** 2, 1e5 ** 2], [0 ** 2, 128 ** 2], [128 ** 2, 256 ** 2], [256 ** 2, 1e5 ** 2]]


def _ytvis_eval(V, K, T, H, W, gts, dts):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def compressed(frames):
        return [mask_utils.frPyObjects({"size": [H, W], "counts": rle_counts(m)}, H, W) for m in frames]

    def mean_nonzero(areas):
        nz = [a for a in areas if a]
        return np.array(nz).mean() if nz else 0

    def coco(anns):
        c = COCO()
        c.dataset = {"images": [{"id": v + 1} for v in range(V)], "categories": [{"id": k + 1} for k in range(K)],
                     "annotations": anns}
        c.createIndex()
        return c

    gt_anns = []
    for i, g in enumerate(gts):
        segs = compressed(g["frames"])
        areas = [int(np.count_nonzero(m)) for m in g["frames"]]  # the JSON `areas`
        gt_anns.append({"id": i + 1, "image_id": g["video"] + 1, "category_id": g["cat"], "iscrowd": g["crowd"],
                        "segs": segs, "area": mean_nonzero(areas)})
    dt_anns = []
    for i, d in enumerate(dts):
        segs = compressed(d["frames"])
        areas = [mask_utils.area(s) for s in segs]  # the detections' areas come from their masks (ytvos loadRes)
        dt_anns.append({"id": i + 1, "image_id": d["video"] + 1, "category_id": d["cat"], "iscrowd": 0,
                        "score": d["score"], "segs": segs, "area": mean_nonzero(areas)})

    E = spatio_temporal_eval_class()(coco(gt_anns), coco(dt_anns), iouType="bbox")  # 'bbox': no polygon conversion; IoU overridden
    E.params.areaRng = YTVIS_AREA_RANGES
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):
        E.evaluate()
        E.accumulate()
        E.summarize()
    prec = E.eval["precision"]
    ap_cat = np.full((prec.shape[0], K), -1.0)
    for t in range(prec.shape[0]):
        for k in range(K):
            s = prec[t, :, k, 0, 2]
            if len(s[s > -1]):
                ap_cat[t, k] = np.mean(s[s > -1])
    return {"stats": np.asarray(E.stats, np.float64), "precision": prec[:, :, :, 0, 2].copy(),
            "recall": E.eval["recall"].copy(), "ap_per_category": ap_cat,
            "iou_thresholds": np.asarray(E.params.iouThrs, np.float64), "recall_thresholds": np.asarray(E.params.recThrs, np.float64)}


def vis_case(case, rng):
    V, K, T, H, W, gts, dts = _vis_dataset(case, rng)
    gc, go = _flat(gts, T)
    dc, do = _flat(dts, T)
    inputs = {
        "gt_counts": gc, "gt_offsets": go,
        "gt_areas": np.array([[float(np.count_nonzero(m)) for m in g["frames"]] for g in gts], np.float64),
        "gt_video": np.array([g["video"] for g in gts], np.float64), "gt_category": np.array([g["cat"] for g in gts], np.float64),
        "gt_iscrowd": np.array([g["crowd"] for g in gts], np.float64),
        "dt_counts": dc, "dt_offsets": do, "dt_video": np.array([d["video"] for d in dts], np.float64),
        "dt_category": np.array([d["cat"] for d in dts], np.float64), "dt_score": np.array([d["score"] for d in dts], np.float64),
    }
    params = {"num_videos": V, "num_categories": K, "frames": T, "height": H, "width": W}
    return inputs, params, _ytvis_eval(V, K, T, H, W, gts, dts)


@op("l2g.vis_ap")
def vis_ap(case, rng):
    inputs, params, outputs = vis_case(case, rng)
    return {"inputs": inputs, "params": params, "outputs": outputs}


# ---------------------------------------------------------------------------------------------------------------
# l2g.matcher — torch grid_sample / softmax / BCE-with-logits for the cost, scipy linear_sum_assignment for the matching


def point_sample(torch, x, pts):
    """Mask2Former's point_sample: grid_sample(x[:, None], 2·pts − 1, bilinear, zeros, align_corners=False) → [N, P]."""
    grid = 2.0 * pts - 1.0
    out = torch.nn.functional.grid_sample(x[:, None], grid[:, :, None, :], mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[:, 0, :, 0]


def matching_cost(torch, logits, pl, pt, labels, wc, wm, wd):
    F = torch.nn.functional
    cls = -logits.softmax(-1)[:, labels]
    pos = F.binary_cross_entropy_with_logits(pl, torch.ones_like(pl), reduction="none")
    neg = F.binary_cross_entropy_with_logits(pl, torch.zeros_like(pl), reduction="none")
    ce = (pos @ pt.T + neg @ (1 - pt).T) / pl.shape[1]
    s = pl.sigmoid()
    dice = 1 - (2 * (s @ pt.T) + 1) / (s.sum(-1)[:, None] + pt.sum(-1)[None, :] + 1)
    return wm * ce + wc * cls + wd * dice


def draw_frame(rng, q, g, k, h, w, p, duplicate=False):
    logits = rng.standard_normal((q, k + 1)) * 2
    tgt = np.zeros((g, h, w))
    for i in range(g):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1.5, max(h, w) / 2.5)
        yy, xx = np.mgrid[0:h, 0:w]
        tgt[i] = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.float64)
    masks = rng.standard_normal((q, h, w)) * 2
    for i in range(min(q, g)):  # some predictions resemble some targets
        masks[i] += (tgt[(i * 7) % g] * 2 - 1) * 3
    if duplicate:
        logits[1], masks[1] = logits[0], masks[0]
    labels = rng.integers(0, k, g)
    pts = rng.uniform(-0.05, 1.05, (p, 2))  # a few points outside [0, 1]: corners read 0
    return logits, masks, tgt, labels, pts


@op("l2g.matcher")
def matcher(case, rng):
    from scipy.optimize import linear_sum_assignment
    torch = deterministic_torch()
    q, g, k, h, w, p = case["q"], case["g"], case["k"], case["h"], case["w"], case["p"]
    logits, masks, tgt, labels, pts = draw_frame(rng, q, g, k, h, w, p, duplicate=case.get("kind") == "tied")
    prm = case.get("params", {})
    wc, wm, wd = prm.get("cost_class", 2.0), prm.get("cost_mask", 5.0), prm.get("cost_dice", 5.0)
    T = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    pt_ = T(pts)[None].expand(max(q, g), p, 2)
    pl = point_sample(torch, T(masks), pt_[:q])
    ptg = point_sample(torch, T(tgt), pt_[:g])
    C = matching_cost(torch, T(logits), pl, ptg, torch.tensor(labels), wc, wm, wd).numpy()
    rows, cols = linear_sum_assignment(C)
    outputs = {"point_logits": pl.numpy(), "point_targets": ptg.numpy(), "cost": C, "assignment_cost": float(C[rows, cols].sum())}
    if case.get("kind") != "tied":  # the optimum is unique: the assignment itself is certified
        outputs["row_index"] = rows.astype(np.float64)
        outputs["column_index"] = cols.astype(np.float64)
    inputs = {"pred_logits": logits, "pred_masks": masks, "tgt_masks": tgt, "tgt_labels": labels.astype(np.float64), "points": pts}
    return {"inputs": inputs, "params": dict(prm), "outputs": outputs}


# ---------------------------------------------------------------------------------------------------------------
# l2g.losses — Mask2Former's set criterion in PyTorch (matching by scipy linear_sum_assignment per layer)


def criterion_layer(torch, logits, masks, tgt, labels, mpts, lpts, prm):
    from scipy.optimize import linear_sum_assignment
    F = torch.nn.functional
    q, k1 = logits.shape
    g = tgt.shape[0]
    with torch.no_grad():
        pl = point_sample(torch, masks, mpts[None].expand(q, -1, -1))
        pt = point_sample(torch, tgt, mpts[None].expand(g, -1, -1))
        C = matching_cost(torch, logits, pl, pt, labels, prm.get("cost_class", 2.0), prm.get("cost_mask", 5.0), prm.get("cost_dice", 5.0))
    rows, cols = linear_sum_assignment(C.numpy())
    rows, cols = torch.tensor(rows), torch.tensor(cols)
    classes = torch.full((q,), k1 - 1, dtype=torch.int64)
    classes[rows] = labels[cols]
    weight = torch.ones(k1, dtype=torch.float64)
    weight[-1] = prm.get("eos_coef", 0.1)
    ce = F.cross_entropy(logits, classes, weight)
    num = max(g, 1)
    xl = point_sample(torch, masks[rows], lpts[cols])
    tl = point_sample(torch, tgt[cols], lpts[cols])
    bce = F.binary_cross_entropy_with_logits(xl, tl, reduction="none").mean(1).sum() / num
    s = xl.sigmoid()
    dice = (1 - (2 * (s * tl).sum(-1) + 1) / (s.sum(-1) + tl.sum(-1) + 1)).sum() / num
    return ce, bce, dice


@op("l2g.losses")
def losses(case, rng):
    torch = deterministic_torch()
    L, q, g, k, h, w, pm, p = case["layers"], case["q"], case["g"], case["k"], case["h"], case["w"], case["pm"], case["p"]
    logits, masks = [], []
    tgt = labels = None
    for _ in range(L):
        lg, ms, tg, lb, _pts = draw_frame(rng, q, g, k, h, w, 4)
        logits.append(lg)
        masks.append(ms)
        if tgt is None:
            tgt, labels = tg, lb
    inputs = {"pred_logits": np.stack(logits), "pred_masks": np.stack(masks), "tgt_masks": tgt, "tgt_labels": labels.astype(np.float64),
              "match_points": rng.uniform(0, 1, (L, pm, 2)), "loss_points": rng.uniform(0, 1, (L, g, p, 2))}
    prm = dict(case.get("params", {}))

    def fn(pred_logits, pred_masks, tgt_masks, tgt_labels, match_points, loss_points, **_):
        lab = tgt_labels.to(torch.int64)
        ces, bces, dices, total = [], [], [], 0
        for l in range(L):
            ce, bce, dice = criterion_layer(torch, pred_logits[l], pred_masks[l], tgt_masks, lab, match_points[l], loss_points[l], prm)
            ces.append(ce)
            bces.append(bce)
            dices.append(dice)
            total = total + prm.get("weight_class", 2.0) * ce + prm.get("weight_mask", 5.0) * bce + prm.get("weight_dice", 5.0) * dice
        return {"loss_ce": torch.stack(ces), "loss_mask": torch.stack(bces), "loss_dice": torch.stack(dices), "loss_total": total}

    outs, cots, grads = torch_grads(torch, fn, inputs, prm, ["pred_logits", "pred_masks"], rng)
    return {"inputs": inputs, "params": prm, "outputs": outs, "cotangents": cots, "grads": grads}


# ---------------------------------------------------------------------------------------------------------------
# l2g.aligner — torch.nn.MultiheadAttention, LayerNorm and Linear in Float64 (the weights are the case's inputs)

ALIGNER_WEIGHTS = ["sa_in_proj_weight", "sa_in_proj_bias", "sa_out_proj_weight", "sa_out_proj_bias",
                   "ca_in_proj_weight", "ca_in_proj_bias", "ca_out_proj_weight", "ca_out_proj_bias",
                   "norm1_weight", "norm1_bias", "norm2_weight", "norm2_bias", "norm3_weight", "norm3_bias",
                   "linear1_weight", "linear1_bias", "linear2_weight", "linear2_bias"]


def draw_aligner_weights(rng, L, E, Fd):
    u = lambda shape, fan: rng.uniform(-1 / np.sqrt(fan), 1 / np.sqrt(fan), shape)  # noqa: E731
    wts = {}
    for pfx in ("sa", "ca"):
        wts[f"{pfx}_in_proj_weight"] = u((L, 3 * E, E), E)
        wts[f"{pfx}_in_proj_bias"] = u((L, 3 * E), E)
        wts[f"{pfx}_out_proj_weight"] = u((L, E, E), E)
        wts[f"{pfx}_out_proj_bias"] = u((L, E), E)
    for i in (1, 2, 3):
        wts[f"norm{i}_weight"] = rng.uniform(0.9, 1.1, (L, E))
        wts[f"norm{i}_bias"] = rng.uniform(-0.1, 0.1, (L, E))
    wts["linear1_weight"], wts["linear1_bias"] = u((L, Fd, E), E), u((L, Fd), E)
    wts["linear2_weight"], wts["linear2_bias"] = u((L, E, Fd), Fd), u((L, E), Fd)
    return wts


def torch_aligner(torch, qg, ql, pg, plo, W, heads, order, norm_first):
    """N_a layers of (self-attention, cross-attention | cross, self), FFN; post-norm or pre-norm; modules called with the
    case's weights through torch.nn.utils.stateless.functional_call."""
    from torch.nn.utils.stateless import functional_call
    E = qg.shape[-1]
    L = W["sa_in_proj_weight"].shape[0]
    mha = torch.nn.MultiheadAttention(E, heads, dtype=torch.float64)
    ln = torch.nn.LayerNorm(E, dtype=torch.float64)
    lin1 = torch.nn.Linear(E, W["linear1_weight"].shape[1], dtype=torch.float64)
    lin2 = torch.nn.Linear(W["linear1_weight"].shape[1], E, dtype=torch.float64)
    mha.eval()
    pos = lambda x, p: x if p is None else x + p  # noqa: E731
    x = qg
    sas, cas = [], []
    for l in range(L):
        def attn(pfx, q, k, v):
            prm = {"in_proj_weight": W[f"{pfx}_in_proj_weight"][l], "in_proj_bias": W[f"{pfx}_in_proj_bias"][l],
                   "out_proj.weight": W[f"{pfx}_out_proj_weight"][l], "out_proj.bias": W[f"{pfx}_out_proj_bias"][l]}
            return functional_call(mha, prm, (q, k, v), {"need_weights": True})

        def norm(i, v):
            return functional_call(ln, {"weight": W[f"norm{i}_weight"][l], "bias": W[f"norm{i}_bias"][l]}, (v,))

        def self_block(x):
            inp = norm(1, x) if norm_first else x
            a, wts = attn("sa", pos(inp, pg), pos(inp, pg), inp)
            sas.append(wts)
            return x + a if norm_first else norm(1, x + a)

        def cross_block(x):
            inp = norm(2, x) if norm_first else x
            a, wts = attn("ca", pos(inp, pg), pos(ql, plo), ql)
            cas.append(wts)
            return x + a if norm_first else norm(2, x + a)

        x = cross_block(self_block(x)) if order == 0 else self_block(cross_block(x))
        inp = norm(3, x) if norm_first else x
        h = torch.relu(functional_call(lin1, {"weight": W["linear1_weight"][l], "bias": W["linear1_bias"][l]}, (inp,)))
        f = functional_call(lin2, {"weight": W["linear2_weight"][l], "bias": W["linear2_bias"][l]}, (h,))
        x = x + f if norm_first else norm(3, x + f)
    return x, torch.stack(sas), torch.stack(cas)


@op("l2g.aligner")
def aligner(case, rng):
    torch = deterministic_torch()
    L, N, S, B, E, H, Fd = case["layers"], case["n"], case["s"], case["b"], case["e"], case["heads"], case["ffn"]
    inputs = {"global_queries": rng.standard_normal((N, B, E)), "local_queries": rng.standard_normal((S, B, E))}
    if case.get("pos", True):
        inputs["global_pos"] = rng.standard_normal((N, B, E)) * 0.5
        inputs["local_pos"] = rng.standard_normal((S, B, E)) * 0.5
    inputs.update(draw_aligner_weights(rng, L, E, Fd))
    params = {"num_heads": H, "order": case.get("order", 0), "norm_first": case.get("norm_first", 0)}

    def fn(global_queries, local_queries, global_pos=None, local_pos=None, num_heads=None, order=None, norm_first=None, **W):
        out, sa, ca = torch_aligner(torch, global_queries, local_queries, global_pos, local_pos, W, num_heads, order, norm_first)
        return {"out": out, "self_attention": sa, "cross_attention": ca}

    grad_names = [k for k in inputs]
    outs, cots, grads = torch_grads(torch, fn, inputs, params, grad_names, rng)
    return {"inputs": inputs, "params": params, "outputs": outs, "cotangents": cots, "grads": grads}


# ---------------------------------------------------------------------------------------------------------------
# l2g.propagation — the online loop with the PyTorch aligner and heads


@op("l2g.propagation")
def propagation(case, rng):
    torch = deterministic_torch()
    L, T, N, S, B, E, H, Fd = case["layers"], case["t"], case["n"], case["s"], case["b"], case["e"], case["heads"], case["ffn"]
    K1, C, Hh, Ww = case["k"] + 1, case["c"], case["h"], case["w"]
    init = case.get("init", 0)
    inputs = {"local_queries": rng.standard_normal((T, S, B, E)), "mask_features": rng.standard_normal((T, B, C, Hh, Ww)),
              "global_pos": rng.standard_normal((N, B, E)) * 0.5, "local_pos": rng.standard_normal((S, B, E)) * 0.5}
    if init == 1:
        inputs["global_init"] = rng.standard_normal((N, B, E))
    inputs.update(draw_aligner_weights(rng, L, E, Fd))
    inputs.update({"class_weight": rng.standard_normal((K1, E)) / np.sqrt(E), "class_bias": rng.standard_normal(K1) * 0.1,
                   "mask_embed_weight": rng.standard_normal((C, E)) / np.sqrt(E), "mask_embed_bias": rng.standard_normal(C) * 0.1})
    params = {"num_heads": H, "order": case.get("order", 0), "norm_first": case.get("norm_first", 0), "init": init}

    def fn(local_queries, mask_features, global_pos, local_pos, class_weight, class_bias, mask_embed_weight, mask_embed_bias,
           num_heads, order, norm_first, init, global_init=None, **W):
        F = torch.nn.functional
        g = local_queries[0] if init == 0 else global_init
        qs, logits, masks = [], [], []
        for t in range(T):
            g, _, _ = torch_aligner(torch, g, local_queries[t], global_pos, local_pos, W, num_heads, order, norm_first)
            qb = g.permute(1, 0, 2)
            logits.append(F.linear(qb, class_weight, class_bias))
            emb = F.linear(qb, mask_embed_weight, mask_embed_bias)
            masks.append(torch.einsum("bqc,bchw->bqhw", emb, mask_features[t]))
            qs.append(g)
        return {"global_queries": torch.stack(qs), "class_logits": torch.stack(logits), "mask_logits": torch.stack(masks)}

    outs, cots, grads = torch_grads(torch, fn, inputs, params, list(inputs), rng)
    return {"inputs": inputs, "params": params, "outputs": outs, "cotangents": cots, "grads": grads}


# ---------------------------------------------------------------------------------------------------------------

REFERENCES = {
    "l2g.vis_ap": ("pycocotools",),
    "l2g.matcher": ("torch", "scipy"),
}


def generate(pid, out_root):
    proto = load_protocol(pid)
    libs = REFERENCES.get(pid, ("torch",))
    if "pycocotools" in libs:
        from importlib.metadata import version  # pycocotools has no __version__
        ref = library_versions(*[n for n in libs if n != "pycocotools"]) + f", pycocotools {version('pycocotools')}"
    else:
        ref = library_versions(*libs)
    w = GoldenWriter(pid, out_root, GENERATOR, ref)
    for case in proto["cases"]:
        rng = rng_for(pid, case["name"])
        r = OPS[pid](case, rng)
        w.case(case["name"], r["inputs"], r.get("params", {}), r["outputs"], r.get("cotangents"), r.get("grads"), r.get("attrs"))
    w.close()


if __name__ == "__main__":
    run_main("l2g.py", generate)
