#!/usr/bin/env python3
"""make_vae.py — PyTorch reference outputs for lib/models/vae.c.

Two autoencoders, transcribed from their published architectures and run in
float64 with torch.nn.functional:

  * Stable Diffusion's KL autoencoder (diffusers AutoencoderKL, identical to
    the original LDM Encoder/Decoder of ldm/modules/diffusionmodules/model.py):
    conv_in; per level `layers` ResNet blocks (GroupNorm eps 1e-6, SiLU, 3x3
    convs, a 1x1 shortcut when the width changes) and, except at the last
    level, a stride-2 3x3 convolution after zero padding (0, 1, 0, 1); a mid
    block ResNet, single-head self-attention over the pixels (GroupNorm,
    q k v as linear maps, softmax(q k^T / sqrt(C)) v, output projection,
    residual), ResNet; GroupNorm, SiLU, conv_out to 2 x latent channels;
    quant_conv (1x1): mean | log-variance (clamped to [-30, 20]).  The
    decoder mirrors it: post_quant_conv, conv_in, mid block, per level
    `layers + 1` ResNets and (except at the last) nearest x2 upsampling +
    3x3 conv, GroupNorm, SiLU, conv_out.  Latents are
    (mean - shift) * scale; decoding divides first.
  * TAESD (madebyollin/taesd taesd.py; diffusers AutoencoderTiny): 3x3
    convs of one width with ReLU blocks conv-ReLU-conv-ReLU-conv + skip then
    ReLU; the encoder works on [0, 1] images (diffusers maps [-1, 1] to it),
    stride-2 bias-free convs between stages; the decoder starts with
    tanh(z / 3) * 3 and ends on [0, 1] (mapped back to [-1, 1]), nearest x2
    upsampling + bias-free conv between stages.

Weights are not committed.  They are a pure function of (seed, name in the
diffusers layout, element index) that l2_vae_random_values() in
lib/models/vae.c computes the same way, so the C test writes the same
networks (in both key layouts and in f32/f16/bf16: every value has at most 8
significant bits) and compares with the outputs here.  The key layouts are
enumerated here a second time, independently of the C converter table: the
original LDM / taesd.py module structure, each key with the diffusers tensor
it holds, written with value checksums so the C test can prove that its LDM
files hold the right values under the right names.

Writes tests/ref/vae/:
  model.json                   the test configurations and seeds
  CFG_x.npy                    (B, 3, H, W) float32 images in [-1, 1]
  CFG_mean.npy, CFG_logvar.npy (B, L, h, w) float64 posterior (KL) or
  CFG_latent.npy               (B, L, h, w) float64 raw latents (TAESD)
  CFG_z.npy                    (B, L, h, w) float32 latents to decode (scaled)
  CFG_dec.npy                  (B, 3, H, W) float64 decoded images
  keys_CFG_LAYOUT.txt          "name<TAB>d0,d1,..<TAB>sum<TAB>weighted sum" per
                               tensor of the file (weighted: sum_i v_i *
                               ((i % 7) + 1)), in the layout's own names
  keys_full_kl_LAYOUT.txt,     the full-size KL-f8 ([128, 256, 512, 512], 2
  keys_full_taesd_LAYOUT.txt   layers, 4 latent channels) and TAESD (64
                               wide) key sets: "name<TAB>shape" (no sums)

`bench/bench_vae.py` imports the forward functions below (in float32) as the
PyTorch side of `make bench`.
"""
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "vae")

# ---- the weight generator (mirror of l2_vae_random_values) -------------------

M64 = (1 << 64) - 1
PHI = 0x9E3779B97F4A7C15


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for b in s.encode():
        h ^= b
        h = (h * 0x100000001B3) & M64
    return h


def fan_exp(fan_in):
    return int(math.floor(0.5 * math.log2(fan_in / 3.0) + 0.5))


def rand_values(name, seed, shape):
    """Values of the tensor NAME (diffusers layout) of this shape."""
    n = int(np.prod(shape)) if len(shape) else 1
    h = np.uint64(fnv1a64(name) ^ (seed & M64))
    i = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = h + i * np.uint64(PHI)
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    if len(shape) >= 2:  # conv / linear weight: odd / 256 * 2^-e
        e = fan_exp(int(np.prod(shape[1:])))
        v = ((z >> np.uint64(56)).astype(np.float64) * 2.0 - 255.0) / 256.0 * math.ldexp(1.0, -e)
    elif name.endswith(".weight"):  # a GroupNorm gain in [0.75, 1.25)
        v = (96.0 + (z >> np.uint64(58)).astype(np.float64)) / 128.0
    else:  # a bias: odd / 4096
        v = ((z >> np.uint64(56)).astype(np.float64) * 2.0 - 255.0) / 4096.0
    return v.reshape(shape)


