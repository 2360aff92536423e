#!/usr/bin/env python3
"""index_faiss.py — the faiss side of bench_index.sh, plus data generation.

  index_faiss.py gen OUT_PREFIX N NQ D SEED uniform|clustered
      x.npy (N, D) and q.npy (NQ, D), float32, unit rows.  clustered: a
      mixture of Gaussians on the sphere (NC = N/50 centres, each row
      normalize(centre + sigma_c * noise), cos(row, centre) 0.53 ... 0.78),
      queries from the same mixture.
  index_faiss.py flat X.npy Q.npy K THREADS IDS_OUT.npy
      IndexFlatIP: prints "search_s S"; writes the top-K ids (NQ, K).
  index_faiss.py ivf X.npy Q.npy K THREADS NLIST NPROBE[,NPROBE...]
      IndexIVFFlat (inner product): prints "nprobe P search_s S recall R"
      with recall@K against IndexFlatIP.
  index_faiss.py compare IDS.npy OURS.tsv X.npy Q.npy K
      how many queries have identical top-K id lists, identical sets, and,
      for the rest, whether every difference is a near-tie (|gap| < 1e-6).
  index_faiss.py sgemm THREADS
      OpenBLAS SGEMM GFLOP/s (4096 x 4096 x 512) through numpy, as the peak.
"""
import sys, time
import numpy as np


def gen(prefix, n, nq, d, seed, kind):
    rng = np.random.default_rng(seed)
    def unit(a):
        return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)
    if kind == "uniform":
        x = unit(rng.standard_normal((n, d), dtype=np.float32))
        q = unit(rng.standard_normal((nq, d), dtype=np.float32))
    else:
        nc = max(n // 50, 10)
        cent = unit(rng.standard_normal((nc, d), dtype=np.float32))
        # per-cluster spread: noise norm 0.8 ... 1.6, cos(row, centre) 0.78 ... 0.53,
        # so near neighbours often sit in other clusters
        sigma = (rng.uniform(0.8, 1.6, nc) / np.sqrt(d)).astype(np.float32)
        def sample(m):
            out = np.empty((m, d), np.float32)
            for i in range(0, m, 65536):
                j = min(m, i + 65536)
                c = rng.integers(0, nc, j - i)
                noise = rng.standard_normal((j - i, d), dtype=np.float32)
                out[i:j] = unit(cent[c] + sigma[c, None] * noise)
            return out
        x, q = sample(n), sample(nq)
    np.save(prefix + "x.npy", x)
    np.save(prefix + "q.npy", q)


def main():
    cmd = sys.argv[1]
    if cmd == "gen":
        p, n, nq, d, seed, kind = sys.argv[2:8]
        gen(p, int(n), int(nq), int(d), int(seed), kind)
        return
    if cmd == "sgemm":
        import os
        a = np.random.rand(4096, 512).astype(np.float32)
        b = np.random.rand(512, 4096).astype(np.float32)
        a @ b
        best = 1e9
        for _ in range(3):
            t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)
        print("gflops %.1f" % (2 * 4096 * 4096 * 512 / best / 1e9))
        return
    import faiss
    if cmd == "compare":
        ids, tsv, xp, qp, k = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
        ref = np.load(ids)
        ours = np.loadtxt(tsv, dtype=np.int64, usecols=2, delimiter="\t").reshape(ref.shape[0], k)
        x, q = np.load(xp), np.load(qp)
        same = int((ours == ref).all(axis=1).sum())
        sets = int(sum(set(a) == set(b) for a, b in zip(ours, ref)))
        ties = 0
        for i in np.nonzero((ours != ref).any(axis=1))[0]:
            s = x.astype(np.float64) @ q[i].astype(np.float64) if x.shape[0] <= 200000 else None
            a = np.sort(s[ours[i]])[::-1]; b = np.sort(s[ref[i]])[::-1]
            if np.abs(a - b).max() < 1e-6: ties += 1
        print("identical %d sets %d ties %d of %d" % (same, sets, ties, ref.shape[0]))
        return
    x, q = np.load(sys.argv[2]), np.load(sys.argv[3])
    k, threads = int(sys.argv[4]), int(sys.argv[5])
    faiss.omp_set_num_threads(threads)
    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    if cmd == "flat":
        best, cpu = 1e9, 1e9
        for _ in range(2):
            t, c = time.perf_counter(), time.process_time()
            D, I = flat.search(q, k)
            best, cpu = min(best, time.perf_counter() - t), min(cpu, time.process_time() - c)
        np.save(sys.argv[6], I)
        print("search_s %.4f cpu_s %.4f" % (best, cpu))
    elif cmd == "ivf":
        nlist = int(sys.argv[6])
        _, ref = flat.search(q, k)
        quant = faiss.IndexFlatIP(x.shape[1])
        ivf = faiss.IndexIVFFlat(quant, x.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
        t = time.perf_counter(); ivf.train(x); ivf.add(x); tb = time.perf_counter() - t
        print("build_s %.3f" % tb)
        for p in sys.argv[7].split(","):
            ivf.nprobe = int(p)
            t, c = time.perf_counter(), time.process_time()
            _, I = ivf.search(q, k)
            ts, tc = time.perf_counter() - t, time.process_time() - c
            r = np.mean([len(set(a) & set(b)) / k for a, b in zip(I, ref)])
            print("nprobe %s search_s %.4f recall %.4f cpu_s %.4f" % (p, ts, r, tc))


if __name__ == "__main__":
    main()
