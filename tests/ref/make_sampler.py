#!/usr/bin/env python3
"""make_sampler.py — float64 NumPy reference runs of the σ schedules and the
five samplers of lib/models/sampler.c, written from the published update
rules (EDM Algorithm 2 with churn; DPM-Solver++(2M) in k-diffusion's
t = -log σ form; Euler ancestral and the midpoint DPM-Solver++(2M) SDE as
k-diffusion writes them), independently of the C code.

The denoiser is the exact one of Gaussian data N(mu, diag(s^2)):
D(x, σ) = mu + s^2 (x - mu) / (s^2 + σ^2), per dimension.  Every case starts
from the same x_T and, where it injects noise, uses noise[step] — the C test
hands the same arrays to the sampler through its noise callback, so the two
must agree to rounding (1e-12).

Writes tests/ref/sampler/goldens.npz:
  mu, s            (E,)            the data distribution
  xT               (N, E)          the start, σ_max · randn
  noise            (S, N, E)       the noise of step i
  sched_NAME       (steps + 1,)    schedules (see SCHEDULES)
  NAME             (N, E)          the sample of case NAME (see cases.txt)
  NAME_x0          (S', N, E)      the denoiser's first output of each step
and tests/ref/sampler/cases.txt, one case per line:
  NAME SAMPLER SCHEDULE STEPS SIGMA_MIN SIGMA_MAX RHO ETA CHURN S_MIN S_MAX S_NOISE
Read by tests/c/test_sampler.c (test_goldens).
"""
import math
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sampler")
N, E, S = 3, 5, 12

SCHEDULES = [
    # name          kind           steps smin   smax  rho
    ("karras7", "karras", 7, 0.002, 80.0, 7.0),
    ("karras3", "karras", 5, 0.01, 10.0, 3.0),
    ("karras1", "karras", 1, 0.002, 80.0, 7.0),
    ("exp6", "exponential", 6, 0.02, 40.0, 7.0),
]

CASES = [
    # name               sampler         sched   steps smin  smax  rho eta  churn s_min s_max s_noise
    ("euler", "euler", "karras", 8, 0.002, 80.0, 7.0, 1.0, 0.0, 0.0, math.inf, 1.0),
    ("heun", "heun", "karras", 8, 0.002, 80.0, 7.0, 1.0, 0.0, 0.0, math.inf, 1.0),
    ("dpmpp2m", "dpmpp-2m", "karras", 8, 0.002, 80.0, 7.0, 1.0, 0.0, 0.0, math.inf, 1.0),
    ("dpmpp2m_exp", "dpmpp-2m", "exponential", 9, 0.01, 20.0, 7.0, 1.0, 0.0, 0.0, math.inf, 1.0),
    ("heun_churn", "heun", "karras", 10, 0.002, 80.0, 7.0, 1.0, 40.0, 0.05, 10.0, 1.003),
    ("heun_churn_all", "heun", "karras", 6, 0.002, 80.0, 5.0, 1.0, 2.0, 0.0, math.inf, 1.0),
    ("euler_a", "euler-a", "karras", 10, 0.002, 80.0, 7.0, 1.0, 0.0, 0.0, math.inf, 1.0),
    ("euler_a_half", "euler-a", "exponential", 7, 0.01, 30.0, 7.0, 0.5, 0.0, 0.0, math.inf, 0.9),
    ("sde", "dpmpp-2m-sde", "karras", 10, 0.002, 80.0, 7.0, 1.0, 0.0, 0.0, math.inf, 1.0),
    ("sde_eta06", "dpmpp-2m-sde", "karras", 12, 0.002, 80.0, 7.0, 0.6, 0.0, 0.0, math.inf, 1.1),
    ("sde_eta0", "dpmpp-2m-sde", "exponential", 8, 0.01, 20.0, 7.0, 0.0, 0.0, 0.0, math.inf, 1.0),
]


def sigmas_karras(n, smin, smax, rho):
    ramp = np.linspace(0, 1, n)
    a, b = smax ** (1 / rho), smin ** (1 / rho)
    return np.append((a + ramp * (b - a)) ** rho, 0.0)


def sigmas_exponential(n, smin, smax):
    return np.append(np.exp(np.linspace(math.log(smax), math.log(smin), n)), 0.0)


def schedule(kind, n, smin, smax, rho):
    return sigmas_karras(n, smin, smax, rho) if kind == "karras" else sigmas_exponential(n, smin, smax)


class Gauss:
    def __init__(self, mu, s):
        self.mu, self.s2 = mu, s * s
        self.x0s = []

    def __call__(self, x, sigma):
        return self.mu + self.s2 * (x - self.mu) / (self.s2 + sigma * sigma)


def to_d(x, sigma, den):
    return (x - den) / sigma


def run_euler(D, x, sig, noise, o, log):
    for i in range(len(sig) - 1):
        den = D(x, sig[i])
        log.append(den)
        x = x + to_d(x, sig[i], den) * (sig[i + 1] - sig[i])
    return x


