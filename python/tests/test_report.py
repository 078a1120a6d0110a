"""The plugin's HTML report, rendered from results directly."""
from certify._check import CheckResult, DatasetResult
from certify._report import bar, render


def result(protocol, passed, label, err, text="", case="rows"):
    return CheckResult(protocol=protocol, cases=[case], dtype="float64", passed=passed, report="", summary="",
                       datasets=[DatasetResult(f"{case}/outputs/y", passed, text or f"{case}/outputs/y: ok", err)],
                       rtol=1e-10, atol=1e-12, label=label)


def test_self_contained_deterministic_with_failures_skips_and_ledgers():
    rs = [result("iadg.metrics", True, "t.py::a", 1e-14),
          result("core.softmax", False, "t.py::b", 0.5, "rows/outputs/y: NOT CLOSE\n    actual 1.5, golden 1 <&>")]
    h = render(rs, skips=[("t.py::c", "fixtures not found")], date="2026-01-01T00:00:00Z")
    assert h == render(rs, skips=[("t.py::c", "fixtures not found")], date="2026-01-01T00:00:00Z")
    assert h.startswith("<!DOCTYPE html>") and h.endswith("</body></html>\n")
    for forbidden in ("<script", "<link", "<img", "src=", "url(", "@import"):
        assert forbidden not in h
    assert h.replace("http://www.w3.org/2000/svg", "").count("http") == 0
    assert '<span class="badge pass">1 certified</span><span class="badge fail">1 failed</span><span class="badge skip">1 skipped</span>' in h
    assert "actual 1.5, golden 1 &lt;&amp;&gt;" in h
    assert "<td>fixtures not found</td>" in h
    assert "<h3>IADG (Zhou et al., CVPR 2023)</h3>" in h, "the IADG claims ledger"
    assert "LAVA (Di Pierno" not in h, "only the ledgers of papers in the report"


def test_bar_is_log_scaled():
    b = bar(1e-14, 1e-10, True)
    assert 'width="36.7"' in b, "1e-14 on a 220 px scale over 1e-17…10"
    assert 'x="84.6"' in bar(None, 1e-10, True), "the tolerance tick at 1e-10"
    assert "#cf222e" in bar(0.5, 1e-10, False) and "#1a7f37" in bar(0.5, 1e-10, True)
