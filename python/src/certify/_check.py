"""certify.check, certify.check_module and certify.reference."""
import inspect
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from . import _cli
from ._cli import CertifyError

try:  # torch is optional: NumPy callables work without it
    import torch
except ImportError:  # pragma: no cover - exercised where torch is absent
    torch = None


class CheckFailure(AssertionError):
    """A check that ran and failed: the message names the protocol, the case and the dataset, and carries the
    CLI's report. `result` is the CheckResult."""

    def __init__(self, message, result=None):
        super().__init__(message)
        self.result = result


@dataclass
class DatasetResult:
    """One compared dataset (e.g. basic/outputs/y) or one problem found before the comparison."""
    name: str
    passed: bool
    text: str
    worst_rel_error: float = None


@dataclass
class CheckResult:
    protocol: str
    cases: list
    dtype: str
    passed: bool
    report: str
    summary: str
    datasets: list = field(default_factory=list)
    seconds: float = 0.0
    rtol: float = None
    atol: float = None
    label: str = ""

    def __bool__(self):
        return self.passed

    @property
    def failures(self):
        return [d for d in self.datasets if not d.passed]

    @property
    def worst_rel_error(self):
        errs = [d.worst_rel_error for d in self.datasets if d.worst_rel_error is not None]
        return max(errs) if errs else None


# Results of every check since the collector was (re)set; the pytest plugin reads them for --certify-report.
_collected = []
_current_test = [None]


def _record(result):
    result.label = _current_test[0] or ""
    _collected.append(result)


# --------------------------------------------------------------------------------------------------------------
# reading the golden


def _read_group(g):
    return {k: g[k][()] for k in g.keys()} if g is not None else {}


def _load_case(f, name):
    g = f[name]

    def sub(s):
        return _read_group(g[s]) if s in g else {}
    return {"inputs": sub("inputs"), "params": sub("params"), "cotangents": sub("cotangents"),
            "outputs": sorted(g["outputs"].keys()) if "outputs" in g else [],
            "grads": sorted(g["grads"].keys()) if "grads" in g else []}


def _select_cases(c, cases):
    all_cases = list(c["cases"])
    if cases is None:
        return all_cases
    if isinstance(cases, str):
        cases = [cases]
    cases = list(cases)
    if not cases:
        raise CertifyError(f"{c['id']}: cases=[] selects nothing; name cases or pass cases=None for all of them")
    for name in cases:
        if name not in all_cases:
            close = _close_matches(name, all_cases)
            raise CertifyError(f"{c['id']} has no case '{name}'" + (f"; did you mean {', '.join(close)}?" if close
                               else f"; its cases: {', '.join(all_cases)}"))
    return cases


def _close_matches(word, choices):
    import difflib
    return difflib.get_close_matches(word, choices, n=3, cutoff=0.6)


# --------------------------------------------------------------------------------------------------------------
# calling the user's function


def _dtype_name(dtype):
    if dtype is None:
        return "float64"
    if torch is not None and isinstance(dtype, torch.dtype):
        return str(dtype).replace("torch.", "")
    return np.dtype(dtype).name


def _is_float(a):
    return np.issubdtype(np.asarray(a).dtype, np.floating)


def _to_torch(a, np_dtype):
    a = np.asarray(a)
    if _is_float(a):
        return torch.from_numpy(np.ascontiguousarray(a.astype(np_dtype)))
    if a.dtype == np.bool_:
        return torch.from_numpy(np.ascontiguousarray(a))
    return torch.from_numpy(np.ascontiguousarray(a.astype(np.int64)))


