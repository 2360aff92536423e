#!/usr/bin/env python3
"""bench_vae.py — PyTorch's side of bench_vae.sh: the transcription of SD's
KL-f8 autoencoder and TAESD in tests/ref/make_vae.py, in float32, with the
weights bench_vae.c wrote (rebuilt from the same generator), on the input
bench_vae.c used.

  bench_vae.py kl|taesd encode|decode SIZE BATCH REPS THREADS PREFIX
      one warm-up call, REPS timed calls; compares the first output with
      PREFIX_out.npy (l2's) and prints
      "images_per_s W images_per_cpu_s C max_rel_err E" (medians)
"""
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import make_vae as mv  # noqa: E402


def main():
    kind, half, size, batch, reps, threads, prefix = sys.argv[1:8]
    size, batch, reps, threads = int(size), int(batch), int(reps), int(threads)
    torch.set_num_threads(threads)
    if kind == "kl":
        cfg = dict(mv.FULL_KL, groups=32, scale=0.18215, shift=0.0)
        p = mv.kl_weights(cfg, 1, torch.float32)
        if half == "encode":
            fn = lambda x: (mv.kl_encode(p, cfg, x)[0] - cfg["shift"]) * cfg["scale"]
        else:
            fn = lambda z: mv.kl_decode(p, cfg, z)
    else:
        cfg = dict(mv.FULL_TAESD, scale=1.0)
        p = {k: v for k, v in mv.taesd_weights(cfg, 2, torch.float32).items()}
        fn = (lambda x: mv.taesd_encode(p, cfg, x) * cfg["scale"]) if half == "encode" else (lambda z: mv.taesd_decode(p, cfg, z))
    x = torch.from_numpy(np.load(prefix + "_in.npy"))
    assert x.shape[0] == batch
    ref = np.load(prefix + "_out.npy").astype(np.float64)
    with torch.no_grad():
        y = fn(x).numpy().astype(np.float64)  # warm-up, and the parity check
        wall, cpu = [], []
        for _ in range(reps):
            t, c = time.perf_counter(), time.process_time()
            fn(x)
            wall.append(batch / (time.perf_counter() - t))
            cpu.append(batch / (time.process_time() - c))
    err = np.abs(y - ref).max() / np.abs(y).max()
    print("images_per_s %.4f images_per_cpu_s %.4f max_rel_err %.2e" % (np.median(wall), np.median(cpu), err))


if __name__ == "__main__":
    main()
