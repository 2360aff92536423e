#!/usr/bin/env python3
"""make_diffusion.py — goldens for lib/models/diffusion.c (tests/c/test_diffusion.c).

An independent PyTorch transcription of DIFFUSION.md §5.3–5.4, written from the
equations there (EDM preconditioning, the EDM2 "config E"-style U-Net with forced
weight normalisation, cosine attention, (1 + WN(e)) modulation, the loss with
uncertainty / EDM / min-SNR weighting, the power-function EMA), as an nn.Module whose
state-dict keys are the names lib/models/diffusion.c gives its tensors.  The benchmark
(bench/bench_diffusion.py) imports the same module.

Goldens, for a tiny configuration in float64 (res 8, 3 channels, C 8 x [1, 2], 1 block,
attention at 4x4, condition size 5, batch 3 with one null condition, sigma in
{0.01, 0.7, 40}), with seeded random weights (float32-representable, the weights not
normalised, out.gain non-zero so every gradient flows):
  tests/ref/diffusion/tiny.safetensors     the weights (F32) with l2's metadata
  tests/ref/diffusion/tiny_io.safetensors  y, eps, sigma, cond, D, u, the loss under each
      weighting, grad.NAME of every trainable tensor (uncertainty weighting), adam.NAME:
      every tensor after one Adam step (lr 0.01, betas (0.9, 0.99), eps 1e-8) and the
      forced renormalisation, the EMA gammas and betas for t = 1..5 (F64).
  tests/ref/diffusion/patch2{,_io}.safetensors  the same at res 16 with patch 2 (space-to-
      depth in, depth-to-space out: PyTorch's pixel_unshuffle / pixel_shuffle), the
      U-Net on the 8x8 grid.
  tests/ref/diffusion/tokens{,_io}.safetensors  the tiny net with cross-attention
      conditioning (cond_tokens 3): [sqrt(d) c, 1] -> 3 tokens of width E, whose keys and
      values join the pixels' in every attention layer; no condition in the embedding.
"""
import json, math, os
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors_write import write_st

WN_EPS = 1e-4
GN_EPS = 1e-5
LOGVAR_CH = 128


