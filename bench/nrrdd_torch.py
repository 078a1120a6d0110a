#!/usr/bin/python3
"""PyTorch side of the NRR-DD speed comparison (issue 13 §8): the same teacher (three blocks conv3x3-BN-ReLU with
avgpool2 between them, GAP-FC, widths 16/32/64) trained with Adam on the same number of Fashion-MNIST images, epochs
and batch size, and one NRR refinement pass (Adam, the CAM mask, CE + alpha_bn * L_bn) on one class's
ipc stitched images, in Float64 on one thread. Prints JSON with the seconds of each.

usage: bench/nrrdd_torch.py --teacher-train 12000 --teacher-epochs 2 --ipc 10 --nrr-steps 30
"""
import argparse, gzip, json, time
import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
F64 = torch.float64
ap = argparse.ArgumentParser()
ap.add_argument("--teacher-train", type=int, default=12000)
ap.add_argument("--teacher-epochs", type=int, default=3)
ap.add_argument("--batch", type=int, default=64)
ap.add_argument("--lr", type=float, default=2e-3)
ap.add_argument("--ipc", type=int, default=10)
ap.add_argument("--nrr-steps", type=int, default=30)
a = ap.parse_args()


def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data[4 + 4 * dims:], dtype=np.uint8).reshape(shape)


root = "/usr/share/datasets/fashion-mnist/"
x = (idx(root + "train-images-idx3-ubyte.gz")[:a.teacher_train].astype(np.float64) / 255 - 0.2860) / 0.3530
y = idx(root + "train-labels-idx1-ubyte.gz")[:a.teacher_train].astype(np.int64)
x = torch.tensor(x[:, None]), torch.tensor(y)
X, Y = x

g = torch.Generator().manual_seed(0)
conv1 = torch.nn.Conv2d(1, 16, 3, padding=1).double()
bn1 = torch.nn.BatchNorm2d(16).double()
conv2 = torch.nn.Conv2d(16, 32, 3, padding=1).double()
bn2 = torch.nn.BatchNorm2d(32).double()
conv3 = torch.nn.Conv2d(32, 64, 3, padding=1).double()
bn3 = torch.nn.BatchNorm2d(64).double()
fc = torch.nn.Linear(64, 10).double()
mods = [conv1, bn1, conv2, bn2, conv3, bn3, fc]


def forward(x):
    a1 = conv1(x)
    h = F.avg_pool2d(F.relu(bn1(a1)), 2)
    a2 = conv2(h)
    h = F.avg_pool2d(F.relu(bn2(a2)), 2)
    a3 = conv3(h)
    f = F.relu(bn3(a3))
    return fc(f.mean((2, 3))), f, [a1, a2, a3]


params = [p for m in mods for p in m.parameters()]
opt = torch.optim.Adam(params, lr=a.lr)
for m in mods:
    m.train()
t0 = time.perf_counter()
for epoch in range(a.teacher_epochs):
    perm = torch.randperm(X.shape[0], generator=g)
    for s in range(0, X.shape[0] - 1, a.batch):
        i = perm[s:s + a.batch]
        z, _, _ = forward(X[i])
        loss = F.cross_entropy(z, Y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
teacher_s = time.perf_counter() - t0
for m in mods:
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)

xs = X[Y == 0][:a.ipc].clone()
ys = torch.zeros(a.ipc, dtype=torch.long)
t0 = time.perf_counter()
m1 = torch.zeros_like(xs)
v1 = torch.zeros_like(xs)
for step in range(1, a.nrr_steps + 1):
    xv = xs.clone().requires_grad_(True)
    z, f, bnin = forward(xv)
    lbn = 0
    for l, (a_, bn) in enumerate(zip(bnin, [bn1, bn2, bn3])):
        mean = a_.mean((0, 2, 3))
        var = a_.permute(1, 0, 2, 3).reshape(a_.shape[1], -1).var(1, unbiased=False)
        lbn = lbn + (10.0 if l == 0 else 1.0) * (torch.norm(bn.running_var - var, 2) + torch.norm(bn.running_mean - mean, 2))
    L = F.cross_entropy(z, ys) + 0.01 * lbn
    gr, = torch.autograd.grad(L, xv)
    with torch.no_grad():
        if step == 1:  # the mask of the initial image (fixed, as the reproduction's default)
            A = torch.einsum("nk,nkhw->nhw", fc.weight[ys], f)
            C = torch.relu(A)
            lo, hi = C.amin((1, 2), keepdim=True), C.amax((1, 2), keepdim=True)
            C = torch.where(hi > lo, (C - lo) / (hi - lo).clamp_min(1e-300), torch.zeros_like(C))
            C = F.interpolate(C[:, None], size=xs.shape[2:], mode="bilinear", align_corners=False)
            M = (0.5 - C).clamp_min(0)
        m1 = 0.9 * m1 + 0.1 * gr
        v1 = 0.999 * v1 + 0.001 * gr * gr
        upd = (0.05 / (1 - 0.9 ** step)) * m1 / (v1.sqrt() / (1 - 0.999 ** step) ** 0.5 + 1e-8)
        xs = torch.where(M > 0, xs - M * upd, xs)
nrr_s = time.perf_counter() - t0
print(json.dumps({"torch": torch.__version__, "teacher_seconds": teacher_s, "nrr_seconds_per_class": nrr_s,
                  "teacher_train": a.teacher_train, "teacher_epochs": a.teacher_epochs, "ipc": a.ipc, "nrr_steps": a.nrr_steps}))
