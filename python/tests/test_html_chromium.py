"""The HTML reports in a real browser: headless Chromium renders `certify run --report FILE.html` and the
plugin's report to PNG. Skipped, saying why, where Chromium is absent (`make python-test` installs it).
Set CERTIFY_KEEP_PNG=DIR to keep the screenshots."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import certify
from certify import _cli
from certify._check import CheckResult, DatasetResult
from certify._report import render

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install chromium; "
                                                          "`make python-test` installs it)")
GREEN, RED = (0x1a, 0x7f, 0x37), (0xcf, 0x22, 0x2e)


def screenshot(html_path, png_path, height=1400):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
           "--no-first-run", "--disable-extensions", "--disable-background-networking", "--proxy-server=127.0.0.1:9",
           f"--user-data-dir={png_path.parent / 'chromium-profile'}", f"--window-size=1200,{height}",
           f"--screenshot={png_path}", html_path.resolve().as_uri()]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert png_path.is_file(), f"chromium wrote no screenshot (exit {p.returncode}): {p.stderr[-2000:]}"
    data = png_path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    keep = os.environ.get("CERTIFY_KEEP_PNG")
    if keep:
        os.makedirs(keep, exist_ok=True)
        shutil.copy(png_path, Path(keep) / png_path.name)
    return png_path


def colors(png):
    Image = pytest.importorskip("PIL.Image", reason="Pillow (python3-pil) is needed to read the screenshot's pixels")
    im = Image.open(png).convert("RGB")
    return set(im.getdata())


def test_cli_report_renders(tmp_path):
    html = tmp_path / "certify-run.html"
    rc, out, err = _cli.run(["run", "core.softmax", "core.conv2d", "lava.official_models", "--no-gradcheck", "--trials", "2",
                             "--report", str(html)])
    assert rc == 0, out + err
    text = html.read_text()
    assert "<script" not in text and "core.conv2d" in text
    png = screenshot(html, tmp_path / "certify-run.png")
    c = colors(png)
    assert GREEN in c, "the certified badges and error bars are drawn"


def symlink_tree(src, dst):
    for folder, _, files in os.walk(src):
        target = Path(dst) / Path(folder).relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for f in files:
            (target / f).symlink_to(Path(folder) / f)


def test_failing_and_skipped_run_renders(tmp_path, monkeypatch):
    """A checkout whose softmax golden is off by 1e-3 at rows[1, 2], without the LAVA fixtures: one protocol fails,
    one is skipped; the page shows actual vs golden at the worst index and the reason."""
    import h5py
    real = _cli.root()
    root = tmp_path / "root"
    for d in ("protocols", "golden"):
        symlink_tree(real / d, root / d)
    softmax = root / "golden" / "core" / "softmax.h5"
    softmax.unlink()
    shutil.copy(real / "golden" / "core" / "softmax.h5", softmax)
    with h5py.File(softmax, "r+") as f:
        y = f["rows/outputs/y"]
        a = y[()]
        a[1, 2] += 1e-3
        y[...] = a
    monkeypatch.setenv("CERTIFY_ROOT", str(root))
    monkeypatch.setenv("CERTIFY_LAVA_FIXTURES", str(tmp_path / "no-fixtures"))
    html = tmp_path / "failing-run.html"
    rc, out, err = _cli.run(["run", "core.softmax", "lava.official_models", "--no-gradcheck", "--trials", "2", "--report", str(html)])
    assert rc == 1, out + err
    text = html.read_text()
    assert '<h2 id="core.softmax"><code>core.softmax</code> <span class="badge fail">FAILED</span></h2>' in text
    assert "at index [1, 2]" in text and "fixtures not found" in text
    c = colors(screenshot(html, tmp_path / "failing-run.png", height=1100))
    assert RED in c, "the failed protocol's badge and error bar are red"


def test_plugin_report_renders(tmp_path):
    ok = CheckResult(protocol="core.softmax", cases=["rows"], dtype="float32", passed=True, report="", summary="",
                     datasets=[DatasetResult("rows/outputs/y", True, "rows/outputs/y: ok", 3e-8)], rtol=1.3e-6, atol=1e-5,
                     label="test_x.py::test_softmax[rows]")
    bad = CheckResult(protocol="core.layer_norm", cases=["last_axis"], dtype="float32", passed=False, report="", summary="",
                      datasets=[DatasetResult("last_axis/outputs/y", False,
                                              "last_axis/outputs/y: NOT CLOSE\n    greatest absolute difference: 0.1 at index [0, 1]; actual 1.1, golden 1", 0.09)],
                      rtol=1.3e-6, atol=1e-5, label="test_x.py::test_ln")
    html = tmp_path / "pytest-report.html"
    html.write_text(render([ok, bad], skips=[("test_x.py::test_lava", "LAVA fixtures not found: /nowhere")], date="2026-01-01T00:00:00Z"))
    c = colors(screenshot(html, tmp_path / "pytest-report.png", height=900))
    assert GREEN in c and RED in c, "a passing (green) and a failing (red) bar are drawn"


def test_audit_page_renders(tmp_path):
    """certify audit --html on a small built-in audit: the DiffROAR curve with its band and the localization curves."""
    source = Path("/usr/share/datasets/fashion-mnist")
    if not source.is_dir():
        pytest.skip(f"Fashion-MNIST is not installed at {source} (Debian: dataset-fashion-mnist)")
    html = tmp_path / "audit.html"
    rc, out, err = _cli.run(["audit", "--method", "gradient", "--train-limit", "300", "--test-limit", "100", "--seeds", "2",
                             "--ks", "0.1,0.5,1", "--learner-epochs", "1", "--model-epochs", "1", "--jobs", "1", "--html", str(html)])
    assert rc == 0, err[-2000:]
    text = html.read_text()
    assert text.count("<svg ") == 2 and "<polygon" in text and "Localization" in text and "<script" not in text
    c = colors(screenshot(html, tmp_path / "audit.png", height=1000))
    assert (70, 130, 180) in c, "the DiffROAR curve (steelblue) is drawn"
