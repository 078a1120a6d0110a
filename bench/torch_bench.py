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

import warnings  # noqa: E402

import torch  # noqa: E402

warnings.filterwarnings("ignore", message="scatter_reduce")
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


# ---- Op families the papers use (issue 17 §1) ----------------------------------------------------------------

L16K = 64000  # a 4 s waveform at 16 kHz (LAVA)


def conv1d_case(cin, cout, length):
    """LAVA encoder block conv: Conv1d(cin → cout, k 9, stride 2, padding 4) on [1, cin, length]."""
    def make():
        g = torch.Generator().manual_seed(6)
        inputs = [randn(1, cin, length, gen=g), randn(cout, cin, 9, scale=1 / math.sqrt(cin * 9), gen=g),
                  randn(cout, scale=0.1, gen=g)]
        return fwd_bwd(inputs, lambda v: [F.conv1d(v[0], v[1], v[2], stride=2, padding=4)])
    return make


def conv_transpose1d_case(cin, cout, length):
    """LAVA decoder block: ConvTranspose1d(cin → cout, k 9, stride 2, padding 4, output_padding 1) on [1, cin, length]."""
    def make():
        g = torch.Generator().manual_seed(7)
        inputs = [randn(1, cin, length, gen=g), randn(cin, cout, 9, scale=1 / math.sqrt(cin * 9), gen=g),
                  randn(cout, scale=0.1, gen=g)]
        return fwd_bwd(inputs, lambda v: [F.conv_transpose1d(v[0], v[1], v[2], stride=2, padding=4, output_padding=1)])
    return make


def instance_norm_case():
    g = torch.Generator().manual_seed(8)
    return fwd_bwd([randn(2, 64, 256, 256, gen=g)], lambda v: [F.instance_norm(v[0], eps=1e-5)])


def layer_norm_case():
    g = torch.Generator().manual_seed(9)
    inputs = [randn(16, 128, 256, gen=g), randn(256, scale=0.1, gen=g) + 1, randn(256, scale=0.1, gen=g)]
    return fwd_bwd(inputs, lambda v: [F.layer_norm(v[0], (256,), v[1], v[2], eps=1e-5)])


def adaptive_avg_pool_case():
    g = torch.Generator().manual_seed(10)
    return fwd_bwd([randn(2, 128, 128, 128, gen=g)], lambda v: [F.adaptive_avg_pool2d(v[0], 32)])


def bilinear_case():
    g = torch.Generator().manual_seed(11)
    return fwd_bwd([randn(2, 64, 64, 64, gen=g)],
                   lambda v: [F.interpolate(v[0], size=(256, 256), mode="bilinear", align_corners=False)])


N_NODES, N_EDGES = 10000, 100000


def edge_index(g):
    return torch.randint(0, N_NODES, (N_EDGES,), generator=g)


def gather_case():
    g = torch.Generator().manual_seed(12)
    x, idx = randn(N_NODES, 64, gen=g), edge_index(g)
    return fwd_bwd([x], lambda v: [v[0].index_select(0, idx)])


def scatter_add_case():
    g = torch.Generator().manual_seed(13)
    src, idx = randn(N_EDGES, 64, gen=g), edge_index(g)
    full = idx.view(-1, 1).expand(-1, 64)
    return fwd_bwd([src], lambda v: [torch.zeros(N_NODES, 64, dtype=F64).scatter_add(0, full, v[0])])


def segment_softmax(src, index, num_nodes):
    """torch_geometric.utils.softmax(src, index, num_nodes=N) of PyG 2.4 in plain torch: the same scatter calls PyG
    makes on torch ≥ 1.12 (scatter_reduce 'amax' of the detached scores, exp, scatter_add, + 1e-16, divide)."""
    full = index.view(-1, 1).expand_as(src)
    m = torch.zeros(num_nodes, src.shape[1], dtype=src.dtype).scatter_reduce(0, full, src.detach(), "amax", include_self=False)
    out = (src - m.index_select(0, index)).exp()
    s = torch.zeros(num_nodes, src.shape[1], dtype=src.dtype).scatter_add(0, full, out) + 1e-16
    return out / s.index_select(0, index)


