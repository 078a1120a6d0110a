#!/usr/bin/python3
# certify-venv: runs in golden/.venv (pycocotools 2.0.8; `make venv`)
"""The Python reference for `certify vis-eval`, and the synthetic YouTube-VIS data set it is compared on.

  golden/.venv/bin/python bench/l2g_vis_eval.py make DIR [--seed S]     writes DIR/gt.json and DIR/results.json
  golden/.venv/bin/python bench/l2g_vis_eval.py eval GT RESULTS OUT.json evaluates with pycocotools COCOeval + the
                                                                          YouTube-VIS changes (golden/generate/l2g.py)
  golden/.venv/bin/python bench/l2g_vis_eval.py compare A.json B.json    bit-for-bit comparison of two evaluations

The data set: 60 videos of 8–12 frames (48 at 64×96, 12 at 360×640 so that medium and large tracks occur), 4 categories,
about 300 ground-truth tracks (some crowd, some with absent frames, YouTube-VIS's uncompressed RLE with null frames and
`areas`) and about 500 results (compressed RLE, noisy copies and false positives, scores on a coarse grid so that ties occur).
"""
import contextlib
import io
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "generate"))
import l2g  # noqa: E402


def make(out, seed):
    from pycocotools import mask as mask_utils
    rng = np.random.default_rng(seed)
    videos, anns, results = [], [], []
    K = 4
    for v in range(60):
        big = v % 5 == 4
        H, W = (360, 640) if big else (64, 96)
        T = int(rng.integers(8, 13))
        videos.append({"id": v + 1, "height": H, "width": W, "length": T, "file_names": [f"{v + 1}/{t:05d}.jpg" for t in range(T)]})
        for _ in range(int(rng.integers(3, 8))):
            c = int(rng.integers(1, K + 1))
            frames = l2g._track(rng, T, H, W, 0.1, 1.0)
            segs, areas = [], []
            for m in frames:
                if not m.any():
                    segs.append(None)
                    areas.append(None)
                else:
                    segs.append({"size": [H, W], "counts": [int(x) for x in l2g.rle_counts(m)]})
                    areas.append(int(np.count_nonzero(m)))
            anns.append({"id": len(anns) + 1, "video_id": v + 1, "category_id": c, "iscrowd": int(rng.uniform() < 0.05),
                         "segmentations": segs, "areas": areas, "height": H, "width": W, "length": 1})
            for _ in range(int(rng.integers(0, 3))):
                d = l2g._perturb(rng, frames, 0.01, 2)
                results.append((v + 1, c if rng.uniform() < 0.85 else int(rng.integers(1, K + 1)), d))
        for _ in range(int(rng.integers(0, 4))):
            results.append((v + 1, int(rng.integers(1, K + 1)), l2g._track(rng, T, H, W, 0.1, 1.0)))
    order = rng.permutation(len(results))
    res = []
    for i in order:
        vid, c, frames = results[i]
        segs = []
        for m in frames:
            r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            segs.append({"size": [int(x) for x in r["size"]], "counts": r["counts"].decode()})
        res.append({"video_id": vid, "category_id": c, "score": float(np.round(rng.uniform() * 20) / 20), "segmentations": segs})
    os.makedirs(out, exist_ok=True)
    gt = {"info": {"description": f"Certify synthetic YouTube-VIS, seed {seed}"}, "videos": videos,
          "categories": [{"id": k + 1, "name": f"shape{k + 1}", "supercategory": "object"} for k in range(K)], "annotations": anns}
    with open(os.path.join(out, "gt.json"), "w") as f:
        json.dump(gt, f)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f)
    print(f"{len(videos)} videos, {len(anns)} ground-truth tracks, {len(res)} results → {out}")


