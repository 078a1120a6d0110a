"""PyTorch side of `certify bench`: forward + backward of the same cases, Float64, one thread.

Each case builds its inputs once, then times one forward pass and torch.autograd.grad of
Σ outputs ⊙ cotangent with respect to every differentiable input: best of at least --repeats runs
and --min-time seconds after one warm-up. Prints JSON
{"torch": version, "threads": 1, "repeats": N, "results": {case: seconds}}.
Case names match Sources/CertifyCLI/Bench.swift.

    /usr/bin/python3 bench/torch_bench.py --repeats 5 > torch.json
"""
import argparse
import json
import math
import os
import sys
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)
F64 = torch.float64


def fwd_bwd(inputs, forward):
    """Returns one timed run: forward, then the gradients w.r.t. every input."""
    gen = torch.Generator().manual_seed(1)
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    with torch.no_grad():
        cots = [torch.randn(o.shape, generator=gen, dtype=F64) for o in forward(leaves)]

    def run():
        outs = forward(leaves)
        torch.autograd.grad(outs, leaves, cots)
    return run


def randn(*shape, scale=1.0, gen):
    return torch.randn(*shape, generator=gen, dtype=F64) * scale


def matmul_case():
    g = torch.Generator().manual_seed(2)
    return fwd_bwd([randn(512, 512, gen=g), randn(512, 512, gen=g)], lambda v: [v[0] @ v[1]])


def conv_inputs(groups):
    g = torch.Generator().manual_seed(4)
    x = randn(8, 128, 64, 64, gen=g)
    cin = 128 // groups
    w = randn(128, cin, 3, 3, scale=1 / math.sqrt(cin * 9), gen=g)
    b = randn(128, scale=0.1, gen=g)
    return [x, w, b]


def conv_case():
    return fwd_bwd(conv_inputs(1), lambda v: [F.conv2d(v[0], v[1], v[2], stride=1, padding=1, dilation=1, groups=1)])


def depthwise_case():
    return fwd_bwd(conv_inputs(128), lambda v: [F.conv2d(v[0], v[1], v[2], stride=1, padding=1, dilation=1, groups=128)])


def batch_norm_case():
    g = torch.Generator().manual_seed(5)
    x = randn(8, 128, 64, 64, gen=g)
    rm, rv = torch.zeros(128, dtype=F64), torch.ones(128, dtype=F64)
    inputs = [x, randn(128, scale=0.1, gen=g) + 1, randn(128, scale=0.1, gen=g)]
    return fwd_bwd(inputs, lambda v: [F.batch_norm(v[0], rm, rv, v[1], v[2], training=True, momentum=0.1, eps=1e-5)])


def mha_case():
    g = torch.Generator().manual_seed(3)
    l, s, n, e, h = 100, 100, 1, 256, 8
    w = 1 / math.sqrt(e)
    inputs = [randn(l, n, e, gen=g), randn(s, n, e, gen=g), randn(s, n, e, gen=g),
              randn(3 * e, e, scale=w, gen=g), randn(3 * e, scale=0.1, gen=g),
              randn(e, e, scale=w, gen=g), randn(e, scale=0.1, gen=g)]

    def forward(v):
        out, _ = F.multi_head_attention_forward(
            v[0], v[1], v[2], e, h, v[3], v[4], None, None, False, 0.0, v[5], v[6], training=False,
            key_padding_mask=None, need_weights=True, attn_mask=None, average_attn_weights=True)
        return [out]
    return fwd_bwd(inputs, forward)


CASES = {
    "matmul_512x512x512": matmul_case,
    "conv2d_3x3_8x128x64x64_c128": conv_case,
    "depthwise_3x3_8x128x64x64": depthwise_case,
    "batch_norm_train_8x128x64x64": batch_norm_case,
    "mha_L100_S100_E256_H8_N1": mha_case,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-r", "--repeats", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=1.0,
                    help="keep repeating a case until this many seconds were spent on it (at most 1000 runs)")
    ap.add_argument("--only", default=None, help="only cases whose name contains this string")
    args = ap.parse_args()
    results = {}
    for name, make in CASES.items():
        if args.only and args.only not in name:
            continue
        run = make()
        run()  # warm-up
        best, spent, runs = math.inf, 0.0, 0
        while runs < args.repeats or (spent < args.min_time and runs < 1000):
            t0 = time.perf_counter()
            run()
            dt = time.perf_counter() - t0
            best, spent, runs = min(best, dt), spent + dt, runs + 1
        results[name] = best
        print(f"  {name}: {best:.4f} s", file=sys.stderr)
    json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "repeats": args.repeats,
               "results": results}, sys.stdout, indent=2, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
