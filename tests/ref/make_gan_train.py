#!/usr/bin/env python3
"""make_gan_train.py — goldens for lib/method/gan_train.c (tests/c/test_gan_train.c).

Two whole training steps of Lafite's conditional StyleGAN2 with a tiny G, D
and a tiny frozen CLIP image tower, transcribed functionally in PyTorch
float64 from lib/models/gan.h, lib/models/clip_train.h and
lib/method/gan_train.h (llm.c's test_gpt2 pattern):

  G phase   L_G + gamma_con L_ConD(fakes) + lambda_con L_ConG, w_avg tracking,
            one Adam step of G;
  D phase   L_D + gamma_con L_ConD(reals) on fakes of the updated G, one Adam
            step of D with the lazy-R1 correction (betas^mb, lr mb);
  R1        (gamma/2) mean ||dD/dx||^2 weighted by r1_every, by PyTorch's
            exact double backward, its own Adam step of D;
  EMA       of G, ramped half-life, w_avg copied as is.

Every random draw (z in both phases, G's noise inputs, the L_ConG crop boxes)
comes from lib/core/rng.c's counter-based SplitMix64 streams keyed by
lib/nn/train.c's l2_train_rng(seed, step, phase, sample), re-implemented here
bit for bit (Python's math.log/cos/sqrt are the C library's).

Scenario "a" has no R1 (all of it exact: the C double build must agree to
rounding); scenario "b" has R1 at step 0 (r1_every 2), which C computes as a
finite-difference Hessian-vector product.

Outputs (tests/ref/gan/): train_init.safetensors (initial G, D and CLIP
image-tower weights, F32-representable, and the batch x, h as F64),
train_step_a.safetensors and train_step_b.safetensors (F64: per step the five
losses and every G / D parameter, Adam moment and step count, and the EMA,
named as lib/nn/ckpt.h's state groups: "step0.G.param.NAME",
"step1.D.adam_v.NAME", "step0.G.ema.NAME", ...).
"""
import math, os, sys
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_train import write_st, upfirdn2d_ref, modconv_ref  # noqa: E402
import make_gan  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gan")

# G / D (lib/models/gan.h L2GanConfig): channels min(cbase / r, cmax) = 6 at 4x4, 4 at 8x8
RES, CDIM, ZDIM, WDIM, MAPL, CBASE, CMAX, CHID = 8, 5, 4, 4, 2, 32, 6, 3
B = 8
# CLIP image tower (lib/models/clip_train.h): 8x8 images, patches of 4, width 16, one layer, one head
CRES, CPATCH, CW, CL, CHEADS = 8, 4, 16, 1, 1
# L2GanTrainOptions (not the defaults: every term and schedule is exercised)
OPT = dict(lr_g=0.002, lr_d=0.003, beta1=0.5, beta2=0.9, gamma_con=2.0, lambda_con=3.0, tau=0.5,
           ema_images=20.0, ema_rampup=0.5, wavg_beta=0.9, crop_lo=0.5, crop_hi=1.0, seed=12345)
SCEN = {"a": dict(r1=0.0, r1_every=2), "b": dict(r1=10.0, r1_every=2)}
CLIP_MEAN = [float(np.float32(v)) for v in (0.48145466, 0.4578275, 0.40821073)]
CLIP_STD = [float(np.float32(v)) for v in (0.26862954, 0.26130258, 0.27577711)]
SQRT2 = math.sqrt(2)
FIR = torch.tensor([1.0, 3, 3, 1], dtype=torch.float64)
FIR = torch.outer(FIR, FIR) / 64

# ---- lib/core/rng.c and lib/nn/train.c l2_train_rng ------------------------------------
M64 = (1 << 64) - 1
GOLD = 0x9e3779b97f4a7c15


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
    return z ^ (z >> 31)


class Rng:
    def __init__(self, seed, stream):
        self.key = mix64((seed * GOLD + mix64((stream + 0x632be59bd9b4e019) & M64)) & M64)
        self.ctr = 0

    def u64(self):
        self.ctr += 1
        return mix64((self.key + self.ctr * GOLD) & M64)

    def uniform(self):
        return (self.u64() >> 11) * (1.0 / 9007199254740992.0)

    def normal(self):
        u = 1 - self.uniform()
        v = self.uniform()
        return math.sqrt(-2 * math.log(u)) * math.cos(6.283185307179586 * v)

    def below(self, n):
        if n <= 1:
            return 0
        lim = M64 - M64 % n
        while True:
            x = self.u64()
            if x < lim:
                return x % n


