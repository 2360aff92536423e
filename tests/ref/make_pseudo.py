#!/usr/bin/env python3
"""make_pseudo.py — PyTorch reference outputs for lib/method/pseudo.c and
l2-optimize-pseudo, written straight from METHOD.md §3 with autograd and
torch.optim.Adam (an independent implementation of the objective, its
gradient and the optimiser).

Writes tests/ref/pseudo/:
  neighbors.l2f     a small neighbors stream (40 images, k = 5, D = 24) of
                    synthetic modality-gap features (float32)
  cases.txt         one case per line: NAME K T_R TAU LAMBDA STEPS LR BATCH
  NAME.npy          float64 (40, 24): the pseudo features torch computes in
                    float64 from the float32 inputs, for that case
  NAME.loss.npy     float64 (batches, 2): objective before the first and after
                    the last Adam step, per batch
Read by tests/c/test_pseudo.c (test_torch_goldens).
"""
import os
import struct

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pseudo")
N, D, K = 40, 24, 5

CASES = [
    # name        k  T_r   tau   lambda steps lr    batch
    ("defaults", 5, 0.1, 0.05, 4.0, 10, 0.005, 256),
    ("small-batch", 3, 0.05, 0.07, 1.5, 12, 0.01, 16),
    ("no-prox", 1, 0.1, 0.2, 0.0, 7, 0.02, 13),
    ("retrieve-like", 4, 0.02, 0.1, 2.0, 0, 0.01, 40),
]


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def synth(rng):
    cent = unit(rng.normal(size=(3, D)))
    gi, gt = unit(rng.normal(size=(2, D)))

    def items(n, gap):
        s = unit(cent[rng.integers(0, 3, n)] + unit(rng.normal(size=(n, D))))
        return unit(s + 1.15 * unit(rng.normal(size=(n, D))) + gap)

    f = items(N, gi).astype(np.float32)
    corpus = items(300, gt).astype(np.float32)
    sim = f.astype(np.float64) @ corpus.astype(np.float64).T
    idx = np.argsort(-sim, axis=1, kind="stable")[:, :K]
    scores = np.take_along_axis(sim, idx, 1).astype(np.float32)
    return f, corpus, idx, scores


def write_stream(path, f, corpus, idx, scores):
    with open(path, "wb") as o:
        o.write(b"L2FS" + struct.pack("<HHIIQ", 1, 1, D, 1, N) + b"neighbors".ljust(24, b"\0")
                + struct.pack("<I", K) + b"\0" * 12)
        for i in range(N):
            key = ("img%02d.png" % i).encode()
            o.write(struct.pack("<I", len(key)) + key + f[i].tobytes())
            for j in range(K):
                nk = ("caption %d" % idx[i, j]).encode()
                o.write(struct.pack("<I", len(nk)) + nk + struct.pack("<f", scores[i, j])
                        + corpus[idx[i, j]].tobytes())


def objective(h, fn, h0, tau, lam):
    u = h / h.norm(dim=1, keepdim=True)
    logits = u @ fn.T / tau
    B = h.shape[0]
    ce = torch.nn.functional.cross_entropy(logits, torch.arange(B), reduction="mean")
    return ce + lam * ((h - h0) ** 2).sum() / B


def run_case(f, corpus, idx, scores, k, tr, tau, lam, steps, lr, batch):
    fn = torch.tensor(f, dtype=torch.float64)
    fn = fn / fn.norm(dim=1, keepdim=True)
    t = torch.tensor(corpus[idx[:, :k]], dtype=torch.float64)          # (N, k, D)
    t = t / t.norm(dim=2, keepdim=True)
    w = torch.softmax(torch.tensor(scores[:, :k], dtype=torch.float64) / tr, dim=1)
    h0 = (w[:, :, None] * t).sum(1)
    h0 = h0 / h0.norm(dim=1, keepdim=True)
    out, losses = [], []
    for s in range(0, N, batch):
        hb0, fb = h0[s:s + batch], fn[s:s + batch]
        h = hb0.clone().requires_grad_(True)
        opt = torch.optim.Adam([h], lr=lr, betas=(0.9, 0.999), eps=1e-8)
        l0 = None
        for _ in range(steps):
            opt.zero_grad()
            loss = objective(h, fb, hb0, tau, lam)
            if l0 is None:
                l0 = loss.item()
            loss.backward()
            opt.step()
        with torch.no_grad():
            l1 = objective(h, fb, hb0, tau, lam).item()
            if l0 is None:
                l0 = l1
            out.append(h / h.norm(dim=1, keepdim=True))
        losses.append((l0, l1))
    return torch.cat(out).numpy(), np.array(losses)


def main():
    torch.set_default_dtype(torch.float64)
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261129)
    f, corpus, idx, scores = synth(rng)
    write_stream(os.path.join(OUT, "neighbors.l2f"), f, corpus, idx, scores)
    with open(os.path.join(OUT, "cases.txt"), "w") as c:
        for name, k, tr, tau, lam, steps, lr, batch in CASES:
            h, losses = run_case(f, corpus, idx, scores, k, tr, tau, lam, steps, lr, batch)
            np.save(os.path.join(OUT, name + ".npy"), h)
            np.save(os.path.join(OUT, name + ".loss.npy"), losses)
            c.write("%s %d %r %r %r %d %r %d\n" % (name, k, tr, tau, lam, steps, lr, batch))


if __name__ == "__main__":
    main()
