#!/usr/bin/python3
"""Converts a LAVA PyTorch checkpoint (.pt) into the HDF5 layout Certify reads (the layout of ../shared/fixtures/lava):
one dataset per state-dict tensor at the root of the file, named exactly as in the state dict ("encoder.0.weight",
"classifier.4.bias", ...), stored with the checkpoint's dtype (float32 weights, int64 num_batches_tracked), plus the
file attributes `layout`, `source` and `licence`.

usage: /usr/bin/python3 golden/generate/lava_convert.py CHECKPOINT.pt OUT.h5 [--kind ada|admr|autoencoder] [--source TEXT]

The released checkpoints are models/ADA_model.pt, models/ADMR_model.pt and models/autoencoder.pt of
github.com/adipiz99/LAVA-framework (MIT). With --kind the converter checks that every tensor the official architecture needs
is there with its shape, and names the first missing or wrongly shaped one. Then `certify lava classify --fixtures DIR`
(or $CERTIFY_LAVA_FIXTURES=DIR) uses DIR/ADA_model.h5 and DIR/ADMR_model.h5.
"""
import argparse
import os
import sys

import h5py
import numpy as np

LAYOUT = "PyTorch state_dict; Conv1d weight [out,in,k]; ConvTranspose1d weight [in,out,k]; BatchNorm eps 1e-5"
CHANNELS = [1, 32, 64, 128, 256]


def expected_shapes(kind):
    out = {}
    for i, (c, b) in enumerate(zip((0, 3, 6, 9), (1, 4, 7, 10))):
        out[f"encoder.{c}.weight"] = (CHANNELS[i + 1], CHANNELS[i], 9)
        out[f"encoder.{c}.bias"] = (CHANNELS[i + 1],)
        for k in ("weight", "bias", "running_mean", "running_var"):
            out[f"encoder.{b}.{k}"] = (CHANNELS[i + 1],)
    if kind == "autoencoder":
        for j, (c, b) in enumerate(zip((0, 3, 6), (1, 4, 7))):
            cin, cout = CHANNELS[4 - j], CHANNELS[3 - j]
            out[f"decoder.{c}.weight"] = (cin, cout, 9)
            out[f"decoder.{c}.bias"] = (cout,)
            for k in ("weight", "bias", "running_mean", "running_var"):
                out[f"decoder.{b}.{k}"] = (cout,)
        out["decoder.10.weight"] = (CHANNELS[1], 1, 9)
        out["decoder.10.bias"] = (1,)
    else:
        k = 3 if kind == "ada" else 6
        out.update({"attention.0.weight": (256, 256, 1), "attention.0.bias": (256,), "classifier.2.weight": (128, 256),
                    "classifier.2.bias": (128,), "classifier.4.weight": (k, 128), "classifier.4.bias": (k,)})
    return out


def load_state_dict(path):
    import torch
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # a PyTorch without weights_only
        obj = torch.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001 — a pickle that is not a plain state dict, or not a checkpoint at all
        sys.exit(f"lava_convert.py: error: {path}: cannot read a state dict ({type(e).__name__}: {e}); "
                 "expected a PyTorch checkpoint saved with torch.save(model.state_dict(), ...)")
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(hasattr(v, "numpy") for v in obj.values()):
        sys.exit(f"lava_convert.py: error: {path}: expected a state dict (a mapping of names to tensors)")
    return {k: v.detach().cpu().numpy() for k, v in obj.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--kind", choices=["ada", "admr", "autoencoder"])
    ap.add_argument("--source", default=None, help="provenance text stored in the 'source' attribute")
    ap.add_argument("--licence", default="MIT, Copyright (c) 2025 Andrea Di Pierno")
    args = ap.parse_args()
    if not os.path.exists(args.checkpoint):
        sys.exit(f"lava_convert.py: error: {args.checkpoint}: file not found")
    sd = load_state_dict(args.checkpoint)
    if args.kind:
        for name, shape in expected_shapes(args.kind).items():
            if name not in sd:
                sys.exit(f"lava_convert.py: error: {args.checkpoint}: missing tensor '{name}' (the {args.kind} model needs shape {list(shape)})")
            if tuple(sd[name].shape) != shape:
                sys.exit(f"lava_convert.py: error: {args.checkpoint}: tensor '{name}' has shape {list(sd[name].shape)}, "
                         f"the {args.kind} model needs {list(shape)}")
    tmp = args.out + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["layout"] = LAYOUT
        f.attrs["source"] = args.source or os.path.basename(args.checkpoint)
        f.attrs["licence"] = args.licence
        for name in sorted(sd):
            f.create_dataset(name, data=np.asarray(sd[name]))
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: {len(sd)} tensors")


if __name__ == "__main__":
    main()
