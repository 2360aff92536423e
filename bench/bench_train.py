#!/usr/bin/env python3
"""bench_train.py — PyTorch side of bench/bench_train.sh: one training step
of the same small CLIP l2-train-clip trains (OpenAI's model.py architecture:
ViT with class token, pre-LN blocks, QuickGELU, causal text transformer,
EOT pooling; symmetric InfoNCE with a learnable logit scale; AdamW; global
gradient clipping), on random data.  Prints "steps_per_s N".

usage: bench_train.py --batch B --res R --patch P --width W --layers L
                      --context C --text-len T --vocab V --embed E --steps N --threads N
"""
import argparse, time, math
import torch
import torch.nn as nn
import torch.nn.functional as F


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
    def __init__(self, w, h, mask=None):
        super().__init__()
        self.attn = nn.MultiheadAttention(w, h)
        self.ln_1 = nn.LayerNorm(w)
        self.mlp = nn.Sequential(nn.Linear(w, 4 * w), QuickGELU(), nn.Linear(4 * w, w))
        self.ln_2 = nn.LayerNorm(w)
        self.mask = mask

    def forward(self, x):  # (T, B, W) as OpenAI's
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=self.mask)[0]
        return x + self.mlp(self.ln_2(x))


class CLIP(nn.Module):
    def __init__(self, a):
        super().__init__()
        W, g = a.width, a.res // a.patch
        self.conv1 = nn.Conv2d(3, W, a.patch, a.patch, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(W) * W ** -0.5)
        self.vpos = nn.Parameter(torch.randn(g * g + 1, W) * W ** -0.5)
        self.ln_pre = nn.LayerNorm(W)
        self.vblocks = nn.Sequential(*[Block(W, max(1, W // 64)) for _ in range(a.layers)])
        self.ln_post = nn.LayerNorm(W)
        self.proj = nn.Parameter(torch.randn(W, a.embed) * W ** -0.5)
        T = a.text_len
        mask = torch.full((T, T), float("-inf")).triu_(1)
        self.tok = nn.Embedding(a.vocab, W)
        self.tpos = nn.Parameter(torch.randn(T, W) * 0.01)
        self.tblocks = nn.Sequential(*[Block(W, max(1, W // 64), mask) for _ in range(a.layers)])
        self.ln_final = nn.LayerNorm(W)
        self.text_projection = nn.Parameter(torch.randn(W, a.embed) * W ** -0.5)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def image(self, x):
        x = self.conv1(x).flatten(2).permute(0, 2, 1)
        x = torch.cat([self.class_embedding.expand(x.shape[0], 1, -1), x], 1) + self.vpos
        x = self.vblocks(self.ln_pre(x).permute(1, 0, 2)).permute(1, 0, 2)
        return self.ln_post(x[:, 0]) @ self.proj

    def text(self, t):
        x = self.tok(t) + self.tpos
        x = self.tblocks(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = x[torch.arange(x.shape[0]), t.argmax(-1)]
        return self.ln_final(x) @ self.text_projection


def main():
    p = argparse.ArgumentParser()
    for k, v in dict(batch=128, res=32, patch=8, width=128, layers=2, context=16, text_len=8, vocab=1000,
                     embed=128, steps=20, threads=2).items():
        p.add_argument("--" + k.replace("_", "-"), type=int, default=v)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = CLIP(a)
    opt = torch.optim.AdamW(m.parameters(), lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2)
    x = torch.randn(a.batch, 3, a.res, a.res)
    t = torch.randint(1, a.vocab - 2, (a.batch, a.text_len))
    t[:, -1] = a.vocab - 1
    lab = torch.arange(a.batch)

    def step():
        fi = F.normalize(m.image(x), dim=-1)
        ft = F.normalize(m.text(t), dim=-1)
        logits = m.logit_scale.exp() * fi @ ft.t()
        loss = (F.cross_entropy(logits, lab) + F.cross_entropy(logits.t(), lab)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            m.logit_scale.clamp_(0, math.log(100))
    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    dt = time.perf_counter() - t0
    print("steps_per_s %.4f" % (a.steps / dt))


if __name__ == "__main__":
    main()
