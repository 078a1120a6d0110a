"""Shared machinery for Certify's independent reference generators.

Every generator reads the protocol YAML (the single source of truth for cases), draws its
inputs with NumPy's PCG64 seeded from the protocol id and case name (so goldens never depend on
PyTorch's RNG stream), computes outputs with the reference library (PyTorch / SciPy /
scikit-learn) in Float64, and writes golden/<paper>/<method>.h5 with provenance attributes.

A golden is never written from Certify's own output.

Layout: file attributes protocol, generator, reference, seed; one group per case with
inputs/, params/, outputs/ and, where gradients are certified, cotangents/ and grads/
(gradients of sum(outputs * cotangents) with respect to the named inputs and params).
"""
import hashlib
import os
import sys
import zlib

import h5py
import numpy as np
import yaml

# Generators register one function per protocol id here (see core.py for the contract).
OPS = {}


def deterministic_torch():
    """PyTorch, imported on first use, single-threaded and with deterministic algorithms (every generator's setting)."""
    import torch
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    return torch


def op(pid):
    def register(fn):
        OPS[pid] = fn
        return fn
    return register


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def library_versions(*names):
    out = [f"python {sys.version.split()[0]}", f"numpy {np.__version__}", f"h5py {h5py.__version__}"]
    for n in names:
        mod = __import__(n)
        out.append(f"{n} {mod.__version__}")
    return ", ".join(out)


def load_protocol(pid):
    paper, method = pid.split(".", 1)
    path = os.path.join(ROOT, "protocols", paper, method + ".yaml")
    with open(path) as f:
        return yaml.safe_load(f)


def case_seed(pid, case_name):
    """A stable 32-bit seed from the protocol id and case name (CRC32; independent of Python's hash)."""
    return zlib.crc32(f"{pid}/{case_name}".encode())


def rng_for(pid, case_name):
    return np.random.Generator(np.random.PCG64(case_seed(pid, case_name)))


def write_value(group, name, value):
    """Writes a NumPy array / scalar / bool / int with an explicit dtype."""
    if isinstance(value, bool) or (isinstance(value, np.ndarray) and value.dtype == np.bool_):
        group.create_dataset(name, data=np.asarray(value, dtype=np.bool_))
    elif isinstance(value, (int, np.integer)) or (isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.integer)):
        group.create_dataset(name, data=np.asarray(value, dtype=np.int64))
    elif isinstance(value, str):
        group.create_dataset(name, data=value, dtype=h5py.string_dtype())
    else:
        group.create_dataset(name, data=np.asarray(value, dtype=np.float64))


class GoldenWriter:
    """Opens golden/<paper>/<method>.h5 (or the same path under out_root) and writes provenance."""

    def __init__(self, pid, out_root, generator, reference):
        self.pid = pid
        self.protocol = load_protocol(pid)
        rel = self.protocol["golden"]
        self.path = os.path.join(out_root, os.path.relpath(rel, "golden"))
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = self.path + ".tmp"
        self.file = h5py.File(tmp, "w", track_order=False)
        self.tmp = tmp
        self.file.attrs["protocol"] = pid
        self.file.attrs["generator"] = generator
        self.file.attrs["reference"] = reference
        self.file.attrs["seed"] = "numpy PCG64(crc32('<protocol id>/<case name>')) per case"

    def case(self, name, inputs, params, outputs, cotangents=None, grads=None, attrs=None):
        g = self.file.create_group(name)
        g.attrs["seed"] = np.int64(case_seed(self.pid, name))
        for k, v in (attrs or {}).items():
            g.attrs[k] = v
        for section, values in (("inputs", inputs), ("params", params), ("outputs", outputs),
                                ("cotangents", cotangents), ("grads", grads)):
            if values is None:
                continue
            sg = g.create_group(section)
            for k, v in values.items():
                write_value(sg, k, v)

    def close(self):
        self.file.close()
        os.replace(self.tmp, self.path)
        print(f"wrote {self.path}")


def torch_grads(torch, fn, inputs, params, grad_names, rng):
    """Runs fn(**tensors) -> dict of output tensors; draws one cotangent per float output from rng and
    returns (outputs, cotangents, grads) as NumPy arrays. Gradients are of sum(out * cot)."""
    tensors = {}
    for k, v in {**inputs, **params}.items():
        if isinstance(v, np.ndarray) and v.dtype == np.float64:
            tensors[k] = torch.tensor(v, dtype=torch.float64, requires_grad=(k in grad_names))
        else:
            tensors[k] = v
    outs = fn(**tensors)
    np_outs = {k: v.detach().numpy().copy() if hasattr(v, "detach") else v for k, v in outs.items()}
    if not grad_names:
        return np_outs, None, None
    cots = {}
    total = None
    for k, v in outs.items():
        if hasattr(v, "requires_grad") and v.requires_grad:
            c = rng.standard_normal(v.shape)
            cots[k] = c
            term = (v * torch.tensor(c, dtype=torch.float64)).sum()
            total = term if total is None else total + term
    wrt = [tensors[n] for n in grad_names]
    gs = torch.autograd.grad(total, wrt, allow_unused=True)
    grads = {n: (g.numpy().copy() if g is not None else np.zeros(tensors[n].shape)) for n, g in zip(grad_names, gs)}
    return np_outs, cots, grads


def torch_generator(torch, generator):
    """generate(pid, out_root) for generators following the op contract: OPS[pid](case, rng) returns
    (inputs, params, fn, grad_names), and torch_grads draws cotangents and computes the gradients."""
    def generate(pid, out_root):
        proto = load_protocol(pid)
        w = GoldenWriter(pid, out_root, generator, library_versions("torch"))
        for case in proto["cases"]:
            rng = rng_for(pid, case["name"])
            inputs, params, fn, grad_names = OPS[pid](case, rng)
            outs, cots, grads = torch_grads(torch, fn, inputs, params, grad_names, rng)
            w.case(case["name"], inputs, params, outs, cots, grads)
        w.close()
    return generate


def run_main(script, generate, registry=None):
    """The command line every generator shares: <script> [--out DIR] [PROTOCOL-ID ...] (default: all it knows)."""
    import argparse
    registry = OPS if registry is None else registry
    ap = argparse.ArgumentParser(prog=script)
    ap.add_argument("--out", default=os.path.join(ROOT, "golden"))
    ap.add_argument("ids", nargs="*")
    args = ap.parse_args()
    for pid in args.ids or sorted(registry):
        if pid not in registry:
            sys.exit(f"{script}: no generator for protocol '{pid}'")
        generate(pid, args.out)
