"""The pytest plugin's HTML report: one self-contained file (inline CSS and SVG, no script, no network), laid out
like `certify run --report out.html`: per protocol its status and, per compared dataset, the worst relative error
against the allowed tolerance as a bar on a log scale; failing datasets with the CLI's text (actual vs golden at
the worst index); skipped tests with their reason; per paper, its claims ledger."""
import datetime
import html
import math

from . import __version__, _cli

CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;color:#1f2328;padding:0 16px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h2 code{font-size:16px}h3{font-size:15px;margin:18px 0 6px}.meta{color:#59636e;font-size:13px;margin:0 0 12px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{border-bottom:1px solid #d8dee4;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:8px;font-size:12px;overflow-x:auto;white-space:pre-wrap}
p{font-size:14px}.badge{display:inline-block;border-radius:10px;padding:1px 9px;font-size:12px;font-weight:600;color:#fff;white-space:nowrap}
.pass{background:#1a7f37}.fail{background:#cf222e}.skip{background:#9a6700}.info{background:#59636e}
.summary{font-size:14px;margin:8px 0 16px}.summary .badge{margin-right:6px}.legend{color:#59636e;font-size:12px}
"""

LO, HI = -17.0, 1.0  # the bars' log10 range


def esc(s):
    return html.escape(str(s), quote=True)


def fmt(x):
    if x is None:
        return "–"
    if x == 0:
        return "0"
    if math.isinf(x) or math.isnan(x):
        return str(x)
    return f"{x:.2e}"


def bar(err, tol, passed, width=220, height=16):
    """Worst relative error (bar) against the tolerance (black tick) on a log scale from 1e-17 to 10."""
    def X(v):
        lv = LO if v <= 0 else min(max(math.log10(v), LO), HI)
        return round((lv - LO) / (HI - LO) * width, 1)
    color = "#1a7f37" if passed else "#cf222e"
    title = f"worst relative error {fmt(err)}" + (f", tolerance {fmt(tol)}" if tol is not None else "")
    s = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 70}" height="{height}" role="img" '
         f'aria-label="{esc(title)}"><title>{esc(title)}</title>'
         f'<rect x="0" y="2" width="{width}" height="{height - 4}" fill="#eaeef2"/>')
    if err is not None and err > 0:
        s += f'<rect x="0" y="3" width="{X(err) if math.isfinite(err) else width}" height="{height - 6}" fill="{color}"/>'
    elif err is not None:
        s += f'<rect x="0" y="3" width="2" height="{height - 6}" fill="{color}"/>'
    if tol is not None and tol > 0:
        s += f'<rect x="{X(tol) - 1}" y="0" width="2" height="{height}" fill="#1f2328"/>'
    s += f'<text x="{width + 6}" y="{height - 4}" font-size="11" font-family="sans-serif" fill="#1f2328">{esc(fmt(err))}</text>'
    return s + "</svg>"


def _ledger(prefix):
    """The claims ledger protocols/<prefix>/claims.yaml, when PyYAML and the file are there."""
    try:
        import yaml
        path = _cli.root() / "protocols" / prefix / "claims.yaml"
        if not path.is_file():
            return None
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except Exception:  # noqa: BLE001 — the ledger is context; the report is written without it
        return None


def ledger_html(doc):
    s = f"<h3>{esc(doc.get('paper', ''))}</h3>\n<table><tr><th>claim</th><th>where</th><th>status</th></tr>\n"
    cls = {"reproduced": "pass", "refuted": "fail", "inconclusive": "skip"}
    for c in doc.get("claims", []):
        st = c.get("status", "")
        s += (f"<tr><td><code>{esc(c.get('id', ''))}</code> {esc(c.get('claim', ''))}</td><td>{esc(c.get('location', ''))}</td>"
              f"<td><span class=\"badge {cls.get(st, 'info')}\">{esc(st)}</span></td></tr>\n")
    return s + "</table>\n"


def render(results, skips=(), errors=(), date=None, passed_tests=()):
    """results: CheckResults in the order they ran; skips and errors: (test id, text) of skipped and failed tests;
    passed_tests: ids of tests that passed — a failed check inside a passing test was expected by that test
    (pytest.raises), and is shown as "caught" rather than counted as a failure."""
    date = date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    passed_tests = set(passed_tests)

    def expected(r):
        return not r.passed and r.label in passed_tests

    by_protocol = {}
    for r in results:
        by_protocol.setdefault(r.protocol, []).append(r)
    status = {pid: ("FAILED" if any(not r.passed and not expected(r) for r in rs) else "certified")
              for pid, rs in by_protocol.items()}
    n_pass = sum(1 for v in status.values() if v == "certified")
    n_caught = sum(1 for r in results if expected(r))
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           "<title>Certify report (pytest)</title>", f"<style>{CSS}</style></head><body>",
           "<h1>Certify report</h1>",
           f'<p class="meta">pytest plugin of certify {esc(__version__)} · {esc(date)} · every verdict is <code>certify diff</code>\'s</p>',
           f'<p class="summary"><span class="badge pass">{n_pass} certified</span><span class="badge fail">{len(status) - n_pass} failed</span>'
           f'<span class="badge skip">{len(skips)} skipped</span> {len(by_protocol)} protocols, {len(results)} checks'
           + (f", {n_caught} failing as their tests expect (caught)" if n_caught else "") + "</p>"]
    out.append('<h2>Protocols</h2>\n<table><tr><th>protocol</th><th>status</th><th>checks passed</th>'
               '<th>worst relative error vs tolerance <span class="legend">(log scale 1e-17…10; black tick: tolerance; per protocol the check nearest its tolerance)</span></th></tr>')
    for pid in sorted(by_protocol):
        rs = by_protocol[pid]
        ok = status[pid] == "certified"
        judged = [r for r in rs if not expected(r)]
        # The check closest to (or furthest past) its own tolerance: its error and its tolerance (dtypes differ).
        rated = [r for r in judged if r.worst_rel_error is not None and r.rtol]
        worst = max(rated, key=lambda r: r.worst_rel_error / r.rtol, default=None)
        badge = '<span class="badge pass">certified</span>' if ok else '<span class="badge fail">FAILED</span>'
        caught = sum(1 for r in rs if expected(r))
        out.append(f'<tr><td><a href="#{esc(pid)}"><code>{esc(pid)}</code></a></td><td>{badge}</td>'
                   f'<td>{sum(r.passed for r in rs)}/{len(rs)}' + (f" ({caught} caught)" if caught else "") + "</td>"
                   f'<td>{bar(worst.worst_rel_error if worst else None, worst.rtol if worst else None, ok)}</td></tr>')
    out.append("</table>")
    for pid in sorted(by_protocol):
        out.append(f'<h2 id="{esc(pid)}"><code>{esc(pid)}</code></h2>')
        out.append("<table><tr><th>test</th><th>dtype</th><th>dataset</th><th>status</th>"
                   "<th>worst relative error vs tolerance</th></tr>")
        failing = []
        for r in by_protocol[pid]:
            for i, d in enumerate(r.datasets or []):
                if d.passed:
                    st = '<span class="badge pass">ok</span>'
                elif expected(r):
                    st = '<span class="badge info">caught</span>'
                else:
                    st = '<span class="badge fail">failed</span>'
                test = f"<code>{esc(r.label)}</code>" if i == 0 else ""
                out.append(f"<tr><td>{test}</td><td>{esc(r.dtype) if i == 0 else ''}</td>"
                           f"<td><code>{esc(d.name)}</code></td><td>{st}</td><td>{bar(d.worst_rel_error, r.rtol, d.passed)}</td></tr>")
                if not d.passed:
                    failing.append((r, d))
        out.append("</table>")
        if failing:
            out.append("<h3>Failing datasets (actual vs golden at the worst index)</h3>")
            for r, d in failing:
                note = " — expected by its test (caught)" if expected(r) else ""
                out.append(f'<p class="meta"><code>{esc(r.label)}</code>{esc(note)}</p><pre>{esc(d.text)}</pre>')
    labels = {r.label for r in results}
    other = [(t, x) for t, x in errors if t not in labels]
    if other:
        out.append("<h2>Other failing tests</h2>")
        for t, x in other:
            out.append(f"<h3><code>{esc(t)}</code></h3><pre>{esc(x[-4000:])}</pre>")
    if skips:
        out.append("<h2>Skipped</h2>\n<table><tr><th>test</th><th>reason</th></tr>")
        for t, reason in skips:
            out.append(f"<tr><td><code>{esc(t)}</code></td><td>{esc(reason)}</td></tr>")
        out.append("</table>")
    prefixes = sorted({pid.split(".")[0] for pid in by_protocol})
    ledgers = [doc for doc in (_ledger(p) for p in prefixes) if doc]
    if ledgers:
        out.append("<h2>Papers: claims ledgers</h2>")
        for doc in ledgers:
            out.append(ledger_html(doc))
    out.append("</body></html>")
    return "\n".join(out) + "\n"