def _param_value(a, np_dtype, framework, differentiable=False):
    """Params as the frameworks take them: floating arrays → tensor/array; floating scalars → float (a tensor
    when its gradient is checked); integer or bool scalars → int/bool; integer vectors (stride, padding, …) →
    tuple of int; larger integer arrays → tensor/array."""
    a = np.asarray(a)
    if _is_float(a) and a.ndim == 0 and not differentiable:
        return float(a)
    if _is_float(a):
        return _to_torch(a, np_dtype) if framework == "torch" else a.astype(np_dtype)
    if a.ndim == 0:
        return bool(a) if a.dtype == np.bool_ else int(a)
    if a.ndim == 1:
        return tuple(bool(v) if a.dtype == np.bool_ else int(v) for v in a)
    return _to_torch(a, np_dtype) if framework == "torch" else a


def _accepted(fn, names):
    """The names fn accepts as keywords (all of them when it takes **kwargs or has no inspectable signature)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return set(names)
    ps = sig.parameters.values()
    if any(p.kind == p.VAR_KEYWORD for p in ps):
        return set(names)
    return {p.name for p in ps if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} & set(names)


def _is_tensor(x):
    return torch is not None and isinstance(x, torch.Tensor)


def _normalize_outputs(out, declared, wanted, where):
    """Outputs as a dict: a dict, a tuple/list in the protocol's order, or one tensor when one output is wanted."""
    if isinstance(out, dict):
        d = dict(out)
    elif isinstance(out, (tuple, list)):
        if len(out) > len(declared):
            raise _Problem(f"{where}: returned {len(out)} values; the protocol declares {len(declared)} outputs "
                           f"({', '.join(declared)})")
        d = dict(zip(declared, out))
    else:
        if len(wanted) != 1:
            raise _Problem(f"{where}: returned one {type(out).__name__}; the protocol declares outputs "
                           f"{', '.join(declared)}: return a dict or a tuple in that order")
        d = {wanted[0]: out}
    extra = [k for k in d if k not in declared]
    if extra:
        raise _Problem(f"{where}: returned output '{extra[0]}', which the protocol does not declare "
                       f"(it declares {', '.join(declared)})")
    return d


class _Problem(Exception):
    """A bad return value or a raising callable, found before the comparison."""


def _as_array(v, name, where, golden_dtype, np_dtype):
    if _is_tensor(v):
        try:
            t = v.detach().cpu()
            if t.dtype == torch.bfloat16:  # NumPy has no bfloat16
                t = t.to(torch.float32)
            a = t.resolve_conj().numpy() if t.is_complex() else t.numpy()
        except Exception as e:  # noqa: BLE001 — a tensor NumPy cannot hold (sparse, quantized, …)
            raise _Problem(f"{where}/outputs/{name}: cannot read the returned tensor ({type(e).__name__}: {e})") from None
    elif isinstance(v, np.ndarray) or isinstance(v, (int, float, bool, np.generic)):
        a = np.asarray(v)
    else:
        raise _Problem(f"{where}/outputs/{name}: returned a {type(v).__name__}, not a tensor or array")
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise _Problem(f"{where}/outputs/{name}: returned an array of {a.dtype}, not numbers")
    if np.iscomplexobj(a):
        raise _Problem(f"{where}/outputs/{name}: returned complex values")
    if golden_dtype is not None and not np.issubdtype(golden_dtype, np.floating):
        if _is_float(a):  # integer/bool outputs are compared exactly: keep the user's values as they are
            return a
        return a.astype(golden_dtype)
    return a.astype(np_dtype) if _is_float(a) else a


