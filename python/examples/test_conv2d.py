"""The README's five-line test: F.conv2d in float32, one pytest item per golden case of core.conv2d."""
import certify, torch
import torch.nn.functional as F

@certify.cases("core.conv2d")
def test_conv2d(certify_case):
    certify_case.check(lambda x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1: F.conv2d(x, weight, bias, stride, padding, dilation, groups), dtype=torch.float32)
