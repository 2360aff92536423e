#!/usr/bin/env python3
"""bench_cuda.py — the PyTorch side of bench/bench_cuda.sh: float32 matrix products (TF32 off,
as cuBLAS's SGEMM) at bench_cuda.c's shapes, on the same machine in the same run.

  bench_cuda.py THREADS REPS

One line per shape: "m n k cpu_gflops gpu_gflops gpu_copies_gflops": torch.mm on THREADS CPU
threads; on the GPU with the operands already there (CUDA events); on the GPU with the operands
copied in from (pageable) CPU tensors and the product copied back, as l2's offload does on every
call.  Medians of REPS after a warm-up.
"""
import os
import sys
import time

import torch

SHAPES = [(256, 256, 256), (512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048), (4096, 4096, 4096),
          (400, 2304, 768), (400, 3072, 768), (400, 768, 3072)]


def median(f, reps):
    f()
    t = []
    for _ in range(reps):
        t.append(f())
    return sorted(t)[len(t) // 2]


def main():
    th, reps = int(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(th)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    # L2_TORCH_DEVICE=cpu: the script's own smoke test on a machine without a GPU
    dev = torch.device(os.environ.get("L2_TORCH_DEVICE", "cuda"))
    g = torch.Generator().manual_seed(0)
    for m, n, k in SHAPES:
        a = torch.rand(m, k, generator=g) - 0.5
        b = torch.rand(k, n, generator=g) - 0.5
        r = (reps + 1) // 2 if m * n * k > 1e10 else reps

        def cpu():
            t = time.perf_counter()
            torch.mm(a, b)
            return time.perf_counter() - t

        da, db = a.to(dev), b.to(dev)
        if dev.type == "cuda":
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def gpu():
            if dev.type != "cuda":
                t = time.perf_counter()
                torch.mm(da, db)
                return time.perf_counter() - t
            e0.record()
            torch.mm(da, db)
            e1.record()
            e1.synchronize()
            return e0.elapsed_time(e1) * 1e-3

        def gpu_copies():
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            torch.mm(a.to(dev), b.to(dev)).cpu()
            return time.perf_counter() - t

        f = 2.0 * m * n * k * 1e-9
        print("%d %d %d %.1f %.1f %.1f" % (m, n, k, f / median(cpu, r), f / median(gpu, max(r, 10)),
                                           f / median(gpu_copies, r)), flush=True)


if __name__ == "__main__":
    main()
