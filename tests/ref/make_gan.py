#!/usr/bin/env python3
"""make_gan.py — goldens for the discriminator and the R1 penalty of lib/models/gan.c
(tests/c/test_gan.c, tests/c/test_gan_r1.c).

A tiny discriminator in exactly lib/models/gan.h's architecture and state-dict
layout (residual blocks with the [1,3,3,1] FIR, minibatch std, f_d + <h,
f_s>, equalised learning rate), transcribed functionally in PyTorch float64
with seeded random weights (float32-representable, biases non-zero).  For
real images x and conditions h it writes the logits, the R1 penalty
    R1 = (gamma / 2) * mean_n ||d S / d x_n||^2,  S = sum_n D(x_n, h_n),
and its exact gradient with respect to every D parameter by double backward
(torch.autograd.grad(create_graph=True), then backward), all in float64.

Outputs: tests/ref/gan/d_tiny.safetensors (weights, F32, names as lib/models/gan.c),
tests/ref/gan/d_tiny_io.safetensors (x, h, logits, r1, grad.<name>, F64).
"""
import math, os
import numpy as np
import torch
import torch.nn.functional as F
from safetensors_write import write_st

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gan")
# res, cdim, cbase, cmax: channels min(cbase / r, cmax) = 4 at 16, 6 at 8 and 4
RES, CDIM, CBASE, CMAX, N, GAMMA = 16, 5, 64, 6, 8, 10.0
ch = lambda r: min(CBASE // r, CMAX)
SQRT2 = math.sqrt(2)


def params(g, res=RES, ch=ch, cdim=CDIM):
    """D's tensors in lib/models/gan.c's order and names, float32-representable (the defaults:
    this script's D; make_gan_train.py passes its own sizes)."""
    p = {}
    def n(name, *shape, std=1.0):
        p[name] = (torch.randn(*shape, generator=g, dtype=torch.float64) * std).float().double()
    def conv(name, ci, co, k, bias=True):
        n(name + ".weight", co, ci, k, k)
        if bias: n(name + ".bias", co, std=0.2)
    def fc(name, i, o):
        n(name + ".weight", o, i)
        n(name + ".bias", o, std=0.2)
    conv("D.b%d.fromrgb" % res, 3, ch(res), 1)
    r = res
    while r > 4:
        conv("D.b%d.conv0" % r, ch(r), ch(r), 3)
        conv("D.b%d.conv1" % r, ch(r), ch(r // 2), 3)
        conv("D.b%d.skip" % r, ch(r), ch(r // 2), 1, bias=False)
        r //= 2
    c4 = ch(4)
    conv("D.b4.conv", c4 + 1, c4, 3)
    fc("D.b4.fc", c4 * 16, c4)
    fc("D.b4.out", c4, 1)
    fc("D.b4.fs", c4, cdim)
    return p


FIR = torch.tensor([1.0, 3, 3, 1], dtype=torch.float64)
FIR = FIR[:, None] * FIR[None] / 64
act = lambda x: F.leaky_relu(x, 0.2) * SQRT2


def down2(x):
    """upfirdn2d(x, [1,3,3,1]^2 / 64, down=2, pad 1): pad, true convolution (the
    filter is symmetric), keep every second sample."""
    C = x.shape[1]
    y = F.conv2d(F.pad(x, (1, 1, 1, 1)), FIR.flip([0, 1]).expand(C, 1, 4, 4), groups=C)
    return y[:, :, ::2, ::2]


def conv(p, name, x, lrelu=True):
    w = p[name + ".weight"]
    gain = 1 / math.sqrt(w[0].numel())  # equalised lr: 1 / sqrt(fan_in)
    y = F.conv2d(x, w * gain, p.get(name + ".bias"), padding=w.shape[2] // 2)
    return act(y) if lrelu else y


def fc(p, name, x, lrelu=True):
    w = p[name + ".weight"]
    y = F.linear(x, w / math.sqrt(w.shape[1]), p[name + ".bias"])
    return act(y) if lrelu else y


def mbstd(x, group=4):
    Nn, C, H, W = x.shape
    G = min(group, Nn)
    y = x.reshape(G, -1, C, H, W)                       # sample n = g * M + m
    y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean([1, 2, 3])  # [M]
    y = y.reshape(1, -1, 1, 1, 1).expand(G, -1, 1, H, W).reshape(Nn, 1, H, W)
    return torch.cat([x, y], 1)


def D(p, x, h):
    y = conv(p, "D.b%d.fromrgb" % RES, x)
    r = RES
    while r > 4:
        sk = conv(p, "D.b%d.skip" % r, down2(y), False)
        y = conv(p, "D.b%d.conv0" % r, y)
        y = conv(p, "D.b%d.conv1" % r, down2(y))
        y = (sk + y) * math.sqrt(0.5)
        r //= 2
    y = conv(p, "D.b4.conv", mbstd(y))
    y = fc(p, "D.b4.fc", y.flatten(1))
    fd = fc(p, "D.b4.out", y, False)[:, 0]
    fs = fc(p, "D.b4.fs", y, False)
    return fd + (fs * h).sum(1)


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(8)
    p = params(g)
    for t in p.values():
        t.requires_grad_(True)
    x = (torch.rand(N, 3, RES, RES, generator=g, dtype=torch.float64) * 2 - 1).float().double()
    h = F.normalize(torch.randn(N, CDIM, generator=g, dtype=torch.float64), dim=1).float().double()
    xr = x.clone().requires_grad_(True)
    logits = D(p, xr, h)
    gx, = torch.autograd.grad(logits.sum(), xr, create_graph=True)
    r1 = GAMMA / 2 * gx.square().sum([1, 2, 3]).mean()
    names = list(p)
    # (the output biases do not reach dS/dx: their R1 gradient is zero)
    grads = torch.autograd.grad(r1, [p[k] for k in names], allow_unused=True)
    grads = [torch.zeros_like(p[k]) if gr is None else gr for k, gr in zip(names, grads)]
    io = {"x": (x.numpy(), "F64"), "h": (h.numpy(), "F64"), "logits": (logits.detach().numpy(), "F64"),
          "r1": (r1.detach().reshape(1).numpy(), "F64"), "gamma": (np.array([GAMMA]), "F64")}
    for k, gr in zip(names, grads):
        io["grad." + k] = (gr.numpy(), "F64")
    cfg = "res=%d cdim=%d zdim=4 wdim=4 map_layers=1 cbase=%d cmax=%d chid=4" % (RES, CDIM, CBASE, CMAX)
    write_st(os.path.join(OUT, "d_tiny.safetensors"), {k: (v.detach().numpy(), "F32") for k, v in p.items()},
             {"l2.model": "lafite-gan", "l2.gan.net": "D", "l2.gan.config": cfg, "l2.step": "0"})
    write_st(os.path.join(OUT, "d_tiny_io.safetensors"), io, {"config": cfg})
    print("make_gan: %d D tensors, R1 %.6g, logits %s" % (len(names), r1.item(), logits.detach().numpy().round(4)))


if __name__ == "__main__":
    main()
