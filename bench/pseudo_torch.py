#!/usr/bin/env python3
"""pseudo_torch.py — the PyTorch side of bench/bench_pseudo.sh: the same
retrieval combine + contrastive latent optimisation (autograd,
torch.optim.Adam, float32, CPU) over N images in batches, on in-memory
random inputs (no stream I/O, which the l2 timing includes).

  pseudo_torch.py N BATCH D K STEPS THREADS  ->  "torch_images_per_s 1234.5"
"""
import sys
import time

import torch


def main():
    n, batch, d, k, steps, threads = (int(x) for x in sys.argv[1:7])
    tau, lam, lr, tr = 0.05, 4.0, 0.005, 0.1
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(1)
    # one pool of inputs reused by every batch (like the l2 benchmark's stream)
    f = torch.nn.functional.normalize(torch.randn(batch, d, generator=g), dim=1)
    t = torch.nn.functional.normalize(torch.randn(batch, k, d, generator=g), dim=2)
    s = torch.rand(batch, k, generator=g).sort(dim=1, descending=True).values
    labels = torch.arange(batch)
    t0 = time.perf_counter()
    done = 0
    while done < n:
        with torch.no_grad():
            w = torch.softmax(s / tr, dim=1)
            h0 = torch.nn.functional.normalize((w[:, :, None] * t).sum(1), dim=1)
            acc0 = ((h0 @ f.T).argmax(1) == labels).float().mean()
        h = h0.clone().requires_grad_(True)
        opt = torch.optim.Adam([h], lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            u = torch.nn.functional.normalize(h, dim=1)
            loss = torch.nn.functional.cross_entropy(u @ f.T / tau, labels) + lam * ((h - h0) ** 2).sum() / batch
            loss.backward()
            opt.step()
        with torch.no_grad():
            out = torch.nn.functional.normalize(h, dim=1)
            acc1 = ((out @ f.T).argmax(1) == labels).float().mean()
        done += batch
    dt = time.perf_counter() - t0
    print("torch_images_per_s %.1f" % (done / dt))
    del acc0, acc1


if __name__ == "__main__":
    main()
