"""The pytest plugin, run in an inner pytest session (pytester): one item per golden case, clean failures,
and --certify-report."""
import os

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestAssertRewriteWarning")

TESTS = '''
import torch, certify
import torch.nn.functional as F

@certify.cases("core.conv2d")
def test_conv2d(certify_case):
    certify_case.check(lambda x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1:
                       F.conv2d(x, weight, bias, stride, padding, dilation, groups), dtype=torch.float32)

@certify.cases("core.softmax", only=["rows", "large_logits"])
def test_naive_softmax(certify_case):
    certify_case.check(lambda x, axis: torch.exp(x) / torch.exp(x).sum(axis, keepdim=True), dtype=torch.float32)

@certify.cases("core.sofmax")
def test_typo(certify_case):
    certify_case.check(lambda x, axis: x)

def test_expects_the_bug():
    import pytest
    with pytest.raises(certify.CheckFailure):
        certify.check(lambda x, axis: x, "core.softmax", cases=["rows"])

def test_forgot_the_decorator(certify_case):
    pass

def test_skipped():
    import pytest
    pytest.skip("fixtures not found: /nowhere")
'''


def current_umask():
    u = os.umask(0)
    os.umask(u)
    return u


def test_items_report_and_clean_failures(pytester):
    pytester.makepyfile(test_user=TESTS)
    report = pytester.path / "out" / "report.html"
    r = pytester.runpytest("-p", "no:cacheprovider", f"--certify-report={report}", "-v")
    out = r.stdout.str()
    for case in ["basic", "stride_pad_rect", "dilation_no_bias", "depthwise", "depthwise_multiplier2", "size_one"]:
        assert f"test_user.py::test_conv2d[{case}] PASSED" in out
    assert "test_user.py::test_naive_softmax[rows] PASSED" in out
    assert "test_user.py::test_naive_softmax[large_logits] FAILED" in out
    assert "test_user.py::test_typo[core.sofmax-error] FAILED" in out
    r.assert_outcomes(passed=8, failed=2, skipped=1, errors=1)
    assert "the certify_case fixture needs @certify.cases" in out
    assert "plugin.py" not in out
    # The failure names protocol, case and dataset, with the CLI's report, and no traceback into the package.
    assert "core.softmax (float32): case large_logits — not certified" in out
    assert "large_logits/outputs/y: NOT CLOSE" in out and "non-finite mismatches" in out
    assert "core.sofmax" in out and "core.softmax" in out
    assert "_check.py" not in out and "_cli.py" not in out and "Traceback" not in out
    assert report.is_file()
    html = report.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html and "src=" not in html
    assert "core.conv2d" in html and "large_logits/outputs/y" in html
    assert "fixtures not found: /nowhere" in html
    assert html.count('<span class="badge fail">failed</span>') >= 1
    # A failure the test expects (pytest.raises) is shown as caught, not counted as a failure.
    assert '<span class="badge info">caught</span>' in html and "1 failing as their tests expect (caught)" in html
    assert '<span class="badge pass">1 certified</span><span class="badge fail">1 failed</span>' in html
    assert report.stat().st_mode & 0o777 == 0o666 & ~current_umask()
    assert [p.name for p in report.parent.iterdir()] == ["report.html"], "no temporary file left behind"


def test_report_into_a_directory_is_refused(pytester):
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    os.mkdir(pytester.path / "adir")
    r = pytester.runpytest("-p", "no:cacheprovider", f"--certify-report={pytester.path / 'adir'}")
    assert "is a directory or a link" in r.stderr.str() + r.stdout.str()