# ---- KL autoencoder: parameters in the diffusers layout -----------------------


def kl_params(cfg, halves="ed"):
    """[(diffusers name, shape)] of AutoencoderKL, in the module order."""
    ch, L, lat = cfg["ch"], cfg["layers"], cfg["latent"]
    n = len(ch)
    out = []

    def conv(name, co, ci, k):
        out.append((name + ".weight", (co, ci, k, k)))
        out.append((name + ".bias", (co,)))

    def norm(name, c):
        out.append((name + ".weight", (c,)))
        out.append((name + ".bias", (c,)))

    def resnet(name, ci, co):
        norm(name + ".norm1", ci)
        conv(name + ".conv1", co, ci, 3)
        norm(name + ".norm2", co)
        conv(name + ".conv2", co, co, 3)
        if ci != co:
            conv(name + ".conv_shortcut", co, ci, 1)

    def mid(p, c):
        resnet(p + ".mid_block.resnets.0", c, c)
        norm(p + ".mid_block.attentions.0.group_norm", c)
        for k in ("to_q", "to_k", "to_v", "to_out.0"):
            out.append((p + ".mid_block.attentions.0.%s.weight" % k, (c, c)))
            out.append((p + ".mid_block.attentions.0.%s.bias" % k, (c,)))
        resnet(p + ".mid_block.resnets.1", c, c)

    if "e" in halves:
        conv("encoder.conv_in", ch[0], 3, 3)
        cin = ch[0]
        for i in range(n):
            for j in range(L):
                resnet("encoder.down_blocks.%d.resnets.%d" % (i, j), cin if j == 0 else ch[i], ch[i])
            cin = ch[i]
            if i < n - 1:
                conv("encoder.down_blocks.%d.downsamplers.0.conv" % i, ch[i], ch[i], 3)
        mid("encoder", ch[-1])
        norm("encoder.conv_norm_out", ch[-1])
        conv("encoder.conv_out", 2 * lat, ch[-1], 3)
        conv("quant_conv", 2 * lat, 2 * lat, 1)
    if "d" in halves:
        conv("post_quant_conv", lat, lat, 1)
        conv("decoder.conv_in", ch[-1], lat, 3)
        mid("decoder", ch[-1])
        rch = list(reversed(ch))
        cin = rch[0]
        for i in range(n):
            for j in range(L + 1):
                resnet("decoder.up_blocks.%d.resnets.%d" % (i, j), cin if j == 0 else rch[i], rch[i])
            cin = rch[i]
            if i < n - 1:
                conv("decoder.up_blocks.%d.upsamplers.0.conv" % i, rch[i], rch[i], 3)
        norm("decoder.conv_norm_out", ch[0])
        conv("decoder.conv_out", 3, ch[0], 3)
    return out


