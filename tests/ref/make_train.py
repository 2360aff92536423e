#!/usr/bin/env python3
"""make_train.py — goldens for lib/models/clip_train.c (tests/c/test_clip_train.c).

A tiny CLIP in OpenAI's state-dict layout, run by a functional PyTorch
transcription of OpenAI's model.py (nn.functional.multi_head_attention_forward,
layer_norm, conv2d) in float64: image and text features, the symmetric
InfoNCE loss and the gradient of every parameter.  Writes
tests/ref/train/clip_tiny.safetensors (weights, float32-representable),
tests/ref/train/clip_tiny_io.safetensors (images, tokens, features, loss,
gradients as float32)."""
import math, os
import torch
import torch.nn.functional as F
from safetensors_write import write_st

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train")
R, P, W, L, CTX, V, E, B = 16, 8, 32, 2, 8, 40, 24, 4
H = max(1, W // 64)


def params(g):
    p = {}
    def n(name, *shape, std=0.1, mean=0.0):
        # float32-representable values so the C float model holds them exactly
        p[name] = (torch.randn(*shape, generator=g, dtype=torch.float64) * std + mean).float().double()
    gr = R // P
    n("visual.class_embedding", W)
    n("visual.positional_embedding", gr * gr + 1, W)
    n("visual.proj", W, E, std=W ** -0.5)
    n("visual.conv1.weight", W, 3, P, P, std=(3 * P * P) ** -0.5)
    n("visual.ln_pre.weight", W, mean=1.0)
    n("visual.ln_pre.bias", W)
    for pre in ["visual.", ""]:
        for l in range(L):
            b = f"{pre}transformer.resblocks.{l}."
            n(b + "ln_1.weight", W, mean=1.0); n(b + "ln_1.bias", W)
            n(b + "attn.in_proj_weight", 3 * W, W, std=W ** -0.5); n(b + "attn.in_proj_bias", 3 * W)
            n(b + "attn.out_proj.weight", W, W, std=W ** -0.5); n(b + "attn.out_proj.bias", W)
            n(b + "ln_2.weight", W, mean=1.0); n(b + "ln_2.bias", W)
            n(b + "mlp.c_fc.weight", 4 * W, W, std=W ** -0.5); n(b + "mlp.c_fc.bias", 4 * W)
            n(b + "mlp.c_proj.weight", W, 4 * W, std=(4 * W) ** -0.5); n(b + "mlp.c_proj.bias", W)
        if pre:
            n("visual.ln_post.weight", W, mean=1.0); n("visual.ln_post.bias", W)
    n("token_embedding.weight", V, W, std=0.5)
    n("positional_embedding", CTX, W)
    n("ln_final.weight", W, mean=1.0); n("ln_final.bias", W)
    n("text_projection", W, E, std=W ** -0.5)
    p["logit_scale"] = torch.tensor([math.log(1 / 0.07)], dtype=torch.float32).double()
    return p


def transformer(p, pre, x, mask):  # x: (T, B, W)
    for l in range(L):
        b = f"{pre}transformer.resblocks.{l}."
        h = F.layer_norm(x, (W,), p[b + "ln_1.weight"], p[b + "ln_1.bias"], 1e-5)
        a = F.multi_head_attention_forward(h, h, h, W, H, p[b + "attn.in_proj_weight"], p[b + "attn.in_proj_bias"],
                                           None, None, False, 0.0, p[b + "attn.out_proj.weight"],
                                           p[b + "attn.out_proj.bias"], training=False, need_weights=False,
                                           attn_mask=mask)[0]
        x = x + a
        h = F.layer_norm(x, (W,), p[b + "ln_2.weight"], p[b + "ln_2.bias"], 1e-5)
        h = F.linear(h, p[b + "mlp.c_fc.weight"], p[b + "mlp.c_fc.bias"])
        h = h * torch.sigmoid(1.702 * h)
        x = x + F.linear(h, p[b + "mlp.c_proj.weight"], p[b + "mlp.c_proj.bias"])
    return x


def encode_image(p, px):
    x = F.conv2d(px, p["visual.conv1.weight"], stride=P)
    x = x.reshape(x.shape[0], W, -1).permute(0, 2, 1)
    x = torch.cat([p["visual.class_embedding"].expand(x.shape[0], 1, W), x], 1) + p["visual.positional_embedding"]
    x = F.layer_norm(x, (W,), p["visual.ln_pre.weight"], p["visual.ln_pre.bias"], 1e-5)
    x = transformer(p, "visual.", x.permute(1, 0, 2), None).permute(1, 0, 2)
    x = F.layer_norm(x[:, 0], (W,), p["visual.ln_post.weight"], p["visual.ln_post.bias"], 1e-5)
    return x @ p["visual.proj"]


def encode_text(p, tok):
    x = p["token_embedding.weight"][tok] + p["positional_embedding"]
    mask = torch.full((CTX, CTX), float("-inf"), dtype=torch.float64).triu_(1)
    x = transformer(p, "", x.permute(1, 0, 2), mask).permute(1, 0, 2)
    x = F.layer_norm(x, (W,), p["ln_final.weight"], p["ln_final.bias"], 1e-5)
    return x[torch.arange(x.shape[0]), tok.argmax(-1)] @ p["text_projection"]


def upfirdn2d_ref(x, f, up, down, px0, px1, py0, py1):
    """StyleGAN2's upfirdn2d_ref (torch_utils/ops/upfirdn2d.py, impl='ref')."""
    N, C, H, W = x.shape
    x = x.reshape(N, C, H, 1, W, 1)
    x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
    x = x.reshape(N, C, H * up, W * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    w = f.flip([0, 1])[None, None].repeat(C, 1, 1, 1)
    x = F.conv2d(x, w, groups=C)
    return x[:, :, ::down, ::down]


def modconv_ref(x, w, s, demod, pad):
    """StyleGAN2 modulated_conv2d (fused_modconv=True path)."""
    N = x.shape[0]
    O, C, kh, kw = w.shape
    ww = w[None] * s.reshape(N, 1, C, 1, 1)
    if demod:
        ww = ww * (ww.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(N, O, 1, 1, 1)
    y = F.conv2d(x.reshape(1, N * C, *x.shape[2:]), ww.reshape(N * O, C, kh, kw), padding=pad, groups=N)
    return y.reshape(N, O, *y.shape[2:])


def ops_goldens(g):
    """Forward values of image ops the GAN uses, against PyTorch/StyleGAN2 references."""
    d = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64).float().double()
    x = d(2, 3, 6, 5)
    f1 = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64)
    f = torch.outer(f1, f1) / 64
    io = {"x": x}
    io["bilinear_9x7"] = F.interpolate(x, size=(9, 7), mode="bilinear", align_corners=False)
    io["bilinear_4x3"] = F.interpolate(x, size=(4, 3), mode="bilinear", align_corners=False)
    io["up2"] = upfirdn2d_ref(x, f * 4, 2, 1, 2, 1, 2, 1)
    io["down2"] = upfirdn2d_ref(x, f, 1, 2, 1, 1, 1, 1)
    io["crop"] = upfirdn2d_ref(x, f, 1, 1, -1, 2, 1, -1)
    xg = d(2, 6, 4, 3)
    io.update(xg=xg, gw=d(6), gb=d(6))
    io["groupnorm"] = F.group_norm(xg, 3, io["gw"], io["gb"], 1e-5)
    w, s = d(4, 3, 3, 3), d(2, 3)
    io.update(mw=w, ms=s)
    io["modconv_demod"] = modconv_ref(x, w, s, True, 1)
    io["modconv"] = modconv_ref(x, w, s, False, 0)
    cw = d(6, 2, 3, 3)
    io["cw"] = cw
    io["conv_s2_g3"] = F.conv2d(torch.cat([x, x], 1), cw, stride=2, padding=1, groups=3)
    io["gelu"] = F.gelu(x)
    io["silu"] = F.silu(x)
    io["leaky"] = F.leaky_relu(x, 0.2)
    write_st(os.path.join(OUT, "ops.safetensors"), {k: (v.numpy(), "F64") for k, v in io.items() if v is not None})


def main():
    os.makedirs(OUT, exist_ok=True)
    ops_goldens(torch.Generator().manual_seed(11))
    g = torch.Generator().manual_seed(7)
    p = params(g)
    for v in p.values():
        v.requires_grad_(True)
    px = torch.randn(B, 3, R, R, generator=g, dtype=torch.float64).float().double()
    tok = torch.zeros(B, CTX, dtype=torch.long)
    lens = [3, 7, 5, 2]  # longest < context: exercises the truncated text pass
    for i, n in enumerate(lens):
        tok[i, 0] = V - 2
        tok[i, 1:n - 1] = torch.randint(1, V - 2, (n - 2,), generator=g)
        tok[i, n - 1] = V - 1
    fi, ft = encode_image(p, px), encode_text(p, tok)
    a, b = F.normalize(fi, dim=-1), F.normalize(ft, dim=-1)
    logits = p["logit_scale"].exp() * a @ b.t()
    lab = torch.arange(B)
    loss = (F.cross_entropy(logits, lab) + F.cross_entropy(logits.t(), lab)) / 2
    loss.backward()
    write_st(os.path.join(OUT, "clip_tiny.safetensors"),
             {k: (v.detach().numpy(), "F32") for k, v in p.items()})
    io = {"px": (px.numpy(), "F64"), "tokens": (tok.numpy(), "I32"), "image_features": (fi.detach().numpy(), "F64"),
          "text_features": (ft.detach().numpy(), "F64"), "loss": (loss.detach().numpy().reshape(1), "F64")}
    for k, v in p.items():
        io["grad." + k] = (v.grad.numpy(), "F32")
    write_st(os.path.join(OUT, "clip_tiny_io.safetensors"), io,
             {"config": f"res={R} patch={P} width={W} layers={L} context={CTX} vocab={V} embed={E} batch={B}"})
    print("wrote", OUT)


if __name__ == "__main__":
    main()
