#!/usr/bin/env python3
"""bench_diffusion.py — the PyTorch side of bench/bench_diffusion.sh: the same denoiser
(tests/ref/make_diffusion.py's nn.Module, float32, CPU) timed as l2 is.

  train:   Adam steps (betas 0.9/0.99) on the uncertainty-weighted loss with the forced
           weight renormalisation after each step and two power EMAs, batch B of random
           images and unit conditions (one in ten null), log-normal sigma;
  forward: no-grad denoiser evaluations of a batch B (NFE x images / s);
  sample:  DPM-Solver++(2M), STEPS steps on a Karras schedule, classifier-free
           guidance (conditional and null in one batch of 2B), images / s end to end.

Prints "wall_per_unit cpu_per_unit" lines as "<what> <units/s wall> <units/CPU-s>": the
median over the timed repetitions after one untimed warm-up.
"""
import argparse, math, os, resource, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import torch
from make_diffusion import Denoiser, loss_fn, renormalize, ema_gamma

PRESETS = {"tiny": (16, (1, 2, 4), 1), "small": (32, (1, 2, 2), 2), "base": (64, (1, 2, 2), 2)}


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def median(v):
    v = sorted(v)
    return v[len(v) // 2]


def karras(n, smin=0.002, smax=80, rho=7):
    i = torch.arange(n, dtype=torch.float64)
    s = (smax ** (1 / rho) + i / (n - 1) * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
    return torch.cat([s, torch.zeros(1, dtype=torch.float64)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["train", "forward", "sample"])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--res", type=int, default=32)
    ap.add_argument("--cdim", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--guidance", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    C, mult, blocks = PRESETS[a.preset]
    net = Denoiser(a.res, 3, a.cdim, C, mult, blocks, (8,))
    with torch.no_grad():
        net.out.gain.fill_(0.5)
    B = a.batch
    cond = torch.randn(B, a.cdim)
    cond = cond / cond.norm(dim=1, keepdim=True)
    cond[::10] = 0
    if a.mode == "train":
        opt = torch.optim.Adam(net.parameters(), lr=4e-3, betas=(0.9, 0.99), eps=1e-8)
        params = [p for p in net.parameters()]
        emas = [[p.detach().clone() for p in params] for _ in range(2)]
        gam = [ema_gamma(0.05), ema_gamma(0.10)]
        times = []
        for step in range(a.reps + 1):
            y = torch.rand(B, 3, a.res, a.res) * 2 - 1
            eps = torch.randn_like(y)
            sigma = (torch.randn(B) * 1.2 - 1.2).exp()
            t0, c0 = time.perf_counter(), cpu()
            opt.zero_grad(set_to_none=True)
            L, _, _ = loss_fn(net, y, eps, sigma, cond)
            L.backward()
            opt.step()
            renormalize(net)
            with torch.no_grad():
                for g, ema in zip(gam, emas):
                    beta = (1 - 1 / (step + 1)) ** (g + 1)
                    for e, p in zip(ema, params):
                        e.lerp_(p, 1 - beta)
            if step:
                times.append((time.perf_counter() - t0, cpu() - c0))
        w, c = median([t[0] for t in times]), median([t[1] for t in times])
        print("train %.3f %.3f" % (B / w, B / c))
    elif a.mode == "forward":
        net.eval()
        times = []
        with torch.no_grad():
            for r in range(a.reps + 1):
                x = torch.randn(B, 3, a.res, a.res) * 2
                sigma = (torch.randn(B) * 1.2 - 1.2).exp()
                t0, c0 = time.perf_counter(), cpu()
                net(x, sigma, cond, want_u=False)
                if r:
                    times.append((time.perf_counter() - t0, cpu() - c0))
        w, c = median([t[0] for t in times]), median([t[1] for t in times])
        print("forward %.3f %.3f" % (B / w, B / c))
    else:
        net.eval()
        sig = karras(a.steps)
        times = []
        null = torch.zeros_like(cond)
        cc = torch.cat([cond, null])
        with torch.no_grad():
            for r in range(a.reps + 1):
                t0, c0 = time.perf_counter(), cpu()
                x = torch.randn(B, 3, a.res, a.res, dtype=torch.float64) * sig[0]
                old = None
                for i in range(a.steps):
                    s, sn = sig[i], sig[i + 1]
                    xx = torch.cat([x, x]).float()
                    D2, _ = net(xx, torch.full((2 * B,), float(s)), cc, want_u=False)
                    D2 = D2.double()
                    D = D2[B:] + a.guidance * (D2[:B] - D2[B:])
                    if sn == 0:
                        x = D
                        break
                    h = math.log(s / sn)
                    if old is None or i == a.steps - 1 or sig[i + 1] == 0:
                        Dt = D
                    else:
                        hp = math.log(sig[i - 1] / s)
                        rr = hp / h
                        Dt = (1 + 1 / (2 * rr)) * D - (1 / (2 * rr)) * old
                    x = (sn / s) * x - math.expm1(-h) * Dt
                    old = D
                if r:
                    times.append((time.perf_counter() - t0, cpu() - c0))
        w, c = median([t[0] for t in times]), median([t[1] for t in times])
        print("sample %.3f %.3f" % (B / w, B / c))


if __name__ == "__main__":
    main()