def kl_params_ldm(cfg, halves="ed"):
    """[(LDM name, LDM shape, diffusers name)]: the original Encoder/Decoder
    module structure (ldm/modules/diffusionmodules/model.py), walked on its
    own.  Attention projections are 1x1 convolutions there."""
    ch, L, lat = cfg["ch"], cfg["layers"], cfg["latent"]
    n = len(ch)
    out = []

    def conv(name, dname, co, ci, k):
        out.append((name + ".weight", (co, ci, k, k), dname + ".weight"))
        out.append((name + ".bias", (co,), dname + ".bias"))

    def norm(name, dname, c):
        out.append((name + ".weight", (c,), dname + ".weight"))
        out.append((name + ".bias", (c,), dname + ".bias"))

    def resnet(name, dname, ci, co):
        norm(name + ".norm1", dname + ".norm1", ci)
        conv(name + ".conv1", dname + ".conv1", co, ci, 3)
        norm(name + ".norm2", dname + ".norm2", co)
        conv(name + ".conv2", dname + ".conv2", co, co, 3)
        if ci != co:
            conv(name + ".nin_shortcut", dname + ".conv_shortcut", co, ci, 1)

    def mid(p, c):
        resnet(p + ".mid.block_1", p + ".mid_block.resnets.0", c, c)
        a, d = p + ".mid.attn_1", p + ".mid_block.attentions.0"
        norm(a + ".norm", d + ".group_norm", c)
        for k, dk in (("q", "to_q"), ("k", "to_k"), ("v", "to_v"), ("proj_out", "to_out.0")):
            conv(a + "." + k, d + "." + dk, c, c, 1)
        resnet(p + ".mid.block_2", p + ".mid_block.resnets.1", c, c)

    if "e" in halves:
        conv("encoder.conv_in", "encoder.conv_in", ch[0], 3, 3)
        block_in = ch[0]
        for lvl in range(n):
            for b in range(L):
                resnet("encoder.down.%d.block.%d" % (lvl, b), "encoder.down_blocks.%d.resnets.%d" % (lvl, b),
                       block_in, ch[lvl])
                block_in = ch[lvl]
            if lvl != n - 1:
                conv("encoder.down.%d.downsample.conv" % lvl, "encoder.down_blocks.%d.downsamplers.0.conv" % lvl,
                     block_in, block_in, 3)
        mid("encoder", block_in)
        norm("encoder.norm_out", "encoder.conv_norm_out", block_in)
        conv("encoder.conv_out", "encoder.conv_out", 2 * lat, block_in, 3)
        conv("quant_conv", "quant_conv", 2 * lat, 2 * lat, 1)
    if "d" in halves:
        conv("post_quant_conv", "post_quant_conv", lat, lat, 1)
        block_in = ch[-1]
        conv("decoder.conv_in", "decoder.conv_in", block_in, lat, 3)
        mid("decoder", block_in)
        # LDM numbers decoder levels by resolution (0 = full size) and runs
        # them from n-1 down to 0; diffusers numbers them in running order.
        for lvl in reversed(range(n)):
            u = n - 1 - lvl
            for b in range(L + 1):
                resnet("decoder.up.%d.block.%d" % (lvl, b), "decoder.up_blocks.%d.resnets.%d" % (u, b), block_in,
                       ch[lvl])
                block_in = ch[lvl]
            if lvl != 0:
                conv("decoder.up.%d.upsample.conv" % lvl, "decoder.up_blocks.%d.upsamplers.0.conv" % u, block_in,
                     block_in, 3)
        norm("decoder.norm_out", "decoder.conv_norm_out", block_in)
        conv("decoder.conv_out", "decoder.conv_out", 3, block_in, 3)
    return out


def kl_weights(cfg, seed, dtype=torch.float64):
    return {k: torch.tensor(rand_values(k, seed, s), dtype=dtype) for k, s in kl_params(cfg)}


# ---- KL autoencoder: the forward passes -------------------------------------


def group_norm(x, p, name, groups):
    return F.group_norm(x, groups, p[name + ".weight"], p[name + ".bias"], eps=1e-6)


def conv2d(x, p, name, stride=1, padding=1):
    return F.conv2d(x, p[name + ".weight"], p.get(name + ".bias"), stride=stride, padding=padding)


def resnet_block(x, p, name, groups):
    h = conv2d(F.silu(group_norm(x, p, name + ".norm1", groups)), p, name + ".conv1")
    h = conv2d(F.silu(group_norm(h, p, name + ".norm2", groups)), p, name + ".conv2")
    if name + ".conv_shortcut.weight" in p:
        x = conv2d(x, p, name + ".conv_shortcut", padding=0)
    return x + h


def attention_block(x, p, name, groups):
    B, C, H, W = x.shape
    h = group_norm(x, p, name + ".group_norm", groups).reshape(B, C, H * W).transpose(1, 2)  # (B, HW, C)
    q = F.linear(h, p[name + ".to_q.weight"], p[name + ".to_q.bias"])
    k = F.linear(h, p[name + ".to_k.weight"], p[name + ".to_k.bias"])
    v = F.linear(h, p[name + ".to_v.weight"], p[name + ".to_v.bias"])
    a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(C), dim=-1) @ v
    o = F.linear(a, p[name + ".to_out.0.weight"], p[name + ".to_out.0.bias"])
    return x + o.transpose(1, 2).reshape(B, C, H, W)


def mid_block(x, p, pre, groups):
    x = resnet_block(x, p, pre + ".mid_block.resnets.0", groups)
    x = attention_block(x, p, pre + ".mid_block.attentions.0", groups)
    return resnet_block(x, p, pre + ".mid_block.resnets.1", groups)


