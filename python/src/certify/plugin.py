"""The pytest plugin (entry point pytest11 'certify'): @certify.cases parametrization and --certify-report."""
import os
import tempfile

import pytest

from . import Case, _check
from ._check import CheckFailure
from ._cli import CertifyError, contract

_skips = []   # (test id, reason) of every skipped test, for the report
_errors = []  # (test id, text) of every failed test
_passed = []  # ids of the tests that passed


def pytest_addoption(parser):
    group = parser.getgroup("certify")
    group.addoption("--certify-report", metavar="PATH", default=None,
                    help="write every certify check of the session into one self-contained HTML report")


def pytest_configure(config):
    config.addinivalue_line("markers", "certify_cases(protocol, only=None): one test per golden case of the protocol "
                                       "(fixture certify_case); set by @certify.cases")
    path = config.getoption("--certify-report", default=None)
    if path and (os.path.isdir(path) or os.path.islink(path)):
        raise pytest.UsageError(f"--certify-report {path}: is a directory or a link; name a file")
    # A nested session (pytester, in process) starts its own collection; pytest_unconfigure gives the outer one back.
    config._certify_saved = (list(_check._collected), list(_skips), list(_errors), list(_passed))
    for target in (_check._collected, _skips, _errors, _passed):
        target.clear()


def pytest_unconfigure(config):
    saved = getattr(config, "_certify_saved", None)
    if saved is not None:
        for target, items in zip((_check._collected, _skips, _errors, _passed), saved):
            target[:] = items


def pytest_generate_tests(metafunc):
    if "certify_case" not in metafunc.fixturenames:
        return
    mark = metafunc.definition.get_closest_marker("certify_cases")
    if mark is None:
        return
    protocol = mark.args[0] if mark.args else mark.kwargs.get("protocol")
    only = mark.kwargs.get("only")
    try:
        names = list(contract(protocol)["cases"])
        if only is not None:
            only = [only] if isinstance(only, str) else list(only)
            _check._select_cases(contract(protocol), only)
            names = [n for n in names if n in only]
        params = [Case(protocol, n) for n in names]
        ids = names
    except CertifyError as e:  # reported when the test runs, as one clear failure
        params, ids = [Case(protocol, "error", error=str(e))], [f"{protocol}-error"]
    metafunc.parametrize("certify_case", params, ids=ids)


@pytest.fixture
def certify_case():
    """Set by @certify.cases("<protocol id>"): one golden case per test item."""
    raise CertifyError("the certify_case fixture needs @certify.cases(\"<protocol id>\") on the test")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    outer = _check._current_test[0]
    _check._current_test[0] = item.nodeid
    try:
        yield
    finally:
        _check._current_test[0] = outer


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if call.excinfo is not None and call.when in ("setup", "call") and isinstance(call.excinfo.value, (CheckFailure, CertifyError)):
        # the package's own failures: the message, never a traceback into the package
        e = call.excinfo.value
        kind = "not certified" if isinstance(e, CheckFailure) else "certify error"
        rep.longrepr = f"{item.nodeid}: {kind}\n{e}"


def pytest_runtest_logreport(report):
    if report.skipped and report.when in ("setup", "call"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if reason.startswith("Skipped: "):
            reason = reason[len("Skipped: "):]
        _skips.append((report.nodeid, reason))
    elif report.failed and report.when == "call":
        _errors.append((report.nodeid, str(report.longrepr)))
    elif report.passed and report.when == "call":
        _passed.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    path = session.config.getoption("--certify-report")
    if not path:
        return
    from ._report import render
    text = render(list(_check._collected), skips=list(_skips), errors=list(_errors), passed_tests=list(_passed))
    write_atomically(path, text)
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line(f"certify: wrote {path} ({len(_check._collected)} checks, {len(_skips)} skipped)")


def write_atomically(path, text):
    """Write to a temporary file beside the target, then rename over it: never a half-written report."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".certify-report-", dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # like any file the user writes (mkstemp makes it 0600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
