"""bench_gan.py — the GAN l2-train-gan trains (lib/models/gan.h), in PyTorch (CPU,
float32), for bench/bench_gan.sh: the same generator (mapping without the
condition, per-layer A([MLP(h); w]) styles, modulated convs with demodulation
in StyleGAN2's training form (x * s, one conv with the shared weight,
demodulation of the output; --fused: per-sample weights in a grouped conv),
FIR [1,3,3,1] up/down, noise, skip toRGB) and
discriminator (residual, minibatch std, f_d + <h, f_s>), the same losses
(non-saturating, L_ConD on fakes for G and reals for D; L_ConG off as in the
bench), lazy R1 every 16 steps through a true double backward, Adam
(0, 0.99) with the lazy-regularisation correction.  Prints "images/s X
images/cpu-s Y" (wall and process CPU time of the timed steps; the first two
steps are not timed)."""
import argparse, math, time
import torch, torch.nn.functional as F

ap = argparse.ArgumentParser()
for k, v in dict(res=32, cbase=512, cmax=32, zdim=64, wdim=64, chid=64, cdim=128, maps=2, batch=8, steps=20, threads=2).items():
    ap.add_argument("--" + k, type=int, default=v)
ap.add_argument("--fused", action="store_true", help="modulated conv as a grouped conv (default: StyleGAN2's training form)")
a = ap.parse_args()
torch.set_num_threads(a.threads); torch.manual_seed(0)
ch = lambda r: min(a.cbase // r, a.cmax)
f1 = torch.tensor([1., 3, 3, 1]); FIR = (f1[:, None] * f1[None]) / 64

def fir(x, up):
    C = x.shape[1]; k = (FIR * (4 if up else 1)).expand(C, 1, 4, 4)
    if up:
        N, _, H, W = x.shape
        z = torch.zeros(N, C, H * 2, W * 2); z[:, :, ::2, ::2] = x
        return F.conv2d(F.pad(z, (2, 1, 2, 1)), k, groups=C)
    return F.conv2d(F.pad(x, (1, 1, 1, 1)), k, groups=C)[:, :, ::2, ::2]

P = lambda *s, std=1.0: torch.nn.Parameter(torch.randn(*s) * std)
Z = lambda *s, v=0.0: torch.nn.Parameter(torch.full(s, v))
act = lambda x: F.leaky_relu(x, 0.2) * math.sqrt(2)

class Fc(torch.nn.Module):
    def __init__(s, i, o, lr=1.0, b=0.0):
        super().__init__(); s.w = P(o, i, std=1 / lr); s.b = Z(o, v=b / lr); s.g = lr / math.sqrt(i); s.lr = lr
    def forward(s, x, a_=True):
        y = F.linear(x, s.w * s.g, s.b * s.lr); return act(y) if a_ else y

class Styled(torch.nn.Module):
    def __init__(s, ci, co, k, up, demod):
        super().__init__(); s.m0 = Fc(a.cdim, a.chid); s.m1 = Fc(a.chid, a.chid); s.aff = Fc(a.chid + a.wdim, ci, b=1.0)
        s.w = P(co, ci, k, k); s.b = Z(co); s.noise = Z(1) if demod else None; s.up, s.demod, s.k, s.ci = up, demod, k, ci
    def forward(s, x, h, w):
        u = s.aff(torch.cat([s.m1(s.m0(h)), w], 1), False)
        if not s.demod: u = u / math.sqrt(s.ci * s.k * s.k)
        if s.up: x = fir(x, True)
        N, C, H, W = x.shape
        if a.fused:  # per-sample weights, grouped conv (StyleGAN2's fused_modconv=True, its inference form)
            wn = s.w[None] * u[:, None, :, None, None]
            if s.demod: wn = wn * (wn.square().sum([2, 3, 4], keepdim=True) + 1e-8).rsqrt()
            y = F.conv2d(x.reshape(1, N * C, H, W), wn.reshape(-1, C, s.k, s.k), padding=s.k // 2, groups=N).reshape(N, -1, H, W)
        else:  # StyleGAN2's training form (fused_modconv=False): scale x, shared-weight conv, demodulate y
            y = F.conv2d(x * u[:, :, None, None], s.w, padding=s.k // 2)
            if s.demod:
                d = ((s.w[None] * u[:, None, :, None, None]).square().sum([2, 3, 4]) + 1e-8).rsqrt()
                y = y * d[:, :, None, None]
        if s.noise is not None: y = y + torch.randn(N, 1, H, W) * s.noise
        y = y + s.b[None, :, None, None]
        return act(y) if s.demod else y

class G(torch.nn.Module):
    def __init__(s):
        super().__init__()
        s.map = torch.nn.ModuleList([Fc(a.zdim if i == 0 else a.wdim, a.wdim, 0.01) for i in range(a.maps)])
        s.const = P(ch(4), 4, 4); s.layers = torch.nn.ModuleList(); r = 4
        while r <= a.res:
            s.layers.append(torch.nn.ModuleList([Styled(ch(r // 2), ch(r), 3, True, True) if r > 4 else torch.nn.Identity(),
                                                 Styled(ch(r), ch(r), 3, False, True), Styled(ch(r), 3, 1, False, False)])); r *= 2
    def forward(s, z, h):
        w = z * (z.square().mean(1, keepdim=True) + 1e-8).rsqrt()
        for m in s.map: w = m(w)
        x = s.const[None].expand(z.shape[0], -1, -1, -1); img = None
        for i, (c0, c1, rgb) in enumerate(s.layers):
            if i: x = c0(x, h, w)
            x = c1(x, h, w); y = rgb(x, h, w)
            img = y if img is None else fir(img, True) + y
        return img

class Conv(torch.nn.Module):
    def __init__(s, ci, co, k, bias=True):
        super().__init__(); s.w = P(co, ci, k, k); s.b = Z(co) if bias else None; s.g = 1 / math.sqrt(ci * k * k)
    def forward(s, x, a_=True):
        y = F.conv2d(x, s.w * s.g, s.b, padding=s.w.shape[2] // 2); return act(y) if a_ else y

class D(torch.nn.Module):
    def __init__(s):
        super().__init__(); s.frgb = Conv(3, ch(a.res), 1); s.blocks = torch.nn.ModuleList(); r = a.res
        while r > 4:
            s.blocks.append(torch.nn.ModuleList([Conv(ch(r), ch(r), 3), Conv(ch(r), ch(r // 2), 3), Conv(ch(r), ch(r // 2), 1, False)])); r //= 2
        c4 = ch(4); s.econv = Conv(c4 + 1, c4, 3); s.efc = Fc(c4 * 16, c4); s.fd = Fc(c4, 1); s.fs = Fc(c4, a.cdim)
    def forward(s, x, h):
        y = s.frgb(x)
        for c0, c1, sk in s.blocks:
            k = sk(fir(y, False), False); y = c1(fir(c0(y), False)); y = (k + y) * math.sqrt(0.5)
        N, C, H, W = y.shape; G_ = min(4, N)
        t = y.reshape(G_, -1, C, H, W); t = (t - t.mean(0)).square().mean(0).add(1e-8).sqrt().mean([1, 2, 3])
        y = torch.cat([y, t.reshape(1, -1, 1, 1, 1).expand(G_, -1, 1, H, W).reshape(N, 1, H, W)], 1)
        y = s.efc(s.econv(y).flatten(1)); fs = s.fs(y, False)
        return s.fd(y, False)[:, 0] + (fs * h).sum(1), fs

def con(f, h, tau=0.5):
    lg = F.normalize(h, dim=1) @ F.normalize(f, dim=1).T / tau
    return tau * F.cross_entropy(lg, torch.arange(len(f)))

g, d = G(), D()
mb = 16 / 17
og = torch.optim.Adam(g.parameters(), lr=0.0025, betas=(0, 0.99), eps=1e-8)
od = torch.optim.Adam(d.parameters(), lr=0.0025 * mb, betas=(0, 0.99 ** mb), eps=1e-8)
B = a.batch
real = torch.rand(64, 3, a.res, a.res) * 2 - 1; cond = F.normalize(torch.randn(64, a.cdim), dim=1)

def step(i):
    idx = torch.randint(0, 64, (B,)); x, h = real[idx], cond[idx]
    fake = g(torch.randn(B, a.zdim), h); l, fs = d(fake, h)
    loss = F.softplus(-l).mean() + 10 * con(fs, h); og.zero_grad(); loss.backward(); og.step()
    with torch.no_grad(): fake = g(torch.randn(B, a.zdim), h)
    lf, _ = d(fake, h); lr_, fs = d(x, h)
    loss = F.softplus(lf).mean() + F.softplus(-lr_).mean() + 10 * con(fs, h); od.zero_grad(); loss.backward(); od.step()
    if i % 16 == 0:
        xr = x.detach().requires_grad_(True); l, _ = d(xr, h)
        gr, = torch.autograd.grad(l.sum(), xr, create_graph=True)
        od.zero_grad(); (gr.square().sum([1, 2, 3]).mean() * 5 * 16).backward(); od.step()

for i in range(2): step(i)
t, c = time.perf_counter(), time.process_time()
for i in range(2, 2 + a.steps): step(i)
t, c = time.perf_counter() - t, time.process_time() - c
print("images/s %.3f images/cpu-s %.3f" % (a.steps * B / t, a.steps * B / c))