def _run_case(fn, c, data, case, framework, np_dtype, wanted, vjp):
    """Calls fn on one golden case; returns (outputs, grads) as NumPy arrays, or raises _Problem."""
    where = f"{c['id']} case {case}"
    declared = [o["name"] for o in c["outputs"]]
    want_grads = [g for g in data["grads"] if g in c["grads"]] if c["grads"] else []
    kwargs, leaves = {}, {}
    for name, a in data["inputs"].items():
        if framework == "torch":
            t = _to_torch(a, np_dtype)
            if name in want_grads and t.is_floating_point():
                t.requires_grad_(True)
                leaves[name] = t
            kwargs[name] = t
        else:
            kwargs[name] = a.astype(np_dtype) if _is_float(a) else a
    accepted = _accepted(fn, list(data["params"]))
    for name, a in data["params"].items():
        if name not in accepted:
            continue  # fn does not take it (e.g. has_bias when bias=None says the same)
        v = _param_value(a, np_dtype, framework, differentiable=name in want_grads)
        if framework == "torch" and name in want_grads and _is_tensor(v) and v.is_floating_point():
            v.requires_grad_(True)
            leaves[name] = v
        kwargs[name] = v
    try:
        out = fn(**kwargs)
    except Exception as e:  # noqa: BLE001 — the user's code: report it, do not crash
        raise _Problem(f"{where}: the function raised {type(e).__name__}: {e}") from None
    outs = _normalize_outputs(out, declared, wanted, where)
    compare = [o for o in wanted if o in data["outputs"]]
    for name in compare:
        if name not in outs:
            raise _Problem(f"{where}/outputs/{name}: missing from what the function returned "
                           f"(it returned {', '.join(outs) or 'nothing'})")
    golden_dtypes = data.get("output_dtypes", {})
    arrays = {n: _as_array(outs[n], n, where, golden_dtypes.get(n), np_dtype) for n in compare}
    grads = {}
    if want_grads and framework == "torch":
        terms = []
        for n, v in outs.items():
            if n in data["cotangents"] and _is_tensor(v) and v.requires_grad:
                cot = torch.from_numpy(np.asarray(data["cotangents"][n]).astype(np_dtype))
                if tuple(cot.shape) != tuple(v.shape):
                    continue  # a wrong shape: the comparison reports it
                terms.append((v * cot.to(v.dtype)).sum())
        order = [g for g in want_grads if g in leaves]
        if terms and order:
            total = terms[0]
            for t in terms[1:]:
                total = total + t
            try:
                gs = torch.autograd.grad(total, [leaves[g] for g in order], allow_unused=True)
            except Exception as e:  # noqa: BLE001
                raise _Problem(f"{where}: backward pass raised {type(e).__name__}: {e}") from None
        else:
            gs = [None] * len(order)
        for g, v in zip(order, gs):
            grads[g] = (v if v is not None else torch.zeros_like(leaves[g])).detach().cpu().numpy().astype(np_dtype)
    elif want_grads and vjp is not None:
        try:
            gd = vjp({n: np.asarray(v).astype(np_dtype) for n, v in data["cotangents"].items()}, **kwargs)
        except Exception as e:  # noqa: BLE001
            raise _Problem(f"{where}: the VJP function raised {type(e).__name__}: {e}") from None
        if not isinstance(gd, dict):
            raise _Problem(f"{where}: the VJP function must return a dict of gradients by name ({', '.join(want_grads)})")
        for g in want_grads:
            if g not in gd:
                raise _Problem(f"{where}/grads/{g}: missing from what the VJP function returned")
            grads[g] = _as_array(gd[g], g, where, None, np_dtype)
    return arrays, grads


# --------------------------------------------------------------------------------------------------------------
# comparing through `certify diff`

_LINE = re.compile(r"^(\S+/(?:outputs|grads)/\S+): (ok|NOT CLOSE|FAILED)(.*)$")
_WORST = re.compile(r"worst relative error ([-+0-9.eEinfa]+)")
_TOL = re.compile(r"rtol ([0-9.eE+-]+), atol ([0-9.eE+-]+)")


def _parse_diff(stdout):
    datasets, current = [], None
    for line in stdout.splitlines():
        m = _LINE.match(line)
        if m:
            current = DatasetResult(name=m.group(1), passed=m.group(2) == "ok", text=line)
            datasets.append(current)
        elif current is not None and line.startswith("    "):
            current.text += "\n" + line
        else:
            current = None
            if ": only in golden" in line:
                datasets.append(DatasetResult(name=line.split(":")[0], passed=False, text=line))
    for d in datasets:
        m = _WORST.search(d.text)
        if m:
            try:
                d.worst_rel_error = float(m.group(1))
            except ValueError:
                pass
    return datasets