def kl_encode(p, cfg, x):
    """x (B, 3, H, W) in [-1, 1] -> (mean, logvar), unscaled."""
    n, L, g = len(cfg["ch"]), cfg["layers"], cfg["groups"]
    h = conv2d(x, p, "encoder.conv_in")
    for i in range(n):
        for j in range(L):
            h = resnet_block(h, p, "encoder.down_blocks.%d.resnets.%d" % (i, j), g)
        if i < n - 1:
            h = F.pad(h, (0, 1, 0, 1))
            h = conv2d(h, p, "encoder.down_blocks.%d.downsamplers.0.conv" % i, stride=2, padding=0)
    h = mid_block(h, p, "encoder", g)
    h = conv2d(F.silu(group_norm(h, p, "encoder.conv_norm_out", g)), p, "encoder.conv_out")
    m = conv2d(h, p, "quant_conv", padding=0)
    mean, logvar = torch.chunk(m, 2, dim=1)
    return mean, torch.clamp(logvar, -30.0, 20.0)


def kl_decode(p, cfg, z):
    """z (B, L, h, w) scaled latents -> (B, 3, H, W) images in [-1, 1] (unclamped)."""
    n, L, g = len(cfg["ch"]), cfg["layers"], cfg["groups"]
    h = z / cfg["scale"] + cfg["shift"]
    h = conv2d(h, p, "post_quant_conv", padding=0)
    h = conv2d(h, p, "decoder.conv_in")
    h = mid_block(h, p, "decoder", g)
    for i in range(n):
        for j in range(L + 1):
            h = resnet_block(h, p, "decoder.up_blocks.%d.resnets.%d" % (i, j), g)
        if i < n - 1:
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = conv2d(h, p, "decoder.up_blocks.%d.upsamplers.0.conv" % i)
    return conv2d(F.silu(group_norm(h, p, "decoder.conv_norm_out", g)), p, "decoder.conv_out")


# ---- TAESD ----------------------------------------------------------------------


def taesd_layers(cfg):
    """The diffusers layer lists: [("conv", cin, cout, stride, bias) | ("block", c) |
    ("relu",) | ("up",)] for encoder.layers and decoder.layers."""
    W, lat, eb, db = cfg["width"], cfg["latent"], cfg["enc_blocks"], cfg["dec_blocks"]
    enc = [("conv", 3, W, 1, True)]
    for s, nb in enumerate(eb):
        if s > 0:
            enc.append(("conv", W, W, 2, False))
        enc += [("block", W)] * nb
    enc.append(("conv", W, lat, 1, True))
    dec = [("conv", lat, W, 1, True), ("relu",)]
    for s, nb in enumerate(db):
        dec += [("block", W)] * nb
        if s < len(db) - 1:
            dec += [("up",), ("conv", W, W, 1, False)]
    dec.append(("conv", W, 3, 1, True))
    return enc, dec


def taesd_params(cfg, halves="ed"):
    enc, dec = taesd_layers(cfg)
    out = []
    for half, layers in (("encoder", enc), ("decoder", dec)):
        if half[0] not in halves:
            continue
        for i, l in enumerate(layers):
            p = "%s.layers.%d" % (half, i)
            if l[0] == "conv":
                out.append((p + ".weight", (l[2], l[1], 3, 3)))
                if l[4]:
                    out.append((p + ".bias", (l[2],)))
            elif l[0] == "block":
                for k in (0, 2, 4):
                    out.append((p + ".conv.%d.weight" % k, (l[1], l[1], 3, 3)))
                    out.append((p + ".conv.%d.bias" % k, (l[1],)))
    return out


