"""Certify your own implementation of an ML method against Certify's independent goldens.

    import certify, torch
    certify.check(my_softmax, "core.softmax", dtype=torch.float32)

Contracts come from `certify show --json`, goldens are read with h5py, and every comparison is `certify diff`,
so tolerances and verdicts are exactly the CLI's. In pytest, `@certify.cases("core.conv2d")` makes one test
per golden case (the fixture `certify_case`), and `pytest --certify-report=out.html` writes one HTML report.
"""
from ._check import CheckFailure, CheckResult, DatasetResult, check, check_module, reference
from ._cli import CertifyError, contract

__version__ = "0.3.0"
__all__ = ["check", "check_module", "reference", "cases", "contract", "Case", "CheckResult", "DatasetResult",
           "CheckFailure", "CertifyError"]


class Case:
    """One golden case of a protocol: the value of the `certify_case` fixture under @certify.cases."""

    def __init__(self, protocol, name, error=None):
        self.protocol, self.name, self.error = protocol, name, error

    def __repr__(self):
        return f"Case({self.protocol!r}, {self.name!r})"

    def _ok(self):
        __tracebackhide__ = True
        if self.error is not None:
            raise CertifyError(self.error)

    def check(self, fn, **kwargs):
        """certify.check(fn, protocol, cases=[this case], **kwargs)."""
        __tracebackhide__ = True
        self._ok()
        return check(fn, self.protocol, cases=[self.name], **kwargs)

    def check_module(self, module, **kwargs):
        __tracebackhide__ = True
        self._ok()
        return check_module(module, self.protocol, cases=[self.name], **kwargs)


def cases(protocol, only=None):
    """Decorator: parametrize a pytest test over the protocol's golden cases (or the `only` ones); the test takes
    the fixture `certify_case` and calls certify_case.check(fn, dtype=…)."""
    import pytest
    return pytest.mark.certify_cases(protocol, only=only)
