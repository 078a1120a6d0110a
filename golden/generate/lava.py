#!/usr/bin/python3
"""Reference generator for LAVA (protocols/lava/*.yaml): scikit-learn for the metrics, NumPy/PyTorch in Float64
for rejection, the autoencoder, the heads and the official released models.

usage: /usr/bin/python3 golden/generate/lava.py [--out DIR] [PROTOCOL-ID ...]

Each protocol id has one function registered with @op(<id>). It receives the case entry from the protocol
and a seeded NumPy Generator and returns a dict with inputs, params, outputs and, where gradients are certified,
cotangents and grads (gradients of sum(outputs * cotangents)). Every random draw is an input of the case.
The official-model golden stores only waveforms and logits: the weights are read at generation time from
the fixtures folder (../shared/fixtures/lava relative to the package root, or $CERTIFY_LAVA_FIXTURES).
"""
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import GoldenWriter, OPS, ROOT, deterministic_torch, library_versions, load_protocol, op, rng_for, run_main  # noqa: E402

GENERATOR = "golden/generate/lava.py"


# ---------------------------------------------------------------------------------------------------------------
# lava.metrics — scikit-learn


def _metric_labels(case, rng):
    n, k, kind = case["n"], case["k"], case["kind"]
    logits = rng.standard_normal((n, k)) * 2.0
    if kind == "perfect":
        y = np.arange(n) % k
        rng.shuffle(y)
        logits = rng.standard_normal((n, k)) * 0.1
        logits[np.arange(n), y] += 5.0
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        return y.astype(np.int64), y.astype(np.int64).copy(), probs
    y = rng.integers(0, k, n)
    # Make the scores informative: lift the true class.
    logits[np.arange(n), y] += 1.5
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    pred = probs.argmax(1)
    if kind == "never_predicted":
        pred = np.where(pred == k - 1, (pred + 1) % k, pred)
    elif kind == "absent":
        # class k−2 absent from y_true and y_pred; class k−1 absent from y_true but predicted sometimes.
        y = np.where(y >= k - 2, rng.integers(0, k - 2, n), y)
        pred = np.where(pred == k - 2, 0, pred)
        pred[rng.choice(n, 4, replace=False)] = k - 1
    elif kind == "ties":
        probs = np.round(probs * 5) / 5  # a few distinct values per column: many tied scores
    return y.astype(np.int64), pred.astype(np.int64), probs