def groups_of(ch):
    return min(32, ch // 4)


def wn(v):
    """Forced weight normalisation: each output row to unit norm (up to eps)."""
    fan_in = v[0].numel()
    n = v.reshape(v.shape[0], -1).norm(dim=1).reshape(-1, *([1] * (v.ndim - 1)))
    return v / (WN_EPS + n / math.sqrt(fan_in)) / math.sqrt(fan_in)


class WNConv(nn.Module):
    def __init__(self, cin, cout, k):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))

    def forward(self, x):
        return F.conv2d(x, wn(self.weight), padding=self.weight.shape[-1] // 2)


class WNLinear(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(o, i))

    def forward(self, x):
        return F.linear(x, wn(self.weight))


class Fourier(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.register_buffer("freqs", torch.randn(ch))
        self.register_buffer("phases", torch.rand(ch))

    def forward(self, c):
        return math.sqrt(2) * torch.cos(2 * math.pi * (c[:, None] * self.freqs[None] + self.phases[None]))


def resample(x, mode):
    if mode == "down":
        return F.avg_pool2d(x, 2)
    if mode == "up":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    return x


class Block(nn.Module):
    def __init__(self, cin, cout, E, resample_mode="keep", attn=False, skip_in=0, dropout=0.0, tokens=0):
        super().__init__()
        self.cin, self.cout, self.mode, self.attn, self.skip_in, self.dropout = cin, cout, resample_mode, attn, skip_in, dropout
        self.conv0 = WNConv(cin, cout, 3)
        self.emb = WNLinear(E, cout)
        self.conv1 = WNConv(cout, cout, 3)
        if cin != cout:
            self.skip = WNConv(cin, cout, 1)
        if attn:
            self.qkv = WNConv(cout, 3 * cout, 1)
            self.proj = WNConv(cout, cout, 1)
            if tokens:
                # condition tokens [N, K, E] -> their keys and values, joining the pixels' (GLIDE / unCLIP)
                self.cond_kv = WNLinear(E, 2 * cout)

    def forward(self, x, e, T=None):
        r = F.silu(F.group_norm(x, groups_of(self.cin), eps=GN_EPS))
        r = self.conv0(resample(r, self.mode))
        c = 1 + self.emb(e)
        r = F.group_norm(r, groups_of(self.cout), eps=GN_EPS) * c[:, :, None, None]
        r = F.silu(r)
        if self.dropout > 0 and self.training:
            r = F.dropout(r, self.dropout)
        r = self.conv1(r)
        s = resample(x, self.mode)
        if self.cin != self.cout:
            s = self.skip(s)
        y = (s + r) * math.sqrt(0.5)
        if self.attn:
            N, C, H, W = y.shape
            heads = max(1, C // 64)
            Dh = C // heads
            qkv = self.qkv(y).reshape(N, 3, heads, Dh, H * W)
            qkv = qkv / (WN_EPS + qkv.norm(dim=3, keepdim=True) / math.sqrt(Dh))
            q, k, v = qkv.unbind(1)                                    # [N, heads, Dh, HW]
            if T is not None:
                K = T.shape[1]
                kv = self.cond_kv(T).reshape(N, K, 2, heads, Dh)
                kv = kv / (WN_EPS + kv.norm(dim=4, keepdim=True) / math.sqrt(Dh))
                kt, vt = kv.permute(2, 0, 3, 4, 1).unbind(0)           # [N, heads, Dh, K]
                k, v = torch.cat([k, kt], -1), torch.cat([v, vt], -1)
            w = torch.softmax(torch.einsum("nhcq,nhck->nhqk", q, k) / math.sqrt(Dh), dim=-1)
            a = torch.einsum("nhqk,nhck->nhcq", w, v).reshape(N, C, H, W)
            y = (y + self.proj(a)) * math.sqrt(0.5)
        return y.clamp(-256, 256)


class Emb(nn.Module):
    def __init__(self, C, E, cdim, tokens=0):
        super().__init__()
        self.fourier = Fourier(C)
        if cdim and tokens:
            # [sqrt(d) c, 1] -> K tokens of width E (the constant 1 makes the null condition's tokens)
            self.tokens = WNLinear(cdim + 1, tokens * E)
        elif cdim:
            self.cond = WNLinear(cdim, C)
        self.linear0 = WNLinear(C, E)
        self.linear1 = WNLinear(E, E)


class Out(nn.Module):
    def __init__(self, cin, cimg):
        super().__init__()
        self.conv = WNConv(cin, cimg, 3)
        self.gain = nn.Parameter(torch.zeros(1))


class LogVar(nn.Module):
    def __init__(self):
        super().__init__()
        self.fourier = Fourier(LOGVAR_CH)
        self.linear = WNLinear(LOGVAR_CH, 1)


class Denoiser(nn.Module):
    """D(x; sigma, cond) with EDM preconditioning, and u(sigma)."""

    def __init__(self, res=32, cimg=3, cdim=512, channels=32, mult=(1, 2, 2), blocks=2, attn_res=(8,),
                 dropout=0.0, sigma_data=0.5, patch=1, tokens=0):
        super().__init__()
        self.res, self.cimg, self.cdim, self.sigma_data, self.patch = res, cimg, cdim, sigma_data, patch
        self.tokens, self.E = tokens, 4 * channels
        C, E = channels, 4 * channels
        self.emb = Emb(C, E, cdim, tokens)
        self.enc, self.dec = nn.ModuleDict(), nn.ModuleDict()
        cout = C * mult[0]
        res //= patch  # the U-Net's grid: pixel_unshuffle in, pixel_shuffle out
        self.enc["%dx%d_conv" % (res, res)] = WNConv(cimg * patch ** 2 + 1, cout, 3)
        skips = [cout]
        for l, m in enumerate(mult):
            r = res >> l
            if l > 0:
                self.enc["%dx%d_down" % (r, r)] = Block(cout, cout, E, "down", dropout=dropout)
                skips.append(cout)
            for k in range(blocks):
                cin, cout = cout, C * m
                self.enc["%dx%d_block%d" % (r, r, k)] = Block(cin, cout, E, attn=r in attn_res, dropout=dropout, tokens=tokens)
                skips.append(cout)
        for l in reversed(range(len(mult))):
            r = res >> l
            if l == len(mult) - 1:
                self.dec["%dx%d_in0" % (r, r)] = Block(cout, cout, E, attn=True, dropout=dropout, tokens=tokens)
                self.dec["%dx%d_in1" % (r, r)] = Block(cout, cout, E, dropout=dropout)
            else:
                self.dec["%dx%d_up" % (r, r)] = Block(cout, cout, E, "up", dropout=dropout)
            for k in range(blocks + 1):
                s = skips.pop()
                cin, cout = cout + s, C * mult[l]
                self.dec["%dx%d_block%d" % (r, r, k)] = Block(cin, cout, E, attn=r in attn_res, skip_in=s, dropout=dropout, tokens=tokens)
        self.out = Out(cout, cimg * patch ** 2)
        self.logvar = LogVar()
        # forced weight normalisation at initialisation (what l2_diffusion_new does)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith(".weight"):
                    p.copy_(wn(p) * math.sqrt(p[0].numel()))

    def forward(self, x, sigma, cond=None, want_u=True):
        sd = self.sigma_data
        s4 = lambda t: t[:, None, None, None]
        c_skip = sd ** 2 / (sigma ** 2 + sd ** 2)
        c_out = sigma * sd / (sigma ** 2 + sd ** 2).sqrt()
        c_in = 1 / (sigma ** 2 + sd ** 2).sqrt()
        c_noise = sigma.log() / 4
        e = self.emb.fourier(c_noise)
        T = None
        if self.cdim and self.tokens:
            c = cond if cond is not None else torch.zeros(x.shape[0], self.cdim, dtype=x.dtype)
            c = torch.cat([c * math.sqrt(self.cdim), torch.ones_like(c[:, :1])], 1)
            T = self.emb.tokens(c).reshape(x.shape[0], self.tokens, self.E)
        elif self.cdim and cond is not None:
            e = e + self.emb.cond(cond * math.sqrt(self.cdim))
        e = F.silu(self.emb.linear0(e))
        e = F.silu(self.emb.linear1(e))
        h = F.pixel_unshuffle(s4(c_in) * x, self.patch)
        h = torch.cat([h, torch.ones_like(h[:, :1])], 1)
        skips = []
        for name, mod in self.enc.items():
            h = mod(h) if name.endswith("_conv") else mod(h, e, T)
            skips.append(h)
        for mod in self.dec.values():
            if mod.skip_in:
                h = torch.cat([h, skips.pop()], 1)
            h = mod(h, e, T)
        h = F.silu(F.group_norm(h, groups_of(h.shape[1]), eps=GN_EPS))
        Fx = self.out.gain * F.pixel_shuffle(self.out.conv(h), self.patch)
        D = s4(c_skip) * x + s4(c_out) * Fx
        u = self.logvar.linear(self.logvar.fourier(c_noise)) if want_u else None
        return D, u


def loss_fn(net, y, eps, sigma, cond, weighting="uncertainty", gamma=5.0, batch=None):
    """(1/batch) sum_n sum_elements [lambda e^-u (D - y)^2 + u]."""
    sd = net.sigma_data
    B = batch or y.shape[0]
    x = y + sigma[:, None, None, None] * eps
    D, u = net(x, sigma, cond, want_u=weighting == "uncertainty")
    sq = ((D - y) ** 2).flatten(1).sum(1)
    if weighting == "min-snr":
        lam = torch.clamp(1 / sigma ** 2, max=gamma)
    else:
        lam = (sigma ** 2 + sd ** 2) / (sigma * sd) ** 2
    if weighting == "uncertainty":
        u = u[:, 0]
        return (lam * torch.exp(-u) * sq + y[0].numel() * u).sum() / B, D, u
    return (lam * sq).sum() / B, D, None


def renormalize(net):
    """v <- v / (eps + |v_o| / sqrt F), the forced weight normalisation of the stored weights."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(".weight"):
                p.copy_(wn(p) * math.sqrt(p[0].numel()))


def ema_gamma(std):
    t = std ** -2
    return max(r.real for r in np.roots([1, 7, 16 - t, 12 - t]) if abs(r.imag) < 1e-9)


def ema_beta(gamma, t):
    return (1 - 1 / t) ** (gamma + 1)


def make_golden(out, tag, RES, PATCH, TOKENS=0):
    """Weights tests/ref/diffusion/TAG.safetensors and I/O TAG_io.safetensors for a tiny
    net at image side RES with patch PATCH (C 8 x [1, 2], 1 block, attention at 4x4 of
    the patched grid, condition size 5, batch 3 with one null condition)."""
    torch.manual_seed(0)
    CIMG, C, MULT, BLOCKS, ATTN, CDIM, N = 3, 8, (1, 2), 1, (4,), 5, 3
    net = Denoiser(RES, CIMG, CDIM, C, MULT, BLOCKS, ATTN, patch=PATCH, tokens=TOKENS).double()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in net.state_dict().items():
            if name.endswith("phases"):
                v = torch.rand(p.shape, generator=g, dtype=torch.float64)
            elif name == "out.gain":
                v = torch.tensor([0.7], dtype=torch.float64)
            elif name.endswith("freqs"):
                v = torch.randn(p.shape, generator=g, dtype=torch.float64)
            else:
                # weights not normalised: rows of different scales exercise the WN
                v = torch.randn(p.shape, generator=g, dtype=torch.float64)
                v = v * (0.5 + torch.rand(p.shape[0], generator=g, dtype=torch.float64)).reshape(-1, *([1] * (p.ndim - 1)))
            p.copy_(v.float().double())
    y = (torch.rand(N, CIMG, RES, RES, generator=g, dtype=torch.float64) * 2 - 1).float().double()
    eps = torch.randn(N, CIMG, RES, RES, generator=g, dtype=torch.float64).float().double()
    sigma = torch.tensor([0.01, 0.7, 40.0], dtype=torch.float64)
    cond = torch.randn(N, CDIM, generator=g, dtype=torch.float64)
    cond = cond / cond.norm(dim=1, keepdim=True)
    cond[1] = 0  # the null condition
    cond = cond.float().double()

    sd = net.state_dict()
    cfg = {"res": RES, "cimg": CIMG, "patch": PATCH, "cdim": CDIM, "channels": C, "mult": list(MULT), "blocks": BLOCKS,
           "attn_res": list(ATTN), "dropout": 0, "sigma_data": 0.5, "P_mean": -1.2, "P_std": 1.2}
    if TOKENS:
        cfg["cond_tokens"] = TOKENS
    meta = {"l2.kind": "diffusion", "l2.arch": "l2-edm2e-unet", "l2.diffusion.config": json.dumps(cfg),
            "l2.cond.feature": "caption", "l2.sigma_data": "0.5", "l2.P_mean": "-1.2", "l2.P_std": "1.2",
            "l2.patch": str(PATCH), "l2.ema": "none", "l2.step": "0"}
    write_st(os.path.join(out, tag + ".safetensors"), {k: (v.numpy(), "F32") for k, v in sd.items()}, meta)

    io = {"y": y, "eps": eps, "sigma": sigma, "cond": cond}
    for w in ("edm", "min-snr"):
        L, _, _ = loss_fn(net, y, eps, sigma, cond, w)
        io["loss_" + w.replace("-", "")] = L.detach().reshape(1)
    net.zero_grad()
    L, D, u = loss_fn(net, y, eps, sigma, cond, "uncertainty")
    L.backward()
    io["loss"] = L.detach().reshape(1)
    io["D"] = D.detach()
    io["u"] = u.detach()
    for name, p in net.named_parameters():
        io["grad." + name] = p.grad.detach().clone()
    # the denoiser's gradient with respect to its input x, for sum(D * R)
    x = (y + sigma[:, None, None, None] * eps).clone().requires_grad_(True)
    Dx, _ = net(x, sigma, cond)
    Rm = torch.sin(0.7 + 1.37 * torch.arange(Dx.numel(), dtype=torch.float64)).reshape(Dx.shape) + 0.1
    io["grad_x"] = torch.autograd.grad((Dx * Rm).sum(), x)[0].detach()
    opt = torch.optim.Adam(net.parameters(), lr=0.01, betas=(0.9, 0.99), eps=1e-8)
    opt.step()
    renormalize(net)
    for name, p in net.state_dict().items():
        io["adam." + name] = p.detach().clone()
    gam = [ema_gamma(0.05), ema_gamma(0.10)]
    io["ema_gamma"] = torch.tensor(gam, dtype=torch.float64)
    io["ema_beta"] = torch.tensor([[ema_beta(gm, t) for t in range(1, 6)] for gm in gam], dtype=torch.float64)
    write_st(os.path.join(out, tag + "_io.safetensors"), {k: (v.numpy(), "F64") for k, v in io.items()})
    print("diffusion %s: loss %.10g, gamma %s" % (tag, io["loss"].item(), gam))



def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "diffusion")
    os.makedirs(out, exist_ok=True)
    make_golden(out, "tiny", 8, 1)
    make_golden(out, "patch2", 16, 2)
    make_golden(out, "tokens", 8, 1, TOKENS=3)


if __name__ == "__main__":
    main()