def _write_actual(path, results):
    with h5py.File(path, "w") as f:
        for case, (outs, grads) in results.items():
            for section, d in (("outputs", outs), ("grads", grads)):
                for name, a in d.items():
                    f.create_dataset(f"{case}/{section}/{name}", data=a)


def _framework(fn, framework):
    if framework is not None:
        if framework not in ("torch", "numpy"):
            raise CertifyError(f"framework must be 'torch' or 'numpy', got {framework!r}")
        if framework == "torch" and torch is None:
            raise CertifyError("framework='torch' needs PyTorch, which is not installed")
        return framework
    return "torch" if torch is not None else "numpy"


def check(fn, protocol, dtype=None, cases=None, outputs=None, framework=None, vjp=None, raise_on_failure=True):
    """Certifies fn against the protocol's goldens.

    fn(**inputs, **params) is called on every golden case (or the named `cases`); params fn does not accept are
    left out. It returns the outputs as a dict, a tuple in the protocol's order, or one tensor. With PyTorch
    (the default when it is installed), the gradients of Σ outputs ⊙ cotangents with respect to the protocol's
    `grads` are compared too. With framework="numpy" the inputs are NumPy arrays and only the outputs are
    compared, unless `vjp(cotangents, **inputs, **params)` returns the gradients as a dict.

    dtype: the floating dtype fn computes in (torch.float32, np.float32, …; default float64); the CLI then
    applies at least torch.testing's tolerances for that dtype. outputs: compare only these outputs.

    Returns a CheckResult; when a dataset differs or the function misbehaves, raises CheckFailure (an
    AssertionError) naming the protocol, case and dataset, with the CLI's report (raise_on_failure=False:
    returns the failed result instead).
    """
    __tracebackhide__ = True
    start = time.perf_counter()
    c = _cli.contract(protocol)
    fw = _framework(fn, framework)
    if not callable(fn):
        raise CertifyError(f"{protocol}: check needs a callable, got {type(fn).__name__}")
    names = _select_cases(c, cases)
    declared = [o["name"] for o in c["outputs"]]
    wanted = declared
    if outputs is not None:
        wanted = [outputs] if isinstance(outputs, str) else list(outputs)
        unknown = [o for o in wanted if o not in declared]
        if unknown:
            raise CertifyError(f"{protocol} has no output '{unknown[0]}'; it declares {', '.join(declared)}")
    dname = _dtype_name(dtype)
    np_dtype = np.dtype(dname) if dname in ("float16", "float32", "float64") else None
    if np_dtype is None:
        raise CertifyError(f"dtype must be a floating dtype (float16, float32, float64), got {dname}")
    golden = _cli.golden_path(c)
    if not golden.is_file():
        raise CertifyError(f"{protocol}: golden {golden} not found (run `make goldens`)")
    problems, results = [], {}
    with h5py.File(golden, "r") as f:
        for case in names:
            if case not in f:
                raise CertifyError(f"{protocol}: case '{case}' is missing from {golden}")
            data = _load_case(f, case)
            data["output_dtypes"] = {n: f[case]["outputs"][n].dtype for n in data["outputs"]}
            try:
                results[case] = _run_case(fn, c, data, case, fw, np_dtype, wanted, vjp)
            except _Problem as p:
                problems.append(DatasetResult(name=case, passed=False, text=str(p)))
    report, summary, datasets, rtol, atol = "", "", [], None, None
    if results:
        with tempfile.TemporaryDirectory(prefix="certify-") as tmp:
            actual = os.path.join(tmp, "actual.h5")
            _write_actual(actual, results)
            only = []
            if outputs is not None or (fw == "numpy" and vjp is None):
                only = list(wanted) + ([g for g in c["grads"]] if fw == "torch" or vjp is not None else [])
            args = ["diff", actual, str(golden), "--protocol", protocol, "--verbose", "--cases", *results.keys()]
            if only:
                args += ["--only", *only]
            rc, out, _ = _cli.run(args)
        report = out.replace(actual, "<your outputs>")
        lines = [ln for ln in out.strip().splitlines() if ln.strip()]
        summary = lines[-1] if lines else ""
        datasets = _parse_diff(report)
        tols = [(float(a), float(b)) for a, b in _TOL.findall(summary)]
        if tols:  # the protocol's; for Float32 data the CLI names the wider Float32 floor after it
            rtol, atol = tols[0]
            if dname != "float64" and len(tols) > 1:
                rtol, atol = max(rtol, tols[-1][0]), max(atol, tols[-1][1])
        cli_failed = rc != 0
    else:
        cli_failed = False
    passed = not problems and not cli_failed
    result = CheckResult(protocol=protocol, cases=names, dtype=dname, passed=passed, report=report, summary=summary,
                         datasets=problems + datasets, seconds=time.perf_counter() - start, rtol=rtol, atol=atol)
    _record(result)
    if not passed and raise_on_failure:
        raise CheckFailure(failure_message(result), result)
    return result


