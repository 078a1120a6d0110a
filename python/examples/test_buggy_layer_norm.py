"""The deliberately buggy layer norm must be caught, naming the case and the dataset; the fixed one passes."""
import pytest
import torch

import certify
from buggy_layer_norm import layer_norm, layer_norm_fixed


def test_the_bug_is_caught():
    with pytest.raises(certify.CheckFailure) as caught:
        certify.check(layer_norm, "core.layer_norm", dtype=torch.float32)
    message = str(caught.value)
    assert message.startswith("core.layer_norm (float32): cases last_axis")
    assert "last_axis/outputs/y: NOT CLOSE" in message
    assert "size_one_axis/outputs/y: NOT CLOSE" in message and "non-finite" in message
    failed = {d.name.split("/")[0] for d in caught.value.result.failures}
    assert failed == {"last_axis", "two_axes", "no_affine", "size_one_axis", "offset_large_eps", "whole_tensor"}


def test_the_fix_passes():
    assert certify.check(layer_norm_fixed, "core.layer_norm", dtype=torch.float32).passed
