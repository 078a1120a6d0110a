"""A layer norm with a deliberate, common bug: torch.var's default is the UNBIASED variance (divides by n − 1),
while layer normalisation uses the biased one (divides by n). Outputs are off by a factor √(n/(n−1)) before
the affine map; with one element per slice they are NaN."""
import torch


def layer_norm(x, normalized_shape, eps, weight=None, bias=None):
    dims = tuple(range(-len(normalized_shape), 0))
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True)  # BUG: should be x.var(dim=dims, unbiased=False, keepdim=True)
    y = (x - mean) / torch.sqrt(var + eps)
    if weight is not None:
        y = y * weight + bias
    return y


def layer_norm_fixed(x, normalized_shape, eps, weight=None, bias=None):
    dims = tuple(range(-len(normalized_shape), 0))
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, unbiased=False, keepdim=True)
    y = (x - mean) / torch.sqrt(var + eps)
    if weight is not None:
        y = y * weight + bias
    return y
