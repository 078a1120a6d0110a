"""Reference generators for the rest of the certified op library (protocols/core/*.yaml).

Imported by core.py; same contract: each @op(<protocol id>) function receives the protocol case and
a seeded NumPy Generator and returns (inputs, params, fn, grad_names). Tensors are float64 NumPy
arrays, integers np.int64, flags Python bool; fn receives float64 arrays as torch tensors and every
other value unchanged, and returns a dict of output tensors computed by PyTorch (Float64).

Conventions shared by all ops here:
- learnable tensors (weight, bias, projection matrices) are params; state tensors (running stats,
  optimizer buffers) are inputs; optional tensors are simply absent when their flag is false;
- integer tuples (stride, padding, kernel_size, output size, ...) are int64 arrays, one entry per
  spatial axis;
- shapes of learnable tensors come from the case's `options` (out_features, out_channels,
  kernel_size) or are implied by the inputs;
- nothing depends on torch's RNG (dropout's keep-mask is an input drawn from the NumPy Generator).
"""
import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from common import op

F64 = torch.float64
warnings.filterwarnings("ignore", message="scatter_reduce\\(\\) is in beta")


# ---------------------------------------------------------------------------------------------
# helpers

def normal(rng, shape, scale=1.0):
    return rng.standard_normal(shape) * scale


def shp(case, name):
    return [int(s) for s in case["inputs"][name]]


def par(case, name, default=None):
    v = (case.get("params") or {}).get(name, default)
    if v is None:
        raise KeyError(f"case {case['name']}: missing param {name}")
    return v


def opt(case, name, default=None):
    return (case.get("options") or {}).get(name, default)


def i64s(v):
    return np.atleast_1d(np.asarray(v, dtype=np.int64))


def tup(a):
    return tuple(int(x) for x in np.atleast_1d(a))


def itensor(a):
    return torch.as_tensor(np.array(a, dtype=np.int64))


def with_zeros(rng, x, fraction):
    """Sets about `fraction` of the entries (at least one) to exact 0.0."""
    x = x.copy()
    flat = x.reshape(-1)
    z = rng.random(flat.shape) < fraction
    z[rng.integers(0, flat.size)] = True
    flat[z] = 0.0
    return x


def expand_index(idx, like, axis):
    """A rank-1 index along axis 0 is broadcast over the trailing axes of `like` (message passing)."""
    if idx.dim() == 1 and like.dim() > 1:
        assert axis == 0, "a rank-1 index broadcasts only along axis 0"
        return idx.view(-1, *([1] * (like.dim() - 1))).expand(idx.shape[0], *like.shape[1:])
    return idx


# ---------------------------------------------------------------------------------------------
# linear and convolutions

@op("core.linear")
def linear(case, rng):
    xs = shp(case, "x")
    fin, fout = xs[-1], int(opt(case, "out_features"))
    has_bias = bool(par(case, "has_bias"))
    s = 1.0 / math.sqrt(fin)
    inputs = {"x": normal(rng, xs, case.get("scale", 1.0))}
    params = {"has_bias": has_bias, "weight": normal(rng, [fout, fin], s)}
    if has_bias:
        params["bias"] = normal(rng, [fout], s)

    def fn(x, weight, has_bias, bias=None):
        return {"y": F.linear(x, weight, bias)}
    return inputs, params, fn, ["x", "weight"] + (["bias"] if has_bias else [])


