#!/usr/bin/env python3
"""make_fid.py — reference outputs for l2-fid (lib/models/inception.c, lib/method/fid.c, lib/io/npz.c).

Writes tests/ref/fid/:
  inception_feat{64,192,768,2048}.npy  features of two seeded 299x299 images
                                   (test_inception.c builds the same images)
  img/*.png, img_feat.npy           small PNGs of odd sizes and modes and their
                                   2048-d features through pytorch-fid's input path
                                   (PIL convert('RGB'), ToTensor, bilinear 299, 2x-1)
  sets/*.npy, fid_cases.txt         feature sets and their FID by pytorch-fid's
                                   formula (scipy.linalg.sqrtm route), incl. N < dims
  kid_cases.txt                     KID (unbiased polynomial MMD) of whole sets
  stats_*.npz                       mu/sigma as np.savez / np.savez_compressed write them

The network is pytorch-fid's FID Inception-v3 (its published definition:
torchvision's Inception-v3 pieces, blocks patched to average-pool without
padding counts, Mixed_7c max-pooling, 1008-way fc, BN eps 0.001), rebuilt
here because pytorch-fid is not packaged.  Weights: the seeded generator of
lib/models/inception.h, computed bit for bit in numpy.
"""
import os
import sys

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fid")
PHI = np.uint64(0x9E3779B97F4A7C15)
SEED = 1


# ---- seeded parameters (same bits as l2_inception_random_param) -------------
def fnv1a64(s):
    h = 0xCBF29CE484222325
    for ch in s.encode():
        h = ((h ^ ch) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def splitmix_v(key, n):
    """v in [-1, 1) for elements 0..n-1, as float32."""
    with np.errstate(over="ignore"):
        j = np.arange(1, n + 1, dtype=np.uint64)
        z = np.uint64(key) + j * PHI
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float32)
    return u * np.float32(2.0 ** -23) - np.float32(1.0)


def random_param(name, shape, seed=SEED):
    n = int(np.prod(shape))
    key = (fnv1a64(name) ^ ((seed * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)) & 0xFFFFFFFFFFFFFFFF
    v = splitmix_v(key, n)
    if name.endswith("conv.weight"):
        fan_in = shape[1] * shape[2] * shape[3]
        out = v * np.float32(np.sqrt(6.0 / fan_in))
    elif name == "fc.weight":
        out = v * np.float32(np.sqrt(3.0 / 2048.0))
    elif name.endswith("bn.weight") or name.endswith("running_var"):
        out = np.float32(1.0) + v * np.float32(0.25)
    else:
        out = v * np.float32(0.0625)
    return out.reshape(shape)


# ---- pytorch-fid's FID Inception-v3 --------------------------------------------
tvi = torchvision.models.inception


class PatchedA(tvi.InceptionA):
    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([b1, b5, b3, bp], 1)


class PatchedC(tvi.InceptionC):
    def forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for m in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = m(bd)
        bp = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([b1, b7, bd, bp], 1)


class PatchedE(tvi.InceptionE):
    def __init__(self, cin, max_pool):
        super().__init__(cin)
        self.max_pool = max_pool

    def forward(self, x):
        b1 = self.branch1x1(x)
        t = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(t), self.branch3x3_2b(t)], 1)
        t = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(t), self.branch3x3dbl_3b(t)], 1)
        if self.max_pool:
            p = F.max_pool2d(x, 3, stride=1, padding=1)
        else:
            p = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([b1, b3, bd, self.branch_pool(p)], 1)


def fid_inception(seed=SEED):
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    net.Mixed_5b = PatchedA(192, pool_features=32)
    net.Mixed_5c = PatchedA(256, pool_features=64)
    net.Mixed_5d = PatchedA(288, pool_features=64)
    net.Mixed_6b = PatchedC(768, channels_7x7=128)
    net.Mixed_6c = PatchedC(768, channels_7x7=160)
    net.Mixed_6d = PatchedC(768, channels_7x7=160)
    net.Mixed_6e = PatchedC(768, channels_7x7=192)
    net.Mixed_7b = PatchedE(1280, max_pool=False)
    net.Mixed_7c = PatchedE(2048, max_pool=True)
    sd = {}
    for k, v in net.state_dict().items():
        if k.endswith("num_batches_tracked"):
            sd[k] = v
        else:
            sd[k] = torch.from_numpy(random_param(k, tuple(v.shape), seed))
    net.load_state_dict(sd)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert m.eps == 0.001
    return net.eval()