def evaluate(gt_path, res_path):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    with open(gt_path) as f:
        gt = json.load(f)
    with open(res_path) as f:
        res = json.load(f)
    size = {v["id"]: (v["height"], v["width"]) for v in gt["videos"]}

    def enc(seg, vid):
        h, w = size[vid]
        if seg is None:
            return None
        if isinstance(seg["counts"], str):  # compressed RLE is used as it is (ytvos annToRLE)
            return {"size": seg["size"], "counts": seg["counts"].encode()}
        return mask_utils.frPyObjects(seg, h, w)

    def mean_nonzero(areas):
        nz = [a for a in areas if a]
        return np.array(nz).mean() if nz else 0

    gt_anns = [{"id": a["id"], "image_id": a["video_id"], "category_id": a["category_id"], "iscrowd": a.get("iscrowd", 0),
                "segs": [enc(s, a["video_id"]) for s in a["segmentations"]], "area": mean_nonzero(a["areas"])} for a in gt["annotations"]]
    dt_anns = []
    for i, r in enumerate(res):
        segs = [enc(s, r["video_id"]) for s in r["segmentations"]]
        dt_anns.append({"id": i + 1, "image_id": r["video_id"], "category_id": r["category_id"], "iscrowd": 0, "score": r["score"],
                        "segs": segs, "area": mean_nonzero([mask_utils.area(s) if s is not None else None for s in segs])})

    def coco(anns):
        c = COCO()
        c.dataset = {"images": [{"id": v["id"]} for v in gt["videos"]], "categories": gt["categories"], "annotations": anns}
        with contextlib.redirect_stdout(io.StringIO()):
            c.createIndex()
        return c

    E = l2g.spatio_temporal_eval_class()(coco(gt_anns), coco(dt_anns), iouType="bbox")
    E.params.areaRng = l2g.YTVIS_AREA_RANGES
    with contextlib.redirect_stdout(io.StringIO()):
        E.evaluate()
        E.accumulate()
        E.summarize()
    prec = E.eval["precision"]
    cats = []
    for k, cid in enumerate(E.params.catIds):
        ap = []
        for t in range(prec.shape[0]):
            s = prec[t, :, k, 0, 2]
            ap.append(float(np.mean(s[s > -1])) if len(s[s > -1]) else -1.0)
        cats.append({"id": int(cid), "ap_per_iou_threshold": ap})
    names = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
    stats = [float(x) for x in E.stats]
    return {"stats": dict(zip(names, stats)), "stats_list": stats, "iou_thresholds": [float(x) for x in E.params.iouThrs],
            "recall_thresholds": [float(x) for x in E.params.recThrs], "categories": cats}


def flatten(o, prefix=""):
    if isinstance(o, dict):
        for k in sorted(o):
            yield from flatten(o[k], f"{prefix}.{k}" if prefix else k)
    elif isinstance(o, list):
        for i, x in enumerate(o):
            yield from flatten(x, f"{prefix}[{i}]")
    else:
        yield prefix, o


def compare(a_path, b_path):
    with open(a_path) as f:
        a = dict(flatten(json.load(f)))
    with open(b_path) as f:
        b = dict(flatten(json.load(f)))
    diffs = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k) or type(a.get(k)) is not type(b.get(k)) and float(a.get(k, 0)) != float(b.get(k, 0))]
    diffs = [k for k in sorted(set(a) | set(b)) if k not in a or k not in b or float(a[k]) != float(b[k])]
    for k in diffs[:20]:
        print(f"differs: {k}: {a.get(k)!r} vs {b.get(k)!r}")
    print(f"{len(a)} numbers compared bit for bit: {len(diffs)} differ")
    return 1 if diffs else 0


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "make":
        seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 2025
        make(sys.argv[2], seed)
    elif cmd == "eval":
        t0 = time.perf_counter()
        out = evaluate(sys.argv[2], sys.argv[3])
        with open(sys.argv[4], "w") as f:
            json.dump(out, f, indent=1)
        print(f"reference evaluation: {time.perf_counter() - t0:.3f} s")
    elif cmd == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
