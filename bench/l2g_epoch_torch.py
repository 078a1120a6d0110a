#!/usr/bin/python3
"""One training epoch of the L2G experiment's tiny online VIS model in PyTorch (CPU, Float64, one thread), for the speed ratio
against `certify l2g experiment --epochs 1` (bench/README.md). Same sizes as Sources/L2G/Experiment.swift: 16×16 frames with two
coordinate channels, 5 frames, 48 videos, 2 objects, 4 queries, E = 16, C = 8, 2 heads, one aligner layer (self, cross, FFN,
post-norm), Adam 3e-3, first-frame Hungarian matching kept over the clip, CE (no-object 0.1) + BCE + Dice (2/5/5).
The videos are drawn with NumPy (the timing does not depend on their values).

usage: /usr/bin/python3 bench/l2g_epoch_torch.py [--arm l2g|propagation] [--videos 48]
"""
import argparse
import time

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)
F = torch.nn.functional
N, T, Q, E, C, K = 16, 5, 4, 16, 8, 3


def videos(n, rng):
    out = []
    yy, xx = np.mgrid[0:N, 0:N] + 0.5
    for _ in range(n):
        frames = rng.normal(0, 0.15, (T, N, N))
        masks = np.zeros((2, T, N, N))
        cls = rng.integers(0, K, 2)
        for o in range(2):
            cy, cx, vy, vx, r = rng.uniform(3.5, 12.5), (3.5 if o == 0 else 12.5), rng.uniform(-1, 1), (1 if o == 0 else -1) * rng.uniform(1.2, 2.2), rng.uniform(2.2, 3.2)
            for f in range(T):
                masks[o, f] = (yy - cy - vy * f) ** 2 + (xx - cx - vx * f) ** 2 <= r * r
        masks[0] *= 1 - masks[1]
        frames += 0.7 * masks[0] + masks[1]
        out.append((torch.tensor(frames), torch.tensor(cls), torch.tensor(masks)))
    return out


class Tiny(torch.nn.Module):
    def __init__(self, aligner):
        super().__init__()
        self.conv1, self.conv2 = torch.nn.Conv2d(3, C, 3, padding=1), torch.nn.Conv2d(C, C, 3, padding=1)
        self.key = torch.nn.Linear(C, E)
        self.query = torch.nn.Parameter(torch.randn(Q, 1, E))
        self.dec = torch.nn.MultiheadAttention(E, 2)
        self.ln1, self.ln2 = torch.nn.LayerNorm(E), torch.nn.LayerNorm(E)
        self.ff1, self.ff2 = torch.nn.Linear(E, 2 * E), torch.nn.Linear(2 * E, E)
        self.cls, self.emb = torch.nn.Linear(E, K + 1), torch.nn.Linear(E, C)
        self.aligner = aligner
        if aligner:
            self.sa, self.ca = torch.nn.MultiheadAttention(E, 2), torch.nn.MultiheadAttention(E, 2)
            self.n1, self.n2, self.n3 = torch.nn.LayerNorm(E), torch.nn.LayerNorm(E), torch.nn.LayerNorm(E)
            self.a1, self.a2 = torch.nn.Linear(E, 2 * E), torch.nn.Linear(2 * E, E)
        c = (torch.arange(N * N) % N) / (N - 1) - 0.5
        self.coords = torch.stack([c, (torch.arange(N * N) // N) / (N - 1) - 0.5]).reshape(2, N, N)

    def forward(self, frames):
        prev, outs = None, []
        for f in frames:
            x = torch.cat([f[None], self.coords])[None]
            feat = self.conv2(torch.relu(self.conv1(x)))
            mem = self.key(feat.reshape(C, N * N).T)[:, None]
            q0 = self.query if self.aligner or prev is None else prev
            q = self.ln1(q0 + self.dec(q0, mem, mem)[0])
            q = self.ln2(q + self.ff2(torch.relu(self.ff1(q))))
            if self.aligner:
                g = q if prev is None else prev
                g = self.n1(g + self.sa(g, g, g)[0])
                g = self.n2(g + self.ca(g, q, q)[0])
                g = self.n3(g + self.a2(torch.relu(self.a1(g))))
            else:
                g = q
            prev = g
            qf = g[:, 0]
            outs.append((self.cls(qf), self.emb(qf) @ feat.reshape(C, N * N)))
        return outs


def loss(model, frames, cls, masks):
    outs = model(frames)
    g = masks.shape[0]
    with torch.no_grad():
        lg, mk = outs[0]
        t0 = masks[:, 0].reshape(g, -1)
        pos = F.binary_cross_entropy_with_logits(mk, torch.ones_like(mk), reduction="none")
        neg = F.binary_cross_entropy_with_logits(mk, torch.zeros_like(mk), reduction="none")
        s = mk.sigmoid()
        cost = 5 * (pos @ t0.T + neg @ (1 - t0).T) / mk.shape[1] - 2 * lg.softmax(-1)[:, cls] + 5 * (1 - (2 * s @ t0.T + 1) / (s.sum(-1)[:, None] + t0.sum(-1)[None] + 1))
    rows, cols = linear_sum_assignment(cost.numpy())
    w = torch.ones(K + 1)
    w[-1] = 0.1
    total = 0
    for f, (lg, mk) in enumerate(outs):
        target = torch.full((Q,), K)
        target[rows] = cls[cols]
        ce = F.cross_entropy(lg, target, w)
        src, tgt = mk[rows], masks[cols, f].reshape(len(cols), -1)
        bce = F.binary_cross_entropy_with_logits(src, tgt, reduction="sum") / (src.shape[1] * g)
        s = src.sigmoid()
        dice = (1 - (2 * (s * tgt).sum(-1) + 1) / (s.sum(-1) + tgt.sum(-1) + 1)).sum() / g
        total = total + 2 * ce + 5 * bce + 5 * dice
    return total / len(outs)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--arm", default="l2g")
    ap.add_argument("--videos", type=int, default=48)
    a = ap.parse_args()
    torch.manual_seed(0)
    data = videos(a.videos, np.random.default_rng(0))
    model = Tiny(a.arm == "l2g")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    t0 = time.perf_counter()
    for frames, cls, masks in data:
        opt.zero_grad()
        l = loss(model, frames, cls, masks)
        l.backward()
        opt.step()
    print(f"{a.arm}: one epoch of {a.videos} videos in {time.perf_counter() - t0:.3f} s (last loss {l.item():.4f})")
