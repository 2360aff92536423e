#!/usr/bin/env python3
"""make_augment.py — goldens for lib/method/augment.c (tests/c/test_augment.c).

DiffAugment's colour, translation and cutout (Zhao et al. 2020) transcribed
in PyTorch float64 with fixed per-sample parameters (the C side draws them
from its own streams; here they are given): for each policy the augmented
images y and dL/dx of L = sum(y * Rw) by autograd.  Images 3 x 7 x 6 (odd and
unequal sides), three samples: a shift past the border, a cutout square
partly outside the image.  Writes tests/ref/augment/augment.safetensors."""
import os
import numpy as np
import torch
import torch.nn.functional as F
from safetensors_write import write_st

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "augment")
B, C, H, W = 3, 3, 7, 6
CH, CW = int(H * 0.5 + 0.5), int(W * 0.5 + 0.5)  # cutout sides


def color(x, p):
    x = x + p[:, 0].view(-1, 1, 1, 1)
    m = x.mean(dim=1, keepdim=True)
    x = (x - m) * p[:, 1].view(-1, 1, 1, 1) + m
    m = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - m) * p[:, 2].view(-1, 1, 1, 1) + m


def translation(x, s):
    # y[i, j] = x[i + ty, j + tx], zero outside: pad by the largest shift, then slice
    P = int(np.abs(s[:, :2]).max())
    xp = F.pad(x, [P, P, P, P])
    return torch.stack([xp[n, :, P + s[n, 0]:P + s[n, 0] + H, P + s[n, 1]:P + s[n, 1] + W] for n in range(B)])


def cutout(x, s):
    mask = torch.ones(B, 1, H, W, dtype=x.dtype)
    for n in range(B):
        y0, x0 = max(s[n, 2], 0), max(s[n, 3], 0)
        mask[n, :, y0:max(s[n, 2] + CH, 0), x0:max(s[n, 3] + CW, 0)] = 0
    return x * mask


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(15)
    x0 = torch.rand(B, C, H, W, generator=g, dtype=torch.float64) * 2 - 1
    Rw = torch.randn(B, C, H, W, generator=g, dtype=torch.float64)
    # brightness, saturation, contrast per sample (DiffAugment's ranges)
    pc = torch.tensor([[0.31, 1.7, 0.62], [-0.45, 0.2, 1.41], [0.05, 1.05, 0.93]], dtype=torch.float64)
    # ty, tx, cy, cx: a shift past the border (|ty| = 2 > H / 8), corners outside the image
    pi = np.array([[1, -1, -2, 4], [-2, 0, 3, -1], [0, 2, 5, 1]], dtype=np.int64)
    out = {"x": (x0.numpy(), "F64"), "R": (Rw.numpy(), "F64"), "color_params": (pc.numpy(), "F64"),
           "int_params": (pi.astype(np.int32), "I32")}
    policies = {"color": [lambda x: color(x, pc)], "translation": [lambda x: translation(x, pi)],
                "cutout": [lambda x: cutout(x, pi)],
                "all": [lambda x: color(x, pc), lambda x: translation(x, pi), lambda x: cutout(x, pi)]}
    for name, fs in policies.items():
        x = x0.clone().requires_grad_(True)
        y = x
        for f in fs:
            y = f(y)
        (y * Rw).sum().backward()
        out[name + "_y"] = (y.detach().numpy(), "F64")
        out[name + "_dx"] = (x.grad.numpy(), "F64")
    write_st(os.path.join(OUT, "augment.safetensors"), out)


if __name__ == "__main__":
    main()