def taesd_params_orig(cfg, half):
    """[(taesd.py name, shape, diffusers name)] of taesd_encoder / taesd_decoder:
    nn.Sequential indices of taesd.py's Encoder() and Decoder(), built here the
    way taesd.py lists them (the decoder starts with Clamp(), a layer without
    parameters, so its indices are one more than diffusers')."""
    W, lat, eb, db = cfg["width"], cfg["latent"], cfg["enc_blocks"], cfg["dec_blocks"]
    seq = []  # taesd.py's modules in order
    if half == "e":
        seq.append(("conv", 3, W, True))
        for s, nb in enumerate(eb):
            if s:
                seq.append(("conv", W, W, False))
            seq += [("block", W)] * nb
        seq.append(("conv", W, lat, True))
        dpre, shift = "encoder.layers", 0
    else:
        seq += [("clamp",), ("conv", lat, W, True), ("relu",)]
        for s, nb in enumerate(db):
            seq += [("block", W)] * nb
            if s < len(db) - 1:
                seq += [("upsample",), ("conv", W, W, False)]
        seq.append(("conv", W, 3, True))
        dpre, shift = "decoder.layers", -1
    out = []
    for i, m in enumerate(seq):
        d = "%s.%d" % (dpre, i + shift)
        if m[0] == "conv":
            out.append(("%d.weight" % i, (m[2], m[1], 3, 3), d + ".weight"))
            if m[3]:
                out.append(("%d.bias" % i, (m[2],), d + ".bias"))
        elif m[0] == "block":
            for k in (0, 2, 4):
                out.append(("%d.conv.%d.weight" % (i, k), (m[1], m[1], 3, 3), d + ".conv.%d.weight" % k))
                out.append(("%d.conv.%d.bias" % (i, k), (m[1],), d + ".conv.%d.bias" % k))
    return out


def taesd_weights(cfg, seed, dtype=torch.float64):
    return {k: torch.tensor(rand_values(k, seed, s), dtype=dtype) for k, s in taesd_params(cfg)}


def taesd_run(p, layers, prefix, x):
    for i, l in enumerate(layers):
        name = "%s.%d" % (prefix, i)
        if l[0] == "conv":
            x = F.conv2d(x, p[name + ".weight"], p.get(name + ".bias"), stride=l[3], padding=1)
        elif l[0] == "relu":
            x = F.relu(x)
        elif l[0] == "up":
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:
            h = F.relu(F.conv2d(x, p[name + ".conv.0.weight"], p[name + ".conv.0.bias"], padding=1))
            h = F.relu(F.conv2d(h, p[name + ".conv.2.weight"], p[name + ".conv.2.bias"], padding=1))
            h = F.conv2d(h, p[name + ".conv.4.weight"], p[name + ".conv.4.bias"], padding=1)
            x = F.relu(h + x)
    return x


def taesd_encode(p, cfg, x):
    """x (B, 3, H, W) in [-1, 1] -> raw latents."""
    enc, _ = taesd_layers(cfg)
    return taesd_run(p, enc, "encoder.layers", (x + 1) / 2)


def taesd_decode(p, cfg, z):
    """z scaled latents -> (B, 3, H, W) in [-1, 1]."""
    _, dec = taesd_layers(cfg)
    z = z / cfg["scale"]
    return taesd_run(p, dec, "decoder.layers", torch.tanh(z / 3) * 3) * 2 - 1


# ---- the test configurations ------------------------------------------------------

# "kl": the real structure (4 levels, two width changes, equal last two
# widths, 2 layers, 32 groups, default scale) at small widths; "kl_tiny":
# another shape of it (2 levels, 1 layer) with 8 groups and scale / shift
# given by the file's metadata config; "taesd": taesd.py's block counts at
# width 16.
CONFIGS = {
    "kl": dict(kind="kl", ch=[32, 64, 96, 96], layers=2, latent=4, groups=32, scale=0.18215, shift=0.0,
               seed=11, B=2, H=24, W=32),
    "kl_tiny": dict(kind="kl", ch=[16, 32], layers=1, latent=4, groups=8, scale=0.5, shift=0.25,
                    seed=12, B=3, H=12, W=8),
    "taesd": dict(kind="taesd", width=16, enc_blocks=[1, 3, 3, 3], dec_blocks=[3, 3, 3, 1], latent=4, scale=1.0,
                  seed=13, B=2, H=24, W=32),
}
FULL_KL = dict(ch=[128, 256, 512, 512], layers=2, latent=4)
FULL_TAESD = dict(width=64, enc_blocks=[1, 3, 3, 3], dec_blocks=[3, 3, 3, 1], latent=4)


def shape_str(s):
    return ",".join(str(d) for d in s)