def failure_message(r):
    head = f"{r.protocol} ({r.dtype}): " + ("case " if len(r.cases) == 1 else "cases ") + ", ".join(r.cases)
    lines = [head + " — not certified"]
    for d in r.failures:
        lines.append("  " + d.text.replace("\n", "\n  "))
    if r.summary:
        lines.append("certify diff: " + r.summary)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# whole models


def _load_state(state_dict):
    if state_dict is None:
        return None
    if isinstance(state_dict, (str, os.PathLike)):
        p = Path(state_dict)
        if not p.is_file():
            raise CertifyError(f"{p}: state dict file not found")
        if p.suffix in (".h5", ".hdf5"):
            with h5py.File(p, "r") as f:
                return {k: torch.from_numpy(np.asarray(f[k][()])) for k in f.keys() if isinstance(f[k], h5py.Dataset)}
        try:
            obj = torch.load(p, map_location="cpu")
        except Exception as e:  # noqa: BLE001
            raise CertifyError(f"{p}: cannot read a state dict ({type(e).__name__}: {e})") from None
        return obj.get("state_dict", obj) if isinstance(obj, dict) else obj
    return {k: (v if _is_tensor(v) else torch.from_numpy(np.asarray(v))) for k, v in dict(state_dict).items()}


def _mapped(name_map, name):
    if name_map is None:
        return name
    if callable(name_map):
        return name_map(name)
    return name_map.get(name, name)