def state_dict_order(net):
    return [(k, tuple(v.shape)) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")]


@torch.no_grad()
def features(net, x, dims=2048):
    """pytorch-fid's InceptionV3([block]) forward + its adaptive pooling; x (B,3,H,W) in [0,1]."""
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    x = 2 * x - 1
    x = net.Conv2d_2b_3x3(net.Conv2d_2a_3x3(net.Conv2d_1a_3x3(x)))
    x = F.max_pool2d(x, 3, stride=2)
    if dims > 64:
        x = F.max_pool2d(net.Conv2d_4a_3x3(net.Conv2d_3b_1x1(x)), 3, stride=2)
    if dims > 192:
        for m in (net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a, net.Mixed_6b, net.Mixed_6c, net.Mixed_6d, net.Mixed_6e):
            x = m(x)
    if dims > 768:
        x = net.Mixed_7c(net.Mixed_7b(net.Mixed_7a(x)))
    return F.adaptive_avg_pool2d(x, (1, 1)).squeeze(3).squeeze(2).numpy()


def seeded_image(i, h=299, w=299):
    """u8 (3, h, w): splitmix of (image i, element), as test_inception.c builds it.
    Smoothed by averaging a coarse and a fine grid so it looks a little like a picture."""
    v = splitmix_v((fnv1a64("image") ^ i) & 0xFFFFFFFFFFFFFFFF, 3 * h * w).reshape(3, h, w)
    u8 = ((v.astype(np.float64) + 1.0) * 127.5).astype(np.uint8)  # floor; exact in both
    return u8


# ---- FID / KID references (pytorch-fid's formula, scipy's sqrtm) --------------
def frechet(mu1, s1, mu2, s2, eps=1e-6):
    covmean, _ = scipy.linalg.sqrtm(s1.dot(s2), disp=False)
    if not np.isfinite(covmean).all():
        off = np.eye(s1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((s1 + off).dot(s2 + off))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    d = mu1 - mu2
    return float(d.dot(d) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def kid_full(a, b):
    """unbiased MMD^2, kernel (x.y/d + 1)^3, whole sets (m = min(n1, n2) rows each)."""
    m = min(len(a), len(b))
    x, y = b[:m].astype(np.float64), a[:m].astype(np.float64)
    d = a.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    return float((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.sum() / (m * m))


def main():
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    os.makedirs(os.path.join(OUT, "img"), exist_ok=True)
    os.makedirs(os.path.join(OUT, "sets"), exist_ok=True)
    net = fid_inception()

    # parameter list as lib/models/inception.c orders it: compare names/shapes
    with open(os.path.join(OUT, "params.txt"), "w") as f:
        for k, s in state_dict_order(net):
            f.write("%s %s\n" % (k, "x".join(map(str, s))))

    # 1. two seeded 299x299 images, all four dims
    x = torch.from_numpy(np.stack([seeded_image(0), seeded_image(1)]).astype(np.float32) / np.float32(255))
    for dims in (64, 192, 768, 2048):
        ft = features(net, x, dims).astype(np.float32)
        np.save(os.path.join(OUT, "inception_feat%d.npy" % dims), ft)
        print("dims %d: feature mean %.4g std %.4g min %.4g max %.4g" % (dims, ft.mean(), ft.std(), ft.min(), ft.max()),
              file=sys.stderr)

    # 2. small PNGs through PIL -> ToTensor -> interpolate
    rng = np.random.default_rng(7)
    pngs = []
    for name, mode, (w, h) in [("a_rgb.png", "RGB", (40, 31)), ("b_grey.png", "L", (64, 64)),
                               ("c_rgba.png", "RGBA", (37, 53)), ("d_big.png", "RGB", (320, 300))]:
        ch = len(mode)
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([(xx * (3 + c) + yy * (5 - c)) % 256 for c in range(ch)], -1)
        noise = 40 if w * h < 10000 else 1  # the big one stays a smooth gradient (small PNG)
        arr = (base + rng.integers(0, noise, size=(h, w, ch))).clip(0, 255).astype(np.uint8)
        img = Image.fromarray(arr[..., 0] if ch == 1 else arr, mode)
        img.save(os.path.join(OUT, "img", name))
        pngs.append(name)
    feats = []
    for name in sorted(pngs):
        im = Image.open(os.path.join(OUT, "img", name)).convert("RGB")
        t = torch.from_numpy(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32) / np.float32(255))
        feats.append(features(net, t[None])[0])
    np.save(os.path.join(OUT, "img_feat.npy"), np.stack(feats).astype(np.float32))

    # 3. Frechet distance cases
    rng = np.random.default_rng(3)
    cases = []

    def add_case(name_a, name_b, a, b):
        for nm, arr in ((name_a, a), (name_b, b)):
            np.save(os.path.join(OUT, "sets", nm + ".npy"), arr.astype(np.float32))
        a64, b64 = a.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64)
        fid = frechet(a64.mean(0), np.cov(a64, rowvar=False), b64.mean(0), np.cov(b64, rowvar=False))
        cases.append("%s %s %.17g" % (name_a, name_b, fid))

    d = 64
    scale = rng.uniform(0.5, 2, d)
    add_case("full_a", "full_b", rng.standard_normal((200, d)) * scale, rng.standard_normal((300, d)) + 0.3)
    add_case("low_a", "low_b", rng.standard_normal((10, d)) * scale, rng.standard_normal((20, d)) + 0.3)
    add_case("two_a", "two_b", rng.standard_normal((2, d)), rng.standard_normal((3, d)) * 2)
    # rank-deficient, larger dims, with a correlated structure
    mix = rng.standard_normal((16, 256))
    add_case("wide_a", "wide_b", rng.standard_normal((30, 16)) @ mix + 1, rng.standard_normal((40, 256)))
    # positive features like pool3's (relu + mean), correlated
    z = np.abs(rng.standard_normal((150, 96)) @ rng.standard_normal((96, 96)) * 0.1)
    add_case("pos_a", "pos_b", z[:70], z[70:] * 1.1)
    with open(os.path.join(OUT, "fid_cases.txt"), "w") as f:
        f.write("\n".join(cases) + "\n")

    # 4. KID on whole sets (1 subset of min(N1, N2) rows: the first rows);
    #    kid_a / kid_b have equal sizes so the tool sees whole sets too
    np.save(os.path.join(OUT, "sets", "kid_a.npy"), (rng.standard_normal((60, 32)) * 1.5).astype(np.float32))
    np.save(os.path.join(OUT, "sets", "kid_b.npy"), (rng.standard_normal((60, 32)) + 0.2).astype(np.float32))
    with open(os.path.join(OUT, "kid_cases.txt"), "w") as f:
        for a, b in (("kid_a", "kid_b"), ("full_a", "full_b"), ("pos_a", "pos_b")):
            fa = np.load(os.path.join(OUT, "sets", a + ".npy"))
            fb = np.load(os.path.join(OUT, "sets", b + ".npy"))
            f.write("%s %s %.17g\n" % (a, b, kid_full(fa, fb)))

    # 5. statistics files as numpy writes them
    a = np.load(os.path.join(OUT, "sets", "pos_a.npy")).astype(np.float64)
    mu, sigma = a.mean(0), np.cov(a, rowvar=False)
    np.savez_compressed(os.path.join(OUT, "stats_compressed.npz"), mu=mu, sigma=sigma)
    np.savez(os.path.join(OUT, "stats_stored.npz"), mu=mu, sigma=sigma)
    np.savez(os.path.join(OUT, "stats_f32.npz"), mu=mu.astype(np.float32), sigma=sigma.astype(np.float32))
    # malformed statistics for the error tests
    np.savez(os.path.join(OUT, "bad_nosigma.npz"), mu=np.zeros(4))
    np.savez(os.path.join(OUT, "bad_shape.npz"), mu=np.zeros(4), sigma=np.zeros((3, 3)))
    np.savez(os.path.join(OUT, "bad_nan.npz"), mu=np.zeros(3), sigma=np.full((3, 3), np.nan))


if __name__ == "__main__":
    main()