def _conv(case, rng, nd, transpose):
    xs = shp(case, "x")
    cin = xs[1]
    cout = int(opt(case, "out_channels"))
    k = [int(v) for v in np.atleast_1d(opt(case, "kernel_size"))]
    assert len(k) == nd and len(xs) == nd + 2
    groups = int(par(case, "groups", 1))
    has_bias = bool(par(case, "has_bias"))
    params = {"stride": i64s(par(case, "stride")), "padding": i64s(par(case, "padding")),
              "dilation": i64s(par(case, "dilation", [1] * nd)), "groups": np.int64(groups),
              "has_bias": has_bias}
    if transpose:
        params["output_padding"] = i64s(par(case, "output_padding"))
        wshape = [cin, cout // groups] + k
        fan = cin // groups * int(np.prod(k))
    else:
        wshape = [cout, cin // groups] + k
        fan = cin // groups * int(np.prod(k))
    s = 1.0 / math.sqrt(fan)
    inputs = {"x": normal(rng, xs, case.get("scale", 1.0))}
    params["weight"] = normal(rng, wshape, s)
    if has_bias:
        params["bias"] = normal(rng, [cout], s)
    conv = {1: F.conv1d, 2: F.conv2d}[nd]

    def fn(x, weight, stride, padding, dilation, groups, has_bias, output_padding=None, bias=None):
        if transpose:
            return {"y": F.conv_transpose1d(x, weight, bias, stride=tup(stride), padding=tup(padding),
                                            output_padding=tup(output_padding), groups=int(groups),
                                            dilation=tup(dilation))}
        return {"y": conv(x, weight, bias, stride=tup(stride), padding=tup(padding),
                          dilation=tup(dilation), groups=int(groups))}
    return inputs, params, fn, ["x", "weight"] + (["bias"] if has_bias else [])


@op("core.conv1d")
def conv1d(case, rng):
    return _conv(case, rng, 1, False)


@op("core.conv2d")
def conv2d(case, rng):
    return _conv(case, rng, 2, False)


@op("core.conv_transpose1d")
def conv_transpose1d(case, rng):
    return _conv(case, rng, 1, True)


# ---------------------------------------------------------------------------------------------
# pooling and resampling

@op("core.max_pool2d")
def max_pool2d(case, rng):
    x = normal(rng, shp(case, "x"), case.get("scale", 1.0))
    params = {"kernel_size": i64s(par(case, "kernel_size")), "stride": i64s(par(case, "stride")),
              "padding": i64s(par(case, "padding")), "ceil_mode": bool(par(case, "ceil_mode", False))}

    def fn(x, kernel_size, stride, padding, ceil_mode):
        return {"y": F.max_pool2d(x, tup(kernel_size), tup(stride), tup(padding), ceil_mode=bool(ceil_mode))}
    return {"x": x}, params, fn, ["x"]


@op("core.avg_pool2d")
def avg_pool2d(case, rng):
    x = normal(rng, shp(case, "x"), case.get("scale", 1.0))
    params = {"kernel_size": i64s(par(case, "kernel_size")), "stride": i64s(par(case, "stride")),
              "padding": i64s(par(case, "padding")),
              "count_include_pad": bool(par(case, "count_include_pad", True))}

    def fn(x, kernel_size, stride, padding, count_include_pad):
        return {"y": F.avg_pool2d(x, tup(kernel_size), tup(stride), tup(padding), ceil_mode=False,
                                  count_include_pad=bool(count_include_pad))}
    return {"x": x}, params, fn, ["x"]


@op("core.adaptive_avg_pool1d")
def adaptive_avg_pool1d(case, rng):
    x = normal(rng, shp(case, "x"))
    params = {"output_size": i64s(par(case, "output_size"))}

    def fn(x, output_size):
        return {"y": F.adaptive_avg_pool1d(x, tup(output_size))}
    return {"x": x}, params, fn, ["x"]


@op("core.adaptive_avg_pool2d")
def adaptive_avg_pool2d(case, rng):
    x = normal(rng, shp(case, "x"))
    params = {"output_size": i64s(par(case, "output_size"))}

    def fn(x, output_size):
        return {"y": F.adaptive_avg_pool2d(x, tup(output_size))}
    return {"x": x}, params, fn, ["x"]


@op("core.interpolate_bilinear")
def interpolate_bilinear(case, rng):
    x = normal(rng, shp(case, "x"))
    params = {"size": i64s(par(case, "size")), "align_corners": bool(par(case, "align_corners", False))}

    def fn(x, size, align_corners):
        return {"y": F.interpolate(x, size=tup(size), mode="bilinear", align_corners=bool(align_corners))}
    return {"x": x}, params, fn, ["x"]


@op("core.interpolate_nearest")
def interpolate_nearest(case, rng):
    x = normal(rng, shp(case, "x"))
    params = {"size": i64s(par(case, "size"))}

    xs = x.shape
    assert x.ndim == 3 or xs[1] >= 2 or xs[2] * xs[3] == 1, "2-D cases need C >= 2 (C = 1 takes ATen's channels-last kernel)"

    def fn(x, size):
        y = F.interpolate(x, size=tup(size), mode="nearest")
        # guard: the documented rule (generic ATen kernel) must reproduce PyTorch's result exactly
        idx = [np.minimum(np.floor((np.arange(o) * (n / o)).astype(np.float32)).astype(np.int64), n - 1)
               for n, o in zip(x.shape[2:], tup(size))]
        xn = x.detach().numpy()
        assert np.array_equal(xn[np.ix_(range(xs[0]), range(xs[1]), *idx)], y.detach().numpy())
        # PyTorch's CPU nearest *backward* forms the index with a Float32 scale, so for 26 -> 22 it
        # routes dst 11 to src 12 although the forward reads src 13: its gradient is not the adjoint
        # of its forward. The golden gradient is therefore taken through the same forward expressed
        # as torch advanced indexing (exactly equal output, asserted above), whose backward is the
        # true adjoint (index_put with accumulation).
        ix = [torch.tensor(i) for i in idx]
        if len(ix) == 1:
            yg = x[:, :, ix[0]]
        else:
            yg = x[:, :, ix[0][:, None], ix[1][None, :]]
        assert torch.equal(yg.detach(), y.detach())
        return {"y": yg}
    return {"x": x}, params, fn, ["x"]


# ---------------------------------------------------------------------------------------------
# normalisation

def _affine(rng, params, flag, c_shape):
    if flag:
        params["weight"] = 1.0 + normal(rng, c_shape, 0.3)
        params["bias"] = normal(rng, c_shape, 0.3)
        return ["weight", "bias"]
    return []


@op("core.instance_norm")
def instance_norm(case, rng):
    xs = shp(case, "x")
    x = normal(rng, xs, case.get("scale", 1.0)) + case.get("options", {}).get("offset", 0.0)
    affine = bool(par(case, "affine"))
    params = {"eps": np.float64(par(case, "eps")), "affine": affine}
    g = _affine(rng, params, affine, [xs[1]])

    def fn(x, eps, affine, weight=None, bias=None):
        return {"y": F.instance_norm(x, weight=weight, bias=bias, use_input_stats=True, eps=float(eps))}
    return {"x": x}, params, fn, ["x"] + g


def _running(rng, c):
    return normal(rng, [c], 0.5), rng.uniform(0.5, 2.0, [c])


@op("core.batch_norm_train")
def batch_norm_train(case, rng):
    xs = shp(case, "x")
    x = normal(rng, xs, case.get("scale", 1.0))
    rm, rv = _running(rng, xs[1])
    affine = bool(par(case, "affine"))
    params = {"momentum": np.float64(par(case, "momentum")), "eps": np.float64(par(case, "eps")),
              "affine": affine}
    g = _affine(rng, params, affine, [xs[1]])

    def fn(x, running_mean, running_var, momentum, eps, affine, weight=None, bias=None):
        rm, rv = running_mean.clone(), running_var.clone()
        y = F.batch_norm(x, rm, rv, weight, bias, training=True, momentum=float(momentum), eps=float(eps))
        return {"y": y, "running_mean": rm, "running_var": rv}
    return {"x": x, "running_mean": rm, "running_var": rv}, params, fn, ["x"] + g


@op("core.batch_norm_eval")
def batch_norm_eval(case, rng):
    xs = shp(case, "x")
    x = normal(rng, xs, case.get("scale", 1.0))
    rm, rv = _running(rng, xs[1])
    affine = bool(par(case, "affine"))
    params = {"eps": np.float64(par(case, "eps")), "affine": affine}
    g = _affine(rng, params, affine, [xs[1]])

    def fn(x, running_mean, running_var, eps, affine, weight=None, bias=None):
        return {"y": F.batch_norm(x, running_mean, running_var, weight, bias, training=False, eps=float(eps))}
    return {"x": x, "running_mean": rm, "running_var": rv}, params, fn, ["x"] + g


@op("core.layer_norm")
def layer_norm(case, rng):
    xs = shp(case, "x")
    x = normal(rng, xs, case.get("scale", 1.0)) + case.get("options", {}).get("offset", 0.0)
    ns = i64s(par(case, "normalized_shape"))
    affine = bool(par(case, "elementwise_affine"))
    params = {"normalized_shape": ns, "eps": np.float64(par(case, "eps")), "elementwise_affine": affine}
    g = _affine(rng, params, affine, list(ns))

    def fn(x, normalized_shape, eps, elementwise_affine, weight=None, bias=None):
        return {"y": F.layer_norm(x, tup(normalized_shape), weight, bias, float(eps))}
    return {"x": x}, params, fn, ["x"] + g


# ---------------------------------------------------------------------------------------------
# activations

def _act_input(case, rng):
    x = normal(rng, shp(case, "x"), case.get("scale", 1.0))
    if opt(case, "zeros", False):
        x = with_zeros(rng, x, 0.2)
    return x


@op("core.relu")
def relu(case, rng):
    return {"x": _act_input(case, rng)}, {}, lambda x: {"y": F.relu(x)}, ["x"]


@op("core.leaky_relu")
def leaky_relu(case, rng):
    x = _act_input(case, rng)
    params = {"negative_slope": np.float64(par(case, "negative_slope"))}

    def fn(x, negative_slope):
        return {"y": F.leaky_relu(x, float(negative_slope))}
    return {"x": x}, params, fn, ["x"]


@op("core.sigmoid")
def sigmoid(case, rng):
    return {"x": _act_input(case, rng)}, {}, lambda x: {"y": torch.sigmoid(x)}, ["x"]


@op("core.tanh")
def tanh(case, rng):
    return {"x": _act_input(case, rng)}, {}, lambda x: {"y": torch.tanh(x)}, ["x"]


@op("core.gelu")
def gelu(case, rng):
    x = _act_input(case, rng)
    params = {"tanh_approx": np.int64(par(case, "tanh_approx"))}

    def fn(x, tanh_approx):
        return {"y": F.gelu(x, approximate="tanh" if int(tanh_approx) else "none")}
    return {"x": x}, params, fn, ["x"]


@op("core.softplus")
def softplus(case, rng):
    x = _act_input(case, rng)
    beta, threshold = float(par(case, "beta")), float(par(case, "threshold"))
    if opt(case, "at_threshold", False):
        # entries with beta*x exactly at and just either side of the threshold
        flat = x.reshape(-1)
        t = threshold / beta
        flat[:3] = [t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf)]
    params = {"beta": np.float64(beta), "threshold": np.float64(threshold)}

    def fn(x, beta, threshold):
        return {"y": F.softplus(x, beta=float(beta), threshold=float(threshold))}
    return {"x": x}, params, fn, ["x"]


@op("core.dropout")
def dropout(case, rng):
    xs = shp(case, "x")
    p = float(par(case, "p"))
    train = bool(par(case, "train"))
    x = normal(rng, xs)
    mask = (rng.random(xs) >= p).astype(np.float64)

    def fn(x, mask, p, train):
        # torch's _dropout_impl: noise = bernoulli(1 - p) / (1 - p); y = x * noise (eval: y = x)
        if not train:
            return {"y": F.dropout(x, float(p), training=False)}
        return {"y": x * (mask / (1.0 - float(p)))}
    return {"x": x, "mask": mask}, {"p": np.float64(p), "train": train}, fn, ["x"]


@op("core.log_softmax")
def log_softmax(case, rng):
    x = normal(rng, shp(case, "x"), case.get("scale", 1.0))
    axis = int(par(case, "axis"))
    return {"x": x}, {"axis": np.int64(axis)}, lambda x, axis: {"y": F.log_softmax(x, dim=int(axis))}, ["x"]


# ---------------------------------------------------------------------------------------------
# graph ops

@op("core.segment_softmax")
def segment_softmax(case, rng):
    ss = shp(case, "scores")
    e = ss[0]
    n = int(par(case, "num_nodes"))
    assert n >= 2
    # node 0 receives no edge, node 1 exactly one; the rest are drawn from 2..n-1
    idx = np.concatenate([[1], rng.integers(2, n, size=e - 1) if n > 2 else np.ones(e - 1, np.int64)])
    idx = rng.permutation(idx).astype(np.int64)
    scores = normal(rng, ss, case.get("scale", 1.0))

    def fn(scores, index, num_nodes):
        index = itensor(index)
        size = (int(num_nodes),) + tuple(scores.shape[1:])
        ie = expand_index(index, scores, 0)
        # exactly torch_geometric.utils.softmax (torch-only path of torch_geometric.utils.scatter)
        smax = torch.zeros(size, dtype=F64).scatter_reduce(0, ie, scores.detach(), reduce="amax",
                                                             include_self=False)
        out = (scores - smax.index_select(0, index)).exp()
        ssum = torch.zeros(size, dtype=F64).scatter_add(0, ie, out) + 1e-16
        return {"out": out / ssum.index_select(0, index)}
    return {"scores": scores, "index": idx}, {"num_nodes": np.int64(n)}, fn, ["scores"]


@op("core.gather")
def gather(case, rng):
    xs, ishape = shp(case, "x"), shp(case, "index")
    axis = int(par(case, "axis"))
    x = normal(rng, xs)
    if len(ishape) == 1 and len(xs) > 1:
        # message passing: the last row is never gathered, rows repeat
        idx = rng.integers(0, max(xs[0] - 1, 1), size=ishape)
    else:
        idx = rng.integers(0, xs[axis], size=ishape)
    idx = idx.astype(np.int64)

    def fn(x, index, axis):
        ix = expand_index(itensor(index), x, int(axis))
        return {"y": torch.gather(x, int(axis), ix)}
    return {"x": x, "index": idx}, {"axis": np.int64(axis)}, fn, ["x"]


@op("core.scatter_add")
def scatter_add(case, rng):
    ss, ishape = shp(case, "src"), shp(case, "index")
    axis = int(par(case, "axis"))
    dim_size = int(par(case, "dim_size"))
    src = normal(rng, ss)
    # the last target slot never receives anything (an isolated node)
    idx = rng.integers(0, max(dim_size - 1, 1), size=ishape).astype(np.int64)

    def fn(src, index, axis, dim_size):
        ix = expand_index(itensor(index), src, int(axis))
        shape = list(src.shape)
        shape[int(axis)] = int(dim_size)
        return {"out": torch.zeros(shape, dtype=F64).scatter_add(int(axis), ix, src)}
    return {"src": src, "index": idx}, {"axis": np.int64(axis), "dim_size": np.int64(dim_size)}, fn, ["src"]


# ---------------------------------------------------------------------------------------------
# losses (all outputs are 0-d `loss`)

@op("core.cross_entropy")
def cross_entropy(case, rng):
    n, c = shp(case, "logits")
    logits = normal(rng, [n, c], case.get("scale", 1.0))
    target = rng.integers(0, c, size=[n]).astype(np.int64)
    has_weight = bool(par(case, "has_weight"))
    params = {"has_weight": has_weight, "reduction_sum": np.int64(par(case, "reduction_sum"))}
    if has_weight:
        params["weight"] = rng.uniform(0.2, 3.0, [c])

    def fn(logits, target, has_weight, reduction_sum, weight=None):
        red = "sum" if int(reduction_sum) else "mean"
        return {"loss": F.cross_entropy(logits, itensor(target), weight=weight, reduction=red)}
    return {"logits": logits, "target": target}, params, fn, ["logits"]


def _soft_binary(rng, shape):
    t = rng.random(shape)
    u = rng.random(shape)
    t[u < 0.25] = 0.0
    t[u > 0.75] = 1.0
    return t


@op("core.bce_with_logits")
def bce_with_logits(case, rng):
    xs = shp(case, "logits")
    logits = normal(rng, xs, case.get("scale", 1.0))
    target = _soft_binary(rng, xs)
    return ({"logits": logits, "target": target}, {},
            lambda logits, target: {"loss": F.binary_cross_entropy_with_logits(logits, target)}, ["logits"])


@op("core.mse_loss")
def mse_loss(case, rng):
    xs = shp(case, "input")
    a, b = normal(rng, xs, case.get("scale", 1.0)), normal(rng, xs, case.get("scale", 1.0))
    return {"input": a, "target": b}, {}, lambda input, target: {"loss": F.mse_loss(input, target)}, ["input"]


@op("core.l1_loss")
def l1_loss(case, rng):
    xs = shp(case, "input")
    a, b = normal(rng, xs), normal(rng, xs)
    if opt(case, "ties", False):
        tie = rng.random(xs) < 0.25
        tie.reshape(-1)[0] = True
        b = np.where(tie, a, b)
    return {"input": a, "target": b}, {}, lambda input, target: {"loss": F.l1_loss(input, target)}, ["input"]


@op("core.smooth_l1_loss")
def smooth_l1_loss(case, rng):
    xs = shp(case, "input")
    beta = float(par(case, "beta"))
    b = normal(rng, xs)
    if opt(case, "near_beta", False):
        d = beta * rng.uniform(0.5, 1.5, xs) * np.where(rng.random(xs) < 0.5, -1.0, 1.0)
        a = b + d
        # two entries exactly on the branch boundary |input - target| = beta
        a.reshape(-1)[:2] = [beta, -beta]
        b.reshape(-1)[:2] = 0.0
    else:
        a = normal(rng, xs, case.get("scale", 1.0))
    params = {"beta": np.float64(beta)}

    def fn(input, target, beta):
        return {"loss": F.smooth_l1_loss(input, target, beta=float(beta))}
    return {"input": a, "target": b}, params, fn, ["input"]


@op("core.kl_div")
def kl_div(case, rng):
    xs = shp(case, "input")
    z = normal(rng, xs)
    inp = z - z.max(-1, keepdims=True)
    inp = inp - np.log(np.exp(inp).sum(-1, keepdims=True))
    t = np.exp(normal(rng, xs))
    if opt(case, "zeros", False):
        zero = rng.random(xs) < 0.3
        zero[..., 0] = False  # every row keeps some mass
        zero.reshape(-1)[1 if xs[-1] > 1 else 0] = xs[-1] > 1
        t = np.where(zero, 0.0, t)
    t = t / t.sum(-1, keepdims=True)

    def fn(input, target):
        return {"loss": F.kl_div(input, target, reduction="batchmean", log_target=False)}
    return {"input": inp, "target": t}, {}, fn, ["input"]


@op("core.dice_loss")
def dice_loss(case, rng):
    xs = shp(case, "logits")
    logits = normal(rng, xs, case.get("scale", 1.0))
    target = (rng.random(xs) < 0.4).astype(np.float64)
    if opt(case, "empty_target", False):
        target[0] = 0.0
    params = {"smooth": np.float64(par(case, "smooth"))}

    def fn(logits, target, smooth):
        p = torch.sigmoid(logits)
        dims = tuple(range(1, p.dim()))
        inter = (p * target).sum(dims)
        den = p.sum(dims) + target.sum(dims)
        s = float(smooth)
        return {"loss": (1.0 - (2.0 * inter + s) / (den + s)).mean()}
    return {"logits": logits, "target": target}, params, fn, ["logits"]


# ---------------------------------------------------------------------------------------------
# attention

def _key_padding_mask(rng, n, s):
    m = rng.random([n, s]) < 0.35
    for b in range(n):
        if m[b].all():
            m[b, rng.integers(0, s)] = False  # a fully masked row is NaN in PyTorch: never certified
    m[0, -1] = s > 1  # at least one masked key when possible
    if m[0].all():
        m[0, 0] = False
    return m


@op("core.scaled_dot_product_attention")
def sdpa(case, rng):
    qs, ks, vs = shp(case, "q"), shp(case, "k"), shp(case, "v")
    b, l, d = qs
    s = ks[1]
    has_mask = bool(par(case, "has_mask"))
    sc = case.get("scale", 1.0)
    inputs = {"q": normal(rng, qs, sc), "k": normal(rng, ks, sc), "v": normal(rng, vs)}
    if has_mask:
        inputs["mask"] = _key_padding_mask(rng, b, s)

    def fn(q, k, v, has_mask, mask=None):
        attend = None
        if mask is not None:
            attend = torch.as_tensor(~np.asarray(mask))[:, None, :].expand(b, l, s)
        out, _ = torch._C._nn._scaled_dot_product_attention(q, k, v, attend, 0.0, False, False)
        return {"out": out}
    return inputs, {"has_mask": has_mask}, fn, ["q", "k", "v"]


@op("core.multihead_attention")
def multihead_attention(case, rng):
    qs, ks, vs = shp(case, "query"), shp(case, "key"), shp(case, "value")
    l, n, e = qs
    s = ks[0]
    h = int(par(case, "num_heads"))
    assert e % h == 0 and ks[2] == e and vs[2] == e
    has_mask = bool(par(case, "has_key_padding_mask"))
    w = 1.0 / math.sqrt(e)
    inputs = {"query": normal(rng, qs), "key": normal(rng, ks), "value": normal(rng, vs)}
    if has_mask:
        inputs["key_padding_mask"] = _key_padding_mask(rng, n, s)
    params = {"num_heads": np.int64(h), "has_key_padding_mask": has_mask,
              "in_proj_weight": normal(rng, [3 * e, e], w), "in_proj_bias": normal(rng, [3 * e], 0.1),
              "out_proj_weight": normal(rng, [e, e], w), "out_proj_bias": normal(rng, [e], 0.1)}

    def fn(query, key, value, num_heads, has_key_padding_mask, in_proj_weight, in_proj_bias,
           out_proj_weight, out_proj_bias, key_padding_mask=None):
        kpm = None if key_padding_mask is None else torch.as_tensor(np.asarray(key_padding_mask))
        out, weights = F.multi_head_attention_forward(
            query, key, value, e, int(num_heads), in_proj_weight, in_proj_bias, None, None, False, 0.0,
            out_proj_weight, out_proj_bias, training=False, key_padding_mask=kpm, need_weights=True,
            attn_mask=None, average_attn_weights=True)
        return {"attn_output": out, "attn_weights": weights}
    grads = ["query", "key", "value", "in_proj_weight", "in_proj_bias", "out_proj_weight", "out_proj_bias"]
    return inputs, params, fn, grads


# ---------------------------------------------------------------------------------------------
# optimizers: one step of the torch.optim class (single-tensor path), no autograd

def _param_with_grad(param, grad):
    p = torch.nn.Parameter(param.detach().clone())
    p.grad = grad.detach().clone()
    return p


@op("core.sgd_step")
def sgd_step(case, rng):
    xs = shp(case, "param")
    has_buffer = bool(par(case, "has_buffer"))
    inputs = {"param": normal(rng, xs), "grad": normal(rng, xs),
              "momentum_buffer": normal(rng, xs) if has_buffer else np.zeros(xs)}
    params = {k: np.float64(par(case, k)) for k in ("lr", "momentum", "dampening", "weight_decay")}
    params["nesterov"] = np.int64(par(case, "nesterov"))
    params["has_buffer"] = has_buffer

    def fn(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov, has_buffer):
        p = _param_with_grad(param, grad)
        o = torch.optim.SGD([p], lr=float(lr), momentum=float(momentum), dampening=float(dampening),
                            weight_decay=float(weight_decay), nesterov=bool(int(nesterov)), foreach=False)
        if has_buffer:
            o.state[p]["momentum_buffer"] = momentum_buffer.detach().clone()
        o.step()
        out = {"param": p.detach().clone()}
        if float(momentum) != 0.0:
            out["momentum_buffer"] = o.state[p]["momentum_buffer"].detach().clone()
        return out
    return inputs, params, fn, []


def _adam(case, rng, cls):
    xs = shp(case, "param")
    t = int(par(case, "step"))
    assert t >= 1
    inputs = {"param": normal(rng, xs), "grad": normal(rng, xs, case.get("scale", 1.0))}
    if opt(case, "zero_grad_entry", False):
        inputs["grad"].reshape(-1)[0] = 0.0
    if t == 1:
        inputs["exp_avg"], inputs["exp_avg_sq"] = np.zeros(xs), np.zeros(xs)
    else:
        inputs["exp_avg"] = normal(rng, xs, 0.1)
        inputs["exp_avg_sq"] = normal(rng, xs, 0.1) ** 2
    params = {k: np.float64(par(case, k)) for k in ("lr", "beta1", "beta2", "eps", "weight_decay")}
    params["step"] = np.int64(t)

    def fn(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, step):
        p = _param_with_grad(param, grad)
        o = cls([p], lr=float(lr), betas=(float(beta1), float(beta2)), eps=float(eps),
                weight_decay=float(weight_decay), amsgrad=False, foreach=False)
        # torch keeps the number of completed steps; this step makes it `step`
        o.state[p] = {"step": torch.tensor(float(int(step) - 1)), "exp_avg": exp_avg.detach().clone(),
                      "exp_avg_sq": exp_avg_sq.detach().clone()}
        o.step()
        st = o.state[p]
        assert int(st["step"].item()) == int(step)
        return {"param": p.detach().clone(), "exp_avg": st["exp_avg"].clone(),
                "exp_avg_sq": st["exp_avg_sq"].clone()}
    return inputs, params, fn, []


@op("core.adam_step")
def adam_step(case, rng):
    return _adam(case, rng, torch.optim.Adam)


@op("core.adamw_step")
def adamw_step(case, rng):
    return _adam(case, rng, torch.optim.AdamW)


@op("core.clip_grad_norm")
def clip_grad_norm(case, rng):
    k = int(par(case, "num_grads"))
    names = [f"g{i}" for i in range(k)]
    assert sorted(case["inputs"]) == sorted(names)
    inputs = {nm: normal(rng, shp(case, nm), case.get("scale", 1.0)) for nm in names}
    params = {"max_norm": np.float64(par(case, "max_norm")), "norm_type": np.float64(par(case, "norm_type")),
              "num_grads": np.int64(k)}

    def fn(max_norm, norm_type, num_grads, **gs):
        ps = [_param_with_grad(torch.zeros_like(gs[nm]), gs[nm]) for nm in names]
        total = torch.nn.utils.clip_grad_norm_(ps, float(max_norm), norm_type=float(norm_type))
        out = {nm: p.grad.detach().clone() for nm, p in zip(names, ps)}
        out["total_norm"] = total.detach().clone()
        return out
    return inputs, params, fn, []