def segment_softmax_case():
    g = torch.Generator().manual_seed(14)
    scores, idx = randn(N_EDGES, 8, gen=g), edge_index(g)
    return fwd_bwd([scores], lambda v: [segment_softmax(v[0], idx, N_NODES)])


def cross_entropy_case():
    g = torch.Generator().manual_seed(15)
    logits, target = randn(4096, 10, gen=g), torch.randint(0, 10, (4096,), generator=g)
    return fwd_bwd([logits], lambda v: [F.cross_entropy(v[0], target)])


ADAM_SHAPES = [(512, 1568), (512,), (384, 512), (384,), (10, 384), (10,)]  # an MLP 1568-512-384-10: 1,004,170 parameters


def adam_case():
    """One torch.optim.Adam step (lr 1e-3, defaults) on a 1 M-parameter model, gradients given; no forward/backward."""
    g = torch.Generator().manual_seed(16)
    params = [torch.nn.Parameter(randn(*s, scale=0.05, gen=g)) for s in ADAM_SHAPES]
    for p in params:
        p.grad = randn(*p.shape, scale=0.01, gen=g)
    opt = torch.optim.Adam(params, lr=1e-3)

    def run():
        with torch.no_grad():
            opt.step()
    return run


# ---- End-to-end workloads (issue 17 §1): timed whole, best of --e2e-repeats runs, no separate warm-up ------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def generators():
    sys.path.insert(0, os.path.join(ROOT, "golden", "generate"))


IADG_BATCH, IADG_SIZE, IADG_STYLES = 2, 256, 4  # one real and one fake image, 256×256