def train_rng(seed, step, phase, pos):
    s = mix64((step + 0x7374657000000000) & M64)
    s = mix64((s + phase) & M64)
    s = mix64((s + pos) & M64)
    return Rng(seed, s)


# ---- networks (lib/models/gan.c) -----------------------------------------------------------
ch = lambda r: min(CBASE // r, CMAX)
act = lambda x: F.leaky_relu(x, 0.2) * SQRT2


def g_params(gen):
    """G's tensors by name; weights N(0, 1) (mapping: / lr_mul), biases, noise strengths and
    w_avg away from their zero initialisation so every path is exercised."""
    p = {}
    def n(name, *shape, std=1.0, mean=0.0):
        p[name] = (torch.randn(*shape, generator=gen, dtype=torch.float64) * std + mean).float().double()
    def fc(name, i, o, lr_mul=1.0, bias=0.0):
        n(name + ".weight", o, i, std=1 / lr_mul)
        n(name + ".bias", o, std=0.2 / lr_mul, mean=bias / lr_mul)
    def styled(name, cin, cout, k, demod):
        fc(name + ".cmlp0", CDIM, CHID)
        fc(name + ".cmlp1", CHID, CHID)
        fc(name + ".affine", CHID + WDIM, cin, bias=1.0)
        n(name + ".weight", cout, cin, k, k)
        n(name + ".bias", cout, std=0.2)
        if demod:
            n(name + ".noise_strength", 1, std=0.3)
    for i in range(MAPL):
        fc("G.mapping.fc%d" % i, WDIM if i else ZDIM, WDIM, lr_mul=0.01)
    n("G.mapping.w_avg", WDIM, std=0.5)
    n("G.b4.const", ch(4), 4, 4)
    r = 4
    while r <= RES:
        if r > 4:
            styled("G.b%d.conv0" % r, ch(r // 2), ch(r), 3, True)
        styled("G.b%d.conv1" % r, ch(r), ch(r), 3, True)
        styled("G.b%d.torgb" % r, ch(r), 3, 1, False)
        r *= 2
    return p


def d_params(gen):
    return make_gan.params(gen, RES, ch, CDIM)


def clip_params(gen):
    p = {}
    def n(name, *shape, std=0.1, mean=0.0):
        p[name] = (torch.randn(*shape, generator=gen, dtype=torch.float64) * std + mean).float().double()
    g2 = (CRES // CPATCH) ** 2
    n("visual.class_embedding", CW)
    n("visual.positional_embedding", g2 + 1, CW)
    n("visual.proj", CW, CDIM, std=CW ** -0.5)
    n("visual.conv1.weight", CW, 3, CPATCH, CPATCH, std=(3 * CPATCH * CPATCH) ** -0.5)
    n("visual.ln_pre.weight", CW, mean=1.0)
    n("visual.ln_pre.bias", CW)
    for l in range(CL):
        b = "visual.transformer.resblocks.%d." % l
        n(b + "ln_1.weight", CW, mean=1.0); n(b + "ln_1.bias", CW)
        n(b + "attn.in_proj_weight", 3 * CW, CW, std=CW ** -0.5); n(b + "attn.in_proj_bias", 3 * CW)
        n(b + "attn.out_proj.weight", CW, CW, std=CW ** -0.5); n(b + "attn.out_proj.bias", CW)
        n(b + "ln_2.weight", CW, mean=1.0); n(b + "ln_2.bias", CW)
        n(b + "mlp.c_fc.weight", 4 * CW, CW, std=CW ** -0.5); n(b + "mlp.c_fc.bias", 4 * CW)
        n(b + "mlp.c_proj.weight", CW, 4 * CW, std=(4 * CW) ** -0.5); n(b + "mlp.c_proj.bias", CW)
    n("visual.ln_post.weight", CW, mean=1.0)
    n("visual.ln_post.bias", CW)
    return p


def fc(p, name, x, lr_mul=1.0, lrelu=True):
    w = p[name + ".weight"]
    b = p[name + ".bias"]
    y = F.linear(x, w * (lr_mul / math.sqrt(w.shape[1])), b if lr_mul == 1 else b * lr_mul)
    return act(y) if lrelu else y


def styled(p, name, x, h, w, up, demod, noise):
    """One modulated layer: its condition MLP, affine style, (FIR up), modconv, noise, bias, lrelu."""
    wt = p[name + ".weight"]
    cin, k = wt.shape[1], wt.shape[2]
    mh = fc(p, name + ".cmlp1", fc(p, name + ".cmlp0", h))
    u = fc(p, name + ".affine", torch.cat([mh, w], 1), lrelu=False)
    if not demod:
        u = u * (1 / math.sqrt(cin * k * k))  # toRGB weight gain
    if up:
        x = upfirdn2d_ref(x, FIR * 4, 2, 1, 2, 1, 2, 1)
    y = modconv_ref(x, wt, u, demod, k // 2)
    if demod:
        y = y + noise * p[name + ".noise_strength"]
    y = y + p[name + ".bias"].reshape(1, -1, 1, 1)
    return act(y) if demod else y


def noise_layers():
    """(name, resolution) of G's layers with noise inputs, in the order the forward pass draws them."""
    out, r = [], 4
    while r <= RES:
        if r > 4:
            out.append(("G.b%d.conv0" % r, r))
        out.append(("G.b%d.conv1" % r, r))
        r *= 2
    return out


def draw(step, phase, boxes):
    """Each sample's stream: z, then its noise inputs layer by layer, then (G phase) its crop box."""
    rs = [train_rng(OPT["seed"], step, phase, b) for b in range(B)]
    z = torch.tensor([[r.normal() for _ in range(ZDIM)] for r in rs], dtype=torch.float64)
    noise = {}
    for name, r in noise_layers():
        noise[name] = torch.tensor([[rr.normal() for _ in range(r * r)] for rr in rs],
                                   dtype=torch.float64).reshape(B, 1, r, r)
    box = []
    if boxes:
        lo, hi = OPT["crop_lo"], OPT["crop_hi"]
        for r in rs:
            s = int(math.floor(RES * (lo + (hi - lo) * r.uniform()) + 0.5))
            s = max(1, min(RES, s))
            x0 = r.below(RES - s + 1)
            y0 = r.below(RES - s + 1)
            box.append((x0, y0, s))
    return z, noise, box


def G(p, z, h, noise, wavg_beta):
    x = z * (z.square().mean(1, keepdim=True) + 1e-8).pow(-0.5)
    for i in range(MAPL):
        x = fc(p, "G.mapping.fc%d" % i, x, lr_mul=0.01)
    w = x
    wavg = None
    if wavg_beta > 0:
        m = w.detach().mean(0)
        wavg = m + (p["G.mapping.w_avg"].detach() - m) * wavg_beta
    y = p["G.b4.const"][None].expand(z.shape[0], -1, -1, -1)
    img, r = None, 4
    while r <= RES:
        if r > 4:
            y = styled(p, "G.b%d.conv0" % r, y, h, w, True, True, noise["G.b%d.conv0" % r])
        y = styled(p, "G.b%d.conv1" % r, y, h, w, False, True, noise["G.b%d.conv1" % r])
        rgb = styled(p, "G.b%d.torgb" % r, y, h, w, False, False, None)
        img = rgb if img is None else upfirdn2d_ref(img, FIR * 4, 2, 1, 2, 1, 2, 1) + rgb
        r *= 2
    return img, wavg


def conv(p, name, x, lrelu=True):
    wt = p[name + ".weight"]
    y = F.conv2d(x, wt * (1 / math.sqrt(wt[0].numel())), p.get(name + ".bias"), padding=wt.shape[2] // 2)
    return act(y) if lrelu else y


def mbstd(x, group=4):
    n, c, hh, ww = x.shape
    g = min(group, n)
    y = x.reshape(g, -1, c, hh, ww)
    y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean([1, 2, 3])
    y = y.reshape(1, -1, 1, 1, 1).expand(g, -1, 1, hh, ww).reshape(n, 1, hh, ww)
    return torch.cat([x, y], 1)


def D(p, x, h):
    """Logits and f_s(x)."""
    y = conv(p, "D.b%d.fromrgb" % RES, x)
    r = RES
    while r > 4:
        sk = conv(p, "D.b%d.skip" % r, upfirdn2d_ref(y, FIR, 1, 2, 1, 1, 1, 1), False)
        y = conv(p, "D.b%d.conv0" % r, y)
        y = conv(p, "D.b%d.conv1" % r, upfirdn2d_ref(y, FIR, 1, 2, 1, 1, 1, 1))
        y = (sk + y) * math.sqrt(0.5)
        r //= 2
    y = conv(p, "D.b4.conv", mbstd(y))
    y = fc(p, "D.b4.fc", y.flatten(1))
    fd = fc(p, "D.b4.out", y, lrelu=False)[:, 0]
    fs = fc(p, "D.b4.fs", y, lrelu=False)
    return fd + (fs * h).sum(1), fs


def contrastive(f, h, tau):
    fn = f / f.norm(dim=1, keepdim=True).clamp_min(1e-8)
    hn = h / h.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return F.cross_entropy(hn @ fn.t() / tau, torch.arange(f.shape[0])) * tau


def clip_view(x, box):
    views = [F.interpolate(x[n:n + 1, :, y0:y0 + s, x0:x0 + s], size=(CRES, CRES), mode="bilinear",
                           align_corners=False) for n, (x0, y0, s) in enumerate(box)]
    y = torch.cat(views, 0)
    a = torch.tensor([0.5 / s for s in CLIP_STD], dtype=torch.float64).reshape(1, 3, 1, 1)
    b = torch.tensor([(0.5 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD)], dtype=torch.float64).reshape(1, 3, 1, 1)
    return y * a + b


def clip_image(p, px):
    """OpenAI's VisionTransformer: patch conv, class token, positions, ln_pre, blocks, ln_post, proj."""
    n = px.shape[0]
    x = F.conv2d(px, p["visual.conv1.weight"], stride=CPATCH)
    x = x.reshape(n, CW, -1).permute(0, 2, 1)
    x = torch.cat([p["visual.class_embedding"].expand(n, 1, CW), x], 1) + p["visual.positional_embedding"]
    x = F.layer_norm(x, (CW,), p["visual.ln_pre.weight"], p["visual.ln_pre.bias"], 1e-5)
    T, Dh = x.shape[1], CW // CHEADS
    for l in range(CL):
        b = "visual.transformer.resblocks.%d." % l
        hh = F.layer_norm(x, (CW,), p[b + "ln_1.weight"], p[b + "ln_1.bias"], 1e-5)
        qkv = F.linear(hh, p[b + "attn.in_proj_weight"], p[b + "attn.in_proj_bias"])
        q, k, v = qkv.reshape(n, T, 3, CHEADS, Dh).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(Dh), -1) @ v
        a = a.permute(0, 2, 1, 3).reshape(n, T, CW)
        x = x + F.linear(a, p[b + "attn.out_proj.weight"], p[b + "attn.out_proj.bias"])
        hh = F.layer_norm(x, (CW,), p[b + "ln_2.weight"], p[b + "ln_2.bias"], 1e-5)
        hh = F.linear(hh, p[b + "mlp.c_fc.weight"], p[b + "mlp.c_fc.bias"])
        hh = hh * torch.sigmoid(1.702 * hh)
        x = x + F.linear(hh, p[b + "mlp.c_proj.weight"], p[b + "mlp.c_proj.bias"])
    x = F.layer_norm(x[:, 0], (CW,), p["visual.ln_post.weight"], p["visual.ln_post.bias"], 1e-5)
    return x @ p["visual.proj"]


# ---- optimiser and EMA (lib/nn/optim.c) --------------------------------------------------------
class Adam:
    def __init__(self, p, beta1, beta2, eps=1e-8):
        self.m = {k: torch.zeros_like(v) for k, v in p.items()}
        self.v = {k: torch.zeros_like(v) for k, v in p.items()}
        self.b1, self.b2, self.eps, self.t = beta1, beta2, eps, 0

    def step(self, p, grads, lr):
        """torch.optim.Adam's update as lib/nn/optim.c writes it (no weight decay)."""
        self.t += 1
        bc1, bc2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        step, sbc2 = lr / bc1, math.sqrt(bc2)
        with torch.no_grad():
            for k in p:
                g = grads.get(k, torch.zeros_like(p[k]))
                self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
                self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g * g
                p[k] -= step * (self.m[k] / (self.v[k].sqrt() / sbc2 + self.eps))


def ema_beta(step):
    nimg, h = (step + 1) * B, OPT["ema_images"]
    if OPT["ema_rampup"] > 0 and nimg * OPT["ema_rampup"] < h:
        h = nimg * OPT["ema_rampup"]
    return 0.5 ** (B / h) if h > 0 else 0.0


def grads_of(loss, p, names):
    gs = torch.autograd.grad(loss, [p[k] for k in names], allow_unused=True)
    return {k: (torch.zeros_like(p[k]) if g is None else g.detach()) for k, g in zip(names, gs)}


def run(scen, pg0, pd0, pc, x, h):
    r1, r1_every = SCEN[scen]["r1"], SCEN[scen]["r1_every"]
    pg = {k: v.clone().requires_grad_(k != "G.mapping.w_avg") for k, v in pg0.items()}
    pd = {k: v.clone().requires_grad_(True) for k, v in pd0.items()}
    mb = r1_every / (r1_every + 1) if r1 > 0 else 1.0
    ag = Adam(pg, OPT["beta1"], OPT["beta2"])
    ad = Adam(pd, OPT["beta1"] ** mb, OPT["beta2"] ** mb)
    ema = {k: v.detach().clone() for k, v in pg.items()}
    gnames = [k for k in pg if k != "G.mapping.w_avg"]
    out = {}
    tau, gc, lc = OPT["tau"], OPT["gamma_con"], OPT["lambda_con"]
    for step in range(2):
        # G phase
        z, noise, box = draw(step, 1, True)
        X, wavg = G(pg, z, h, noise, OPT["wavg_beta"])
        logits, fs = D(pd, X, h)
        lg = F.softplus(-logits).sum() / B
        lcg = contrastive(clip_image(pc, clip_view(X, box)), h, tau)
        L = lg + gc * contrastive(fs, h, tau) + lc * lcg
        gg = grads_of(L, pg, gnames)
        with torch.no_grad():
            pg["G.mapping.w_avg"].copy_(wavg)
        ag.step(pg, gg, OPT["lr_g"])
        # D phase, on fakes of the updated G
        z, noise, _ = draw(step, 2, False)
        with torch.no_grad():
            fake, _ = G(pg, z, h, noise, 0)
        lf, _ = D(pd, fake, h)
        lr_, fs = D(pd, x, h)
        ld = F.softplus(lf).sum() / B + F.softplus(-lr_).sum() / B
        lcd = contrastive(fs, h, tau)
        ad.step(pd, grads_of(ld + gc * lcd, pd, list(pd)), OPT["lr_d"] * mb)
        pen = 0.0
        if r1 > 0 and step % r1_every == 0:
            xr = x.clone().requires_grad_(True)
            gx, = torch.autograd.grad(D(pd, xr, h)[0].sum(), xr, create_graph=True)
            pen = r1 / 2 * gx.square().sum([1, 2, 3]).mean()
            ad.step(pd, grads_of(pen * r1_every, pd, list(pd)), OPT["lr_d"] * mb)
            pen = pen.item()
        # EMA of G; w_avg copied
        beta = ema_beta(step)
        with torch.no_grad():
            for k in ema:
                ema[k] = beta * ema[k] + (1 - beta) * pg[k]
            ema["G.mapping.w_avg"] = pg["G.mapping.w_avg"].detach().clone()
        s = "step%d." % step
        out[s + "loss"] = np.array([lg.item(), ld.item(), lcd.item(), lcg.item(), pen])
        out[s + "G.adam_t"] = np.array([float(ag.t)])
        out[s + "D.adam_t"] = np.array([float(ad.t)])
        for k in pg:
            out[s + "G.param." + k] = pg[k].detach().numpy().copy()
            out[s + "G.adam_m." + k] = ag.m[k].numpy().copy()
            out[s + "G.adam_v." + k] = ag.v[k].numpy().copy()
            out[s + "G.ema." + k] = ema[k].numpy().copy()
        for k in pd:
            out[s + "D.param." + k] = pd[k].detach().numpy().copy()
            out[s + "D.adam_m." + k] = ad.m[k].numpy().copy()
            out[s + "D.adam_v." + k] = ad.v[k].numpy().copy()
        print("make_gan_train %s step %d: L_G %.6f L_D %.6f ConD %.6f ConG %.6f R1 %.6g" % (scen, step, *out[s + "loss"]))
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(21)
    pg, pd, pc = g_params(gen), d_params(gen), clip_params(gen)
    x = (torch.rand(B, 3, RES, RES, generator=gen, dtype=torch.float64) * 2 - 1).float().double()
    h = F.normalize(torch.randn(B, CDIM, generator=gen, dtype=torch.float64), dim=1).float().double()
    init = {k: (v.numpy(), "F32") for k, v in {**pg, **pd, **pc}.items()}
    init["x"], init["h"] = (x.numpy(), "F64"), (h.numpy(), "F64")
    cfg = "res=%d cdim=%d zdim=%d wdim=%d map_layers=%d cbase=%d cmax=%d chid=%d" % (RES, CDIM, ZDIM, WDIM, MAPL,
                                                                                    CBASE, CMAX, CHID)
    write_st(os.path.join(OUT, "train_init.safetensors"), init, {"config": cfg, "batch": str(B)})
    for scen in SCEN:
        io = run(scen, pg, pd, pc, x, h)
        write_st(os.path.join(OUT, "train_step_%s.safetensors" % scen), {k: (v, "F64") for k, v in io.items()},
                 {"r1": str(SCEN[scen]["r1"]), "r1_every": str(SCEN[scen]["r1_every"])})


if __name__ == "__main__":
    main()
