"""Finding and running the `certify` binary, and reading protocol contracts from `certify show --json`.

Every verdict comes from the binary (`certify diff`), so tolerances and decisions are exactly the CLI's.
"""
import json
import os
import shutil
import subprocess
from pathlib import Path


class CertifyError(Exception):
    """A problem that is not a failed comparison: the binary is missing, the protocol id is unknown, a case
    name does not exist, the CLI reported an error. The message is one or a few readable lines."""


def binary():
    """The `certify` binary: $CERTIFY_BIN, else `certify` on PATH, else bin/certify next to this package."""
    env = os.environ.get("CERTIFY_BIN")
    if env:
        if not (os.path.isfile(env) and os.access(env, os.X_OK)):
            raise CertifyError(f"CERTIFY_BIN={env}: not an executable file")
        return env
    found = shutil.which("certify")
    if found:
        return found
    beside = Path(__file__).resolve().parent / "bin" / "certify"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    raise CertifyError("the certify binary was not found: set CERTIFY_BIN=/path/to/certify, put certify on PATH, "
                       "or build it with `swift build -c release --product certify` (then CERTIFY_BIN=.build/release/certify)")


def _is_root(d):
    return (d / "protocols").is_dir() and (d / "golden").is_dir()


def root():
    """The Certify checkout whose protocols and goldens apply: $CERTIFY_ROOT, else the nearest folder above the
    working directory holding protocols/ and golden/, else the one above the binary (a checkout's .build)."""
    env = os.environ.get("CERTIFY_ROOT")
    if env:
        if not _is_root(Path(env)):
            raise CertifyError(f"CERTIFY_ROOT={env}: no protocols/ and golden/ folders there")
        return Path(env).resolve()
    starts = [Path.cwd()]
    try:
        starts.append(Path(os.path.realpath(binary())).parent)
    except CertifyError:
        pass
    for start in starts:
        for d in [start, *start.parents]:
            if _is_root(d):
                return d.resolve()
    raise CertifyError("cannot find Certify's protocols and goldens: set CERTIFY_ROOT to a Certify checkout "
                       "(the folder with protocols/ and golden/)")


def run(args, check_error=True):
    """Runs `certify ARGS`; returns (exit code, stdout, stderr). Exit 2 raises CertifyError with the CLI's message
    unless check_error is False."""
    env = dict(os.environ)
    env["CERTIFY_ROOT"] = str(root())
    try:
        p = subprocess.run([binary(), *args], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    except OSError as e:
        raise CertifyError(f"cannot run {binary()}: {e.strerror or e}") from None
    if check_error and p.returncode not in (0, 1):
        raise CertifyError(cli_message(p.stderr) or f"certify {' '.join(args[:2])} failed with exit code {p.returncode}")
    return p.returncode, p.stdout, p.stderr


def cli_message(stderr):
    """The CLI's error text without its 'certify: error: ' prefix."""
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    text = "\n".join(lines)
    for prefix in ("certify: error: ", "Error: ", "certify: "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return text


_contracts = {}


def contract(protocol_id):
    """The protocol's contract (`certify show --json ID`): names, shapes, dtypes, tolerances, cases."""
    if not isinstance(protocol_id, str) or not protocol_id:
        raise CertifyError(f"a protocol id is a string such as 'core.conv2d', got {protocol_id!r}")
    if protocol_id not in _contracts:
        _, out, _ = run(["show", "--json", protocol_id])
        doc = json.loads(out)
        if isinstance(doc, list) or doc.get("id") != protocol_id:
            ids = [d["id"] for d in (doc if isinstance(doc, list) else [doc])]
            shown = ", ".join(ids[:8]) + (f", … ({len(ids)} in all)" if len(ids) > 8 else "")
            raise CertifyError(f"'{protocol_id}' is a prefix, not a protocol id; it names {shown}")
        _contracts[protocol_id] = doc
    return _contracts[protocol_id]


def golden_path(c):
    return root() / c["golden"]