def iadg_case():
    """IADG training step (golden/generate/iadg.py network_reference: the whole loss of train.py) at the code's widths, batch 2
    at 256×256, then gradients w.r.t. every parameter."""
    generators()
    import iadg as I
    widths = [64, 128, 196, 128, 128, 256, 512, 128, 64]
    feat = 3 * widths[3]
    g = torch.Generator().manual_seed(17)
    P = {}
    for name, shp in I.network_param_shapes(widths).items():
        fan = math.prod(shp[1:]) if len(shp) > 1 else shp[0]
        P[name] = (randn(*shp, gen=g) * math.sqrt(2.0 / fan)).requires_grad_(True)
    b, s, L = IADG_BATCH, IADG_SIZE, IADG_STYLES
    x = torch.rand(b, 3, s, s, generator=g, dtype=F64) * 2 - 1
    labels = torch.tensor([0] * (b // 2) + [1] * (b - b // 2))
    depth = torch.rand(b, s // 8, s // 8, generator=g, dtype=F64)
    w = torch.rand(2, b, L, generator=g, dtype=F64)
    w = w / w.sum(-1, keepdim=True)
    protos = [torch.rand(L, feat, generator=g, dtype=F64), torch.rand(L, feat, generator=g, dtype=F64) * 0.5 + 0.05,
              torch.rand(L, feat, generator=g, dtype=F64), torch.rand(L, feat, generator=g, dtype=F64) * 0.5 + 0.05]
    iu = torch.triu_indices(feat, feat, 1)

    def mask(k):
        pick = torch.randperm(iu.shape[1], generator=g)[:k]
        m = torch.zeros(feat, feat, dtype=F64)
        m[iu[0, pick], iu[1, pick]] = 1
        return m
    mr, mf = mask(1000), mask(200)
    rm, rv = torch.zeros(feat, dtype=F64), torch.ones(feat, dtype=F64)
    leaves = list(P.values())

    def run():
        loss, _, _ = I.network_reference(torch, P, x, labels, depth, w, protos, mr, mf, rm, rv, [0.1, 1.0, 0.1, 1.0, 1.0])
        torch.autograd.grad(loss, leaves)
    return run


LAVA_SECONDS = 4.5


def lava_case():
    """LAVA's released ADA and ADMR models (eval mode, golden/generate/lava.py official_logits) on one 4.5 s waveform."""
    generators()
    import lava as LV
    d = os.environ.get("CERTIFY_LAVA_FIXTURES") or os.path.join(ROOT, "..", "shared", "fixtures", "lava")
    states = [LV.load_state(os.path.join(d, f)) for f in ("ADA_model.h5", "ADMR_model.h5")]
    Ps = [{n: torch.tensor(v) for n, v in st.items()} for st in states]
    n = torch.arange(int(16000 * LAVA_SECONDS), dtype=F64)
    x = (0.4 * torch.sin(2 * math.pi * 440 * n / 16000) + 0.05 * torch.randn(n.shape, generator=torch.Generator().manual_seed(18),
                                                                               dtype=F64)).reshape(1, 1, -1)

    def run():
        with torch.no_grad():
            for P in Ps:
                LV.torch_head(torch, LV.torch_encoder(torch, x, P, False, 0.1, {}), P, True)["logits"]
    return run


def diffroar_case():
    """One DiffROAR retraining (bench/audit_bench.py's train: MLP 1568-128-128-2, SGD lr 0.05 momentum 0.9, batch 128,
    4 epochs, cosine) on 12,000 images of BlockMNIST's shape (56×28; random pixels, random labels)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import audit_bench as A
    g = torch.Generator().manual_seed(19)
    x = torch.rand(12000, 1, 56, 28, generator=g, dtype=F64)
    y = torch.randint(0, 2, (12000,), generator=g)

    def run():
        torch.manual_seed(19)
        A.train(A.mlp([56 * 28, 128, 128, 2], F64), x, y, 4, 128, 0.05, 0.9, torch.Generator().manual_seed(19))
    return run


CASES = {
    "matmul_512x512x512": matmul_case,
    "conv2d_3x3_8x128x64x64_c128": conv_case,
    "depthwise_3x3_8x128x64x64": depthwise_case,
    "batch_norm_train_8x128x64x64": batch_norm_case,
    "mha_L100_S100_E256_H8_N1": mha_case,
    "conv1d_k9s2_1x1x64000_c32": conv1d_case(1, 32, L16K),
    "conv1d_k9s2_1x128x8000_c256": conv1d_case(128, 256, L16K // 8),
    "conv_transpose1d_k9s2_1x256x4000_c128": conv_transpose1d_case(256, 128, L16K // 16),
    "conv_transpose1d_k9s2_1x32x32000_c1": conv_transpose1d_case(32, 1, L16K // 2),
    "instance_norm_2x64x256x256": instance_norm_case,
    "layer_norm_16x128x256": layer_norm_case,
    "adaptive_avg_pool2d_2x128x128x128_to32": adaptive_avg_pool_case,
    "bilinear_2x64x64x64_to256": bilinear_case,
    "gather_rows_E100k_N10k_d64": gather_case,
    "scatter_add_E100k_N10k_d64": scatter_add_case,
    "segment_softmax_E100k_N10k_H8": segment_softmax_case,
    "cross_entropy_4096x10": cross_entropy_case,
    "adam_step_1M": adam_case,
}

# End-to-end cases: one run is seconds, so best of --e2e-repeats runs (the first included), no separate warm-up.
E2E_CASES = {
    "e2e_iadg_train_step_b2_256": iadg_case,
    "e2e_lava_ada_admr_4.5s": lava_case,
    "e2e_diffroar_retrain_mlp": diffroar_case,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-r", "--repeats", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=1.0,
                    help="keep repeating a case until this many seconds were spent on it (at most 1000 runs)")
    ap.add_argument("--e2e-repeats", type=int, default=2, help="timed runs of each end-to-end case (no warm-up)")
    ap.add_argument("--only", default=None, help="only cases whose name contains this string (several: separated by commas)")
    ap.add_argument("--list", action="store_true", help="print the case names, one a line, and exit")
    args = ap.parse_args()
    if args.list:
        for n in list(CASES) + list(E2E_CASES):
            if not args.only or any(part in n for part in args.only.split(",")):
                print(n)
        return
    results = {}
    for name, make in list(CASES.items()) + list(E2E_CASES.items()):
        if args.only and not any(part in name for part in args.only.split(",")):
            continue
        e2e = name in E2E_CASES
        run = make()
        if not e2e:
            run()  # warm-up
        best, spent, runs = math.inf, 0.0, 0
        while (runs < args.e2e_repeats) if e2e else (runs < args.repeats or (spent < args.min_time and runs < 1000)):
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