def write_keys(path, rows, seed=None):
    """rows: [(file name, shape, diffusers name)]."""
    with open(path, "w") as f:
        for name, shape, dname in rows:
            if seed is None:
                f.write("%s\t%s\n" % (name, shape_str(shape)))
                continue
            # an LDM 1x1 attention conv (C, C, 1, 1) holds the values of the
            # diffusers linear (C, C): same count, same fan-in
            v = rand_values(dname, seed, tuple(shape))
            flat = v.reshape(-1)
            w = (np.arange(flat.size) % 7 + 1).astype(np.float64)
            f.write("%s\t%s\t%.17g\t%.17g\n" % (name, shape_str(shape), flat.sum(), (flat * w).sum()))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_default_dtype(torch.float64)
    gen = torch.Generator().manual_seed(20261130)
    meta = {}
    for name, cfg in CONFIGS.items():
        meta[name] = cfg
        B, H, W, seed = cfg["B"], cfg["H"], cfg["W"], cfg["seed"]
        # images: float32 values in [-1, 1], smooth + noise (never zeros)
        x = (torch.rand(B, 3, H, W, generator=gen) * 2 - 1).to(torch.float32).to(torch.float64)
        if cfg["kind"] == "kl":
            p = kl_weights(cfg, seed)
            mean, logvar = kl_encode(p, cfg, x)
            f = 2 ** (len(cfg["ch"]) - 1)
            np.save(os.path.join(OUT, name + "_mean.npy"), mean.numpy())
            np.save(os.path.join(OUT, name + "_logvar.npy"), logvar.numpy())
            z = torch.randn(B, cfg["latent"], H // f, W // f, generator=gen).to(torch.float32).to(torch.float64)
            dec = kl_decode(p, cfg, z)
            rows = [(k, s, k) for k, s in kl_params(cfg)]
            write_keys(os.path.join(OUT, "keys_%s_diffusers.txt" % name), rows, seed)
            write_keys(os.path.join(OUT, "keys_%s_ldm.txt" % name), kl_params_ldm(cfg), seed)
            print("%s: %d parameters; |mean| max %.3g, logvar in [%.3g, %.3g], |dec| max %.3g" % (
                name, sum(int(np.prod(s)) for _, s in kl_params(cfg)), mean.abs().max(), logvar.min(), logvar.max(),
                dec.abs().max()))
        else:
            p = taesd_weights(cfg, seed)
            lat = taesd_encode(p, cfg, x)
            np.save(os.path.join(OUT, name + "_latent.npy"), lat.numpy())
            z = torch.randn(B, cfg["latent"], H // 8, W // 8, generator=gen).to(torch.float32).to(torch.float64)
            dec = taesd_decode(p, cfg, z)
            rows = [(k, s, k) for k, s in taesd_params(cfg)]
            write_keys(os.path.join(OUT, "keys_%s_diffusers.txt" % name), rows, seed)
            write_keys(os.path.join(OUT, "keys_%s_orig_encoder.txt" % name), taesd_params_orig(cfg, "e"), seed)
            write_keys(os.path.join(OUT, "keys_%s_orig_decoder.txt" % name), taesd_params_orig(cfg, "d"), seed)
            print("%s: %d parameters; |latent| max %.3g (std %.3g), |dec| max %.3g" % (
                name, sum(int(np.prod(s)) for _, s in taesd_params(cfg)), lat.abs().max(), lat.std(),
                dec.abs().max()))
        np.save(os.path.join(OUT, name + "_x.npy"), x.to(torch.float32).numpy())
        np.save(os.path.join(OUT, name + "_z.npy"), z.to(torch.float32).numpy())
        np.save(os.path.join(OUT, name + "_dec.npy"), dec.numpy())
    write_keys(os.path.join(OUT, "keys_full_kl_diffusers.txt"), [(k, s, k) for k, s in kl_params(FULL_KL)])
    write_keys(os.path.join(OUT, "keys_full_kl_ldm.txt"), kl_params_ldm(FULL_KL))
    write_keys(os.path.join(OUT, "keys_full_taesd_diffusers.txt"), [(k, s, k) for k, s in taesd_params(FULL_TAESD)])
    write_keys(os.path.join(OUT, "keys_full_taesd_orig_encoder.txt"), taesd_params_orig(FULL_TAESD, "e"))
    write_keys(os.path.join(OUT, "keys_full_taesd_orig_decoder.txt"), taesd_params_orig(FULL_TAESD, "d"))
    print("full KL-f8: %d parameters, TAESD: %d" % (sum(int(np.prod(s)) for _, s in kl_params(FULL_KL)),
                                                    sum(int(np.prod(s)) for _, s in taesd_params(FULL_TAESD))))
    with open(os.path.join(OUT, "model.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
