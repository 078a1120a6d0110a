"""The deliberately buggy layer norm must be caught, naming the case and the dataset; the fixed one passes.

Both are checked in float64: in float32 even torch's F.layer_norm misses torch.testing's Float32 tolerance on
the case offset_large_eps (values ≈ 50 ± 0.1, where float32 cancellation costs ~4 digits), so a float32 check of
layer norm would fail for the arithmetic, not for the bug."""
import pytest

import certify
from buggy_layer_norm import layer_norm, layer_norm_fixed


def test_the_bug_is_caught():
    with pytest.raises(certify.CheckFailure) as caught:
        certify.check(layer_norm, "core.layer_norm")
    message = str(caught.value)
    assert message.startswith("core.layer_norm (float64): cases last_axis")
    assert "last_axis/outputs/y: NOT CLOSE" in message
    assert "size_one_axis/outputs/y: NOT CLOSE" in message and "non-finite" in message
    failed = {d.name.split("/")[0] for d in caught.value.result.failures}
    assert failed == {"last_axis", "two_axes", "no_affine", "size_one_axis", "offset_large_eps", "whole_tensor"}


def test_the_fix_passes():
    assert certify.check(layer_norm_fixed, "core.layer_norm").passed