@op("lava.metrics")
def metrics(case, rng):
    from sklearn.metrics import (accuracy_score, auc, average_precision_score, confusion_matrix, f1_score,
                                 precision_recall_fscore_support, roc_curve)
    from sklearn.preprocessing import label_binarize
    y, pred, scores = _metric_labels(case, rng)
    k = scores.shape[1]
    macro_labels = int(case.get("params", {}).get("macro_labels", 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f, s = precision_recall_fscore_support(y, pred, labels=list(range(k)), zero_division=0)
        labels = None if macro_labels == 0 else list(range(k))
        macro = f1_score(y, pred, labels=labels, average="macro", zero_division=0)
        yb = label_binarize(y, classes=list(range(k)))
        rocs, aps = [], []
        for i in range(k):
            fpr, tpr, _ = roc_curve(yb[:, i], scores[:, i])
            rocs.append(auc(fpr, tpr))
            aps.append(average_precision_score(yb[:, i], scores[:, i]) + 0.0)  # −0.0 → 0.0
    params = {} if "macro_labels" not in case.get("params", {}) else {"macro_labels": np.int64(macro_labels)}
    return dict(inputs={"y_true": y, "y_pred": pred, "scores": scores}, params=params,
                outputs={"precision": p, "recall": r, "f1": f, "support": s.astype(np.float64),
                         "confusion": confusion_matrix(y, pred, labels=list(range(k))).astype(np.float64),
                         "macro_f1": np.float64(macro), "accuracy": np.float64(accuracy_score(y, pred)),
                         "roc_auc": np.array(rocs, dtype=np.float64), "average_precision": np.array(aps, dtype=np.float64)})


# ---------------------------------------------------------------------------------------------------------------
# lava.rejection — transcription of the official decision rule, τ search and cascade


def _decide(torch, logits, tau):
    probs = torch.softmax(torch.tensor(logits, dtype=torch.float64), dim=1)
    conf, pred = probs.max(dim=1)
    conf = conf.numpy()
    pred = pred.numpy().astype(np.int64)
    return conf, np.where(conf >= tau, pred, -1).astype(np.int64)


def _search(conf, pred, true, min_cov, points):
    thresholds = np.linspace(0.0, 1.0, points)
    best, tau = 0, 0
    cov_curve = np.zeros(points)
    acc_curve = np.full(points, np.nan)
    for i, t in enumerate(thresholds):
        mask = conf >= t
        if np.sum(mask) == 0:
            continue
        acc = np.mean(pred[mask] == true[mask])
        cov = np.sum(mask) / len(true)
        cov_curve[i], acc_curve[i] = cov, acc
        if cov >= min_cov and acc > best:
            best, tau = acc, t
    return np.float64(tau), cov_curve, acc_curve


def _search_set(case, rng, m):
    kind = case["kind"]
    grid = np.linspace(0.0, 1.0, int(case.get("params", {}).get("grid_points", 500)))
    true = rng.integers(0, 3, m)
    if kind == "all_wrong":
        conf = rng.uniform(0.34, 1.0, m)
        pred = (true + 1) % 3
    elif kind == "plateau":
        # every prediction right: accuracy 1 at every t, so the first t (0) already sets best = 1 → τ = 0 ... unless
        # a wrong low-confidence sample lowers the accuracy at small t; here the wrong ones sit below 0.5.
        conf = rng.uniform(0.34, 1.0, m)
        pred = true.copy()
        wrong = conf < 0.5
        pred[wrong] = (true[wrong] + 1) % 3
    else:
        conf = rng.uniform(0.34, 1.0, m)
        right = rng.uniform(size=m) < conf  # confident samples are more often right
        pred = np.where(right, true, (true + 1 + rng.integers(0, 2, m)) % 3)
    if kind == "grid_ties":
        idx = rng.choice(m, m // 2, replace=False)
        conf[idx] = grid[rng.integers(170, 480, len(idx))]  # exactly on the grid: accepted at that t (≥)
    return conf, pred.astype(np.int64), true.astype(np.int64)


@op("lava.rejection")
def rejection(case, rng):
    torch = deterministic_torch()
    n, m = case["n"], case["m"]
    la = rng.standard_normal((n, 3)) * 2.5
    lr = rng.standard_normal((n, 6)) * 3.0
    la[rng.choice(n, min(n, 3), replace=False)] += 7.0  # a few more confident ones
    if case["kind"] == "grid_ties":
        # A logit row whose confidence is exactly tau_ada would need exact exp arithmetic; ties are tested in the search set.
        pass
    prm = case.get("params", {})
    tau_ada, tau_admr = float(prm["tau_ada"]), float(prm["tau_admr"])
    cascade = int(prm.get("cascade", 0))
    min_cov = float(prm.get("min_coverage", 0.8))
    points = int(prm.get("grid_points", 500))
    conf_a, dec_a = _decide(torch, la, tau_ada)
    conf_r_all, dec_r_all = _decide(torch, lr, tau_admr)
    runs = dec_a != -1 if cascade == 0 else dec_a == 0
    conf_r = np.where(runs, conf_r_all, np.nan)
    dec_r = np.where(runs, dec_r_all, -2).astype(np.int64)
    sc, sp, st = _search_set(case, rng, m)
    tau, cov, acc = _search(sc, sp, st, min_cov, points)
    params = {"tau_ada": np.float64(tau_ada), "tau_admr": np.float64(tau_admr)}
    for key in ("cascade", "grid_points"):
        if key in prm:
            params[key] = np.int64(prm[key])
    if "min_coverage" in prm:
        params["min_coverage"] = np.float64(prm["min_coverage"])
    return dict(inputs={"logits_ada": la, "logits_admr": lr, "search_confidence": sc, "search_pred": sp, "search_true": st},
                params=params,
                outputs={"confidence_ada": conf_a, "decision_ada": dec_a.astype(np.float64), "confidence_admr": conf_r,
                         "decision_admr": dec_r.astype(np.float64),
                         "tau": tau, "coverage_curve": cov, "accuracy_curve": acc})


# ---------------------------------------------------------------------------------------------------------------
# lava.resample — scipy.signal.resample_poly


@op("lava.resample")
def resample(case, rng):
    import math
    from scipy.signal import resample_poly
    n = case["n"]
    prm = case["params"]
    rate = int(prm["orig_rate"])
    target = int(prm.get("target_rate", 16000))
    t = np.arange(n) / rate
    freqs = rng.uniform(50, rate / 2 * 0.95, 4)  # some above the output Nyquist: aliasing must be filtered
    x = sum(rng.uniform(0.1, 0.4) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in freqs)
    x = x + 0.05 * rng.standard_normal(n)
    g = math.gcd(rate, target)
    y = resample_poly(x, target // g, rate // g)
    params = {"orig_rate": np.int64(rate)}
    if "target_rate" in prm:
        params["target_rate"] = np.int64(target)
    return dict(inputs={"x": x}, params=params, outputs={"y": np.asarray(y, dtype=np.float64)})


# ---------------------------------------------------------------------------------------------------------------
# The LAVA networks in PyTorch's functional API (autoencoder.py::DeepAutoencoder, audioDeepfakeAttribution.py::
# AudioDeepfakeAttributionModel, audioDeepfakeModelRecognition.py::ADMR_model), parameterised by the channel widths so the
# random-weight goldens stay small. Conv1d k9 s2 p4; ConvTranspose1d k9 s2 p4 output_padding 1; BatchNorm eps 1e-5.

ENC_CONV, ENC_BN = (0, 3, 6, 9), (1, 4, 7, 10)
DEC_CONV, DEC_BN, DEC_LAST = (0, 3, 6), (1, 4, 7), 10
DROPOUT_P = 0.3
BN_EPS = 1e-5


def encoder_shapes(ch):
    out = {}
    for i in range(4):
        out[f"encoder.{ENC_CONV[i]}.weight"] = (ch[i + 1], ch[i], 9)
        out[f"encoder.{ENC_CONV[i]}.bias"] = (ch[i + 1],)
        for k in ("weight", "bias", "running_mean", "running_var"):
            out[f"encoder.{ENC_BN[i]}.{k}"] = (ch[i + 1],)
    return out


def decoder_shapes(ch):
    out = {}
    for j in range(3):
        cin, cout = ch[4 - j], ch[3 - j]
        out[f"decoder.{DEC_CONV[j]}.weight"] = (cin, cout, 9)
        out[f"decoder.{DEC_CONV[j]}.bias"] = (cout,)
        for k in ("weight", "bias", "running_mean", "running_var"):
            out[f"decoder.{DEC_BN[j]}.{k}"] = (cout,)
    out[f"decoder.{DEC_LAST}.weight"] = (ch[1], 1, 9)
    out[f"decoder.{DEC_LAST}.bias"] = (1,)
    return out


def head_shapes(c, hidden, k):
    return {"attention.0.weight": (c, c, 1), "attention.0.bias": (c,), "classifier.2.weight": (hidden, c),
            "classifier.2.bias": (hidden,), "classifier.4.weight": (k, hidden), "classifier.4.bias": (k,)}


def draw_state(rng, shapes):
    """PyTorch-like initial scales: conv/linear weights and biases U(±1/√fan_in); BN affine near (1, 0);
    running statistics near (0, 1)."""
    bn_layers = {f"encoder.{i}" for i in ENC_BN} | {f"decoder.{i}" for i in DEC_BN}
    out = {}
    for name, shape in shapes.items():
        layer, kind = name.rsplit(".", 1)
        if kind == "running_mean":
            v = 0.1 * rng.standard_normal(shape)
        elif kind == "running_var":
            v = rng.uniform(0.5, 1.5, shape)
        elif layer in bn_layers:
            v = (1.0 + 0.1 * rng.standard_normal(shape)) if kind == "weight" else 0.1 * rng.standard_normal(shape)
        else:
            w = shapes[layer + ".weight"]
            fan_in = w[1] * w[2] if len(w) == 3 else w[1]
            if layer.startswith("decoder"):
                fan_in = w[0] * w[2] / 2  # transposed conv: in-channels × k over the stride
            bound = 1.0 / np.sqrt(fan_in)
            v = rng.uniform(-bound, bound, shape)
        out[name] = np.asarray(v, dtype=np.float64)
    return out


def torch_encoder(torch, x, P, training, momentum, new_stats):
    F = torch.nn.functional
    h = x
    for i in range(4):
        c, b = ENC_CONV[i], ENC_BN[i]
        h = F.conv1d(h, P[f"encoder.{c}.weight"], P[f"encoder.{c}.bias"], stride=2, padding=4)
        rm, rv = P[f"encoder.{b}.running_mean"].detach().clone(), P[f"encoder.{b}.running_var"].detach().clone()
        h = F.batch_norm(h, rm, rv, P[f"encoder.{b}.weight"], P[f"encoder.{b}.bias"], training=training,
                         momentum=momentum, eps=BN_EPS)
        if training:
            new_stats[f"new.encoder.{b}.running_mean"] = rm.numpy()
            new_stats[f"new.encoder.{b}.running_var"] = rv.numpy()
        h = F.relu(h)
    return h


def torch_decoder(torch, z, P, training, momentum, mask, new_stats):
    F = torch.nn.functional
    h = z
    for j in range(3):
        c, b = DEC_CONV[j], DEC_BN[j]
        h = F.conv_transpose1d(h, P[f"decoder.{c}.weight"], P[f"decoder.{c}.bias"], stride=2, padding=4, output_padding=1)
        rm, rv = P[f"decoder.{b}.running_mean"].detach().clone(), P[f"decoder.{b}.running_var"].detach().clone()
        h = F.batch_norm(h, rm, rv, P[f"decoder.{b}.weight"], P[f"decoder.{b}.bias"], training=training,
                         momentum=momentum, eps=BN_EPS)
        if training:
            new_stats[f"new.decoder.{b}.running_mean"] = rm.numpy()
            new_stats[f"new.decoder.{b}.running_var"] = rv.numpy()
        h = F.relu(h)
    if training:
        h = h * mask / (1.0 - DROPOUT_P)  # nn.Dropout(0.3) with the keep-mask given
    h = F.conv_transpose1d(h, P[f"decoder.{DEC_LAST}.weight"], P[f"decoder.{DEC_LAST}.bias"], stride=2, padding=4,
                           output_padding=1)
    return torch.tanh(h)


def torch_head(torch, z, P, attention):
    F = torch.nn.functional
    out = {}
    if attention:
        a = torch.sigmoid(F.conv1d(z, P["attention.0.weight"], P["attention.0.bias"]))
        out["gate"] = a
        za = z * a
    else:
        za = z
    pooled = F.adaptive_avg_pool1d(za, 1).flatten(1)
    h = F.relu(F.linear(pooled, P["classifier.2.weight"], P["classifier.2.bias"]))
    out["pooled"] = pooled
    out["logits"] = F.linear(h, P["classifier.4.weight"], P["classifier.4.bias"])
    return out


def adam_one_step(torch, params, grads, lr):
    """torch.optim.Adam(lr) from a fresh state, one step, on copies of the given parameters."""
    leaves = {k: params[k].detach().clone().requires_grad_(True) for k in grads}
    opt = torch.optim.Adam(list(leaves.values()), lr=lr)
    for k, g in grads.items():
        leaves[k].grad = g.detach().clone()
    opt.step()
    return {f"new.{k}": v.detach().numpy().copy() for k, v in leaves.items()}


def waveform(rng, b, length, kind="mixed"):
    t = np.arange(length) / 16000.0
    x = np.zeros((b, 1, length))
    for i in range(b):
        f = rng.uniform(100, 3000, 3)
        x[i, 0] = sum(rng.uniform(0.1, 0.3) * np.sin(2 * np.pi * fk * t + rng.uniform(0, 6.3)) for fk in f)
        x[i, 0] += 0.05 * rng.standard_normal(length)
    return np.clip(x, -0.95, 0.95)


def run_with_grads(torch, fn, tensors, grad_names, cot_names, rng):
    """fn(P) -> dict of outputs; draws cotangents for cot_names; grads of Σ out·cot w.r.t. grad_names."""
    P = {k: torch.tensor(v, dtype=torch.float64, requires_grad=(k in grad_names)) for k, v in tensors.items()}
    outs, extra = fn(P)
    cots, total = {}, None
    for k in cot_names:
        if k not in outs:
            continue
        c = rng.standard_normal(tuple(outs[k].shape))
        cots[k] = c
        term = (outs[k] * torch.tensor(c)).sum()
        total = term if total is None else total + term
    gs = torch.autograd.grad(total, [P[n] for n in grad_names])
    grads = {n: g.numpy().copy() for n, g in zip(grad_names, gs)}
    np_outs = {k: v.detach().numpy().copy() for k, v in outs.items()}
    np_outs.update(extra)
    return np_outs, cots, grads


@op("lava.autoencoder")
def autoencoder(case, rng):
    torch = deterministic_torch()
    prm = case.get("params", {})
    ch = case["channels"]
    b, length = case["inputs"]["x"][0], case["inputs"]["x"][2]
    training = bool(prm.get("training", 0))
    momentum = float(prm.get("momentum", 0.1))
    beta = float(prm.get("smooth_l1_beta", 1e-4))
    lr = prm.get("adam_lr")
    state = draw_state(rng, {**encoder_shapes(ch), **decoder_shapes(ch)})
    x = waveform(rng, b, length)
    t_lat = -(-length // 16)
    inputs = {"x": x, **state}
    if training:
        inputs["dropout_mask"] = (rng.uniform(size=(b, ch[1], 8 * t_lat)) >= DROPOUT_P).astype(np.float64)
    weights = [k for k in state if "running" not in k]
    grad_names = ["x"] + weights

    def fn(P):
        stats = {}
        z = torch_encoder(torch, P["x"], P, training, momentum, stats)
        y = torch_decoder(torch, z, P, training, momentum, P.get("dropout_mask"), stats)
        outs = {"latent": z, "reconstruction": y}
        if y.shape == P["x"].shape:
            outs["loss"] = torch.nn.functional.smooth_l1_loss(y, P["x"], beta=beta)
            if lr is not None:
                gs = torch.autograd.grad(outs["loss"], [P[k] for k in weights], retain_graph=True)
                stats.update(adam_one_step(torch, P, dict(zip(weights, gs)), float(lr)))
        return outs, stats

    outs, cots, grads = run_with_grads(torch, fn, inputs, grad_names, ["latent", "reconstruction", "loss"], rng)
    params = {"channels": np.array(ch, dtype=np.int64)}
    for k in ("training",):
        if k in prm:
            params[k] = np.int64(prm[k])
    for k in ("momentum", "smooth_l1_beta", "adam_lr"):
        if k in prm:
            params[k] = np.float64(prm[k])
    params_in = {k: v for k, v in inputs.items()}
    return dict(inputs=params_in, params=params, outputs=outs, cotangents=cots, grads=grads)


HEAD_TRAINABLE = ["encoder.10.weight", "encoder.10.bias", "attention.0.weight", "attention.0.bias",
                  "classifier.2.weight", "classifier.2.bias", "classifier.4.weight", "classifier.4.bias"]


@op("lava.heads")
def heads(case, rng):
    torch = deterministic_torch()
    prm = case.get("params", {})
    ch, hidden, k = case["channels"], case["hidden"], case["classes"]
    b, length = case["inputs"]["x"][0], case["inputs"]["x"][2]
    training = bool(prm.get("training", 0))
    attention = bool(prm.get("attention", 1))
    momentum = float(prm.get("momentum", 0.1))
    lr = prm.get("adam_lr")
    shapes = {**encoder_shapes(ch), **head_shapes(ch[4], hidden, k)}
    if not attention:
        shapes = {n: s for n, s in shapes.items() if not n.startswith("attention")}
    state = draw_state(rng, shapes)
    if attention and case.get("zero_attention"):
        state["attention.0.weight"][:] = 0
        state["attention.0.bias"][:] = 0
    x = waveform(rng, b, length)
    labels = rng.integers(0, k, b).astype(np.int64)
    inputs = {"x": x, **state, "labels": labels}
    trainable = [n for n in HEAD_TRAINABLE if n in state]
    grad_names = ["x"] + trainable

    def fn(P):
        stats = {}
        z = torch_encoder(torch, P["x"], P, training, momentum, stats)
        h = torch_head(torch, z, P, attention)
        loss = torch.nn.functional.cross_entropy(h["logits"], torch.tensor(labels))
        outs = {"latent": z, **h, "loss": loss}
        if lr is not None:
            gs = torch.autograd.grad(loss, [P[n] for n in trainable], retain_graph=True)
            stats.update(adam_one_step(torch, P, dict(zip(trainable, gs)), float(lr)))
        return outs, stats

    outs, cots, grads = run_with_grads(torch, fn, {k2: v for k2, v in inputs.items() if k2 != "labels"}, grad_names,
                                       ["latent", "gate", "pooled", "logits", "loss"], rng)
    params = {"channels": np.array(ch, dtype=np.int64)}
    for key in ("training", "attention"):
        if key in prm:
            params[key] = np.int64(prm[key])
    for key in ("momentum", "adam_lr"):
        if key in prm:
            params[key] = np.float64(prm[key])
    return dict(inputs=inputs, params=params, outputs=outs, cotangents=cots, grads=grads)


# ---------------------------------------------------------------------------------------------------------------
# lava.official_models — the released ADA and ADMR models (read from the fixtures; the golden keeps waveforms and logits)

FIXTURES_ENV = "CERTIFY_LAVA_FIXTURES"
FIXTURES_DEFAULT = "../shared/fixtures/lava"  # relative to the package root


def fixtures_dir():
    d = os.environ.get(FIXTURES_ENV) or os.path.normpath(os.path.join(ROOT, FIXTURES_DEFAULT))
    return d


def load_state(path):
    import h5py
    with h5py.File(path, "r") as f:
        return {k: np.asarray(f[k][()], dtype=np.float64) for k in f.keys() if f[k].dtype.kind == "f"}


def _sha256(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def official_file_attrs():
    d = fixtures_dir()
    return {"weights": f"{FIXTURES_DEFAULT} relative to the package root (override: ${FIXTURES_ENV})",
            "weights_sha256": "; ".join(f"{n}: {_sha256(os.path.join(d, n))}" for n in ("ADA_model.h5", "ADMR_model.h5")),
            "weights_source": "github.com/adipiz99/LAVA-framework models/ADA_model.pt, models/ADMR_model.pt at 90d889e (MIT)"}


def official_waveform(case, rng):
    b, _, length = case["inputs"]["waveform"]
    n = np.arange(length)
    kind = case["kind"]
    if kind == "sine440":
        return np.tile(0.5 * np.sin(2 * np.pi * 440 * n / 16000.0), (b, 1, 1))
    if kind == "zeros":
        return np.zeros((b, 1, length))
    if kind == "chirp":
        f0, f1 = 100.0, 6000.0
        t = n / 16000.0
        dur = length / 16000.0
        return np.tile(0.4 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * dur))), (b, 1, 1))
    if kind == "noise":
        return np.clip(0.3 * rng.standard_normal((b, 1, length)), -1, 1)
    if kind == "voiced":
        # A crude vowel: a 120 Hz pulse train through a few formant resonances, with an amplitude envelope.
        out = np.zeros((b, 1, length))
        for i in range(b):
            f0 = rng.uniform(90, 220)
            phase = (n * f0 / 16000.0) % 1.0
            src = np.exp(-phase * 30.0)
            sig = np.zeros(length)
            for fk in rng.uniform([500, 1200, 2400], [900, 1800, 3200]):
                sig += np.sin(2 * np.pi * fk * n / 16000.0) * src
            env = np.sin(np.pi * n / length) ** 0.5
            out[i, 0] = 0.3 * sig * env / np.max(np.abs(sig))
        return out
    raise ValueError(kind)


def official_logits(torch, state, k, x):
    P = {n: torch.tensor(v) for n, v in state.items()}
    z = torch_encoder(torch, torch.tensor(x), P, False, 0.1, {})
    return torch_head(torch, z, P, True)["logits"].numpy().copy()


_OFFICIAL = {}


@op("lava.official_models")
def official_models(case, rng):
    torch = deterministic_torch()
    d = fixtures_dir()
    if not _OFFICIAL:
        for name, fn in (("ada", "ADA_model.h5"), ("admr", "ADMR_model.h5")):
            path = os.path.join(d, fn)
            _OFFICIAL[name] = load_state(path)
    x = official_waveform(case, rng)
    with torch.no_grad():
        la = official_logits(torch, _OFFICIAL["ada"], 3, x)
        lr = official_logits(torch, _OFFICIAL["admr"], 6, x)
    return dict(inputs={"waveform": x}, params={}, outputs={"logits_ada": la, "logits_admr": lr})


official_models.file_attrs = official_file_attrs


# ---------------------------------------------------------------------------------------------------------------

REFERENCES = {
    "lava.resample": ("scipy",),
    "lava.metrics": ("sklearn",),
    "lava.rejection": ("torch",),
}


def official_fixtures_missing():
    d = fixtures_dir()
    missing = [os.path.join(d, n) for n in ("ADA_model.h5", "ADMR_model.h5") if not os.path.exists(os.path.join(d, n))]
    return missing


def generate(pid, out_root):
    proto = load_protocol(pid)
    if pid == "lava.official_models" and official_fixtures_missing():
        print(f"lava.py: skipped lava.official_models: fixtures not found: {', '.join(official_fixtures_missing())} "
              f"(set ${FIXTURES_ENV} to the folder holding the released weights)", file=sys.stderr)
        return
    libs = REFERENCES.get(pid, ("torch",))
    w = GoldenWriter(pid, out_root, GENERATOR, library_versions(*libs))
    extra = getattr(OPS[pid], "file_attrs", None)
    if extra:
        for k, v in extra().items():
            w.file.attrs[k] = v
    for case in proto["cases"]:
        rng = rng_for(pid, case["name"])
        r = OPS[pid](case, rng)
        w.case(case["name"], r["inputs"], r.get("params", {}), r["outputs"], r.get("cotangents"), r.get("grads"), r.get("attrs"))
    w.close()


if __name__ == "__main__":
    run_main("lava.py", generate)
