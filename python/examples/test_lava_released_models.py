"""LAVA's released models (github.com/adipiz99/LAVA-framework, MIT): a torch.nn.Module of your own, with your own
parameter names, loading the released ADA and ADMR checkpoints from their HDF5 conversion
(golden/generate/lava_convert.py CHECKPOINT.pt OUT.h5), certified against lava.official_models.

The fixtures are read in place from $CERTIFY_LAVA_FIXTURES or ../shared/fixtures/lava beside the Certify checkout;
where they are absent the test is skipped and says so."""
import os
from pathlib import Path

import pytest
import torch
from torch import nn

import certify


def fixtures():
    env = os.environ.get("CERTIFY_LAVA_FIXTURES")
    if env:
        return Path(env)
    from certify import _cli
    return (_cli.root() / ".." / "shared" / "fixtures" / "lava").resolve()


class LavaClassifier(nn.Module):
    """Encoder: four (Conv1d k9 s2 p4, BatchNorm, ReLU) blocks 1→32→64→128→256; attention gate σ(Conv1d k1);
    mean over time; Linear 256→128, ReLU, Linear 128→K."""

    def __init__(self, classes):
        super().__init__()
        chans = [1, 32, 64, 128, 256]
        self.blocks = nn.ModuleList(nn.ModuleDict({"conv": nn.Conv1d(a, b, 9, stride=2, padding=4), "norm": nn.BatchNorm1d(b)})
                                    for a, b in zip(chans, chans[1:]))
        self.gate = nn.Conv1d(256, 256, 1)
        self.hidden = nn.Linear(256, 128)
        self.out = nn.Linear(128, classes)

    def forward(self, waveform):
        z = waveform
        for b in self.blocks:
            z = torch.relu(b["norm"](b["conv"](z)))
        pooled = (z * torch.sigmoid(self.gate(z))).mean(dim=-1)
        return self.out(torch.relu(self.hidden(pooled)))


def official_name(mine):
    """My parameter names → the released state dict's (encoder.0.weight, attention.0.bias, classifier.4.weight, …)."""
    parts = mine.split(".")
    if parts[0] == "blocks":
        i, layer, rest = int(parts[1]), parts[2], ".".join(parts[3:])
        return f"encoder.{3 * i + (0 if layer == 'conv' else 1)}.{rest}"
    return {"gate": "attention.0", "hidden": "classifier.2", "out": "classifier.4"}[parts[0]] + "." + ".".join(parts[1:])


@pytest.mark.parametrize("model, classes, output", [("ADA_model.h5", 3, "logits_ada"), ("ADMR_model.h5", 6, "logits_admr")])
def test_released_model(model, classes, output):
    weights = fixtures() / model
    if not weights.is_file():
        pytest.skip(f"LAVA fixtures not found: {weights} (set CERTIFY_LAVA_FIXTURES to the folder of ADA_model.h5 and ADMR_model.h5)")
    result = certify.check_module(LavaClassifier(classes), "lava.official_models", state_dict=weights, name_map=official_name,
                                  dtype=torch.float64, outputs=[output])
    assert result.passed