def check_module(module, protocol, state_dict=None, name_map=None, dtype=None, cases=None, outputs=None,
                 raise_on_failure=True):
    """Certifies a torch.nn.Module: loads `state_dict` (a dict, or a .pt / HDF5 file such as the LAVA checkpoints'
    conversion) into the module, with `name_map` mapping the module's parameter names to the state dict's and the
    protocol's (a dict or a function; unmapped names stay as they are); puts it in eval mode; then checks
    module(*inputs) as certify.check does. The protocol's tensor params, when it has any, replace the module's
    parameters of the same (mapped) name case by case, and their gradients are compared."""
    __tracebackhide__ = True
    if torch is None:
        raise CertifyError("check_module needs PyTorch, which is not installed")
    if not isinstance(module, torch.nn.Module):
        raise CertifyError(f"{protocol}: check_module needs a torch.nn.Module, got {type(module).__name__}")
    c = _cli.contract(protocol)
    dname = _dtype_name(dtype)
    tdtype = getattr(torch, dname)
    sd = _load_state(state_dict)
    own = module.state_dict()
    if sd is not None:
        missing, loaded = [], {}
        for k in own:
            src = _mapped(name_map, k)
            if src not in sd:
                missing.append(f"{k} (looked for '{src}')" if src != k else k)
            else:
                loaded[k] = sd[src]
        used = {_mapped(name_map, k) for k in own}
        unexpected = [k for k in sd if k not in used]
        if missing or unexpected:
            msg = f"{protocol}: the state dict does not fit the module"
            if missing:
                msg += f"; missing: {', '.join(missing[:5])}" + (" …" if len(missing) > 5 else "")
            if unexpected:
                msg += f"; not used by the module: {', '.join(unexpected[:5])}" + (" …" if len(unexpected) > 5 else "")
            raise CheckFailure(msg + " (pass name_map to map the module's names to the state dict's)")
        for k, v in loaded.items():
            if tuple(v.shape) != tuple(own[k].shape):
                raise CheckFailure(f"{protocol}: state dict tensor for '{k}' has shape {list(v.shape)}, "
                                   f"the module's is {list(own[k].shape)}")
        module.load_state_dict(loaded, strict=True)
    module = module.to(tdtype).eval()
    param_names = {_mapped(name_map, k): k for k, _ in module.named_parameters()}
    input_names = [i["name"] for i in c["inputs"]]
    try:
        fwd = inspect.signature(module.forward)
        by_name = all(n in fwd.parameters for n in input_names)
    except (TypeError, ValueError):
        by_name = False
    try:
        from torch.func import functional_call
    except ImportError:
        from torch.nn.utils.stateless import functional_call

    def fn(**kw):
        replace = {param_names[n]: v for n, v in kw.items() if n in param_names and _is_tensor(v)}
        ins = {n: kw[n] for n in input_names if n in kw}
        if by_name:
            return functional_call(module, replace, (), ins) if replace else module(**ins)
        args = tuple(ins.values())
        return functional_call(module, replace, args) if replace else module(*args)

    return check(fn, protocol, dtype=dtype, cases=cases, outputs=outputs, framework="torch",
                 raise_on_failure=raise_on_failure)


# --------------------------------------------------------------------------------------------------------------
# Certify's reference on the user's inputs


def reference(protocol, cotangents=None, **inputs_and_params):
    """Certify's reference outputs (and, given `cotangents`, gradients) for your own inputs and params, computed
    by `certify eval`. Returns a dict of tensors (NumPy arrays where PyTorch is absent)."""
    __tracebackhide__ = True
    c = _cli.contract(protocol)
    inputs = {i["name"] for i in c["inputs"]}
    params = {p["name"] for p in c["params"]}
    with tempfile.TemporaryDirectory(prefix="certify-") as tmp:
        src, dst = os.path.join(tmp, "in.h5"), os.path.join(tmp, "out.h5")
        with h5py.File(src, "w") as f:
            for name, v in inputs_and_params.items():
                section = "inputs" if name in inputs else "params" if name in params else "inputs"
                f.create_dataset(f"case0/{section}/{name}", data=_host(v))
            for name, v in (cotangents or {}).items():
                f.create_dataset(f"case0/cotangents/{name}", data=_host(v))
        _cli.run(["eval", protocol, "-i", src, "-o", dst])
        out = {}
        with h5py.File(dst, "r") as f:
            for section in ("outputs", "grads"):
                if f"case0/{section}" in f:
                    for name, ds in f[f"case0/{section}"].items():
                        a = np.asarray(ds[()])
                        key = name if section == "outputs" else f"grad_{name}"
                        out[key] = torch.from_numpy(a) if torch is not None else a
    return out


def _host(v):
    if _is_tensor(v):
        v = v.detach().cpu().numpy()
    a = np.asarray(v)
    if _is_float(a):
        return a.astype(np.float64)
    if a.dtype == np.bool_:
        return a
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(np.int64)
    raise CertifyError(f"cannot pass a {type(v).__name__} of {a.dtype} to certify eval")
