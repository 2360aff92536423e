#!/usr/bin/env python3
"""bench_fid.py — the PyTorch side of bench_fid.sh.

  bench_fid.py torch DIR N THREADS OURS.npy   FID Inception features of the first N images
                                             (pytorch-fid's input path, same seeded weights
                                             as l2-fid --random-weights --seed 1); prints
                                             "images_per_s <r> max_rel_err <e>" vs l2's features
  bench_fid.py stats DIR D                    two random D-dim statistics files a.npz, b.npz
  bench_fid.py frechet A.npz B.npz            time pytorch-fid's formula (scipy sqrtm):
                                             "seconds <t> fid <v>"
"""
import glob
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))


def torch_rate(d, n, threads, ours):
    import torch
    from PIL import Image
    import make_fid
    torch.set_num_threads(threads)
    net = make_fid.fid_inception(seed=1)
    files = sorted(glob.glob(os.path.join(d, "*.png")) + glob.glob(os.path.join(d, "*.jpg")))[:n]
    def load(f):
        im = Image.open(f).convert("RGB")
        return torch.from_numpy(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32) / np.float32(255))
    make_fid.features(net, load(files[0])[None])  # warm up
    t0 = time.perf_counter()
    x = torch.stack([load(f) for f in files])
    feat = make_fid.features(net, x)
    dt = time.perf_counter() - t0
    ref = np.load(ours)[:n]
    err = np.max(np.abs(ref - feat) / (np.abs(feat) + 1e-2))
    print("images_per_s %.3f max_rel_err %.3g" % (n / dt, err))


def make_stats(d, dim):
    rng = np.random.default_rng(0)
    for name, shift in (("a", 0.0), ("b", 0.1)):
        x = np.abs(rng.standard_normal((2 * dim, dim)) @ rng.standard_normal((dim, dim)) * 0.05) + shift
        np.savez(os.path.join(d, name + ".npz"), mu=x.mean(0), sigma=np.cov(x, rowvar=False))


def frechet(a, b):
    import make_fid
    with np.load(a) as f:
        m1, s1 = f["mu"], f["sigma"]
    with np.load(b) as f:
        m2, s2 = f["mu"], f["sigma"]
    t0 = time.perf_counter()
    v = make_fid.frechet(m1, s1, m2, s2)
    print("seconds %.3f fid %.10g" % (time.perf_counter() - t0, v))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "torch":
        torch_rate(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    elif cmd == "stats":
        make_stats(sys.argv[2], int(sys.argv[3]))
    elif cmd == "frechet":
        frechet(sys.argv[2], sys.argv[3])
