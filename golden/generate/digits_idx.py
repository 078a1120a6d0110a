#!/usr/bin/python3
"""Exports scikit-learn's bundled handwritten digits (sklearn.datasets.load_digits: 1797 images of 8×8
pixels, values 0..16, classes 0..9; UCI "Optical Recognition of Handwritten Digits", shipped inside
python3-sklearn, so no download) as MNIST-format IDX files, so that `certify audit --source DIR` builds
BlockMNIST from real handwritten digits, as the paper's BlockMNIST does.

usage: /usr/bin/python3 golden/generate/digits_idx.py [--out DIR]   (default docs/input_gradients/data/sklearn-digits)

Certify's choices (documented in docs/input_gradients/README.md):
  - pixel value v/16 in [0, 1], stored as uint8 round(255·v/16);
  - each 8×8 image upscaled 3× by pixel replication (nearest neighbour, no interpolation) to 24×24 and
    centred in a 28×28 zero image (2-pixel border), the size of MNIST and of Certify's BlockMNIST blocks, so
    the default null block (outline rows/cols 9..18) fits unchanged;
  - split in the data set's order: the first 1437 images (80 %) are the training split, the last 360 the test split;
  - gzip with mtime 0, so the files are byte-reproducible.
"""
import argparse
import gzip
import os
import struct
import sys

import numpy as np
from sklearn.datasets import load_digits

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
N_TRAIN = 1437
SCALE, SIZE = 3, 28


def upscale(images):
    """[n, 8, 8] values 0..16 → [n, 28, 28] uint8."""
    up = np.repeat(np.repeat(images, SCALE, axis=1), SCALE, axis=2)  # [n, 24, 24]
    pad = (SIZE - up.shape[1]) // 2
    out = np.zeros((images.shape[0], SIZE, SIZE))
    out[:, pad:pad + up.shape[1], pad:pad + up.shape[2]] = up
    return np.rint(255.0 * out / 16.0).astype(np.uint8)


def write_idx(path, array):
    dims = array.shape
    header = struct.pack(">BBBB", 0, 0, 0x08, len(dims)) + b"".join(struct.pack(">I", d) for d in dims)
    with open(path + ".tmp", "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as g:
            g.write(header + array.astype(np.uint8).tobytes())
    os.replace(path + ".tmp", path)
    print(f"wrote {os.path.relpath(path, ROOT)} {list(dims)}")


def main(argv):
    ap = argparse.ArgumentParser(prog="digits_idx.py")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "input_gradients", "data", "sklearn-digits"))
    args = ap.parse_args(argv)
    d = load_digits()
    images = d.images.astype(np.float64)
    assert images.shape[1:] == (8, 8) and images.min() >= 0 and images.max() <= 16
    x = upscale(images)
    y = d.target.astype(np.uint8)
    os.makedirs(args.out, exist_ok=True)
    for stem, sl in (("train", slice(0, N_TRAIN)), ("t10k", slice(N_TRAIN, None))):
        write_idx(os.path.join(args.out, f"{stem}-images-idx3-ubyte.gz"), x[sl])
        write_idx(os.path.join(args.out, f"{stem}-labels-idx1-ubyte.gz"), y[sl])
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write("# scikit-learn digits as MNIST-format IDX files\n\n"
                "Written by `golden/generate/digits_idx.py` from `sklearn.datasets.load_digits` "
                f"(scikit-learn {__import__('sklearn').__version__}, 1797 handwritten digits, 8×8, values 0..16).\n"
                "Certify's choices: pixel v/16 stored as uint8 round(255·v/16); 3× pixel replication to 24×24, centred in 28×28 "
                f"(2-pixel zero border); the first {N_TRAIN} images are `train-*`, the last {len(y) - N_TRAIN} `t10k-*`.\n\n"
                "    certify audit --method gradient --source docs/input_gradients/data/sklearn-digits --classes all ...\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
