#!/usr/bin/env python3
"""clip_torch.py — the PyTorch side of bench/bench_clip.sh.

  clip_torch.py make OUT.safetensors [tiny]   random-weight ViT-B/32 (OpenAI layout, f16) from
                                              tests/ref/make_clip.py's generator
  clip_torch.py images W.safetensors DIR N THREADS [L2.npy]
                                              CLIP preprocess + encode_image of N images, batch N;
                                              prints "images_per_s R max_abs_err E"
  clip_torch.py texts W.safetensors IDS.txt N THREADS
                                              encode_text of N token-id lines (padded to 77, as
                                              OpenAI does); prints "texts_per_s R"
"""
import importlib.util
import json
import os
import struct
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
spec_ = importlib.util.spec_from_file_location("make_clip", os.path.join(HERE, "../tests/ref/make_clip.py"))
mc = importlib.util.module_from_spec(spec_)
spec_.loader.exec_module(mc)

B32 = dict(width=768, layers=12, patch=32, res=224, embed=512, twidth=512, tlayers=12, context=77, vocab=49408, seed=1)
TINY = dict(width=128, layers=2, patch=32, res=224, embed=64, twidth=128, tlayers=2, context=77, vocab=49408, seed=1)


def make(path, c):
    header, blobs, off = {}, [], 0
    for name, shape, e in mc.spec(c):
        v = mc.rand_values(name, c["seed"], e, int(np.prod(shape))).astype(np.float16).tobytes()
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [off, off + len(v)]}
        blobs.append(v)
        off += len(v)
    ls = np.array(4.625, dtype=np.float16).tobytes()
    header["logit_scale"] = {"dtype": "F16", "shape": [], "data_offsets": [off, off + 2]}
    blobs.append(ls)
    header["__metadata__"] = {"format": "pt", "config": json.dumps(c)}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        data = f.read()
    c = json.loads(h["__metadata__"]["config"])
    sd = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        sd[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype=np.float16).astype(np.float32).reshape(v["shape"]))
    m = mc.CLIP(c).float().eval()
    m.load_state_dict(sd, strict=True)
    return m.to(DEV), c


DEV = torch.device(os.environ.get("L2_TORCH_DEVICE", "cpu"))
# float32 throughout, as l2 computes (PyTorch lets cuDNN's convolutions use TF32 by default)
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def sync():
    if DEV.type == "cuda":
        torch.cuda.synchronize()


def main():
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2], TINY if len(sys.argv) > 3 and sys.argv[3] == "tiny" else B32)
        return
    torch.set_num_threads(int(sys.argv[5]))
    m, c = load(sys.argv[2])
    n = int(sys.argv[4])
    if cmd == "images":
        from PIL import Image
        from torchvision import transforms
        tf = transforms.Compose([
            transforms.Resize(c["res"], interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(c["res"]), lambda im: im.convert("RGB"), transforms.ToTensor(),
            transforms.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))])
        names = sorted(f for f in os.listdir(sys.argv[3]) if f.endswith((".png", ".jpg")))[:n]
        with torch.no_grad():
            m.encode_image(torch.zeros(1, 3, c["res"], c["res"], device=DEV))  # warm up
            sync()
            t = time.perf_counter()
            x = torch.stack([tf(Image.open(os.path.join(sys.argv[3], f))) for f in names])
            f = m.encode_image(x.to(DEV)).cpu()
            dt = time.perf_counter() - t
        f = (f / f.norm(dim=-1, keepdim=True)).numpy()
        err = float("nan")
        if len(sys.argv) > 6:
            ours = np.load(sys.argv[6])[: len(names)]
            err = float(np.abs(ours - f).max())
        print("images_per_s %.3f max_abs_err %.3g" % (len(names) / dt, err))
    elif cmd == "texts":
        lines = open(sys.argv[3]).read().split("\n")[:n]
        ids = torch.zeros(len(lines), c["context"], dtype=torch.long)
        for i, l in enumerate(lines):
            v = [int(x) for x in l.split()]
            ids[i, : len(v)] = torch.tensor(v)
        with torch.no_grad():
            ids = ids.to(DEV)
            m.encode_text(ids[:2])
            sync()
            t = time.perf_counter()
            for s in range(0, len(lines), 64):
                m.encode_text(ids[s:s + 64])
            sync()
            dt = time.perf_counter() - t
        print("texts_per_s %.3f" % (len(lines) / dt))


if __name__ == "__main__":
    main()