def run_heun(D, x, sig, noise, o, log):
    n = len(sig) - 1
    for i in range(n):
        t_cur, t_next = sig[i], sig[i + 1]
        gamma = min(o["churn"] / n, math.sqrt(2) - 1) if o["s_min"] <= t_cur <= o["s_max"] else 0.0
        t_hat = t_cur + gamma * t_cur
        x_hat = x + math.sqrt(t_hat ** 2 - t_cur ** 2) * o["s_noise"] * noise[i] if gamma > 0 else x
        den = D(x_hat, t_hat)
        log.append(den)
        d_cur = (x_hat - den) / t_hat
        x = x_hat + (t_next - t_hat) * d_cur
        if t_next != 0:
            d_prime = (x - D(x, t_next)) / t_next
            x = x_hat + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_prime)
    return x


def run_dpmpp_2m(D, x, sig, noise, o, log):
    t_fn = lambda s: -math.log(s)
    sigma_fn = lambda t: math.exp(-t)
    old = None
    for i in range(len(sig) - 1):
        den = D(x, sig[i])
        log.append(den)
        if sig[i + 1] == 0:
            x = den  # t_next = inf: the update's limit
        else:
            t, t_next = t_fn(sig[i]), t_fn(sig[i + 1])
            h = t_next - t
            if old is None:
                x = (sigma_fn(t_next) / sigma_fn(t)) * x - math.expm1(-h) * den
            else:
                h_last = t - t_fn(sig[i - 1])
                r = h_last / h
                den_d = (1 + 1 / (2 * r)) * den - (1 / (2 * r)) * old
                x = (sigma_fn(t_next) / sigma_fn(t)) * x - math.expm1(-h) * den_d
        old = den
    return x


def ancestral_step(s_from, s_to, eta):
    if not eta:
        return s_to, 0.0
    up = min(s_to, eta * (s_to ** 2 * (s_from ** 2 - s_to ** 2) / s_from ** 2) ** 0.5)
    return (s_to ** 2 - up ** 2) ** 0.5, up


def run_euler_a(D, x, sig, noise, o, log):
    for i in range(len(sig) - 1):
        den = D(x, sig[i])
        log.append(den)
        down, up = ancestral_step(sig[i], sig[i + 1], o["eta"])
        x = x + to_d(x, sig[i], den) * (down - sig[i])
        if sig[i + 1] > 0:
            x = x + noise[i] * o["s_noise"] * up
    return x


def run_dpmpp_2m_sde(D, x, sig, noise, o, log):
    eta, old, h_last = o["eta"], None, None
    for i in range(len(sig) - 1):
        den = D(x, sig[i])
        log.append(den)
        if sig[i + 1] == 0:
            x = den
        else:
            t, s = -math.log(sig[i]), -math.log(sig[i + 1])
            h = s - t
            eta_h = eta * h
            x = sig[i + 1] / sig[i] * math.exp(-eta_h) * x + (-math.expm1(-h - eta_h)) * den
            if old is not None:
                r = h_last / h
                x = x + 0.5 * (-math.expm1(-h - eta_h)) * (1 / r) * (den - old)
            if eta:
                x = x + noise[i] * sig[i + 1] * math.sqrt(-math.expm1(-2 * eta_h)) * o["s_noise"]
            h_last = h
        old = den
    return x


RUN = {"euler": run_euler, "heun": run_heun, "dpmpp-2m": run_dpmpp_2m, "euler-a": run_euler_a,
       "dpmpp-2m-sde": run_dpmpp_2m_sde}


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240613)
    mu = rng.normal(size=E) * 0.6
    s = 0.2 + rng.uniform(size=E) * 0.8
    xT = rng.normal(size=(N, E)) * 80.0
    noise = rng.normal(size=(S, N, E))
    out = {"mu": mu, "s": s, "xT": xT, "noise": noise}
    for name, kind, steps, smin, smax, rho in SCHEDULES:
        out["sched_" + name] = schedule(kind, steps, smin, smax, rho)
    lines = []
    for (name, sampler, sched, steps, smin, smax, rho, eta, churn, s_min, s_max, s_noise) in CASES:
        sig = schedule(sched, steps, smin, smax, rho)
        x = xT * (sig[0] / 80.0)
        o = dict(eta=eta, churn=churn, s_min=s_min, s_max=s_max, s_noise=s_noise)
        log = []
        out[name] = RUN[sampler](Gauss(mu, s), x, sig, noise, o, log)
        out[name + "_x0"] = np.stack(log)
        lines.append(" ".join(str(v) for v in (name, sampler, sched, steps, smin, smax, rho, eta, churn, s_min,
                                                s_max, s_noise)))
    np.savez(os.path.join(OUT, "goldens.npz"), **{k: np.ascontiguousarray(v, dtype=np.float64)
                                                   for k, v in out.items()})
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
