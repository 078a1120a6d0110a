"""certify.check, check_module and reference against the real CLI and goldens (needs the certify binary:
CERTIFY_BIN or PATH; `make python-test` sets it)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import certify


def softmax(x, axis):
    return torch.softmax(x, dim=axis)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return F.conv2d(x, weight, bias, stride, padding, dilation, groups)


def test_softmax_float64_and_float32_pass():
    r = certify.check(softmax, "core.softmax")
    assert r.passed and r.dtype == "float64"
    assert r.cases == ["rows", "columns", "rank3_middle", "size_one_axis", "large_logits"]
    names = {d.name for d in r.datasets}
    assert "rows/outputs/y" in names and "rows/grads/x" in names
    assert r.rtol == 1e-10
    r32 = certify.check(softmax, "core.softmax", dtype=torch.float32)
    assert r32.passed and r32.dtype == "float32"
    assert r32.rtol > 1e-7, "Float32 outputs are judged with at least torch.testing's Float32 tolerances"


def test_conv2d_float32_every_case():
    r = certify.check(conv2d, "core.conv2d", dtype=torch.float32)
    assert r.passed, r.report
    assert "dilation_no_bias/grads/bias" not in {d.name for d in r.datasets}


def test_a_wrong_implementation_fails_naming_protocol_case_and_dataset():
    def off_by_a_bit(x, axis):
        y = torch.softmax(x, dim=axis)
        return y + 1e-6 * (y.shape[-1] > 3)
    with pytest.raises(certify.CheckFailure) as e:
        certify.check(off_by_a_bit, "core.softmax", cases="rows")
    msg = str(e.value)
    assert isinstance(e.value, AssertionError)
    assert msg.startswith("core.softmax (float64): case rows — not certified")
    assert "rows/outputs/y: NOT CLOSE" in msg and "greatest absolute difference" in msg
    assert "certify diff: " in msg
    assert not e.value.result.passed


def test_a_wrong_gradient_is_caught():
    class Sm(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = torch.softmax(x, -1)
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return y * g  # forgets − y·Σ(g·y)
    with pytest.raises(certify.CheckFailure) as e:
        certify.check(lambda x, axis: Sm.apply(x), "core.softmax", cases=["rows"])
    assert "rows/grads/x: NOT CLOSE" in str(e.value)
    assert "rows/outputs/y" not in "\n".join(d.name for d in e.value.result.failures)


@pytest.mark.parametrize("fn, fragment", [
    (lambda x, axis: {}, "core.softmax case rows/outputs/y: missing from what the function returned"),
    (lambda x, axis: {"y": torch.softmax(x, axis), "z": x}, "core.softmax case rows: returned output 'z', which the protocol does not declare (it declares y)"),
    (lambda x, axis: "hello", "core.softmax case rows/outputs/y: returned a str, not a tensor or array"),
    (lambda x, axis: 1 / 0, "core.softmax case rows: the function raised ZeroDivisionError: division by zero"),
    (lambda x, axis: (torch.softmax(x, axis), x, x), "core.softmax case rows: returned 3 values; the protocol declares 1 outputs (y)"),
    (lambda x, axis: torch.softmax(x, axis).to_sparse(), "core.softmax case rows/outputs/y: cannot read the returned tensor"),
    (lambda x, axis: None, "core.softmax case rows/outputs/y: returned a NoneType, not a tensor or array"),
    (lambda x, axis: torch.softmax(x, axis).to(torch.complex64), "core.softmax case rows/outputs/y: returned complex values"),
])
def test_bad_callables_fail_cleanly(fn, fragment):
    with pytest.raises(certify.CheckFailure) as e:
        certify.check(fn, "core.softmax", cases=["rows"])
    assert fragment in str(e.value)


def test_bfloat16_outputs_are_read():
    r = certify.check(lambda x, axis: torch.softmax(x, axis).to(torch.bfloat16), "core.softmax", cases=["rows"], raise_on_failure=False)
    assert not r.passed and "rows/outputs/y: NOT CLOSE" in r.report, "bfloat16 is far outside Float32 tolerances, but it is compared"


def test_wrong_shape_and_nan_are_reported_by_the_cli():
    with pytest.raises(certify.CheckFailure) as e:
        certify.check(lambda x, axis: torch.softmax(x, axis)[:1], "core.softmax", cases=["rows"])
    assert "rows/outputs/y: FAILED" in str(e.value) and "shape" in str(e.value)
    with pytest.raises(certify.CheckFailure) as e:
        certify.check(lambda x, axis: torch.softmax(x, axis) * float("nan"), "core.softmax", cases=["rows"])
    assert "rows/outputs/y: NOT CLOSE" in str(e.value) and "non-finite" in str(e.value)


def test_unknown_protocol_and_case_list_close_matches():
    with pytest.raises(certify.CertifyError) as e:
        certify.check(softmax, "core.softmx")
    assert "core.softmax" in str(e.value)
    with pytest.raises(certify.CertifyError) as e:
        certify.check(softmax, "core.softmax", cases=["row"])
    assert "core.softmax has no case 'row'; did you mean rows" in str(e.value)
    with pytest.raises(certify.CertifyError) as e:
        certify.check(softmax, "core")
    assert "'core' is a prefix, not a protocol id" in str(e.value)
    with pytest.raises(certify.CertifyError) as e:
        certify.check(softmax, "core.softmax", cases=[])
    assert "selects nothing" in str(e.value)


def test_numpy_outputs_only_and_with_vjp():
    def np_softmax(x, axis):
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)
    assert certify.check(np_softmax, "core.softmax", framework="numpy").passed

    def vjp(cot, x, axis):
        y = np_softmax(x, axis)
        g = cot["y"]
        return {"x": y * (g - (g * y).sum(axis=axis, keepdims=True))}
    r = certify.check(np_softmax, "core.softmax", framework="numpy", vjp=vjp)
    assert r.passed and "rows/grads/x" in {d.name for d in r.datasets}
    with pytest.raises(certify.CheckFailure):
        certify.check(np_softmax, "core.softmax", framework="numpy", vjp=lambda cot, x, axis: {"x": 0 * x})


def test_check_module_with_a_name_map():
    class Mine(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(7, 3)

        def forward(self, x):
            return self.proj(x)
    r = certify.check_module(Mine(), "core.linear", name_map={"proj.weight": "weight", "proj.bias": "bias"}, cases=["matrix"])
    assert r.passed and "matrix/grads/weight" in {d.name for d in r.datasets}
    with pytest.raises(certify.CheckFailure) as e:
        certify.check_module(Mine(), "core.linear", state_dict={"weight": torch.zeros(3, 7)}, cases=["matrix"])
    assert "missing: proj.weight" in str(e.value)


def test_reference_on_my_inputs():
    x = torch.randn(3, 5, dtype=torch.float64)
    out = certify.reference("core.softmax", x=x, axis=1)
    assert torch.allclose(out["y"], torch.softmax(x, 1), rtol=1e-12, atol=0)
    with pytest.raises(certify.CertifyError) as e:
        certify.reference("core.softmax", x=x, axis=1, temperature=2.0)
    assert "temperature" in str(e.value)


def test_binary_not_found(monkeypatch):
    monkeypatch.setenv("CERTIFY_BIN", "/nonexistent/certify")
    certify._cli._contracts.clear()
    with pytest.raises(certify.CertifyError) as e:
        certify.check(softmax, "core.softmax")
    assert "CERTIFY_BIN=/nonexistent/certify: not an executable file" in str(e.value)


def test_a_gradient_the_function_cannot_take_is_reported_missing():
    def linear_without_bias(x, weight):  # forgets bias: no output difference is possible to hide
        return x @ weight.T
    with pytest.raises(certify.CheckFailure) as e:
        certify.check(linear_without_bias, "core.linear", cases=["matrix"])
    msg = str(e.value)
    assert "matrix/grads/bias: only in golden" in msg and "<your outputs>" in msg
    assert "matrix/outputs/y: NOT CLOSE" in msg
