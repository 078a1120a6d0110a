#!/usr/bin/python3
"""Reference generator for the certified op library (protocols/core/*.yaml), with PyTorch in Float64.

usage: /usr/bin/python3 golden/generate/core.py [--out DIR] [PROTOCOL-ID ...]

Each op is one function registered with @op(<protocol id>). It receives the case entry from the
protocol and a seeded NumPy Generator, and returns (inputs, params, fn, grad_names): fn maps
torch tensors (inputs and params by name) to a dict of output tensors. The shared driver draws
cotangents and computes gradients with torch.autograd.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import OPS, op, run_main, torch_generator  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

def normal(rng, shape, scale=1.0):
    return rng.standard_normal(shape) * scale


@op("core.matmul")
def matmul(case, rng):
    a = normal(rng, case["inputs"]["a"])
    b = normal(rng, case["inputs"]["b"])
    return {"a": a, "b": b}, {}, lambda a, b: {"c": torch.matmul(a, b)}, ["a", "b"]


@op("core.softmax")
def softmax(case, rng):
    x = normal(rng, case["inputs"]["x"], case.get("scale", 1.0))
    axis = int(case["params"]["axis"])
    return {"x": x}, {"axis": np.int64(axis)}, lambda x, axis: {"y": torch.softmax(x, dim=int(axis))}, ["x"]


# Further ops live in sibling modules that register with @op on import.
for extra in ("core_ops",):
    if os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)), extra + ".py")):
        __import__(extra)


generate = torch_generator(torch, "golden/generate/core.py")


if __name__ == "__main__":
    run_main("core.py", generate)
